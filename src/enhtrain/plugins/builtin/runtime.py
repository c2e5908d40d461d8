"""Declares the keys a running run accepts out of the box (``enhtrain runs set KEY=VALUE``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enhtrain.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from enhtrain.config.runtime import RuntimeKeyRegistry

_RUN = "enhtrain.run.runtime"


@hookimpl
def enhtrain_runtime_keys(registry: RuntimeKeyRegistry) -> None:
    """Declare the learning rate, gradient clipping, logging interval, limits and early-stopping patience."""
    registry.register("optimizer.lr", type=float, gt=0, apply=f"{_RUN}:set_lr", read=f"{_RUN}:read_lr",
                      help="the learning rate of every parameter group")
    registry.register("optimizer.lr_scale", type=float, gt=0, apply=f"{_RUN}:scale_lr", read=f"{_RUN}:read_lr",
                      target="optimizer.lr", help="multiply the learning rate of every parameter group")
    registry.register("trainer.gradient_clip_val", type=float, ge=0, apply=f"{_RUN}:set_gradient_clip_val",
                      read=f"{_RUN}:read_gradient_clip_val", help="clip gradients at this value (0: no clipping)")
    registry.register("trainer.log_every_n_steps", type=int, ge=1, apply=f"{_RUN}:set_log_every_n_steps",
                      read=f"{_RUN}:read_log_every_n_steps", help="log every N steps")
    registry.register("trainer.max_epochs", type=int, ge=-1, apply=f"{_RUN}:set_max_epochs",
                      read=f"{_RUN}:read_max_epochs", help="train this many epochs (-1: no limit)")
    registry.register("trainer.max_steps", type=int, ge=-1, apply=f"{_RUN}:set_max_steps",
                      read=f"{_RUN}:read_max_steps", help="train this many steps (-1: no limit)")
    registry.register("early_stopping.patience", type=int, ge=0, apply=f"{_RUN}:set_early_stopping_patience",
                      read=f"{_RUN}:read_early_stopping_patience",
                      help="the patience of the run's EarlyStopping callbacks")
