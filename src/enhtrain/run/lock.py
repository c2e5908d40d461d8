"""``<run>/.lock``: one writing process per run, for the whole life of that process.

The lock is an ``fcntl.flock`` on the file, so the kernel releases it when the holder exits, even on
``kill -9``: a crashed run leaves no stale lock. The holder writes its pid and host into the file once every
check has passed (:meth:`RunLock.claim`), so that a second writer can say who holds the run; a refused
command never writes into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from enhtrain.documents import parse_json, read_text
from enhtrain.errors import ConfigError, RunDirError
from enhtrain.security import inside

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError"]

_MAX_LOCK_BYTES = 4096  # what the holder writes is a pid and a host name

LOCK_NAME = ".lock"
"""File name of the lock in a run directory."""


class RunLockedError(RunDirError):
    """Another process holds the run's lock."""


class RunLock:
    """The lock of one run directory.

    Args:
        run_dir: The run directory.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def holder(self) -> dict[str, Any]:
        """Return what the holder wrote into the lock file (``pid``, ``host``), or ``{}``."""
        try:
            text = read_text(self.path, what="lock file", max_bytes=_MAX_LOCK_BYTES, follow_symlinks=False)
            data = parse_json(text or "{}", str(self.path))
        except ConfigError:
            return {}
        return data if isinstance(data, dict) else {}

    def in_use(self) -> bool:
        """Whether some process holds the lock (a training process holds it for its whole life).

        Probes with a shared, non-blocking ``flock`` on a read-only descriptor and lets it go at once; creates
        nothing.
        """
        try:
            # A named pipe or a link in the lock's place must not block or lead the probe elsewhere.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def acquire(self, *, action: str = "write it") -> None:
        """Take the lock without waiting, creating the lock file when the run has none.

        Args:
            action: What the caller wants to do, for the message (``"resume it"``, ``"prune its checkpoints"``).

        Raises:
            RunLockedError: If another process holds it; the message names its pid and host.
            RunDirError: If the lock file cannot be opened.
        """
        if self._fd is not None:
            return
        inside(self.path, self.run_dir, what="lock file")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise RunDirError(f"cannot open the lock of run '{self.run_dir}': {err.strerror or err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}" if holder else "another process"
            raise RunLockedError(
                f"run '{self.run_dir}' is in use by {who}: cannot {action} while that process runs; wait for it "
                "to end or stop it"
            ) from None
        self._fd = fd

    def claim(self, token: str | None = None) -> None:
        """Write this process's pid and host into the held lock file (after every check has passed).

        Args:
            token: The launch's token, which the processes of the other ranks must find here to join the run.
        """
        if self._fd is None:
            return
        holder: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
        if token:
            holder["token"] = token
        text = json.dumps(holder).encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        """Let the lock go (the file stays: removing it would race with a process about to take it)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
