"""The plugin system: hook specs and the ``hookimpl`` marker, the manager, the registry and the built-ins.

- :mod:`enhtrain.plugins.hookspecs`: every hook a plugin can implement, and the :data:`hookimpl` marker.
- :mod:`enhtrain.plugins.manager`: the process's plugin manager, built lazily from entry points and the
  built-in plugins, with the allow and deny lists and the record of failed plugins.
- :mod:`enhtrain.plugins.registry`: registry names to import paths, with the plugin that registered each.
- :mod:`enhtrain.plugins.builtin`: enhtrain's own plugins, registered through the same hooks.
- :mod:`enhtrain.plugins.scaffold`: ``enhtrain plugins new``, which writes a new plugin distribution.

Nothing here imports torch, Lightning or any registered component.
"""

from enhtrain.plugins import manager
from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.manager import *  # noqa: F403

__all__ = ["hookimpl", *manager.__all__]
