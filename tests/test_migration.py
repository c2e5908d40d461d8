"""Schema versions, the table of key changes, the legacy script format (version 1), and ``config migrate``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import enhtrain._version
from enhtrain.commands import main
from enhtrain.config import migration
from enhtrain.config.compose import compose
from enhtrain.config.migration import (
    CURRENT_SCHEMA_VERSION,
    KEY_CHANGES,
    LEGACY_DATA_CLASS,
    LEGACY_MODEL_CLASS,
    LEGACY_SCHEMA_VERSION,
    ConfigDeprecationWarning,
    KeyChange,
    is_legacy_script_config,
)
from refusals import assert_refused

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "examples" / "legacy.yaml"
VERSIONS_PAGE = ROOT / "docs" / "migration" / "versions.md"


@dataclass(frozen=True)
class Sample:
    """A version-1 file that uses one entry of the table: its keys, the old key, the new key and its value."""

    text: str
    old: str
    new: str | None
    value: Any = None
    first: tuple[str, str | None] | None = None  # the first old key and its new key, when not ``old``

    @property
    def line(self) -> int:
        """The old key's line, after the ``schema_version: 1`` line: the snippet's last line holds it."""
        return self.text.count("\n") + 1


# A file for each entry of the table, and what the new key holds once it is converted.
SAMPLES: dict[str, Sample] = {
    "seed": Sample("seed: 7\n", "seed", "seed_everything", 7),
    "model.*": Sample("model:\n  lr: 0.1\n", "model.lr", "model.init_args.lr", 0.1),
    "data.*": Sample("data:\n  batch_size: 8\n", "data.batch_size", "data.init_args.batch_size", 8),
    "logging.csv_dir": Sample("logging:\n  csv_dir: out\n", "logging.csv_dir", "experiment.root_dir", "out"),
    "logging.name": Sample("logging:\n  name: tiny\n", "logging.name", "experiment.name", "tiny"),
    "logging.*": Sample("logging:\n  flush_logs_every_n_steps: 10\n", "logging.flush_logs_every_n_steps", None),
    "callbacks.checkpoint.dirpath": Sample("callbacks:\n  checkpoint:\n    dirpath: ckpts\n",
                                           "callbacks.checkpoint.dirpath", None,
                                           first=("callbacks.checkpoint", "experiment.checkpoint")),
    "callbacks.checkpoint": Sample("callbacks:\n  checkpoint:\n    monitor: val/loss\n", "callbacks.checkpoint",
                                   "experiment.checkpoint", {"monitor": "val/loss"}),
    "callbacks.*": Sample("callbacks:\n  lr_monitor:\n    logging_interval: step\n", "callbacks.lr_monitor",
                          "experiment.callbacks.lr_monitor", {"logging_interval": "step"}),
}

# Keys that a hypothetical schema version 3 renamed or removed, for the machinery that no real entry uses yet.
FUTURE_CHANGES = (
    KeyChange("experiment.title", "experiment.name", 3, "0.3", "the run's name"),
    KeyChange("experiment.notes", None, 3, "0.3", "notes go in experiment.description"),
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _get(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data[key]
    return data


def _compose_quietly(*files: Path) -> tuple[dict[str, Any], list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        composed = compose([str(f) for f in files])
    return composed.data, [w for w in caught if issubclass(w.category, ConfigDeprecationWarning)]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def future_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema version 3 with :data:`FUTURE_CHANGES`, read by this enhtrain's 0.3 line."""
    monkeypatch.setattr(migration, "KEY_CHANGES", (*KEY_CHANGES, *FUTURE_CHANGES))
    monkeypatch.setattr(migration, "CURRENT_SCHEMA_VERSION", 3)
    monkeypatch.setattr(enhtrain._version, "__version__", "0.3.0")


# --- schema_version ------------------------------------------------------------------------------------------


def test_current_schema_version_is_consumed_without_warning(cwd: Path) -> None:
    config = _write(cwd / "c.yaml", f"schema_version: {CURRENT_SCHEMA_VERSION}\nexperiment: {{name: current}}\n")
    data, caught = _compose_quietly(config)
    assert "schema_version" not in data
    assert data["experiment"]["name"] == "current"
    assert caught == []


def test_schema_version_is_never_passed_to_jsonargparse(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "c.yaml", f"schema_version: {CURRENT_SCHEMA_VERSION}\nexperiment: {{name: current}}\n")
    code, out, err = _run(["config", "explain", "--config", str(config), "--json"], capsys)
    assert code == 0, err
    assert not [row for row in json.loads(out) if row["key"].startswith("schema_version")]


def test_schema_version_1_is_the_legacy_script_format(cwd: Path) -> None:
    config = _write(cwd / "old.yaml", "schema_version: 1\nmodel:\n  lr: 0.1\ntrainer: {max_epochs: 1}\n")
    with pytest.warns(ConfigDeprecationWarning, match=r"model\.\* -> model\.init_args\.\*") as caught:
        composed = compose([str(config)])
    assert len(caught) == 1
    assert composed.data["model"] == {"class_path": LEGACY_MODEL_CLASS, "init_args": {"lr": 0.1}}
    assert composed.data["seed_everything"] == 42
    assert composed.sources[("model", "init_args", "lr")] == f"{config}:3"


def test_newer_schema_version_is_refused(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "new.yaml", f"trainer: {{max_epochs: 1}}\nschema_version: {CURRENT_SCHEMA_VERSION + 1}\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:2: schema_version {CURRENT_SCHEMA_VERSION + 1} is newer",
                   "upgrade enhtrain")


@pytest.mark.parametrize("value", ["two", "'2'", "0", "-1", "1.5", "true", "null", "[2]"])
def test_malformed_schema_version_is_refused(value: str, cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "bad.yaml", f"schema_version: {value}\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:1: schema_version must be a whole number from 1 to {CURRENT_SCHEMA_VERSION}")


# --- the table of key changes ------------------------------------------------------------------------------------


def test_every_table_entry_has_a_sample() -> None:
    assert {change.old for change in KEY_CHANGES} == set(SAMPLES)
    assert all(change.schema <= CURRENT_SCHEMA_VERSION for change in KEY_CHANGES)


def test_the_table_holds_the_changes_from_the_script_format_only() -> None:
    # No key of enhtrain's own format has changed since 0.1.0: every entry turns schema version 1 into 2.
    assert {change.schema for change in KEY_CHANGES} == {LEGACY_SCHEMA_VERSION + 1}


def test_the_versions_page_lists_every_table_entry() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (?:`([^`]+)`|\(removed\)) \| (\d+) \| ([\d.]+) \|", VERSIONS_PAGE.read_text(),
                      re.MULTILINE)
    assert [(old, new or None, int(schema), until) for old, new, schema, until in rows] == [
        (change.old, change.new, change.schema, change.until) for change in KEY_CHANGES
    ]


def _next_release(change: KeyChange) -> str:
    major, minor = (int(p) for p in change.until.split("."))
    return f"{major}.{minor + 1}.0"


@pytest.mark.parametrize("change", KEY_CHANGES, ids=lambda c: c.old)
def test_old_key_works_with_a_deprecation_warning(change: KeyChange, cwd: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enhtrain._version, "__version__", f"{change.until}.9")
    sample = SAMPLES[change.old]
    config = _write(cwd / "old.yaml", "schema_version: 1\n" + sample.text)
    with pytest.warns(ConfigDeprecationWarning) as caught:
        composed = compose([str(config)])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{config}:{sample.line}: " in message
    assert f"enhtrain {_next_release(change)[:-2]} refuses the old keys" in message
    assert f"enhtrain config migrate {config}" in message
    assert (caught[0].filename, caught[0].lineno) == (str(config), sample.line)
    if change.new is None:
        assert f"{config}:{sample.line}: {sample.old} removed ({change.hint})" in message
        assert sample.old.rsplit(".", 1)[-1] not in yaml.safe_dump(composed.data)
    else:
        assert f"{config}:{sample.line}: {change.old} -> {change.new}" in message
        assert _get(composed.data, sample.new) == sample.value
        leaf = next(path for path in composed.sources if path[: len(sample.new.split("."))] == tuple(
            sample.new.split(".")))
        assert composed.sources[leaf] == f"{config}:{sample.line}"


@pytest.mark.parametrize("change", KEY_CHANGES, ids=lambda c: c.old)
def test_old_key_past_its_last_release_is_refused(change: KeyChange, cwd: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(enhtrain._version, "__version__", _next_release(change))
    sample = SAMPLES[change.old]
    config = _write(cwd / "old.yaml", "schema_version: 1\n" + sample.text)
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    old, new = sample.first or (sample.old, sample.new)
    fix = f"write '{new}' instead" if new else "delete the key"
    line = assert_refused(code, err, f"{config}:{sample.line}: '{old}'", fix,
                          f"refused since enhtrain {_next_release(change)[:-2]}", f"enhtrain config migrate {config}")
    assert f"renamed to '{new}'" in line if new else "was removed" in line


def test_a_legacy_file_past_the_last_release_names_its_first_old_key(cwd: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(enhtrain._version, "__version__", "0.3.0")
    code, _, err = _run(["config", "explain", "--config", str(LEGACY)], capsys)
    assert_refused(code, err, f"{LEGACY}:3: 'seed' was renamed to 'seed_everything' and is refused since enhtrain 0.3",
                   "write 'seed_everything' instead", f"enhtrain config migrate {LEGACY}")
    only_version = _write(cwd / "v1.yaml", "schema_version: 1\ntrainer: {max_epochs: 1}\n")
    code, _, err = _run(["config", "explain", "--config", str(only_version)], capsys)
    assert_refused(code, err, f"{only_version}: the legacy format of a plain Lightning script (schema version 1) is "
                   "refused since enhtrain 0.3", "enhtrain config migrate")


def test_old_key_in_a_file_of_the_current_schema_is_refused(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "c.yaml", f"schema_version: {CURRENT_SCHEMA_VERSION}\nlogging:\n  name: x\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:3: 'logging.name' is not a key of schema version {CURRENT_SCHEMA_VERSION}",
                   "became 'experiment.name' in version 2", "write 'experiment.name' instead")


def test_old_and_new_key_both_set_are_refused(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "c.yaml", "seed: 1\nseed_everything: 2\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:1: both 'seed' (deprecated) and 'seed_everything' are set",
                   "keep only 'seed_everything'")


def test_enhtrain_keys_in_a_file_of_schema_version_1_are_refused(cwd: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "c.yaml", "schema_version: 1\nexperiment: {name: x}\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:2: 'experiment' is a key of an enhtrain config, but this file says "
                   "schema_version: 1", f"write schema_version: {CURRENT_SCHEMA_VERSION}")


# --- keys renamed or removed by a later schema version (none yet: a hypothetical version 3) --------------------


@pytest.mark.usefixtures("future_schema")
def test_a_renamed_key_works_with_a_deprecation_warning(cwd: Path) -> None:
    config = _write(cwd / "old.yaml", "trainer: {max_epochs: 1}\nexperiment:\n  title: old-name\n  notes: hi\n")
    with pytest.warns(ConfigDeprecationWarning) as caught:
        composed = compose([str(config)])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert messages[0].startswith(f"'experiment.title' at {config}:3 is deprecated: write 'experiment.name' instead")
    assert "enhtrain 0.4 refuses the old key" in messages[0]
    assert messages[1].startswith(f"'experiment.notes' at {config}:4 is deprecated and ignored")
    assert [(w.filename, w.lineno) for w in caught] == [(str(config), 3), (str(config), 4)]
    assert composed.data["experiment"] == {"name": "old-name"}
    assert composed.sources[("experiment", "name")] == f"{config}:3"


@pytest.mark.usefixtures("future_schema")
def test_a_renamed_key_past_its_last_release_is_refused(cwd: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(enhtrain._version, "__version__", "0.4.0")
    config = _write(cwd / "old.yaml", "experiment:\n  title: old-name\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:2: 'experiment.title' was renamed to 'experiment.name' and is refused since "
                   "enhtrain 0.4", "write 'experiment.name' instead", f"enhtrain config migrate {config}")


@pytest.mark.usefixtures("future_schema")
def test_a_renamed_key_in_a_file_of_its_schema_version_is_refused(cwd: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(cwd / "v2.yaml", "schema_version: 2\nexperiment:\n  title: v2\n")
    with pytest.warns(ConfigDeprecationWarning, match="experiment.title"):
        assert compose([str(old)]).data["experiment"]["name"] == "v2"
    config = _write(cwd / "v3.yaml", "schema_version: 3\nexperiment:\n  title: v3\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:3: 'experiment.title' is not a key of schema version 3",
                   "write 'experiment.name' instead")


@pytest.mark.usefixtures("future_schema")
def test_a_renamed_key_and_its_new_key_both_set_are_refused(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "c.yaml", "experiment:\n  title: a\n  name: b\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:2: both 'experiment.title' (deprecated) and 'experiment.name' are set")


@pytest.mark.usefixtures("future_schema")
def test_interpolations_follow_a_renamed_key(cwd: Path) -> None:
    config = _write(cwd / "c.yaml", "experiment:\n  title: abc\n  description: run ${experiment.title}\n")
    with pytest.warns(ConfigDeprecationWarning):
        data = compose([str(config)]).data
    assert data["experiment"]["description"] == "run abc"


@pytest.mark.usefixtures("future_schema")
def test_old_keys_in_an_extended_file_are_migrated_and_named(cwd: Path) -> None:
    _write(cwd / "base.yaml", "experiment:\n  title: base\n")
    child = _write(cwd / "child.yaml", "extends: base.yaml\nexperiment: {description: child}\n")
    with pytest.warns(ConfigDeprecationWarning, match=r"base\.yaml:2"):
        data = compose([str(child)]).data
    assert data["experiment"] == {"name": "base", "description": "child"}


# --- the legacy script format ------------------------------------------------------------------------------------


def test_legacy_config_is_recognised_and_converted_with_one_warning() -> None:
    data, caught = _compose_quietly(LEGACY)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(LEGACY) in message and (caught[0].filename, caught[0].lineno) == (str(LEGACY), 3)
    assert "is in the legacy format of a plain Lightning script (schema version 1" in message
    for change in (
        ":3: seed -> seed_everything",
        f":6: model.class_path: {LEGACY_MODEL_CLASS} added",
        ":6: model.* -> model.init_args.* (input_dim, hidden_dims, num_classes, lr, weight_decay, micro_batch_size)",
        f":14: data.class_path: {LEGACY_DATA_CLASS} added",
        ":14: data.* -> data.init_args.* (dataset, batch_size, val_fraction, test_fraction, num_workers, seed)",
        ":29: logging.csv_dir -> experiment.root_dir",
        ":30: logging.name -> experiment.name",
        ":29: experiment.loggers: {csv: {}, tensorboard: null} added",
        ":34: callbacks.checkpoint -> experiment.checkpoint",
        ":37: callbacks.checkpoint.dirpath removed",
        ":39: callbacks.* -> experiment.callbacks.* (early_stopping, lr_monitor)",
        ":19: interpolation ${seed} -> ${seed_everything}",
        "enhtrain 0.3 refuses the old keys",
        f"enhtrain config migrate {LEGACY} -o NEW.yaml",
    ):
        assert change in message, change
    assert all(line.startswith(f"  - {LEGACY}:") for line in message.splitlines()[1:-1])
    legacy = yaml.safe_load(LEGACY.read_text())
    assert set(data) == {"seed_everything", "model", "data", "trainer", "experiment"}
    assert data["seed_everything"] == legacy["seed"]
    assert data["model"] == {"class_path": LEGACY_MODEL_CLASS, "init_args": legacy["model"]}
    assert data["data"] == {"class_path": LEGACY_DATA_CLASS, "init_args": {**legacy["data"], "seed": legacy["seed"]}}
    assert data["trainer"] == legacy["trainer"]
    checkpoint = {k: v for k, v in legacy["callbacks"]["checkpoint"].items() if k != "dirpath"}
    assert data["experiment"] == {
        "name": legacy["logging"]["name"],
        "root_dir": legacy["logging"]["csv_dir"],
        "loggers": {"csv": {}, "tensorboard": None},
        "checkpoint": checkpoint,
        "callbacks": {"early_stopping": legacy["callbacks"]["early_stopping"],
                      "lr_monitor": legacy["callbacks"]["lr_monitor"]},
    }


def test_the_conversion_follows_the_table() -> None:
    # Each key of the legacy file is where the first matching table entry puts it, and nowhere else.
    legacy = yaml.safe_load(LEGACY.read_text())
    converted, _ = _compose_quietly(LEGACY)

    def leaves(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if isinstance(value, dict) and value:
            return [leaf for key, item in value.items() for leaf in leaves(item, (*path, key))]
        return [path]

    used = set()
    for leaf in leaves(legacy, ()):
        change = next((c for c in KEY_CHANGES if all(
            part in ("*", key) for part, key in zip(c.old.split("."), leaf, strict=False)
        ) and len(leaf) >= len(c.old.split("."))), None)
        if change is None:
            assert leaf[0] == "trainer" and _get(converted, ".".join(leaf)) == _get(legacy, ".".join(leaf))
            continue
        used.add(change.old)
        old = change.old.split(".")
        if change.new is None:
            continue
        new = [leaf[len(old) - 1] if part == "*" else part for part in change.new.split(".")]
        moved = ".".join([*new, *leaf[len(old):]])
        expected = _get(legacy, ".".join(leaf))
        assert _get(converted, moved) == (legacy["seed"] if expected == "${seed}" else expected), moved
    assert used == {change.old for change in KEY_CHANGES} - {"logging.*"}


@pytest.mark.parametrize(("data", "legacy"), [
    ({"seed": 1}, True),
    ({"logging": {"csv_dir": "x"}, "model": {"lr": 0.1}}, True),
    ({"schema_version": 1, "model": {"lr": 0.1}}, True),
    ({"schema_version": 2, "seed": 1}, False),
    ({"schema_version": True, "seed": 1}, False),
    ({"seed_everything": 1, "model": {"class_path": "a.B"}}, False),
    ({"model": {"lr": 0.1}}, False),
    ({"seed": 1, "experiment": {}}, False),
    ({"seed": 1, "model": {"init_args": {}}}, False),
])
def test_legacy_signature(data: dict[str, Any], legacy: bool) -> None:
    assert is_legacy_script_config(data) is legacy


def test_legacy_defaults_follow_the_script(cwd: Path) -> None:
    # No `seed`: the script seeds with 42; no `logging.name`: CSVLogger's lightning_logs.
    config = _write(cwd / "l.yaml", "logging: {csv_dir: out}\nmodel: {lr: 0.1}\n")
    data, caught = _compose_quietly(config)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{config}: seed_everything: 42 added" in message
    assert f"{config}:1: experiment.name: lightning_logs added" in message
    assert data["seed_everything"] == 42
    assert data["experiment"]["name"] == "lightning_logs"
    assert data["model"] == {"class_path": LEGACY_MODEL_CLASS, "init_args": {"lr": 0.1}}


@pytest.mark.parametrize("section", ["model", "data", "logging", "callbacks"])
def test_legacy_sections_must_be_mappings(section: str, cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(cwd / "l.yaml", f"seed: 1\n{section}: 3\n")
    code, _, err = _run(["config", "explain", "--config", str(config)], capsys)
    assert_refused(code, err, f"{config}:2: '{section}' must be a mapping in the legacy script format", "not int")


@pytest.mark.slow
def test_fit_on_the_legacy_config_prints_the_warning_once(cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "enhtrain", "fit", "--config", str(LEGACY), "--experiment.name", "converted",
         "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"],
        cwd=cwd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("ConfigDeprecationWarning") == 1, result.stderr
    assert result.stderr.count("is in the legacy format of a plain Lightning script") == 1
    assert f"{LEGACY}:3: seed -> seed_everything" in result.stderr
    assert (cwd / "runs" / "legacy" / "converted" / "version_0" / "checkpoints").is_dir()


# --- enhtrain config migrate -------------------------------------------------------------------------------------


def test_migrate_writes_the_converted_config_with_comments(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["config", "migrate", str(LEGACY), "-o", "new.yaml"], capsys)
    assert code == 0, err
    assert out == ""
    assert "seed -> seed_everything" in err and "wrote new.yaml" in err
    text = (cwd / "new.yaml").read_text()
    comments = [line for line in LEGACY.read_text().splitlines() if line.startswith("#")]
    assert comments and all(line in text for line in comments)
    assert yaml.safe_load(text)["schema_version"] == CURRENT_SCHEMA_VERSION
    assert not [p for p in cwd.iterdir() if p.name.startswith(".enhtrain-tmp-")]

    migrated, caught = _compose_quietly(cwd / "new.yaml")
    assert caught == []
    on_the_fly, _ = _compose_quietly(LEGACY)
    assert migrated == on_the_fly


@pytest.mark.usefixtures("future_schema")
def test_migrate_keeps_comments_of_renamed_keys(cwd: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _write(cwd / "old.yaml", "# my run\nexperiment:\n  title: a  # the name\n  notes: hi\n")
    monkeypatch.setattr(enhtrain._version, "__version__", "9.9.0")  # converting works past the last release
    code, out, err = _run(["config", "migrate", "old.yaml"], capsys)
    assert code == 0, err
    assert out.startswith("# my run\nschema_version: 3\n")
    assert re.search(r"^  name: a +# the name$", out, re.MULTILINE), out
    assert yaml.safe_load(out)["experiment"] == {"name": "a"}
    assert "experiment.title -> experiment.name" in err and "experiment.notes dropped" in err


def test_migrate_keeps_comments_of_legacy_keys(cwd: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _write(cwd / "old.yaml", "# my run\nseed: 3  # the seed\nmodel:\n  lr: 0.1  # step size\n")
    monkeypatch.setattr(enhtrain._version, "__version__", "9.9.0")
    code, out, err = _run(["config", "migrate", "old.yaml"], capsys)
    assert code == 0, err
    assert out.startswith(f"# my run\nschema_version: {CURRENT_SCHEMA_VERSION}\n")
    assert re.search(r"^seed_everything: 3 +# the seed$", out, re.MULTILINE), out
    assert re.search(r"^    lr: 0.1 +# step size$", out, re.MULTILINE), out
    assert "old.yaml:2: seed -> seed_everything" in err


def test_migrate_to_stdout_with_dash(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["config", "migrate", str(LEGACY), "-o", "-"], capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["model"]["class_path"] == LEGACY_MODEL_CLASS


def test_migrate_refuses_to_overwrite_its_input(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(cwd / "old.yaml", LEGACY.read_text())
    (cwd / "sub").mkdir()
    for output in ("old.yaml", "./sub/../old.yaml"):
        code, _, err = _run(["config", "migrate", "old.yaml", "-o", output], capsys)
        assert_refused(code, err, f"-o {output} is the input file old.yaml", "--in-place")
    assert old.read_text() == LEGACY.read_text()

    code, _, err = _run(["config", "migrate", "old.yaml", "--in-place"], capsys)
    assert code == 0, err
    assert yaml.safe_load(old.read_text())["schema_version"] == CURRENT_SCHEMA_VERSION

    code, _, err = _run(["config", "migrate", "old.yaml", "--in-place", "-o", "x.yaml"], capsys)
    assert_refused(code, err, "give either -o x.yaml or --in-place, not both")


def test_migrate_a_missing_file(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["config", "migrate", "missing.yaml", "-o", "new.yaml"], capsys)
    assert_refused(code, err, "config file 'missing.yaml' not found: check the path")
    assert not (cwd / "new.yaml").exists()


def test_migrate_an_unwritable_output(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["config", "migrate", str(LEGACY), "-o", "no/such/folder/new.yaml"], capsys)
    assert_refused(code, err, "cannot write 'no/such/folder/new.yaml'", "check that the folder exists")


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "give the config file to convert"),
    (["a.yaml", "b.yaml"], "unexpected argument 'b.yaml'"),
    (["a.yaml", "-o"], "-o needs a file name"),
    (["a.yaml", "--output="], "--output needs a file name"),
    (["a.yaml", "--in-place=yes"], "--in-place takes no value (got 'yes')"),
    (["a.yaml", "--force"], "unknown option '--force'"),
    (["a.yaml", "--x\ny"], "unknown option '--x\\ny'"),
])
def test_migrate_bad_arguments(args: list[str], fragment: str, cwd: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["config", "migrate", *args], capsys)
    assert_refused(code, err, fragment)


@pytest.mark.parametrize("form", [["--output=new.yaml"], ["--out", "new.yaml"], ["--outp=new.yaml"], ["-onew.yaml"]])
def test_migrate_output_forms_name_the_output(form: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(cwd / "old.yaml", LEGACY.read_text())
    code, _, err = _run(["config", "migrate", "old.yaml", *form], capsys)
    assert code == 0, err
    assert "wrote new.yaml" in err
    assert yaml.safe_load((cwd / "new.yaml").read_text())["schema_version"] == CURRENT_SCHEMA_VERSION
    assert old.read_text() == LEGACY.read_text()


def test_migrate_in_place_keeps_the_mode(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(cwd / "old.yaml", LEGACY.read_text())
    old.chmod(0o640)
    code, _, err = _run(["config", "migrate", "old.yaml", "--in-place"], capsys)
    assert code == 0, err
    assert old.stat().st_mode & 0o777 == 0o640
    assert yaml.safe_load(old.read_text())["schema_version"] == CURRENT_SCHEMA_VERSION


@pytest.mark.parametrize("option", [["--in-place"], ["-o", "target.yaml"]])
def test_migrate_refuses_a_read_only_file(option: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(cwd / "old.yaml", LEGACY.read_text())
    target = _write(cwd / "target.yaml", "mine: 1\n")
    for path in (old, target):
        path.chmod(0o444)
    code, _, err = _run(["config", "migrate", "old.yaml", *option], capsys)
    name = "old.yaml" if option == ["--in-place"] else "target.yaml"
    assert_refused(code, err, f"{option[0]} '{name}' is read-only: make it writable")
    assert old.read_text() == LEGACY.read_text() and target.read_text() == "mine: 1\n"
    assert old.stat().st_mode & 0o777 == 0o444
    assert sorted(p.name for p in cwd.iterdir()) == ["old.yaml", "target.yaml"]


def test_migrate_refuses_to_write_through_a_link(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(cwd / "old.yaml", LEGACY.read_text())
    mine = _write(cwd / "mine.yaml", "mine: 1\n")
    (cwd / "link.yaml").symlink_to("mine.yaml")
    code, _, err = _run(["config", "migrate", "old.yaml", "-o", "link.yaml"], capsys)
    assert_refused(code, err, "-o 'link.yaml' is a symbolic link")
    assert (cwd / "link.yaml").is_symlink() and mine.read_text() == "mine: 1\n"


def test_migrate_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--help"]) == 0
    assert "migrate" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "enhtrain config migrate OLD.yaml" in capsys.readouterr().out
    assert main(["config", "migrate", "--help"]) == 0
    assert "--in-place" in capsys.readouterr().out
