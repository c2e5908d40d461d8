"""Runtime updates: ``enhtrain runs set/stop/checkpoint`` change a run while it trains, through ``runtime.yaml``.

A real run in a subprocess is changed, checkpointed, sent an invalid request, stopped and resumed; a 2-process
DDP run applies an update on both ranks at the same step; in-process Trainers check manual and automatic
optimisation, a resumed Trainer and a key declared by a plugin.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from enhtrain import hookimpl
from enhtrain._io import atomic_write_text
from enhtrain.callbacks.runtime_updates import RuntimeUpdates
from enhtrain.commands import main
from enhtrain.config.runtime import RuntimeKeyRegistry, collect_runtime_keys, parse_assignments, validate_request
from enhtrain.errors import ConfigError
from enhtrain.models import MLPClassifier
from enhtrain.run.runtime import is_running, read_ack, wait_for_ack
from enhtrain.testing import isolated_plugins, write_tiny_config

# --- helpers -----------------------------------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``enhtrain`` in this process; return its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


class Launched:
    """A training command started in a subprocess, with its output in files."""

    def __init__(self, args: list[str], work: Path, log: str, env: dict[str, str] | None = None) -> None:
        self.work, self.log = work, log
        environ = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1", **(env or {})}
        environ.pop("ENHTRAIN_RUN_DIR", None)
        with open(work / f"{log}.out", "wb") as out, open(work / f"{log}.err", "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "enhtrain", *args], cwd=work, env=environ,
                                         stdout=out, stderr=err, start_new_session=True)

    def output(self) -> str:
        """Both output files, for messages."""
        return "\n".join((self.work / f"{self.log}.{kind}").read_text(errors="replace")[-3000:]
                         for kind in ("out", "err"))

    def wait_running(self, run: Path, timeout: float = 120) -> None:
        """Wait until the run holds its lock and has written ``metadata.json``; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while not ((run / "metadata.json").is_file() and is_running(run)):
            if self.proc.poll() is not None:
                pytest.fail(f"{self.log} ended with {self.proc.returncode} before training:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.log} did not start within {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def wait(self, timeout: float = 120) -> int:
        """Wait for the process to end; kill it and fail past ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.log} did not end within {timeout} s:\n{self.output()}")

    def kill(self) -> None:
        """Kill the process group if it still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextlib.contextmanager
def launched(*args: Any, **kwargs: Any) -> Iterator[Launched]:
    """A :class:`Launched` command that is killed if the test leaves early."""
    run = Launched(*args, **kwargs)
    try:
        yield run
    finally:
        run.kill()


def metadata(run: Path) -> dict[str, Any]:
    """The run's ``metadata.json``."""
    return json.loads((run / "metadata.json").read_text())


def ask(run: Path, body: dict[str, Any]) -> str:
    """Write a hand-made request into the run's ``runtime.yaml``; return its id."""
    request = f"test-{time.monotonic_ns()}"
    atomic_write_text(run / "runtime.yaml", yaml.safe_dump({"request": request, **body}))
    return request


# --- the command's checks ----------------------------------------------------------------------------------------


def test_keys_and_values_are_checked_by_the_command() -> None:
    keys = collect_runtime_keys()
    assert {"optimizer.lr", "optimizer.lr_scale", "trainer.gradient_clip_val", "trainer.log_every_n_steps",
            "trainer.max_epochs", "trainer.max_steps", "early_stopping.patience"} <= set(keys.names())
    assert parse_assignments(["optimizer.lr=1e-4", "trainer.max_epochs=20"], keys) == {
        "optimizer.lr": 1e-4, "trainer.max_epochs": 20}
    for bad, fragment in [("optimizer.lr=-1", "optimizer.lr=-1: Input should be greater than 0; give a number > 0"),
                          ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5"),
                          ("trainer.max_steps=true", "trainer.max_steps"),
                          ("optimizer.learning_rate=1", "'optimizer.learning_rate' is not a key"),
                          ("optimizer.lr", "is not KEY=VALUE")]:
        with pytest.raises(ConfigError) as info:
            parse_assignments([bad], keys)
        assert fragment in str(info.value) and "\n" not in str(info.value)
    _, valid, rejected = validate_request({"set": {"optimizer.lr": 0.5, "trainer.max_epochs": -5}}, keys)
    assert valid == {"optimizer.lr": 0.5} and len(rejected) == 1 and "trainer.max_epochs=-5" in rejected[0]
    with pytest.raises(ConfigError, match="actions"):
        validate_request({"actions": ["explode"]}, keys)


def test_set_on_a_run_that_is_not_running_says_so(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "idle" / "version_0"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text(json.dumps({"status": "completed"}))
    (run / ".lock").write_text("")
    code, out, err = cli("runs", "set", str(run), "optimizer.lr=1e-4")
    assert code == 2 and out == ""
    assert err.startswith(f"enhtrain: error: run '{run}' is not running") and err.count("\n") == 1
    assert not (run / "runtime.yaml").exists()
    code, _, err = cli("runs", "set", str(run), "optimizer.lr=oops")
    assert code == 2 and "optimizer.lr='oops'" in err
    code, _, err = cli("runs", "stop", str(run), "--timeout", "-1")
    assert code == 2 and "--timeout -1 is not a number of seconds >= 0" in err


# --- a real run, changed while it trains -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_live_run_is_changed_checkpointed_stopped_and_resumed(tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "tiny.yaml", {"trainer": {"max_epochs": 100000, "enable_progress_bar": False},
                                              "experiment": {"name": "live"}})
    run = tmp_path / "runs" / "live" / "version_0"
    with launched(["fit", "--config", "tiny.yaml"], tmp_path, "fit") as fit:
        fit.wait_running(run)
        code, out, err = cli("runs", "set", str(run), "optimizer.lr=1e-4", "trainer.max_epochs=50000",
                             "--timeout", "60")
        assert code == 0, err
        assert "optimizer.lr: 0.001 -> 0.0001" in out and "trainer.max_epochs: 100000 -> 50000" in out

        # Invalid values in the file are rejected by the run, which applies the rest and trains on.
        request = ask(run, {"set": {"optimizer.lr": -1, "trainer.log_every_n_steps": 2}})
        answer = wait_for_ack(run, request, timeout=60)
        assert [r["key"] for r in answer["applied"]] == ["trainer.log_every_n_steps"]
        assert len(answer["rejected"]) == 1 and "optimizer.lr=-1" in answer["rejected"][0]
        request = ask(run, {"set": "not a mapping"})
        assert "set" in wait_for_ack(run, request, timeout=60)["rejected"][0]
        # A key that does not apply to this run (no EarlyStopping): the command reports the run's refusal.
        code, _, err = cli("runs", "set", str(run), "early_stopping.patience=3")
        assert code == 2 and "rejected the update" in err and "no EarlyStopping callback" in err

        code, out, err = cli("runs", "checkpoint", str(run))
        assert code == 0 and "checkpoint saved:" in out, err
        code, out, err = cli("runs", "stop", str(run))
        assert code == 0 and "stops now" in out, err
        assert fit.wait() == 0, fit.output()
        stopped_at = answer["step"]
    assert "runtime update rejected" in (tmp_path / "fit.err").read_text()

    meta = metadata(run)
    assert meta["status"] == "stopped" and meta["end_time"]
    updates = meta["runtime_updates"]
    assert {"step", "key", "old", "new", "source"} <= set(updates[0])
    assert [(u["key"], u["old"], u["new"]) for u in updates[:2]] == [("optimizer.lr", 0.001, 0.0001),
                                                                       ("trainer.max_epochs", 100000, 50000)]
    assert updates[0]["source"].startswith("enhtrain runs set")
    assert [u["key"] for u in updates[2:]] == ["trainer.log_every_n_steps", "checkpoint", "checkpoint", "stop"]
    assert updates[-1]["step"] == meta["global_step"] > stopped_at
    header = (run / "logs" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"runtime/optimizer.lr", "runtime/trainer.max_epochs", "runtime/trainer.log_every_n_steps"} <= set(header)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == meta["global_step"]
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-4

    # (c) Not running any more: refused, nothing written.
    before = (run / "runtime.yaml").read_bytes()
    code, _, err = cli("runs", "set", str(run), "optimizer.lr=1e-3")
    assert code == 2 and "is not running" in err
    assert (run / "runtime.yaml").read_bytes() == before

    # (d) The resumed run keeps the updated values (the config still says max_epochs 100000).
    with launched(["fit", "--config", "tiny.yaml", "--experiment.resume", "auto"], tmp_path, "resume") as again:
        again.wait_running(run)
        deadline = time.monotonic() + 60
        while not any(u["source"] == "resume" for u in metadata(run).get("runtime_updates") or []):
            assert again.proc.poll() is None and time.monotonic() < deadline, again.output()
            time.sleep(0.1)
        code, _, err = cli("runs", "stop", str(run))
        assert code == 0, err
        assert again.wait() == 0, again.output()
    meta = metadata(run)
    assert meta["status"] == "stopped" and len(meta["resumes"]) == 1
    resumed = [u for u in meta["runtime_updates"] if u["source"] == "resume"]
    # The learning rate is set again before the optimiser's state brings back the same value.
    assert [(u["key"], u["old"], u["new"]) for u in resumed] == [("optimizer.lr", 0.001, 0.0001),
                                                                   ("trainer.max_epochs", 100000, 50000),
                                                                   ("trainer.log_every_n_steps", 1, 2)]
    assert meta["runtime_updates"][:len(updates)] == updates  # the first run's record is kept


# --- in-process Trainers -----------------------------------------------------------------------------------------


class Asker(Callback):
    """Writes a request into ``runtime.yaml`` when training reaches ``at_step``; records clipping values used."""

    def __init__(self, run_dir: Path, at_step: int, body: dict[str, Any]) -> None:
        self.run_dir, self.at_step, self.body = run_dir, at_step, body
        self.asked = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.at_step and not self.asked:
            self.asked = True
            ask(self.run_dir, self.body)


def _loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 64, generator=generator), torch.randint(0, 10, (32,), generator=generator))
    return DataLoader(data, batch_size=8)


def _trainer(run_dir: Path, callbacks: list[Callback], **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "logger": False,
                               "enable_progress_bar": False, "enable_model_summary": False,
                               "enable_checkpointing": False, "default_root_dir": str(run_dir)}
    return pl.Trainer(callbacks=callbacks, **{**options, **kwargs})


def _runtime(run_dir: Path, entries: list[dict[str, Any]]) -> RuntimeUpdates:
    return RuntimeUpdates(run_dir, every_n_steps=1, min_interval_s=0, record=entries.append)


@pytest.mark.parametrize("manual", [True, False], ids=["manual", "automatic"])
def test_manual_and_automatic_optimisation_honour_updates(tmp_path: Path, manual: bool) -> None:
    model = MLPClassifier(hidden_dims=[8], manual_optimization=manual, gradient_clip_val=1.0 if manual else None)
    clipped: list[tuple[int, float | None]] = []
    original = model.clip_gradients

    def spy(optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None) -> None:
        clipped.append((model.trainer.global_step, gradient_clip_val))
        original(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)

    model.clip_gradients = spy  # type: ignore[method-assign]
    entries: list[dict[str, Any]] = []
    body = {"set": {"optimizer.lr_scale": 0.5, "trainer.gradient_clip_val": 0.25, "trainer.max_epochs": 3}}
    trainer = _trainer(tmp_path, [Asker(tmp_path, 2, body), _runtime(tmp_path, entries)],
                       **({} if manual else {"gradient_clip_val": 1.0}))
    trainer.fit(model, _loader())

    assert trainer.current_epoch == 3 and trainer.global_step == 12  # 4 batches an epoch, one more epoch
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(5e-4)
    assert [(e["key"], e["step"]) for e in entries] == [("optimizer.lr_scale", 2), ("trainer.gradient_clip_val", 2),
                                                         ("trainer.max_epochs", 2)]
    assert entries[0]["old"] == pytest.approx(1e-3) and entries[0]["new"] == pytest.approx(5e-4)
    # The clipping value the optimiser step used: 1.0 up to the update, 0.25 after it.
    values = {step: value for step, value in clipped}
    assert values[0] == 1.0 and values[1] == 1.0 and all(values[s] == 0.25 for s in range(2, 12)), clipped
    assert (model.hparams.gradient_clip_val if manual else trainer.gradient_clip_val) == 0.25
    assert read_ack(tmp_path)["rejected"] == []


def test_a_resumed_trainer_keeps_the_updated_values(tmp_path: Path) -> None:
    entries: list[dict[str, Any]] = []
    body = {"set": {"trainer.max_epochs": 3, "optimizer.lr": 2e-3, "trainer.log_every_n_steps": 7}}
    first = _trainer(tmp_path, [Asker(tmp_path, 1, body), _runtime(tmp_path, entries)])
    first.fit(MLPClassifier(hidden_dims=[8]), _loader())
    assert first.current_epoch == 3
    first.save_checkpoint(tmp_path / "saved.ckpt")

    resumed_entries: list[dict[str, Any]] = []
    second = _trainer(tmp_path, [_runtime(tmp_path, resumed_entries)], max_epochs=2)
    second.fit(MLPClassifier(hidden_dims=[8]), _loader(), ckpt_path=tmp_path / "saved.ckpt")
    assert second.fit_loop.max_epochs == 3 and second.log_every_n_steps == 7
    assert second.optimizers[0].param_groups[0]["lr"] == pytest.approx(2e-3)
    assert {e["key"] for e in resumed_entries} == {"optimizer.lr", "trainer.max_epochs", "trainer.log_every_n_steps"}
    assert all(e["source"] == "resume" for e in resumed_entries)

    # A config that changed a value itself wins over the saved update.
    third = _trainer(tmp_path, [_runtime(tmp_path, [])], max_epochs=4)
    third.fit(MLPClassifier(hidden_dims=[8]), _loader(), ckpt_path=tmp_path / "saved.ckpt")
    assert third.fit_loop.max_epochs == 4 and third.current_epoch == 4


def set_temperature(trainer: pl.Trainer, pl_module: pl.LightningModule, value: float) -> None:
    """A plugin's ``apply`` function for ``model.temperature``."""
    pl_module.temperature = value  # type: ignore[assignment]


def read_temperature(trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
    """A plugin's ``read`` function for ``model.temperature``."""
    return float(getattr(pl_module, "temperature", 1.0))


class TemperaturePlugin:
    """Declares ``model.temperature``, a number in [0.1, 10]."""

    @hookimpl
    def enhtrain_runtime_keys(self, registry: RuntimeKeyRegistry) -> None:
        registry.register("model.temperature", type=float, ge=0.1, le=10, apply=set_temperature,
                          read=f"{__name__}:read_temperature", help="the softmax temperature")


def test_a_plugin_declares_a_runtime_key(tmp_path: Path) -> None:
    with isolated_plugins() as manager:
        manager.register(TemperaturePlugin(), name="temperature")
        try:
            keys = collect_runtime_keys()
            assert "model.temperature" in keys.names() and "optimizer.lr" in keys.names()
            assert parse_assignments(["model.temperature=2"], keys) == {"model.temperature": 2.0}
            with pytest.raises(ConfigError, match=r"model.temperature=20: .*; give a number >= 0.1 and <= 10"):
                parse_assignments(["model.temperature=20"], keys)
            entries: list[dict[str, Any]] = []
            model = MLPClassifier(hidden_dims=[8])
            body = {"set": {"model.temperature": 3, "model.unknown": 1}}
            trainer = _trainer(tmp_path, [Asker(tmp_path, 1, body), _runtime(tmp_path, entries)], max_epochs=1)
            trainer.fit(model, _loader())
        finally:
            manager.unregister(name="temperature")
    assert model.temperature == 3.0  # type: ignore[attr-defined]
    assert [(e["key"], e["old"], e["new"]) for e in entries] == [("model.temperature", 1.0, 3.0)]
    assert "'model.unknown' is not a key" in read_ack(tmp_path)["rejected"][0]
    assert "model.temperature" not in collect_runtime_keys().names()


def test_a_file_from_before_the_run_is_not_applied(tmp_path: Path) -> None:
    ask(tmp_path, {"actions": ["stop"]})
    entries: list[dict[str, Any]] = []
    trainer = _trainer(tmp_path, [_runtime(tmp_path, entries)], max_epochs=1)
    trainer.fit(MLPClassifier(hidden_dims=[8]), _loader())
    assert trainer.global_step == 4 and entries == [] and read_ack(tmp_path) is None


# --- DDP -----------------------------------------------------------------------------------------------------------

RANK_PROBE = '''
import json
import os

from lightning.pytorch.callbacks import Callback


class LrProbe(Callback):
    """Writes `applied-<rank>.json` with the first step at which the learning rate is no longer the initial one."""

    def __init__(self):
        self.first = None
        self.done = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        if self.first is None:
            self.first = lr
        if lr != self.first and not self.done:
            self.done = True
            path = os.path.join(os.environ["PROBE_OUT"], f"applied-{trainer.global_rank}.json")
            with open(path + ".tmp", "w") as handle:
                json.dump({"step": trainer.global_step, "lr": lr}, handle)
            os.replace(path + ".tmp", path)
'''


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_applies_an_update_on_every_rank_at_the_same_step(tmp_path: Path) -> None:
    code_dir, out_dir = tmp_path / "probe", tmp_path / "probe-out"
    code_dir.mkdir()
    out_dir.mkdir()
    (code_dir / "lr_probe.py").write_text(RANK_PROBE)
    write_tiny_config(tmp_path / "ddp.yaml", {
        "trainer": {"max_epochs": 100000, "devices": 2, "strategy": "ddp", "limit_train_batches": 4,
                    "limit_val_batches": 0, "enable_progress_bar": False,
                    "callbacks": [{"class_path": "lr_probe.LrProbe"}]},
        "model": {"init_args": {"hidden_dims": [8]}},
        "data": {"init_args": {"batch_size": 8}},
        "experiment": {"name": "ddp"},
    })
    run = tmp_path / "runs" / "ddp" / "version_0"
    env = {"PROBE_OUT": str(out_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")]))}
    with launched(["fit", "--config", "ddp.yaml"], tmp_path, "ddp", env=env) as fit:
        fit.wait_running(run)
        code, _, err = cli("runs", "set", str(run), "optimizer.lr=3e-4", "--timeout", "120")
        assert code == 0, err + fit.output()
        deadline = time.monotonic() + 60
        while len(list(out_dir.glob("applied-*.json"))) < 2:
            assert fit.proc.poll() is None and time.monotonic() < deadline, fit.output()
            time.sleep(0.1)
        code, _, err = cli("runs", "stop", str(run), "--timeout", "120")
        assert code == 0, err + fit.output()
        assert fit.wait(timeout=120) == 0, fit.output()

    ranks = {p.name: json.loads(p.read_text()) for p in out_dir.glob("applied-*.json")}
    assert set(ranks) == {"applied-0.json", "applied-1.json"}
    assert ranks["applied-0.json"] == ranks["applied-1.json"], ranks
    meta = metadata(run)
    [update] = [u for u in meta["runtime_updates"] if u["key"] == "optimizer.lr"]
    assert update["step"] % 100 == 0 and ranks["applied-0.json"]["step"] - update["step"] in (0, 1)
    assert ranks["applied-0.json"]["lr"] == pytest.approx(3e-4)
    assert meta["status"] == "stopped"
