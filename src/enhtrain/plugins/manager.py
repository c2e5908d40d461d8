"""The plugin manager: entry-point loading, allow and deny lists, the component registry, listing.

One :class:`pluggy.PluginManager` per process, built lazily by :func:`get_plugin_manager`. Third-party
plugins come from the ``enhtrain`` entry-point group; the built-in plugins in
:mod:`enhtrain.plugins.builtin` are registered afterwards through the same hooks. A plugin that fails to
import, declares an unknown hook, has a wrong hook signature or raises in a hook is recorded as a
:class:`PluginFailure` and skipped: commands that do not need it keep working.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from enhtrain.errors import ConfigError, PluginError
from enhtrain.plugins import hookspecs
from enhtrain.plugins.registry import KINDS, ComponentRegistry, PluginInfo

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginState",
    "get_plugin_manager",
    "get_registry",
    "list_plugins",
    "reset",
]

ENTRY_POINT_GROUP = "enhtrain"
"""The entry-point group in which distributions declare their plugin modules."""

BUILTIN_PLUGINS = (
    "enhtrain.plugins.builtin.callbacks",
    "enhtrain.plugins.builtin.loggers",
    "enhtrain.plugins.builtin.profilers",
    "enhtrain.plugins.builtin.templates",
    "enhtrain.plugins.builtin.envs",
    "enhtrain.plugins.builtin.checks",
)
"""The modules of the built-in plugins, registered after the third-party ones."""

_HOOK_NAMES = {name for name in dir(hookspecs) if name.startswith("enhtrain_")}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used.

    Attributes:
        plugin: Where it comes from.
        stage: ``"import"``, ``"register"`` or the name of the hook that raised.
        error: The error, one line.
    """

    plugin: PluginInfo
    stage: str
    error: str

    def message(self) -> str:
        """One line for users: which plugin, what failed, and why."""
        return f"plugin {self.plugin.describe()} failed at {self.stage}: {self.error}"


@dataclass
class PluginState:
    """Everything the process knows about its plugins.

    Attributes:
        manager: The pluggy plugin manager.
        infos: Plugin name to provenance, for every registered plugin.
        failures: Every plugin failure, in the order met.
    """

    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    registry: ComponentRegistry | None = None
    registry_key: frozenset[int] = frozenset()


_state: PluginState | None = None


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _add_plugin(state: PluginState, obj: Any, info: PluginInfo) -> None:
    unknown = sorted(
        name
        for name in dir(obj)
        if name.startswith("enhtrain_") and name not in _HOOK_NAMES and callable(getattr(obj, name, None))
    )
    if unknown:
        state.failures.append(
            PluginFailure(info, "register", f"unknown hook {', '.join(unknown)}; known hooks: "
                          + ", ".join(sorted(_HOOK_NAMES)))
        )
        return
    try:
        state.manager.register(obj, name=info.name)
    except (pluggy.PluginValidationError, ValueError) as err:
        state.failures.append(PluginFailure(info, "register", _one_line(err)))
        return
    state.infos[info.name] = info


def _load_entry_points(state: PluginState) -> None:
    if os.environ.get("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
        return
    allowed = _env_list("ENHTRAIN_LOAD_PLUGINS")
    blocked = _env_list("ENHTRAIN_DISABLED_PLUGINS")
    seen: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
        names = {ep.name, info.distribution}
        if ep.name in seen or names & blocked or (allowed and not names & allowed):
            continue
        seen.add(ep.name)
        try:
            obj = ep.load()
        except Exception as err:
            state.failures.append(PluginFailure(info, "import", _one_line(err)))
            continue
        _add_plugin(state, obj, info)


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process's plugin manager, loading entry points and built-ins on first call."""
    return _get_state().manager


def _get_state() -> PluginState:
    global _state
    if _state is None:
        manager = pluggy.PluginManager("enhtrain")
        manager.add_hookspecs(hookspecs)
        state = PluginState(manager)
        _load_entry_points(state)
        blocked = _env_list("ENHTRAIN_DISABLED_PLUGINS")
        version = metadata.version("enhtrain")
        for module_name in BUILTIN_PLUGINS:
            if module_name in blocked:
                continue
            _add_plugin(state, importlib.import_module(module_name), PluginInfo(module_name, "enhtrain", version))
        _state = state
    return _state


def reset() -> None:
    """Forget the plugin manager and registry, so the next use rebuilds them (used by tests)."""
    global _state
    _state = None


def get_registry() -> ComponentRegistry:
    """Return the component registry, calling every plugin's registration hooks on first use.

    Each hook implementation is called on its own so that a component's provenance is known and one
    plugin raising does not stop the others.
    """
    state = _get_state()
    # Rebuild when plugins were registered or unregistered since (tests call ``pm.register`` directly).
    key = frozenset(id(p) for p in state.manager.get_plugins())
    if state.registry is not None and state.registry_key == key:
        return state.registry
    state.failures = [f for f in state.failures if not f.stage.startswith("enhtrain_register_")]
    registry = ComponentRegistry()
    for kind in KINDS:
        kind_registry = registry.kinds[kind]
        hook = getattr(state.manager.hook, f"enhtrain_register_{kind}")
        # get_hookimpls() lists implementations in registration order, so reversed puts the built-ins,
        # registered last, first: a third-party name then clashes with the built-in and is reported.
        for impl in reversed(hook.get_hookimpls()):
            info = state.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            kind_registry._current = info
            try:
                impl.function(registry=kind_registry)
            except Exception as err:
                failure = PluginFailure(info, f"enhtrain_register_{kind}", _one_line(err))
                state.failures.append(failure)
                registry.failures[info.name] = failure.message()
    state.registry, state.registry_key = registry, key
    return registry


def failures() -> list[PluginFailure]:
    """Return every plugin failure seen so far (building the registry first)."""
    get_registry()
    return list(_get_state().failures)


def failure_hint(name: str) -> str:
    """Return a sentence naming the failed plugins, to append to an 'unknown component' message."""
    failed = failures()
    if not failed:
        return ""
    return " (" + "; ".join(f.message() for f in failed) + f"; if '{name}' comes from it, fix that plugin)"


def validate_config(config: dict[str, Any]) -> None:
    """Run every plugin's ``enhtrain_validate_config`` hook.

    Raises:
        ConfigError: As raised by a plugin, or wrapping any other exception a plugin raised.
    """
    state = _get_state()
    for impl in reversed(state.manager.hook.enhtrain_validate_config.get_hookimpls()):
        try:
            impl.function(config=config)
        except ConfigError:
            raise
        except Exception as err:
            info = state.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            raise PluginError(
                f"plugin {info.describe()} failed in enhtrain_validate_config: {_one_line(err)}; fix that plugin"
            ) from err


def env_overlays(env: str) -> list[str]:
    """Return the overlay files every plugin contributes for ``env``, built-ins first."""
    state = _get_state()
    paths: list[str] = []
    for impl in reversed(state.manager.hook.enhtrain_env_overlays.get_hookimpls()):
        try:
            result = impl.function(env=env)
        except Exception as err:
            info = state.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            raise PluginError(
                f"plugin {info.describe()} failed in enhtrain_env_overlays: {_one_line(err)}; fix that plugin"
            ) from err
        for path in result or ():
            if not Path(path).is_file():
                info = state.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
                raise PluginError(
                    f"plugin {info.describe()} gave environment '{env}' the overlay file '{path}', which is not "
                    "found; fix that plugin"
                )
            paths.append(str(path))
    return paths


def list_plugins() -> list[dict[str, Any]]:
    """Describe every plugin for ``enhtrain plugins``: name, distribution, version, registrations, status."""
    registry = get_registry()
    state = _get_state()
    registered = registry.by_plugin()
    rows: list[dict[str, Any]] = []
    # Every plugin the manager holds: entry points, built-ins, and objects registered directly (tests).
    for name, plugin in state.manager.list_name_plugin():
        if plugin is None:
            continue
        info = state.infos.get(name, PluginInfo(name))
        rows.append(
            {
                "name": name,
                "distribution": info.distribution,
                "version": info.version,
                "builtin": name in BUILTIN_PLUGINS,
                "hooks": sorted(
                    impl.name for impl in state.manager.get_hookcallers(state.manager.get_plugin(name)) or ()
                ),
                "registered": registered.get(name, {}),
                "error": registry.failures.get(name),
            }
        )
    for failure in state.failures:
        if failure.plugin.name not in state.infos:
            rows.append(
                {
                    "name": failure.plugin.name,
                    "distribution": failure.plugin.distribution,
                    "version": failure.plugin.version,
                    "builtin": False,
                    "hooks": [],
                    "registered": {},
                    "error": failure.message(),
                }
            )
    return rows
