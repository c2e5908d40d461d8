"""Hyper-parameter sweeps on Optuna: ``enhtrain sweep run|worker|show|best|plots``.

A sweep is a loop of ordinary enhtrain runs driven by an Optuna study:

- :mod:`enhtrain.sweeps.spec`: the sweep spec (``sweep:`` section), its parameters, sampler and pruner;
- :mod:`enhtrain.sweeps.base`: the base config every trial starts from, and the checks of the spec against it;
- :mod:`enhtrain.sweeps.study`: the sweep's directory, its storage (embedded SQLite or a database URL) and study;
- :mod:`enhtrain.sweeps.runner`: one trial in its own process, and the workers that run trials until the study
  has them all;
- :mod:`enhtrain.sweeps.pruning`: the callback through which a trial reports its metric and is pruned;
- :mod:`enhtrain.sweeps.results`: the leaderboard, the best trial's config and the plots.

Importing this package imports neither optuna nor torch.
"""

from __future__ import annotations

__all__ = ["CHANNEL_ENV"]

CHANNEL_ENV = "_ENHTRAIN_SWEEP_CHANNEL"
"""Set by a worker for its trial's process only: the pipe descriptors ``read,write`` of the pruning channel."""
