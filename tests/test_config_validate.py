"""``enhtrain config validate``: every check of ``fit``, nothing built, the same message as ``fit``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enhtrain import ConfigError, hookimpl
from enhtrain.testing import CliResult, write_tiny_config

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
# The configs of configs/ that `fit` trains as they are (the folders hold pieces that they extend).
FULL_CONFIGS = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "validate", "checkpoint": None}})
    return tmp_path


def error_line(result: CliResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("enhtrain: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_full_configs_are_listed() -> None:
    assert "quickstart.yaml" in FULL_CONFIGS and len(FULL_CONFIGS) >= 3


@pytest.mark.parametrize("name", FULL_CONFIGS)
def test_shipped_config_is_valid(name: str, work: Path, enhtrain_cli: Callable[..., CliResult]) -> None:
    result = enhtrain_cli("config", "validate", "--config", f"configs/{name}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"config OK: configs/{name}")
    assert not (work / "runs").exists()
    assert not list(work.rglob("*.ckpt"))


def test_env_and_flags_are_composed(work: Path, enhtrain_cli: Callable[..., CliResult]) -> None:
    result = enhtrain_cli("config", "validate", "--config", "configs/quickstart.yaml", "--env", "dev",
                          "--trainer.max_epochs", "2", "--experiment.name", "checked")
    assert result.exit_code == 0, result.stderr
    assert "(env dev)" in result.stdout
    assert not (work / "runs").exists()


def test_nothing_is_trained_or_written(
    work: Path, enhtrain_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch import Trainer

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("config validate trained")

    monkeypatch.setattr(Trainer, "fit", refuse)
    scratch = work / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    result = enhtrain_cli("config", "validate", "--config", "tiny.yaml", "--experiment.loggers", "[csv, tensorboard]")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "config OK: tiny.yaml\n"
    # The model, data and Trainer were built around a throwaway run directory, which is gone.
    assert not (work / "runs").exists() and not list(scratch.iterdir())


# (config text, extra flags): each bad in its own way; `fit` and `config validate` must print the same line.
BAD_CASES = {
    "unknown_trainer_key": ("trainer:\n  max_epochz: 3\n", []),
    "model_init_arg_type": ("model:\n  init_args:\n    hidden_dims: lots\n", []),
    "unknown_logger": ("experiment:\n  loggers: {unknown_logger: {}}\n", []),
    "broken_yaml": ("trainer:\n  max_epochs: [1\n", []),
    "flag_unknown_key": ("{}\n", ["--trainer.limit_train_batchez", "2"]),
    "experiment_typo": ("experiment:\n  nmae: x\n", []),
    # Refused while the classes are built: by the model's own check, and by the Trainer.
    "model_refuses_value": ("{}\n", ["--model.init_args.dropout", "7"]),
    "model_refuses_value_in_file": ("model:\n  init_args:\n    dropout: 7\n", []),
    "accelerator_missing": ("trainer:\n  accelerator: tpu\n", []),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_gives_fits_message(case: str, work: Path, enhtrain_cli: Callable[..., CliResult]) -> None:
    text, flags = BAD_CASES[case]
    (work / "bad.yaml").write_text(text, encoding="utf-8")
    args = ["--config", "tiny.yaml", "--config", "bad.yaml", *flags]
    checked = enhtrain_cli("config", "validate", *args)
    trained = enhtrain_cli("fit", *args)
    assert checked.exit_code == trained.exit_code == 2, (checked.stderr, trained.stderr)
    assert error_line(checked) == error_line(trained)
    assert "Traceback" not in checked.stderr
    assert checked.stdout == ""
    assert not (work / "runs").exists()


class _RejectingPlugin:
    @hookimpl
    def enhtrain_validate_config(self, config: dict[str, Any]) -> None:
        if config["trainer"]["max_epochs"] > 2:
            raise ConfigError("at most 2 epochs on this cluster; lower it", key="trainer.max_epochs")


def test_plugin_check_rejects(work: Path, enhtrain_cli: Callable[..., CliResult],
                              enhtrain_plugin: Callable[..., str]) -> None:
    enhtrain_plugin(_RejectingPlugin(), name="epoch_limit")
    args = ["--config", "tiny.yaml", "--trainer.max_epochs", "3"]
    checked = enhtrain_cli("config", "validate", *args)
    trained = enhtrain_cli("fit", *args)
    assert checked.exit_code == trained.exit_code == 2
    line = error_line(checked)
    assert line == error_line(trained)
    assert "flag --trainer.max_epochs:" in line and "at most 2 epochs on this cluster" in line
    assert "(from plugin epoch_limit)" in line
    assert enhtrain_cli("config", "validate", "--config", "tiny.yaml").exit_code == 0
    assert not (work / "runs").exists()


def test_help_and_print_config(enhtrain_cli: Callable[..., CliResult]) -> None:
    result = enhtrain_cli("config", "validate", "--help")
    assert result.exit_code == 0 and result.stdout.startswith("usage: enhtrain config validate")
    result = enhtrain_cli("config", "validate", "--config", "x.yaml", "--print_config")
    assert result.exit_code == 2
    assert "--print_config is not an option here" in error_line(result)
