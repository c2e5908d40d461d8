"""The ``xla`` profiler: Lightning's ``XLAProfiler`` for TPUs, once ``torch_xla`` is known to be installed."""

from __future__ import annotations

import importlib.util

from lightning.pytorch.profilers import Profiler

from enhtrain.errors import ConfigError

__all__ = ["xla_profiler"]


def xla_profiler(port: int = 9012) -> Profiler:
    """Create Lightning's ``XLAProfiler``, which serves traces to Cloud TPU's profiling tools on ``port``.

    Example::

        experiment:
          profiler: {name: xla, port: 9012}

    Args:
        port: The port of the profiler server.

    Returns:
        An ``XLAProfiler``.

    Raises:
        ConfigError: If the torch_xla package is not installed.
    """
    if importlib.util.find_spec("torch_xla") is None:
        raise ConfigError("profiler 'xla' needs the torch_xla package (PyTorch/XLA, for TPUs): pip install torch_xla")
    from lightning.pytorch.profilers import XLAProfiler

    return XLAProfiler(port=port)
