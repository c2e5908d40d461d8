"""Resuming in real processes: exact resume, SIGTERM, kill -9 at random moments, refused checkpoints."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from enhtrain._io import TMP_PREFIX
from enhtrain.checkpoints.manifest import Manifest, sha256_file
from enhtrain.run.resume import newest_verified
from enhtrain.testing import write_tiny_config

# Micro-batching, an LR scheduler stepped per epoch, and dropout (so the random state matters too). The sanity
# check, Lightning's default, draws random numbers before the resumed state is restored.
EXACT = {
    "seed_everything": 11,
    "trainer": {"limit_train_batches": 6, "limit_val_batches": 2, "num_sanity_val_steps": 2},
    "model": {"init_args": {"hidden_dims": [16], "micro_batch_size": 4, "dropout": 0.2}},
    "data": {"init_args": {"batch_size": 16}},
    "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
    "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1, "gamma": 0.5}},
    "experiment": {"name": "exact", "loggers": {"tensorboard": None}, "checkpoint": {"monitor": "val/loss"}},
}

# Full epochs of digits (79 batches each), a checkpoint every 10 steps.
KILL_EPOCHS = 3
KILL_STEPS = KILL_EPOCHS * 79
KILL = {
    "seed_everything": 5,
    "trainer": {
        "max_epochs": KILL_EPOCHS,
        "limit_train_batches": None,
        "limit_val_batches": 2,
        "num_sanity_val_steps": 2,
        "log_every_n_steps": 20,
    },
    "model": {"init_args": {"hidden_dims": [16], "micro_batch_size": 8}},
    "data": {"init_args": {"batch_size": 16}},
    "experiment": {"name": "kill", "loggers": {"tensorboard": None}, "checkpoint": {"every_n_train_steps": 10}},
}

# A process that imports enhtrain, Lightning and torch once, then forks one fresh process per request: each is
# a real process that can be killed, without paying the imports every time.
ZYGOTE = r"""
import json, os, sys
import sklearn.datasets
import lightning.pytorch
import enhtrain.cli
from enhtrain import plugins
from enhtrain.commands import main

plugins.get_registry()
sklearn.datasets.load_digits()
out = sys.stdout
out.write("ready\n")
out.flush()
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(request["cwd"])
            fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if "code" in request:
                exec(request["code"], {})
                code = 0
            else:
                code = main(request["argv"])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    out.write(json.dumps({"pid": pid}) + "\n")
    out.flush()
    _, status = os.waitpid(pid, 0)
    out.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
    out.flush()
"""


class Zygote:
    """Starts ``enhtrain`` commands as forked processes of one pre-imported Python process, one at a time."""

    def __init__(self, workdir: Path) -> None:
        env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("ENHTRAIN_RUN_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=workdir,
        )
        self.pid: int | None = None
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def start(self, cwd: Path, argv: list[str], log: Path, code: str | None = None) -> int:
        """Fork a process running ``enhtrain <argv>`` (or the Python ``code``); returns its pid.

        A process still running from an earlier call (a failed test) is killed first.
        """
        if self.pid is not None:
            self.kill()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request: dict[str, Any] = {"cwd": str(cwd), "argv": argv, "log": str(log)}
        if code is not None:
            request["code"] = code
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        self.pid = int(json.loads(self.proc.stdout.readline())["pid"])
        return self.pid

    def wait(self) -> int:
        """Wait for the running process; returns its exit status (negative: killed by that signal)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the zygote process died"
        self.pid = None
        return int(json.loads(line)["status"])

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the running process (if it has not ended already) and wait for it."""
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        return self.wait()

    def run(self, cwd: Path, argv: list[str], log: Path) -> int:
        """Run ``enhtrain <argv>`` to its end; returns its exit status."""
        self.start(cwd, argv, log)
        return self.wait()

    def close(self) -> None:
        """End the zygote process."""
        if self.pid is not None:
            self.kill()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    process = Zygote(tmp_path_factory.mktemp("zygote"))
    yield process
    process.close()


def _enhtrain(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    env.pop("ENHTRAIN_RUN_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "enhtrain", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def _state(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def test_exact_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "exact.yaml", EXACT)
    base = ["fit", "--config", "exact.yaml"]
    first = _enhtrain(tmp_path, *base, "--experiment.version", "split")
    straight = _enhtrain(tmp_path, *base, "--experiment.version", "straight", "--trainer.max_epochs", "2")
    _finish(first)
    resumed = _enhtrain(
        tmp_path,
        *base,
        "--experiment.resume",
        "split",
        "--experiment.allow_config_change",
        "true",
        "--trainer.max_epochs",
        "2",
    )
    _finish(straight)
    _finish(resumed)

    split = _state(tmp_path / "runs/exact/split/checkpoints/last.ckpt")
    whole = _state(tmp_path / "runs/exact/straight/checkpoints/last.ckpt")
    assert split["global_step"] == whole["global_step"] == 12
    assert split["state_dict"].keys() == whole["state_dict"].keys()
    for key, tensor in whole["state_dict"].items():
        assert torch.equal(split["state_dict"][key], tensor), key
    assert split["lr_schedulers"][0]["_last_lr"] == whole["lr_schedulers"][0]["_last_lr"] == [0.0025]
    for group_a, group_b in zip(split["optimizer_states"], whole["optimizer_states"], strict=True):
        for key, state in group_b["state"].items():
            assert torch.equal(group_a["state"][key]["exp_avg"], state["exp_avg"])

    # The resumed run continued the same directory and its CSV log kept the first part's rows.
    meta = json.loads((tmp_path / "runs/exact/split/metadata.json").read_text())
    assert meta["status"] == "completed" and len(meta["resumes"]) == 1
    rows = (tmp_path / "runs/exact/split/logs/csv/metrics.csv").read_text().splitlines()
    steps = {line.split(",")[1] for line in rows[1:]}
    assert {"0", "5", "6", "11"} <= steps
    whole_rows = (tmp_path / "runs/exact/straight/logs/csv/metrics.csv").read_text().splitlines()
    assert rows[0] == whole_rows[0]
    assert len(rows) == len(whole_rows)


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


def _temp_files(directory: Path) -> list[Path]:
    return list(directory.glob(TMP_PREFIX + "*")) if directory.is_dir() else []


def test_sigterm_saves_marks_interrupted_and_resume_auto_continues(zygote: Zygote, tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "kill.yaml", KILL)
    run = tmp_path / "runs/kill/version_0"
    # Long enough never to end on its own before the signal, however fast the machine.
    zygote.start(tmp_path, ["fit", "--config", "kill.yaml", "--trainer.max_epochs", "50"], tmp_path / "first.log")
    assert _wait_for(lambda: _saved_step(run / "checkpoints") >= 20, 120)
    assert zygote.kill(signal.SIGTERM) == 143, (tmp_path / "first.log").read_text()[-3000:]
    assert "stopped by SIGTERM" in (tmp_path / "first.log").read_text()

    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "interrupted"
    manifest = Manifest(run / "checkpoints")
    assert manifest.data["last"] == "last.ckpt" and manifest.verify("last.ckpt") is None
    saved = _state(run / "checkpoints/last.ckpt")
    assert saved["global_step"] == meta["global_step"] > 0
    assert saved["enhtrain"]["run_version"] == "version_0"

    args = [
        "fit",
        "--config",
        "kill.yaml",
        "--experiment.resume",
        "auto",
        "--trainer.max_epochs",
        "1",
        "--experiment.allow_config_change",
        "true",
    ]
    started = time.monotonic()
    code = zygote.run(tmp_path, args, tmp_path / "2.log")
    elapsed = time.monotonic() - started
    log = (tmp_path / "2.log").read_text()
    assert code == 0, log[-3000:]
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["global_step"] == max(79, saved["global_step"])
    if saved["global_step"] < 79:
        # The resumed process joined epoch 0 midway: its line times the part it trained, not the machine's uptime.
        done = [line for line in log.splitlines() if line.startswith("epoch 0 done in ")]
        assert len(done) == 1, log[-3000:]
        assert 0 < float(done[0].split()[4].removesuffix("s")) <= elapsed
    assert meta["resumes"][-1]["checkpoint"].endswith("last.ckpt")
    assert sorted(p.name for p in (tmp_path / "runs/kill").iterdir()) == ["version_0"]


def _saved_step(checkpoints: Path) -> int:
    return max((e.get("step", 0) for e in Manifest(checkpoints).entries), default=-1)


def test_kill_9_at_random_moments_always_resumes(zygote: Zygote, tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "kill.yaml", KILL)
    checkpoints = tmp_path / "runs/kill/version_0/checkpoints"
    argv = ["fit", "--config", "kill.yaml", "--experiment.resume", "auto"]
    rng = random.Random(1234)
    kills_during_save = 0
    resumed = 0
    for attempt in range(10):
        expected = newest_verified(checkpoints)[0] if checkpoints.is_dir() else None
        resumes_before = len(_meta(tmp_path).get("resumes", []))
        leftovers = set(_temp_files(checkpoints))
        # Kill points spread over the training whatever the machine's speed: once the saved step passes a
        # mark, either during the next save, or a moment later; every third process is killed at a random
        # moment soon after it starts, during its setup or its first steps.
        mark = (attempt + 1) * KILL_STEPS // 12
        zygote.start(tmp_path, argv, tmp_path / f"{attempt}.log")
        mode = ("save", "moment", "early")[attempt % 3]
        if mode == "early":
            time.sleep(rng.uniform(0.05, 1.0))
        else:
            assert _wait_for(lambda m=mark: _saved_step(checkpoints) >= m, 120), f"step {mark} never saved"
            if mode == "moment":
                time.sleep(rng.uniform(0.0, 0.05))
            elif _wait_for(lambda old=leftovers: bool(set(_temp_files(checkpoints)) - old), 2.0):
                kills_during_save += 1
        status = zygote.kill()
        log_path = tmp_path / f"{attempt}.log"
        log = log_path.read_text() if log_path.exists() else ""
        assert status in (-signal.SIGKILL, 0), log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        if len(_meta(tmp_path).get("resumes", [])) > resumes_before:
            # It resumed, from the newest checkpoint that verified when it started.
            resumed += 1
            assert expected is not None
            assert tmp_path / _meta(tmp_path)["resumes"][-1]["checkpoint"] == Path(expected)
        assert sorted(p.name for p in (tmp_path / "runs/kill").iterdir()) == ["version_0"]

    # A process whose kill came after it finished training on its own leaves a completed run: the last command
    # then resumes nothing and says so.
    finished_before = _meta(tmp_path).get("status") == "completed"
    code = zygote.run(tmp_path, argv, tmp_path / "final.log")
    final_log = (tmp_path / "final.log").read_text()
    assert code == 0, final_log[-3000:]
    meta = _meta(tmp_path)
    assert meta["status"] == "completed"
    assert meta["global_step"] == KILL_STEPS
    assert len(meta["resumes"]) == resumed + (0 if finished_before else 1)
    assert ("nothing to resume" in final_log) == finished_before, final_log[-3000:]
    assert resumed >= 6  # every process killed after a mark had resumed
    assert not _temp_files(checkpoints)
    # Saves come every 10 steps; a process that finished on its own before its kill may have saved at the end.
    assert KILL_STEPS // 10 * 10 <= _state(checkpoints / "last.ckpt")["global_step"] <= KILL_STEPS
    for entry in Manifest(checkpoints).entries:
        assert Manifest(checkpoints).verify(entry["file"]) is None
    print(
        f"resumed {resumed} of 9 times before the kill; kills during a save: {kills_during_save}; "
        f"finished before the last command: {finished_before}"
    )


def _meta(workdir: Path) -> dict[str, Any]:
    path = workdir / "runs/kill/version_0/metadata.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_kill_during_a_save_keeps_the_previous_file(zygote: Zygote, tmp_path: Path) -> None:
    """A save killed half-way leaves the old checkpoint whole and a temp file, which the next run removes."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    code = f"""
import pathlib, time, torch
from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO
io = AtomicCheckpointIO()
io.save_checkpoint({{"step": 1}}, {str(target)!r})
pathlib.Path("saved").touch()
deadline = time.monotonic() + 120
while not pathlib.Path("go").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
io.save_checkpoint({{"step": 2, "big": torch.zeros(300_000_000, dtype=torch.uint8)}}, {str(target)!r})
pathlib.Path("finished").touch()
"""
    zygote.start(tmp_path, [], tmp_path / "save.log", code=code)
    assert _wait_for(lambda: (tmp_path / "saved").exists(), 60), (tmp_path / "save.log").read_text()
    before = target.read_bytes()
    (tmp_path / "go").touch()
    assert _wait_for(lambda: any(p.stat().st_size > 1_000_000 for p in _temp_files(target.parent)), 60)
    assert zygote.kill() == -signal.SIGKILL
    assert not (tmp_path / "finished").exists()
    assert target.read_bytes() == before
    assert len(_temp_files(target.parent)) == 1
    assert torch.load(target, weights_only=True) == {"step": 1}

    from lightning.pytorch import Trainer

    from enhtrain.checkpoints.run_checkpoint import RunCheckpoint

    # An entry whose file a killed run had deleted is dropped too.
    manifest = Manifest(target.parent)
    manifest.add({"file": "last.ckpt", "sha256": sha256_file(target), "size": len(before), "step": 1})
    manifest.add({"file": "gone.ckpt", "sha256": "0" * 64, "size": 1, "step": 0})
    manifest.data["best"] = "gone.ckpt"
    manifest.save()
    callback = RunCheckpoint(dirpath=str(target.parent))
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    assert not _temp_files(target.parent)
    assert target.read_bytes() == before
    manifest = Manifest(target.parent)
    assert [e["file"] for e in manifest.entries] == ["last.ckpt"] and manifest.data["best"] is None


@pytest.fixture
def evil_marker() -> Iterator[Path]:
    marker = Path(f"/tmp/PWNED-{uuid.uuid4().hex}")
    yield marker
    assert not marker.exists(), "the pickled payload ran"


class Evil:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _bad_checkpoints(run_ckpts: Path, marker: Path) -> dict[str, Path]:
    """Write a truncated, a wrong-sha256 and a code-running checkpoint next to good ones."""
    good = run_ckpts / "last.ckpt"
    data = good.read_bytes()
    truncated = run_ckpts / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    tampered = run_ckpts / "tampered.ckpt"
    tampered.write_bytes(data)
    evil = run_ckpts / "evil.ckpt"
    torch.save({"x": Evil(marker), "state_dict": {}}, evil)
    manifest = Manifest(run_ckpts)
    entry = dict(manifest.entry("last.ckpt") or {})
    for path, step in ((truncated, 1000), (tampered, 1001)):
        manifest.add({**entry, "file": path.name, "step": step})
    manifest.save()
    tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    return {"truncated": truncated, "tampered": tampered, "evil": evil}


# Two training steps and the checkpoints of its one epoch, to tamper with.
TINY = {
    "seed_everything": 3,
    "model": {"init_args": {"hidden_dims": [16]}},
    "data": {"init_args": {"batch_size": 16}},
    "experiment": {"name": "bad", "loggers": {"tensorboard": None}},
}


@pytest.fixture(scope="module")
def bad_run(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("bad")
    write_tiny_config(workdir / "tiny.yaml", TINY)
    assert zygote.run(workdir, ["fit", "--config", "tiny.yaml"], workdir / "first.log") == 0
    return workdir


@pytest.fixture
def bad(bad_run: Path, evil_marker: Path) -> Iterator[dict[str, Path]]:
    ckpts = bad_run / "runs/bad/version_0/checkpoints"
    files = _bad_checkpoints(ckpts, evil_marker)
    yield files
    manifest = Manifest(ckpts)
    for path in files.values():
        path.unlink()
        manifest.remove(path.name)
    manifest.save()


def test_resume_auto_skips_corrupt_checkpoints(zygote: Zygote, bad_run: Path, bad: dict[str, Path]) -> None:
    workdir = bad_run
    ckpts = workdir / "runs/bad/version_0/checkpoints"
    log = workdir / "auto.log"
    args = [
        "fit",
        "--config",
        "tiny.yaml",
        "--experiment.resume",
        "auto",
        "--experiment.allow_config_change",
        "true",
        "--trainer.max_epochs",
        "2",
    ]
    assert zygote.run(workdir, args, log) == 0, log.read_text()[-3000:]
    text = " ".join(log.read_text().split())
    assert "skipping checkpoint runs/bad/version_0/checkpoints/tampered.ckpt: sha256 differs" in text
    assert "skipping checkpoint runs/bad/version_0/checkpoints/truncated.ckpt: size" in text
    meta = json.loads((workdir / "runs/bad/version_0/metadata.json").read_text())
    assert workdir / meta["resumes"][-1]["checkpoint"] == ckpts / "last.ckpt"
    assert meta["status"] == "completed" and meta["global_step"] == 4


@pytest.mark.parametrize("kind", ["truncated", "tampered", "evil"])
@pytest.mark.parametrize("how", ["ckpt_path", "resume"])
def test_named_bad_checkpoint_is_refused(
    zygote: Zygote, bad_run: Path, bad: dict[str, Path], kind: str, how: str
) -> None:
    workdir = bad_run
    path = bad[kind]
    before = sorted(p.name for p in (workdir / "runs/bad").iterdir())
    meta_before = (workdir / "runs/bad/version_0/metadata.json").read_text()
    flag = ["--ckpt_path", str(path)] if how == "ckpt_path" else ["--experiment.resume", str(path)]
    log = workdir / f"{how}-{kind}.log"
    assert zygote.run(workdir, ["fit", "--config", "tiny.yaml", *flag], log) == 2, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    message = [line for line in text.splitlines() if line.startswith("enhtrain: error:")]
    assert len(message) == 1, text[-3000:]
    assert str(path) in message[0]
    expected = {"truncated": "size", "tampered": "sha256", "evil": "--trust_checkpoint"}[kind]
    assert expected in message[0]
    assert sorted(p.name for p in (workdir / "runs/bad").iterdir()) == before
    assert (workdir / "runs/bad/version_0/metadata.json").read_text() == meta_before


def test_ckpt_path_with_pickled_objects_needs_trust(zygote: Zygote, bad_run: Path) -> None:
    workdir = bad_run
    checkpoint = torch.load(workdir / "runs/bad/version_0/checkpoints/last.ckpt", weights_only=True)
    checkpoint["extra"] = argparse.Namespace(note="harmless")
    torch.save(checkpoint, workdir / "pickled.ckpt")
    step = checkpoint["global_step"]
    args = ["fit", "--config", "tiny.yaml", "--ckpt_path", "pickled.ckpt", "--trainer.max_epochs", str(step // 2 + 1)]
    versions = sorted(p.name for p in (workdir / "runs/bad").iterdir())

    log = workdir / "untrusted.log"
    assert zygote.run(workdir, args, log) == 2, log.read_text()[-3000:]
    assert "pickled.ckpt' needs pickled Python objects" in log.read_text()
    assert "Traceback" not in log.read_text()
    assert sorted(p.name for p in (workdir / "runs/bad").iterdir()) == versions

    log = workdir / "trusted.log"
    assert zygote.run(workdir, [*args, "--trust_checkpoint"], log) == 0, log.read_text()[-3000:]
    new = sorted(set(p.name for p in (workdir / "runs/bad").iterdir()) - set(versions))
    assert len(new) == 1
    meta = json.loads((workdir / "runs/bad" / new[0] / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["global_step"] == step + 2


def test_resume_from_a_file_outside_a_run_is_refused(zygote: Zygote, bad_run: Path) -> None:
    workdir = bad_run
    outside = workdir / "copy.ckpt"
    outside.write_bytes((workdir / "runs/bad/version_0/checkpoints/last.ckpt").read_bytes())
    log = workdir / "outside.log"
    args = ["fit", "--config", "tiny.yaml", "--experiment.resume", "copy.ckpt"]
    assert zygote.run(workdir, args, log) == 2
    assert "enhtrain: error: experiment.resume: 'copy.ckpt' is not in the checkpoints/ folder of a run" in (
        log.read_text()
    )
    assert "use --ckpt_path copy.ckpt" in log.read_text()
