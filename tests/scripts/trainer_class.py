"""A ``trainer_class`` whose own defaults switch the progress bar off and set the logging interval."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel


class QuietTrainer(Trainer):
    """A ``Trainer`` without a progress bar unless asked for one.

    Args:
        enable_progress_bar: Show a progress bar.
        log_every_n_steps: How often to log.
        **kwargs: ``Trainer``'s other arguments.
    """

    def __init__(self, *, enable_progress_bar: bool = False, log_every_n_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(enable_progress_bar=enable_progress_bar, log_every_n_steps=log_every_n_steps, **kwargs)


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return cli_class(TinyModel, TinyData, trainer_class=QuietTrainer, args=args)
