"""Callbacks that enhtrain registers: throughput, memory, gradient norms, NaN guard and run summary; and the
runtime updates that enhtrain adds to every run with ``experiment.runtime_updates`` on.

Each is an ordinary Lightning :class:`~lightning.pytorch.callbacks.Callback` and works with any
``Trainer``; enhtrain's configs refer to them by their registry names (``throughput``, ``memory``,
``grad_norm``, ``nan_guard``, ``run_summary``). Each is imported on first access, so selecting one callback
imports only its own module.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enhtrain.callbacks.grad_norm import GradNormMonitor
    from enhtrain.callbacks.memory import MemoryMonitor
    from enhtrain.callbacks.nan_guard import NaNGuard
    from enhtrain.callbacks.run_summary import RunSummary
    from enhtrain.callbacks.runtime_updates import RuntimeUpdates
    from enhtrain.callbacks.throughput import StepThroughput

_EXPORTS = {
    "GradNormMonitor": "enhtrain.callbacks.grad_norm",
    "MemoryMonitor": "enhtrain.callbacks.memory",
    "NaNGuard": "enhtrain.callbacks.nan_guard",
    "RunSummary": "enhtrain.callbacks.run_summary",
    "RuntimeUpdates": "enhtrain.callbacks.runtime_updates",
    "StepThroughput": "enhtrain.callbacks.throughput",
}

__all__ = ["GradNormMonitor", "MemoryMonitor", "NaNGuard", "RunSummary", "RuntimeUpdates", "StepThroughput"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
