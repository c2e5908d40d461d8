"""Hostile runtime updates: a run is never ended by what it reads while it trains, and ``runs set`` never by its
arguments.

The corpus ``tests/bad_inputs/runtime/`` holds hostile ``runtime.yaml`` contents (``NN_name.yaml``: answered and
ignored by an in-process Trainer, which trains on with nothing applied) and hostile ``runs set/stop`` arguments
(``NN_name.args``: refused in one line with exit status 2, no run file created or changed). One live ``enhtrain
fit`` then gets what only a real process shows: a named pipe, links, an alias bomb, a secret, an answer file
linked out of the run, garbage in the lock and the manifest, and hypothesis-generated requests; it must
still finish ``completed``. A checkpoint whose runtime-update state is hostile is refused before anything is
written, and no JSON file the run wrote holds ``NaN``.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightning.pytorch.callbacks import Callback

from enhtrain._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from enhtrain.callbacks.runtime_updates import RuntimeUpdates
from enhtrain.checkpoints.manifest import Manifest
from enhtrain.commands import main
from enhtrain.config.runtime import ACK_FILE, RUNTIME_FILE, check_saved_state
from enhtrain.errors import CheckpointError
from enhtrain.models import MLPClassifier
from enhtrain.run.lock import RunLock
from enhtrain.run.runtime import read_ack, write_ack
from enhtrain.testing import write_tiny_config
from refusals import assert_refused
from test_runtime_updates import _loader, cli, launched, metadata

CORPUS = Path(__file__).resolve().parent / "bad_inputs" / "runtime"


def _number(path: Path) -> int:
    return int(path.name.split("_", 1)[0])


FILE_CASES = sorted(CORPUS.glob("[0-9]*_*.yaml"), key=_number)
ARG_CASES = sorted(CORPUS.glob("[0-9]*_*.args"), key=_number)


def header(path: Path) -> dict[str, list[str]]:
    """The ``# key: value`` lines at the top of a corpus file, by key."""
    fields: dict[str, list[str]] = {}
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(":")
        fields.setdefault(key, []).append(value.strip())
    return fields


def strict_json(path: Path) -> Any:
    """Parse a JSON file, refusing ``NaN`` and ``Infinity`` as the JSON standard does."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root``: its bytes, or ``-> target`` for a link."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def test_the_corpus_is_complete() -> None:
    assert len(FILE_CASES) >= 20 and len(ARG_CASES) >= 12
    numbers = [_number(p) for p in [*FILE_CASES, *ARG_CASES]]
    assert len(set(numbers)) == len(numbers), numbers
    for path in [*FILE_CASES, *ARG_CASES]:
        assert header(path).get("expect"), f"{path.name} has no '# expect:' line"


# --- hostile runtime.yaml contents, answered by an in-process Trainer --------------------------------------------


class Feeder(Callback):
    """Writes one corpus case into ``runtime.yaml`` per training step and keeps the run's answer to each."""

    def __init__(self, run_dir: Path, cases: list[Path]) -> None:
        self.run_dir, self.pending = run_dir, list(cases)
        self.current: Path | None = None
        self.answers: dict[str, str] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        ack = self.run_dir / ACK_FILE
        if self.current is not None and ack.is_file():
            self.answers[self.current.name] = ack.read_text()
            ack.unlink()
        self.current = self.pending.pop(0) if self.pending else None
        if self.current is not None:
            atomic_write_bytes(self.run_dir / RUNTIME_FILE, self.current.read_bytes())


def test_hostile_request_files_are_answered_and_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in FILE_CASES:
        for setting in header(path).get("env", []):
            monkeypatch.setenv(*setting.split("=", 1))
    monkeypatch.chdir(tmp_path)
    feeder = Feeder(tmp_path, FILE_CASES)
    entries: list[dict[str, Any]] = []
    runtime = RuntimeUpdates(tmp_path, every_n_steps=1, min_interval_s=0, record=entries.append)
    steps = len(FILE_CASES) + 2
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=str(tmp_path), callbacks=[feeder, runtime])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(MLPClassifier(hidden_dims=[8]), _loader())
    assert trainer.global_step == steps and not trainer.interrupted
    assert entries == [] and not runtime.stop_requested  # nothing applied, nothing stopped
    assert trainer.optimizers[0].param_groups[0]["lr"] == 1e-3 and trainer.fit_loop.max_epochs == -1
    warned = "\n".join(str(w.message) for w in caught)
    for path in FILE_CASES:
        fields, text = header(path), feeder.answers.get(path.name)
        assert text is not None, f"{path.name}: no answer"
        assert len(text) < 8000, f"{path.name}: an answer of {len(text)} characters"
        answer = yaml.safe_load(text)
        assert answer["applied"] == [] and "checkpoint" not in answer and "stopped" not in answer, path.name
        rejected = " | ".join(answer["rejected"])
        assert all("\n" not in r and len(r) <= 300 for r in answer["rejected"]), path.name
        for fragment in fields["expect"]:
            assert fragment in rejected, f"{path.name}: {fragment!r} not in {rejected!r}"
        for hidden in fields.get("hidden", []):
            assert hidden not in text and hidden not in warned, path.name
    assert not (tmp_path / "pwned").exists()


# --- hostile `runs set/stop` arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ARG_CASES, ids=lambda p: p.stem)
def test_hostile_arguments_are_refused_before_the_run_is_touched(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = header(path)
    for setting in fields.get("env", []):
        monkeypatch.setenv(*setting.split("=", 1))
    run = tmp_path / "runs" / "target" / "version_0"
    run.mkdir(parents=True)
    write_tiny_config(run / "config.yaml")
    atomic_write_json(run / "metadata.json", {"status": "running", "name": "target", "version": "version_0"})
    for link in fields.get("link", []):
        name, _, target = (part.strip() for part in link.partition("->"))
        os.symlink(target, run / name)
    body = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("#"))
    before = snapshot(tmp_path)
    with RunLock(run):  # held as a training process holds it, so that only the arguments are at fault
        code = main(["runs", *shlex.split(body.replace("{run}", str(run)))])
    out, err = capsys.readouterr()
    assert_refused(code, err, *fields["expect"])
    for hidden in fields.get("hidden", []):
        assert hidden not in out + err
    after = snapshot(tmp_path)
    after.pop("runs/target/version_0/.lock", None)
    assert after == before, path.name  # nothing created, nothing changed, the linked config.yaml included


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["optimizer.lr", "optimizer.lr_scale", "trainer.max_epochs", "trainer.max_steps",
                            "trainer.gradient_clip_val", "model.x", ""]),
       value=st.one_of(st.text(max_size=40), st.integers().map(str), st.floats().map(repr),
                       st.sampled_from(["9" * 400, "7" * 5000, ".nan", "-.inf", "1e999", "[" * 200, "!!python/none"])),
       timeout=st.sampled_from(["60", "nan", "inf", "-1", "1e400"]))
def test_runs_set_ends_in_one_line_whatever_its_arguments(
    key: str, value: str, timeout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "idle" / "version_0"
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "metadata.json", {"status": "completed"})
    code = main(["runs", "set", str(run), f"{key}={value}", "--timeout", timeout])
    out, err = capsys.readouterr()
    assert_refused(code, err)  # the run is not running: every case ends in one line, exit status 2
    assert err.count("\n") == 1 and out == "" and not (run / RUNTIME_FILE).exists()


# --- a live run ----------------------------------------------------------------------------------------------------

SECRET = "tok_live_secret_8910"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
) + "set: {optimizer.lr: *i}\n"


class Live:
    """The live run's directory and the answers it gave."""

    def __init__(self, run: Path, fit: Any) -> None:
        self.run, self.fit = run, fit
        self.seen = self._signature()

    def _signature(self) -> tuple[int, int] | None:
        try:
            st_ = os.lstat(self.run / ACK_FILE)
        except OSError:
            return None
        return st_.st_ino, st_.st_mtime_ns

    def answer(self, timeout: float = 30) -> dict[str, Any]:
        """Wait for the next answer; fail if the run ends first."""
        deadline = time.monotonic() + timeout
        while self._signature() in (self.seen, None):
            assert self.fit.proc.poll() is None, self.fit.output()
            assert time.monotonic() < deadline, f"no answer within {timeout} s\n{self.fit.output()}"
            time.sleep(0.05)
        self.seen = self._signature()
        size = (self.run / ACK_FILE).stat().st_size
        assert size < 8000, f"an answer of {size} bytes"
        answer = read_ack(self.run)
        assert answer is not None
        return answer

    def ask(self, content: str | bytes) -> dict[str, Any]:
        """Write ``runtime.yaml`` and return the run's answer."""
        data = content.encode() if isinstance(content, str) else content
        atomic_write_bytes(self.run / RUNTIME_FILE, data)
        return self.answer()

    def place(self, make: Any) -> dict[str, Any]:
        """Put something else than a file where ``runtime.yaml`` is (``make(path)``) and return the answer."""
        path = self.run / RUNTIME_FILE
        path.unlink(missing_ok=True)
        make(path)
        return self.answer()


def _rejected(answer: dict[str, Any]) -> str:
    assert answer["applied"] == [], answer
    return " | ".join(answer["rejected"])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_live_run_survives_hostile_run_files_and_completes(tmp_path: Path) -> None:
    # Long epochs without validation: a step is short, and the run looks at runtime.yaml every 10 steps.
    write_tiny_config(tmp_path / "tiny.yaml", {"trainer": {"max_epochs": 100000, "enable_progress_bar": False,
                                                          "limit_train_batches": 1000, "limit_val_batches": 0},
                                              "data": {"init_args": {"batch_size": 1}},
                                              "experiment": {"name": "hostile"}})
    run = tmp_path / "runs" / "hostile" / "version_0"
    outside = tmp_path / "outside.yaml"
    with launched(["fit", "--config", "tiny.yaml"], tmp_path, "fit", env={"MY_SERVICE_TOKEN": SECRET}) as fit:
        fit.wait_running(run)
        live = Live(run, fit)
        config = (run / "config.yaml").read_bytes()

        # What the reader refuses: each answered in one short line, nothing applied (the corpus has the rest).
        started = time.monotonic()
        assert "aliases expand" in _rejected(live.ask(BOMB))
        assert time.monotonic() - started < 10
        assert "not a regular file" in _rejected(live.place(os.mkfifo))
        assert "symbolic link" in _rejected(live.place(lambda p: os.symlink("config.yaml", p)))
        assert (run / "config.yaml").read_bytes() == config
        # Values past every limit, and the product of a rate and a scale, rejected by the run itself.
        rejected = _rejected(live.ask(yaml.safe_dump({"set": {
            "trainer.max_epochs": 10**30, "optimizer.lr_scale": 1e-322, "trainer.gradient_clip_val": float("inf"),
            "optimizer.lr": SECRET}})))
        assert all(k in rejected for k in ("trainer.max_epochs", "optimizer.lr_scale", "gradient_clip_val"))
        assert SECRET not in (run / ACK_FILE).read_text() and "**********" in rejected

        # Hypothesis-generated requests: answered, whatever they hold.
        @settings(max_examples=2, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.one_of(st.text(max_size=80), st.binary(max_size=80),
                         st.dictionaries(st.sampled_from(["set", "actions", "request", "source", "x"]),
                                         st.recursive(st.none() | st.booleans() | st.floats() | st.integers()
                                                      | st.text(max_size=10),
                                                      lambda inner: st.lists(inner, max_size=3), max_leaves=6),
                                         max_size=3).map(lambda d: yaml.safe_dump(d))))
        def generated(content: str | bytes) -> None:
            assert isinstance(live.ask(content), dict)

        generated()

        # The answer linked out of the run: refused with a warning, the run trains on and records the update.
        (run / ACK_FILE).unlink()
        os.symlink(outside, run / ACK_FILE)
        atomic_write_text(run / RUNTIME_FILE, yaml.safe_dump({"request": "linked", "set": {
            "trainer.log_every_n_steps": 3}}))
        deadline = time.monotonic() + 30
        while not any(u["key"] == "trainer.log_every_n_steps" for u in metadata(run).get("runtime_updates") or []):
            assert fit.proc.poll() is None and time.monotonic() < deadline, fit.output()
            time.sleep(0.05)
        assert not outside.exists()
        (run / ACK_FILE).unlink()
        live.seen = None

        # Garbage in the lock (the run keeps its flock) and in the manifest: commands and checkpoints go on.
        with open(run / ".lock", "wb") as lock:
            lock.write(b'{"pid": 1e999, "host": [' + b"[" * 5000)
        (run / "checkpoints").mkdir(exist_ok=True)
        atomic_write_text(run / "checkpoints" / "manifest.json", '{"checkpoints": NaN, ' + "[" * 5000)
        code, out, err = cli("runs", "checkpoint", str(run), "--timeout", "60")
        assert "Traceback" not in err and code in (0, 2), err
        assert code == 2 or "checkpoint saved" in out, out + err

        # A valid update still applies, and a limit already passed ends training normally.
        code, out, err = cli("runs", "set", str(run), "trainer.max_steps=1", "--timeout", "60")
        assert code == 0 and "trainer.max_steps: -1 -> 1" in out, err + fit.output()
        assert fit.wait(timeout=60) == 0, fit.output()
    log = (tmp_path / "fit.err").read_text()
    assert "Traceback" not in log and SECRET not in log
    meta = metadata(run)
    assert meta["status"] == "completed", meta
    assert (run / "config.yaml").read_bytes() == config and not outside.exists()
    strict_json(run / "metadata.json")
    assert SECRET not in (run / "metadata.json").read_text()

    # A checkpoint whose runtime-update state holds a huge integer (one that loads without pickled objects):
    # refused before anything is written.
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    saved["callbacks"]["RuntimeUpdates"] = {"applied": {"trainer.max_epochs": {"launch": 1, "value": 10**500}}}
    tampered = run / "checkpoints" / "tampered.ckpt"
    torch.save(saved, tampered)
    before = snapshot(tmp_path / "runs")
    for flags in (["--experiment.resume", str(tampered)], ["--ckpt_path", str(tampered)]):
        code, _, err = cli("fit", "--config", str(tmp_path / "tiny.yaml"), *flags)
        assert_refused(code, err, "runtime-update state", "an integer of about 500 digits")
        assert snapshot(tmp_path / "runs") == before


# --- smaller units -----------------------------------------------------------------------------------------------


def test_no_json_file_holds_nan_and_no_answer_holds_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enhtrain.run.metadata import update_metadata

    atomic_write_json(tmp_path / "a.json", {"loss": float("nan"), "nested": [float("inf"), -float("inf"), 1.5]})
    assert strict_json(tmp_path / "a.json") == {"loss": None, "nested": [None, None, 1.5]}
    meta: dict[str, Any] = {"status": "running"}
    update_metadata(tmp_path / "metadata.json", meta, metrics={"val_loss": float("nan"), "acc": 0.5})
    assert strict_json(tmp_path / "metadata.json")["metrics"] == {"val_loss": None, "acc": 0.5}
    manifest = Manifest(tmp_path / "checkpoints")
    (tmp_path / "checkpoints").mkdir()
    manifest.add({"file": "last.ckpt", "sha256": "0" * 64, "size": 1, "step": 1,
                  "metrics": {"val_loss": float("nan"), "acc": float("-inf")}})
    manifest.save()
    assert strict_json(tmp_path / "checkpoints" / "manifest.json")["checkpoints"][0]["metrics"] == {
        "val_loss": None, "acc": None}
    assert Manifest(tmp_path / "checkpoints", strict=True).entry("last.ckpt") is not None  # it reads back

    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok_unit_secret_1234")
    write_ack(tmp_path, {"request": "r-tok_unit_secret_1234", "step": 3, "applied": [
        {"key": "optimizer.lr", "old": float("nan"), "new": 0.1}], "rejected": ["x" * 5000, *["y"] * 30]})
    text = (tmp_path / ACK_FILE).read_text()
    answer = yaml.safe_load(text)
    assert "tok_unit_secret_1234" not in text and ".nan" not in text and answer["applied"][0]["old"] is None
    assert len(answer["rejected"]) == 21 and max(len(r) for r in answer["rejected"]) <= 300

    # An answer file linked anywhere is refused, never written through.
    target = tmp_path / "config.yaml"
    target.write_text("kept: true\n")
    (tmp_path / ACK_FILE).unlink()
    os.symlink("config.yaml", tmp_path / ACK_FILE)
    with pytest.raises(Exception, match="symbolic link"):
        write_ack(tmp_path, {"request": "r", "rejected": []})
    assert target.read_text() == "kept: true\n"


@pytest.mark.parametrize("state", [
    {"applied": {"trainer.max_epochs": {"launch": 1, "value": 10**5000}}},
    {"applied": {"optimizer.lr": {"launch": 1e-3, "value": float("nan")}}},
    {"applied": {"optimizer.lr": {"launch": [1e-3] * 20000, "value": 1e-3}}},
    {"applied": {f"k.k{i}": {"value": 1} for i in range(101)}},
    {"applied": "everything"},
], ids=["huge-int", "nan", "long-list", "too-many-keys", "not-a-mapping"])
def test_hostile_saved_state_is_refused_in_one_line(state: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError) as info:
        check_saved_state({"callbacks": {"RuntimeUpdates": state}}, "x.ckpt")
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
    check_saved_state({"callbacks": {"RuntimeUpdates": {"applied": {
        "optimizer.lr": {"launch": [1e-3, 2e-3], "value": 1e-4}}}}}, "x.ckpt")
