"""Reading YAML config files safely, remembering the file and line of every value.

Every config text enhtrain reads, from a file, an inline ``--config``, a flag or an environment variable, goes
through this module, which reads it within fixed limits: :data:`MAX_CONFIG_BYTES` of text, regular files only,
:data:`MAX_YAML_NODES` values once every alias is expanded, and :data:`MAX_YAML_DEPTH` levels of nesting. A
document past a limit is refused with a :class:`~enhtrain.errors.ConfigError` before it is expanded or built.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""The largest config text read, in bytes (4 MiB): a file, an inline ``--config``, a flag or variable value."""

MAX_YAML_NODES = 100_000
"""The most values (scalars, lists and mappings) a YAML document may hold once its aliases are expanded."""

MAX_YAML_DEPTH = 100
"""The most levels of lists and mappings nested in one another in a YAML document, aliases expanded."""

KeyPath = tuple[str, ...]
"""A key path in a config, such as ``("trainer", "max_epochs")``."""

_LIMIT_SIZE = f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB (limit)"


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


class YAMLSyntaxError(ConfigError):
    """The text is not valid YAML, as opposed to valid YAML that is refused (a limit, a duplicate key, a tag).

    Callers that read a flag's value may catch it to keep the text as a plain string.

    Attributes:
        problem: What the parser found, such as ``expected ',' or ']', but got '<stream end>'``.
        location: ``:line:column`` of the problem, or an empty string.
    """

    def __init__(self, label: str, problem: str, location: str) -> None:
        super().__init__(f"{label}{location}: {problem}")
        self.problem = problem
        self.location = location


def _refuse_tag(err: yaml.YAMLError) -> str:
    text = str(err)
    if "python/" in text or "could not determine a constructor" in text:
        tag = text.split("tag '", 1)[-1].split("'", 1)[0] if "tag '" in text else "?"
        return f"YAML tag '{tag}' is not allowed: configs are plain data, write the value instead"
    return " ".join((getattr(err, "problem", None) or text).split())


def _error_location(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


class _Budget:
    """Counts a YAML event stream against the node and nesting limits, without expanding any alias.

    Each alias adds the expanded size and height of the node it names, remembered when that node ended, so a
    document of nested aliases is measured in time proportional to its text, not to its expansion.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.from_aliases = 0
        self.open: list[list[Any]] = []  # [anchor, count at start, height of the tallest child]
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)

    def _where(self, event: yaml.Event) -> str:
        mark = event.start_mark
        return f"{self.label}:{mark.line + 1}" if mark is not None else self.label

    def _child(self, height: int) -> None:
        if self.open and height > self.open[-1][2]:
            self.open[-1][2] = height

    def event(self, event: yaml.Event) -> None:
        """Account for one event; raise :class:`ConfigError` as soon as a limit is passed."""
        if isinstance(event, yaml.AliasEvent):
            if any(frame[0] == event.anchor for frame in self.open):
                raise ConfigError(
                    f"{self._where(event)}: YAML alias '*{event.anchor}' is inside the node it names (a recursive "
                    "alias): write the value out instead"
                )
            known = self.anchors.get(event.anchor)
            if known is None:
                return  # an undefined alias: the composer reports it
            size, height = known
            self.count += size
            self.from_aliases += size
            if len(self.open) + height > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{self._where(event)}: YAML nested more than {MAX_YAML_DEPTH} levels deep (limit) once alias "
                    f"'*{event.anchor}' is expanded: flatten the structure"
                )
            self._child(height)
        elif isinstance(event, yaml.ScalarEvent):
            self.count += 1
            if event.anchor is not None:
                self.anchors[event.anchor] = (1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            self.count += 1
            self.open.append([event.anchor, self.count - 1, 0])
            if len(self.open) > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{self._where(event)}: YAML nested more than {MAX_YAML_DEPTH} levels deep (limit): flatten the "
                    "structure"
                )
        elif isinstance(event, yaml.CollectionEndEvent) and self.open:
            anchor, start, tallest = self.open.pop()
            if anchor is not None:
                self.anchors[anchor] = (self.count - start, tallest + 1)
            self._child(tallest + 1)
        if self.count > MAX_YAML_NODES:
            if self.from_aliases:
                raise ConfigError(
                    f"{self._where(event)}: YAML aliases expand to more than {MAX_YAML_NODES} nodes (limit): remove "
                    "the aliases (&name/*name) and write the values out"
                )
            raise ConfigError(
                f"{self._where(event)}: YAML document has more than {MAX_YAML_NODES} nodes (limit): a config is "
                "small; move bulk data to a file that the code reads"
            )


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, counting every event it composes against a :class:`_Budget`.

    The budget sees each collection before the recursive composer descends into it, so nesting never gets
    deeper than :data:`MAX_YAML_DEPTH` levels. Scalars are typed as jsonargparse types them (``1e-3`` is a
    float, ``2024-01-01`` stays text), so a value means the same whether enhtrain or jsonargparse reads it.
    """

    def __init__(self, text: str, label: str) -> None:
        super().__init__(text)
        self.budget = _Budget(label)

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        self.budget.event(event)
        return event


def _jsonargparse_scalars(loader: type[yaml.SafeLoader]) -> None:
    """Type scalars as jsonargparse's YAML loader does: floats with an exponent and no dot, no timestamps."""
    loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers
                if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )


_jsonargparse_scalars(_BoundedLoader)


def _prescan(text: str, label: str) -> None:
    """Measure ``text`` with libyaml's fast parser, when PyYAML has it, to refuse a large document quickly.

    Any problem other than a limit is left to the pure-Python loader, whose messages enhtrain reports.
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is None:
        return
    budget = _Budget(label)
    try:
        for event in yaml.parse(text, Loader=fast):
            budget.event(event)
    except ConfigError:
        raise
    except Exception:  # a syntax or encoding problem: the pure-Python pass reports it with its position
        return


def _check_size(text: str, label: str) -> None:
    if len(text) > MAX_CONFIG_BYTES or (
        len(text) * 4 > MAX_CONFIG_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES
    ):
        raise ConfigError(f"{label}: YAML text is {_LIMIT_SIZE}: a config is small; check that this is the right text")


def _check_duplicates(node: yaml.Node, label: str) -> None:
    """Refuse a mapping that names a key twice (YAML loaders keep the last silently).

    Each node is checked once, however many aliases name it.
    """
    seen_nodes: set[int] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    line = key_node.start_mark.line + 1
                    if key_node.value in seen:
                        raise ConfigError(
                            f"{label}:{line}: duplicate key '{key_node.value}' (first at line "
                            f"{seen[key_node.value]}); remove one of them"
                        )
                    seen[key_node.value] = line
                pending.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)


def _parse(text: str, label: str) -> tuple[yaml.Node | None, Any]:
    """Compose and construct one YAML document within the limits.

    Raises:
        ConfigError: Past a limit, on a duplicate key or a Python tag; :class:`YAMLSyntaxError` on invalid YAML.
    """
    _check_size(text, label)
    _prescan(text, label)
    try:
        loader = _BoundedLoader(text, label)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_duplicates(node, label)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.constructor.ConstructorError as err:
        raise ConfigError(f"{label}{_error_location(err)}: {_refuse_tag(err)}") from err
    except yaml.YAMLError as err:
        raise YAMLSyntaxError(label, _refuse_tag(err), _error_location(err)) from err
    return node, data


def _collect(node: yaml.Node, prefix: KeyPath, label: str, out: dict[KeyPath, str]) -> None:
    if isinstance(node, yaml.MappingNode) and node.value:
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _collect(value_node, (*prefix, str(key_node.value)), label, out)
        return
    out[prefix] = f"{label}:{node.start_mark.line + 1}"


def load_yaml_value(text: str, label: str) -> Any:
    """Parse YAML text holding any value (a scalar, a list or a mapping) within the input limits.

    Args:
        text: The YAML text, such as a flag's value.
        label: What the text is, for messages: ``flag --experiment.loggers`` or a file name.

    Returns:
        The value; ``None`` for empty text.

    Raises:
        YAMLSyntaxError: If the text is not valid YAML.
        ConfigError: On a duplicate key, a YAML tag (such as ``!!python/name:os.system``), or text past
            :data:`MAX_CONFIG_BYTES`, :data:`MAX_YAML_NODES` or :data:`MAX_YAML_DEPTH`.
    """
    return _parse(text, label)[1]


def load_yaml_text(text: str, label: str) -> Layer:
    """Parse YAML text into a :class:`Layer` whose sources are ``label:line``.

    Raises:
        ConfigError: On a syntax error, a Python-object tag, a top level that is not a mapping, or text past
            the input limits (see :func:`load_yaml_value`).
    """
    node, data = _parse(text, label)
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
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as err:
        raise ConfigError(f"config file '{path}' not found: check the path") from err
    except IsADirectoryError as err:
        raise ConfigError(f"config file '{path}' is a directory: give a YAML file") from err
    except OSError as err:
        raise ConfigError(f"config file '{path}' cannot be read: {err.strerror or err}") from err
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ConfigError(f"config file '{path}' is a directory: give a YAML file")
        raise ConfigError(f"config file '{path}' is not a regular file (a device, pipe or socket): give a YAML file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as err:
            raise ConfigError(f"config file '{path}' cannot be read: {err.strerror or err}") from err
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file '{path}' is {_LIMIT_SIZE}: a config is small; check that this is the right file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file '{path}' cannot be read: it is not UTF-8 text ({err.reason})") from err


def load_yaml_file(path: str | Path) -> Layer:
    """Read a YAML config file into a :class:`Layer`, within the input limits.

    Raises:
        ConfigError: If the file is missing, unreadable, not a regular file, too large, or its content is
            invalid.
    """
    return load_yaml_text(read_config_text(path), str(path))
