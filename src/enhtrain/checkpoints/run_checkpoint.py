"""A ``ModelCheckpoint`` that writes enhtrain metadata into each checkpoint and keeps the manifest."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from enhtrain._io import TMP_PREFIX
from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO
from enhtrain.checkpoints.manifest import Manifest, sha256_file

__all__ = ["RunCheckpoint"]


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            out[key] = float(value)
    return out


class RunCheckpoint(ModelCheckpoint):
    """Saves checkpoints into a run's ``checkpoints/`` with provenance, and records each in the manifest.

    Every checkpoint carries an ``enhtrain`` entry (run name and version, config hash, the masked config,
    git commit, package versions, step, epoch, metrics, wall time). ``checkpoints/manifest.json`` lists every
    file with its sha256, size, step, epoch and metrics and is rewritten atomically after each save and
    deletion. Leftover temp files of a killed run are removed when training starts.

    Args:
        run_info: What to embed in every checkpoint (name, version, config, config_hash, git, versions).
        **kwargs: Passed to :class:`~lightning.pytorch.callbacks.ModelCheckpoint`.
    """

    def __init__(self, run_info: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_info = dict(run_info or {})
        self._started = time.monotonic()

    @property
    def manifest(self) -> Manifest:
        """The manifest of :attr:`dirpath`."""
        assert self.dirpath is not None
        return Manifest(self.dirpath)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath and Path(self.dirpath).is_dir():
            for leftover in Path(self.dirpath).glob(TMP_PREFIX + "*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["enhtrain"] = {
            **self.run_info,
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "metrics": _floats(trainer.callback_metrics),
            "wall_time_s": round(time.monotonic() - self._started, 3),
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    @override
    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if not trainer.is_global_zero:
            return
        io = trainer.strategy.checkpoint_io
        digest = io.last_saved.pop(filepath, None) if isinstance(io, AtomicCheckpointIO) else None
        if digest is None:
            digest = (sha256_file(filepath), Path(filepath).stat().st_size)
        manifest = self.manifest
        name = Path(filepath).name
        manifest.add(
            {
                "file": name,
                "sha256": digest[0],
                "size": digest[1],
                "step": trainer.global_step,
                "epoch": trainer.current_epoch,
                "metrics": _floats(trainer.callback_metrics),
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        if Path(filepath).stem.startswith(self.CHECKPOINT_NAME_LAST):
            manifest.data["last"] = name
        else:
            manifest.data["newest"] = name
        manifest.data["monitor"] = self.monitor
        manifest.data["mode"] = self.mode
        manifest.save()

    @override
    def _update_best_and_save(self, current: Any, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._update_best_and_save(current, trainer, monitor_candidates)
        if trainer.is_global_zero and self.best_model_path:
            manifest = self.manifest
            manifest.data["best"] = Path(self.best_model_path).name
            manifest.save()

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # SIGTERM (pre-emption, SLURM, `kill`) and Ctrl+C stop between two batches: save the state reached so
        # that `resume: auto` continues from it.
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)) or self.dirpath is None:
            return
        if trainer.state.fn != "fit" or trainer.global_step == 0:
            return
        if self._last_global_step_saved == trainer.global_step:
            return
        path = str(Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")
        self._save_checkpoint(trainer, path)
        self.last_model_path = path
        self._last_global_step_saved = trainer.global_step

    @override
    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            manifest = self.manifest
            manifest.remove(Path(filepath).name)
            manifest.save()
