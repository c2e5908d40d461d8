"""Warm trial processes: a preloaded process that forks one child per trial.

A worker starts one server (``python -m enhtrain.sweeps.forkserver FD [MODULE ...]``) and talks to it over a Unix
socket. The server imports torch, Lightning, enhtrain's CLI and the given modules once, and creates nothing that
cannot cross a fork: no thread, no CUDA context, no open connection or logger. For each trial it forks a child
that becomes a run of its own (a new session, stdout and stderr in the trial's log, the trial's environment),
runs ``enhtrain fit`` in-process and exits with its status; the server reaps it and reports the status. So a
trial is still its own process, with its own memory, exit status and pid (``kill -9`` stops it alone), without
paying the imports again. The server ends when its worker closes the socket or dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from enhtrain.documents import parse_json
from enhtrain.errors import ConfigError

__all__ = ["ForkServer", "ForkedTrial", "fork_available", "serve"]

_PRELOAD = ("torch", "lightning.pytorch", "enhtrain.cli", "enhtrain.commands.train", "enhtrain.sweeps.pruning")
_MAX_MESSAGE = 1 << 22


def fork_available() -> bool:
    """Whether this platform can start trials by fork (POSIX with ``os.fork`` and Unix sockets)."""
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and hasattr(socket, "send_fds")


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


class _Reader:
    """Newline-delimited JSON messages from a socket, with the descriptors sent along."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self.fds: list[int] = []

    def read(self) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            data, fds, _flags, _addr = socket.recv_fds(self._sock, 65536, 16)
            self.fds.extend(fds)
            if not data:
                return None
            self._buffer += data
            if len(self._buffer) > _MAX_MESSAGE:
                return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:  # from the worker that started this server, or from the server it started
            message = parse_json(line.decode("utf-8", "replace"), "the fork server's socket")
        except ConfigError:
            return None
        return message if isinstance(message, dict) else None


# -- the server -----------------------------------------------------------------------------------------------------

def serve(fd: int, modules: Sequence[str]) -> int:
    """Preload, then fork one child per request read from the socket ``fd``, until the socket closes.

    Args:
        fd: The server's end of the socket its worker made.
        modules: Modules to import besides torch, Lightning and enhtrain (the sweep's model and data modules,
            already passed through the import gate by the worker).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is for the worker, which stops the trials itself
    sock = socket.socket(fileno=fd)
    failed: list[str] = []
    from enhtrain.security import import_named_module

    for name in (*_PRELOAD, *modules):
        try:
            import_named_module(name, key="preloaded module", where="sweep worker")
        except Exception as err:  # a preload that fails is imported again by the trial, which reports it
            failed.append(f"{name}: {type(err).__name__}")
    _send(sock, {"ready": os.getpid(), "threads": _thread_count(), "failed": failed})
    reader = _Reader(sock)
    while True:
        try:
            request = reader.read()
        except (OSError, ValueError):
            return 0
        if request is None:
            return 0
        fds, reader.fds = reader.fds, []
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(request, fds)  # never returns
        for descriptor in fds:
            os.close(descriptor)
        with contextlib.suppress(OSError):
            _send(sock, {"pid": pid})
        _pid, status = os.waitpid(pid, 0)
        try:
            _send(sock, {"pid": pid, "status": os.waitstatus_to_exitcode(status)})
        except OSError:
            return 0


def _thread_count() -> int:
    """The threads of this process as the kernel counts them (the interpreter's and any a library started)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """Become the trial's process: its session, log, environment and working directory; run ``enhtrain fit``."""
    status = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log, channel_read, channel_write = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        env = {str(k): str(v) for k, v in dict(request["env"]).items()}
        env[str(request["channel_env"])] = f"{channel_read},{channel_write}"
        os.environ.clear()
        os.environ.update(env)
        os.chdir(str(request["cwd"]))
        argv = [str(a) for a in request["argv"]]
        sys.argv = ["enhtrain", *argv]
        _fresh_state(env)
        from enhtrain.commands import main

        status = main(argv)
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        with contextlib.suppress(BaseException):
            import atexit

            atexit._run_exitfuncs()  # what the interpreter runs at exit: logging's flush, loggers' own handlers
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)


def _fresh_state(env: dict[str, str]) -> None:
    """What a fresh process would have: its own random state and the thread count its environment asks for."""
    import torch

    torch.seed()  # a child shares its parent's generator state; a fresh process draws a new one
    with contextlib.suppress(ImportError):
        import numpy

        numpy.random.seed()
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


# -- the worker's side ------------------------------------------------------------------------------------------------

class ForkedTrial:
    """A trial's process forked by a :class:`ForkServer`: the parts of :class:`subprocess.Popen` a worker uses.

    Attributes:
        pid: The trial's own process id.
        returncode: Its exit status once it ended (negative: the signal that ended it), else ``None``.
    """

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status if the process ended (without waiting), else ``None``."""
        if self.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its exit status.

        Raises:
            subprocess.TimeoutExpired: If it is still running after ``timeout`` seconds.
        """
        if self.returncode is None:
            self.returncode = self._server.status(self.pid, timeout)
        return self.returncode

    def send_signal(self, number: int) -> None:
        """Send a signal to the process, unless it already ended."""
        if self.returncode is None:
            os.kill(self.pid, number)


class ForkServer:
    """One worker's preloaded process, started at once and used by one trial at a time.

    Args:
        modules: The sweep's own modules to preload (already passed through the import gate).
    """

    def __init__(self, modules: Sequence[str] = ()) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # numpy's OpenBLAS starts its thread pool when imported; the trial's own torch threads start in the child.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "enhtrain.sweeps.forkserver", str(theirs.fileno()), *modules],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True, env=env)
        finally:
            theirs.close()
        self._sock = mine
        self._reader = _Reader(mine)
        self._ready: dict[str, Any] | None = None

    def ready(self, timeout: float = 600) -> dict[str, Any]:
        """Wait until the server has imported everything; returns its ``ready`` message (pid, thread count).

        Raises:
            OSError: If the server ended or did not answer in time.
        """
        if self._ready is None:
            message = self._read(timeout)
            if message is None or "ready" not in message:
                raise OSError("the preloaded trial process ended while importing")
            self._ready = message
        return self._ready

    def start(self, argv: Sequence[str], env: dict[str, str], cwd: str, log_fd: int, channel: tuple[int, int],
              channel_env: str) -> ForkedTrial:
        """Fork a trial's process running ``enhtrain ARGV`` with ``env``, its output in ``log_fd``.

        Args:
            argv: The arguments of ``enhtrain``.
            env: The trial's whole environment.
            cwd: Its working directory.
            log_fd: Where its stdout and stderr go.
            channel: The trial's ends of the pruning pipes (read, write).
            channel_env: The variable that tells the trial its channel's descriptors.

        Raises:
            OSError: If the server is gone.
        """
        self.ready()
        _send(self._sock, {"argv": list(argv), "env": env, "cwd": cwd, "channel_env": channel_env},
              [log_fd, *channel])
        message = self._read(60)
        if message is None or "pid" not in message:
            raise OSError("the preloaded trial process did not start the trial")
        return ForkedTrial(self, int(message["pid"]))

    def status(self, pid: int, timeout: float | None) -> int:
        """The exit status of trial ``pid``, reported by the server once it reaped it."""
        message = self._read(timeout, waiting_for=pid)
        if message is None:
            raise OSError("the preloaded trial process ended before its trial")
        return int(message["status"])

    def _read(self, timeout: float | None, waiting_for: int | None = None) -> dict[str, Any] | None:
        self._sock.settimeout(timeout)
        try:
            return self._reader.read()
        except (TimeoutError, BlockingIOError) as err:
            raise subprocess.TimeoutExpired(f"trial {waiting_for}", timeout or 0) from err
        finally:
            self._sock.settimeout(None)

    def close(self) -> None:
        """End the server (a trial it started goes on until it ends by itself)."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _main(argv: Sequence[str]) -> int:
    if not argv or not argv[0].isdigit():
        sys.stderr.write("usage: python -m enhtrain.sweeps.forkserver FD [MODULE ...] (started by a sweep's worker)\n")
        return 2
    return serve(int(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
