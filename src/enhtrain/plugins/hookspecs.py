"""Every hook an enhtrain plugin can implement.

A plugin is a module (or any object) with functions named after these hooks and decorated with
:data:`hookimpl` (also ``enhtrain.hookimpl``). Third-party plugins are found through the ``enhtrain``
entry-point group; the built-in components are registered by :mod:`enhtrain.plugins.builtin` through the very
same hooks.

Registration hooks receive a :class:`~enhtrain.plugins.registry.KindRegistry` for one kind of component. They are
called once per process, the first time a command needs that kind, and must only call
``registry.register(...)``: name components by import path (``"pkg.module:ClassName"``) so that listing
plugins imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from enhtrain.plugins.registry import KindRegistry

hookspec = pluggy.HookspecMarker("enhtrain")
"""Marker of enhtrain's hook specifications (plugins use :data:`hookimpl`)."""

hookimpl = pluggy.HookimplMarker("enhtrain")
"""Marker for plugin hook implementations: decorate each ``enhtrain_*`` function with it.

Also importable as ``enhtrain.hookimpl``.
"""



class RuntimeKeyRegistry(Protocol):
    """What :func:`enhtrain_runtime_keys` receives (``enhtrain.config.runtime.RuntimeKeyRegistry``).

    Declared here, not imported, so that the plugin system stays below the configuration that calls it.
    """

    def register(self, name: str, **options: Any) -> None:
        """Declare a runtime key ``name`` with its ``type``, ``apply``, ``read``, ``help`` and bounds."""


__all__ = [
    "enhtrain_env_overlays",
    "enhtrain_register_callbacks",
    "enhtrain_register_loggers",
    "enhtrain_register_profilers",
    "enhtrain_register_templates",
    "enhtrain_runtime_keys",
    "enhtrain_validate_config",
    "hookimpl",
    "hookspec",
]


@hookspec
def enhtrain_register_callbacks(registry: KindRegistry) -> None:
    """Implement to contribute Lightning callbacks.

    Called once, when a command first resolves a callback name. Each registered class is usable by its
    registry name under ``experiment.callbacks`` and by class name or class path under ``trainer.callbacks``.

    Args:
        registry: Call ``registry.register(CallbackClass_or_import_path, name="short_name")`` for each
            callback. The name defaults to the class name in snake_case.
    """


@hookspec
def enhtrain_register_loggers(registry: KindRegistry) -> None:
    """Implement to contribute Lightning loggers.

    Called once, when a command first resolves a logger name. A logger is a ``Logger`` subclass or a factory
    returning one. enhtrain passes it the user's options plus whichever of ``log_dir`` (the logger's own
    folder under the run's ``logs/``), ``save_dir``, ``name`` and ``version`` its signature accepts.

    Args:
        registry: Call ``registry.register(LoggerClass_or_factory_or_import_path, name="short_name")``.
    """


@hookspec
def enhtrain_register_profilers(registry: KindRegistry) -> None:
    """Implement to contribute Lightning profilers.

    Called once, when a command first resolves a profiler name. enhtrain passes ``dirpath`` (the run's
    ``profiler/`` folder) and ``filename`` when the profiler's signature accepts them.

    Args:
        registry: Call ``registry.register(ProfilerClass_or_import_path, name="short_name")``.
    """


@hookspec
def enhtrain_register_templates(registry: KindRegistry) -> None:
    """Implement to contribute config templates, shown by ``enhtrain templates list``.

    Args:
        registry: Call ``registry.register(path_to_yaml, name="template_name")``; the name defaults to the
            file's stem. The first comment line of the file is its description.
    """


@hookspec
def enhtrain_validate_config(config: dict[str, Any]) -> None:
    """Implement to reject a composed config before anything is instantiated.

    Called for every training command, after all layers are merged and interpolations resolved, with the
    whole config as plain data (``trainer``, ``model``, ``data``, ``experiment``, ...). Do not modify it.

    Args:
        config: The composed config of the subcommand.

    Raises:
        enhtrain.ConfigError: With a message naming the key and the fix, to stop the command with exit 2.
    """


@hookspec
def enhtrain_env_overlays(env: str) -> list[str] | None:
    """Implement to contribute overlay files for an environment such as ``dev``, ``test`` or ``prod``.

    Called when ``--env NAME`` or ``ENHTRAIN_ENV=NAME`` selects an environment. Plugin overlays apply on top
    of the built-in overlay and below the project's ``env/NAME.yaml``.

    Args:
        env: The environment's name.

    Returns:
        Paths of YAML files to layer, lowest first, or ``None`` if the plugin has none for ``env``.
    """


@hookspec
def enhtrain_runtime_keys(registry: RuntimeKeyRegistry) -> None:
    """Implement to declare keys that ``enhtrain runs set`` may change while a run trains.

    Called once per command that needs the keys: by a training run with ``experiment.runtime_updates`` on, when
    it starts, and by ``enhtrain runs set`` to check a value before writing it. Every value is validated against
    the key's type and bounds before the run applies it, on every rank at the same step.

    Args:
        registry: Call ``registry.register(name, type=..., apply=..., read=..., help=..., ge=..., le=...)`` for
            each key: ``apply(trainer, pl_module, value)`` and ``read(trainer, pl_module)`` are functions or their
            import paths ``"pkg.module:function"``, imported only when a run applies the key.
    """
