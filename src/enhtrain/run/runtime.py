"""Runtime updates on disk: ``runtime.yaml`` asked for by ``enhtrain runs set/stop/checkpoint``, read by the run.

The commands write a request atomically into ``<run>/runtime.yaml`` and wait until the run answers in
``<run>/runtime.ack.yaml`` with the same request id. The run (:class:`RuntimeReader`, used by
:class:`enhtrain.callbacks.runtime_updates.RuntimeUpdates`) looks at the file at step boundaries, at most every
``every_n_steps`` steps and every ``min_interval_s`` seconds, whichever is rarer, with one ``os.lstat``; it
reads the file only when that changes. A file that was already there when the run started is an old request and
is never applied.

Every file here is read by the bounded reader (:mod:`enhtrain.documents`): a regular file of at most
:data:`MAX_REQUEST_BYTES` (the answer :data:`MAX_ACK_BYTES`), never through a symbolic link, never blocking on a
named pipe, within the reader's limits on nodes, nesting and integer digits. ``runtime.yaml`` and
``runtime.ack.yaml`` are written atomically, through the path gate, and never through a link: a link in their
place is refused.

The built-in keys' ``apply`` and ``read`` functions are here too; they touch only the objects they are given and
import Lightning only when called. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_text, finite
from enhtrain.config.runtime import (
    ACK_FILE,
    MAX_RUNTIME_FLOAT,
    MAX_RUNTIME_KEYS,
    RUNTIME_FILE,
    one_line,
    out_of_range,
)
from enhtrain.documents import dump_yaml, parse_yaml, read_text, read_yaml
from enhtrain.errors import ConfigError, RunDirError
from enhtrain.run.lock import LOCK_NAME, RunLock
from enhtrain.secrets import mask_secrets
from enhtrain.security import inside

__all__ = [
    "MAX_ACK_BYTES",
    "MAX_REQUEST_BYTES",
    "Polled",
    "RuntimeReader",
    "check_accepts_updates",
    "is_running",
    "read_ack",
    "read_early_stopping_patience",
    "read_gradient_clip_val",
    "read_log_every_n_steps",
    "read_lr",
    "read_max_epochs",
    "read_max_steps",
    "scale_lr",
    "set_early_stopping_patience",
    "set_gradient_clip_val",
    "set_log_every_n_steps",
    "set_lr",
    "set_max_epochs",
    "set_max_steps",
    "wait_for_ack",
    "write_ack",
    "write_request",
]

MAX_REQUEST_BYTES = 64 * 1024
"""The largest ``runtime.yaml`` a run reads; a bigger one is rejected unread."""

MAX_ACK_BYTES = 256 * 1024
"""The largest ``runtime.ack.yaml`` the commands read."""

_MAX_REJECTED = 20
_MAX_LINE = 300


@dataclass(frozen=True)
class Polled:
    """A request the run found in ``runtime.yaml``.

    Attributes:
        request: Its id: the ``request`` field, else a hash of the file's content.
        data: The loaded YAML, or ``None`` when it could not be read.
        error: Why it could not be read, or ``None``.
    """

    request: str
    data: Any
    error: str | None = None


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)


class RuntimeReader:
    """Watches one run's ``runtime.yaml``.

    Args:
        run_dir: The run directory.
        every_n_steps: Look at most every this many steps.
        min_interval_s: And at most every this many seconds.
    """

    def __init__(self, run_dir: str | Path, every_n_steps: int = 10, min_interval_s: float = 1.0) -> None:
        self.path = Path(run_dir) / RUNTIME_FILE
        self.every_n_steps = max(1, every_n_steps)
        self.min_interval_s = max(0.0, min_interval_s)
        # Whatever is there now was asked of an earlier process (a request is written only while the run holds
        # its lock), so only a later change counts.
        self._seen = _signature(self.path)
        self._next_step = 0
        self._next_time = 0.0

    def due(self, step: int) -> bool:
        """Whether ``step`` is far enough from the last look, in steps and in time."""
        return step >= self._next_step and time.monotonic() >= self._next_time

    def poll(self, step: int) -> Polled | None:
        """Look at the file if it is time to; return a new request, or ``None``.

        Args:
            step: The global step.
        """
        if not self.due(step):
            return None
        self._next_step = step + self.every_n_steps
        self._next_time = time.monotonic() + self.min_interval_s
        signature = _signature(self.path)
        if signature == self._seen or signature is None:
            self._seen = signature
            return None
        self._seen = signature
        return self.read()

    def read(self) -> Polled:
        """Read and parse the file now, within the bounded reader's limits; never raises."""
        try:
            text = read_text(self.path, RUNTIME_FILE, what="run file", max_bytes=MAX_REQUEST_BYTES,
                             follow_symlinks=False)
        except ConfigError as err:
            return Polled("unreadable", None, f"{_line(err)}; the request is ignored")
        request = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        try:
            data = parse_yaml(text, RUNTIME_FILE)
        except ConfigError as err:
            return Polled(request, None, f"{_line(err)}; the request is ignored")
        if isinstance(data, dict) and isinstance(data.get("request"), str) and data["request"]:
            request = one_line(data["request"], 200)
        return Polled(request, data)


def _line(err: object) -> str:
    """One line of at most a few hundred characters, secrets masked, for an answer or a warning."""
    return one_line(err, _MAX_LINE)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_running(run_dir: str | Path) -> bool:
    """Whether a process holds the run's ``.lock`` (a training process holds it for its whole life)."""
    return RunLock(run_dir).in_use()


def read_ack(run_dir: str | Path) -> dict[str, Any] | None:
    """Return the run's last answer (``runtime.ack.yaml``), or ``None`` when there is none or it breaks a limit."""
    try:
        text = read_text(Path(run_dir) / ACK_FILE, ACK_FILE, what="run file", max_bytes=MAX_ACK_BYTES,
                         follow_symlinks=False)
        data = parse_yaml(text, ACK_FILE)
    except ConfigError:
        return None
    return data if isinstance(data, dict) else None


def _refuse_link(path: Path, run_dir: Path, what: str) -> Path:
    """The path gate for a run file written by name: no link in its place, and inside the run."""
    if path.is_symlink():
        raise RunDirError(
            f"{what} '{path}' is a symbolic link: enhtrain never writes through a link in a run directory; remove "
            "the link"
        )
    inside(path, run_dir, what=what)
    return path


def _source() -> str:
    with contextlib.suppress(Exception):
        return f"{getpass.getuser()}@{socket.gethostname()}"
    return socket.gethostname()


def write_request(
    run_dir: str | Path, updates: dict[str, Any], actions: list[str], *, command: str
) -> str:
    """Write a request into ``<run_dir>/runtime.yaml`` atomically and return its id.

    A request still waiting in the file (no answer carries its id) is merged in, this one's values winning, so
    that two commands in a row do not lose the first one.

    Args:
        run_dir: The run directory.
        updates: Validated key to value.
        actions: ``checkpoint`` and/or ``stop``.
        command: The command that asks (``enhtrain runs set``), recorded as part of the source.
    """
    run_dir = Path(run_dir)
    path = _refuse_link(run_dir / RUNTIME_FILE, run_dir, "runtime request")
    merged_set: dict[str, Any] = {}
    merged_actions: list[str] = []
    if path.is_file():
        previous = RuntimeReader(run_dir).read()
        ack = read_ack(run_dir) or {}
        if isinstance(previous.data, dict) and ack.get("request") != previous.request:
            # Only what the run would accept is carried over; the rest would be rejected there anyway.
            if isinstance(previous.data.get("set"), dict):
                merged_set.update({k: v for k, v in list(previous.data["set"].items())[:MAX_RUNTIME_KEYS]
                                   if isinstance(k, str) and len(k) <= 200 and _plain(v)})
            if isinstance(previous.data.get("actions"), list):
                merged_actions += [a for a in previous.data["actions"][:10] if a in ("checkpoint", "stop")]
    merged_set.update(updates)
    merged_actions += [a for a in actions if a not in merged_actions]
    request = uuid.uuid4().hex
    body: dict[str, Any] = {"request": request, "source": f"{command} ({_source()})"}
    if merged_set:
        body["set"] = merged_set
    if merged_actions:
        body["actions"] = merged_actions
    text = f"# written {_now()}\n" + dump_yaml(finite(body))
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise RunDirError(
            f"cannot write '{path}': {err.strerror or err}; check the run directory's permissions"
        ) from err
    return request


def _plain(value: Any) -> bool:
    """Whether ``value`` is a scalar within the limits of a runtime value (a request carried over holds no more)."""
    if isinstance(value, str):
        return len(value) <= 1000
    return value is None or (isinstance(value, (bool, int, float)) and out_of_range(value) is None)


def write_ack(run_dir: str | Path, answer: dict[str, Any]) -> None:
    """Write the run's answer to a request into ``<run_dir>/runtime.ack.yaml`` atomically (global rank 0 only).

    The answer is bounded (at most a few dozen lines, each cut to a few hundred characters), secrets are
    masked, and a non-finite number is written as ``null``.

    Raises:
        RunDirError: If ``runtime.ack.yaml`` is a link or leads out of the run.
        OSError: If it cannot be written.
    """
    run_dir = Path(run_dir)
    path = _refuse_link(run_dir / ACK_FILE, run_dir, "runtime answer")
    rejected = [_line(r) for r in answer.get("rejected") or []]
    if len(rejected) > _MAX_REJECTED:
        rejected = [*rejected[:_MAX_REJECTED], f"... and {len(rejected) - _MAX_REJECTED} more"]
    body = mask_secrets(finite({**answer, "rejected": rejected, "time": _now()}))
    atomic_write_text(path, dump_yaml(body))


def wait_for_ack(run_dir: str | Path, request: str, timeout: float, poll_s: float = 0.1) -> dict[str, Any]:
    """Wait until the run answers ``request`` and return the answer.

    Raises:
        RunDirError: If the run ends first, or nothing answers within ``timeout`` seconds.
    """
    run_dir = Path(run_dir)
    deadline = time.monotonic() + timeout
    next_check = 0.0
    while True:
        ack = read_ack(run_dir)
        if ack is not None and ack.get("request") == request:
            return ack
        now = time.monotonic()
        if now >= next_check:
            if not is_running(run_dir):
                ack = read_ack(run_dir)
                if ack is not None and ack.get("request") == request:
                    return ack
                raise RunDirError(
                    f"run '{run_dir}' ended before it applied the request in {RUNTIME_FILE}; resume it to "
                    "continue training"
                )
            next_check = now + 0.5
        if now >= deadline:
            raise RunDirError(
                f"run '{run_dir}' did not answer within {timeout:g} s (it looks at {RUNTIME_FILE} between "
                "training steps, not during validation); the request stays in the file and applies at its next "
                "look, or wait longer with --timeout"
            )
        time.sleep(poll_s)


def check_accepts_updates(run_dir: str | Path) -> None:
    """Refuse a run that is not running, or that was started with ``experiment.runtime_updates: false``.

    Raises:
        ConfigError: Naming the run and the fix.
    """
    run_dir = Path(run_dir)
    if not is_running(run_dir):
        raise ConfigError(
            f"run '{run_dir}' is not running (no process holds its {LOCK_NAME}): runtime updates apply only to a "
            "run that trains; to continue a finished or stopped run with new settings, resume it"
        )
    try:
        config = read_yaml(run_dir / "config.yaml", what="run file", follow_symlinks=False)
    except ConfigError:
        return
    experiment = config.get("experiment") if isinstance(config, dict) else None
    if isinstance(experiment, dict) and experiment.get("runtime_updates") is False:
        raise ConfigError(
            f"run '{run_dir}' was started with experiment.runtime_updates: false and does not read {RUNTIME_FILE}; "
            "start runs with runtime_updates: true (the default) to change them while they train"
        )


# --- the built-in keys -------------------------------------------------------------------------------------------


def _optimizers(trainer: Any) -> list[Any]:
    optimizers = list(getattr(trainer, "optimizers", None) or [])
    if not optimizers:
        raise ValueError("the run has no optimiser yet")
    return optimizers


def _schedulers(trainer: Any) -> list[Any]:
    configs = getattr(trainer, "lr_scheduler_configs", None) or []
    return [getattr(c, "scheduler", None) for c in configs if getattr(c, "scheduler", None) is not None]


def read_lr(trainer: Any, pl_module: Any) -> float | list[float]:
    """The learning rate now: of the only one, or a list of every parameter group's."""
    rates = [float(g["lr"]) for opt in _optimizers(trainer) for g in opt.param_groups]
    return rates[0] if len(set(rates)) == 1 else rates


def _new_rate(rate: Any, old: Any) -> float:
    new = rate(float(old))
    if not (isinstance(new, (int, float)) and math.isfinite(new) and 0 < new <= MAX_RUNTIME_FLOAT):
        raise ValueError(
            f"the learning rate {float(old):g} would become {new:g}, outside (0, {MAX_RUNTIME_FLOAT:g}]; give a "
            "scale that keeps it a finite number > 0"
        )
    return float(new)


def _set_rates(trainer: Any, rate: Any) -> None:
    """Set every parameter group's ``lr`` to ``rate(old)``, and the schedulers' base rates alike.

    Every new rate is computed and checked first: one outside ``(0, MAX_RUNTIME_FLOAT]`` (a scale that
    overflows or underflows) raises ``ValueError`` and nothing changes.
    """
    groups = [group for opt in _optimizers(trainer) for group in opt.param_groups]
    schedulers = [s for s in _schedulers(trainer) if isinstance(getattr(s, "base_lrs", None), list)]
    rates = [(_new_rate(rate, g["lr"]), _new_rate(rate, g["initial_lr"]) if "initial_lr" in g else None)
             for g in groups]
    bases = [[_new_rate(rate, b) for b in s.base_lrs] for s in schedulers]
    for group, (lr, initial) in zip(groups, rates, strict=True):
        group["lr"] = lr
        if initial is not None:
            group["initial_lr"] = initial
    # A scheduler that computes the rate from its base rates (cosine, one-cycle) would undo a plain change.
    for scheduler, base in zip(schedulers, bases, strict=True):
        scheduler.base_lrs = base


def set_lr(trainer: Any, pl_module: Any, value: float) -> None:
    """Set the learning rate of every parameter group of every optimiser."""
    _set_rates(trainer, lambda old: value)


def scale_lr(trainer: Any, pl_module: Any, value: float) -> None:
    """Multiply the learning rate of every parameter group by ``value``."""
    _set_rates(trainer, lambda old: old * value)


def read_gradient_clip_val(trainer: Any, pl_module: Any) -> float | None:
    """The clipping value in effect: the trainer's, or in manual optimisation the module's hyper-parameter."""
    if getattr(pl_module, "automatic_optimization", True):
        return trainer.gradient_clip_val
    hparams = getattr(pl_module, "hparams", {})
    return hparams.get("gradient_clip_val") if hasattr(hparams, "get") else None


def set_gradient_clip_val(trainer: Any, pl_module: Any, value: float) -> None:
    """Set gradient clipping (``0`` switches it off).

    In automatic optimisation Lightning clips with ``trainer.gradient_clip_val``; in manual optimisation the
    module clips itself, so its ``gradient_clip_val`` hyper-parameter changes (as in
    :class:`~enhtrain.models.MLPClassifier`).
    """
    if getattr(pl_module, "automatic_optimization", True):
        trainer.gradient_clip_val = value or None
        return
    hparams = getattr(pl_module, "hparams", None)
    if hparams is None or "gradient_clip_val" not in hparams:
        raise ValueError(
            f"{type(pl_module).__name__} optimises manually and has no gradient_clip_val hyper-parameter, so it "
            "clips (or not) by itself"
        )
    hparams["gradient_clip_val"] = value or None


def read_log_every_n_steps(trainer: Any, pl_module: Any) -> int:
    """How often Lightning logs, in steps."""
    return int(trainer.log_every_n_steps)


def set_log_every_n_steps(trainer: Any, pl_module: Any, value: int) -> None:
    """Set how often Lightning logs."""
    trainer.log_every_n_steps = value


def read_max_epochs(trainer: Any, pl_module: Any) -> int | None:
    """The epoch limit."""
    return trainer.fit_loop.max_epochs


def set_max_epochs(trainer: Any, pl_module: Any, value: int) -> None:
    """Extend or shorten training to ``value`` epochs (``-1``: no limit); a limit already passed ends training."""
    trainer.fit_loop.max_epochs = value


def read_max_steps(trainer: Any, pl_module: Any) -> int:
    """The step limit."""
    return int(trainer.fit_loop.max_steps)


def set_max_steps(trainer: Any, pl_module: Any, value: int) -> None:
    """Extend or shorten training to ``value`` steps (``-1``: no limit); a limit already passed ends training."""
    # The fit loop's max_steps is a read-only view of its epoch loop's.
    trainer.fit_loop.epoch_loop.max_steps = value


def _early_stopping(trainer: Any) -> list[Any]:
    from lightning.pytorch.callbacks import EarlyStopping

    found = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    if not found:
        raise ValueError("the run has no EarlyStopping callback")
    return found


def read_early_stopping_patience(trainer: Any, pl_module: Any) -> int:
    """The patience of the (first) EarlyStopping callback."""
    return int(_early_stopping(trainer)[0].patience)


def set_early_stopping_patience(trainer: Any, pl_module: Any, value: int) -> None:
    """Set the patience of every EarlyStopping callback."""
    for callback in _early_stopping(trainer):
        callback.patience = value
