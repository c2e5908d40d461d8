"""Refusing class paths that would import dangerous modules, before anything is imported.

A config chooses classes by import path, so a hostile one could name ``os.system`` or ``subprocess.Popen``.
Every ``class_path`` (and every shorthand class name given where Lightning accepts one) is checked against a
deny list; in safe mode (``--safe`` or ``ENHTRAIN_SAFE_CONFIG=1``) only registered components, ``torch``,
``lightning``, ``enhtrain`` and modules the user allows (``--allow_module NAME`` or
``ENHTRAIN_ALLOWED_MODULES=a,b``) may be named at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from enhtrain.config.compose import ComposedConfig
from enhtrain.errors import ConfigError

__all__ = ["DENIED_MODULES", "SAFE_ROOTS", "check_class_paths", "iter_class_paths"]

DENIED_MODULES = frozenset(
    {
        "builtins", "code", "codeop", "ctypes", "importlib", "marshal", "multiprocessing", "nt", "os", "pdb",
        "pickle", "pickletools", "platform", "posix", "pty", "runpy", "shelve", "shutil", "signal", "socket",
        "socketserver", "subprocess", "sys", "tempfile", "webbrowser", "ftplib", "smtplib", "telnetlib", "http",
        "urllib", "asyncio", "threading", "_thread", "io", "gc", "inspect", "types", "dill", "cloudpickle",
        "joblib", "zipimport", "pkgutil", "site", "sysconfig", "venv", "ensurepip", "distutils", "setuptools",
        "pip", "__main__", "__builtin__",
    }
)
"""Modules that a config may never name in a class path."""
SAFE_ROOTS = ("torch", "lightning", "pytorch_lightning", "enhtrain", "torchmetrics")
"""Packages whose classes safe mode allows besides registered components."""

# Sections whose value may be a bare class name or import path instead of a {class_path: ...} mapping.
_CLASS_KEYS = {"model", "data", "optimizer", "lr_scheduler", "callbacks", "logger", "profiler", "plugins",
               "strategy"}


def iter_class_paths(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Yield ``(key path, import path)`` for every class named in a config."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            key_path = (*path, str(key))
            names_class = key == "class_path" or (key in _CLASS_KEYS and "." in str(value))
            if names_class and isinstance(value, str):
                yield key_path, value
            else:
                yield from iter_class_paths(value, key_path)
    elif isinstance(obj, list):
        for index, item in enumerate(obj):
            if isinstance(item, str) and path and path[-1] in _CLASS_KEYS and "." in item:
                yield (*path, str(index)), item
            else:
                yield from iter_class_paths(item, (*path, str(index)))


def _flag_class_paths(rest: Sequence[str]) -> Iterator[tuple[str, str]]:
    for i, arg in enumerate(rest):
        if not arg.startswith("--"):
            continue
        key, sep, value = arg[2:].partition("=")
        key = key.rstrip("+")  # `--trainer.callbacks+ X` appends to a list
        if not sep:
            value = rest[i + 1] if i + 1 < len(rest) else ""
        leaf = key.rsplit(".", 1)[-1]
        if (leaf == "class_path" or leaf in _CLASS_KEYS) and "." in value and not value.startswith(("{", "[")):
            yield key, value


def _module_root(import_path: str) -> str:
    return import_path.replace(":", ".").split(".", 1)[0]


def check_class_paths(
    composed: ComposedConfig,
    rest: Sequence[str] = (),
    *,
    safe: bool = False,
    allowed: Sequence[str] = (),
    registered: Sequence[str] = (),
) -> None:
    """Refuse dangerous or, in safe mode, unlisted class paths.

    Args:
        composed: The composed config.
        rest: Command-line flags passed on to jsonargparse (``--model.class_path X`` and the like).
        safe: Allow only registered components, :data:`SAFE_ROOTS` and ``allowed`` modules.
        allowed: Module names the user allows in safe mode.
        registered: Import paths of registered components.

    Raises:
        ConfigError: Naming the key, where it was set, the module, and the fix.
    """
    found = [(".".join(p), v, composed.source_of(p) or "config") for p, v in iter_class_paths(composed.data)]
    found += [(k, v, f"flag --{k}") for k, v in _flag_class_paths(rest)]
    registered_set = set(registered)
    for key, value, where in found:
        root = _module_root(value)
        if root in DENIED_MODULES or root.startswith("__"):
            raise ConfigError(
                f"{where}: {key}: '{value}' would import the module '{root}', which configs may not use; "
                "name a model, data module, callback or logger class instead"
            )
        if not safe:
            continue
        ok = (
            value.replace(":", ".") in registered_set
            or root in SAFE_ROOTS
            or any(value == m or value.startswith(m + ".") for m in allowed)
        )
        if not ok:
            raise ConfigError(
                f"{where}: {key}: '{value}' is not allowed in safe mode: only registered components and "
                f"{', '.join(SAFE_ROOTS)} are; allow its package with --allow_module {root} "
                f"or ENHTRAIN_ALLOWED_MODULES={root}"
            )
