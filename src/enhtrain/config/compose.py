"""Composing a config from its layers and resolving interpolations across all of them.

Layers, lowest to highest: code defaults; the ``--config`` files in order, each after the files it
``extends``; the environment overlay; ``ENHTRAIN_*`` environment variables; explicit flags.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enhtrain.config.loading import KeyPath, Layer, load_yaml_file, load_yaml_text
from enhtrain.config.merging import merge_layers, set_path
from enhtrain.errors import ConfigError

__all__ = [
    "RESERVED_ENV_VARS",
    "ComposedConfig",
    "compose",
    "env_var_layer",
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
        "ENHTRAIN_RUN_DIR",
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

    Raises:
        ConfigError: On a cycle, a bad ``extends`` value, or any error of the files themselves.
    """
    resolved = Path(path).resolve()
    if resolved in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, resolved))
        raise ConfigError(f"{path}: 'extends' cycle: {chain}; remove one of these extends entries")
    layer = load_yaml_file(path)
    if files is not None:
        files.append(str(path))
    extends = layer.data.pop("extends", None)
    layer.sources = {k: v for k, v in layer.sources.items() if k[:1] != ("extends",)}
    if extends is None:
        return layer
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise ConfigError(f"{path}: 'extends' must be a file name or a list of file names")
    for item in extends:
        if not (Path(path).parent / item).exists():
            raise ConfigError(
                f"{path}: extends: config file '{Path(path).parent / item}' not found (paths in extends are "
                f"relative to {path}); check the path"
            )
    bases = [
        load_with_extends(Path(path).parent / item, (*_stack, resolved), files) for item in extends
    ]
    return merge_layers(*bases, layer)


def resolve_env_overlays(env: str, first_config: str | None) -> list[str]:
    """Return the overlay files for an environment: built-in and plugin ones, then the project's.

    ``env`` may also be a path to a YAML file.

    Raises:
        ConfigError: If nothing provides ``env``; the message lists the known environments.
    """
    if env.endswith((".yaml", ".yml")) or os.sep in env:
        if not Path(env).is_file():
            raise ConfigError(f"environment overlay file '{env}' not found: check the --env path")
        return [env]
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
        if project_dir.is_dir():
            known |= {p.stem for p in project_dir.glob("*.y*ml")}
        raise ConfigError(
            f"unknown environment '{env}'. Known environments: {', '.join(sorted(known))} "
            f"(or add {project_dir / (env + '.yaml')}, or pass --env path/to/overlay.yaml)"
        )
    return paths


def parse_flag_value(text: str) -> Any:
    """Parse a command-line or environment value as YAML (``3``, ``true``, ``[a, b]``), else keep the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def env_var_layer(environ: Mapping[str, str]) -> Layer:
    """Turn ``ENHTRAIN_TRAINER__MAX_EPOCHS=3`` style variables into a layer (``__`` separates keys)."""
    layer = Layer()
    for name in sorted(environ):
        if not name.startswith("ENHTRAIN_") or name in RESERVED_ENV_VARS:
            continue
        path = tuple(part.lower() for part in name[len("ENHTRAIN_") :].split("__") if part)
        if path:
            set_path(layer, path, parse_flag_value(environ[name]), f"environment variable {name}")
    return layer


def _has_interpolation(obj: Any) -> bool:
    if isinstance(obj, str):
        return "${" in obj
    if isinstance(obj, dict):
        return any(_has_interpolation(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_interpolation(v) for v in obj)
    return False


def resolve_interpolations(layer: Layer) -> dict[str, Any]:
    """Resolve ``${...}`` interpolations over the whole composed config with OmegaConf.

    Raises:
        ConfigError: Naming the key whose interpolation failed and where it was set.
    """
    if not _has_interpolation(layer.data):
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
) -> ComposedConfig:
    """Compose every layer into one resolved config.

    Args:
        config_files: ``--config`` files, lowest first.
        defaults: The code-defaults layer.
        env: Environment name or overlay path (``--env``); ``ENHTRAIN_ENV`` is used when ``None``.
        environ: The environment variables (defaults to ``os.environ``).
        flags: ``(dotted.key, value)`` pairs from the command line, highest layer.
        inline_configs: ``(position, yaml_text)`` configs given inline to ``--config``, placed among the files.

    Raises:
        ConfigError: For any invalid layer.
    """
    environ = os.environ if environ is None else environ
    files: list[str] = []
    layers: list[Layer] = [defaults] if defaults is not None else []
    inline = dict(inline_configs)
    for index, path in enumerate(config_files):
        if index in inline:
            layers.append(load_yaml_text(inline[index], "--config (inline)"))
        else:
            layers.append(load_with_extends(path, files=files))
    env = env or environ.get("ENHTRAIN_ENV") or None
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
        set_path(merged, tuple(dotted.split(".")), value, f"flag --{dotted}")
    data = resolve_interpolations(merged)
    return ComposedConfig(data, merged.sources, files, env, overlay_files)
