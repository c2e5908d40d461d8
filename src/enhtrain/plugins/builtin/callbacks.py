"""Registers enhtrain's monitoring callbacks and Lightning's own callbacks."""

from __future__ import annotations

from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.registry import KindRegistry

_LIGHTNING = "lightning.pytorch.callbacks"

ENHTRAIN_CALLBACKS = {
    "throughput": "enhtrain.callbacks.throughput:StepThroughput",
    "memory": "enhtrain.callbacks.memory:MemoryMonitor",
    "grad_norm": "enhtrain.callbacks.grad_norm:GradNormMonitor",
    "nan_guard": "enhtrain.callbacks.nan_guard:NaNGuard",
    "run_summary": "enhtrain.callbacks.run_summary:RunSummary",
}

LIGHTNING_CALLBACKS = {
    "backbone_finetuning": "BackboneFinetuning",
    "batch_size_finder": "BatchSizeFinder",
    "device_stats_monitor": "DeviceStatsMonitor",
    "early_stopping": "EarlyStopping",
    "ema_weight_averaging": "EMAWeightAveraging",
    "gradient_accumulation_scheduler": "GradientAccumulationScheduler",
    "learning_rate_finder": "LearningRateFinder",
    "lr_monitor": "LearningRateMonitor",
    "model_checkpoint": "ModelCheckpoint",
    "model_pruning": "ModelPruning",
    "model_summary": "ModelSummary",
    "on_exception_checkpoint": "OnExceptionCheckpoint",
    "rich_model_summary": "RichModelSummary",
    "rich_progress_bar": "RichProgressBar",
    "spike_detection": "SpikeDetection",
    "stochastic_weight_averaging": "StochasticWeightAveraging",
    "lightning_throughput_monitor": "ThroughputMonitor",
    "timer": "Timer",
    "tqdm_progress_bar": "TQDMProgressBar",
}


@hookimpl
def enhtrain_register_callbacks(registry: KindRegistry) -> None:
    """Register the built-in callbacks."""
    for name, path in ENHTRAIN_CALLBACKS.items():
        registry.register(path, name=name)
    for name, cls in LIGHTNING_CALLBACKS.items():
        registry.register(f"{_LIGHTNING}:{cls}", name=name)
