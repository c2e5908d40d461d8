"""Warm trial processes: a preloaded process that forks one child per trial.

A worker starts one server (``python -m enhtrain.sweeps.forkserver FD``) and talks to it over a Unix socket. The
server imports torch, Lightning, enhtrain's CLI and run modules, and the sweep's own modules once, and creates
nothing that cannot cross a fork: no thread, no CUDA context, no open connection or logger. For each trial it forks
a child that becomes a run of its own (a new session, stdout and stderr in the trial's log, the trial's
environment), runs ``enhtrain fit`` in-process and exits with its status; the server reaps it and reports the
status. So a trial is still its own process, with its own memory, exit status and pid (``kill -9`` stops it alone),
without paying the imports again. The server ends when its worker closes the socket or dies.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.machinery
import io
import json
import os
import re
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
# What a run of `enhtrain fit` imports once its config is parsed: its session, experiment schema, default loggers and
# callbacks, checkpointing. Imported here, a trial does not pay for them (tests/test_sweeps_fork.py checks the list).
_RUN_MODULES = (
    "enhtrain.config.schema", "enhtrain.config.migration", "enhtrain.config.runtime", "enhtrain.config.placement",
    "enhtrain.config.class_flags", "enhtrain.trust", "enhtrain.commands._shared", "enhtrain.run.runtime",
    "enhtrain.callbacks.run_summary", "enhtrain.callbacks.runtime_updates", "enhtrain.callbacks.throughput",
    "enhtrain.checkpoints.run_checkpoint", "enhtrain.checkpoints.safe_load", "enhtrain.loggers.csv",
    "enhtrain.loggers.tensorboard",
)
_MAX_MESSAGE = 1 << 22
_WARM_TRIES = 3  # trials during which the server tries to parse the sweep's config once
# What a trial may report of the modules it imported, and what such a name looks like.
_MAX_LEARNED_BYTES = 60_000
_MODULE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# The modules imported before the next fork (what a trial inherits), and those a trial imports itself.
_preloaded: frozenset[str] = frozenset()
_left_to_trials: set[str] = set()


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

def serve(fd: int) -> int:
    """Preload, then fork one child per request read from the socket ``fd``, until the socket closes.

    torch, Lightning and what a run of enhtrain imports are imported at once. The sweep's own modules (its model
    and data modules, already passed through the import gate by the worker) come in the worker's first message,
    ``{"preload": [MODULE, ...]}``, sent once it has composed the base config that names them. Then the server
    says it is ready.

    Args:
        fd: The server's end of the socket its worker made.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is for the worker, which stops the trials itself
    # What the server imports lives as long as it does: no collector passes over it (see enhtrain._collector);
    # it is frozen before each fork, so that a trial's collector leaves the shared pages alone.
    gc.disable()
    sock = socket.socket(fileno=fd)
    reader = _Reader(sock)
    failed = _preload((*_PRELOAD, *_RUN_MODULES))
    try:
        _warm_up()
        # The plugins (entry points and built-ins) and their components, as the trial's environment selects them.
        from enhtrain.plugins.manager import get_registry

        get_registry()
    except Exception as err:  # the trial imports or builds them again and reports what failed
        failed.append(f"run modules: {type(err).__name__}")
    try:
        from enhtrain.commands.train import prebuild_parser

        prebuild_parser()  # each trial (`enhtrain fit`) takes its copy
    except Exception as err:  # the trial builds its own
        failed.append(f"fit's parser: {type(err).__name__}")
    first = _next_message(reader)
    if first is None:
        return 0
    listed = first.get("preload")
    failed += _preload([str(m) for m in listed] if isinstance(listed, list) else [])
    learn = first.get("learn") is True
    warm = [str(a) for a in first["warm"]] if isinstance(first.get("warm"), list) and first["warm"] else None
    tries = 0
    global _preloaded
    _preloaded = frozenset(sys.modules)
    _send(sock, {"ready": os.getpid(), "threads": _thread_count(), "failed": failed})
    unsafe: str | None = None
    while True:
        request = _next_message(reader)
        if request is None:
            return 0
        fds, reader.fds = reader.fds, []
        if request.get("clone") is True and len(fds) == 1:
            # Another worker's server: a copy of this one, preloaded already, that serves the socket sent along.
            pid = os.fork()
            if pid == 0:
                sock.close()
                sock = socket.socket(fileno=fds[0])
                reader = _Reader(sock)
                _send(sock, {"ready": os.getpid(), "threads": _thread_count(), "failed": failed})
                continue
            os.close(fds[0])
            continue
        if unsafe is not None:
            for descriptor in fds:
                os.close(descriptor)
            with contextlib.suppress(OSError):
                _send(sock, {"error": unsafe})
            continue
        learned_read, learned_write = os.pipe() if learn else (-1, -1)
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            sock.close()
            if learned_read >= 0:
                os.close(learned_read)
            _child(request, fds, learned_write)  # never returns
        for descriptor in (*fds, learned_write):
            if descriptor >= 0:
                os.close(descriptor)
        with contextlib.suppress(OSError):
            _send(sock, {"pid": pid})
        if warm is not None and unsafe is None:
            # While a trial runs: the next ones find the sweep's config parsed once already. Tried again while the
            # next trials run if it needed a package not imported yet (which the server may learn from a trial).
            parsed, unsafe = _warm_parse(warm)
            tries += 1
            warm = None if parsed or tries == _WARM_TRIES else warm
            _preloaded = frozenset(sys.modules)
        _pid, status = os.waitpid(pid, 0)
        try:
            _send(sock, {"pid": pid, "status": os.waitstatus_to_exitcode(status)})
        except OSError:
            return 0
        if learned_read >= 0:
            unsafe = _learn(_read_names(learned_read))
            _preloaded = frozenset(sys.modules)


def _next_message(reader: _Reader) -> dict[str, Any] | None:
    """The worker's next message; ``None`` once its socket closed (the worker ended or is done)."""
    try:
        return reader.read()
    except (OSError, ValueError):
        return None


def _read_names(fd: int) -> list[str]:
    """The module names a child wrote with :func:`_write_names`, and closes ``fd`` (only what is there now: a
    grandchild may still hold the pipe)."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while len(data) < _MAX_LEARNED_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").split("\n")[:-1]  # each complete name ends in \n; a cut one is dropped


def _learn(names: Sequence[str]) -> str | None:
    """Import, for the next trials, the modules a trial imported (through the import gate, in the trial's order).

    A throwaway child imports them first: the packages whose import starts a thread or CUDA there (pyarrow's
    allocator, an OpenMP pool) are left for each trial to import itself.

    Returns:
        Why this process may no longer fork (an import started a thread or CUDA all the same), else ``None``.
    """
    names = [name for name in names if name not in sys.modules and name not in _left_to_trials
             and _MODULE_NAME.fullmatch(name)]
    if not names:
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _write_names(write, _import_harmless(names))
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    harmless = _read_names(read)
    _left_to_trials.update(set(names) - set(harmless))  # not probed again after the next trials
    for name in harmless:
        with contextlib.suppress(Exception):
            _import_gated(name, key="module a trial imported")
    return _fork_hazard("a module a trial imported")


def _warm_parse(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Compose and parse a trial's command line once (see :func:`enhtrain.cli.warm_up_parsing`), quietly.

    The parse may import no package that this process has not imported yet: a class of a package the server has
    not learned is left to the trials (the parse stops there and is tried again later).

    Returns:
        Whether the command line was parsed, and why this process may no longer fork if the parse started a
        thread or CUDA all the same (else ``None``). A refused command line is left to the trials to report.
    """
    parsed = False
    guard = _NoNewPackage()
    sys.meta_path.insert(0, guard)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from enhtrain.commands.train import warm_up_parsing
            from enhtrain.sweeps.base import trial_environment

            warm_up_parsing(argv, trial_environment(os.environ))
            parsed = True
    except Exception:  # a new package, or a config the trials refuse in their own words
        pass
    finally:
        sys.meta_path.remove(guard)
    return parsed, _fork_hazard("parsing the sweep's config")


class _NoNewPackage(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Refuses to load a package of which nothing is imported yet (a submodule of an imported one may load).

    Asked whether such a package exists (``importlib.util.find_spec``), it says yes: only loading it fails.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] in sys.modules:
            return None  # the usual finders
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: Any) -> Any:
        raise ImportError(f"{spec.name}: not imported by the preloaded process")

    def exec_module(self, module: Any) -> None:  # never reached: create_module refuses
        raise ImportError(f"{module.__name__}: not imported by the preloaded process")


def _fork_hazard(cause: str) -> str | None:
    """Why this process may no longer fork now that ``cause`` ran in it (a thread or CUDA appeared), else ``None``."""
    if _thread_count() > 1:
        return f"{cause} started a thread in the preloaded process"
    if _cuda_initialized():
        return f"{cause} initialised CUDA in the preloaded process"
    return None


def _import_harmless(names: Sequence[str]) -> list[str]:
    """Import ``names`` here (a throwaway process); return those whose package started no thread and no CUDA."""
    harmful: set[str] = set()
    harmless: list[str] = []
    threads = _thread_count()
    for name in names:
        package = name.split(".")[0]
        if package in harmful:
            continue
        before = set(sys.modules)
        try:
            _import_gated(name, key="module a trial imported")
        except Exception:
            continue
        now = _thread_count()
        if now > threads or _cuda_initialized():
            # Every package this import brought in may be the one that started it (pandas brings pyarrow).
            harmful |= {package, *(added.split(".")[0] for added in set(sys.modules) - before)}
            threads = now
            continue
        harmless.append(name)
    return [name for name in harmless if name.split(".")[0] not in harmful]


def _import_gated(name: str, *, key: str) -> Any:
    from enhtrain.security import import_named_module

    return import_named_module(name, key=key, where="sweep worker")


def _cuda_initialized() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def _preload(modules: Sequence[str]) -> list[str]:
    """Import ``modules`` through the import gate; returns the ones that failed (the trial imports them again)."""
    failed = []
    for name in modules:
        try:
            _import_gated(name, key="preloaded module")
        except Exception as err:  # a preload that fails is imported again by the trial, which reports it
            failed.append(f"{name}: {type(err).__name__}")
    return failed


def _warm_up() -> None:
    """Import what a run imports where it first needs it, and build what it builds on first use.

    That is OmegaConf (config interpolation), TensorBoard's writer and hyper-parameter summaries, the pydantic
    schemas of the run files a run checks (about 20 ms a trial), the installed versions its metadata records, and
    which environment variables name a secret.
    """
    import omegaconf  # noqa: F401

    from enhtrain.checkpoints.manifest import manifest_schema
    from enhtrain.run.metadata import metadata_schema, package_versions
    from enhtrain.secrets import secret_values

    manifest_schema()
    metadata_schema()
    package_versions()
    secret_values()  # which variables name a secret, remembered for the trials' masking
    with contextlib.suppress(ImportError):
        import torch.utils.tensorboard  # noqa: F401
        from tensorboard.plugins.hparams import summary_v2  # noqa: F401  (the logger's hyper-parameters)


def _thread_count() -> int:
    """The threads of this process as the kernel counts them (the interpreter's and any a library started)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _child(request: dict[str, Any], fds: list[int], learned: int = -1) -> None:
    """Become the trial's process: its session, log, environment and working directory; run ``enhtrain fit``.

    At its exit, the names of the modules it imported go to ``learned`` (if given), for the server to import for the
    next trials.
    """
    status = 1
    gc.enable()  # the trial collects its own garbage; what it shares with the server is frozen
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

            _skip_torch_library_release()
            atexit._run_exitfuncs()  # what the interpreter runs at exit: logging's flush, loggers' own handlers
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        if learned >= 0:
            with contextlib.suppress(BaseException):
                _report_imports(learned)
        os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)


def _skip_torch_library_release() -> None:
    """Drop the exit handlers that unregister torch's operator libraries one by one, from a trial about to end.

    They only release the process's own memory, which its exit releases at once; in a forked trial they cost
    30 ms, touching pages shared with the preloaded process. Every other exit handler still runs.
    """
    import weakref

    release = getattr(sys.modules.get("torch.library"), "_del_library", None)
    registry = getattr(weakref.finalize, "_registry", None)
    if release is None or not isinstance(registry, dict):
        return
    for finalizer, info in list(registry.items()):
        if getattr(info, "func", None) is release:
            finalizer.detach()


def _report_imports(fd: int) -> None:
    """Write the modules imported since the fork, in import order."""
    _write_names(fd, [name for name in list(sys.modules) if name not in _preloaded])


def _write_names(fd: int, names: Sequence[str]) -> None:
    """Write ``names`` to the pipe ``fd``, one per line, at most :data:`_MAX_LEARNED_BYTES`, never blocking; close it.

    The pipe holds more than that, so the parent reads it all once the child has ended.
    """
    data = "".join(f"{name}\n" for name in names).encode()[:_MAX_LEARNED_BYTES]
    os.set_blocking(fd, False)
    with contextlib.suppress(OSError):
        os.write(fd, data)
    os.close(fd)


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
        modules: The sweep's own modules to preload (already passed through the import gate); ``None``: they
            are given later, with :meth:`preload`, while the server imports torch and Lightning.
    """

    _process: subprocess.Popen[bytes] | None

    def __init__(self, modules: Sequence[str] | None = ()) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # numpy's OpenBLAS starts its thread pool when imported; the trial's own torch threads start in the child.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "enhtrain.sweeps.forkserver", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True, env=env)
        finally:
            theirs.close()
        self._attach(mine, self._process.pid)
        if modules is not None:
            self.preload(modules, learn=True)

    def _attach(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self._reader = _Reader(sock)
        self._ready: dict[str, Any] | None = None
        self._pid = pid

    def clone(self) -> ForkServer:
        """Another server for another worker: a fork of this one once it is ready, with nothing to import.

        Not while a trial of this server runs: the request shares its socket.

        Raises:
            OSError: If this server is gone.
        """
        self.ready()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _send(self._sock, {"clone": True}, [theirs.fileno()])
        finally:
            theirs.close()
        other = ForkServer.__new__(ForkServer)
        other._process = None
        other._attach(mine, -1)
        other._pid = int(other.ready(timeout=60)["ready"])
        return other

    def preload(self, modules: Sequence[str], *, learn: bool = False, warm: Sequence[str] | None = None) -> None:
        """Tell the server the sweep's own modules to import before it is ready (once, before :meth:`ready`).

        Args:
            modules: The modules (already passed through the import gate).
            learn: Whether the server imports, after each trial, the modules the trial imported, so that the next
                trials find them imported (through the import gate; it stops forking if one starts a thread).
            warm: A command line of the trials' own (``fit --config BASE ...``) that the server composes and parses
                once while the first trial runs, so that the next trials parse theirs faster (nothing is built).
        """
        with contextlib.suppress(OSError):  # a server that ended shows in ready()
            _send(self._sock, {"preload": list(modules), "learn": learn, "warm": list(warm or [])})

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
        message = self._read(600)
        if message is not None and "error" in message:
            raise OSError(str(message["error"]))
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
        """End the server now (a trial it started, in its own session, goes on until it ends by itself).

        The server keeps nothing worth waiting for: it may be importing what the last trial imported.
        """
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._process is None:  # a clone: a child of the first server, which or init reaps it
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        sys.stderr.write("usage: python -m enhtrain.sweeps.forkserver FD (started by a sweep's worker)\n")
        return 2
    return serve(int(argv[0]))


if __name__ == "__main__":
    # Served from the module under its own name, so that a trial finds `_preloaded` where it imports it from.
    from enhtrain.sweeps.forkserver import _main as _served_main

    code = _served_main(sys.argv[1:])
    os._exit(code)  # nothing to flush or clean up: the imports' own teardown would only delay the worker
