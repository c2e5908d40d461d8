"""What the sweep modules share, below all of them: it imports nothing of :mod:`enhtrain.sweeps`."""

from __future__ import annotations

__all__ = ["quiet_optuna"]


def quiet_optuna() -> None:
    """Keep Optuna's INFO lines and experimental-feature warnings out of enhtrain's output."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # enhtrain's workers keep the heartbeat themselves while a trial's process runs.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
