"""Registers the built-in loggers: CSV, TensorBoard, Weights & Biases and Comet."""

from __future__ import annotations

from enhtrain import hookimpl
from enhtrain.registry import KindRegistry

BUILTIN_LOGGERS = {
    "csv": "enhtrain.experiment.loggers:csv_logger",
    "tensorboard": "enhtrain.experiment.loggers:tensorboard_logger",
    "wandb": "enhtrain.experiment.loggers:wandb_logger",
    "comet": "enhtrain.experiment.loggers:comet_logger",
}


@hookimpl
def enhtrain_register_loggers(registry: KindRegistry) -> None:
    """Register the built-in logger factories."""
    for name, path in BUILTIN_LOGGERS.items():
        registry.register(path, name=name)
