"""The built-in loggers: CSV, TensorBoard, Weights & Biases and Comet, each writing into the run's ``logs/``.

One module per logger, each with its factory (``factory(log_dir, name, version, **options)``, registered under
the logger's name by :mod:`enhtrain.plugins.builtin.loggers`) and its Lightning logger class:

- :mod:`enhtrain.loggers.csv`: :func:`~enhtrain.loggers.csv.csv_logger`, :class:`~enhtrain.loggers.csv.RunCSVLogger`.
- :mod:`enhtrain.loggers.tensorboard`: :func:`~enhtrain.loggers.tensorboard.tensorboard_logger`,
  :class:`~enhtrain.loggers.tensorboard.RunTensorBoardLogger`.
- :mod:`enhtrain.loggers.wandb`: :func:`~enhtrain.loggers.wandb.wandb_logger`,
  :class:`~enhtrain.loggers.wandb.RunWandbLogger`.
- :mod:`enhtrain.loggers.comet`: :func:`~enhtrain.loggers.comet.comet_logger`,
  :class:`~enhtrain.loggers.comet.CometOfflineLogger`, :class:`~enhtrain.loggers.comet.CometOnlineLogger`.
- :mod:`enhtrain.loggers.mlflow`: :func:`~enhtrain.loggers.mlflow.mlflow_logger`,
  :class:`~enhtrain.loggers.mlflow.RunMLFlowLogger`.
- :mod:`enhtrain.loggers.neptune`: :func:`~enhtrain.loggers.neptune.neptune_logger`.

Each name is imported on first access, so selecting one logger imports only its own module; wandb,
comet_ml, mlflow and neptune are imported only when their logger is created.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enhtrain.loggers.comet import CometOfflineLogger, CometOnlineLogger, comet_logger
    from enhtrain.loggers.csv import RunCSVLogger, csv_logger
    from enhtrain.loggers.mlflow import RunMLFlowLogger, mlflow_logger
    from enhtrain.loggers.neptune import neptune_logger
    from enhtrain.loggers.tensorboard import RunTensorBoardLogger, tensorboard_logger
    from enhtrain.loggers.wandb import RunWandbLogger, wandb_logger

_EXPORTS = {
    "CometOfflineLogger": "enhtrain.loggers.comet",
    "CometOnlineLogger": "enhtrain.loggers.comet",
    "RunCSVLogger": "enhtrain.loggers.csv",
    "RunMLFlowLogger": "enhtrain.loggers.mlflow",
    "RunTensorBoardLogger": "enhtrain.loggers.tensorboard",
    "RunWandbLogger": "enhtrain.loggers.wandb",
    "comet_logger": "enhtrain.loggers.comet",
    "csv_logger": "enhtrain.loggers.csv",
    "mlflow_logger": "enhtrain.loggers.mlflow",
    "neptune_logger": "enhtrain.loggers.neptune",
    "tensorboard_logger": "enhtrain.loggers.tensorboard",
    "wandb_logger": "enhtrain.loggers.wandb",
}

__all__ = [
    "CometOfflineLogger",
    "CometOnlineLogger",
    "RunCSVLogger",
    "RunMLFlowLogger",
    "RunTensorBoardLogger",
    "RunWandbLogger",
    "comet_logger",
    "csv_logger",
    "mlflow_logger",
    "neptune_logger",
    "tensorboard_logger",
    "wandb_logger",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
