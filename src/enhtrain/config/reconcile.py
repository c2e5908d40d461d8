"""The one rule by which enhtrain's progress display, checkpoints and loggers meet what reaches the Trainer otherwise.

"Otherwise" is everything ``LightningCLI`` would give the Trainer without enhtrain: the config and flags, the
script's ``trainer_defaults`` and callback arguments (``add_lightning_class_args``), and the trainer class's own
defaults. The rule is decided here once, for the Trainer that ``EnhancedCLI`` builds and for the comments that
``--print_config`` adds. This module imports nothing of Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TRAINER_PARTS_RULE", "GivenParts", "Plan", "plan"]

TRAINER_PARTS_RULE = (
    "What reaches the Trainer without enhtrain (the config, flags, the script's trainer_defaults and callback "
    "arguments, the trainer class's defaults) wins: a progress bar there, or trainer.enable_progress_bar: false, "
    "means no enhtrain progress display; a ModelCheckpoint there replaces enhtrain's checkpoint callback "
    "(experiment.checkpoint is not used) and, without a dirpath of its own, saves into the run's checkpoints/; "
    "trainer.enable_checkpointing: false means no checkpoints; trainer.logger: false means no loggers at all, and "
    "loggers given there come before experiment.loggers. Every checkpoint saved into the run's checkpoints/ is "
    "listed in its manifest.json."
)
"""The rule, in one paragraph (shown by ``--help`` and stated in the callbacks guide)."""


@dataclass(frozen=True)
class GivenParts:
    """What reaches the Trainer without enhtrain, as far as the rule is concerned.

    Attributes:
        progress_bar: A progress bar callback is given.
        checkpoint: A ``ModelCheckpoint`` (or a subclass) is given.
        logger: The ``trainer.logger`` value: ``None``/``True`` (Lightning's default), ``False``, or loggers.
        enable_progress_bar: The ``trainer.enable_progress_bar`` value.
        enable_checkpointing: The ``trainer.enable_checkpointing`` value.
    """

    progress_bar: bool = False
    checkpoint: bool = False
    logger: Any = None
    enable_progress_bar: Any = None
    enable_checkpointing: Any = None


@dataclass(frozen=True)
class Plan:
    """What enhtrain adds to the Trainer.

    Attributes:
        progress_bar: enhtrain's progress display.
        checkpoint: enhtrain's checkpoint callback for ``experiment.checkpoint``.
        loggers: ``experiment.loggers``.
        checkpoints_off: Checkpointing is switched off (``enable_checkpointing=False`` is passed).
        user_checkpoint_into_run: A given ``ModelCheckpoint`` without a ``dirpath`` saves into the run's
            ``checkpoints/``.
    """

    progress_bar: bool
    checkpoint: bool
    loggers: bool
    checkpoints_off: bool
    user_checkpoint_into_run: bool


def plan(given: GivenParts, *, checkpoint_configured: bool) -> Plan:
    """Apply the rule (:data:`TRAINER_PARTS_RULE`).

    Args:
        given: What reaches the Trainer without enhtrain.
        checkpoint_configured: Whether ``experiment.checkpoint`` is set (not ``null``).

    Returns:
        What enhtrain adds.
    """
    checkpointing = given.enable_checkpointing is not False
    return Plan(
        progress_bar=given.enable_progress_bar is not False and not given.progress_bar,
        checkpoint=checkpointing and checkpoint_configured and not given.checkpoint,
        loggers=given.logger is not False,
        checkpoints_off=checkpointing and not checkpoint_configured and not given.checkpoint,
        user_checkpoint_into_run=checkpointing and given.checkpoint,
    )
