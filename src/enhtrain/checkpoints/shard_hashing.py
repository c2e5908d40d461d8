"""Hashing the shards ``torch.distributed.checkpoint`` writes, off the write path."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["hashing_writes"]

# Written bytes are handed to the hashing thread in steps of this size (and when torch asks for the fd to fsync).
_PUBLISH_BYTES = 4 << 20
# The hashing thread reads the file back in chunks of this size.
_CHUNK_BYTES = 4 << 20


class _ReadBackHasher:
    """A stream wrapper whose writes go straight to the file while a thread hashes them from the page cache.

    The writing thread does what it does without enhtrain (no copy, no waiting for a digest). Every
    :data:`_PUBLISH_BYTES` the written bytes are flushed and handed to a hashing thread, which reads them back
    with ``pread`` at the lowest scheduling priority: it takes the CPU time the writers leave, while torch goes
    on writing and while it waits for the fsync of the file. :meth:`close` waits for the digest. A stream that
    seeks is not hashed here (its file is hashed afterwards).

    Args:
        handle: The binary file torch's ``FileSystem`` opened.
        path: Its path (opened again, read-only, for the hashing thread).
    """

    def __init__(self, handle: Any, path: str | os.PathLike) -> None:
        self._handle = handle
        self._reader = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.digest = hashlib.sha256()
        self.size = 0
        self.seeked = False
        self.error: OSError | None = None
        self._published = 0
        self._hashed = 0
        self._closing = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._hash_published, name="enhtrain-shard-hash", daemon=True)
        self._thread.start()

    def write(self, data: Any) -> int:
        written = self._handle.write(data)
        self.size += memoryview(data).nbytes
        if self.size - self._published >= _PUBLISH_BYTES:
            self._publish()
        return written

    def _publish(self) -> None:
        self._handle.flush()
        with self._ready:
            self._published = self.size
            self._ready.notify()

    def _hash_published(self) -> None:
        # The lowest priority: the thread takes the CPU time the writers leave, mostly while they wait on the fsync.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        buffer = bytearray(_CHUNK_BYTES)
        view = memoryview(buffer)
        hashed = 0
        while True:
            with self._ready:
                while hashed >= self._published and not self._closing:
                    self._ready.wait()
                end = self._published
                if hashed >= end and self._closing:
                    return
            while hashed < end:
                try:
                    got = os.preadv(self._reader, [view[: min(_CHUNK_BYTES, end - hashed)]], hashed)
                except OSError as err:
                    self.error = err
                    return
                if got <= 0:
                    self.error = OSError(f"read {hashed} of {end} bytes back")
                    return
                self.digest.update(view[:got])
                hashed += got
                self._hashed = hashed

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, *args: Any) -> int:
        self.seeked = True
        return self._handle.seek(*args)

    def flush(self) -> None:
        self._handle.flush()

    def fileno(self) -> int:
        # Asked for to fsync the file: what is written is complete, so the digest is finished during the fsync.
        self._publish()
        return self._handle.fileno()

    def close(self) -> None:
        try:
            if self._thread.is_alive():
                self._publish()
        finally:
            self._finish()
        self._handle.close()

    def _finish(self) -> None:
        """End the hashing thread once it has hashed what was published, and close its reader (idempotent)."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def complete(self) -> bool:
        """Whether the digest covers every byte written (no seek, no error, all of it hashed)."""
        return not self.seeked and self.error is None and self._hashed == self.size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextlib.contextmanager
def hashing_writes(directory: str | Path) -> Iterator[dict[str, tuple[str, int]]]:
    """Hash the files that ``torch.distributed.checkpoint`` writes into ``directory``, off its write path.

    While the context is active, every stream that torch's ``FileSystem`` opens for writing in ``directory`` is
    wrapped in a :class:`_ReadBackHasher`: torch writes as it would without enhtrain, and a thread hashes each
    part once written, from the page cache, overlapping torch's next writes and its fsync.

    Yields:
        File name to ``(sha256, size)``, filled as each stream closes (``.metadata`` appears under the
        temporary name torch writes it to, ``.metadata.tmp``).
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
            hasher = _ReadBackHasher(stream, path)
            try:
                yield hasher
                if not stream.closed:
                    hasher.close()  # what torch wrote last is hashed before the digest is taken
            finally:
                hasher._finish()
            if hasher.complete():
                digests[os.path.basename(path)] = (hasher.digest.hexdigest(), hasher.size)

    filesystem.FileSystem.create_stream = create_stream  # type: ignore[method-assign]
    try:
        yield digests
    finally:
        filesystem.FileSystem.create_stream = original  # type: ignore[method-assign]
