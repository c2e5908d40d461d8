"""Registers the built-in loggers: CSV, TensorBoard, Weights & Biases, Comet, MLflow and Neptune."""

from __future__ import annotations

from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.registry import KindRegistry

BUILTIN_LOGGERS = {
    "csv": "enhtrain.loggers.csv:csv_logger",
    "tensorboard": "enhtrain.loggers.tensorboard:tensorboard_logger",
    "wandb": "enhtrain.loggers.wandb:wandb_logger",
    "comet": "enhtrain.loggers.comet:comet_logger",
    "mlflow": "enhtrain.loggers.mlflow:mlflow_logger",
    "neptune": "enhtrain.loggers.neptune:neptune_logger",
}


@hookimpl
def enhtrain_register_loggers(registry: KindRegistry) -> None:
    """Register the built-in logger factories."""
    for name, path in BUILTIN_LOGGERS.items():
        registry.register(path, name=name)
