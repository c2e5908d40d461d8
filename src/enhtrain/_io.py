"""Atomic file writes: a temp file in the target's directory, fsync, then rename over the target.

No file written here holds ``NaN`` or ``Infinity``, which are not JSON: :func:`atomic_write_json` writes a
non-finite number (a metric that diverged) as ``null``, and :func:`finite` does the same for other formats.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TMP_PREFIX",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_mode",
    "finite",
    "fsync_path",
    "move_aside",
    "start_writeback",
]

TMP_PREFIX = ".enhtrain-tmp-"
"""File-name prefix of the temp files of atomic writes (a run's leftovers are removed when it resumes)."""

_umask: int | None = None


def file_mode() -> int:
    """The mode a new file gets from the process's umask (``0o644`` under the usual ``022``).

    ``tempfile.mkstemp`` creates files with mode ``0600``; atomic writes set this mode instead, so that
    the files they write look like every other file of the run.
    """
    global _umask
    if _umask is None:
        _umask = os.umask(0o022)
        os.umask(_umask)
    return 0o666 & ~_umask


def fsync_path(path: str | Path) -> None:
    """Flush a file or a directory (a rename in it) to disk; a system that cannot is not an error."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes at ``offset`` of ``fd`` to disk now, without waiting.

    A later ``fsync`` then waits for the tail of the file only, instead of for all of it.
    ``POSIX_FADV_DONTNEED`` starts the writeback of dirty pages and drops the pages already written.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success it is fsynced and renamed over ``path``.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def finite(data: Any) -> Any:
    """Return ``data`` with every ``NaN``, ``inf`` and ``-inf`` in it, at any depth, replaced by ``None``.

    Mappings, lists and tuples are copied; any other value is returned as it is.
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically; a non-finite number is written as ``null``.

    Raises:
        ValueError: If a value cannot be written as JSON (such as an integer of more than 4300 digits); the
            file is then left as it was.
    """
    text = json.dumps(finite(data), indent=2, sort_keys=False, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def move_aside(path: str | Path, target: str | Path) -> None:
    """Rename ``path`` to ``target`` in the same directory (keeping an earlier version of a file) durably.

    Both paths must have passed the path gate. The directory is fsynced, so the rename survives a crash.
    """
    os.replace(path, target)
    fsync_path(Path(target).parent)
