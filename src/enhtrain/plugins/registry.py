"""The component registry: registry names to classes, factories and templates, with provenance.

The registry never imports what it lists: plugins name components by import path and the object is
imported by :meth:`Registration.load` only when a config uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enhtrain.errors import ConfigError, PluginError

__all__ = ["KINDS", "ComponentRegistry", "KindRegistry", "PluginInfo", "Registration", "snake_case"]

KINDS = ("callbacks", "loggers", "profilers", "templates")
"""The kinds of component a plugin can register."""
_SINGULAR = {"callbacks": "callback", "loggers": "logger", "profilers": "profiler", "templates": "template"}


def snake_case(name: str) -> str:
    """Convert a class name to snake_case: ``"GradNormMonitor"`` -> ``"grad_norm_monitor"``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from.

    Attributes:
        name: The plugin's name: its entry-point name, or the module name of a built-in plugin.
        distribution: The installed distribution that provides it (``enhtrain`` for built-ins).
        version: The distribution's version, when known.
    """

    name: str
    distribution: str | None = None
    version: str | None = None

    def describe(self) -> str:
        """Return ``"name (distribution version)"`` for messages."""
        if self.distribution:
            return f"{self.name} ({self.distribution} {self.version or ''})".replace(" )", ")")
        return self.name


@dataclass(frozen=True)
class Registration:
    """One registered component.

    Attributes:
        kind: One of :data:`KINDS`.
        name: The registry name used in configs.
        target: The object itself, its import path ``"pkg.module:Name"``, or a template's file path.
        plugin: The plugin that registered it.
    """

    kind: str
    name: str
    target: Any
    plugin: PluginInfo

    @property
    def import_path(self) -> str:
        """The dotted import path (``pkg.module.Name``) of a class or factory, or a template's path."""
        if self.kind == "templates":
            return str(self.target)
        if isinstance(self.target, str):
            return self.target.replace(":", ".")
        return f"{self.target.__module__}.{self.target.__qualname__}"

    @property
    def class_name(self) -> str:
        """The last component of the import path."""
        return self.import_path.rsplit(".", 1)[-1]

    def load(self) -> Any:
        """Import and return the registered object (a template's :class:`~pathlib.Path` for templates).

        Raises:
            PluginError: If the import fails; the message names the plugin to fix.
        """
        if self.kind == "templates":
            return Path(self.target)
        if not isinstance(self.target, str):
            return self.target
        from enhtrain.security import import_object

        module_name = self.target.partition(":")[0] if ":" in self.target else self.target.rpartition(".")[0]
        attr = self.target.partition(":")[2] or self.target.rpartition(".")[2]
        try:
            return import_object(
                self.target, key=f"{_SINGULAR[self.kind]} '{self.name}'", where=f"plugin {self.plugin.describe()}"
            )
        except ImportError as err:
            raise PluginError(
                f"{_SINGULAR[self.kind]} '{self.name}' from plugin {self.plugin.describe()} cannot be imported "
                f"({err}); reinstall or fix that plugin"
            ) from err
        except AttributeError as err:
            raise PluginError(
                f"{_SINGULAR[self.kind]} '{self.name}' from plugin {self.plugin.describe()}: module "
                f"'{module_name}' has no '{attr}'; fix that plugin"
            ) from err


def _default_name(kind: str, obj: Any) -> str:
    if kind == "templates":
        return Path(obj).stem
    if isinstance(obj, str):
        return snake_case(obj.replace(":", ".").rsplit(".", 1)[-1])
    return snake_case(getattr(obj, "__name__", type(obj).__name__))


@dataclass
class KindRegistry:
    """The registry of one kind of component, as handed to a plugin's registration hook.

    Attributes:
        kind: One of :data:`KINDS`.
        entries: Registry name to :class:`Registration`.
        conflicts: Registry name to the plugins that registered it more than once.
    """

    kind: str
    entries: dict[str, Registration] = field(default_factory=dict)
    conflicts: dict[str, list[PluginInfo]] = field(default_factory=dict)
    _current: PluginInfo = field(default_factory=lambda: PluginInfo("unknown"))
    _hint: Callable[[str], str] | None = field(default=None, repr=False)

    def register(self, obj: Any, name: str | None = None) -> None:
        """Register a component.

        Args:
            obj: A class, a factory, an import path ``"pkg.module:Name"``, or for templates a YAML file path.
            name: The registry name; defaults to the class name in snake_case (a template's file stem).

        Raises:
            ValueError: If ``name`` is not a valid identifier-like name.
        """
        name = name or _default_name(self.kind, obj)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"invalid {_SINGULAR[self.kind]} name {name!r}: use letters, digits, '_', '-', '.'")
        if self.kind == "templates":
            obj = str(obj)
        existing = self.entries.get(name)
        if existing is not None and existing.plugin != self._current:
            self.conflicts.setdefault(name, [existing.plugin]).append(self._current)
            return
        self.entries[name] = Registration(self.kind, name, obj, self._current)

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self.entries)

    def get(self, name: str) -> Registration:
        """Look a component up by registry name, class name or import path.

        Raises:
            PluginError: If two plugins registered the name.
            ConfigError: If nothing matches; the message lists the known names.
        """
        found = self.find(name)
        if found is None:
            known = ", ".join(self.names()) or "none"
            hint = self._hint(name) if self._hint is not None else ""
            from enhtrain.errors import did_you_mean

            raise ConfigError(
                f"unknown {_SINGULAR[self.kind]} '{name}'{did_you_mean(name, self.names())}. Known {self.kind}: "
                f"{known}. "
                "Install the plugin that provides it, or check `enhtrain plugins`" + hint
            )
        return found

    def find(self, name: str) -> Registration | None:
        """Like :meth:`get`, but return ``None`` when nothing matches."""
        if name in self.conflicts:
            owners = " and ".join(p.describe() for p in self.conflicts[name])
            raise PluginError(
                f"{_SINGULAR[self.kind]} name '{name}' is registered by both {owners}; "
                "uninstall one or block it with ENHTRAIN_DISABLED_PLUGINS"
            )
        if name in self.entries:
            return self.entries[name]
        dotted = name.replace(":", ".")
        for entry in self.entries.values():
            if dotted in (entry.import_path, entry.class_name):
                return entry
        return None


@dataclass
class ComponentRegistry:
    """All kinds of components, filled by the registration hooks of every loaded plugin.

    Attributes:
        kinds: Kind name to its :class:`KindRegistry`.
        failures: Plugin name to the error its registration hook raised.
    """

    kinds: dict[str, KindRegistry] = field(default_factory=lambda: {k: KindRegistry(k) for k in KINDS})
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def callbacks(self) -> KindRegistry:
        """Registered callbacks."""
        return self.kinds["callbacks"]

    @property
    def loggers(self) -> KindRegistry:
        """Registered loggers."""
        return self.kinds["loggers"]

    @property
    def profilers(self) -> KindRegistry:
        """Registered profilers."""
        return self.kinds["profilers"]

    @property
    def templates(self) -> KindRegistry:
        """Registered config templates."""
        return self.kinds["templates"]

    def by_plugin(self) -> dict[str, dict[str, list[str]]]:
        """Return plugin name -> kind -> registered names, for listings."""
        out: dict[str, dict[str, list[str]]] = {}
        for kind, reg in self.kinds.items():
            for entry in reg:
                out.setdefault(entry.plugin.name, {}).setdefault(kind, []).append(entry.name)
        return out
