"""A checkpoint IO plugin that saves atomically in the checkpoint's own directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from enhtrain._io import TMP_PREFIX, _fsync_dir

__all__ = ["AtomicCheckpointIO"]


class _HashingWriter:
    """A binary file wrapper that hashes and counts what ``torch.save`` writes through it."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        try:
            return self._handle.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self._handle.flush()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves each checkpoint to a temp file beside the target, fsyncs it and renames it into place.

    A kill at any moment leaves either the previous file or the complete new one, never a partial file under
    the final name. The sha256 and size are computed while writing, for the manifest, at no extra read.

    Loading is safe by default: checkpoints load with ``weights_only=True`` unless ``trust_checkpoint``.

    Args:
        trust_checkpoint: Allow loading checkpoints that need pickled Python objects.

    Attributes:
        last_saved: Path of the most recent save to ``(sha256, size)``.
    """

    def __init__(self, trust_checkpoint: bool = False) -> None:
        super().__init__()
        self.trust_checkpoint = trust_checkpoint
        self.last_saved: dict[str, tuple[str, int]] = {}

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}"
        writer: _HashingWriter | None = None
        try:
            with open(tmp, "wb") as handle:
                writer = _HashingWriter(handle)
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
            raise
        assert writer is not None
        _fsync_dir(target.parent)
        self.last_saved[str(target)] = (writer.digest.hexdigest(), writer.size)

    @override
    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        from enhtrain.checkpoints.safe_load import safe_load

        return safe_load(path, trust=self.trust_checkpoint, map_location=map_location)
