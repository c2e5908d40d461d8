"""The README's main job: ``python -m enhtrain fit --config configs/quickstart.yaml``, for real."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from enhtrain.commands import main

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name in ("configs",))


@pytest.mark.slow
def test_quickstart_trains_to_accuracy(tmp_path: Path) -> None:
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    env.pop("ENHTRAIN_RUN_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "enhtrain", "fit", "--config", str(REPO / "configs" / "quickstart.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "runs" / "quickstart" / "version_0"
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["metrics"]["val/acc"] >= 0.95
    header = next(csv.reader((run / "logs" / "csv" / "metrics.csv").open()))
    assert {"train/loss", "val/loss", "val/acc", "epoch", "step"} <= set(header)
    assert "Run summary" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_example_configs_compose(config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(config), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "enhtrain.models.MLPClassifier"
    assert printed["experiment"]["name"]


def test_project_overlay_beside_the_config(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(REPO / "configs" / "digits.yaml"), "--env", "ci", "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["max_epochs"] == 1
    assert "tensorboard" not in {k for k, v in printed["experiment"]["loggers"].items() if v is not None}
    assert printed["data"]["init_args"]["seed"] == 42  # ${seed_everything} resolved across files


@pytest.mark.parametrize("name", ["quickstart", "classification", "regression"])
def test_templates_compose(name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["templates", "show", name]) == 0
    (tmp_path / "t.yaml").write_text(capsys.readouterr().out)
    assert main(["fit", "--config", "t.yaml", "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["experiment"]["name"]
