"""The two gates every hostile input meets: the import gate and the path gate.

**The import gate.** A config chooses classes by import path, so a hostile one could name ``os.system`` or
``subprocess.Popen``. Every string that enhtrain, its reference model or its reference data module turn into an
import goes through :func:`check_import` before anything is imported: ``class_path`` at any depth, shorthand
class names where Lightning accepts one (``model``, ``trainer.callbacks``, ...), the reference data module's
``dataset``, class paths stored in a checkpoint's hyper-parameters and registered components; in files,
``extends``, overlays, environment variables, command-line flags, inline YAML given to a flag and YAML files
given to a flag. The deny list (the standard library, pickle-like and packaging tools, and a few dangerous
members of allowed packages) always applies; in safe mode (``--safe`` or ``ENHTRAIN_SAFE_CONFIG=1``) only
registered components, :data:`SAFE_ROOTS` and modules the user allows (``--allow_module NAME`` or
``ENHTRAIN_ALLOWED_MODULES=a,b``) may be named. The gate decides from the string alone: it never imports the
module it judges (:func:`importlib.util.find_spec` on a top-level package, which runs nothing, is the most it
does).

**The path gate.** Every file enhtrain writes, renames or deletes is resolved (symbolic links included) by
:func:`inside` and must lie inside the run directory.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from enhtrain.documents import YAMLSyntaxError, parse_yaml, read_text
from enhtrain.errors import ConfigError, RunDirError

__all__ = [
    "DENIED_MODULES",
    "DENIED_PATHS",
    "SAFE_ROOTS",
    "ImportPolicy",
    "PathEscapeError",
    "check_class_paths",
    "check_config_imports",
    "check_import",
    "import_named_module",
    "import_object",
    "inside",
    "is_plain_name",
    "iter_class_paths",
]

DENIED_MODULES = frozenset(
    {
        *sys.stdlib_module_names,
        "dill", "cloudpickle", "joblib", "setuptools", "pip", "pkg_resources", "_distutils_hack", "__main__",
        "__builtin__", "IPython", "ipykernel", "jupyter_client", "fabric", "paramiko", "invoke", "sh", "pexpect",
        "plumbum", "psutil", "yaml", "omegaconf", "jsonargparse", "hydra", "fsspec", "requests", "httpx", "urllib3",
    }
)
"""Top-level modules a config may never name: the whole standard library (``os``, ``subprocess``, ``this``,
...), and packages that run commands, load pickles, fetch URLs or parse configs (which could re-enter a config
without the gate)."""

DENIED_PATHS = (
    "torch.hub",
    "torch.load",
    "torch.package",
    "torch.serialization",
    "torch.utils.cpp_extension",
    "torch.jit.load",
    "torch.compile",
    "torch.distributed.elastic",
    "torch.multiprocessing",
    "lightning.fabric.utilities.cloud_io",
    "lightning.pytorch.utilities.cloud_io",
    "numpy.load",
)
"""Members of otherwise allowed packages that load pickles, compile or fetch code, or start processes."""

SAFE_ROOTS = ("torch", "lightning", "pytorch_lightning", "enhtrain", "torchmetrics")
"""Packages whose classes safe mode allows besides registered components."""

# Sections whose value may be a bare class name or import path instead of a {class_path: ...} mapping.
_CLASS_KEYS = {"model", "data", "optimizer", "lr_scheduler", "callbacks", "logger", "profiler", "plugins",
               "strategy"}
# Keys whose flag value jsonargparse reads as a YAML file when it names one (`--model model.yaml`).
_FILE_KEYS = _CLASS_KEYS | {"trainer", "init_args", "dict_kwargs"}
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:[.:][A-Za-z_][A-Za-z0-9_]*)+$")
_DATASET_FILE_SUFFIXES = (".pt", ".npz", ".csv")


def _dataset_is_import(value: str) -> bool:
    """Whether the reference data module would import ``dataset`` (mirrors its own rule)."""
    return "." in value and not value.lower().endswith(_DATASET_FILE_SUFFIXES) and not Path(value).exists()


# Init arguments that the reference model and data module turn into an import: class path -> arg -> test.
_IMPORT_ARGS: dict[str, dict[str, Callable[[str], bool]]] = {
    "enhtrain.data.DatasetDataModule": {"dataset": _dataset_is_import},
    "enhtrain.data.dataset_datamodule.DatasetDataModule": {"dataset": _dataset_is_import},
    "DatasetDataModule": {"dataset": _dataset_is_import},
}


@dataclass(frozen=True)
class ImportPolicy:
    """What the import gate allows.

    Attributes:
        safe: Allow only registered components, :data:`SAFE_ROOTS` and ``allowed`` modules.
        allowed: Module names (and their submodules) the user allows in safe mode.
        registered: Import paths of registered components (``pkg.module.Class``).
    """

    safe: bool = False
    allowed: tuple[str, ...] = ()
    registered: frozenset[str] = frozenset()


def _module_root(import_path: str) -> str:
    return import_path.replace(":", ".").split(".", 1)[0]


def _safe_mode_allows(path: str, policy: ImportPolicy) -> bool:
    """Whether safe mode lets ``path`` (dotted, ``:`` replaced) be imported: registered, safe root or allowed."""
    return (
        path in policy.registered
        or _module_root(path) in SAFE_ROOTS
        or any(path == m or path.startswith(m + ".") for m in policy.allowed)
    )


def check_import(value: str, *, key: str, where: str, policy: ImportPolicy = ImportPolicy(),
                 must_exist: bool = False) -> None:
    """The import gate: refuse ``value`` before anything imports it.

    Args:
        value: An import path (``pkg.module.Class`` or ``pkg.module:Class``) or a bare class name (which
            jsonargparse resolves among classes already imported, importing nothing).
        key: The config key that holds it, for the message.
        where: Where it was set (``file.yaml:3``, ``flag --model``), for the message.
        policy: The deny/allow rules in force.
        must_exist: Also refuse when the top-level package is not installed (checked with
            :func:`importlib.util.find_spec`, which imports nothing).

    Raises:
        ConfigError: Naming where the value was set, the key, the module, and the fix.
    """
    path = value.strip().replace(":", ".")
    root = _module_root(path)
    dotted = "." in path
    if dotted and (root in DENIED_MODULES or root.startswith("_")):
        raise ConfigError(
            f"{where}: {key}: '{value}' would import the module '{root}', which configs may not use; "
            "name a model, data module, callback or logger class instead"
        )
    denied = next((d for d in DENIED_PATHS if path == d or path.startswith(d + ".")), None)
    if denied is not None:
        raise ConfigError(
            f"{where}: {key}: '{value}' would use '{denied}', which configs may not use; "
            "name a model, data module, callback or logger class instead"
        )
    if not dotted:
        return
    if policy.safe and not _safe_mode_allows(path, policy):
        raise ConfigError(
            f"{where}: {key}: '{value}' is not allowed in safe mode: only registered components and "
            f"{', '.join(SAFE_ROOTS)} are; allow its package with --allow_module {root} "
            f"or ENHTRAIN_ALLOWED_MODULES={root}"
        )
    if must_exist and importlib.util.find_spec(root) is None:
        raise ConfigError(
            f"{where}: {key}: '{value}' names the module '{root}', which is not installed; install it or fix the "
            "import path"
        )


def import_object(value: str, *, key: str, where: str, policy: ImportPolicy = ImportPolicy()) -> Any:
    """Pass ``value`` through the import gate, then import and return the object it names.

    Args:
        value: ``pkg.module:Name`` or ``pkg.module.Name``.
        key: The key or registry name it came from, for messages.
        where: Who named it, for messages.
        policy: The deny/allow rules in force.

    Raises:
        ConfigError: If the gate refuses it.
        ImportError: If the module cannot be imported.
        AttributeError: If the module has no such attribute.
    """
    check_import(value, key=key, where=where, policy=policy)
    module_name, _, attr = value.partition(":")
    if not attr:
        module_name, _, attr = value.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def import_named_module(name: str, *, key: str, where: str, policy: ImportPolicy = ImportPolicy()) -> ModuleType:
    """Pass a module name through the import gate, then import the module.

    Unlike a class path, a bare top-level name (``os``) names a module here, so it is judged as the package it
    is, not passed on as a class name for jsonargparse to resolve.

    Args:
        name: A module's dotted name (``mypkg.models``) or a top-level package (``mypkg``).
        key: Where the name is used, for messages.
        where: Who named it, for messages.
        policy: The deny/allow rules in force.

    Raises:
        ConfigError: If the gate refuses it.
        ImportError: If the module cannot be imported.
    """
    path = name.strip()
    if "." in path:
        check_import(path, key=key, where=where, policy=policy)
    elif path in DENIED_MODULES or path.startswith("_") or (
        policy.safe and not _safe_mode_allows(path, policy)
    ):
        raise ConfigError(f"{where}: {key}: '{name}' is a module that may not be imported here; name your own package")
    return importlib.import_module(path)


def iter_class_paths(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Yield ``(key path, import path)`` for every string of a config that becomes an import.

    These are ``class_path`` values at any depth, strings given where Lightning accepts a class
    (``model: pkg.Model``, ``trainer.callbacks: [pkg.Callback]``), and the init arguments that the reference
    model and data module import (the data module's ``dataset`` when it names a class).
    """
    if isinstance(obj, Mapping):
        class_path = obj.get("class_path")
        import_args = _IMPORT_ARGS.get(class_path, {}) if isinstance(class_path, str) else {}
        for key, value in obj.items():
            key_path = (*path, str(key))
            names_class = key == "class_path" or (key in _CLASS_KEYS and "." in str(value))
            if names_class and isinstance(value, str):
                yield key_path, value
            elif key == "init_args" and isinstance(value, Mapping):
                for arg, test in import_args.items():
                    item = value.get(arg)
                    if isinstance(item, str) and test(item):
                        yield (*key_path, arg), item
                yield from iter_class_paths(value, key_path)
            else:
                yield from iter_class_paths(value, key_path)
    elif isinstance(obj, list):
        for index, item in enumerate(obj):
            if isinstance(item, str) and path and path[-1] in _CLASS_KEYS and "." in item:
                yield (*path, str(index)), item
            else:
                yield from iter_class_paths(item, (*path, str(index)))


def _iter_dotted_strings(obj: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string under ``obj`` that has the shape of an import path."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _iter_dotted_strings(value, (*path, str(key)))
    elif isinstance(obj, list):
        for index, item in enumerate(obj):
            yield from _iter_dotted_strings(item, (*path, str(index)))
    elif isinstance(obj, str) and _IMPORT_PATH.match(obj.strip()):
        yield path, obj


def _parse_flag_value(text: str, label: str) -> Any:
    """Read a flag's value as jsonargparse will: YAML, or the plain string when it is not valid YAML."""
    try:
        return parse_yaml(text, label)
    except YAMLSyntaxError:
        return text


def _flag_pairs(rest: Sequence[str]) -> Iterator[tuple[str, bool, str]]:
    """``(dotted key, appends, value)`` for every ``--key value`` / ``--key=value`` flag of jsonargparse."""
    i = 0
    while i < len(rest):
        arg = rest[i]
        i += 1
        if not arg.startswith("--"):
            continue
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if i < len(rest) and not rest[i].startswith("--"):
                value = rest[i]
                i += 1
            else:
                continue
        appends = key.endswith("+")
        yield key.rstrip("+"), appends, value


def _set(data: dict[str, Any], keys: Sequence[str], value: Any, appends: bool) -> None:
    node: Any = data
    for part in keys[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            child = {} if not isinstance(child, str) else {"class_path": child}
            node[part] = child
        node = child
    if appends:
        current = node.get(keys[-1])
        current = current if isinstance(current, list) else ([] if current is None else [current])
        node[keys[-1]] = [*current, *(value if isinstance(value, list) else [value])]
    else:
        node[keys[-1]] = value


def _apply_flags(data: dict[str, Any], rest: Sequence[str]) -> dict[tuple[str, ...], str]:
    """Overlay jsonargparse's flags on ``data`` as jsonargparse would read them; return each flag's key path.

    A flag's value is read as YAML (inline mappings and lists included) and, when it names an existing file,
    as that YAML file, which is how jsonargparse reads ``--model model.yaml``.
    """
    flagged: dict[tuple[str, ...], str] = {}
    for key, appends, text in _flag_pairs(rest):
        if not key or key.startswith(("print_config", "config", "help")):
            continue
        label = f"flag --{key}"
        candidate = Path(text) if text and "\n" not in text and len(text) < 4096 else None
        reads_files = key.rsplit(".", 1)[-1] in _FILE_KEYS or text.lower().endswith((".yaml", ".yml", ".json"))
        if candidate is not None and reads_files and candidate.is_file():
            label = f"{label} ({text})"
            value = _parse_flag_value(read_text(candidate, what="config file", give="a YAML file"), label)
        else:
            value = _parse_flag_value(text, label)
        keys = tuple(key.split("."))
        _set(data, keys, value, appends)
        flagged[keys] = label
    return flagged


def check_config_imports(
    data: Mapping[str, Any],
    source_of: Callable[[Sequence[str]], str | None],
    rest: Sequence[str] = (),
    *,
    policy: ImportPolicy = ImportPolicy(),
) -> None:
    """Pass every string of a config and of jsonargparse's flags that becomes an import through the gate.

    Args:
        data: The composed config.
        source_of: Where a key path was set (``file.yaml:3``), for messages.
        rest: The flags that jsonargparse will parse (``--model.class_path X``, ``--model '{...}'``,
            ``--model model.yaml``, ``--trainer.callbacks+=...``).
        policy: The deny/allow rules in force.

    Raises:
        ConfigError: For the first refused value, naming the key and where it was set.
    """
    overlaid = copy.deepcopy(dict(data))
    flagged = _apply_flags(overlaid, rest)

    def where(key_path: tuple[str, ...]) -> str:
        for n in range(len(key_path), 0, -1):
            if key_path[:n] in flagged:
                return flagged[key_path[:n]]
        return source_of(key_path) or "config"

    for key_path, value in iter_class_paths(overlaid):
        arg_import = key_path[-1] not in ("class_path", *_CLASS_KEYS) and not key_path[-1].isdigit()
        check_import(value, key=".".join(key_path), where=where(key_path), policy=policy, must_exist=arg_import)
    # Strings a user's own classes may import: the deny list applies to every import-shaped value they get.
    for section in ("model", "data"):
        for key_path, value in _iter_dotted_strings(overlaid.get(section), (section,)):
            check_import(value, key=".".join(key_path), where=where(key_path))


class _Composed(Protocol):
    """A composed config as the gate reads it: its data and where each key was set."""

    data: dict[str, Any]

    def source_of(self, key_path: Sequence[str]) -> str | None:
        """Where ``key_path`` was set."""


def check_class_paths(
    composed: _Composed,
    rest: Sequence[str] = (),
    *,
    safe: bool = False,
    allowed: Sequence[str] = (),
    registered: Sequence[str] = (),
) -> None:
    """Refuse dangerous or, in safe mode, unlisted imports of a composed config and its flags.

    Args:
        composed: The composed config.
        rest: Command-line flags passed on to jsonargparse (``--model.class_path X`` and the like).
        safe: Allow only registered components, :data:`SAFE_ROOTS` and ``allowed`` modules.
        allowed: Module names the user allows in safe mode.
        registered: Import paths of registered components.

    Raises:
        ConfigError: Naming the key, where it was set, the module, and the fix.
    """
    policy = ImportPolicy(safe, tuple(allowed), frozenset(r.replace(":", ".") for r in registered))
    check_config_imports(composed.data, composed.source_of, rest, policy=policy)


# ---------------------------------------------------------------------------------------------------------------
# The path gate
# ---------------------------------------------------------------------------------------------------------------


class PathEscapeError(RunDirError):
    """A path enhtrain was about to write, rename or delete lies outside the directory it belongs to."""


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str = "path") -> Path:
    """The path gate: resolve ``path`` (symbolic links included) and require it to lie inside ``root``.

    Every file enhtrain writes, renames or deletes goes through this check, with ``root`` the run directory
    (or, for checkpoints, the run's ``checkpoints/``).

    Args:
        path: The path about to be written, renamed or deleted (relative paths are relative to the working
            directory, as for any file operation).
        root: The directory it must stay inside.
        what: What the path is, for the message (``"checkpoint file"``).

    Returns:
        The resolved path.

    Raises:
        PathEscapeError: If the resolved path is ``root`` itself or lies outside it.
    """
    base = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(path))
    if resolved == base or base not in resolved.parents:
        raise PathEscapeError(
            f"{what} '{path}' resolves to '{resolved}', outside '{base}': enhtrain writes and deletes only inside "
            "the run directory; use a plain file name"
        )
    return resolved


def is_plain_name(name: object) -> bool:
    """Whether ``name`` is a plain file name: a non-empty string with no directory part, not ``.`` or ``..``."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and os.path.basename(name) == name
    )
