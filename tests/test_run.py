"""A run on disk: directory, config, metadata, logs, checkpoints and manifest, versions, resume."""

from __future__ import annotations

import csv
import json
import multiprocessing
from pathlib import Path

import pytest
import torch
import yaml

from enhtrain.checkpoints.manifest import Manifest
from enhtrain.commands import main
from enhtrain.run.directory import create_run_dir
from enhtrain.testing import write_tiny_config
from in_process import run_main

# Four training steps through micro-batches of 8 rows, checkpoints monitoring the validation loss.
TINY = {
    "seed_everything": 3,
    "trainer": {"limit_train_batches": 4, "limit_val_batches": 2},
    "model": {"init_args": {"hidden_dims": [16], "micro_batch_size": 8}},
    "data": {"init_args": {"batch_size": 16}},
    "experiment": {"name": "tiny", "tags": ["unit"], "checkpoint": {"monitor": "val/loss"}},
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_tiny_config(tmp_path / "tiny.yaml", TINY)
    return tmp_path


def fit(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    return run_main(capsys, "fit", "--config", "tiny.yaml", *flags)


def test_fit_writes_a_complete_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fit(capsys)
    assert code == 0, err
    run = workdir / "runs" / "tiny" / "version_0"
    # No profiler was chosen: no profiler/ folder.
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoints", "config.yaml", "logs", "metadata.json"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["experiment"]["name"] == "tiny"
    assert config["model"]["init_args"]["micro_batch_size"] == 8
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["name"] == "tiny" and meta["version"] == "version_0"
    assert meta["tags"] == ["unit"]
    assert set(meta["versions"]) >= {"enhtrain", "lightning", "torch", "python"}
    assert meta["versions"]["torch"] == torch.__version__
    assert {"commit", "dirty"} <= set(meta["git"])
    assert len(meta["config_hash"]) == 64
    assert meta["command"][1:4] == ["fit", "--config", "tiny.yaml"]
    assert meta["metrics"]["val/loss"] > 0
    assert meta["duration_s"] > 0 and meta["end_time"] >= meta["start_time"]
    rows = list(csv.DictReader((run / "logs" / "csv" / "metrics.csv").open()))
    assert any(r.get("train/loss") for r in rows) and any(r.get("val/loss") for r in rows)
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    manifest = Manifest(run / "checkpoints")
    files = {e["file"] for e in manifest.entries}
    assert "last.ckpt" in files and manifest.data["best"] in files
    for name in files:
        assert manifest.verify(name) is None
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["enhtrain"]["run_name"] == "tiny"
    assert ckpt["enhtrain"]["config_hash"] == meta["config_hash"]
    assert ckpt["enhtrain"]["global_step"] == 4
    assert "Run directory" in out


def test_versions_increase(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        assert fit(capsys, "--experiment.checkpoint", "null")[0] == 0
    assert sorted(p.name for p in (workdir / "runs" / "tiny").iterdir()) == ["version_0", "version_1"]
    assert not (workdir / "runs" / "tiny" / "version_1" / "checkpoints").exists()


def _make(root: str) -> str:
    return create_run_dir(root, "same").version


def test_concurrent_runs_get_distinct_versions(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        versions = pool.map(_make, [str(tmp_path)] * 8)
    assert len(set(versions)) == 8
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == sorted(versions)


def test_named_version_clash_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fit(capsys, "--experiment.version", "v1", "--experiment.checkpoint", "null")[0] == 0
    code, _, err = fit(capsys, "--experiment.version", "v1")
    assert code == 2 and "already exists" in err


def test_print_config_round_trips(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", "tiny.yaml", "--env", "dev", "--print_config"]) == 0
    first = capsys.readouterr().out
    printed = yaml.safe_load(first)
    assert printed["experiment"]["name"] == "tiny"
    assert printed["trainer"]["limit_val_batches"] == 5  # the dev overlay is applied
    (workdir / "printed.yaml").write_text(first)
    assert main(["fit", "--config", "printed.yaml", "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == printed
    assert not (workdir / "runs").exists()


def test_resume_auto_continues_the_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fit(capsys)[0] == 0
    code, _, err = fit(capsys, "--experiment.resume", "auto", "--experiment.allow_config_change", "true",
                       "--trainer.max_epochs", "2")
    assert code == 0, err
    assert sorted(p.name for p in (workdir / "runs" / "tiny").iterdir()) == ["version_0"]
    meta = json.loads((workdir / "runs" / "tiny" / "version_0" / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["global_step"] == 8
    assert meta["resumes"][0]["checkpoint"].endswith(".ckpt")


def test_resume_with_changed_config_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fit(capsys)[0] == 0
    code, _, err = fit(capsys, "--experiment.resume", "auto", "--trainer.max_epochs", "2")
    assert code == 2
    assert "max_epochs" in err and "allow_config_change" in err


def test_resume_auto_without_runs_starts_fresh(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fit(capsys, "--experiment.resume", "auto")[0] == 0
    assert (workdir / "runs" / "tiny" / "version_0" / "metadata.json").is_file()


def test_templates_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "list"]) == 0
    listing = capsys.readouterr().out
    assert {"quickstart", "classification", "regression"} <= {line.split()[0] for line in listing.splitlines()}
    assert main(["templates", "show", "regression"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["init_args"]["task"] == "regression"


def test_last_ckpt_holds_the_state_training_ended_with(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Checkpoints every second epoch: Lightning itself saves nothing at the end of the third one.
    code, _, err = fit(capsys, "--trainer.max_epochs", "3", "--experiment.checkpoint",
                       "{monitor: val/loss, every_n_epochs: 2}")
    assert code == 0, err
    run = workdir / "runs" / "tiny" / "version_0"
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["global_step"] == 12
    manifest = Manifest(run / "checkpoints")
    steps = {e["file"]: e["step"] for e in manifest.entries}
    assert steps["last.ckpt"] == 12 and manifest.data["last"] == "last.ckpt"
    assert manifest.verify("last.ckpt") is None
    assert sorted(steps.values())[:-1] == [8]  # the one checkpoint of epoch 1, and last.ckpt
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 12 and ckpt["enhtrain"]["global_step"] == 12
    assert meta["last_checkpoint"].endswith("last.ckpt")


def test_resuming_a_finished_run_trains_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fit(capsys, "--trainer.max_epochs", "2")[0] == 0
    run = workdir / "runs" / "tiny" / "version_0"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for resume in ("auto", "version_0", "runs/tiny/version_0/checkpoints/last.ckpt"):
        code, out, err = fit(capsys, "--trainer.max_epochs", "2", "--experiment.resume", resume)
        assert code == 0, err
        assert out.splitlines() == [
            "enhtrain: run 'runs/tiny/version_0' is finished (completed after 2 epoch(s), at step 8); nothing to "
            "resume. To train it further, raise --trainer.max_epochs or --trainer.max_steps with "
            "--experiment.allow_config_change true; to start a new run, leave out experiment.resume"
        ]
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # A lower limit trains nothing either; a changed config is still refused first.
    code, out, _ = fit(capsys, "--trainer.max_epochs", "1", "--experiment.resume", "auto",
                       "--experiment.allow_config_change", "true")
    assert code == 0 and "is finished" in out
    code, _, err = fit(capsys, "--trainer.max_epochs", "3", "--experiment.resume", "auto")
    assert code == 2 and "allow_config_change" in err
    # A raised limit trains on, in the same run.
    code, _, err = fit(capsys, "--trainer.max_epochs", "3", "--experiment.resume", "auto",
                       "--experiment.allow_config_change", "true")
    assert code == 0, err
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["global_step"] == 12 and len(meta["resumes"]) == 1
    assert sorted(p.name for p in (workdir / "runs" / "tiny").iterdir()) == ["version_0"]
