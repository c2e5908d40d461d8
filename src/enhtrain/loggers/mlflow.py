"""The run's MLflow logger: an MLflow file store inside the run's ``logs/mlflow``.

The ``mlflow`` factory is called as ``mlflow_logger(log_dir, name, version, **options)``: ``log_dir`` is the
logger's own directory, ``<run>/logs/mlflow`` in a run ``runs/<name>/<version>/``. MLflow's tracking URI is
``file:<log_dir>`` (an absolute path), so the experiment, its run, metrics, parameters and artifacts are all
written under ``log_dir``; the MLflow experiment is named after the run's name and the MLflow run after its
version. ``tracking_uri`` may name an MLflow server (``http://``, ``https://``) instead, which keeps the files on
the server. The logger reports the run's name and version (``logger.name == name``, ``logger.version ==
version``); MLflow's own ids are ``logger.experiment_id`` and ``logger.run_id``. Secrets in the
hyper-parameters are masked (see :mod:`enhtrain.secrets`).

Importing this module does not import ``mlflow``; creating a logger does (``pip install 'enhtrain[mlflow]'``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import MLFlowLogger

from enhtrain.errors import ConfigError
from enhtrain.loggers._common import _check_options, _checked_by, _parameters, _require, _RunLogDir

__all__ = ["RunMLFlowLogger", "mlflow_logger"]

# Options of Lightning's MLFlowLogger that enhtrain sets from the run, beside the common ones.
_SET_BY_ENHTRAIN = {"run_name": "experiment.version", "artifact_location": "the run directory"}
_SERVER_SCHEMES = ("http", "https")
# What Lightning's MLFlowLogger takes, read once.
_MLFLOW_OPTIONS = frozenset(_parameters(MLFlowLogger.__init__))


class RunMLFlowLogger(_RunLogDir, MLFlowLogger):
    r"""Lightning's ``MLFlowLogger`` keeping its file store in ``log_dir`` and reporting the run's name and version.

    MLflow's own ids are :attr:`experiment_id` and :attr:`run_id`.

    Example::

        logger = RunMLFlowLogger("runs/mnist/version_0/logs/mlflow", name="mnist", version="version_0")
        trainer = Trainer(logger=logger)

    Args:
        log_dir: The logger's directory; MLflow's file store unless ``tracking_uri`` names a server.
        name: The run's name; also the MLflow experiment's name.
        version: The run's version; also the MLflow run's name.
        tracking_uri: An MLflow server (``http://...``) to log to instead of the file store.
        \**kwargs: Further arguments of ``MLFlowLogger`` (``tags``, ``log_model``, ``prefix``, ``run_id``,
            ``synchronous``).

    """

    def __init__(self, log_dir: str, name: str, version: str, tracking_uri: str | None = None, **kwargs: Any) -> None:
        log_dir = os.path.abspath(log_dir)
        if not tracking_uri:
            # MLflow 3 refuses its file store unless asked; a run keeps its MLflow files in its own folder.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        super().__init__(
            log_dir,
            name,
            version,
            experiment_name=name,
            run_name=version,
            tracking_uri=tracking_uri or f"file:{log_dir}",
            save_dir=log_dir,
            **kwargs,
        )


def _check_mlflow_options(options: Mapping[str, Any]) -> None:
    """Refuse options that MLflow's logger does not take or that would write outside the run directory, then
    require the mlflow package.

    Raises:
        ConfigError: Naming the option and what to do, or the package to install.
    """
    for key, source in _SET_BY_ENHTRAIN.items():
        if key in options:
            raise ConfigError(f"logger 'mlflow': option '{key}' is set by enhtrain from {source}; remove it")
    uri = options.get("tracking_uri")
    if uri is not None and urlparse(str(uri)).scheme not in _SERVER_SCHEMES:
        raise ConfigError(
            f"logger 'mlflow': tracking_uri '{uri}' is not an MLflow server: enhtrain keeps MLflow's files in the "
            "run's logs/mlflow; remove tracking_uri, or give an http:// or https:// server"
        )
    _check_options("mlflow", options, _MLFLOW_OPTIONS - set(_SET_BY_ENHTRAIN))
    _require("mlflow", "mlflow", "mlflow")


@_checked_by(_check_mlflow_options)
def mlflow_logger(log_dir: str, name: str, version: str, **options: Any) -> RunMLFlowLogger:
    """Create the run's MLflow logger, with its file store in ``log_dir``.

    Args:
        log_dir: The logger's directory, ``<run>/logs/mlflow``: MLflow's file store unless ``tracking_uri`` names a
            server.
        name: The run's name.
        version: The run's version.
        **options: Options of Lightning's ``MLFlowLogger``: ``tags``, ``log_model``, ``prefix``, ``run_id``,
            ``synchronous``, and ``tracking_uri`` for an MLflow server.

    Returns:
        A :class:`RunMLFlowLogger`.

    Raises:
        ConfigError: If the mlflow package is not installed, or an option is unknown or set by enhtrain.
    """
    _check_mlflow_options(options)
    return RunMLFlowLogger(log_dir, name, version, **options)
