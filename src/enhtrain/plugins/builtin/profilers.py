"""Registers Lightning's profilers under short names: simple, advanced, pytorch, xla and passthrough."""

from __future__ import annotations

from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.registry import KindRegistry

BUILTIN_PROFILERS = {
    "simple": "lightning.pytorch.profilers:SimpleProfiler",
    "advanced": "lightning.pytorch.profilers:AdvancedProfiler",
    "pytorch": "enhtrain.profilers.windowed:WindowedPyTorchProfiler",
    "xla": "enhtrain.profilers.xla:xla_profiler",
    "passthrough": "lightning.pytorch.profilers:PassThroughProfiler",
}


@hookimpl
def enhtrain_register_profilers(registry: KindRegistry) -> None:
    """Register the built-in profilers."""
    for name, path in BUILTIN_PROFILERS.items():
        registry.register(path, name=name)
