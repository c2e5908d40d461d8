"""Running trials: each one an ordinary ``enhtrain fit`` in its own process, and the workers that run them.

A trial's config is the sweep's base config plus one layer, ``sweep-trial-<n>.yaml`` in the sweep's directory,
that holds the sampled values, the trial's run directory (``<root_dir>/<sweep>/trial_<n>/``), the sweep's
record (``experiment.sweep``) and the pruning callback. The worker that asked Optuna for the trial keeps its
heartbeat in the store while the process runs, answers its pruning questions, and tells Optuna the outcome,
which it also writes into the run's ``metadata.json`` (``sweep``, and ``status: pruned`` for a pruned trial).

Workers stop once the study holds the requested number of trials (complete, pruned or failed; a trial whose
worker died counts once, through the retry that re-runs its values). A worker that finds nothing left to ask
waits for the trials other processes are running, which either finish or, when their worker died, turn stale,
fail and are queued again by Optuna's retry callback.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_json, atomic_write_text
from enhtrain.documents import dump_yaml, parse_json, read_json, read_text
from enhtrain.errors import ConfigError
from enhtrain.security import inside
from enhtrain.sweeps import CHANNEL_ENV
from enhtrain.sweeps.base import check_config, set_dotted, trial_environment
from enhtrain.sweeps.study import Sweep, mask_url

__all__ = [
    "PRUNING_CALLBACK",
    "SURPLUS_ATTR",
    "TrialOutcome",
    "WorkerPool",
    "counted_trials",
    "gpu_devices",
    "trial_layer",
]

PRUNING_CALLBACK = "enhtrain.sweeps.pruning.SweepPruning"
"""The class path of the callback every trial's layer adds to ``trainer.callbacks``."""

SURPLUS_ATTR = "enhtrain_surplus"
"""The user attribute of a trial asked beyond the target by a worker that lost a race: it never ran."""

_CONFIG_REFUSED = 2
_SIGTERM_STATUS = 143


@dataclass
class TrialOutcome:
    """How one trial ended.

    Attributes:
        number: The trial's number.
        state: ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        value: The metric's final value, if any.
        params: The sampled values, by config key.
        run_dir: The trial's run directory.
        duration_s: Wall time of the trial's process.
        error: What went wrong, for a failed trial.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_dir: Path
    duration_s: float
    error: str | None = None


def counted_trials(trials: Sequence[Any]) -> list[Any]:
    """The trials that count towards a sweep's target.

    Every trial counts (waiting, running, complete, pruned, failed) except a failed trial that Optuna's retry
    queued again (its values run again under a new number) and a trial asked beyond the target by a worker
    that lost a race (it never ran).
    """
    from optuna.trial import TrialState

    retried = {n for t in trials for n in (t.system_attrs.get("retry_history") or [])}
    return [t for t in trials if not t.user_attrs.get(SURPLUS_ATTR) and not (t.state == TrialState.FAIL and
                                                                          t.number in retried)]


def gpu_devices(environ: dict[str, str] | None = None) -> list[str]:
    """The GPUs trials may use: ``CUDA_VISIBLE_DEVICES`` when set, else the ones ``nvidia-smi`` lists."""
    environ = dict(os.environ if environ is None else environ)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip().isdigit()]


def trial_layer(sweep: Sweep, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """The config layer of trial ``number``: the sampled values, its run directory and the pruning callback."""
    layer: dict[str, Any] = {}
    for key, value in params.items():
        set_dotted(layer, key, value)
    spec = sweep.spec
    set_dotted(layer, "experiment.name", spec.name)
    set_dotted(layer, "experiment.version", f"trial_{number}")
    set_dotted(layer, "experiment.resume", None)
    set_dotted(layer, "experiment.sweep", {"study": spec.name, "trial": number, "metric": spec.metric,
                                     "params": copy.deepcopy(params)})
    callbacks = (sweep.base.get("trainer") or {}).get("callbacks")
    callbacks = [] if callbacks is None else list(callbacks if isinstance(callbacks, list) else [callbacks])
    callbacks.append({"class_path": PRUNING_CALLBACK,
                      "init_args": {"monitor": spec.metric, "study": spec.name, "trial": number}})
    set_dotted(layer, "trainer.callbacks", callbacks)
    return layer


def _last_error(log: Path) -> str | None:
    """The last ``enhtrain: error:`` line of a trial's log, or its last line."""
    try:
        text = read_text(log, what="trial log", max_bytes=64 * 1024 * 1024, follow_symlinks=False)
    except ConfigError:
        return None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    found = next((line.removeprefix("enhtrain: error: ") for line in reversed(lines)
                  if line.startswith("enhtrain: error: ")), None)
    return found or (lines[-1][:300] if lines else None)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Stopped(Exception):
    """The pool was asked to stop (Ctrl+C, SIGTERM, or another worker's error)."""


@dataclass
class WorkerPool:
    """Workers that run a sweep's trials, each trial in its own process, until the study has them all.

    Args:
        sweep: The open sweep.
        workers: How many trials run at a time on this machine.
        echo: Where progress lines go.
        devices: GPUs to hand out, one group per worker by ``CUDA_VISIBLE_DEVICES`` (empty: none).
        fork: Whether trials are forked from preloaded processes (else each starts a fresh one).
        server: The first worker's preloaded process, if already started by :func:`preloaded_server` (which
            closes it); else the pool starts its own. The other workers' are its copies.

    Attributes:
        outcomes: The trials this pool ran, in the order they ended.
        error: The error that stopped the pool, if any.
    """

    sweep: Sweep
    workers: int = 1
    echo: Callable[[str], None] = print
    devices: list[str] = field(default_factory=list)
    outcomes: list[TrialOutcome] = field(default_factory=list)
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    fork: bool = True
    _running: dict[int, Any] = field(default_factory=dict)
    _mine: set[int] = field(default_factory=set)
    server: Any = None
    _servers: dict[int, Any] = field(default_factory=dict)

    def run(self) -> list[TrialOutcome]:
        """Run the workers until the study has its trials; Ctrl+C or SIGTERM stops them, re-queueing their trials.

        Raises:
            ConfigError: If a trial showed that the spec is wrong (a metric never logged, a refused config).
            KeyboardInterrupt: When stopped by Ctrl+C or SIGTERM, after the running trials were stopped.
        """
        threads = [threading.Thread(target=self._work, args=(i,), name=f"enhtrain-sweep-worker-{i}", daemon=True)
                   for i in range(self.workers)]
        self._start_servers()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            for index, thread in enumerate(threads):
                thread.start()
                if index + 1 < len(threads):
                    time.sleep(0.2)  # the first asks of a fresh study should not all sample at once
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self.stop()
            for thread in threads:
                thread.join()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            for server in self._servers.values():
                server.close()
            self._servers.clear()
        if self.error is not None:
            raise self.error
        return self.outcomes

    def stop(self) -> None:
        """Stop every worker: running trials get SIGTERM (they save and end ``interrupted``) and are queued again."""
        self._stop.set()
        with self._lock:
            running = list(self._running.values())
        for process in running:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)

    def _start_servers(self) -> None:
        """Give each worker its preloaded process (started now unless already given) and the sweep's modules."""
        from enhtrain.sweeps.forkserver import ForkServer, fork_available

        if not self.fork:
            self.echo("trials start as fresh processes (--no-fork)")
            return
        if not fork_available():
            self.echo("this platform has no fork: each trial starts a fresh process")
            self.fork = False
            return
        first = self.server if self.server is not None else ForkServer(None)
        modules, safe = _preload_modules(self.sweep.base, self.sweep.trial_flags)
        # In safe mode the import gate admits listed packages only: what a trial imported is not preloaded.
        first.preload(modules, learn=not safe,
                      warm=["fit", "--config", str(self.sweep.base_path), *self.sweep.trial_flags])
        self._servers = {0: first}
        try:
            for index in range(1, self.workers):
                self._servers[index] = first.clone()  # a copy, forked once the first has imported everything
        except OSError as err:
            self._drop_servers(err)

    def _server(self, index: int) -> Any:
        """Worker ``index``'s preloaded process, or ``None`` (fresh processes) when there is none or it failed."""
        server = self._servers.get(index)
        if server is None:
            return None
        try:
            server.ready()
        except OSError as err:
            self._drop_servers(err)
            return None
        return server

    def _drop_servers(self, err: OSError, *, only: int | None = None) -> None:
        """Stop using preloaded processes: every worker's, or worker ``only``'s (it may no longer fork; the others,
        which may be running trials, go on). The trials concerned start fresh processes."""
        with self._lock:
            indices = list(self._servers) if only is None else [only]
            dropped = [server for server in (self._servers.pop(i, None) for i in indices) if server is not None]
        if not dropped:
            return
        for server in dropped:
            server.close()
        if only is None:
            self.echo(f"warm trial processes are unavailable ({err}): each trial starts a fresh process")
        else:
            self.echo(f"worker {only}: warm trial processes are unavailable ({err}): its trials start as fresh "
                      "processes")

    # -- one worker ---------------------------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        import optuna

        try:
            # Ready before asking: a trial asked while its worker still imports would wait without a heartbeat.
            self._server(index)
            while not self._stop.is_set():
                with self._lock:
                    trial = self._next_trial()
                if trial is None:
                    if self._others_running():
                        self._stop.wait(min(2.0, self.sweep.spec.heartbeat_interval))
                        continue
                    return
                self._run(trial, index)
        except _Stopped:
            return
        except (ConfigError, optuna.exceptions.OptunaError, OSError, ValueError) as err:
            if self.error is None:
                self.error = err if isinstance(err, ConfigError) else ConfigError(
                    f"sweep {self.sweep.spec.name}: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
            self.stop()
        except BaseException as err:  # a bug: stop every worker, then let the main thread show it
            if self.error is None:
                self.error = err
            self.stop()

    def _next_trial(self) -> Any:
        """Ask for the next trial (a queued retry first), or return ``None`` when the study has enough."""
        import optuna
        from optuna.trial import TrialState

        study = self.sweep.study
        optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        counted = counted_trials(trials)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        target = self.sweep.target()
        if not waiting and len(counted) >= target:
            return None
        trial = study.ask({p.key: p.distribution() for p in self.sweep.params})
        self._mine.add(trial._trial_id)
        self.sweep.storage.record_heartbeat(trial._trial_id)
        # Another process may have asked at the same moment: the trial beyond the target gives way.
        trials = study.get_trials(deepcopy=False)
        before = [t for t in counted_trials(trials) if t.number < trial.number]
        frozen = next((t for t in trials if t.number == trial.number), None)
        attrs = frozen.system_attrs if frozen is not None else {}
        queued = "retry_history" in attrs or "fixed_params" in attrs  # a retry or an enqueued trial
        if len(before) >= target and not queued:
            trial.set_user_attr(SURPLUS_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
            self._mine.discard(trial._trial_id)
            return None
        return trial

    def _others_running(self) -> bool:
        from optuna.trial import TrialState

        return any(t.state == TrialState.RUNNING and t._trial_id not in self._mine
                   for t in self.sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def _devices_for(self, index: int) -> str | None:
        if not self.devices:
            return None
        accelerator = str((self.sweep.base.get("trainer") or {}).get("accelerator") or "auto")
        if accelerator == "cpu":
            return None
        per = (self.sweep.base.get("trainer") or {}).get("devices")
        per = per if isinstance(per, int) and not isinstance(per, bool) and per > 0 else 1
        start = (index * per) % len(self.devices)
        return ",".join(self.devices[(start + i) % len(self.devices)] for i in range(min(per, len(self.devices))))

    def _environment(self, index: int) -> dict[str, str]:
        env = trial_environment(os.environ)
        env["ENHTRAIN_PLAIN_PROGRESS"] = "1"
        device = self._devices_for(index)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        elif self.workers > 1 and "OMP_NUM_THREADS" not in env:
            # Trials that share the CPU: each gets its share of the cores instead of all of them.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.workers))
        return env

    def _run(self, trial: Any, index: int) -> None:
        """Run one trial; whatever goes wrong in this process, the trial ends told (failed and queued again)."""
        from optuna.trial import TrialState

        state: dict[str, Any] = {"process": None, "told": False}
        try:
            self._run_trial(trial, index, state)
        except BaseException:
            process = state["process"]
            if process is not None and process.poll() is None:
                with contextlib.suppress(OSError):
                    process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=60)
            if not state["told"]:
                with contextlib.suppress(Exception):
                    frozen = self.sweep.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                    self._requeue(frozen)
            raise
        finally:
            self._mine.discard(trial._trial_id)

    def _requeue(self, frozen: Any) -> None:
        """Queue a trial that this process stopped (not one that failed by itself) to run again with its values."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        if frozen.state == TrialState.FAIL:
            RetryHeartbeatStaleTrialCallback(max_retry=self.sweep.spec.max_retry)(self.sweep.study, frozen)

    def _run_trial(self, trial: Any, index: int, state: dict[str, Any]) -> None:
        sweep, spec = self.sweep, self.sweep.spec
        number = trial.number
        params = {p.key: p.decode(trial.params[p.key]) for p in sweep.params}
        directory = sweep.directory
        layer_path = inside(directory / f"sweep-trial-{number}.yaml", directory, what="sweep file")
        log_path = inside(directory / f"sweep-trial-{number}.log", directory, what="sweep file")
        run_dir = Path(sweep.root_dir) / spec.name / f"trial_{number}"
        header = (f"# sweep trial {number} of {spec.name}: the sampled values, the trial's run directory and the "
                  "pruning callback,\n# layered on sweep-base.yaml\n")
        layer = trial_layer(sweep, number, params)
        atomic_write_text(layer_path, header + dump_yaml(layer))
        worker = f"{socket.gethostname()}:{os.getpid()}:{index}"
        env = self._environment(index)
        configs = ["--config", str(sweep.base_path), "--config", str(directory / layer_path.name)]
        self._check(trial, state, configs, env, {
            "experiment.name": spec.name, "experiment.version": f"trial_{number}",
            "experiment.root_dir": sweep.root_dir, "experiment.resume": None,
            "experiment.sweep": layer["experiment"]["sweep"],
            "trainer.callbacks": layer["trainer"]["callbacks"], "ckpt_path": None,
        })
        device = env.get("CUDA_VISIBLE_DEVICES") if self.devices else None
        trial.set_user_attr("enhtrain_worker", worker)
        trial.set_user_attr("enhtrain_run_dir", str(run_dir))
        # Built from the checked spec, the sampled values and this worker's own flags only.
        command = [sys.executable, "-m", "enhtrain", "fit", *configs, *sweep.trial_flags]
        shown = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in params.items())
        self.echo(f"trial {number} started: {shown}" + (f" (GPU {device})" if device else ""))
        started = time.monotonic()
        status, pruned, missing = self._converse(trial, command, env, log_path, state, index)
        duration = time.monotonic() - started
        self._conclude(trial, state, status=status, pruned=pruned, missing=missing, params=params, run_dir=run_dir,
                       log_path=log_path, duration=duration, worker=worker, device=device)

    def _converse(self, trial: Any, command: list[str], env: dict[str, str], log_path: Path,
                  state: dict[str, Any], index: int) -> tuple[int, bool, dict[str, Any] | None]:
        """Start the trial's process (forked from the worker's preloaded process) and answer its pruning questions.

        Returns:
            The exit status, whether the trial was pruned, and the metrics of a validation that lacked the metric.
        """
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        server = self._server(index)
        try:
            with open(log_path, "wb") as log:
                process = None
                if server is not None:
                    try:
                        process = server.start(command[3:], env, os.getcwd(), log.fileno(),
                                               (answer_read, request_write), CHANNEL_ENV)
                    except OSError as err:
                        self._drop_servers(err, only=index)
                if process is None:
                    env[CHANNEL_ENV] = f"{answer_read},{request_write}"
                    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=env,
                                               pass_fds=(answer_read, request_write), start_new_session=True)
        except BaseException:
            for fd in (request_read, request_write, answer_read, answer_write):
                os.close(fd)
            raise
        os.close(answer_read)
        os.close(request_write)
        state["process"] = process
        with self._lock:
            self._running[trial._trial_id] = process
        heartbeat = threading.Event()
        threading.Thread(target=self._heartbeat, args=(trial._trial_id, heartbeat), daemon=True).start()
        missing: dict[str, Any] | None = None
        pruned = False
        try:
            with os.fdopen(request_read, "r", encoding="utf-8") as requests, \
                    os.fdopen(answer_write, "w", encoding="utf-8") as answers:
                for line in requests:
                    try:
                        message = parse_json(line, "a trial's pruning message")
                    except ConfigError:
                        continue
                    if not isinstance(message, dict):
                        continue
                    prune = False
                    if "missing" in message:
                        # Not logged by this validation; whether it is ever logged shows when the trial ends.
                        missing = message
                    else:
                        trial.report(float(message["value"]), int(message["step"]))
                        prune = bool(trial.should_prune())
                        pruned = pruned or prune
                    with contextlib.suppress(OSError):
                        answers.write(json.dumps({"prune": prune}) + "\n")
                        answers.flush()
            return process.wait(), pruned, missing
        finally:
            heartbeat.set()
            with self._lock:
                self._running.pop(trial._trial_id, None)

    def _conclude(self, trial: Any, state: dict[str, Any], *, status: int, pruned: bool,
                  missing: dict[str, Any] | None, params: dict[str, Any], run_dir: Path, log_path: Path,
                  duration: float, worker: str, device: str | None) -> None:
        """Tell Optuna how the trial ended, record it in the run's metadata, and stop the sweep on bad input."""
        from optuna.trial import TrialState

        spec, number = self.sweep.spec, trial.number
        meta_path = run_dir / "metadata.json"
        meta = _read_json(meta_path)
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        value = metrics.get(spec.metric)
        error: str | None = None
        stopped = self._stop.is_set() or status in (_SIGTERM_STATUS, -signal.SIGTERM)
        refused = status == _CONFIG_REFUSED and not meta
        never_logged = f"metric '{spec.metric}' never logged"
        if stopped:
            outcome_state, error = TrialState.FAIL, "stopped; queued again"
        elif refused:
            outcome_state, error = TrialState.FAIL, _last_error(log_path) or "its config was refused"
        elif status < 0:  # the process died of a signal: out of memory (SIGKILL), a crash (SIGSEGV), or a user
            outcome_state, error = TrialState.FAIL, f"killed by {_signal_name(-status)}"
        elif status != 0 or meta.get("status") not in ("completed", None):
            outcome_state, error = TrialState.FAIL, _last_error(log_path) or f"exit status {status}"
        elif value is None and not pruned:
            outcome_state, error = TrialState.FAIL, never_logged
        elif pruned:
            outcome_state = TrialState.PRUNED
        else:
            outcome_state = TrialState.COMPLETE
        if error is not None:
            trial.set_user_attr("enhtrain_error", error)
        trial.set_user_attr("enhtrain_duration_s", round(duration, 3))
        study = self.sweep.study
        if outcome_state == TrialState.COMPLETE:
            frozen = study.tell(trial, float(value), state=outcome_state, skip_if_finished=True)
        else:
            frozen = study.tell(trial, state=outcome_state, skip_if_finished=True)
        state["told"] = True
        if stopped:
            self._requeue(frozen)
        if meta:
            self._record(meta_path, run_dir, meta, number, params, outcome_state.name, worker, device)
        outcome = TrialOutcome(number, outcome_state.name, float(value) if isinstance(value, (int, float)) else None,
                               params, run_dir, duration, error)
        self.outcomes.append(outcome)
        self.echo(_describe(outcome, spec.metric))
        if error == never_logged:
            logged = ", ".join(sorted(metrics) or (missing or {}).get("logged") or []) or "nothing"
            raise ConfigError(
                f"sweep.metric: '{spec.metric}' was never logged by trial {number} ({run_dir}); it logged: {logged}; "
                "set sweep.metric to one of them"
            )
        if refused and not stopped:
            raise ConfigError(
                f"sweep trial {number}: its config was refused: {error}; check the values of sweep.params "
                f"(the trial's output is in {log_path})"
            )
        if stopped:
            raise _Stopped

    def _check(self, trial: Any, state: dict[str, Any], configs: list[str], env: dict[str, str],
               expected: dict[str, Any]) -> None:
        """Check the trial's composed config as ``fit`` checks one; a refused config fails the trial for good."""
        from optuna.trial import TrialState

        try:
            check_config(configs, self.sweep.trial_flags, env, label=configs[-1], expected=expected)
        except ConfigError as err:
            message = str(err)
            trial.set_user_attr("enhtrain_error", message[:300])
            self.sweep.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            state["told"] = True
            raise ConfigError(f"sweep trial {trial.number}: its config was refused: {message}; check the values of "
                              "sweep.params") from err

    def _heartbeat(self, trial_id: int, done: threading.Event) -> None:
        interval = self.sweep.spec.heartbeat_interval
        while not done.wait(interval):
            with contextlib.suppress(Exception):
                self.sweep.storage.record_heartbeat(trial_id)

    def _record(self, meta_path: Path, run_dir: Path, meta: dict[str, Any], number: int, params: dict[str, Any],
                state: str, worker: str, device: str | None) -> None:
        """Write the sweep's record into the trial's ``metadata.json``; a pruned run's status becomes ``pruned``."""
        from enhtrain.run.lock import RunLock, RunLockedError

        meta["sweep"] = {"study": self.sweep.spec.name, "trial": number, "params": params, "state": state,
                         "metric": self.sweep.spec.metric, "storage": mask_url(self.sweep.url), "worker": worker,
                         "device": device}
        if state == "PRUNED":
            meta["status"] = "pruned"
        lock = RunLock(run_dir)
        try:
            lock.acquire(action="record the sweep's outcome")
        except RunLockedError:
            return
        try:
            atomic_write_json(inside(meta_path, run_dir, what="metadata file"), meta)
        finally:
            lock.release()


@contextlib.contextmanager
def preloaded_server(*, fork: bool = True) -> Iterator[Any]:
    """The workers' preloaded process, started now so that its imports overlap the rest of the sweep's start.

    One process imports for every worker: :class:`WorkerPool` sends it the sweep's modules and copies it for the
    other workers once it is ready.

    Yields:
        Its :class:`~enhtrain.sweeps.forkserver.ForkServer`, closed on exit; ``None`` with ``fork=False`` or
        where the platform has no fork.
    """
    from enhtrain.sweeps.forkserver import ForkServer, fork_available

    server = ForkServer(None) if fork and fork_available() else None
    try:
        yield server
    finally:
        if server is not None:
            server.close()


def _preload_modules(base: dict[str, Any], flags: Sequence[str]) -> tuple[list[str], bool]:
    """The modules of the base config's model and data classes that the import gate lets a trial import.

    Returns:
        The modules, and whether the trials run in safe mode (their preloaded process then imports nothing else).
    """
    from enhtrain.config.arguments import import_policy, split_arguments
    from enhtrain.security import check_import

    policy = import_policy(split_arguments(["fit", *flags]), os.environ)
    modules: list[str] = []
    for key in ("model", "data"):
        section = base.get(key)
        path = section.get("class_path") if isinstance(section, dict) else None
        if not isinstance(path, str) or "." not in path:
            continue
        try:
            check_import(path, key=f"{key}.class_path", where="the sweep's base config", policy=policy)
        except ConfigError:
            continue  # the trial refuses it with fit's own message
        module = path.replace(":", ".").rsplit(".", 1)[0]
        if module.replace(".", "").replace("_", "").isalnum() and module not in modules:
            modules.append(module)
    return modules, policy.safe


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path, what="run file")
    except ConfigError:
        return {}
    return data if isinstance(data, dict) else {}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _describe(outcome: TrialOutcome, metric: str) -> str:
    value = "-" if outcome.value is None else f"{outcome.value:.4g}"
    state = outcome.state.lower()
    text = f"trial {outcome.number} {state}: {metric}={value} ({outcome.run_dir}, {outcome.duration_s:.1f} s)"
    return text + (f": {outcome.error}" if outcome.error and state == "fail" else "")
