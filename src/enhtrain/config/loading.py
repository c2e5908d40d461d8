"""Reading YAML config files as layers that remember the file and line of every value.

Every config text enhtrain reads, from a file, an inline ``--config``, a flag or an environment variable, is read
by the one bounded reader, :mod:`enhtrain.documents`, within its limits: :data:`MAX_CONFIG_BYTES` of text,
regular files only, :data:`MAX_YAML_NODES` values once every alias is expanded, :data:`MAX_YAML_DEPTH` levels of
nesting and integers of at most ``MAX_INT_DIGITS`` digits. A document past a limit is refused with a
:class:`~enhtrain.errors.ConfigError` before it is expanded or built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enhtrain.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    YAMLSyntaxError,
    parse_yaml,
    parse_yaml_node,
    read_text,
)
from enhtrain.errors import ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "KeyPath",
    "Layer",
    "YAMLSyntaxError",
    "load_yaml_file",
    "load_yaml_text",
    "load_yaml_value",
    "read_config_text",
]

MAX_CONFIG_BYTES = MAX_DOCUMENT_BYTES
"""The largest config text read, in bytes (4 MiB): a file, an inline ``--config``, a flag or variable value."""

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


def _collect(node: yaml.Node, prefix: KeyPath, label: str, out: dict[KeyPath, str]) -> None:
    if isinstance(node, yaml.MappingNode) and node.value:
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _collect(value_node, (*prefix, str(key_node.value)), label, out)
        return
    out[prefix] = f"{label}:{node.start_mark.line + 1}"


load_yaml_value = parse_yaml
"""Parse YAML text holding any value within the input limits: :func:`enhtrain.documents.parse_yaml`."""


def load_yaml_text(text: str, label: str) -> Layer:
    """Parse YAML text into a :class:`Layer` whose sources are ``label:line``.

    Raises:
        ConfigError: On a syntax error, a Python-object tag, a top level that is not a mapping, or text past
            the input limits (see :func:`load_yaml_value`).
    """
    node, data = parse_yaml_node(text, label)
    if data is None or data == {}:
        return Layer()
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of keys to values, not {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{label}: keys must be strings, found {bad[0]!r}")
    assert node is not None
    sources: dict[KeyPath, str] = {}
    _collect(node, (), label, sources)
    return Layer(data, sources)


def read_config_text(path: str | Path) -> str:
    """Read a config file as UTF-8 text, refusing anything but a regular file of at most :data:`MAX_CONFIG_BYTES`.

    At most one byte more than the limit is read, so a device such as ``/dev/zero`` or a growing file cannot
    exhaust memory, and a pipe cannot block the command.

    Raises:
        ConfigError: If the file is missing, a directory, not a regular file, too large, unreadable, or not
            UTF-8 text.
    """
    return read_text(path, what="config file", give="a YAML file")


def load_yaml_file(path: str | Path) -> Layer:
    """Read a YAML config file into a :class:`Layer`, within the input limits.

    Raises:
        ConfigError: If the file is missing, unreadable, not a regular file, too large, or its content is
            invalid.
    """
    return load_yaml_text(read_config_text(path), str(path))
