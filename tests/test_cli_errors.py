"""Bad input to ``enhtrain``: exit status 2, one short message naming file and key, no traceback, no run dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from enhtrain.commands import main

TINY = """\
seed_everything: 1
trainer: {max_epochs: 1, limit_train_batches: 2, limit_val_batches: 1, accelerator: cpu}
model:
  class_path: enhtrain.models.MLPClassifier
  init_args: {hidden_dims: [16]}
data:
  class_path: enhtrain.data.DatasetDataModule
  init_args: {dataset: digits, batch_size: 32}
experiment: {name: tiny}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


CASES = [
    ("trainer:\n  max_epochz: 3\n", [], "bad.yaml:2: trainer.max_epochz: unknown key"),
    ("trainer:\n  max_epochs: three\n", [], "bad.yaml:2: trainer.max_epochs: invalid value 'three': expected int"),
    ("model:\n  class_path: enhtrain.models.Nope\n", [],
     "bad.yaml:2: model.class_path: cannot use 'enhtrain.models.Nope'"),
    ("trainer:\n  max_epochs: [3\n", [], "bad.yaml:3:1:"),
    ("experiment:\n  nme: x\n", [], "bad.yaml:2: experiment.nme: unknown key 'nme'"),
    ("experiment:\n  loggers: {nosuch: {}}\n", [], "experiment.loggers.nosuch: unknown logger 'nosuch'"),
    ("experiment:\n  callbacks: {grad_norm: {every: 3}}\n", [],
     "experiment.callbacks.grad_norm: unknown option 'every'"),
    ("experiment:\n  profiler: nosuch\n", [], "experiment.profiler: unknown profiler 'nosuch'"),
    ("model:\n  init_args: {micro_batch_size: -3}\n", [], "micro_batch_size"),
    ("x: !!python/object/apply:os.system ['true']\n", [], "not allowed"),
    ("", ["--trainer.max_epochs", "x"], "flag --trainer.max_epochs: trainer.max_epochs: invalid value 'x'"),
    ("", ["--trainer.nope", "1"], "flag --trainer.nope: trainer.nope: unknown key"),
    ("", ["--env", "nowhere"], "unknown environment 'nowhere'"),
    ("", ["--experiment.checkpoint.mode", "max", "--experiment.checkpoint.monitor", "null"],
     "'mode' is set but 'monitor' is not"),
    ("trainer:\n  max_epochs: ${oops}\n", [], "cannot resolve interpolation in 'trainer.max_epochs'"),
    ("model:\n  init_args: {micro_batch_size: 64}\n", [], "micro_batch_size (64) is larger than"),
    ("", ["--data.init_args.batch_size", "8", "--model.init_args.micro_batch_size", "9"], "larger than"),
    ("", ["--trainer.gradient_clip_val", "1.0"], "set model.init_args.gradient_clip_val instead"),
    ("trainer:\n  accumulate_grad_batches: 4\n", [], "accumulate_grad_batches does not apply"),
    ("", ["--trainer.precision", "16-mixed"], "not supported on CPU"),
    ("trainer:\n  strategy: fsdp\n", [], "needs GPUs"),
    ("trainer:\n  devices: 0\n", [], "trainer.devices must be"),
    ("experiment:\n  loggers: {csv: {name: other}}\n", [], "experiment.loggers.csv.name: set by enhtrain"),
]


@pytest.mark.parametrize(("text", "flags", "fragment"), CASES)
def test_bad_input(workdir: Path, capsys: pytest.CaptureFixture[str], text: str, flags: list[str],
                   fragment: str) -> None:
    (workdir / "bad.yaml").write_text(text)
    code, _, err = run_main(["fit", "--config", "tiny.yaml", "--config", "bad.yaml", *flags], capsys)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err
    assert err.startswith("enhtrain: error: ")
    assert len(err.strip().splitlines()) == 1
    assert not (workdir / "runs").exists()


def test_missing_config_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["fit", "--config", "nowhere.yaml"], capsys)
    assert code == 2
    assert "config file 'nowhere.yaml' not found" in err


def test_unknown_info_arguments(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["templates", "show", "nope"], capsys)[0] == 2
    assert run_main(["plugins", "--bogus"], capsys)[0] == 2
    assert run_main(["config", "nope"], capsys)[0] == 2


def test_subprocess_has_no_traceback(workdir: Path) -> None:
    (workdir / "bad.yaml").write_text("trainer:\n  max_epochs: three\n")
    proc = subprocess.run(
        [sys.executable, "-m", "enhtrain", "fit", "--config", "tiny.yaml", "--config", "bad.yaml"],
        capture_output=True, text=True, cwd=workdir, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "bad.yaml:2: trainer.max_epochs" in proc.stderr
    assert not (workdir / "runs").exists()


def test_debug_shows_traceback(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENHTRAIN_DEBUG", "1")

    code, _, err = run_main(["fit", "--config", "nowhere.yaml"], capsys)

    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("enhtrain: error: ")
    assert "nowhere.yaml" in err.splitlines()[-1]


def test_unwritable_root_is_a_clear_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = workdir / "runs-file"
    blocker.write_text("a file where the run root should be\n")
    code, _, err = run_main(["fit", "--config", "tiny.yaml", "--experiment.root_dir", str(blocker)], capsys)
    assert code == 2
    assert "cannot create" in err and "experiment.root_dir" in err
    assert blocker.read_text() == "a file where the run root should be\n"


def test_existing_runs_untouched_by_a_failed_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keep = workdir / "runs" / "tiny" / "version_0"
    keep.mkdir(parents=True)
    (keep / "metadata.json").write_text("{}")
    (workdir / "bad.yaml").write_text("model:\n  init_args: {micro_batch_size: -3}\n")
    code, _, _ = run_main(["fit", "--config", "tiny.yaml", "--config", "bad.yaml"], capsys)
    assert code == 2
    assert sorted(p.name for p in (workdir / "runs" / "tiny").iterdir()) == ["version_0"]
    assert (keep / "metadata.json").read_text() == "{}"
