"""Runtime Updates
===============

Applies what ``enhtrain runs set/stop/checkpoint`` asks of a run while it trains.

"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from typing_extensions import override

from enhtrain.config.runtime import (
    RuntimeKey,
    RuntimeKeyRegistry,
    check_saved_state,
    collect_runtime_keys,
    one_line,
    out_of_range,
    shown,
    validate_request,
)
from enhtrain.errors import ConfigError, EnhtrainError
from enhtrain.run.runtime import Polled, RuntimeReader, write_ack
from enhtrain.secrets import MASK, is_secret_key

__all__ = ["RuntimeUpdates", "RuntimeUpdatesState"]


class RuntimeUpdates(Callback):
    r"""Read ``<run_dir>/runtime.yaml`` between training steps and apply the updates it asks for.

    The file is looked at after a training step at most every ``every_n_steps`` steps and every
    ``min_interval_s`` seconds, whichever is rarer: one ``os.stat``, and a read only when the file changed. Under
    DDP global rank 0 looks every ``ddp_every_n_steps`` steps and broadcasts what it found, so that every rank
    applies an update at the same step.

    Each value is validated against its key's type and range (:mod:`enhtrain.config.runtime`); an invalid one,
    or one that does not apply to this run, is rejected with a warning and training goes on. A request is never
    fatal: a file that cannot be read or breaks the reader's limits (size, nodes, nesting, a link, a pipe) is
    answered and ignored, and any failure to validate, apply, record or answer is a warning. For each applied
    update, global rank 0:

    - logs the metric ``runtime/<key>`` (numeric keys; ``optimizer.lr_scale`` logs ``runtime/optimizer.lr``),
      straight to ``trainer.loggers`` at ``trainer.global_step``;
    - calls ``record`` with ``{"step", "key", "old", "new", "source"}`` (the run session appends it to
      ``metadata.json`` under ``runtime_updates``);
    - answers in ``runtime.ack.yaml`` with the request's id, which the commands wait for.

    The action ``checkpoint`` saves a checkpoint now (``last.ckpt`` through the run's checkpoint callback when it
    keeps one, else ``runtime-step=N.ckpt``); ``stop`` saves one and stops training gracefully, and
    :attr:`stop_requested` tells the session to mark the run ``stopped``.

    The values set are part of the callback's state in checkpoints, and a resumed run applies them again when
    fit starts (recorded with the source ``resume``), unless its own config changed that value (the optimiser's
    learning rate comes back with the optimiser's state anyway).

    Args:
        run_dir: The run directory.
        every_n_steps: Look at the file at most every this many steps.
        min_interval_s: And at most every this many seconds.
        ddp_every_n_steps: Under DDP, how often the ranks agree on whether there is an update (one small
            broadcast).
        record: Called on global rank 0 with each applied update.
        keys: The accepted keys; by default every plugin's ``enhtrain_runtime_keys``, collected at setup.

    Attributes:
        stop_requested: Whether a ``stop`` action ended training.
        applied: Per target key, ``{"launch": value at launch, "value": value now}``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        every_n_steps: int = 10,
        min_interval_s: float = 1.0,
        ddp_every_n_steps: int = 100,
        record: Callable[[dict[str, Any]], None] | None = None,
        keys: RuntimeKeyRegistry | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.reader = RuntimeReader(self.run_dir, every_n_steps=every_n_steps, min_interval_s=min_interval_s)
        self.ddp_every_n_steps = max(1, ddp_every_n_steps)
        self.record = record
        self.keys = keys
        self.stop_requested = False
        self.applied: dict[str, dict[str, Any]] = {}
        self._restored: dict[str, dict[str, Any]] = {}
        self._last_step = -1

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.keys is None:
            self.keys = collect_runtime_keys()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"applied": {k: dict(v) for k, v in self.applied.items()}}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The commands refuse such a checkpoint before the run starts; a Trainer used directly is told here.
        try:
            check_saved_state({"callbacks": {"RuntimeUpdates": state_dict}}, "the checkpoint")
        except EnhtrainError as err:
            rank_zero_warn(f"enhtrain: runtime updates not re-applied: {err}")
            return
        applied = state_dict.get("applied")
        if isinstance(applied, dict):
            self._restored = {k: v for k, v in applied.items() if isinstance(v, dict) and "value" in v}

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Before the fit loop decides whether it is done, so that a restored limit counts.
        self._reapply(trainer, pl_module)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Strategies that restore checkpoints after setup load the callback's state after on_fit_start.
        self._reapply(trainer, pl_module)

    def _reapply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Apply the values of a resumed run again, unless this run's config changed them."""
        restored, self._restored = self._restored, {}
        if not restored or self.keys is None:
            return
        for target, state in restored.items():
            if target not in self.keys:
                continue
            key = self.keys.get(target)
            try:
                read = key.load_read()
                current = read(trainer, pl_module) if read is not None else state.get("launch")
                if current != state.get("launch"):
                    # Either it came back with the checkpoint (the optimiser's rate) or the config changed it.
                    self.applied[target] = dict(state)
                    continue
                self._apply(trainer, pl_module, key, key.validate(state["value"]), source="resume")
            except Exception as err:  # a plugin's apply may raise anything: training goes on without the value
                rank_zero_warn(f"enhtrain: runtime update {target} not re-applied on resume: {_one_line(err)}")

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        if trainer.world_size > 1:
            if step % self.ddp_every_n_steps:
                return
            polled = self.reader.poll(step) if trainer.is_global_zero else None
            polled = trainer.strategy.broadcast(polled, src=0)
        else:
            polled = self.reader.poll(step)
        if polled is not None:
            try:
                self._handle(trainer, pl_module, polled)
            except Exception as err:  # a request never ends training
                rank_zero_warn(f"enhtrain: runtime request ignored at step {step}: {_one_line(err)}")

    def _handle(self, trainer: pl.Trainer, pl_module: pl.LightningModule, polled: Polled) -> None:
        """Validate and apply one request on this rank; rank 0 records it and answers."""
        assert self.keys is not None
        answer: dict[str, Any] = {"request": polled.request, "step": trainer.global_step, "applied": [],
                                  "rejected": []}
        if polled.error is not None:
            answer["rejected"].append(polled.error)
            self._finish(trainer, answer)
            return
        try:
            request, valid, rejected = validate_request(polled.data, self.keys)
        except ConfigError as err:
            answer["rejected"].append(str(err))
            self._finish(trainer, answer)
            return
        source = request.source or "runtime.yaml"
        answer["rejected"] += rejected
        for name, value in valid.items():
            try:
                answer["applied"].append(self._apply(trainer, pl_module, self.keys.get(name), value, source))
            except Exception as err:  # a plugin's apply may raise anything: the update is rejected
                answer["rejected"].append(f"runtime update {name}={shown(value)}: {_one_line(err)}")
        if "checkpoint" in request.actions or "stop" in request.actions:
            try:
                path = self._save_checkpoint(trainer)
            except Exception as err:  # a full disk or a broken manifest: answered, and training goes on
                answer["rejected"].append(f"checkpoint not saved: {_one_line(err)}")
            else:
                answer["checkpoint"] = path
                self._note(trainer, {"key": "checkpoint", "old": None, "new": path}, source)
        if "stop" in request.actions:
            trainer.should_stop = True
            self.stop_requested = True
            answer["stopped"] = True
            self._note(trainer, {"key": "stop", "old": None, "new": True}, source)
        self._finish(trainer, answer)

    def _apply(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, key: RuntimeKey, value: Any, source: str
    ) -> dict[str, Any]:
        read = key.load_read()
        old = read(trainer, pl_module) if read is not None else None
        key.load_apply()(trainer, pl_module, value)
        new = read(trainer, pl_module) if read is not None else value
        state = self.applied.setdefault(key.target, {"launch": old})
        state["value"] = new
        secret = is_secret_key(key.name.rsplit(".", 1)[-1])
        entry = {"key": key.name, "old": MASK if secret else old, "new": MASK if secret else new}
        self._note(trainer, entry, source)
        numeric = isinstance(new, (int, float)) and not isinstance(new, bool) and out_of_range(new) is None
        if key.numeric and numeric and trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({f"runtime/{key.target}": float(new)}, step=trainer.global_step)
        rank_zero_info(
            f"enhtrain: runtime update at step {trainer.global_step}: {key.name} {shown(entry['old'])} -> "
            f"{shown(entry['new'])} ({one_line(source)})"
        )
        return entry

    def _note(self, trainer: pl.Trainer, entry: dict[str, Any], source: str) -> None:
        if self.record is not None and trainer.is_global_zero:
            try:
                self.record({"step": trainer.global_step, **entry, "source": one_line(source, 500)})
            except Exception as err:  # the record is a file write: a failure is a warning, not the run's end
                rank_zero_warn(f"enhtrain: runtime update not recorded in metadata.json: {_one_line(err)}")

    def _save_checkpoint(self, trainer: pl.Trainer) -> str:
        """Save a checkpoint now, on every rank (the strategy has rank 0 write it); return its path."""
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath:
            if ckpt.save_last:
                ckpt._save_last_checkpoint(trainer, ckpt._monitor_candidates(trainer))
                return ckpt.last_model_path
            path = str(Path(ckpt.dirpath) / f"runtime-step={trainer.global_step}{ckpt.FILE_EXTENSION}")
            ckpt._save_checkpoint(trainer, path)
            return path
        path = str(self.run_dir / "checkpoints" / f"runtime-step={trainer.global_step}.ckpt")
        trainer.save_checkpoint(path)
        return path

    def _finish(self, trainer: pl.Trainer, answer: dict[str, Any]) -> None:
        for reason in answer["rejected"][:20]:
            rank_zero_warn(f"enhtrain: runtime update rejected at step {trainer.global_step}: {_one_line(reason)}")
        if trainer.is_global_zero:
            try:
                write_ack(self.run_dir, answer)
            except Exception as err:  # a link in its place, a full disk: the run trains on unanswered
                rank_zero_warn(f"enhtrain: cannot answer the runtime request: {_one_line(err)}")


def _one_line(err: object) -> str:
    return one_line(err) or type(err).__name__


class RuntimeUpdatesState(Callback):
    """Takes the :class:`RuntimeUpdates` state of a run's checkpoint where nothing trains (validate, test, predict).

    Lightning asks for every callback whose state a checkpoint holds; this one accepts the state of enhtrain's own
    runtime updates and does nothing with it.
    """

    @property
    @override
    def state_key(self) -> str:
        return RuntimeUpdates.__qualname__

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass
