"""A Lightning user's first hour: a run with every default left out, re-run, resumed and validated; a real terminal."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import pty
import runpy
import struct
import subprocess
import sys
import termios
import time
import warnings
from pathlib import Path

import pyte
import pytest
import yaml

from in_process import run_main

# Every default left out: no seed_everything (LightningCLI's default `true` draws one), no experiment section.
MINIMAL = {
    "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0,
                "enable_model_summary": False},
    "model": {"class_path": "enhtrain.models.MLPClassifier", "init_args": {"hidden_dims": [8]}},
    "data": {"class_path": "enhtrain.data.DatasetDataModule", "init_args": {"dataset": "digits"}},
}
RUN = Path("runs") / "default" / "version_0"


def _snapshot(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(run.rglob("*")) if p.name != ".lock"}


def test_a_run_with_every_default_left_out_re_runs_resumes_and_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "minimal.yaml").write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    fit = ("fit", "--config", "minimal.yaml", "--experiment.resume", "auto")
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")  # what seed_everything(None) draws
    assert run_main(capsys, *fit)[0] == 0
    run = tmp_path / RUN
    assert json.loads((run / "metadata.json").read_text())["seed"] == {"value": 7, "drawn": True}
    assert yaml.safe_load((run / "config.yaml").read_text())["seed_everything"] == 7
    assert not (run / "profiler").exists()
    # The same command again, with nothing to draw 7 from: `true` against the drawn 7 is no change, and the
    # finished run is left byte for byte as it was, with no empty folder added.
    monkeypatch.delenv("PL_GLOBAL_SEED")
    before = _snapshot(run)
    code, out, err = run_main(capsys, *fit)
    assert code == 0, err
    assert "is finished" in out and "differs" not in err
    assert _snapshot(run) == before
    # Trained further: the only change is the one asked for, and the run continues with the seed it drew.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_main(capsys, *fit, "--trainer.max_epochs", "2", "--experiment.allow_config_change", "1")
    assert code == 0, err
    [changed] = [str(w.message) for w in caught if "changed config" in str(w.message)]
    assert "max_epochs" in changed and "seed_everything" not in changed
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["seed"] == {"value": 7, "drawn": True}
    assert meta["global_step"] == 4 and len(meta["resumes"]) == 1
    assert os.environ.get("PL_GLOBAL_SEED") == "7"
    # validate and test from the run's checkpoint: no warning about enhtrain's own callback state, and folders
    # appear only when something is written into them (loggers write; nothing is checkpointed or profiled).
    for subcommand in ("validate", "test"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, out, err = run_main(capsys, subcommand, "--config", "minimal.yaml", "--ckpt_path",
                                      str(run / "checkpoints" / "last.ckpt"), "--experiment.name", subcommand)
        assert code == 0, err
        assert not [w for w in caught if "Please add the following callbacks" in str(w.message)]
        [other] = (tmp_path / "runs" / subcommand).iterdir()
        assert sorted(p.name for p in other.iterdir()) == [".lock", "config.yaml", "logs", "metadata.json"]


def _in_terminal(args: list[str], cwd: Path, columns: int = 110, lines: int = 45) -> bytes:
    """Run ``args`` in a pseudo-terminal of ``columns`` x ``lines``; return all it wrote there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("ENHTRAIN_PLAIN_PROGRESS", "PL_GLOBAL_SEED")}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines))
    proc = subprocess.Popen(args, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env,
                            start_new_session=True)
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(leader)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    return bytes(out)


def test_in_a_real_terminal_the_summary_stays_on_screen_and_the_noise_is_gone(tmp_path: Path) -> None:
    (tmp_path / "minimal.yaml").write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    raw = _in_terminal([sys.executable, "-m", "enhtrain", "fit", "--config", "minimal.yaml"], tmp_path)
    screen = pyte.Screen(110, 45)
    stream = pyte.ByteStream(screen)
    stream.feed(raw)
    shown = [line.rstrip() for line in screen.display]
    text = "\n".join(shown)
    # What the end of a run says is on screen, in order, below the final bar.
    rows = {key: next(i for i, line in enumerate(shown) if line.startswith(key))
            for key in ("Epoch 0/0", "`Trainer.fit` stopped", "Run summary", "Run directory: ", "Last checkpoint: ")}
    assert rows["Epoch 0/0"] < rows["Run summary"] < rows["Run directory: "] < rows["Last checkpoint: "], text
    assert sum(line.startswith("Epoch 0/0") for line in shown) == 1, text
    assert "v_num: 0 " in text and "v_num: on_0" not in text
    # Lightning's litlogger tip and torch's LeafSpec warning are gone; Lightning's own lines stay.
    assert b"litlogger" not in raw and b"LeafSpec" not in raw
    assert "Seed set to 0" in text


# A script written for LightningCLI, with EnhancedCLI dropped in; and one in subclass mode (classes chosen by flags).
DROP_IN = """
from enhtrain.cli import EnhancedCLI
from enhtrain.data import DatasetDataModule
from enhtrain.models import MLPClassifier

EnhancedCLI(MLPClassifier, DatasetDataModule)
"""
SUBCLASS_MODE = "from enhtrain.cli import EnhancedCLI\n\nEnhancedCLI()\n"


def _run_script(path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    seeds: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seeds.append(record.getMessage())  # type: ignore[method-assign]
    seed_log = logging.getLogger("lightning.fabric.utilities.seed")
    level = seed_log.level
    seed_log.addHandler(handler)
    seed_log.setLevel(logging.INFO)
    try:
        with pytest.raises(SystemExit) as ended:
            runpy.run_path(str(path), run_name="__main__")
    finally:
        seed_log.removeHandler(handler)
        seed_log.setLevel(level)
    out, err = capsys.readouterr()
    assert not seeds, f"seeded before the error or help: {seeds}"
    return ended.value.code if isinstance(ended.value.code, int) else 1, out, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trainer.max_epochs", "abc"], "enhtrain: error: flag --trainer.max_epochs: trainer.max_epochs: invalid "),
        (["--model.dropout", "7"], "enhtrain: error: cannot build the run: `dropout` must be in [0, 1), got 7.0."),
        (["--experiment.profiler", "simpel"], "enhtrain: error: flag --experiment.profiler: unknown profiler 'simpel' "
                                              "(did you mean 'simple'?)"),
    ],
    ids=["bad_value", "refused_while_built", "unknown_name"],
)
def test_a_drop_in_script_with_an_experiment_ends_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(DROP_IN, encoding="utf-8")
    config = {**MINIMAL, "model": {"hidden_dims": [8]}, "data": {"dataset": "digits"}, "experiment": {"name": "s"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code, out, err = _run_script(tmp_path / "train.py", monkeypatch, capsys, "fit", "--config", "exp.yaml", *flags)
    assert code == 2
    assert err.splitlines() == [err.strip()] and err.startswith(message), err
    assert "usage:" not in out + err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_class_help_flag_prints_the_class_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(SUBCLASS_MODE, encoding="utf-8")
    for args in (["--model.help", "enhtrain.models.MLPClassifier"], ["--env", "dev", "--model.help", "MLPClassifier"]):
        code, out, err = _run_script(tmp_path / "train.py", monkeypatch, capsys, "fit", *args)
        assert code == 0, err
        assert "--model.hidden_dims HIDDEN_DIMS" in out and "--model.dropout DROPOUT" in out, out
    for args in (["--model.help", "enhtrain.models.MLPClassifier"], ["--data.help", "enhtrain.data.DatasetDataModule"]):
        code, out, err = run_main(capsys, "fit", "--env", "dev", *args)
        assert code == 0, err
        option = "--model.dropout DROPOUT" if args[0] == "--model.help" else "--data.batch_size BATCH_SIZE"
        assert f"Help for {args[0]}=" in out and option in out, out
