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

Each name is imported on first access, so selecting one logger imports only its own module; wandb and
comet_ml are imported only when their logger is created.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enhtrain.loggers.comet import CometOfflineLogger, CometOnlineLogger, comet_logger
    from enhtrain.loggers.csv import RunCSVLogger, csv_logger
    from enhtrain.loggers.tensorboard import RunTensorBoardLogger, tensorboard_logger
    from enhtrain.loggers.wandb import RunWandbLogger, wandb_logger

_EXPORTS = {
    "CometOfflineLogger": "enhtrain.loggers.comet",
    "CometOnlineLogger": "enhtrain.loggers.comet",
    "RunCSVLogger": "enhtrain.loggers.csv",
    "RunTensorBoardLogger": "enhtrain.loggers.tensorboard",
    "RunWandbLogger": "enhtrain.loggers.wandb",
    "comet_logger": "enhtrain.loggers.comet",
    "csv_logger": "enhtrain.loggers.csv",
    "tensorboard_logger": "enhtrain.loggers.tensorboard",
    "wandb_logger": "enhtrain.loggers.wandb",
}

__all__ = [
    "CometOfflineLogger",
    "CometOnlineLogger",
    "RunCSVLogger",
    "RunTensorBoardLogger",
    "RunWandbLogger",
    "comet_logger",
    "csv_logger",
    "tensorboard_logger",
    "wandb_logger",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
