"""A checkpoint IO plugin that saves atomically in the checkpoint's own directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from enhtrain._io import TMP_PREFIX, fsync_path, start_writeback
from enhtrain.security import inside

__all__ = ["AtomicCheckpointIO"]

# What Lightning stores the model's and the data module's hyper-parameters under.
_HPARAM_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")
# Writes at least this large (tensor storages) are hashed while another thread writes them to the file.
_PARALLEL_WRITE_BYTES = 1 << 20


class _HashingWriter:
    """A binary file wrapper that hashes and counts what ``torch.save`` writes through it.

    Large writes go to the file on a worker thread while the calling thread hashes the same bytes (both
    release the GIL), and the writeback of each large write starts at once. Every write is complete, on
    both threads, before :meth:`write` returns: ``torch.save`` may free or reuse the buffer afterwards.

    Args:
        handle: The open binary file.
        pool: A one-thread executor for the large writes; ``None`` writes everything on the calling thread.
    """

    def __init__(self, handle: Any, pool: ThreadPoolExecutor | None = None) -> None:
        self._handle = handle
        self._pool = pool
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        view = memoryview(data)
        try:
            if self._pool is not None and view.nbytes >= _PARALLEL_WRITE_BYTES:
                pending = self._pool.submit(self._write_through, view, self.size)
                self.digest.update(view)
                written = pending.result()
            else:
                self.digest.update(view)
                written = self._handle.write(view)
        except OSError as err:
            self.error = self.error or err
            raise
        self.size += view.nbytes
        return written

    def _write_through(self, view: memoryview, offset: int) -> int:
        written = self._handle.write(view)
        self._handle.flush()
        start_writeback(self._handle.fileno(), offset, view.nbytes)
        return written

    def flush(self) -> None:
        self._handle.flush()


def _stop_within(err: BaseException) -> BaseException | None:
    """The ``KeyboardInterrupt`` or ``SystemExit`` (a signal) that ``err`` was raised while handling, if any."""
    seen: set[int] = set()
    cause = err.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, SystemExit)):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def _masked(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``checkpoint`` whose hyper-parameter blocks have every secret masked."""
    keys = [k for k in _HPARAM_KEYS if k in checkpoint]
    if not keys:
        return checkpoint
    from enhtrain.secrets import mask_secrets

    out = dict(checkpoint)
    for key in keys:
        out[key] = mask_secrets(checkpoint[key])
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves each checkpoint to a temp file beside the target, fsyncs it and renames it into place.

    A kill at any moment leaves either the previous file or the complete new one, never a partial file under
    the final name. The sha256 and size are computed while writing, for the manifest, at no extra read: the
    tensors are hashed on the calling thread while a second thread writes them, so hashing costs little
    more than the write itself.

    Secrets never reach the file: the hyper-parameters of the model and of the data module
    (``hyper_parameters`` and ``datamodule_hyper_parameters``) are saved with every secret masked (see
    :func:`enhtrain.secrets.mask_secrets`).

    Loading is safe by default: checkpoints load with ``weights_only=True`` unless ``trust_checkpoint``.

    With ``manifest_dir``, every checkpoint saved into that folder, whichever callback (or
    ``trainer.save_checkpoint``) saves it, is listed in its ``manifest.json`` with its sha256, size, step and
    epoch (and the metrics that enhtrain's provenance entry recorded), and every checkpoint removed from it is
    taken out of the manifest.

    Args:
        trust_checkpoint: Allow loading checkpoints that need pickled Python objects.
        root: The run directory: a checkpoint path that resolves outside it is refused (the path gate).
        manifest_dir: The run's ``checkpoints/`` folder, whose manifest this IO keeps (only the process that
            writes run files passes it).

    Attributes:
        last_saved: Path of the most recent save to ``(sha256, size)``.
    """

    def __init__(
        self, trust_checkpoint: bool = False, root: str | Path | None = None, manifest_dir: str | Path | None = None
    ) -> None:
        super().__init__()
        self.trust_checkpoint = trust_checkpoint
        self.root = root
        self.manifest_dir = Path(manifest_dir) if manifest_dir is not None else None
        self.last_saved: dict[str, tuple[str, int]] = {}

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        target = Path(path)
        if self.root is not None:
            target = inside(target, self.root, what="checkpoint file")
        checkpoint = _masked(checkpoint)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}"
        writer: _HashingWriter | None = None
        try:
            with open(tmp, "wb") as handle, ThreadPoolExecutor(1, thread_name_prefix="enhtrain-ckpt") as pool:
                writer = _HashingWriter(handle, pool)
                torch.save(checkpoint, writer)  # type: ignore[arg-type]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(err, RuntimeError) and writer is not None and writer.error is not None:
                # torch's zip writer reports a failed write as a RuntimeError; raise the write's own error.
                raise writer.error from err
            stop = _stop_within(err) if isinstance(err, RuntimeError) else None
            if stop is not None:
                # Ctrl+C or SIGTERM during a write: torch's zip writer, closing, finds the file short and raises a
                # RuntimeError of its own; the run ends as the signal asks.
                raise stop from None
            raise
        assert writer is not None
        fsync_path(target.parent)
        self.last_saved[str(target)] = (writer.digest.hexdigest(), writer.size)
        if self._in_manifest_dir(target):
            self._record(target, checkpoint, self.last_saved[str(target)])

    @override
    def remove_checkpoint(self, path: _PATH) -> None:
        target = Path(path)
        if self.root is not None:
            inside(target, self.root, what="checkpoint file")
        super().remove_checkpoint(path)
        if self._in_manifest_dir(target):
            from enhtrain.checkpoints.manifest import Manifest

            manifest = Manifest(target.parent)
            if manifest.entry(target.name) is not None:
                manifest.remove(target.name)
                manifest.save()

    def _in_manifest_dir(self, target: Path) -> bool:
        if self.manifest_dir is None:
            return False
        return os.path.realpath(target.parent) == os.path.realpath(self.manifest_dir)

    def _record(self, target: Path, checkpoint: dict[str, Any], digest: tuple[str, int]) -> None:
        """List a checkpoint saved into the run's ``checkpoints/`` in its manifest."""
        from datetime import datetime, timezone

        from enhtrain.checkpoints.manifest import Manifest

        provenance = checkpoint.get("enhtrain")
        metrics = provenance.get("metrics") if isinstance(provenance, dict) else None
        step, epoch = checkpoint.get("global_step"), checkpoint.get("epoch")
        manifest = Manifest(target.parent)
        manifest.add(
            {
                "file": target.name,
                "sha256": digest[0],
                "size": digest[1],
                "step": step if isinstance(step, int) else None,
                "epoch": epoch if isinstance(epoch, int) else None,
                "metrics": metrics if isinstance(metrics, dict) else {},
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        manifest.data["last" if target.stem.startswith("last") else "newest"] = target.name
        manifest.save()

    @override
    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        from enhtrain.checkpoints.safe_load import safe_load

        return safe_load(path, trust=self.trust_checkpoint, map_location=map_location)
