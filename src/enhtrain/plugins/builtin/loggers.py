"""Registers the built-in loggers: CSV, TensorBoard, Weights & Biases and Comet."""

from __future__ import annotations

from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.registry import KindRegistry

BUILTIN_LOGGERS = {
    "csv": "enhtrain.loggers.factories:csv_logger",
    "tensorboard": "enhtrain.loggers.factories:tensorboard_logger",
    "wandb": "enhtrain.loggers.factories:wandb_logger",
    "comet": "enhtrain.loggers.factories:comet_logger",
}


@hookimpl
def enhtrain_register_loggers(registry: KindRegistry) -> None:
    """Register the built-in logger factories."""
    for name, path in BUILTIN_LOGGERS.items():
        registry.register(path, name=name)
