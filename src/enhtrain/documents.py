"""The one bounded reader of documents that come from outside the process.

Everything enhtrain reads that another process, a person or a file wrote (config files, inline ``--config``
text, flag values, ``ENHTRAIN_*`` variables, run files such as ``runtime.yaml``, ``manifest.json`` and
``metadata.json``, the lock file, sweep stores, the metadata inside a checkpoint) is read here and nowhere
else, within fixed limits:

- :data:`MAX_DOCUMENT_BYTES` of text, read from a regular file only (never a device, pipe or socket, which could
  block or never end), and with ``follow_symlinks=False`` never through a symbolic link;
- :data:`MAX_YAML_NODES` values once every alias is expanded, counted before anything is expanded;
- :data:`MAX_YAML_DEPTH` levels of nesting;
- integers of at most :data:`MAX_INT_DIGITS` digits;
- no YAML tags (no Python objects) and, in JSON, no ``NaN`` or ``Infinity``.

A document past a limit is refused with a one-line :class:`~enhtrain.errors.ConfigError` before it is expanded
or built. The module imports nothing of enhtrain but :mod:`enhtrain.errors`: the gates and every layer above
them may use it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from enhtrain.errors import ConfigError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_INT_DIGITS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "YAMLSyntaxError",
    "dump_yaml",
    "load_dumped_yaml",
    "parse_json",
    "parse_yaml",
    "parse_yaml_node",
    "read_json",
    "read_text",
    "read_yaml",
]

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
"""The largest document read, in bytes (4 MiB): a file, an inline ``--config``, a flag or variable value."""

MAX_YAML_NODES = 100_000
"""The most values (scalars, lists and mappings) a document may hold once its YAML aliases are expanded."""

MAX_YAML_DEPTH = 100
"""The most levels of lists and mappings nested in one another in a document, YAML aliases expanded."""

MAX_INT_DIGITS = 100
"""The most digits an integer in a document may have: far more than any count, size or seed needs, and far
below the length at which converting it costs time (Python refuses more than 4300 digits with a traceback)."""

_LIMIT_SIZE = f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB (limit)"
_DIGITS = re.compile(r"[0-9]")
_MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10)) + 1


def _too_many_digits(label: str, digits: int) -> ConfigError:
    return ConfigError(
        f"{label}: an integer with {digits} digits is longer than {MAX_INT_DIGITS} digits (limit): give a smaller "
        "number"
    )


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


def _bounded_int(loader: Any, node: yaml.ScalarNode) -> int:
    """Refuse an integer too long to convert cheaply, naming its line."""
    where = f"{loader.budget.label}:{node.start_mark.line + 1}"
    digits = len(_DIGITS.findall(str(node.value)))
    if digits > MAX_INT_DIGITS:
        raise _too_many_digits(where, digits)
    value = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    # Hexadecimal, octal and binary forms are short in text and long in decimal: measure the value too.
    if value.bit_length() > _MAX_INT_BITS:
        bits = value.bit_length()
        raise _too_many_digits(where, len(str(value)) if bits < 14_000 else bits * 3 // 10)
    return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)

_CLoader: type[Any] | None = getattr(yaml, "CSafeLoader", None)

if _CLoader is not None:
    class _MeasuredLoader(_CLoader):  # type: ignore[misc, valid-type]
        """libyaml's safe loader for a document :func:`_prescan` has measured: the same typing and integer guard.

        The budget was counted on the events already, so the C composer builds the nodes without counting again.
        """

        def __init__(self, text: str, label: str) -> None:
            super().__init__(text)
            self.budget = _Budget(label)

    _MeasuredLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


_JSONARGPARSE_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
"""What jsonargparse's YAML loader reads as a float: YAML 1.1's forms, and an exponent without a dot (``1e3``)."""
_FLOAT_FIRST = list("-+0123456789.")


def _jsonargparse_scalars(loader: type[yaml.SafeLoader]) -> None:
    """Type scalars as jsonargparse's YAML loader does: floats with an exponent and no dot, no timestamps."""
    loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers
                if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver("tag:yaml.org,2002:float", _JSONARGPARSE_FLOAT, _FLOAT_FIRST)


_jsonargparse_scalars(_BoundedLoader)
if _CLoader is not None:
    _jsonargparse_scalars(_MeasuredLoader)


class _FaithfulDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The safe dumper (libyaml's when PyYAML has it), also quoting text that jsonargparse reads as a number."""


_FaithfulDumper.add_implicit_resolver("tag:yaml.org,2002:float", _JSONARGPARSE_FLOAT, _FLOAT_FIRST)


def dump_yaml(data: Any, **kwargs: Any) -> str:
    """Write ``data`` as YAML that reads back the same here and in jsonargparse (``sort_keys=False`` unless given).

    PyYAML's own dumper writes the text ``1e3`` plain, which those loaders read as the number 1000.0.
    """
    return yaml.dump(data, Dumper=_FaithfulDumper, **{"sort_keys": False, **kwargs})


def load_dumped_yaml(text: str) -> Any:
    """Load YAML that this process dumped itself, such as a parser's dump of a config it parsed and checked.

    Not for a document from outside the process: it has neither the limits nor the checks of :func:`parse_yaml`.
    It uses libyaml's safe loader when PyYAML has it.
    """
    return yaml.load(text, Loader=_CLoader or yaml.SafeLoader)


def _prescan(text: str, label: str) -> bool:
    """Measure ``text`` with libyaml's fast parser, when PyYAML has it, to refuse a large document quickly.

    Any problem other than a limit is left to the pure-Python loader, whose messages enhtrain reports.

    Returns:
        Whether the whole document was measured within the limits (then libyaml may build it).
    """
    if _CLoader is None:
        return False
    budget = _Budget(label)
    try:
        for event in yaml.parse(text, Loader=_CLoader):
            budget.event(event)
    except ConfigError:
        raise
    except Exception:  # a syntax or encoding problem: the pure-Python pass reports it with its position
        return False
    return True


def _check_size(text: str, label: str, kind: str = "YAML") -> None:
    if len(text) > MAX_DOCUMENT_BYTES or (
        len(text) * 4 > MAX_DOCUMENT_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES
    ):
        raise ConfigError(
            f"{label}: {kind} text is {_LIMIT_SIZE}: a config is small; check that this is the right text"
        )


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


def parse_yaml_node(text: str, label: str) -> tuple[yaml.Node | None, Any]:
    """Compose and construct one YAML document within the limits; return its node (for line numbers) and value.

    Raises:
        ConfigError: Past a limit, on a duplicate key or a Python tag; :class:`YAMLSyntaxError` on invalid YAML.
    """
    _check_size(text, label)
    if _prescan(text, label):
        with contextlib.suppress(yaml.YAMLError):  # reported below by the pure-Python loader, in its words
            return _load_node(_MeasuredLoader(text, label), label)
    try:
        return _load_node(_BoundedLoader(text, label), label)
    except yaml.constructor.ConstructorError as err:
        raise ConfigError(f"{label}{_error_location(err)}: {_refuse_tag(err)}") from err
    except yaml.YAMLError as err:
        raise YAMLSyntaxError(label, _refuse_tag(err), _error_location(err)) from err


def _load_node(loader: Any, label: str) -> tuple[yaml.Node | None, Any]:
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_duplicates(node, label)
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def parse_yaml(text: str, label: str) -> Any:
    """Parse YAML text holding any value (a scalar, a list or a mapping) within the limits.

    Args:
        text: The YAML text, such as a flag's value or a file's content.
        label: What the text is, for messages: ``flag --experiment.loggers`` or a file name.

    Returns:
        The value; ``None`` for empty text.

    Raises:
        YAMLSyntaxError: If the text is not valid YAML.
        ConfigError: On a duplicate key, a YAML tag (such as ``!!python/name:os.system``), an integer past
            :data:`MAX_INT_DIGITS` digits, or text past :data:`MAX_DOCUMENT_BYTES`, :data:`MAX_YAML_NODES` or
            :data:`MAX_YAML_DEPTH`.
    """
    return parse_yaml_node(text, label)[1]


def _refuse_constant(label: str) -> Any:
    def refuse(name: str) -> Any:
        raise ConfigError(f"{label}: '{name}' is not a JSON number: write a finite number or null")

    return refuse


def _json_int(label: str) -> Any:
    def parse(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > MAX_INT_DIGITS:
            raise _too_many_digits(label, digits)
        return int(text)

    return parse


def _measure(value: Any, label: str) -> None:
    """Count the values and the nesting of a parsed JSON document against the YAML limits."""
    count = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ConfigError(f"{label}: JSON document has more than {MAX_YAML_NODES} values (limit)")
        if isinstance(current, (dict, list)):
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{label}: JSON nested more than {MAX_YAML_DEPTH} levels deep (limit): flatten the structure"
                )
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth + 1) for child in children)


def parse_json(text: str, label: str, *, allow_nan: bool = False) -> Any:
    """Parse JSON text within the limits: size, values, nesting, integer digits, and no ``NaN``/``Infinity``.

    Args:
        text: The JSON text.
        label: What the text is, for messages (a file name).
        allow_nan: Accept ``NaN`` and ``Infinity`` (for another program's output that reports metrics, never
            for a file that enhtrain acts on).

    Returns:
        The value.

    Raises:
        ConfigError: If the text is not JSON or passes a limit.
    """
    _check_size(text, label, "JSON")
    try:
        refuse = None if allow_nan else _refuse_constant(label)
        value = json.loads(text, parse_constant=refuse, parse_int=_json_int(label))
    except ConfigError:
        raise
    except RecursionError as err:
        raise ConfigError(
            f"{label}: JSON nested more than {MAX_YAML_DEPTH} levels deep (limit): flatten the structure"
        ) from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{label} is not valid JSON (line {err.lineno}, column {err.colno})") from err
    except ValueError as err:
        raise ConfigError(f"{label} is not valid JSON ({' '.join(str(err).split())})") from err
    _measure(value, label)
    if isinstance(value, float) and not math.isfinite(value) and not allow_nan:
        raise ConfigError(f"{label}: a JSON number out of range: write a finite number")
    return value


def read_text(
    path: str | Path,
    label: str | None = None,
    *,
    what: str = "config file",
    max_bytes: int = MAX_DOCUMENT_BYTES,
    follow_symlinks: bool = True,
    give: str = "a YAML file",
) -> str:
    """Read a file as UTF-8 text, refusing anything but a regular file of at most ``max_bytes``.

    At most one byte more than the limit is read, so a device such as ``/dev/zero`` or a growing file cannot
    exhaust memory, and a named pipe is opened without blocking and refused.

    Args:
        path: The file.
        label: How messages name the file; ``'<path>'`` by default.
        what: What the file is, for messages (``config file``, ``run file``).
        max_bytes: The largest size accepted.
        follow_symlinks: When false, a symbolic link is refused rather than followed (for files inside a run
            directory, which must not lead out of it).
        give: What the fix in a message asks for instead of a directory or a device.

    Raises:
        ConfigError: If the file is missing, a directory, a link (with ``follow_symlinks=False``), not a
            regular file, too large, unreadable, or not UTF-8 text.
    """
    path = Path(path)
    name = f"{what} {label}" if label is not None else f"{what} '{path}'"
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as err:
        raise ConfigError(f"{name} not found: check the path") from err
    except IsADirectoryError as err:
        raise ConfigError(f"{name} is a directory: give {give}") from err
    except OSError as err:
        if not follow_symlinks and os.path.islink(path):
            raise ConfigError(f"{name} is a symbolic link: it must be a regular file; remove the link") from err
        raise ConfigError(f"{name} cannot be read: {err.strerror or err}") from err
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{name} is a directory: give {give}")
        raise ConfigError(f"{name} is not a regular file (a device, pipe or socket): give {give}")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as err:
            raise ConfigError(f"{name} cannot be read: {err.strerror or err}") from err
    if len(data) > max_bytes:
        limit = f"{max_bytes // (1024 * 1024)} MiB" if max_bytes >= 1024 * 1024 else f"{max_bytes} bytes"
        small = "a config is small; " if what == "config file" else ""
        raise ConfigError(f"{name} is larger than {limit} (limit): {small}check that this is the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{name} cannot be read: it is not UTF-8 text ({err.reason})") from err


def read_yaml(path: str | Path, label: str | None = None, *, what: str = "config file",
              follow_symlinks: bool = True) -> Any:
    """Read and parse a YAML file within the limits (see :func:`read_text` and :func:`parse_yaml`)."""
    text = read_text(path, label, what=what, follow_symlinks=follow_symlinks, give="a YAML file")
    return parse_yaml(text, label or str(path))


def read_json(path: str | Path, label: str | None = None, *, what: str = "run file",
              follow_symlinks: bool = True) -> Any:
    """Read and parse a JSON file within the limits (see :func:`read_text` and :func:`parse_json`)."""
    text = read_text(path, label, what=what, follow_symlinks=follow_symlinks, give="a JSON file")
    return parse_json(text, label or str(path))
