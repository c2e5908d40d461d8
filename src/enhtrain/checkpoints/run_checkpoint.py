"""A ``ModelCheckpoint`` that writes enhtrain metadata into each checkpoint and keeps the manifest."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from typing_extensions import override

from enhtrain._io import TMP_PREFIX
from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO, _masked
from enhtrain.checkpoints.manifest import SHARD_DIGEST, Manifest, file_digests, overall_digest, sha256_file
from enhtrain.checkpoints.retention import plan_prune
from enhtrain.checkpoints.rng import collect_rng_states, restore_rng_states
from enhtrain.checkpoints.shard_hashing import hashing_writes
from enhtrain.checkpoints.sharded import (
    check_world_size,
    commit_directory,
    own_files,
    remove_checkpoint_path,
    remove_leftovers,
    strategy_writes_directory,
)
from enhtrain.errors import CheckpointError
from enhtrain.security import PathEscapeError, inside, is_plain_name

__all__ = ["CheckpointProvenance", "RunCheckpoint"]


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            out[key] = float(value)
    return out


def _gather(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj``, in rank order (a collective: every rank calls it)."""
    import torch.distributed as dist

    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _digests(root: Path, names: list[str], streamed: dict[str, tuple[str, int]]) -> dict[str, dict[str, Any]]:
    """Size and checksum of each of ``names``: taken from those made while writing, else read from the file."""
    out: dict[str, dict[str, Any]] = {}
    rest = []
    for name in names:
        found = streamed.get(name) or streamed.get(name + ".tmp")  # torch renames `.metadata.tmp` when done
        if found is not None and "/" not in name and (root / name).stat().st_size == found[1]:
            out[name] = {"size": found[1], SHARD_DIGEST: found[0]}
        else:
            rest.append(name)
    out.update(file_digests(root, rest))
    return out


def _present(path: Path, entry: dict[str, Any]) -> bool:
    if entry.get("files") is not None:
        return path.is_dir() and not path.is_symlink()
    return path.is_file()


def _relocated(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``ModelCheckpoint`` state whose file paths under ``old`` now point under ``new``."""

    def move(path: Any) -> Any:
        if isinstance(path, str) and path and Path(path).parent == Path(old):
            return str(Path(new) / Path(path).name)
        return path

    out = {key: move(value) for key, value in state.items()}
    out["dirpath"] = new
    if isinstance(state.get("best_k_models"), dict):
        out["best_k_models"] = {move(k): v for k, v in state["best_k_models"].items()}
    return out


def _provenance(
    run_info: dict[str, Any], trainer: pl.Trainer, monitor: str | None, mode: str | None, started: float
) -> dict[str, Any]:
    """The ``enhtrain`` entry of a checkpoint: the run, the step, the metrics and the random states."""
    return {
        **run_info,
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "metrics": _floats(trainer.callback_metrics),
        "monitor": monitor,
        "mode": mode,
        "wall_time_s": round(time.monotonic() - started, 3),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rng": collect_rng_states(),
        "strategy": type(trainer.strategy).__name__,
        "world_size": trainer.world_size,
    }


def _mask_if_sharded(trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
    """Mask the secrets of a checkpoint that the strategy writes itself, past the IO plugin that masks them."""
    if strategy_writes_directory(trainer.strategy):
        checkpoint.update(_masked(checkpoint))


class CheckpointProvenance(Callback):
    """Gives the checkpoints of a user's ``ModelCheckpoint`` the ``enhtrain`` entry that :class:`RunCheckpoint` writes.

    Used when a ``ModelCheckpoint`` given to the Trainer replaces enhtrain's: its checkpoints record the run,
    the step, the metrics (which the manifest lists) and the random states, restored when training resumes.

    Args:
        run_info: What to embed in every checkpoint (name, version, config, config_hash, git, versions).
    """

    def __init__(self, run_info: dict[str, Any]) -> None:
        self.run_info = dict(run_info)
        self._started = time.monotonic()
        self._rng_to_restore: dict[str, Any] | None = None

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        given = trainer.checkpoint_callback
        monitor = getattr(given, "monitor", None)
        mode = getattr(given, "mode", None)
        checkpoint["enhtrain"] = _provenance(self.run_info, trainer, monitor, mode, self._started)
        _mask_if_sharded(trainer, checkpoint)

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get("enhtrain")
        rng = saved.get("rng") if isinstance(saved, dict) else None
        self._rng_to_restore = rng if isinstance(rng, dict) else None

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng_to_restore is not None:
            restore_rng_states(self._rng_to_restore)
            self._rng_to_restore = None


class RunCheckpoint(ModelCheckpoint):
    """Saves checkpoints into a run's ``checkpoints/`` with provenance, and records each in the manifest.

    Every checkpoint carries an ``enhtrain`` entry (run name and version, config hash, the masked config,
    git commit, package versions, step, epoch, metrics, the monitored metric, wall time, and the global random
    states, which are restored when training resumes from it). ``checkpoints/manifest.json`` lists every
    file with its sha256, size, step, epoch and metrics and is rewritten atomically after each save and
    deletion. Leftover temp files of a killed run, and manifest entries of files it had deleted, are removed
    when training starts.

    With ``keep_last``, the files kept are the ``save_top_k`` best by the monitored metric, the ``keep_last``
    newest, the best one and ``last.ckpt``; the others are deleted after each save (see
    :func:`enhtrain.checkpoints.retention.plan_prune`).

    Args:
        run_info: What to embed in every checkpoint (name, version, config, config_hash, git, versions).
        keep_last: Also keep this many of the newest checkpoints; ``None`` leaves retention to ``save_top_k``.
        **kwargs: Passed to :class:`~lightning.pytorch.callbacks.ModelCheckpoint`.

    Raises:
        ValueError: If ``keep_last`` is negative.
    """

    def __init__(self, run_info: dict[str, Any] | None = None, keep_last: int | None = None, **kwargs: Any) -> None:
        if keep_last is not None and keep_last < 0:
            raise ValueError(f"`keep_last` must be 0 or more, got {keep_last}")
        top_k = kwargs.get("save_top_k", 1)
        self.keep_last = keep_last if top_k != 0 else None
        self._keep_best: int | None = None
        if self.keep_last is not None:
            if kwargs.get("monitor") is not None and top_k != -1:
                self._keep_best = top_k
            kwargs["save_top_k"] = -1
        super().__init__(**kwargs)
        self.run_info = dict(run_info or {})
        self._started = time.monotonic()
        self._rng_to_restore: dict[str, Any] | None = None
        self._last_file_step: int | None = None

    @property
    def manifest(self) -> Manifest:
        """The manifest of :attr:`dirpath`."""
        assert self.dirpath is not None
        return Manifest(self.dirpath)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.dirpath and trainer.ckpt_path and Path(trainer.ckpt_path).parent == Path(self.dirpath):
            resumed = Path(trainer.ckpt_path)
            if resumed.is_dir():
                check_world_size(self.manifest.entry(resumed.name), resumed, trainer.world_size)
        if trainer.is_global_zero and self.dirpath and Path(self.dirpath).is_dir():
            remove_leftovers(self.dirpath)
            # A run killed between deleting a checkpoint and rewriting the manifest leaves an entry without a file.
            manifest = self.manifest
            missing = [e["file"] for e in manifest.entries if not _present(manifest.directory / e["file"], e)]
            for name in missing:
                manifest.remove(name)
            if missing:
                manifest.save()

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["enhtrain"] = _provenance(self.run_info, trainer, self.monitor, self.mode, self._started)
        _mask_if_sharded(trainer, checkpoint)

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        saved = checkpoint.get("enhtrain")
        rng = saved.get("rng") if isinstance(saved, dict) else None
        self._rng_to_restore = rng if isinstance(rng, dict) else None

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A run directory that was moved or copied still holds this run's checkpoints: follow them to the new
        # place, instead of treating `last.ckpt` as another run's file and saving `last-v1.ckpt` beside it.
        saved = state_dict.get("dirpath")
        if isinstance(saved, str) and self.dirpath and saved != self.dirpath and Path(saved).name == "checkpoints":
            state_dict = _relocated(state_dict, saved, str(self.dirpath))
        super().load_state_dict(state_dict)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The random states of the moment of the save are restored once the sanity check, which draws from
        # them, is over, so that a resumed run draws the same numbers (dropout, augmentation) as an
        # uninterrupted one.
        super().on_train_start(trainer, pl_module)
        if self._rng_to_restore is not None:
            restore_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    def _guard(self, filepath: str) -> None:
        """The path gate for a checkpoint file: a plain name inside :attr:`dirpath`."""
        assert self.dirpath is not None
        if not is_plain_name(Path(filepath).name) or Path(filepath).parent != Path(self.dirpath):
            raise PathEscapeError(
                f"checkpoint file '{filepath}' is not a plain file name in '{self.dirpath}'; use a plain "
                "experiment.checkpoint.filename"
            )
        inside(filepath, self.dirpath, what="checkpoint file")

    @override
    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self._guard(filepath)
        sharded = strategy_writes_directory(trainer.strategy)
        files = self._save_sharded(trainer, filepath) if sharded else None
        if not sharded:
            super()._save_checkpoint(trainer, filepath)
        if Path(filepath).stem.startswith(self.CHECKPOINT_NAME_LAST):
            self._last_file_step = trainer.global_step  # on every rank, so that all agree in on_train_end
        if not trainer.is_global_zero:
            return
        extra: dict[str, Any] = {}
        if files is not None:
            digest = (overall_digest(files), sum(f["size"] for f in files.values()))
            extra = {"files": files, "world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__}
        else:
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
                **extra,
            }
        )
        if Path(filepath).stem.startswith(self.CHECKPOINT_NAME_LAST):
            manifest.data["last"] = name
        else:
            manifest.data["newest"] = name
        if self.monitor is not None and self.best_model_path:
            manifest.data["best"] = Path(self.best_model_path).name
        manifest.data["monitor"] = self.monitor
        manifest.data["mode"] = self.mode
        manifest.save()
        if self.keep_last is not None:
            self._apply_retention(trainer, manifest)

    def _save_sharded(self, trainer: pl.Trainer, filepath: str) -> dict[str, Any] | None:
        """Write a sharded checkpoint under a temporary name, hash it on every rank, and commit it on rank 0.

        Every rank checksums the shards it wrote, as it writes them, and rank 0 gathers the digests, so no rank
        reads another's shards. The directory gets its final name by one rename, after all ranks are done.

        Returns:
            On rank 0, each file of the checkpoint to its size and checksum; ``None`` on the other ranks.

        Raises:
            CheckpointError: On every rank, if a file another rank wrote is not visible to rank 0 (the
                checkpoint folder must be on a file system all nodes share).
        """
        assert self.dirpath is not None
        strategy, root, final = trainer.strategy, Path(self.dirpath), Path(filepath)
        tmp = root / f"{TMP_PREFIX}{final.name}"
        if trainer.is_global_zero:
            root.mkdir(parents=True, exist_ok=True)
            if tmp.exists() or tmp.is_symlink():
                remove_leftovers(root)
        # Where rank 0 saves. The broadcast is also the barrier: no rank writes before rank 0 cleared the name.
        tmp = Path(strategy.broadcast(str(tmp)))
        with hashing_writes(tmp) as streamed:
            super()._save_checkpoint(trainer, str(tmp))  # Lightning's save ends with a barrier of all ranks
        self._last_checkpoint_saved = filepath
        mine = _digests(tmp, own_files(tmp, trainer.global_rank, trainer.world_size), streamed)
        parts = _gather(mine, trainer.world_size)
        files: dict[str, Any] | None = None
        problem = None
        if trainer.is_global_zero:
            files = {}
            for rank, part in enumerate(parts):
                for name, digest in part.items():
                    if not (tmp / name).is_file():
                        problem = (
                            f"checkpoint file '{name}' written by rank {rank} is not visible to rank 0 in '{tmp}'; "
                            "put experiment.root_dir on a file system that every node shares"
                        )
                    files[name] = digest
            if problem is None:
                commit_directory(tmp, final, root)
        problem = strategy.broadcast(problem)
        if problem is not None:
            raise CheckpointError(problem)
        return files

    def _apply_retention(self, trainer: pl.Trainer, manifest: Manifest) -> None:
        assert self.dirpath is not None
        for name in plan_prune(manifest, self.keep_last, self._keep_best):
            path = str(Path(self.dirpath) / name)
            self.best_k_models.pop(path, None)
            self._remove_checkpoint(trainer, path)

    @override
    def _update_best_and_save(self, current: Any, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._update_best_and_save(current, trainer, monitor_candidates)
        if trainer.is_global_zero and self.best_model_path:
            manifest = self.manifest
            manifest.data["best"] = Path(self.best_model_path).name
            manifest.save()

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning saves `last.ckpt` only at a step where it saves another checkpoint, so that, when the best
        # checkpoint is from an earlier epoch or the final step falls between two saves, `last.ckpt` would hold
        # an older state than the one training ended with. Save it once more, at the final step.
        super().on_train_end(trainer, pl_module)
        if not self.save_last or self.dirpath is None or trainer.fast_dev_run or trainer.global_step == 0:
            return
        if self._last_file_step == trainer.global_step:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = trainer.global_step

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
        self._guard(filepath)
        if strategy_writes_directory(trainer.strategy):
            if trainer.is_global_zero:
                remove_checkpoint_path(Path(filepath).parent, Path(filepath).name, sharded=True)
        else:
            super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            manifest = self.manifest
            manifest.remove(Path(filepath).name)
            manifest.save()
