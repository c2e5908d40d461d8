"""Composing a config from its layers and resolving interpolations across all of them.

Layers, lowest to highest: code defaults; the ``--config`` files in order, each after the files it
``extends``; the environment overlay; ``ENHTRAIN_*`` environment variables; explicit flags.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enhtrain.config.loading import (
    KeyPath,
    Layer,
    YAMLSyntaxError,
    load_yaml_file,
    load_yaml_text,
    load_yaml_value,
)
from enhtrain.config.merging import merge_layers, set_path
from enhtrain.errors import ConfigError

__all__ = [
    "CLASS_SECTIONS",
    "RESERVED_ENV_VARS",
    "ComposedConfig",
    "compose",
    "env_var_layer",
    "flag_path",
    "has_interpolation",
    "load_with_extends",
    "parse_flag_value",
    "resolve_env_overlays",
    "resolve_interpolations",
]

RESERVED_ENV_VARS = frozenset(
    {
        "ENHTRAIN_ENV",
        "ENHTRAIN_DEBUG",
        "ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD",
        "ENHTRAIN_LOAD_PLUGINS",
        "ENHTRAIN_DISABLED_PLUGINS",
        "ENHTRAIN_SAFE_CONFIG",
        "ENHTRAIN_ALLOWED_MODULES",
        "ENHTRAIN_TRUST_CHECKPOINT",
        "ENHTRAIN_RUN_DIR",
        "ENHTRAIN_RUN_TOKEN",
        "ENHTRAIN_PLAIN_PROGRESS",
    }
)
"""``ENHTRAIN_*`` variables that steer enhtrain itself rather than set config values."""


@dataclass
class ComposedConfig:
    """The result of composing every layer.

    Attributes:
        data: The merged config with interpolations resolved.
        sources: Leaf key path to the layer that set it.
        files: Every config file read, in order (``extends`` included).
        env: The selected environment, if any.
        overlay_files: The overlay files applied for ``env``.
    """

    data: dict[str, Any]
    sources: dict[KeyPath, str]
    files: list[str] = field(default_factory=list)
    env: str | None = None
    overlay_files: list[str] = field(default_factory=list)

    def source_of(self, path: Sequence[str]) -> str | None:
        """Return the layer that set ``path`` or, failing that, the nearest key above or below it."""
        path = tuple(path)
        while path:
            if path in self.sources:
                return self.sources[path]
            below = [v for k, v in self.sources.items() if k[: len(path)] == path]
            if below:
                # A value the user set explains an error better than a default beside it.
                return next((v for v in below if v != "default"), below[0])
            path = path[:-1]
        return None


def load_with_extends(path: str | Path, _stack: tuple[Path, ...] = (), files: list[str] | None = None) -> Layer:
    """Load a config file after the files its ``extends:`` key names, resolved relative to it.

    Every error about an extended file (missing, a directory, invalid YAML, past a limit, a cycle) names the
    file that extends it and the line of its ``extends`` key.

    Raises:
        ConfigError: On a cycle, a bad ``extends`` value, or any error of the files themselves.
    """
    return _apply_extends(Path(path), load_yaml_file(path), _stack, files)


def _extends_location(layer: Layer, path: Path) -> str:
    """``file:line`` of the ``extends`` key of ``layer``, or the file name alone."""
    return next((v for k, v in layer.sources.items() if k[:1] == ("extends",)), str(path))


def _apply_extends(path: Path, layer: Layer, stack: tuple[Path, ...], files: list[str] | None) -> Layer:
    resolved = path.resolve()
    if files is not None:
        files.append(str(path))
    where = _extends_location(layer, path)
    extends = layer.data.pop("extends", None)
    layer.sources = {k: v for k, v in layer.sources.items() if k[:1] != ("extends",)}
    from enhtrain.config.migration import migrate_layer

    # Each file by itself: its schema_version, old keys or legacy format say nothing about the files it extends.
    layer = migrate_layer(layer, path)
    if extends is None:
        return layer
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise ConfigError(
            f"{path}: 'extends' must be a file name or a list of file names, not {type(extends).__name__} "
            f"(at {where})"
        )
    bases = []
    for item in extends:
        if not item.strip():
            raise ConfigError(
                f"{where}: extends: an entry is empty; give the name of a YAML file, relative to {path}"
            )
        target = path.parent / item
        chain = (*stack, resolved)
        if target.resolve() in chain:
            cycle = " -> ".join(str(p) for p in (*chain, target.resolve()))
            raise ConfigError(f"{path}: 'extends' cycle: {cycle}; remove the extends entry '{item}' at {where}")
        if not os.path.lexists(target):
            raise ConfigError(
                f"{where}: extends: config file '{target}' not found (paths in extends are relative to {path}); "
                "check the path"
            )
        try:
            base = load_yaml_file(target)
        except ConfigError as err:
            raise ConfigError(f"{where}: extends: {err}") from err
        bases.append(_apply_extends(target, base, chain, files))
    return merge_layers(*bases, layer)


_ENV_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")


def resolve_env_overlays(env: str, first_config: str | None) -> list[str]:
    """Return the overlay files for an environment: built-in and plugin ones, then the project's.

    ``env`` may also be a path to a YAML file.

    Raises:
        ConfigError: If nothing provides ``env``; the message lists the known environments: built-in, from
            plugins (see :func:`enhtrain.plugins.plugin_envs`) and the project's.
    """
    if env.endswith((".yaml", ".yml")) or os.sep in env:
        if not Path(env).is_file():
            raise ConfigError(f"environment overlay file '{env}' not found: check the --env path")
        return [env]
    if not _ENV_NAME.fullmatch(env):
        from enhtrain.errors import quote

        raise ConfigError(
            f"environment name {quote(env)} is not a name: use at most 64 letters, digits, '-', '_' or '.', or pass "
            "--env path/to/overlay.yaml"
        )
    from enhtrain import plugins

    paths = plugins.env_overlays(env)
    project_dir = Path(first_config).parent / "env" if first_config else Path("env")
    for suffix in (".yaml", ".yml"):
        candidate = project_dir / f"{env}{suffix}"
        if candidate.is_file():
            paths.append(str(candidate))
            break
    if not paths:
        from enhtrain.plugins.builtin.envs import builtin_envs

        known = set(builtin_envs())
        known.update(env_name for provided in plugins.plugin_envs().values() for env_name in provided)
        if project_dir.is_dir():
            known |= {p.stem for p in project_dir.glob("*.y*ml")}
        from enhtrain.errors import did_you_mean

        raise ConfigError(
            f"unknown environment '{env}'{did_you_mean(env, sorted(known))}. Known environments: "
            f"{', '.join(sorted(known))} "
            f"(or add {project_dir / (env + '.yaml')}, or pass --env path/to/overlay.yaml)"
        )
    return paths


def parse_flag_value(text: str, label: str = "flag value") -> Any:
    """Parse a command-line or environment value as YAML (``3``, ``true``, ``[a, b]``), within the input limits.

    Text that is not valid YAML is kept as a string (``a: b: c``), unless it opens a YAML list or mapping
    (``[`` or ``{``), which is a mistake to report rather than a string to pass on.

    Args:
        text: The value.
        label: What the value is, for messages: ``flag --experiment.loggers``, ``environment variable NAME``.

    Raises:
        ConfigError: If a list or mapping is malformed, a mapping names a key twice, the value has a YAML tag,
            or it is past the limits of :func:`~enhtrain.config.loading.load_yaml_value`.
    """
    try:
        return load_yaml_value(text, label)
    except YAMLSyntaxError as err:
        if not text.lstrip().startswith(("[", "{")):
            return text
        shown = text if len(text) <= 60 else text[:57] + "..."
        line, _, column = err.location.lstrip(":").partition(":")
        where = f" at line {line}, column {column}" if column else ""
        raise ConfigError(
            f"{label}: {shown!r} is not a valid YAML list or mapping ({err.problem}{where}); close its brackets, or "
            "quote the whole value to pass it as text"
        ) from err


def env_var_layer(environ: Mapping[str, str]) -> Layer:
    """Turn ``ENHTRAIN_TRAINER__MAX_EPOCHS=3`` style variables into a layer (``__`` separates keys)."""
    layer = Layer()
    for name in sorted(environ):
        if not name.startswith("ENHTRAIN_") or name in RESERVED_ENV_VARS:
            continue
        path = tuple(part.lower() for part in name[len("ENHTRAIN_") :].split("__") if part)
        if path:
            label = f"environment variable {name}"
            set_path(layer, path, parse_flag_value(environ[name], label), label)
    return layer


# Sections that hold options (a mapping), and sections that hold a class (its name, or a mapping with
# class_path and init_args); each with a key to show in the fix.
_OPTION_SECTIONS = {"trainer": ("max_epochs", "5")}
_CLASS_SECTIONS = {
    "model": ("class_path", "enhtrain.models.MLPClassifier"),
    "data": ("class_path", "enhtrain.data.DatasetDataModule"),
    "optimizer": ("class_path", "torch.optim.Adam"),
    "lr_scheduler": ("class_path", "torch.optim.lr_scheduler.StepLR"),
}

CLASS_SECTIONS = tuple(_CLASS_SECTIONS)
"""The top-level sections that hold a class: its name, or a mapping with ``class_path`` and ``init_args``."""


def _example_setting(source: str, section: str, key: str, value: str) -> str:
    """How to set ``section.key`` in the same kind of layer as ``source``."""
    if source.startswith("environment variable "):
        return f"set a key below it, such as ENHTRAIN_{section.upper()}__{key.upper()}={value}"
    if source.startswith("flag "):
        return f"set a key below it, such as --{section}.{key}={value}"
    return f"write its keys below it, such as '{section}: {{{key}: {value}}}'"


def _check_sections(composed: ComposedConfig) -> None:
    """Refuse a Lightning section set to a value of the wrong shape, naming the layer that set it.

    Raises:
        ConfigError: If ``trainer`` is set to anything but a mapping, or ``model``, ``data``, ``optimizer`` or
            ``lr_scheduler`` to anything but a class name, a mapping or null.
    """
    for section, (key, example) in {**_OPTION_SECTIONS, **_CLASS_SECTIONS}.items():
        if section not in composed.data:
            continue
        value = composed.data[section]
        if isinstance(value, dict) or (section in _CLASS_SECTIONS and (value is None or isinstance(value, str))):
            continue
        where = composed.source_of((section,)) or "config"
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        wanted = (
            "a mapping of options" if section in _OPTION_SECTIONS
            else "a class name or a mapping with class_path and init_args"
        )
        raise ConfigError(
            f"{where}: '{section}' must be {wanted}, got {shown}; {_example_setting(where, section, key, example)}"
        )


def _check_env_name(env: str, label: str) -> None:
    """Refuse an environment name holding a newline or another control character.

    Raises:
        ConfigError: Naming ``label`` (``--env`` or ``environment variable ENHTRAIN_ENV``).
    """
    if any(ord(char) < 32 or ord(char) == 127 for char in env):
        shown = repr(env) if len(env) <= 60 else repr(env[:57] + "...")
        raise ConfigError(
            f"{label}: {shown} contains a control character (such as a newline); give an environment name such "
            "as dev, or the path of an overlay file"
        )


def _inline_layer(text: str) -> Layer:
    """Read a YAML mapping given inline to ``--config``.

    Raises:
        ConfigError: If the text is invalid, or is YAML but not a mapping (``--config '[a, b]'``).
    """
    label = "--config (inline)"
    value = load_yaml_value(text, label)
    if value is not None and not isinstance(value, dict):
        shown = text if len(text) <= 60 else text[:57] + "..."
        kind = "a list" if isinstance(value, list) else f"a {type(value).__name__}"
        raise ConfigError(
            f"--config {shown!r}: no such file, and as inline YAML it is {kind}: --config takes a YAML file or "
            "an inline YAML mapping, such as --config '{trainer: {max_epochs: 3}}'"
        )
    from enhtrain.config.migration import migrate_layer

    return migrate_layer(load_yaml_text(text, label), label)


_CLASS_KEYS = ("class_path", "init_args", "dict_kwargs", "__path__")


def flag_path(data: Mapping[str, Any], dotted: str) -> tuple[str, ...]:
    """The key path a flag sets, with jsonargparse's shorthand for a class's arguments expanded.

    ``--model.lr 0.1`` sets ``model.init_args.lr`` when ``model`` is a class given by ``class_path``, as
    jsonargparse reads it.

    Args:
        data: The config the flag applies to.
        dotted: The flag's key, without the leading ``--``.
    """
    path = tuple(dotted.split("."))
    section = data.get(path[0]) if path[0] in CLASS_SECTIONS else None
    if len(path) > 1 and isinstance(section, dict) and "class_path" in section and path[1] not in _CLASS_KEYS:
        return (path[0], "init_args", *path[1:])
    return path


def has_interpolation(obj: Any) -> bool:
    """Whether a value holds an OmegaConf interpolation (``${...}``) anywhere."""
    if isinstance(obj, str):
        return "${" in obj
    if isinstance(obj, dict):
        return any(has_interpolation(v) for v in obj.values())
    if isinstance(obj, list):
        return any(has_interpolation(v) for v in obj)
    return False


def resolve_interpolations(layer: Layer) -> dict[str, Any]:
    """Resolve ``${...}`` interpolations over the whole composed config with OmegaConf.

    Raises:
        ConfigError: Naming the key whose interpolation failed and where it was set.
    """
    if not has_interpolation(layer.data):
        return copy.deepcopy(layer.data)  # OmegaConf costs ~60 ms to import; skip it when nothing needs it
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        container = OmegaConf.to_container(OmegaConf.create(layer.data), resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        where = ComposedConfig({}, layer.sources).source_of(key.split(".")) if key != "?" else None
        message = " ".join(str(err).splitlines()[0].split())
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}cannot resolve interpolation in '{key}': {message}") from err
    assert isinstance(container, dict)
    return container


def compose(
    config_files: Sequence[str],
    *,
    defaults: Layer | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Sequence[tuple[str, Any]] = (),
    inline_configs: Sequence[tuple[int, str]] = (),
    class_flags: Callable[[Layer], None] | None = None,
) -> ComposedConfig:
    """Compose every layer into one resolved config.

    Args:
        config_files: ``--config`` files, lowest first.
        defaults: The code-defaults layer.
        env: Environment name or overlay path (``--env``); ``ENHTRAIN_ENV`` is used when ``None``.
        environ: The environment variables (defaults to ``os.environ``).
        flags: ``(dotted.key, value)`` pairs from the command line, highest layer.
        inline_configs: ``(position, yaml_text)`` configs given inline to ``--config``, placed among the files.
        class_flags: Applies the flags that choose a class (and those after them) to the merged layers, after
            ``flags`` and before interpolations are resolved.

    Raises:
        ConfigError: For any invalid layer.
    """
    environ = os.environ if environ is None else environ
    files: list[str] = []
    layers: list[Layer] = [defaults] if defaults is not None else []
    inline = dict(inline_configs)
    for index, path in enumerate(config_files):
        if index in inline:
            layers.append(_inline_layer(inline[index]))
        else:
            layers.append(load_with_extends(path, files=files))
    if env:
        _check_env_name(env, "--env")
    elif environ.get("ENHTRAIN_ENV"):
        env = environ["ENHTRAIN_ENV"]
        _check_env_name(env, "environment variable ENHTRAIN_ENV")
    else:
        env = None
    overlay_files: list[str] = []
    if env:
        first = next((p for i, p in enumerate(config_files) if i not in inline), None)
        overlay_files = resolve_env_overlays(env, first)
        for overlay in overlay_files:
            layer = load_with_extends(overlay)
            layer.sources = {k: f"env overlay '{env}' ({v})" for k, v in layer.sources.items()}
            layers.append(layer)
    layers.append(env_var_layer(environ))
    merged = merge_layers(*layers)
    for dotted, value in flags:
        set_path(merged, flag_path(merged.data, dotted), value, f"flag --{dotted}")
    if class_flags is not None:
        class_flags(merged)
    data = resolve_interpolations(merged)
    composed = ComposedConfig(data, merged.sources, files, env, overlay_files)
    _check_sections(composed)
    return composed
