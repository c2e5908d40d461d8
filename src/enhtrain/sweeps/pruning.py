"""The pruning callback of a sweep trial: reports the metric at each validation and stops a hopeless trial.

A trial runs in its own process; the worker that started it holds the study. The callback talks to that worker
through two pipes whose descriptors it finds in the ``_ENHTRAIN_SWEEP_CHANNEL`` environment variable (set by the
worker for the trial's process only): after each validation it sends the metric's value, the worker reports it
to Optuna and answers whether the pruner stops the trial. A pruned trial stops like any other Lightning run that
sets ``trainer.should_stop``: its checkpoints, logs and metadata are written, and the worker then marks the run
``pruned``. Without the variable (the trial's config run again by hand) the callback does nothing.

Optuna's own ``PyTorchLightningPruningCallback`` (optuna-integration) is not used: it needs a live ``Trial``
object, which a config cannot hold, and it raises ``TrialPruned`` inside the trainer, which ends the run as failed
with a traceback.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from enhtrain.documents import parse_json
from enhtrain.errors import ConfigError
from enhtrain.sweeps import CHANNEL_ENV

__all__ = ["SweepPruning"]


class _Channel:
    """The trial's end of the pipes to its worker; a thread reads the answers and notices the worker's death."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._reader = os.fdopen(read_fd, "r", encoding="utf-8")
        self._writer = os.fdopen(write_fd, "w", encoding="utf-8")
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self.closed = False
        self.armed = False
        threading.Thread(target=self._read, name="enhtrain-sweep-channel", daemon=True).start()

    def _read(self) -> None:
        for line in self._reader:
            try:
                self._answers.put(parse_json(line, "the sweep's channel"))
            except ConfigError:
                continue
        self._answers.put(None)
        with self._lock:
            self.closed = True
            armed = self.armed
        if armed:
            _stop_run()

    def arm(self) -> None:
        """From now on Lightning handles SIGTERM: a worker that is gone stops this trial, saving it."""
        with self._lock:
            self.armed = True
            closed = self.closed
        if closed:
            _stop_run()

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and wait for the worker's answer (``{}`` once the worker is gone)."""
        if self.closed:
            return {}
        try:
            self._writer.write(json.dumps(message) + "\n")
            self._writer.flush()
        except OSError:
            self.closed = True
            return {}
        answer = self._answers.get()
        return answer or {}


def _stop_run() -> None:
    """End this trial the way SIGTERM ends any run: Lightning saves it and it is marked ``interrupted``."""
    os.kill(os.getpid(), signal.SIGTERM)


def _open_channel() -> _Channel | None:
    text = os.environ.get(CHANNEL_ENV, "")
    try:
        read_fd, write_fd = (int(part) for part in text.split(","))
        os.fstat(read_fd)
        os.fstat(write_fd)
    except (ValueError, OSError):
        return None
    os.environ.pop(CHANNEL_ENV, None)  # processes this run starts (DDP ranks) have no such pipes
    return _Channel(read_fd, write_fd)


class SweepPruning(Callback):
    """Report ``monitor`` after every validation to the sweep's worker, and stop the trial when it is pruned.

    The worker adds this callback to every trial's config (``trainer.callbacks``); it is not meant to be named
    by hand. Only global rank 0 talks to the worker; the decision to stop is broadcast to every rank.

    Args:
        monitor: The sweep's metric (``val/acc``).
        study: The study's name, recorded for readers of the config.
        trial: The trial's number, recorded for readers of the config.

    Attributes:
        pruned_at: The validation (counted from 0) at which the trial was pruned, or ``None``.
        reported: The values sent, one per validation.
    """

    def __init__(self, monitor: str, study: str | None = None, trial: int | None = None) -> None:
        super().__init__()
        self.monitor = monitor
        self.study = study
        self.trial = trial
        self.pruned_at: int | None = None
        self.reported: list[float] = []
        self._channel: _Channel | None = None
        self._opened = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Open the channel to the worker (global rank 0 only)."""
        if trainer.is_global_zero and not self._opened:
            self._opened = True
            self._channel = _open_channel()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Let a worker that dies stop the trial, now that Lightning's SIGTERM handler is in place."""
        if self._channel is not None:
            self._channel.arm()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Send the metric's value; stop training if the worker answers that the trial is pruned."""
        if trainer.sanity_checking:
            return
        stop = False
        if trainer.is_global_zero and self._channel is not None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                logged = sorted(str(k) for k in trainer.callback_metrics)
                answer = self._channel.ask({"missing": self.monitor, "logged": logged})
            else:
                number = float(value)
                answer = self._channel.ask({"step": len(self.reported), "value": number,
                                            "global_step": trainer.global_step})
                self.reported.append(number)
            stop = bool(answer.get("prune"))
        stop = bool(trainer.strategy.broadcast(stop))
        if stop:
            self.pruned_at = max(len(self.reported) - 1, 0)
            trainer.should_stop = True
