"""The plugin manager: entry-point loading, allow and deny lists, the component registry, listing.

One :class:`pluggy.PluginManager` per process, built lazily by :func:`get_plugin_manager` and rebuilt when one of
the variables that choose plugins (``ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD``, ``ENHTRAIN_LOAD_PLUGINS``,
``ENHTRAIN_DISABLED_PLUGINS``) changes. Third-party plugins come from the ``enhtrain`` entry-point group; the
built-in plugins in :mod:`enhtrain.plugins.builtin` are registered afterwards through the same hooks. A plugin
that fails to import, declares an unknown hook, has a wrong hook signature or raises in a hook is recorded as a
:class:`PluginFailure`, with its traceback, and skipped: commands that do not need it keep working.

Plugin names given in the variables are compared as PEP 503 normalises distribution names: case-insensitively,
with runs of ``-``, ``_`` and ``.`` equal, so ``ACME_Tools``, ``acme-tools`` and ``acme.tools`` name one plugin.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from enhtrain.errors import ConfigError, PluginError, located, quote
from enhtrain.plugins import hookspecs
from enhtrain.plugins.registry import _SINGULAR, KINDS, ComponentRegistry, KindRegistry, PluginInfo

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
    "isolated",
    "list_plugins",
    "normalize_name",
    "plugin_envs",
    "register_plugin",
    "reset",
    "validate_config",
    "warnings",
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
    "enhtrain.plugins.builtin.runtime",
)
"""The modules of the built-in plugins, registered after the third-party ones."""

SELECTION_VARIABLES = ("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "ENHTRAIN_LOAD_PLUGINS", "ENHTRAIN_DISABLED_PLUGINS")
"""The environment variables that choose which plugins load; the manager is rebuilt when one changes."""

_HOOK_NAMES = {name for name in dir(hookspecs) if name.startswith("enhtrain_")}
_FALSE_VALUES = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """Whether the switch ``name`` is on: unset, empty, ``0``, ``false``, ``no`` and ``off`` (any case) are off.

    Args:
        name: The environment variable.
    """
    return os.environ.get(name, "").strip().lower() not in _FALSE_VALUES


def normalize_name(name: str) -> str:
    """Normalise a plugin or distribution name as PEP 503 does: ``"ACME_Tools.x"`` -> ``"acme-tools-x"``."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used.

    Attributes:
        plugin: Where it comes from.
        stage: ``"import"``, ``"register"`` or the name of the hook that raised.
        error: The error, one line.
        traceback: The original traceback, shown by ``enhtrain plugins`` under ``ENHTRAIN_DEBUG=1``.
    """

    plugin: PluginInfo
    stage: str
    error: str
    traceback: str = field(default="", compare=False)

    def message(self) -> str:
        """One line for users: which plugin, what failed, and why."""
        return f"plugin {self.plugin.describe()} failed at {self.stage}: {self.error}"


@dataclass(frozen=True)
class _Skipped:
    """A plugin that is installed but was not loaded, why, and how to load it."""

    plugin: PluginInfo
    reason: str
    fix: str
    load: Callable[[], Any]


@dataclass
class PluginState:
    """Everything the process knows about its plugins.

    Attributes:
        manager: The pluggy plugin manager.
        infos: Plugin name to provenance, for every registered plugin.
        failures: Every plugin failure, in the order met.
        registry: The component registry, once built.
        registry_key: The plugins the registry was built from.
        skipped: Installed plugins that the variables (or a test) left unloaded.
        warnings: Lines about the plugin variables, such as a name that matches no installed plugin.
        loaded: The names of the plugins loaded from entry points and built-ins (not registered directly).
        env_key: The values of :data:`SELECTION_VARIABLES` the manager was built with.
        autoload: Whether entry points could load (``False`` in an isolated test manager without autoload).
    """

    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    registry: ComponentRegistry | None = None
    registry_key: frozenset[int] = frozenset()
    skipped: list[_Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)
    env_key: tuple[str | None, ...] = ()
    autoload: bool = True


_state: PluginState | None = None
_autoload = True


def _env_key() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in SELECTION_VARIABLES)


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _shown_value(name: str) -> str:
    """A variable's value for a message: as it is when plain, quoted and escaped when it would break the line."""
    raw = os.environ.get(name, "").strip()
    return raw if raw.isprintable() and len(raw) <= 80 else quote(raw)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _traceback(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


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
        state.failures.append(PluginFailure(info, "register", _one_line(err), _traceback(err)))
        return
    state.infos[info.name] = info
    state.loaded.add(info.name)


def _warn_unmatched(state: PluginState, entry_points: list[metadata.EntryPoint]) -> None:
    """Warn about names in the allow and deny lists that match no installed plugin."""
    third_party: dict[str, str] = {}
    for ep in entry_points:
        dist = getattr(ep, "dist", None)
        third_party[normalize_name(ep.name)] = ep.name
        if dist is not None:
            third_party[normalize_name(dist.name)] = ep.name
    builtin = {normalize_name(name) for name in BUILTIN_PLUGINS}
    installed = ", ".join(sorted({ep.name for ep in entry_points})) or "none"
    for variable, known in (("ENHTRAIN_LOAD_PLUGINS", set(third_party)),
                            ("ENHTRAIN_DISABLED_PLUGINS", set(third_party) | builtin)):
        for name in _env_list(variable):
            if normalize_name(name) not in known:
                state.warnings.append(
                    f"{variable}: {quote(name)} matches no installed plugin (installed plugins: {installed}); "
                    "check the spelling"
                )


def _load_entry_points(state: PluginState) -> None:
    allowed_raw = _shown_value("ENHTRAIN_LOAD_PLUGINS")
    blocked_raw = _shown_value("ENHTRAIN_DISABLED_PLUGINS")
    allowed = {normalize_name(n) for n in _env_list("ENHTRAIN_LOAD_PLUGINS")}
    blocked = {normalize_name(n) for n in _env_list("ENHTRAIN_DISABLED_PLUGINS")}
    autoload_env = not env_flag("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD")
    entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    _warn_unmatched(state, entry_points)
    seen: set[str] = set()
    for ep in entry_points:
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
        if ep.name in seen:
            continue
        seen.add(ep.name)
        names = {normalize_name(ep.name)} | ({normalize_name(info.distribution)} if info.distribution else set())
        skipped: tuple[str, str] | None = None
        if not state.autoload:
            skipped = ("is not loaded because this test's plugin manager does not autoload plugins",
                       "use enhtrain_plugins(autoload=True), or register the plugin with enhtrain_plugin")
        elif not autoload_env:
            value = _shown_value("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD")
            skipped = (f"is not loaded because ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD={value}",
                       "unset ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD")
        elif names & blocked:
            skipped = (f"is disabled by ENHTRAIN_DISABLED_PLUGINS={blocked_raw}",
                       "remove it from ENHTRAIN_DISABLED_PLUGINS")
        elif allowed and not names & allowed:
            skipped = (f"is not loaded because ENHTRAIN_LOAD_PLUGINS={allowed_raw} does not name it",
                       f"add {ep.name} to ENHTRAIN_LOAD_PLUGINS")
        if skipped is not None:
            state.skipped.append(_Skipped(info, *skipped, load=ep.load))
            continue
        try:
            obj = ep.load()
        except Exception as err:
            state.failures.append(PluginFailure(info, "import", _one_line(err), _traceback(err)))
            continue
        _add_plugin(state, obj, info)


def _build_state(autoload: bool) -> PluginState:
    manager = pluggy.PluginManager("enhtrain")
    manager.add_hookspecs(hookspecs)
    state = PluginState(manager, env_key=_env_key(), autoload=autoload)
    _load_entry_points(state)
    blocked_raw = _shown_value("ENHTRAIN_DISABLED_PLUGINS")
    blocked = {normalize_name(n) for n in _env_list("ENHTRAIN_DISABLED_PLUGINS")}
    version = metadata.version("enhtrain")
    for module_name in BUILTIN_PLUGINS:
        info = PluginInfo(module_name, "enhtrain", version)
        if normalize_name(module_name) in blocked:
            state.skipped.append(
                _Skipped(info, f"is disabled by ENHTRAIN_DISABLED_PLUGINS={blocked_raw}",
                         "remove it from ENHTRAIN_DISABLED_PLUGINS",
                         load=lambda name=module_name: importlib.import_module(name))
            )
            continue
        _add_plugin(state, importlib.import_module(module_name), info)
    return state


def _carry_over(previous: PluginState, state: PluginState) -> None:
    """Register on ``state`` the plugins that were registered directly (not loaded) on ``previous``."""
    for name, plugin in previous.manager.list_name_plugin():
        if plugin is None or name in previous.loaded or state.manager.is_registered(plugin):
            continue
        if state.manager.get_plugin(name) is not None:
            continue
        state.manager.register(plugin, name=name)
        if name in previous.infos:
            state.infos[name] = previous.infos[name]


def _get_state() -> PluginState:
    global _state
    if _state is None or _state.env_key != _env_key():
        previous = _state
        _state = _build_state(_autoload)
        if previous is not None:
            _carry_over(previous, _state)
    return _state


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process's plugin manager, loading entry points and built-ins on first call."""
    return _get_state().manager


def reset() -> None:
    """Forget the plugin manager and registry, so the next use rebuilds them (used by tests)."""
    global _state
    _state = None


@contextlib.contextmanager
def isolated(*, autoload: bool = False) -> Iterator[pluggy.PluginManager]:
    """Use a new plugin manager inside the block, and the process's own again after it.

    The new manager is built like the process's (built-in plugins, and with ``autoload`` the entry points the
    environment variables allow) and follows later changes of those variables. Plugins registered on it are
    forgotten with it.

    Args:
        autoload: Whether installed plugins load from their entry points. ``False`` leaves them out, so that a
            test sees only the built-ins and what it registers itself.

    Yields:
        The new plugin manager.
    """
    global _state, _autoload
    saved = (_state, _autoload)
    _state, _autoload = None, autoload
    try:
        yield get_plugin_manager()
    finally:
        _state, _autoload = saved


def register_plugin(obj: Any, name: str | None = None) -> str:
    """Register a plugin object or module on the current manager; a plugin already registered changes its name.

    A module that the manager already loaded from its entry point (an installed plugin) is registered again
    under ``name``, keeping its distribution and version, instead of failing with pluggy's "already
    registered" error.

    Args:
        obj: A module, class instance or namespace with hook implementations.
        name: The plugin's name; defaults to the entry-point name of an already registered plugin, or to
            pluggy's canonical name (a module's ``__name__``).

    Returns:
        The name it is registered under.

    Raises:
        ValueError: If another plugin already uses ``name``, or pluggy rejects the object.
    """
    state = _get_state()
    manager = state.manager
    previous = manager.get_name(obj) if manager.is_registered(obj) else None
    if previous is not None:
        if name is None or name == previous:
            return previous
        info = state.infos.get(previous, PluginInfo(previous))
        manager.unregister(obj)
        state.loaded.discard(previous)
        state.infos.pop(previous, None)
        registered = manager.register(obj, name=name)
        state.infos[str(registered)] = PluginInfo(str(registered), info.distribution, info.version)
        return str(registered)
    registered = manager.register(obj, name=name)
    return str(registered)


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
        kind_registry._hint = lambda name, kind=kind: failure_hint(name, kind)
        hook = getattr(state.manager.hook, f"enhtrain_register_{kind}")
        # get_hookimpls() lists implementations in registration order, so reversed puts the built-ins,
        # registered last, first: a third-party name then clashes with the built-in and is reported.
        for impl in reversed(hook.get_hookimpls()):
            info = state.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            kind_registry._current = info
            try:
                impl.function(registry=kind_registry)
            except Exception as err:
                failure = PluginFailure(info, f"enhtrain_register_{kind}", _one_line(err), _traceback(err))
                state.failures.append(failure)
                registry.failures[info.name] = failure.message()
    state.registry, state.registry_key = registry, key
    return registry


def failures() -> list[PluginFailure]:
    """Return every plugin failure seen so far (building the registry first)."""
    get_registry()
    return list(_get_state().failures)


def warnings() -> list[str]:
    """Return the warnings about the plugin variables, one line each (a name that matches no installed plugin)."""
    return list(_get_state().warnings)


def _skipped_provider(name: str, kind: str | None) -> tuple[_Skipped, str] | None:
    """The unloaded plugin that would register ``name`` (of ``kind``, or of any kind), and the kind.

    The plugin is imported and its registration hooks run on a scratch manager: this happens only when a
    config names a component that no loaded plugin provides.
    """
    kinds = [kind] if kind else list(KINDS)
    for skipped in _get_state().skipped:
        scratch = pluggy.PluginManager("enhtrain")
        scratch.add_hookspecs(hookspecs)
        try:
            scratch.register(skipped.load(), name=skipped.plugin.name)
        except Exception:
            continue
        for each in kinds:
            kind_registry = KindRegistry(each, _current=skipped.plugin)
            for impl in getattr(scratch.hook, f"enhtrain_register_{each}").get_hookimpls():
                with contextlib.suppress(Exception):
                    impl.function(registry=kind_registry)
            with contextlib.suppress(Exception):
                if kind_registry.find(name) is not None:
                    return skipped, each
    return None


def failure_hint(name: str, kind: str | None = None) -> str:
    """Return why ``name`` may be unknown, to append to an 'unknown component' message.

    When an installed plugin that is not loaded provides ``name``, the hint names that plugin and the variable
    that left it out; otherwise it names the plugins that failed, if any.

    Args:
        name: The unknown component name.
        kind: One of :data:`~enhtrain.plugins.registry.KINDS`, or ``None`` to look in every kind.

    Returns:
        ``" (...)"``, or ``""`` when there is nothing to add.
    """
    found = _skipped_provider(name, kind)
    if found is not None:
        skipped, each = found
        return (
            f" ({_SINGULAR[each]} {quote(name)} comes from plugin {skipped.plugin.describe()}, which {skipped.reason}; "
            f"{skipped.fix})"
        )
    failed = failures()
    if not failed:
        return ""
    return " (" + "; ".join(f.message() for f in failed) + f"; if {quote(name)} comes from it, fix that plugin)"


def _plugin_config_error(err: ConfigError, info: PluginInfo, locate: Callable[[str], str | None] | None) -> str:
    message = " ".join(str(err).split())
    if err.key:
        if not message.startswith(f"{err.key}:"):
            message = f"{err.key}: {message}"
        where = locate(err.key) if locate is not None else None
        message = located(where if where != "config" else None, message)
    if info.name not in BUILTIN_PLUGINS:
        message += f" (from plugin {info.describe()})"
    return message


def validate_config(config: dict[str, Any], locate: Callable[[str], str | None] | None = None) -> None:
    """Run every plugin's ``enhtrain_validate_config`` hook.

    A plugin's :class:`~enhtrain.errors.ConfigError` is raised again with the plugin's name and, when it names its
    ``key``, the key and where it was set.

    Args:
        config: The composed config of the subcommand, as plain data.
        locate: Returns where a dotted key was set (``file.yaml:LINE``, ``flag --KEY``, ...), or ``None``.

    Raises:
        ConfigError: As raised by a plugin, with its location and the plugin's name.
        PluginError: Wrapping any other exception a plugin raised.
    """
    state = _get_state()
    for impl in reversed(state.manager.hook.enhtrain_validate_config.get_hookimpls()):
        info = state.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
        try:
            impl.function(config=config)
        except ConfigError as err:
            raise ConfigError(_plugin_config_error(err, info, locate), key=err.key) from err
        except Exception as err:
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


_ENV_FOLDERS = ("envs", "env")


def _env_candidates(function: Callable[..., Any]) -> set[str]:
    """The stems of the YAML files in an ``envs/`` or ``env/`` folder beside the module that defines ``function``."""
    try:
        folder = Path(inspect.getfile(function)).resolve().parent
    except (TypeError, OSError):
        return set()
    return {p.stem for name in _ENV_FOLDERS if (folder / name).is_dir() for p in (folder / name).glob("*.y*ml")}


def plugin_envs() -> dict[str, dict[str, list[str]]]:
    """Return, for each plugin, the environments its ``enhtrain_env_overlays`` hook answers and their files.

    The hook takes an environment's name, so the names to ask about are found first: the built-in environments
    and the YAML files in an ``envs/`` (or ``env/``) folder beside the module that holds the hook, the layout
    that ``enhtrain plugins new`` writes. A name counts only when the hook returns existing files for it; a hook
    that raises is skipped here (it is reported when its environment is used).

    Returns:
        Plugin name to environment name to overlay files, lowest first.
    """
    from enhtrain.plugins.builtin.envs import builtin_envs

    state = _get_state()
    found: dict[str, dict[str, list[str]]] = {}
    for impl in reversed(state.manager.hook.enhtrain_env_overlays.get_hookimpls()):
        for env in sorted(set(builtin_envs()) | _env_candidates(impl.function)):
            try:
                result = impl.function(env=env)
            except Exception:
                continue
            files = [str(path) for path in result or () if Path(path).is_file()]
            if files:
                found.setdefault(impl.plugin_name, {})[env] = files
    return found


def list_plugins(*, envs: bool = False) -> list[dict[str, Any]]:
    """Describe every plugin for ``enhtrain plugins``: name, distribution, version, registrations, status.

    Args:
        envs: Also ask each plugin's ``enhtrain_env_overlays`` which environments it provides (``enhtrain
            plugins`` does; a run records its plugins without calling their hooks again).

    Each row has ``name``, ``distribution``, ``version``, ``builtin``, ``hooks``, ``registered`` (kind to names),
    ``envs`` (environment to overlay files, see :func:`plugin_envs`), ``config_check`` (whether it implements
    ``enhtrain_validate_config``), ``error`` (``None`` or one line) and ``traceback`` (``None`` or the failure's
    original traceback).
    """
    registry = get_registry()
    state = _get_state()
    provided = plugin_envs() if envs else {}
    registered = registry.by_plugin()
    tracebacks = {f.plugin.name: f.traceback or None for f in state.failures}
    rows: list[dict[str, Any]] = []
    # Every plugin the manager holds: entry points, built-ins, and objects registered directly (tests).
    for name, plugin in state.manager.list_name_plugin():
        if plugin is None:
            continue
        info = state.infos.get(name, PluginInfo(name))
        error = registry.failures.get(name)
        hooks = sorted(impl.name for impl in state.manager.get_hookcallers(state.manager.get_plugin(name)) or ())
        rows.append(
            {
                "name": name,
                "distribution": info.distribution,
                "version": info.version,
                "builtin": name in BUILTIN_PLUGINS,
                "hooks": hooks,
                "registered": registered.get(name, {}),
                "envs": provided.get(name, {}),
                "config_check": "enhtrain_validate_config" in hooks,
                "error": error,
                "traceback": tracebacks.get(name) if error else None,
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
                    "envs": {},
                    "config_check": False,
                    "error": failure.message(),
                    "traceback": failure.traceback or None,
                }
            )
    return rows
