"""Profiler adapters: the windowed PyTorch profiler and the ``xla`` factory."""

from enhtrain.profilers.windowed import WindowedPyTorchProfiler
from enhtrain.profilers.xla import xla_profiler

__all__ = ["WindowedPyTorchProfiler", "xla_profiler"]
