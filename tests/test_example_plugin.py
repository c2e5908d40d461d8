"""Tests of the example third-party plugin in ``plugins/enhtrain-example``, installed into the environment.

Install it with ``pip install -e plugins/enhtrain-example``. Its own tests, ``plugins/enhtrain-example/tests``, as
``enhtrain plugins new`` writes them, run here too.
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from enhtrain import plugins
from enhtrain.testing import tiny_config
from installing import run_pytest

pytestmark = pytest.mark.timeout(120)

DISTRIBUTION = "enhtrain-example"
HOOKS = [
    "enhtrain_env_overlays",
    "enhtrain_register_callbacks",
    "enhtrain_register_loggers",
    "enhtrain_register_profilers",
    "enhtrain_register_templates",
    "enhtrain_validate_config",
]

CONFIG = tiny_config(
    {
        "seed_everything": 3,
        "trainer": {"max_epochs": 2, "limit_train_batches": 3, "limit_val_batches": 2},
        "model": {"init_args": {"input_dim": 64, "hidden_dims": [16], "num_classes": 10}},
        "experiment": {
            "name": "example-plugin",
            "loggers": {"tensorboard": None, "jsonl": {}},
            "callbacks": {"epoch_timer": {}},
            "profiler": "wall_clock",
            "checkpoint": None,
        },
    }
)


@pytest.fixture(autouse=True)
def fresh_plugins() -> Any:
    """Load the plugins afresh for each test, whatever other tests registered."""
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Write :data:`CONFIG` to ``tmp_path/example.yaml``."""
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_the_example_plugins_own_tests_pass() -> None:
    folder = Path(__file__).resolve().parent.parent / "plugins" / "enhtrain-example"

    result = run_pytest(folder)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "7 passed" in result.stdout


def test_example_distribution_is_installed() -> None:
    dist = metadata.distribution(DISTRIBUTION)
    entry_points = {ep.name: ep.value for ep in dist.entry_points if ep.group == "enhtrain"}

    assert entry_points == {"example": "enhtrain_example.plugin"}
    assert "enhtrain" in (dist.requires or [])


def test_plugins_json_lists_example(enhtrain_cli: Any) -> None:
    result = enhtrain_cli("plugins", "--json")

    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    row = rows["example"]
    assert row["distribution"] == DISTRIBUTION
    assert row["version"] == metadata.version(DISTRIBUTION)
    assert row["builtin"] is False
    assert row["error"] is None
    assert row["hooks"] == HOOKS
    assert row["registered"] == {
        "callbacks": ["epoch_timer"],
        "loggers": ["jsonl"],
        "profilers": ["wall_clock"],
        "templates": ["example"],
    }

    text = enhtrain_cli("plugins").stdout
    assert f"example ({DISTRIBUTION} {metadata.version(DISTRIBUTION)})\n" in text
    assert "  profilers: wall_clock\n" in text


def test_fit_with_example_components(enhtrain_cli: Any, config_file: Path) -> None:
    result = enhtrain_cli("fit", "--config", str(config_file))

    assert result.exit_code == 0, result.stderr
    [run] = result.run_dirs()
    assert run.relative_to(result.cwd) == Path("runs/example-plugin/version_0")

    rows = read_jsonl(run / "logs" / "jsonl" / "metrics.jsonl")
    epoch_times = [row["train/epoch_time"] for row in rows if "train/epoch_time" in row]
    val_losses = [row["val/loss"] for row in rows if "val/loss" in row]
    assert len(epoch_times) == 2
    assert all(0 < t < 60 for t in epoch_times)
    assert len(val_losses) == 2
    assert all(isinstance(v, float) for v in val_losses)
    assert all(isinstance(row["step"], int) for row in rows)
    assert [row["step"] for row in rows if "train/epoch_time" in row] == [3, 6]

    hparams = json.loads((run / "logs" / "jsonl" / "hparams.json").read_text(encoding="utf-8"))
    assert hparams["config"]["experiment"]["loggers"]["jsonl"] == {}
    assert hparams["config"]["trainer"]["max_epochs"] == 2

    [report] = (run / "profiler").iterdir()
    assert report.name == "fit-wall_clock.txt"
    text = report.read_text(encoding="utf-8")
    assert text.startswith("FIT Wall-clock profiler report")
    assert "run_training_epoch" in text
    assert "[Callback]EpochTimer.on_train_epoch_end" in text

    assert not (run / "logs" / "tensorboard").exists()
    meta = json.loads((run / "metadata.json").read_text(encoding="utf-8"))
    assert meta["status"] == "completed"
    assert {
        "name": "example",
        "distribution": DISTRIBUTION,
        "version": metadata.version(DISTRIBUTION),
        "error": None,
    } in meta["plugins"]


def test_template_is_listed_shown_and_trains(enhtrain_cli: Any, tmp_path: Path) -> None:
    listing = enhtrain_cli("templates", "list")
    shown = enhtrain_cli("templates", "show", "example")

    assert listing.exit_code == 0, listing.stderr
    [line] = [line for line in listing.stdout.splitlines() if line.startswith("example ")]
    assert "an MLP on digits for 2 epochs" in line
    assert f"[example ({DISTRIBUTION} " in line
    assert shown.exit_code == 0, shown.stderr
    packaged = (
        resources.files("enhtrain_example").joinpath("templates/example.yaml").read_text(encoding="utf-8")
    )
    assert shown.stdout == packaged
    template = yaml.safe_load(shown.stdout)
    assert template["trainer"]["max_epochs"] == 2
    assert template["model"]["class_path"] == "enhtrain.models.MLPClassifier"
    assert template["data"]["init_args"]["dataset"] == "digits"
    assert template["experiment"]["callbacks"] == {"epoch_timer": {}}
    assert "jsonl" in template["experiment"]["loggers"]
    assert template["experiment"]["profiler"] == "wall_clock"

    path = tmp_path / "from_template.yaml"
    path.write_text(shown.stdout, encoding="utf-8")
    result = enhtrain_cli(
        "fit",
        "--config",
        str(path),
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.enable_model_summary",
        "false",
    )

    assert result.exit_code == 0, result.stderr
    [run] = result.run_dirs()
    assert run.parent.name == "example"
    rows = read_jsonl(run / "logs" / "jsonl" / "metrics.jsonl")
    assert sum("train/epoch_time" in row for row in rows) == 2
    assert (run / "profiler" / "fit-wall_clock.txt").is_file()
    assert json.loads((run / "metadata.json").read_text(encoding="utf-8"))["status"] == "completed"


def test_env_example_applies_the_plugin_overlay(enhtrain_cli: Any, config_file: Path) -> None:
    with_env = enhtrain_cli("config", "explain", "--json", "--config", str(config_file), "--env", "example")
    without = enhtrain_cli("config", "explain", "--json", "--config", str(config_file))

    assert with_env.exit_code == 0, with_env.stderr
    rows = {row["key"]: row for row in json.loads(with_env.stdout)}
    assert rows["trainer.max_epochs"]["value"] == 1
    source = rows["trainer.max_epochs"]["source"]
    assert "env overlay 'example'" in source
    assert str(Path("enhtrain_example", "envs", "example.yaml")) in source
    assert rows["trainer.limit_train_batches"]["value"] == 3
    plain = {row["key"]: row for row in json.loads(without.stdout)}
    assert plain["trainer.max_epochs"]["value"] == 2
    assert "env overlay" not in plain["trainer.max_epochs"]["source"]


def test_validate_hook_rejects_forbidden_tag(enhtrain_cli: Any, config_file: Path) -> None:
    result = enhtrain_cli("fit", "--config", str(config_file), "--experiment.tags", "[forbidden]")

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "experiment.tags" in result.stderr
    assert "'forbidden' is reserved by the enhtrain-example plugin" in result.stderr
    assert "remove it from experiment.tags" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (config_file.parent / "runs").exists()


def test_validate_hook_accepts_other_tags(enhtrain_cli: Any, config_file: Path) -> None:
    from enhtrain_example import plugin

    plugin.enhtrain_validate_config({"experiment": {"tags": ["allowed", "forbidden-ish"]}})
    plugin.enhtrain_validate_config({"trainer": {}})
    explained = enhtrain_cli(
        "config", "explain", "--json", "--config", str(config_file), "--experiment.tags", "[allowed]"
    )
    assert explained.exit_code == 0, explained.stderr


# --- the components on their own ------------------------------------------------------------------------


def test_jsonl_logger_writes_lines_and_merges_hparams(tmp_path: Path) -> None:
    from argparse import Namespace

    import torch
    from enhtrain_example.loggers import JsonlLogger

    logger = JsonlLogger(log_dir=str(tmp_path / "jsonl"), name="run", version="v1", flush_every=2)
    logger.log_metrics({"a": torch.tensor(1.5), "b": float("nan")}, step=0)
    logger.log_metrics({"a": 2.0}, step=1)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_hyperparams(Namespace(batch_size=8))
    logger.finalize("success")

    assert (logger.name, logger.version, logger.log_dir) == ("run", "v1", str(tmp_path / "jsonl"))
    assert read_jsonl(tmp_path / "jsonl" / "metrics.jsonl") == [
        {"step": 0, "a": 1.5, "b": "nan"},
        {"step": 1, "a": 2.0},
    ]
    assert json.loads((tmp_path / "jsonl" / "hparams.json").read_text()) == {"lr": 0.1, "batch_size": 8}
    with pytest.raises(ValueError, match="flush_every"):
        JsonlLogger(log_dir=str(tmp_path), name="run", version="v1", flush_every=0)


def test_wall_clock_profiler_totals_and_report(tmp_path: Path) -> None:
    from enhtrain_example.profilers import WallClockProfiler

    profiler = WallClockProfiler(dirpath=str(tmp_path), filename="wall")
    profiler.setup(stage="fit")
    for _ in range(3):
        with profiler.profile("step"):
            sum(range(1000))
    profiler.stop("never_started")
    profiler.describe()

    assert profiler.calls == {"step": 3}
    assert profiler.totals["step"] > 0
    report = (tmp_path / "fit-wall.txt").read_text(encoding="utf-8")
    assert report.splitlines()[0] == "FIT Wall-clock profiler report"
    assert report.splitlines()[2].split()[1:] == ["3", "step"]


def test_epoch_timer_state_round_trips() -> None:
    from enhtrain_example.callbacks import EpochTimer

    timer = EpochTimer()
    timer.times = [0.5, 0.25]
    restored = EpochTimer()
    restored.load_state_dict(timer.state_dict())

    assert restored.times == [0.5, 0.25]
    assert restored.metric_name == "train/epoch_time"
