"""The run's Comet loggers.

The ``comet`` factory is called as ``comet_logger(log_dir, name, version, **options)``: ``log_dir`` is the
logger's own directory, ``<run>/logs/comet`` in a run ``runs/<name>/<version>/``. The logger reports the run's
name and version and runs offline unless an API key is set (``COMET_API_KEY`` or an ``api_key`` option) or
``offline: false`` is given.

Lightning's ``CometLogger(online=False)`` creates a *disabled* experiment, which writes nothing at all.
:class:`CometOfflineLogger` writes a real offline archive instead, ``<log_dir>/<experiment key>.zip``, which
``comet upload`` sends to Comet later; nothing contacts Comet's servers. :class:`CometOnlineLogger` is
Lightning's ``CometLogger`` reporting the run's name and version. Both mask secrets in the hyper-parameters
(see :mod:`enhtrain.secrets`).

Importing this module does not import ``comet_ml``; creating a logger does.
"""

from __future__ import annotations

import inspect
import os
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from lightning.fabric.utilities.logger import _add_prefix, _convert_params, _sanitize_callable_params
from lightning.pytorch.loggers import CometLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor
from typing_extensions import override

from enhtrain.loggers._common import (
    _RUN_OPTIONS,
    _AllInLogDir,
    _check_options,
    _checked_by,
    _offline,
    _parameters,
    _require,
    _RunLogger,
)
from enhtrain.secrets import mask_secrets

if TYPE_CHECKING:
    from comet_ml import OfflineExperiment

__all__ = ["CometOfflineLogger", "CometOnlineLogger", "comet_logger"]

# Comet options that copy the command line, the source and the git patch, secrets included, into the experiment
# (offline, CometOfflineLogger sets its own defaults).
_COMET_ONLINE_DEFAULTS = {"log_code": False, "parse_args": False, "log_git_patch": False}
# Options of the comet factory besides those of `comet_ml.ExperimentConfig`.
_COMET_OWN_OPTIONS = ("api_key", "experiment_key", "offline", "online", "prefix", "project", "tags", "workspace")
# The "Created from" other of an offline experiment.
_CREATED_FROM = "enhtrain"


def _import_comet_ml() -> Any:
    """Import ``comet_ml`` with auto-logging and error tracking off."""
    # Read when comet_ml is first imported: auto-logging patches torch, Lightning and other frameworks, error
    # tracking reports to Comet's Sentry.
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    import comet_ml

    return comet_ml


def _accepted_kwargs(factory: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the items of ``kwargs`` that ``factory`` takes."""
    parameters = inspect.signature(factory).parameters
    return {key: value for key, value in kwargs.items() if key in parameters}


class CometOfflineLogger(_AllInLogDir):
    r"""Log to a Comet offline archive that ``comet upload`` accepts.

    The archive is ``<offline_directory>/<experiment key>.zip``; it holds ``experiment.json`` and
    ``messages.json`` (one JSON message a line: metrics, parameters, the run's name, ...) and is written when
    the experiment ends, in :meth:`finalize`. A later stage on the same logger (``trainer.test`` after
    ``trainer.fit``) continues the same experiment in a second archive, ``<experiment key>-<suffix>.zip``;
    upload the archives in the order they were written. Nothing contacts Comet's servers.

    Example::

        logger = CometOfflineLogger("runs/mnist/version_0/logs/comet", name="mnist", version="version_0")
        trainer = Trainer(logger=logger)

    Args:
        offline_directory: Directory of the archive; created when the experiment starts.
        name: The run's name; also the Comet experiment's name.
        version: The run's version; logged as the ``run_version`` "other".
        project: Comet project name.
        workspace: Comet workspace.
        experiment_key: Key of the new experiment (32 to 50 alphanumeric characters); a random one by default.
        prefix: A string to put at the beginning of metric keys.
        tags: Tags added to the experiment.
        \**experiment_kwargs: Further arguments of ``comet_ml.OfflineExperiment`` (``auto_output_logging``,
            ``log_graph``, ...); they override :attr:`EXPERIMENT_DEFAULTS`.

    """

    LOGGER_JOIN_CHAR = "-"

    EXPERIMENT_DEFAULTS: ClassVar[dict[str, Any]] = {
        # These copy the command line, the source and the git patch, secrets included, into the archive.
        "log_code": False,
        "parse_args": False,
        "log_git_patch": False,
        # This probes cloud metadata servers and resolves Comet's host name.
        "log_env_details": False,
        # The end-of-run table repeats every parameter and metric (about 150 lines); the upload command is kept.
        "display_summary_level": 0,
    }
    """Options of ``comet_ml.OfflineExperiment`` that differ from comet_ml's defaults."""

    def __init__(
        self,
        offline_directory: str,
        name: str,
        version: str,
        *,
        project: str | None = None,
        workspace: str | None = None,
        experiment_key: str | None = None,
        prefix: str = "",
        tags: list[str] | None = None,
        **experiment_kwargs: Any,
    ) -> None:
        super().__init__(offline_directory, name, version)
        self._project = project
        self._workspace = workspace
        self._experiment_key = experiment_key
        self._prefix = prefix
        self._tags = list(tags or [])
        self._experiment_kwargs = {**self.EXPERIMENT_DEFAULTS, **experiment_kwargs}
        self._experiment: OfflineExperiment | None = None
        # Key of an experiment ended by `finalize`: a later stage continues it rather than starting a new one.
        self._ended_key: str | None = None

    @property
    def experiment_key(self) -> str | None:
        """The Comet experiment's key, or ``None`` before the experiment starts (unless one was given)."""
        if self._experiment is not None:
            return self._experiment.get_key()
        return self._ended_key or self._experiment_key

    @property
    @rank_zero_experiment
    def experiment(self) -> OfflineExperiment:
        r"""The ``comet_ml`` offline experiment, started on first access.

        Example::

            self.logger.experiment.log_text("hello")

        """
        if self._experiment is None:
            self._experiment = self._create_experiment()
        return self._experiment

    def _create_experiment(self) -> OfflineExperiment:
        comet_ml = _import_comet_ml()
        os.makedirs(self._run_log_dir, exist_ok=True)
        common = {
            "project_name": self._project,
            "workspace": self._workspace,
            "offline_directory": self._run_log_dir,
        }
        if self._ended_key is not None:
            # ExistingOfflineExperiment takes fewer options than OfflineExperiment.
            kwargs = _accepted_kwargs(comet_ml.ExistingOfflineExperiment, self._experiment_kwargs)
            return comet_ml.ExistingOfflineExperiment(experiment_key=self._ended_key, **common, **kwargs)
        experiment = comet_ml.OfflineExperiment(
            experiment_key=self._experiment_key, **common, **self._experiment_kwargs
        )
        experiment.set_name(self.name)
        experiment.log_other("run_version", self.version)
        experiment.log_other("Created from", _CREATED_FROM)
        if self._tags:
            experiment.add_tags(self._tags)
        return experiment

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None) -> None:
        """Log hyper-parameters as Comet parameters, nested ones flattened, secrets masked.

        Args:
            params: The hyper-parameters.
        """
        params = mask_secrets(_sanitize_callable_params(_convert_params(params)))
        self.experiment.log_parameters(params, nested_support=True)

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Tensor | float], step: int | None = None) -> None:
        """Log scalar metrics; an ``epoch`` entry becomes the messages' epoch.

        Args:
            metrics: Metric names and values.
            step: The global step.
        """
        values = {key: value.item() if isinstance(value, Tensor) else value for key, value in metrics.items()}
        epoch = values.pop("epoch", None)
        values = _add_prefix(values, self._prefix, self.LOGGER_JOIN_CHAR)
        self.experiment.log_metrics(values, step=step, epoch=None if epoch is None else int(epoch))

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the experiment, which writes its offline archive.

        Args:
            status: How the stage ended (``"success"``, ``"failed"``, ``"finished"``); the archive is written
                in every case.
        """
        if self._experiment is None:
            return
        self._ended_key = self._experiment.get_key()
        self._experiment.end()
        self._experiment = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # The experiment holds threads and files; the process that unpickles this logger starts its own.
        state["_experiment"] = None
        return state


class CometOnlineLogger(_RunLogger, CometLogger):
    r"""Lightning's ``CometLogger`` logging online, reporting the run's name and version.

    The Comet experiment is named after the run; ``offline_directory`` is where Comet keeps an archive if the
    connection fails. The Comet project is ``logger.experiment.project_name`` and the experiment key
    ``logger.experiment.get_key()``.

    Args:
        offline_directory: The run's Comet log directory.
        name: The run's name; also the Comet experiment's name.
        version: The run's version; logged as the ``run_version`` "other".
        \**kwargs: Further arguments of Lightning's ``CometLogger`` (``api_key``, ``project``, ``workspace``,
            ``experiment_key``, ``prefix``, and ``comet_ml.ExperimentConfig`` options).

    """

    def __init__(self, offline_directory: str, name: str, version: str, **kwargs: Any) -> None:
        offline_directory = os.fspath(offline_directory)
        super().__init__(
            offline_directory, name, version, online=True, name=name, offline_directory=offline_directory, **kwargs
        )

    @override
    def _create_experiment(self) -> None:
        super()._create_experiment()
        assert self._experiment is not None
        self._experiment.log_other("run_version", self.version)


def _comet_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, bool]:
    """Check the comet logger's options; return the rest, the API key and whether to log offline.

    Raises:
        ConfigError: If comet_ml is not installed, or an option is unknown, set by enhtrain or conflicting.
    """
    options, api_key, offline = _offline("comet", options, "COMET_API_KEY")
    # comet_ml reads both when first imported: auto-logging patches frameworks, error tracking reports to
    # Comet's Sentry.
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
    if offline:
        os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    _require("comet", "comet_ml", "comet")
    import comet_ml

    config_options = _parameters(comet_ml.ExperimentConfig) - set(_RUN_OPTIONS)
    _check_options("comet", options, config_options | set(_COMET_OWN_OPTIONS))
    return options, api_key, offline


@_checked_by(_comet_options)
def comet_logger(log_dir: str, name: str, version: str, **options: Any) -> CometOfflineLogger | CometOnlineLogger:
    """Create the run's Comet logger.

    Offline (the default unless ``offline: false`` is given or an API key is set, through ``COMET_API_KEY`` or
    the ``api_key`` option), a :class:`CometOfflineLogger` writes ``<log_dir>/<experiment key>.zip`` for
    ``comet upload``; the API key is never written into it, and options that would contact the network
    (``log_env_details``) are off unless turned on. Online, a :class:`CometOnlineLogger` streams to Comet.
    Either way ``log_code``, ``parse_args`` and ``log_git_patch`` are off unless turned on, since they copy the
    command line and source into the experiment, secrets included.

    Args:
        log_dir: The logger's directory, ``<run>/logs/comet``.
        name: The run's name.
        version: The run's version.
        **options: ``offline`` (or ``online``), ``api_key``, ``project``, ``workspace``, ``experiment_key``,
            ``prefix``, ``tags`` and options of ``comet_ml.ExperimentConfig`` (``log_code``, ``log_graph``,
            ``auto_output_logging``, ``display_summary_level``, ...).

    Returns:
        The Comet logger.

    Raises:
        ConfigError: If comet_ml is not installed, or an option is unknown, set by enhtrain or conflicting.
    """
    options, api_key, offline = _comet_options(options)
    if offline:
        # The key is for uploading later; an offline archive must not carry it.
        return CometOfflineLogger(log_dir, name, version, **options)
    options = {**_COMET_ONLINE_DEFAULTS, **options}
    return CometOnlineLogger(log_dir, name, version, api_key=api_key, **options)
