"""Reading YAML config files safely, remembering the file and line of every value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enhtrain.errors import ConfigError

__all__ = ["KeyPath", "Layer", "load_yaml_file", "load_yaml_text"]

KeyPath = tuple[str, ...]
"""A key path in a config, such as ``("trainer", "max_epochs")``."""


@dataclass
class Layer:
    """Config data with the origin of each leaf value.

    Attributes:
        data: The nested mapping.
        sources: Leaf key path to a label such as ``configs/base.yaml:12`` or ``flag --trainer.max_epochs``.
            A leaf is anything that is not a non-empty mapping; lists are leaves (they replace, not merge).
    """

    data: dict[str, Any] = field(default_factory=dict)
    sources: dict[KeyPath, str] = field(default_factory=dict)


def _refuse_tag(err: yaml.YAMLError) -> str:
    text = str(err)
    if "python/" in text or "could not determine a constructor" in text:
        tag = text.split("tag '", 1)[-1].split("'", 1)[0] if "tag '" in text else "?"
        return f"YAML tag '{tag}' is not allowed: configs are plain data, write the value instead"
    return " ".join((getattr(err, "problem", None) or text).split())


def _error_location(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _check_duplicates(node: yaml.Node, label: str) -> None:
    """Refuse a mapping that names a key twice (YAML loaders keep the last silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise ConfigError(
                        f"{label}:{line}: duplicate key '{key_node.value}' (first at line {seen[key_node.value]}); "
                        "remove one of them"
                    )
                seen[key_node.value] = line
            _check_duplicates(value_node, label)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, label)


def _collect(node: yaml.Node, prefix: KeyPath, label: str, out: dict[KeyPath, str]) -> None:
    if isinstance(node, yaml.MappingNode) and node.value:
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _collect(value_node, (*prefix, str(key_node.value)), label, out)
        return
    out[prefix] = f"{label}:{node.start_mark.line + 1}"


def load_yaml_text(text: str, label: str) -> Layer:
    """Parse YAML text into a :class:`Layer` whose sources are ``label:line``.

    Raises:
        ConfigError: On a syntax error, a Python-object tag, or a top level that is not a mapping.
    """
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_duplicates(node, label)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise ConfigError(f"{label}{_error_location(err)}: {_refuse_tag(err)}") from err
    if data is None or data == {}:
        return Layer()
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of keys to values, not {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{label}: keys must be strings, found {bad[0]!r}")
    sources: dict[KeyPath, str] = {}
    _collect(node, (), label, sources)
    return Layer(data, sources)


def load_yaml_file(path: str | Path) -> Layer:
    """Read a YAML config file into a :class:`Layer`.

    Raises:
        ConfigError: If the file is missing or unreadable, or its content is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file '{path}' not found: check the path") from err
    except IsADirectoryError as err:
        raise ConfigError(f"config file '{path}' is a directory: give a YAML file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file '{path}' cannot be read: {err}") from err
    return load_yaml_text(text, str(path))
