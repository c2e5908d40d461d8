"""enhtrain-example: a third-party enhtrain plugin.

It registers, through :mod:`enhtrain_example.plugin`:

- the callback ``epoch_timer`` (:class:`~enhtrain_example.callbacks.EpochTimer`),
- the logger ``jsonl`` (:class:`~enhtrain_example.loggers.JsonlLogger`),
- the profiler ``wall_clock`` (:class:`~enhtrain_example.profilers.WallClockProfiler`),
- the config template ``example`` and an overlay for the environment ``example``,
- a config check that rejects the tag ``forbidden``.

Importing this package (as ``enhtrain plugins`` does) imports neither torch nor Lightning: the components
live in their own modules, imported only when a config uses them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
