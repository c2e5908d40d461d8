"""``enhtrain config schema``: a draft 2020-12 JSON Schema that accepts the shipped configs and rejects typos."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from enhtrain.config.json_schema import config_schema, top_level_keys, trainer_parameters
from enhtrain.testing import CliResult, tiny_config

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
# Every config file shipped in configs/, pieces and overlays included; a sweep spec is not a config.
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml") if p.parent.name != "sweeps")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_draft_2020_12(validator: jsonschema.Draft202012Validator) -> None:
    schema = validator.schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(top_level_keys())
    assert set(schema["properties"]["trainer"]["properties"]) == set(trainer_parameters())
    json.dumps(schema)  # plain data


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_config_matches(path: str, validator: jsonschema.Draft202012Validator) -> None:
    data = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors


def test_tiny_config_and_shorthands_match(validator: jsonschema.Draft202012Validator) -> None:
    config = tiny_config({"experiment": {"name": "x", "loggers": ["csv"], "version": 3, "profiler": "simple",
                                         "callbacks": {"throughput": None}}})
    config.update({"extends": ["base.yaml"], "schema_version": 2, "ckpt_path": None, "optimizer": "torch.optim.SGD"})
    assert not list(validator.iter_errors(config))
    profiled = {"experiment": {"profiler": {"name": "pytorch", "row_limit": 5}}}
    assert not list(validator.iter_errors(profiled))


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "trainer_typo": ({"trainer": {"max_epochz": 3}}, "max_epochz"),
    "unknown_logger": ({"experiment": {"loggers": {"unknown_logger": {}}}}, "loggers"),
    "experiment_typo": ({"experiment": {"nmae": "x"}}, "nmae"),
    "wrong_type": ({"trainer": {"max_epochs": "ten"}}, "max_epochs"),
    "unknown_profiler": ({"experiment": {"profiler": "nope"}}, "profiler"),
    "checkpoint_typo": ({"experiment": {"checkpoint": {"monitr": "val/loss"}}}, "monitr"),
    "section_typo": ({"trainerr": {}}, "trainerr"),
    "model_key": ({"model": {"class_path": "x.Y", "hidden_dims": [8]}}, "model"),
    "schema_version_text": ({"schema_version": "two"}, "schema_version"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_rejected(case: str, validator: jsonschema.Draft202012Validator) -> None:
    data, where = BAD[case]
    errors = list(validator.iter_errors(data))
    assert errors, f"{case} was accepted"
    assert any(where in json.dumps([*e.absolute_path, e.message]) for e in errors), [e.message for e in errors]


def test_command_writes_the_schema(tmp_path: Path, enhtrain_cli: Callable[..., CliResult]) -> None:
    result = enhtrain_cli("config", "schema", "-o", "enhtrain.schema.json")
    assert result.exit_code == 0, result.stderr
    written = json.loads((tmp_path / "enhtrain.schema.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(config_schema()))
    assert not [p for p in tmp_path.iterdir() if p.name != "enhtrain.schema.json"]  # no temp file left
    printed = enhtrain_cli("config", "schema")
    assert printed.exit_code == 0 and json.loads(printed.stdout) == written
    failed = enhtrain_cli("config", "schema", "-o", "missing/enhtrain.schema.json")
    assert failed.exit_code == 2
    assert "config schema: cannot write 'missing/enhtrain.schema.json'" in failed.stderr
    assert enhtrain_cli("config", "schema", "--bogus").exit_code == 2
