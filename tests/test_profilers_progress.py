"""Profilers by name with reports in ``profiler/``, progress output, loggers given the Lightning way."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import RichProgressBar

from enhtrain.callbacks.progress import PlainProgressBar, default_progress_callbacks
from enhtrain.commands import main
from enhtrain.profilers import WindowedPyTorchProfiler
from enhtrain.testing import write_tiny_config

# Six training steps, so that a profiler window and the progress lines have room; no checkpoints.
TINY = {
    "seed_everything": 5,
    "trainer": {"limit_train_batches": 6, "limit_val_batches": 2},
    "model": {"init_args": {"hidden_dims": [16], "micro_batch_size": 8}},
    "data": {"init_args": {"batch_size": 16}},
    "experiment": {"name": "prof", "checkpoint": None},
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_tiny_config(tmp_path / "tiny.yaml", TINY)
    return tmp_path


def run_dir(workdir: Path) -> Path:
    return workdir / "runs" / "prof" / "version_0"


@pytest.mark.parametrize(("spec", "report"), [("simple", "fit-simple.txt"), ("advanced", "fit-advanced.txt")])
def test_profiler_by_name_reports_into_run(workdir: Path, spec: str, report: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", "tiny.yaml", "--experiment.profiler", spec]) == 0, capsys.readouterr().err
    text = (run_dir(workdir) / "profiler" / report).read_text()
    assert "run_training_epoch" in text or "training_step" in text


def test_profiler_mapping_with_options_and_window(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", "--config", "tiny.yaml", "--experiment.profiler",
                 "{name: pytorch, start_step: 2, end_step: 4, export_to_chrome: false}"])
    assert code == 0, capsys.readouterr().err
    reports = list((run_dir(workdir) / "profiler").iterdir())
    assert reports, "the pytorch profiler wrote no report"
    text = "".join(p.read_text() for p in reports if p.suffix == ".txt")
    assert "Self CPU time total" in text


def test_pytorch_profiler_window_validation() -> None:
    with pytest.raises(ValueError, match="empty"):
        WindowedPyTorchProfiler(start_step=5, end_step=5)
    profiler = WindowedPyTorchProfiler(start_step=2, end_step=4)
    assert (profiler.start_step, profiler.end_step) == (2, 4)


def test_bad_profiler_option_is_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", "tiny.yaml", "--experiment.profiler", "{name: simple, bogus: 1}"]) == 2
    assert "experiment.profiler: unknown option 'bogus'" in capsys.readouterr().err
    assert not (workdir / "runs").exists()


def test_plain_progress_lines_when_not_a_terminal(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", "tiny.yaml", "--trainer.callbacks+",
                 "enhtrain.callbacks.progress.PlainProgressBar", "--trainer.callbacks.refresh_rate", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch 0 step 2/6" in out and "epoch 0 step 6/6" in out
    assert "validation epoch 0 val/loss=" in out


def test_progress_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENHTRAIN_PLAIN_PROGRESS", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert isinstance(default_progress_callbacks()[0], RichProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert isinstance(default_progress_callbacks()[0], PlainProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("ENHTRAIN_PLAIN_PROGRESS", "1")
    assert isinstance(default_progress_callbacks()[0], PlainProgressBar)


def test_lightning_way_logger_still_works(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A folder given to a trainer.logger must lie inside the run: experiment.version names the run's folder.
    code = main(["fit", "--config", "tiny.yaml", "--experiment.version", "version_0", "--trainer.logger",
                 "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(run_dir(workdir) / "mine")])
    assert code == 0, capsys.readouterr().err
    mine = list((run_dir(workdir) / "mine").rglob("metrics.csv"))
    assert len(mine) == 1
    assert any(row.get("train/loss") for row in csv.DictReader(mine[0].open()))
    assert (run_dir(workdir) / "logs" / "csv" / "metrics.csv").is_file()


def test_missing_logger_package_names_the_extra(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert main(["fit", "--config", "tiny.yaml", "--experiment.loggers.wandb", "{offline: true}"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'enhtrain[wandb]'" in err
    assert not (workdir / "runs").exists()
