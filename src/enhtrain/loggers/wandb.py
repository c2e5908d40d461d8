"""The run's Weights & Biases logger.

The ``wandb`` factory is called as ``wandb_logger(log_dir, name, version, **options)``: ``log_dir`` is the
logger's own directory, ``<run>/logs/wandb`` in a run ``runs/<name>/<version>/``. The logger reports the run's
name and version (``logger.name == name``, ``str(logger.version) == version``) and writes only under
``log_dir``: ``<log_dir>/offline-run-<time>-<id>/run-<id>.wandb`` offline (``run-<time>-<id>/`` online), with
wandb's ``debug.log`` files and ``latest-run`` link beside it. wandb always writes into a folder named ``wandb``;
when ``log_dir`` is itself named ``wandb`` it is that folder, otherwise the files land in ``<log_dir>/wandb/``.
``wandb sync <log_dir>/offline-run-*`` uploads an offline run.

The logger runs offline unless an API key is set (``WANDB_API_KEY`` or an ``api_key`` option) or
``offline: false`` is given; offline, nothing contacts W&B's servers. Secrets in the hyper-parameters and in the
command line that wandb records are masked (see :mod:`enhtrain.secrets`).

Importing this module does not import ``wandb``; creating a logger does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_debug, rank_zero_only, rank_zero_warn
from typing_extensions import override

from enhtrain.documents import parse_json
from enhtrain.errors import ConfigError
from enhtrain.loggers._common import _AllInLogDir, _check_options, _checked_by, _offline, _parameters, _require
from enhtrain.secrets import mask_argv

__all__ = ["RunWandbLogger", "wandb_logger"]

# How long `finalize` waits for wandb-core to complete the run's file.
_WANDB_FILE_TIMEOUT = 60.0
# How long one read of the run's file by wandb's reader may take.
_WANDB_READ_TIMEOUT = 30.0


class RunWandbLogger(_AllInLogDir, WandbLogger):
    r"""Lightning's ``WandbLogger`` reporting the run's name and version; ``finalize`` ends the W&B run.

    Offline, the W&B run is made fully local: ``mode="offline"``, and wandb's own telemetry and error reporting
    are switched off for the process. ``finalize`` finishes the W&B run and waits until wandb's own reader
    (``wandb leet inspect``, in wandb 0.31) finds the run's exit record in its ``.wandb`` file, which wandb-core
    completes only after ``finish`` returns, so the file is whole when ``Trainer.fit`` returns; a later stage on
    the same logger resumes the same W&B run id. ``logger.name`` and ``logger.version`` are the run's; the W&B
    project is ``logger.experiment.project`` and the W&B run id is :attr:`run_id`.

    Example::

        logger = RunWandbLogger("runs/mnist/version_0/logs/wandb", name="mnist", version="version_0")
        trainer = Trainer(logger=logger)

    Args:
        log_dir: The logger's directory; see the module's documentation for where wandb writes.
        name: The run's name; also the W&B run's display name.
        version: The run's version.
        offline: Whether to log offline.
        id: The W&B run id; by default a stable hash of ``log_dir``, ``name`` and ``version``.
        \**kwargs: Further arguments of ``WandbLogger`` and of ``wandb.init``.

    """

    def __init__(
        self,
        log_dir: str,
        name: str,
        version: str,
        offline: bool = True,
        id: str | None = None,
        **kwargs: Any,
    ) -> None:
        log_dir = os.fspath(log_dir)
        wandb_root = os.path.normpath(log_dir)
        # wandb adds a `wandb` folder under the directory it is given.
        wandb_root = os.path.dirname(wandb_root) if os.path.basename(wandb_root) == "wandb" else wandb_root
        if offline:
            kwargs["mode"] = "offline"
        super().__init__(
            log_dir,
            name,
            version,
            name=name,
            save_dir=wandb_root or ".",
            id=id or _wandb_run_id(log_dir, name, version),
            offline=offline,
            **kwargs,
        )
        # Lightning always passes `anonymous`, which wandb deprecates with a warning even when it is None.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @property
    def run_id(self) -> str | None:
        """The W&B run id."""
        return self._experiment.id if self._experiment else self._id

    @property
    @override
    @rank_zero_experiment
    def experiment(self) -> Any:
        r"""The ``wandb`` run, started on first access.

        Example::

            self.logger.experiment.log({"examples": [wandb.Image(image)]})

        """
        if self._experiment is None:
            os.makedirs(self._wandb_init["dir"], exist_ok=True)
            if self._offline:
                _keep_wandb_local()
            # wandb records the command line in the run's metadata: give it the masked one.
            argv = sys.argv
            sys.argv = [*argv[:1], *mask_argv(argv[1:])]
            try:
                return super().experiment
            finally:
                sys.argv = argv
        return super().experiment

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log pending checkpoints (on success), finish the W&B run and wait until its file is complete.

        Args:
            status: How the stage ended (``"success"``, ``"failed"``, ``"finished"``).
        """
        super().finalize(status)
        if self._experiment is None:
            return
        run, self._experiment = self._experiment, None
        run_file = getattr(getattr(run, "settings", None), "sync_file", None)
        run.finish(exit_code=0 if status in ("success", "finished") else 1)
        # wandb-core writes the end of the run's file after `finish` returns: wait, so it is whole when `fit` is.
        if not (isinstance(run_file, str) and os.path.isfile(run_file)):
            return
        complete = _wait_for_exit_record(run_file, _WANDB_FILE_TIMEOUT)
        if complete is None:
            rank_zero_debug(f"This wandb cannot read {run_file} back; not waiting for it to be complete")
        elif not complete:
            rank_zero_warn(f"The W&B run file {run_file} was not complete {_WANDB_FILE_TIMEOUT:.0f}s after finish")


def _wandb_run_id(log_dir: str, name: str, version: str) -> str:
    """A W&B run id (``[a-z0-9]``) that stays the same for the same run directory, so a resumed run reuses it.

    The absolute path is part of it, so that two machines' ``baseline/version_0`` do not merge into one W&B run.
    """
    key = "\0".join((os.path.abspath(log_dir), name, version))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _keep_wandb_local() -> None:
    """Stop wandb's process-wide telemetry and error reporting, which contact W&B even for an offline run."""
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy
    except ImportError:
        return
    disable = getattr(opentelemetry_proxy, "disable", None)
    if callable(disable):
        disable()


def _read_run_summary(run_file: str) -> dict[str, Any] | None:
    """Read a ``.wandb`` run file with wandb's own reader and return its summary.

    The reader is ``wandb leet inspect --summary --json``, which wandb-core implements; it is run as wandb's
    command line runs it, without telemetry. Its summary has ``exit_code``, ``None`` until the run's exit record
    is in the file.

    Returns:
        The summary, or ``None`` if this wandb has no such reader (wandb 0.31 has it) or it fails.
    """
    try:
        from wandb.util import get_core_path

        core = get_core_path()
    except Exception:
        return None
    wandb_dir = os.path.dirname(os.path.dirname(os.path.abspath(run_file)))
    command = [core, "leet", "inspect", "--no-observability", "--summary", "--json", "--run-file", run_file, wandb_dir]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_WANDB_READ_TIMEOUT, check=False)
        summary = parse_json(result.stdout, "wandb's summary", allow_nan=True) if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ConfigError):
        return None
    return summary if isinstance(summary, dict) else None


def _wait_for_exit_record(run_file: str, timeout: float) -> bool | None:
    """Wait until wandb's reader finds the exit record in ``run_file``.

    Returns:
        ``True`` once it is there, ``False`` if it is not after ``timeout`` seconds, ``None`` if the file cannot
        be read back (see :func:`_read_run_summary`).
    """
    deadline = time.monotonic() + timeout
    while True:
        summary = _read_run_summary(run_file)
        if summary is None:
            return None
        if summary.get("exit_code") is not None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _wandb_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, bool]:
    """Check the wandb logger's options; return the rest, the API key and whether to log offline.

    Raises:
        ConfigError: If wandb is not installed, or an option is unknown, set by enhtrain or conflicting.
    """
    _require("wandb", "wandb", "wandb")
    import wandb

    options, api_key, offline = _offline("wandb", options, "WANDB_API_KEY")
    _check_options("wandb", options, _parameters(WandbLogger.__init__, wandb.init))
    if offline and options.get("log_model"):
        raise ConfigError("logger 'wandb': log_model uploads checkpoints, which needs offline: false")
    return options, api_key, offline


@_checked_by(_wandb_options)
def wandb_logger(log_dir: str, name: str, version: str, **options: Any) -> RunWandbLogger:
    """Create the run's Weights & Biases logger.

    The W&B run's display name is the run's name and its id is stable for the run directory (override it with
    ``id``). It runs offline, writing ``<log_dir>/offline-run-<time>-<id>/run-<id>.wandb`` for ``wandb sync``,
    unless ``offline: false`` is given or an API key is set (``WANDB_API_KEY`` or the ``api_key`` option).

    Args:
        log_dir: The logger's directory, ``<run>/logs/wandb``.
        name: The run's name.
        version: The run's version.
        **options: ``offline``, ``api_key``, options of Lightning's ``WandbLogger`` (``project``,
            ``log_model``, ``prefix``, ...) and of ``wandb.init`` (``entity``, ``tags``, ``group``, ``notes``,
            ``settings``, ...).

    Returns:
        A :class:`RunWandbLogger`.

    Raises:
        ConfigError: If wandb is not installed, or an option is unknown, set by enhtrain or conflicting.
    """
    options, api_key, offline = _wandb_options(options)
    if api_key and not offline:
        settings = options.get("settings") or {}
        if isinstance(settings, Mapping):
            options["settings"] = {**settings, "api_key": api_key}
        else:
            settings.api_key = api_key
    return RunWandbLogger(log_dir, name, version, offline=offline, **options)
