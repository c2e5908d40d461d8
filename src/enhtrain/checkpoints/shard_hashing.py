"""Checksumming the shards ``torch.distributed.checkpoint`` writes, as torch writes them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enhtrain.checkpoints.manifest import SHARD_DIGEST, new_digest

__all__ = ["hashing_writes"]


class _ChecksummingStream:
    """A stream wrapper that checksums each block torch writes, right after it went to the file.

    The block is still in the CPU's cache and XXH3 reads it at memory speed, so the checksum of a rank's shard
    costs about 2 % of writing it: no thread, no reading the file back. A stream that seeks, or writes less than
    it was given, is not checksummed here (its file is read afterwards).

    Args:
        handle: The binary file torch's ``FileSystem`` opened.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.digest = new_digest(SHARD_DIGEST)
        self.size = 0
        self.complete = True

    def write(self, data: Any) -> int:
        written = self._handle.write(data)
        view = memoryview(data)
        if written is not None and written != view.nbytes:
            self.complete = False
        self.digest.update(view)
        self.size += view.nbytes
        return written

    def seek(self, *args: Any) -> int:
        self.complete = False
        return self._handle.seek(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextlib.contextmanager
def hashing_writes(directory: str | Path) -> Iterator[dict[str, tuple[str, int]]]:
    """Checksum the files that ``torch.distributed.checkpoint`` writes into ``directory``, while it writes them.

    While the context is active, every stream that torch's ``FileSystem`` opens for writing in ``directory`` is
    wrapped in a :class:`_ChecksummingStream`: torch writes as it would without enhtrain, and each block is
    added to the file's XXH3 checksum (:data:`~enhtrain.checkpoints.manifest.SHARD_DIGEST`) once written.

    Yields:
        File name to ``(xxh3_128 hex digest, size)``, filled as each stream closes (``.metadata`` appears under
        the temporary name torch writes it to, ``.metadata.tmp``). A stream that seeks or fails is left out.
    """
    from torch.distributed.checkpoint import filesystem

    original = filesystem.FileSystem.create_stream
    root = os.path.realpath(directory)
    digests: dict[str, tuple[str, int]] = {}

    @contextlib.contextmanager
    def create_stream(self: Any, path: str | os.PathLike, mode: str) -> Iterator[Any]:
        with original(self, path, mode) as stream:
            if "w" not in mode or os.path.dirname(os.path.realpath(path)) != root:
                yield stream
                return
            checksummed = _ChecksummingStream(stream)
            yield checksummed
            if checksummed.complete:
                digests[os.path.basename(path)] = (checksummed.digest.hexdigest(), checksummed.size)

    filesystem.FileSystem.create_stream = create_stream  # type: ignore[method-assign]
    try:
        yield digests
    finally:
        filesystem.FileSystem.create_stream = original  # type: ignore[method-assign]
