"""The built-in logger factories: ``csv``, ``tensorboard``, ``wandb`` and ``comet``.

Each factory is called as ``factory(log_dir, name, version, **options)``: ``log_dir`` is the logger's own
directory, ``<run>/logs/<logger key>`` in a run ``runs/<name>/<version>/``, and ``options`` are the user's
options from the config. Every logger reports the run's name and version (``logger.name == name``,
``str(logger.version) == version``) and writes only under its ``log_dir``:

- ``csv``: ``<log_dir>/metrics.csv`` and ``<log_dir>/hparams.yaml``.
- ``tensorboard``: ``<log_dir>/events.out.tfevents.*`` and ``<log_dir>/hparams.yaml``.
- ``wandb``: ``<log_dir>/offline-run-<time>-<id>/run-<id>.wandb`` offline (``run-<time>-<id>/`` online), with
  wandb's ``debug.log`` files and ``latest-run`` link beside it. wandb always writes into a folder named
  ``wandb``; when ``log_dir`` is itself named ``wandb`` it is that folder, otherwise the files land in
  ``<log_dir>/wandb/``. ``wandb sync <log_dir>/offline-run-*`` uploads an offline run.
- ``comet``: offline, ``<log_dir>/<experiment key>.zip``, the archive that ``comet upload`` accepts; online,
  the experiment streams to Comet.

For the CSV and TensorBoard loggers, ``log_dir`` is ``logger.log_dir`` (so it is ``trainer.log_dir`` when the
logger comes first) and, when ``log_dir`` sits at ``<root>/<name>/<version>/logs/<key>``, ``logger.save_dir``
is ``<root>``, so that Lightning's default checkpoint directory, ``<save_dir>/<name>/<version>/checkpoints``,
is the run's ``checkpoints/``. Elsewhere ``save_dir`` is ``log_dir``.

The ``wandb`` and ``comet`` loggers run offline unless an API key is set (``WANDB_API_KEY``, ``COMET_API_KEY``
or an ``api_key`` option) or ``offline: false`` is given; offline, nothing contacts their servers. Every
logger masks secrets in the hyper-parameters it writes (see :mod:`enhtrain.secrets`).

Importing this module imports neither torch, Lightning, wandb nor comet_ml. The logger classes
(:class:`RunCSVLogger`, :class:`RunTensorBoardLogger`, :class:`RunWandbLogger`) are built on first access.
"""

from __future__ import annotations

import csv
import difflib
import functools
import hashlib
import importlib
import inspect
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from enhtrain.errors import ConfigError
from enhtrain.secrets import mask_argv

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

# The logger classes are reached through `__getattr__`, which builds them on first access.
__all__ = [
    "comet_logger",
    "csv_logger",
    "tensorboard_logger",
    "wandb_logger",
]

_LAZY_CLASSES = ("RunCSVLogger", "RunTensorBoardLogger", "RunWandbLogger")

# Options that enhtrain sets from the run; the reason is part of the error message.
_RUN_OPTIONS = {
    "save_dir": "the run directory",
    "root_dir": "the run directory",
    "dir": "the run directory",
    "log_dir": "the run directory",
    "offline_directory": "the run directory",
    "name": "experiment.name",
    "experiment_name": "experiment.name",
    "version": "experiment.version",
    "experiment": "the logger",
    "mode": "the offline option",
    "disabled": "the offline option",
}

# Comet options that copy the command line, the source and the git patch, secrets included, into the experiment
# (offline, CometOfflineLogger sets its own defaults).
_COMET_ONLINE_DEFAULTS = {"log_code": False, "parse_args": False, "log_git_patch": False}
# Options of the comet factory besides those of `comet_ml.ExperimentConfig`.
_COMET_OWN_OPTIONS = ("api_key", "experiment_key", "offline", "online", "prefix", "project", "tags", "workspace")

# The layout of wandb-core's `.wandb` run files.
_WANDB_HEADER = 7
_WANDB_BLOCK = 32768
_WANDB_FULL, _WANDB_FIRST, _WANDB_LAST = 1, 2, 4
# How long `finalize` waits for wandb-core to complete the run's file.
_WANDB_FILE_TIMEOUT = 60.0


def _parameters(*callables: Callable[..., Any]) -> set[str]:
    names: set[str] = set()
    for fn in callables:
        for parameter in inspect.signature(fn).parameters.values():
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) and parameter.name != "self":
                names.add(parameter.name)
    return names


def _check_options(logger: str, options: Mapping[str, Any], accepted: Collection[str]) -> None:
    """Raise a :class:`~enhtrain.errors.ConfigError` for an option the logger does not take."""
    for key in options:
        if key in _RUN_OPTIONS:
            raise ConfigError(
                f"logger {logger!r}: option {key!r} is set by enhtrain from {_RUN_OPTIONS[key]}; remove it"
            )
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            accepted_list = ", ".join(sorted(accepted))
            raise ConfigError(f"logger {logger!r} has no option {key!r}{hint}; accepted: {accepted_list}")


def _require(logger: str, module: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"logger {logger!r} needs the {module} package: pip install 'enhtrain[{extra}]'") from err


def _offline(logger: str, options: dict[str, Any], api_key: str | None, key_variable: str) -> bool:
    """Pop ``offline``/``online`` from ``options``; without either, run offline unless an API key is set."""
    offline = options.pop("offline", None)
    online = options.pop("online", None)
    if offline is not None and online is not None and bool(offline) == bool(online):
        raise ConfigError(f"logger {logger!r}: options offline={offline} and online={online} contradict each other")
    if offline is not None:
        return bool(offline)
    if online is not None:
        return not online
    return not (api_key or os.environ.get(key_variable))


def _run_root(log_dir: str, name: str, version: str) -> str | None:
    """Return ``<root>`` when ``log_dir`` is ``<root>/<name>/<version>/logs/<key>``, else ``None``."""
    if not name or not version:
        return None
    logs = os.path.dirname(os.path.normpath(log_dir))
    suffix = os.path.normpath(os.path.join(name, version, "logs"))
    if logs == suffix:
        return "."
    if logs.endswith(os.sep + suffix):
        return logs[: -len(suffix) - 1] or os.sep
    return None


def _wandb_run_id(log_dir: str, name: str, version: str) -> str:
    """A W&B run id (``[a-z0-9]``) that stays the same for the same run directory, so a resumed run reuses it.

    The absolute path is part of it, so that two machines' ``baseline/version_0`` do not merge into one W&B
    run.
    """
    key = "\0".join((os.path.abspath(log_dir), name, version))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@functools.cache
def _logger_classes() -> dict[str, type]:
    """Build the Lightning logger subclasses, out of module scope so that importing this module stays light.

    Returns:
        The classes by name.
    """
    from lightning.fabric.utilities.logger import _convert_params
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter
    from lightning.pytorch.loggers.logger import rank_zero_experiment
    from lightning.pytorch.utilities.rank_zero import rank_zero_only, rank_zero_warn
    from typing_extensions import override

    from enhtrain.secrets import mask_secrets

    class _KeepingCSVWriter(ExperimentWriter):
        """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued instead of deleted."""

        @override
        def _check_log_dir_exists(self) -> None:
            if not os.path.isfile(self.metrics_file_path):
                return
            with open(self.metrics_file_path, newline="") as handle:
                header = next(csv.reader(handle), [])
            self.metrics_keys = sorted(header)
            if header != self.metrics_keys:
                self._rewrite_with_new_header(self.metrics_keys)

    class _RunLayout:
        """Places a Lightning logger's files directly in ``log_dir`` while it reports the run's name/version.

        Inside a run directory, ``save_dir`` is the runs root so that Lightning's default checkpoint folder
        is the run's ``checkpoints/``; elsewhere it is ``log_dir`` itself.
        """

        _run_log_dir: str
        _run_root: str | None

        def __init__(self, log_dir: str, name: str, version: str, **kwargs: Any) -> None:
            self._run_log_dir = os.fspath(log_dir)
            self._run_root = _run_root(self._run_log_dir, name, version)
            super().__init__(  # type: ignore[call-arg]
                save_dir=self._run_log_dir if self._run_root is None else self._run_root,
                name=name,
                version=version,
                **kwargs,
            )

        @property
        def root_dir(self) -> str:
            """``<root>/<name>``, holding the run's versions; ``log_dir`` outside a run directory."""
            name = self.name  # type: ignore[attr-defined]
            return self._run_log_dir if self._run_root is None else os.path.join(self._run_root, name)

    class RunCSVLogger(_RunLayout, CSVLogger):
        r"""Lightning's ``CSVLogger`` writing ``metrics.csv`` and ``hparams.yaml`` directly in ``log_dir``.

        Args:
            log_dir: The logger's directory.
            name: The run's name.
            version: The run's version.
            \**kwargs: Further arguments of ``CSVLogger`` (``prefix``, ``flush_logs_every_n_steps``).

        """

        @property
        @override
        def log_dir(self) -> str:
            """The directory of ``metrics.csv`` and ``hparams.yaml``."""
            return self._run_log_dir

        @property
        @override
        @rank_zero_experiment
        def experiment(self) -> Any:
            """The writer of ``metrics.csv``; it appends to the rows already there (those of a resumed run)."""
            if self._experiment is None:
                os.makedirs(self.log_dir, exist_ok=True)
                self._experiment = _KeepingCSVWriter(self.log_dir)
            return self._experiment

        @override
        @rank_zero_only
        def log_hyperparams(self, params: Any = None) -> None:
            """Record hyper-parameters in ``hparams.yaml``, secrets masked.

            Args:
                params: The hyper-parameters.
            """
            super().log_hyperparams(mask_secrets(_convert_params(params)))

    class RunTensorBoardLogger(_RunLayout, TensorBoardLogger):
        r"""Lightning's ``TensorBoardLogger`` writing its events and ``hparams.yaml`` directly in ``log_dir``.

        Args:
            log_dir: The logger's directory.
            name: The run's name.
            version: The run's version.
            \**kwargs: Further arguments of ``TensorBoardLogger`` and of its ``SummaryWriter``.

        """

        @property
        @override
        def log_dir(self) -> str:
            """The directory of the event files (``<log_dir>/<sub_dir>`` when ``sub_dir`` is given)."""
            return self._run_log_dir if self.sub_dir is None else os.path.join(self._run_log_dir, self.sub_dir)

        @override
        @rank_zero_only
        def log_hyperparams(self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None) -> None:
            """Record hyper-parameters, secrets masked.

            Args:
                params: The hyper-parameters.
                metrics: Metrics shown with the hyper-parameters.
                step: The global step of ``metrics``.
            """
            super().log_hyperparams(mask_secrets(_convert_params(params)), metrics=metrics, step=step)

    class RunWandbLogger(WandbLogger):
        r"""Lightning's ``WandbLogger`` reporting the run's name and version; ``finalize`` ends the W&B run.

        Offline, the W&B run is made fully local: ``mode="offline"``, and wandb's own telemetry and error
        reporting are switched off for the process. ``finalize`` finishes the W&B run, so its ``.wandb`` file
        is complete when ``Trainer.fit`` returns; a later stage on the same logger resumes the same W&B run
        id.

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
            self._run_log_dir = os.fspath(log_dir)
            self._run_name = name
            self._run_version = version
            wandb_root = os.path.normpath(self._run_log_dir)
            # wandb adds a `wandb` folder under the directory it is given.
            wandb_root = os.path.dirname(wandb_root) if os.path.basename(wandb_root) == "wandb" else wandb_root
            if offline:
                kwargs["mode"] = "offline"
            super().__init__(
                name=name,
                save_dir=wandb_root or ".",
                id=id or _wandb_run_id(self._run_log_dir, name, version),
                offline=offline,
                **kwargs,
            )
            # Lightning always passes `anonymous`, which wandb deprecates with a warning even when it is None.
            if self._wandb_init.get("anonymous") is None:
                self._wandb_init.pop("anonymous", None)

        @property
        @override
        def name(self) -> str:
            """The run's name (the W&B project is ``logger.experiment.project``)."""
            return self._run_name

        @property
        @override
        def version(self) -> str:
            """The run's version (the W&B run id is :attr:`run_id`)."""
            return self._run_version

        @property
        def run_id(self) -> str | None:
            """The W&B run id."""
            return self._experiment.id if self._experiment else self._id

        @property
        @override
        def save_dir(self) -> str:
            """The logger's directory."""
            return self._run_log_dir

        @property
        @override
        def log_dir(self) -> str:
            """The logger's directory."""
            return self._run_log_dir

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
        def log_hyperparams(self, params: Any) -> None:
            """Record hyper-parameters in the W&B run's config, secrets masked.

            Args:
                params: The hyper-parameters.
            """
            super().log_hyperparams(mask_secrets(_convert_params(params)))

        @override
        @rank_zero_only
        def finalize(self, status: str) -> None:
            """Log pending checkpoints (on success) and finish the W&B run, which completes its files.

            Args:
                status: How the stage ended (``"success"``, ``"failed"``, ``"finished"``).
            """
            super().finalize(status)
            if self._experiment is None:
                return
            run, self._experiment = self._experiment, None
            run_file = getattr(getattr(run, "settings", None), "sync_file", None)
            run.finish(exit_code=0 if status in ("success", "finished") else 1)
            # wandb-core closes the run's file after `finish` returns: wait, so it is whole when `fit` is.
            written = isinstance(run_file, str) and os.path.isfile(run_file)
            if written and not _wait_for_wandb_exit(run_file, _WANDB_FILE_TIMEOUT):
                rank_zero_warn(f"The W&B run file {run_file} was not complete {_WANDB_FILE_TIMEOUT:.0f}s after finish")

    classes: dict[str, type] = {}
    for cls in (RunCSVLogger, RunTensorBoardLogger, RunWandbLogger):
        # Let pickle (ddp_spawn) and documentation tools find the classes through this module's `__getattr__`.
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
        classes[cls.__name__] = cls
    return classes


def _wandb_records(data: bytes) -> Iterator[bytes]:
    """Yield the serialised records of a ``.wandb`` file, a LevelDB-style log written by wandb-core.

    After a 7-byte file header, the log is a series of 32 KiB blocks of chunks; each chunk has a 7-byte header
    (checksum, little-endian length, type: a full record, or its first, middle or last part) and its data. A
    truncated or corrupt tail ends the iteration.
    """
    pos, parts = _WANDB_HEADER, b""
    while pos + _WANDB_HEADER <= len(data):
        left_in_block = _WANDB_BLOCK - pos % _WANDB_BLOCK
        if left_in_block < _WANDB_HEADER:
            pos += left_in_block  # the block's zero-filled trailer
            continue
        checksum, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk = data[pos + _WANDB_HEADER : pos + _WANDB_HEADER + length]
        if kind == 0 or len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != checksum:
            return
        pos += _WANDB_HEADER + length
        parts = chunk if kind in (_WANDB_FULL, _WANDB_FIRST) else parts + chunk
        if kind in (_WANDB_FULL, _WANDB_LAST):
            yield parts


def _wait_for_wandb_exit(path: str, timeout: float) -> bool:
    """Wait until the ``.wandb`` file at ``path`` holds the exit record, its last; ``False`` on timeout."""
    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + timeout
    last_size = -1
    while True:
        size = os.path.getsize(path) if os.path.isfile(path) else -1
        if size != last_size:
            last_size = size
            with open(path, "rb") as file:
                data = file.read()
            record = wandb_internal_pb2.Record()
            for raw in _wandb_records(data):
                record.ParseFromString(raw)
                if record.WhichOneof("record_type") == "exit":
                    return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


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


def __getattr__(name: str) -> Any:
    if name in _LAZY_CLASSES:
        return _logger_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def csv_logger(log_dir: str, name: str, version: str, **options: Any) -> Logger:
    """Create the run's CSV logger, writing ``<log_dir>/metrics.csv`` and ``<log_dir>/hparams.yaml``.

    Args:
        log_dir: The logger's directory, ``<run>/logs/csv``.
        name: The run's name.
        version: The run's version.
        **options: Options of Lightning's ``CSVLogger``: ``prefix``, ``flush_logs_every_n_steps``.

    Returns:
        A :class:`RunCSVLogger`.

    Raises:
        ConfigError: If an option is unknown or is set by enhtrain.
    """
    from lightning.pytorch.loggers import CSVLogger

    _check_options("csv", options, _parameters(CSVLogger.__init__))
    return _logger_classes()["RunCSVLogger"](log_dir, name, version, **options)


def tensorboard_logger(log_dir: str, name: str, version: str, **options: Any) -> Logger:
    """Create the run's TensorBoard logger, writing its event files and ``hparams.yaml`` in ``log_dir``.

    Args:
        log_dir: The logger's directory, ``<run>/logs/tensorboard``.
        name: The run's name.
        version: The run's version.
        **options: Options of Lightning's ``TensorBoardLogger`` (``log_graph``, ``default_hp_metric``,
            ``prefix``, ``sub_dir``) and of its ``SummaryWriter`` (``max_queue``, ``flush_secs``, ...).

    Returns:
        A :class:`RunTensorBoardLogger`.

    Raises:
        ConfigError: If an option is unknown or is set by enhtrain.
    """
    from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE
    from lightning.pytorch.loggers import TensorBoardLogger

    if _TENSORBOARD_AVAILABLE:
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter

    _check_options("tensorboard", options, _parameters(TensorBoardLogger.__init__, SummaryWriter.__init__))
    return _logger_classes()["RunTensorBoardLogger"](log_dir, name, version, **options)


def wandb_logger(log_dir: str, name: str, version: str, **options: Any) -> Logger:
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
    _require("wandb", "wandb", "wandb")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    options = dict(options)
    api_key = options.pop("api_key", None)
    offline = _offline("wandb", options, api_key, "WANDB_API_KEY")
    _check_options("wandb", options, _parameters(WandbLogger.__init__, wandb.init))
    if offline and options.get("log_model"):
        raise ConfigError("logger 'wandb': log_model uploads checkpoints, which needs offline: false")
    if api_key and not offline:
        settings = options.get("settings") or {}
        if isinstance(settings, Mapping):
            options["settings"] = {**settings, "api_key": api_key}
        else:
            settings.api_key = api_key
    return _logger_classes()["RunWandbLogger"](log_dir, name, version, offline=offline, **options)


def comet_logger(log_dir: str, name: str, version: str, **options: Any) -> Logger:
    """Create the run's Comet logger.

    Offline (the default unless ``offline: false`` is given or an API key is set, through ``COMET_API_KEY`` or
    the ``api_key`` option), a :class:`~enhtrain.loggers.comet_offline.CometOfflineLogger` writes
    ``<log_dir>/<experiment key>.zip`` for ``comet upload``; the API key is never written into it, and options
    that would contact the network (``log_env_details``) are off unless turned on. Online, a
    :class:`~enhtrain.loggers.comet_offline.CometOnlineLogger` streams to Comet. Either way ``log_code``,
    ``parse_args`` and ``log_git_patch`` are off unless turned on, since they copy the command line and source
    into the experiment, secrets included.

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
    options = dict(options)
    api_key = options.pop("api_key", None)
    offline = _offline("comet", options, api_key, "COMET_API_KEY")
    # comet_ml reads both when first imported: auto-logging patches frameworks, error tracking reports to
    # Comet's Sentry.
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
    if offline:
        os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    _require("comet", "comet_ml", "comet")
    import comet_ml

    config_options = _parameters(comet_ml.ExperimentConfig) - set(_RUN_OPTIONS)
    _check_options("comet", options, config_options | set(_COMET_OWN_OPTIONS))
    from enhtrain.loggers.comet_offline import CometOfflineLogger, CometOnlineLogger

    if offline:
        # The key is for uploading later; an offline archive must not carry it.
        return CometOfflineLogger(log_dir, name, version, **options)
    options = {**_COMET_ONLINE_DEFAULTS, **options}
    return CometOnlineLogger(log_dir, name, version, api_key=api_key, **options)
