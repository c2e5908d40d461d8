"""Profiler adapters."""

from enhtrain.profilers.windowed import WindowedPyTorchProfiler

__all__ = ["WindowedPyTorchProfiler"]
