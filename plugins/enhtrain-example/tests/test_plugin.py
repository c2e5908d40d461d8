"""Tests of the example plugin, with enhtrain's pytest fixtures (``enhtrain.testing``).

``enhtrain_plugin`` registers the plugin on a plugin manager of the test's own, so every test but
``test_installed_plugin_is_listed``, which checks the installed entry point, passes whether or not the
distribution is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enhtrain import plugins
from enhtrain.testing import write_tiny_config

from enhtrain_example import plugin

DISTRIBUTION = "enhtrain-example"


def test_installed_plugin_is_listed(enhtrain_plugins: Any, enhtrain_cli: Any) -> None:
    enhtrain_plugins(autoload=True)

    result = enhtrain_cli("plugins", "--json")

    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    row = rows["example"]
    assert row["distribution"] == DISTRIBUTION
    assert row["error"] is None
    assert row["registered"] == {
        "callbacks": ["epoch_timer"],
        "loggers": ["jsonl"],
        "profilers": ["wall_clock"],
        "templates": ["example"],
    }


def test_plugin_registers_its_components(enhtrain_plugin: Any) -> None:
    enhtrain_plugin(plugin, name="example")

    registered = plugins.get_registry().by_plugin()["example"]

    assert registered == {
        "callbacks": ["epoch_timer"],
        "loggers": ["jsonl"],
        "profilers": ["wall_clock"],
        "templates": ["example"],
    }


def test_fit_with_the_plugin_components(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="example")
    experiment = {
        "name": "example-test",
        "checkpoint": None,
        "loggers": {"tensorboard": None, "jsonl": {}},
        "callbacks": {"epoch_timer": {}},
        "profiler": "wall_clock",
    }
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": experiment})

    result = enhtrain_cli("fit", "--config", "tiny.yaml")

    assert result.exit_code == 0, result.stderr
    [run] = result.run_dirs()
    assert json.loads((run / "metadata.json").read_text(encoding="utf-8"))["status"] == "completed"
    lines = (run / "logs" / "jsonl" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [row["step"] for row in rows if "train/epoch_time" in row] == [2]
    assert any("val/loss" in row for row in rows)
    hparams = json.loads((run / "logs" / "jsonl" / "hparams.json").read_text(encoding="utf-8"))
    assert hparams["config"]["experiment"]["name"] == "example-test"
    report = (run / "profiler" / "fit-wall_clock.txt").read_text(encoding="utf-8")
    assert report.startswith("FIT Wall-clock profiler report")
    assert "run_training_epoch" in report


def test_unknown_option_is_refused(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="example")
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "example-test"}})

    result = enhtrain_cli("fit", "--config", "tiny.yaml", "--experiment.callbacks.epoch_timer", "{every: 2}")

    assert result.exit_code == 2
    assert "experiment.callbacks.epoch_timer: unknown option 'every'" in result.stderr
    assert result.run_dirs() == []


def test_template_is_shown_and_composes(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="example")

    shown = enhtrain_cli("templates", "show", "example")
    (tmp_path / "from_template.yaml").write_text(shown.stdout, encoding="utf-8")
    explained = enhtrain_cli("config", "explain", "--json", "--config", "from_template.yaml")

    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == (plugin.TEMPLATE_DIR / "example.yaml").read_text(encoding="utf-8")
    assert explained.exit_code == 0, explained.stderr
    values = {row["key"]: row["value"] for row in json.loads(explained.stdout)}
    assert values["experiment.name"] == "example"
    assert values["experiment.loggers.csv"] == {}  # the default loggers stay unless the template removes them
    assert values["experiment.loggers.tensorboard"] is None  # removed by the template


def test_env_overlay_applies(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="example")
    write_tiny_config(tmp_path / "tiny.yaml", {"trainer": {"max_epochs": 3}})

    result = enhtrain_cli("config", "explain", "--json", "--config", "tiny.yaml", "--env", "example")

    assert result.exit_code == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["trainer.max_epochs"]["value"] == 1
    assert "env overlay 'example'" in rows["trainer.max_epochs"]["source"]


def test_check_accepts_other_tags_and_refuses_forbidden(
    enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path
) -> None:
    plugin.enhtrain_validate_config({"experiment": {"tags": ["allowed", "forbidden-ish"]}})
    enhtrain_plugin(plugin, name="example")
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "example-test"}})

    result = enhtrain_cli("fit", "--config", "tiny.yaml", "--experiment.tags", "[forbidden]")

    assert result.exit_code == 2
    assert "flag --experiment.tags: the tag 'forbidden' is reserved by the enhtrain-example plugin" in result.stderr
    assert "(from plugin example)" in result.stderr
    assert result.run_dirs() == []
