"""When a monitoring callback logs: shared by the callbacks that log every N training steps."""

from __future__ import annotations

import lightning.pytorch as pl


def is_logging_step(trainer: pl.Trainer, every_n_steps: int | None, last_logged_step: int) -> bool:
    """Return whether this batch end is a logging step not yet logged.

    Args:
        trainer: The trainer.
        every_n_steps: Log every N optimizer steps; ``None`` follows ``trainer.log_every_n_steps``.
        last_logged_step: The global step last logged, so that several batches ending on one global step
            (gradient accumulation) log once.
    """
    every = every_n_steps if every_n_steps is not None else trainer.log_every_n_steps
    step = trainer.global_step
    return bool(every) and step > 0 and step % every == 0 and step != last_logged_step and bool(trainer.loggers)
