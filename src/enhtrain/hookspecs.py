"""Alias of :mod:`enhtrain.plugins.hookspecs`, where every hook and the ``hookimpl`` marker live."""

from enhtrain.plugins.hookspecs import (
    enhtrain_env_overlays,
    enhtrain_register_callbacks,
    enhtrain_register_loggers,
    enhtrain_register_profilers,
    enhtrain_register_templates,
    enhtrain_validate_config,
    hookimpl,
    hookspec,
)

__all__ = [
    "enhtrain_env_overlays",
    "enhtrain_register_callbacks",
    "enhtrain_register_loggers",
    "enhtrain_register_profilers",
    "enhtrain_register_templates",
    "enhtrain_validate_config",
    "hookimpl",
    "hookspec",
]
