"""The plugin system: hook specs and the ``hookimpl`` marker, the manager, the registry and the built-ins.

- :mod:`enhtrain.plugins.hookspecs`: every hook a plugin can implement, and the :data:`hookimpl` marker.
- :mod:`enhtrain.plugins.manager`: the process's plugin manager, built lazily from entry points and the
  built-in plugins, with the allow and deny lists and the record of failed plugins.
- :mod:`enhtrain.plugins.registry`: registry names to import paths, with the plugin that registered each.
- :mod:`enhtrain.plugins.builtin`: enhtrain's own plugins, registered through the same hooks.
- :mod:`enhtrain.plugins.scaffold`: ``enhtrain plugins new``, which writes a new plugin distribution.

Nothing here imports torch, Lightning or any registered component.
"""

from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.manager import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    SELECTION_VARIABLES,
    PluginFailure,
    PluginState,
    env_flag,
    env_overlays,
    failure_hint,
    failures,
    get_plugin_manager,
    get_registry,
    isolated,
    list_plugins,
    normalize_name,
    register_plugin,
    reset,
    validate_config,
    warnings,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "SELECTION_VARIABLES",
    "PluginFailure",
    "PluginState",
    "env_flag",
    "env_overlays",
    "failure_hint",
    "failures",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "isolated",
    "list_plugins",
    "normalize_name",
    "register_plugin",
    "reset",
    "validate_config",
    "warnings",
]
