"""One run from start to end: its directory, saved config, metadata, components and final status."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enhtrain._io import atomic_write_bytes, atomic_write_text, move_aside
from enhtrain.checkpoints.sharded import check_resume
from enhtrain.documents import dump_yaml
from enhtrain.errors import CheckpointError, ConfigError, RunDirError, located
from enhtrain.run import metadata as run_metadata
from enhtrain.run.components import build_callbacks, build_loggers, build_profiler
from enhtrain.run.directory import RunDir, create_run_dir, open_existing
from enhtrain.run.join import RUN_TOKEN_ENV, holds, new_token, refuse_join
from enhtrain.run.lock import RunLock
from enhtrain.run.resume import (
    ResumePoint,
    check_config_change,
    find_resume_point,
    finished_run,
    read_saved_config,
)
from enhtrain.secrets import mask_argv, mask_secrets, mask_text, secret_values
from enhtrain.security import inside

if TYPE_CHECKING:
    from enhtrain.config.arguments import PreparedArgs
    from enhtrain.config.compose import ComposedConfig
    from enhtrain.config.schema import ExperimentConfig

__all__ = ["RUN_DIR_ENV", "RunSession", "global_rank"]

# The ModelCheckpoint objects whose dirpath enhtrain set, and to what.
_DIRPATHS_SET: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

RUN_DIR_ENV = "ENHTRAIN_RUN_DIR"
"""The environment variable through which the processes of a distributed job find the run directory."""


def global_rank() -> int:
    """Return this process's global rank from the launcher's environment (0 when not distributed)."""
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK"):
        value = os.environ.get(key)
        if value is not None and value.isdigit():
            if key == "SLURM_PROCID" and "SLURM_NTASKS" not in os.environ:
                continue
            return int(value)
    return 0


@dataclass
class RunSession:
    """The run of one ``EnhancedCLI`` invocation, in three steps that each come after every check before it.

    1. :meth:`start` checks everything that needs no model: the resume point, that its checkpoint loads safely,
       the run's lock, the config against the resumed run's. It writes nothing.
    2. :meth:`open` (once the model and data module are built) creates the new run directory, or takes the
       resumed one, and holds the run's lock for the life of the process.
    3. :meth:`commit` (once the Trainer is built) writes ``config.yaml`` and ``metadata.json``.

    A command refused before :meth:`commit` leaves an earlier run exactly as it was.

    Attributes:
        experiment: The validated experiment section.
        masked_config: The composed config (all of it) with secrets masked, as saved in ``config.yaml``.
        is_writer: Whether this process writes run files (global rank 0).
        resume_ckpt: The checkpoint to continue from, if resuming.
        resume_step: The global step of that checkpoint (0 for a new run): training has begun once the
            trainer is past it.
        point: Where the run resumes from, if it does.
    """

    experiment: ExperimentConfig
    masked_config: dict[str, Any]
    is_writer: bool
    prepared: PreparedArgs
    subcommand: str
    point: ResumePoint | None = None
    resume_ckpt: str | None = None
    resume_step: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    composed: ComposedConfig | None = None
    _run: RunDir | None = None
    _lock: RunLock | None = None
    _restore: dict[Path, bytes | None] = field(default_factory=dict)
    _secrets: set[str] = field(default_factory=set)
    _loggers: list[Any] = field(default_factory=list)
    _callbacks: list[Any] = field(default_factory=list)
    _job: str | None = None
    _token: str | None = None
    reused_seed: int | None = None
    seed: dict[str, Any] | None = None

    @property
    def secret_values(self) -> set[str]:
        """The secret values of the environment (see :func:`enhtrain.secrets.secret_values`)."""
        return self._secrets

    @property
    def run(self) -> RunDir:
        """The run directory (available after :meth:`open`)."""
        if self._run is None:
            raise RuntimeError("the run directory is not open yet")
        return self._run

    @classmethod
    def start(cls, prepared: PreparedArgs, config: dict[str, Any], *, subcommand: str, trust: bool) -> RunSession:
        """Check what needs no model; write nothing.

        When resuming, this finds the checkpoint, checks that it loads without pickled objects (unless
        ``trust``), takes the resumed run's lock and compares the config with the run's own.

        Args:
            prepared: The composed command line.
            config: The parsed config of the subcommand as plain data.
            subcommand: ``fit``, ``validate``, ``test`` or ``predict``.
            trust: Whether checkpoints may need pickled objects.

        Raises:
            ConfigError: On a refused resume (config drift), or a ``trainer.default_root_dir`` that differs from
                the ``experiment.root_dir`` a layer set.
            CheckpointError: If the checkpoint to resume from is missing, corrupt or unsafe.
            RunLockedError: If another process writes the run to resume.
        """
        from enhtrain.config.arguments import reconcile_root_dir
        from enhtrain.config.errors import where_set

        trainer = config.get("trainer")
        default_root_dir = trainer.get("default_root_dir") if isinstance(trainer, dict) else None
        where = where_set("trainer.default_root_dir", prepared.composed, prepared.split.rest)
        experiment = reconcile_root_dir(prepared.experiment, prepared.composed, default_root_dir, where)
        if isinstance(config.get("experiment"), dict):
            config["experiment"]["root_dir"] = experiment.root_dir
        prepared.experiment = experiment
        values = secret_values()
        masked = mask_secrets(config, values)
        is_writer = global_rank() == 0
        session = cls(experiment, masked, is_writer, prepared, subcommand, composed=prepared.composed,
                      _secrets=values, _job=_job_key())
        if experiment.resume is None or subcommand != "fit":
            return session
        point = find_resume_point(experiment, trust=trust)
        if point is None:
            return session
        session.resume_step = _check_loads(point.checkpoint, trust)
        check_resume(point.checkpoint, config)
        run = open_existing(point.run_dir)
        if masked.get("seed_everything") is True:
            # `true` draws a seed; the resumed run draws none but continues with the one its run drew.
            session.reused_seed = _drawn_seed(run.metadata_path)
            if session.reused_seed is not None:
                masked["seed_everything"] = session.reused_seed
        if is_writer:
            lock = RunLock(run.path)
            lock.acquire(action="resume it")
            try:
                check_config_change(run.config_path, masked, allow=experiment.allow_config_change)
            except BaseException:
                lock.release()
                raise
            session._lock = lock
        session.point, session.resume_ckpt, session._run = point, point.checkpoint, run
        return session

    def end_if_finished(self) -> None:
        """End the command if the run it resumes is finished: say so, and leave the run exactly as it was.

        Called once the model, the data module and the Trainer are built (so the config is checked) and before
        anything is written. Every rank reads the same files and so ends alike.

        Raises:
            SystemExit: With status 0, when there is nothing to train (see :func:`~enhtrain.run.resume.finished_run`).
        """
        if self.point is None:
            return
        finished = finished_run(self.point.run_dir, self.resume_step, self.masked_config)
        if finished is None:
            return
        self._withdraw_launch()
        self.release()
        if self.is_writer:
            sys.stdout.write(f"enhtrain: {finished}\n")
            sys.stdout.flush()
        raise SystemExit(0)

    def open(self) -> RunDir:
        """Create the new run directory (or join the resumed one, or the one rank 0 made) and hold its lock.

        Raises:
            RunDirError: If the run directory cannot be created.
            RunLockedError: If another process holds the new directory's lock.
        """
        experiment = self.experiment
        inherited = os.environ.get(RUN_DIR_ENV)
        if self._run is not None and self.point is not None and (self.is_writer or self._ends_finished()):
            pass  # rank 0 holds the resumed run since start(); a finished run ends with nothing written
        elif not self.is_writer and inherited and Path(inherited).is_dir():
            # Only the run that rank 0 of this launch holds, with the token it passed on.
            if holds(inherited, os.environ.get(RUN_TOKEN_ENV)) is not True:
                raise refuse_join(global_rank(), inherited, f"from {RUN_DIR_ENV}")
            self._run = open_existing(inherited)
        elif self.is_writer:
            self._run = create_run_dir(experiment.root_dir, experiment.name, experiment.version)
            lock = RunLock(self._run.path)
            try:
                lock.acquire()
            except BaseException:
                self._run.remove_if_created()
                raise
            self._lock = lock
        else:
            self._run = _wait_for_run_dir(experiment)
        if self.is_writer:
            self._token = self._token or new_token()
            _announce_run_dir(experiment, self._run, self._token)
            # Processes the launcher starts join this run, with this launch's token.
            os.environ[RUN_DIR_ENV], os.environ[RUN_TOKEN_ENV] = str(self._run.path), self._token
        return self._run

    def _ends_finished(self) -> bool:
        """Whether the resumed run is finished, so that :meth:`end_if_finished` ends the command."""
        assert self.point is not None
        return finished_run(self.point.run_dir, self.resume_step, self.masked_config) is not None

    def commit(self) -> None:
        """Write ``config.yaml`` and ``metadata.json`` (rank 0): every check has passed.

        Raises:
            RunDirError: If the run directory cannot be written; a new run is removed, a resumed one restored.
        """
        if not self.is_writer:
            return
        run = self.run
        if self.point is not None:
            # Kept until training starts: a setup that Lightning refuses restores the resumed run's files.
            for path in (run.config_path, run.metadata_path):
                self._restore[path] = path.read_bytes() if path.is_file() else None
        if self._lock is not None:
            self._lock.claim(self._token)
        try:
            self._write_start()
        except OSError as err:
            self.abort()
            raise RunDirError(
                f"cannot write run directory '{run.path}': {err.strerror or err}; free some space or set "
                "experiment.root_dir to a writable folder"
            ) from err
        except BaseException:
            self.abort()
            raise

    def _write_start(self) -> None:
        from enhtrain import plugins

        run, point, prepared = self.run, self.point, self.prepared
        text = dump_yaml(self.masked_config)
        if point is None or not run.config_path.exists():
            atomic_write_text(inside(run.config_path, run.path, what="config file"), text)
        elif _saved_config_or_none(run.config_path) != self.masked_config:
            previous = inside(run.path / f"config.before-resume-{int(time.time())}.yaml", run.path)
            self._restore[previous] = None
            with contextlib.suppress(OSError):
                move_aside(inside(run.config_path, run.path, what="config file"), previous)
            atomic_write_text(inside(run.config_path, run.path, what="config file"), text)
        plugin_rows = [
            {"name": p["name"], "distribution": p["distribution"], "version": p["version"], "error": p["error"]}
            for p in plugins.list_plugins()
            if not p["builtin"]
        ]
        previous_meta = run_metadata.read_metadata(run.metadata_path) if point else {}
        self.metadata = run_metadata.start_metadata(
            inside(run.metadata_path, run.path, what="metadata file"),
            name=run.name,
            version=run.version,
            subcommand=self.subcommand,
            argv=mask_argv(prepared.original, self._secrets),
            env=prepared.composed.env,
            config=self.masked_config,
            plugins=plugin_rows,
            tags=mask_secrets(list(self.experiment.tags), self._secrets),
            description=mask_text(self.experiment.description, self._secrets) if self.experiment.description else None,
            seed=self.seed,
            resumed_from=point.checkpoint if point is not None else None,
            previous=previous_meta,
        )

    def build_trainer_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        """Return the Trainer arguments the experiment adds; errors name the file and line of the setting.

        Args:
            **kwargs: See :meth:`_build_trainer_kwargs`.

        Raises:
            ConfigError: If a logger, callback or profiler rejects its options.
        """
        try:
            return self._build_trainer_kwargs(**kwargs)
        except ConfigError as err:
            key = str(err).split(":", 1)[0]
            where = self.composed.source_of(key.split(".")) if self.composed and key.startswith("experiment.") else None
            if where:
                raise ConfigError(located(where, str(err))) from err
            raise

    def _build_trainer_kwargs(
        self,
        *,
        user_logger: Any,
        user_profiler: Any,
        user_plugins: Any,
        has_checkpoint: bool,
        checkpoint_io_cls: type,
        enable_checkpointing: bool | None = None,
        user_checkpoints: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """Return the Trainer arguments the experiment adds: loggers, callbacks, profiler, root dir, IO plugin.

        What is added follows :data:`enhtrain.config.reconcile.TRAINER_PARTS_RULE`: ``trainer.logger: false`` means
        no logger at all, ``trainer.enable_checkpointing: false`` no checkpoint (so no manifest either), and a
        given ``ModelCheckpoint`` (``user_checkpoints``) replaces enhtrain's; one without a ``dirpath`` saves
        into the run's ``checkpoints/``, where the checkpoint IO lists every file in the manifest.
        """
        from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO
        from enhtrain.checkpoints.run_checkpoint import CheckpointProvenance, RunCheckpoint
        from enhtrain.config.reconcile import GivenParts, plan

        exp = self.experiment
        given = GivenParts(checkpoint=has_checkpoint, logger=user_logger, enable_checkpointing=enable_checkpointing)
        parts = plan(given, checkpoint_configured=exp.checkpoint is not None)
        kwargs: dict[str, Any] = {"default_root_dir": str(self.run.path)}
        loggers = build_loggers(exp.active_loggers(), self.run) if parts.loggers else []
        if user_logger not in (None, True, False):
            loggers = [*(user_logger if isinstance(user_logger, list) else [user_logger]), *loggers]
        kwargs["logger"] = loggers if loggers else False
        callbacks = build_callbacks(exp.active_callbacks(), self.run)
        if parts.checkpoint and exp.checkpoint is not None:
            ckpt = exp.checkpoint
            callbacks.append(
                RunCheckpoint(
                    run_info=self.checkpoint_info(),
                    dirpath=str(self.run.checkpoints),
                    filename=ckpt.filename,
                    monitor=ckpt.monitor,
                    mode=ckpt.mode or "min",
                    save_top_k=ckpt.save_top_k,
                    keep_last=ckpt.keep_last,
                    save_last=ckpt.save_last,
                    every_n_epochs=ckpt.every_n_epochs,
                    every_n_train_steps=ckpt.every_n_train_steps,
                    auto_insert_metric_name=False,
                )
            )
        elif parts.checkpoints_off:
            kwargs["enable_checkpointing"] = False
        elif parts.user_checkpoint_into_run:
            for given_checkpoint in user_checkpoints:
                # A script's callback object may serve several runs of one process (a notebook): a folder set for
                # an earlier run is set again.
                if given_checkpoint.dirpath is None or given_checkpoint.dirpath == _DIRPATHS_SET.get(given_checkpoint):
                    given_checkpoint.dirpath = _DIRPATHS_SET[given_checkpoint] = os.path.realpath(self.run.checkpoints)
            callbacks.append(CheckpointProvenance(run_info=self.checkpoint_info()))
        if exp.runtime_updates and self.subcommand == "fit":
            from enhtrain.callbacks.runtime_updates import RuntimeUpdates

            callbacks.append(RuntimeUpdates(self.run.path, record=self.record_runtime_update))
        elif self.subcommand != "fit":
            from enhtrain.callbacks.runtime_updates import RuntimeUpdatesState

            callbacks.append(RuntimeUpdatesState())
        kwargs["callbacks"] = callbacks
        spec = exp.profiler_spec()
        if spec is not None and user_profiler is None and self.is_writer:
            kwargs["profiler"] = build_profiler(spec[0], spec[1], self.run)
        plugins_list = user_plugins if isinstance(user_plugins, list) else ([user_plugins] if user_plugins else [])
        if not any(isinstance(p, checkpoint_io_cls) for p in plugins_list):
            kwargs["plugins"] = [*plugins_list,
                                 AtomicCheckpointIO(trust_checkpoint=self.prepared.trust.trust_checkpoint,
                                                    root=None if has_checkpoint else self.run.path,
                                                    manifest_dir=self.run.checkpoints if self.is_writer else None)]
        self._loggers, self._callbacks = loggers, callbacks
        return kwargs

    def record_runtime_update(self, entry: dict[str, Any]) -> None:
        """Append an applied runtime update to ``metadata.json`` under ``runtime_updates`` (rank 0)."""
        if not self.is_writer or not self.metadata or self._run is None:
            return
        history = [*self.metadata.get("runtime_updates", []), mask_secrets(entry, self._secrets)]
        with contextlib.suppress(OSError):
            run_metadata.update_metadata(self.run.metadata_path, self.metadata, runtime_updates=history)

    def checkpoint_info(self) -> dict[str, Any]:
        """What every checkpoint of this run records about it."""
        return {
            "run_name": self.run.name,
            "run_version": self.run.version,
            "run_dir": str(self.run.path),
            "config_hash": run_metadata.config_hash(self.masked_config),
            "config": self.masked_config,
            "git": self.metadata.get("git") or run_metadata.git_state(),
            "versions": self.metadata.get("versions") or run_metadata.package_versions(),
        }

    def finish(self, trainer: Any, error: BaseException | None = None) -> None:
        """Record how the run ended (``completed``, ``stopped``, ``failed``, ``interrupted``) and its final metrics."""
        try:
            self._finish(trainer, error)
        finally:
            self.release()

    def hold(self) -> None:
        """Take the run's lock again, for another Trainer call of a ``run=False`` script (after :meth:`finish`).

        Raises:
            RunLockedError: If another process writes the run meanwhile.
        """
        if not self.is_writer or self._lock is not None or self._run is None or not self.metadata:
            return
        lock = RunLock(self._run.path)
        lock.acquire(action="write it")
        lock.claim()
        self._lock = lock

    def release(self) -> None:
        """Let the run's lock go."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _withdraw_launch(self) -> None:
        """Rank 0: no process may join this run any more (the variables and the job marker go)."""
        if self.is_writer:
            os.environ.pop(RUN_DIR_ENV, None)
            os.environ.pop(RUN_TOKEN_ENV, None)
            if self._job is not None:
                with contextlib.suppress(OSError):
                    _marker(self.experiment, self._job).unlink()

    def _finish(self, trainer: Any, error: BaseException | None) -> None:
        self._withdraw_launch()
        if not self.is_writer or not self.metadata or self._run is None:
            return
        # Lightning marks the trainer interrupted after any exception; only a signal or Ctrl+C interrupts a run.
        interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
        stopped = any(getattr(c, "stop_requested", False) for c in self._callbacks)
        if error is None and stopped:
            status = "stopped"
        elif error is None and not interrupted:
            status = "completed"
        elif interrupted:
            status = "interrupted"
        else:
            status = "failed"
        metrics = {}
        for key, value in getattr(trainer, "callback_metrics", {}).items():
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                metrics[key] = float(value)
        changes: dict[str, Any] = {"status": status, "metrics": metrics, "global_step": trainer.global_step,
                                   "epoch": trainer.current_epoch}
        strategy = getattr(trainer, "strategy", None)
        if strategy is not None:
            changes.update(strategy=type(strategy).__name__, world_size=getattr(trainer, "world_size", None))
        if error is not None and status == "failed":
            changes["error"] = mask_text(f"{type(error).__name__}: {error}", self._secrets)[:500]
        for callback in self._callbacks:
            summary = getattr(callback, "summary", None)
            if isinstance(summary, dict) and summary:
                changes["summary"] = summary
        ckpt = getattr(trainer, "checkpoint_callback", None)
        if ckpt is not None:
            changes["best_checkpoint"] = getattr(ckpt, "best_model_path", None) or None
            changes["last_checkpoint"] = getattr(ckpt, "last_model_path", None) or None
        with contextlib.suppress(OSError):
            run_metadata.update_metadata(self.run.metadata_path, self.metadata, **changes)

    def abort(self) -> None:
        """Undo a run that never started: remove a new run directory, or restore a resumed run's files."""
        try:
            if not self.is_writer or self._run is None:
                return
            if self._run.created:
                self._run.remove_if_created()
            for path, content in self._restore.items():
                with contextlib.suppress(OSError):
                    if content is None:
                        inside(path, self._run.path).unlink(missing_ok=True)
                    else:
                        atomic_write_bytes(inside(path, self._run.path), content)
            self._restore.clear()
            os.environ.pop(RUN_DIR_ENV, None)
            os.environ.pop(RUN_TOKEN_ENV, None)
        finally:
            self.release()


def _job_key() -> str | None:
    """An id shared by every process of one distributed job and by no other job, if the launcher gives one."""
    world = os.environ.get("WORLD_SIZE")
    if not world and "SLURM_JOB_ID" in os.environ:
        world = os.environ.get("SLURM_NTASKS")
    if not world or world == "1":
        return None
    keys = ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT")
    parts = [os.environ.get(k, "") for k in keys]
    key = "-".join(p for p in parts if p)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key) or None


def _marker(experiment: ExperimentConfig, key: str) -> Path:
    return Path(experiment.root_dir) / experiment.name / f".enhtrain-job-{key}"


def _announce_run_dir(experiment: ExperimentConfig, run: RunDir, token: str) -> None:
    """Tell the other ranks of a distributed job (other nodes included) which run directory rank 0 made."""
    key = _job_key()
    if key is not None:
        marker = _marker(experiment, key)
        atomic_write_text(inside(marker, marker.parent, what="job marker"), f"{run.path.resolve()}\n{token}")


def _wait_for_run_dir(experiment: ExperimentConfig, timeout: float = 300.0) -> RunDir:
    """Wait for rank 0 to announce the run directory, so every rank agrees on the version."""
    key = _job_key()
    if key is None:
        raise ConfigError(
            f"rank {global_rank()} cannot find its run directory: start distributed runs with torchrun, SLURM or "
            "Lightning's own launcher so that the ranks share WORLD_SIZE, MASTER_ADDR and MASTER_PORT"
        )
    marker = _marker(experiment, key)
    started = time.time() - 600  # a marker older than this belongs to an earlier job on the same port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            announced = marker.read_text(encoding="utf-8") if marker.stat().st_mtime >= started else ""
        except OSError:
            announced = ""
        path, _, token = announced.strip().partition("\n")
        if path:
            # Rank 0 holds the run's lock before it announces it, and writes its token there once its checks pass.
            state = holds(path, token.strip())
            if state is True:
                return open_existing(path)
            if state is False:
                raise refuse_join(global_rank(), path, f"announced in {marker}")
        time.sleep(0.2)
    raise ConfigError(f"rank {global_rank()}: rank 0 did not announce a run directory in {marker} in time")


def _check_loads(checkpoint: str, trust: bool) -> int:
    """Refuse a checkpoint to resume from that would not load safely, before anything of its run is written.

    Returns:
        The checkpoint's global step.
    """
    from enhtrain.checkpoints.safe_load import require_lightning, safe_load

    try:
        loaded = safe_load(checkpoint, trust=trust, verify=False, mmap=True)
        require_lightning(loaded, checkpoint)
    except CheckpointError as err:
        raise CheckpointError(f"experiment.resume: {err}") from err
    step = loaded.get("global_step")
    return step if isinstance(step, int) else 0


def _drawn_seed(metadata_path: Path) -> int | None:
    """The seed a run drew for ``seed_everything: true``, as its ``metadata.json`` records it (else ``None``)."""
    try:
        seed = run_metadata.read_metadata(metadata_path).get("seed")
    except run_metadata.MetadataError:
        return None
    if isinstance(seed, dict) and seed.get("drawn") is True:
        value = seed.get("value")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _saved_config_or_none(path: Path) -> dict[str, Any] | None:
    """The resumed run's saved config, or ``None`` when it cannot be read (it is then kept aside and rewritten)."""
    try:
        return read_saved_config(path)
    except ConfigError:
        return None
