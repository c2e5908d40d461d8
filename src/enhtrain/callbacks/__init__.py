"""Callbacks that enhtrain registers: throughput, memory, gradient norms, NaN guard and run summary.

Each is an ordinary Lightning :class:`~lightning.pytorch.callbacks.Callback` and works with any
``Trainer``; enhtrain's configs refer to them by their registry names (``throughput``, ``memory``,
``grad_norm``, ``nan_guard``, ``run_summary``).
"""

from enhtrain.callbacks.grad_norm import GradNormMonitor
from enhtrain.callbacks.memory import MemoryMonitor
from enhtrain.callbacks.nan_guard import NaNGuard
from enhtrain.callbacks.run_summary import RunSummary
from enhtrain.callbacks.throughput import StepThroughput

__all__ = ["GradNormMonitor", "MemoryMonitor", "NaNGuard", "RunSummary", "StepThroughput"]
