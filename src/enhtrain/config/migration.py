"""Config schema versions, the keys that changed between them, and the conversion of old configs.

Schema version 1 is the flat config of a plain Lightning script: ``examples/legacy.yaml``, read by
``examples/train_script.py`` (``seed``, ``model``, ``data``, ``trainer``, ``logging``, ``callbacks``). Version 2,
:data:`CURRENT_SCHEMA_VERSION`, is enhtrain's format, the one of enhtrain 0.1.0 and since. :data:`KEY_CHANGES`
lists every key that changed between two versions, and the conversion follows it.

Every config file enhtrain reads goes through :func:`migrate_layer` (from
:func:`~enhtrain.config.compose.load_with_extends`), which

- consumes the top-level ``schema_version`` key, refusing a version newer than :data:`CURRENT_SCHEMA_VERSION`;
- converts a file of schema version 1 (``schema_version: 1``, or recognised by :func:`is_legacy_script_config`)
  into an enhtrain config, with one :class:`ConfigDeprecationWarning` that lists each change and its
  ``file:line``, until the last release that reads version 1; after it, the file is a
  :class:`~enhtrain.errors.ConfigError` naming its first old key and the new key;
- renames the keys of a later schema version's entries of :data:`KEY_CHANGES` that the file still uses, with a
  warning each naming the old key, the new key and the ``file:line``, and refuses them after their last release.

:func:`migrate_text` does the same to YAML text, keeping its comments, for ``enhtrain config migrate``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import enhtrain._version as _version
from enhtrain.config.loading import KeyPath, Layer, load_yaml_text
from enhtrain.documents import MAX_INT_DIGITS
from enhtrain.errors import ConfigError, quote

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "KEY_CHANGES",
    "LEGACY_DATA_CLASS",
    "LEGACY_MODEL_CLASS",
    "LEGACY_SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "ConfigDeprecationWarning",
    "KeyChange",
    "is_legacy_script_config",
    "migrate_layer",
    "migrate_text",
]

CURRENT_SCHEMA_VERSION = 2
"""The schema version of the configs this enhtrain writes; ``schema_version: N`` with a larger N is refused."""

LEGACY_SCHEMA_VERSION = 1
"""The schema version of the flat config of a plain Lightning script (``examples/legacy.yaml``)."""

SCHEMA_VERSIONS = {
    1: "the flat config of a plain Lightning script (examples/legacy.yaml, read by examples/train_script.py): "
    "seed, model, data, trainer, logging and callbacks",
    2: "enhtrain's config, as in enhtrain 0.1.0 and since: seed_everything, model and data with class_path and "
    "init_args, trainer, and the experiment section",
}
"""Each schema version and what sets it apart. A file without ``schema_version`` is read as version 2, unless
:func:`is_legacy_script_config` recognises it as version 1."""

LEGACY_MODEL_CLASS = "enhtrain.models.MLPClassifier"
"""The model that ``examples/train_script.py`` builds from its ``model`` section."""

LEGACY_DATA_CLASS = "enhtrain.data.DatasetDataModule"
"""The data module that ``examples/train_script.py`` builds from its ``data`` section."""

_LEGACY_SEED = 42  # what train_script.py seeds with when its config has no `seed`
_LEGACY_RUN_NAME = "lightning_logs"  # CSVLogger's name when `logging.name` is missing
_LEGACY_CLASSES = {"model": LEGACY_MODEL_CLASS, "data": LEGACY_DATA_CLASS}
_LEGACY_LOGGERS = "{csv: {}, tensorboard: null}"
_SECTION_EXAMPLES = {
    "model": "lr: 0.001",
    "data": "batch_size: 32",
    "logging": "csv_dir: runs, name: my_run",
    "callbacks": "checkpoint: {monitor: val/loss}",
}
_LEGACY_FORMAT = "the legacy format of a plain Lightning script (schema version 1)"


class ConfigDeprecationWarning(DeprecationWarning):
    """A config file uses a deprecated key or the legacy script format; the message says what to write instead.

    ``enhtrain`` shows these warnings on stderr (Python hides a ``DeprecationWarning`` by default); in a
    program of your own, ``warnings.simplefilter("default", ConfigDeprecationWarning)`` shows them.
    """


@dataclass(frozen=True)
class KeyChange:
    """A key renamed or removed between two schema versions.

    A key that moves takes everything under it along. The last part of ``old`` may be ``*``, any key at that
    level; ``new`` then ends with ``*`` too, standing for the same key.

    Attributes:
        old: The old dotted key, such as ``logging.name`` or ``model.*``.
        new: The dotted key that replaces it, or ``None`` when the key was removed.
        schema: The schema version in which the key changed; a file that declares this version or a later one
            cannot use the old key.
        until: The last minor release of enhtrain (``"0.2"``) that still reads the old key, with a warning;
            later releases refuse it.
        hint: What changed, for messages.
        convert: Turns an old value into the new key's value, where the shape changed.
    """

    old: str
    new: str | None
    schema: int
    until: str
    hint: str
    convert: Callable[[Any], Any] | None = None


KEY_CHANGES: tuple[KeyChange, ...] = (
    KeyChange("seed", "seed_everything", 2, "0.2", "Lightning's name for the seed of every random generator"),
    KeyChange("model.*", "model.init_args.*", 2, "0.2",
              f"the model's arguments, under the class model.class_path names: {LEGACY_MODEL_CLASS}"),
    KeyChange("data.*", "data.init_args.*", 2, "0.2",
              f"the data module's arguments, under the class data.class_path names: {LEGACY_DATA_CLASS}"),
    KeyChange("logging.csv_dir", "experiment.root_dir", 2, "0.2", "the folder that holds the runs"),
    KeyChange("logging.name", "experiment.name", 2, "0.2", "the run's name, a folder under experiment.root_dir"),
    KeyChange("logging.*", None, 2, "0.2", "the script read only logging.csv_dir and logging.name"),
    KeyChange("callbacks.checkpoint.dirpath", None, 2, "0.2",
              "checkpoints go to the checkpoints/ folder of the run directory"),
    KeyChange("callbacks.checkpoint", "experiment.checkpoint", 2, "0.2", "the ModelCheckpoint settings"),
    KeyChange("callbacks.*", "experiment.callbacks.*", 2, "0.2",
              "callbacks keyed by registry name, such as early_stopping and lr_monitor"),
)
"""Every key renamed or removed between two schema versions: the one table that migration reads.

The entries of schema version 2 turn a version-1 config into an enhtrain config; the first entry that matches a
key applies, so a more specific entry comes before a pattern. Besides them, the conversion adds what the script
did without a key: ``seed_everything: 42`` when ``seed`` is missing, ``model.class_path`` and
``data.class_path``, and, for a ``logging`` section, ``experiment.name: lightning_logs`` when ``logging.name``
is missing and ``experiment.loggers: {csv: {}, tensorboard: null}``. No key of enhtrain's own format has
changed since enhtrain 0.1.0.
"""

# Top-level keys that only the legacy script format has, and keys that only an enhtrain config has.
_LEGACY_KEYS = ("seed", "logging")
_ENHTRAIN_KEYS = ("experiment", "seed_everything")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[\w-]+)*)\}")
# Warnings already shown, so that a file composed twice by one command warns once; cleared by Python whenever
# the warning filters change (each `enhtrain` command sets one).
_SHOWN: dict[Any, Any] = {}


@dataclass(frozen=True)
class _Use:
    """One old key that a file uses: the table entry, the key as written, and its ``file:line``."""

    change: KeyChange
    old: KeyPath
    where: str

    @property
    def new(self) -> KeyPath | None:
        return _changed_path(self.change, self.old, self.old)


@dataclass
class _Result:
    """What migrating one file did: the version-1 conversion's changes, and each later deprecated key used."""

    legacy: list[str]
    legacy_where: str | None
    legacy_until: str | None
    deprecated: list[tuple[str, str, str]]  # (warning, where, short note for `config migrate`)


# --- helpers over nested mappings (plain dicts, or ruamel's commented maps) -----------------------------------


def _line_number(text: str) -> int | None:
    """``text`` as a line number: ASCII digits only (``'²'.isdigit()`` is true, yet ``int`` refuses it), few."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def _line(label: str) -> int | None:
    head, sep, tail = label.rpartition(":")
    return _line_number(tail) if sep and head else None


def _where(sources: Mapping[KeyPath, str], path: KeyPath, label: str) -> str:
    """``file:line`` of the first line under ``path``, or the file name alone."""
    lines = [n for k, v in sources.items() if k[: len(path)] == path and (n := _line(v)) is not None]
    return f"{label}:{min(lines)}" if lines else label


def _get(data: Any, path: KeyPath) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _has(data: Any, path: KeyPath) -> bool:
    parent = _get(data, path[:-1])
    return isinstance(parent, Mapping) and path[-1] in parent


def _new_mapping(like: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return type(like)()


def _replace_key(mapping: MutableMapping[str, Any], old: str, new: str, value: Any) -> None:
    """Put ``value`` under ``new`` where ``old`` was, keeping the order of keys and, in ruamel maps, the comment."""
    position = list(mapping).index(old)
    insert = getattr(mapping, "insert", None)
    if insert is not None:
        comment = mapping.ca.items.pop(old, None)  # type: ignore[attr-defined]
        del mapping[old]
        insert(position, new, value)
        if comment is not None:
            mapping.ca.items[new] = comment  # type: ignore[attr-defined]
        return
    items = list(mapping.items())
    mapping.clear()
    for key, item in items:
        if key == old:
            mapping[new] = value
        else:
            mapping[key] = item


def _set(data: MutableMapping[str, Any], path: KeyPath, value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(data.get(key), MutableMapping):
            data[key] = _new_mapping(data)
        data = data[key]
    data[path[-1]] = value


def _leaves(value: Any, path: KeyPath) -> list[KeyPath]:
    if isinstance(value, Mapping) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, str(key)))]
    return [path]


def _rekey(sources: dict[KeyPath, str], target: Callable[[KeyPath], KeyPath | None]) -> None:
    moved = {}
    for path, label in sources.items():
        new = target(path)
        if new is not None:
            moved[new] = label
    sources.clear()
    sources.update(moved)


def _rewrite_interpolations(data: Any, target: Callable[[KeyPath], KeyPath | None], done: list[str],
                            where: Callable[[KeyPath], str] | None = None, path: KeyPath = ()) -> Any:
    """Point ``${a.b}`` references at the keys' new places; ``done`` collects each rewrite once.

    With ``where``, each note starts with the ``file:line`` of the value (at ``path``) that holds the reference.
    """

    def replace(match: re.Match[str]) -> str:
        old = tuple(match.group(1).split("."))
        new = target(old)
        if new is None or new == old:
            return match.group(0)
        text = "${" + ".".join(new) + "}"
        note = f"interpolation {match.group(0)} -> {text}"
        if where is not None:
            note = f"{where(path)}: {note}"
        if note not in done:
            done.append(note)
        return text

    if isinstance(data, str):
        rewritten = _INTERPOLATION.sub(replace, data)
        return data if rewritten == data else type(data)(rewritten)
    if isinstance(data, MutableMapping):
        for key in list(data):
            data[key] = _rewrite_interpolations(data[key], target, done, where, (*path, str(key)))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            data[index] = _rewrite_interpolations(item, target, done, where, (*path, str(index)))
    return data


def _copy_comment(old_parent: Any, old_key: Any, new_parent: Any, new_key: Any, *, blank: bool = True) -> None:
    """Give ``new_key`` the comment of ``old_key``, when both mappings are ruamel's commented maps.

    With ``blank=False`` a comment of blank lines alone is not copied: it separated the old key's section from
    the next one, and would split the new section.
    """
    old_ca, new_ca = getattr(old_parent, "ca", None), getattr(new_parent, "ca", None)
    if old_ca is None or new_ca is None or old_key not in old_ca.items:
        return
    comment = old_ca.items[old_key]
    tokens = [token for token in comment if token is not None and not isinstance(token, list)]
    text = "".join(str(getattr(token, "value", "")) for token in tokens)
    if blank or text.strip():
        new_ca.items[new_key] = comment


# --- the table of key changes --------------------------------------------------------------------------------


def _split(key: str) -> KeyPath:
    return tuple(key.split("."))


def _dotted(path: KeyPath) -> str:
    return ".".join(path)


def _matched(change: KeyChange, path: KeyPath) -> KeyPath | None:
    """The key that ``change.old`` names at ``path`` or above it, or ``None``."""
    old = _split(change.old)
    if len(path) < len(old) or any(part not in ("*", key) for part, key in zip(old, path[: len(old)], strict=True)):
        return None
    return path[: len(old)]


def _above(change: KeyChange, path: KeyPath) -> bool:
    """Whether ``path`` is a section that holds keys ``change.old`` names, such as ``model`` for ``model.*``."""
    old = _split(change.old)
    return len(path) < len(old) and all(part in ("*", key) for part, key in zip(old[: len(path)], path, strict=True))


def _changed_path(change: KeyChange, matched: KeyPath, path: KeyPath) -> KeyPath | None:
    """Where ``path`` goes, ``matched`` being the key of ``change`` at or above it; ``None`` when removed."""
    if change.new is None:
        return None
    new = tuple(matched[-1] if part == "*" else part for part in _split(change.new))
    return (*new, *path[len(matched):])


def _present(data: Any, pattern: KeyPath, prefix: KeyPath = ()) -> list[KeyPath]:
    """The keys of ``data`` that a dotted pattern (``*`` for any key) names, in the file's order."""
    if not pattern:
        return [prefix]
    if not isinstance(data, Mapping):
        return []
    head, rest = pattern[0], pattern[1:]
    keys = [str(key) for key in data] if head == "*" else [head] if head in data else []
    return [found for key in keys for found in _present(data[key], rest, (*prefix, key))]


def _legacy_changes() -> list[KeyChange]:
    """The entries of :data:`KEY_CHANGES` that turn a version-1 config into a version-2 one."""
    return [change for change in KEY_CHANGES if change.schema == LEGACY_SCHEMA_VERSION + 1]


def _later_changes() -> list[KeyChange]:
    """The entries of :data:`KEY_CHANGES` that renamed or removed keys of enhtrain's own format."""
    return [change for change in KEY_CHANGES if change.schema > LEGACY_SCHEMA_VERSION + 1]


def _legacy_lookup(path: KeyPath) -> tuple[_Use | None, KeyPath | None]:
    """The version-1 entry that applies to ``path`` (as a :class:`_Use` without location) and where it goes.

    ``(None, path)`` for a key that did not change (``trainer.*``); ``(None, None)`` for a section whose keys the
    entries move one by one (``model``, ``logging``), which has no place of its own.
    """
    changes = _legacy_changes()
    for change in changes:
        matched = _matched(change, path)
        if matched is not None:
            return _Use(change, matched, ""), _changed_path(change, matched, path)
    if any(_above(change, path) for change in changes):
        return None, None
    return None, path


def _legacy_target(path: KeyPath) -> KeyPath | None:
    """Where a key of a version-1 config goes in an enhtrain config; ``None`` when it is dropped."""
    return _legacy_lookup(path)[1]


# --- schema_version --------------------------------------------------------------------------------------------


def _take_schema_version(data: MutableMapping[str, Any], sources: dict[KeyPath, str], label: str) -> int | None:
    """Remove ``schema_version`` from the file's data and return it.

    Raises:
        ConfigError: If it is not a whole number from 1, or newer than :data:`CURRENT_SCHEMA_VERSION`.
    """
    if "schema_version" not in data:
        return None
    where = _where(sources, ("schema_version",), label)
    value = data.pop("schema_version")
    sources.pop(("schema_version",), None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value.bit_length() > 64:
        shown = str(value).lower() if isinstance(value, bool) else quote(value)
        raise ConfigError(
            f"{where}: schema_version must be a whole number from 1 to {CURRENT_SCHEMA_VERSION}, not {shown}: "
            f"write schema_version: {CURRENT_SCHEMA_VERSION}, or remove the key"
        )
    if value > CURRENT_SCHEMA_VERSION:
        raise ConfigError(
            f"{where}: schema_version {quote(value)} is newer than this enhtrain knows (enhtrain "
            f"{_version.__version__} reads schema versions 1 to {CURRENT_SCHEMA_VERSION}): upgrade enhtrain "
            "(pip install -U enhtrain)"
        )
    return value


# --- keys that a later schema version renamed or removed ------------------------------------------------------


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _installed_release() -> tuple[int, ...]:
    return _release(_version.__version__)


def _next_release(until: str) -> str:
    major, minor = _release(until)
    return f"{major}.{minor + 1}"


def _old_key_error(use: _Use, what: str, more: str = "") -> ConfigError:
    """The error for an old key: ``what`` happened to it, then the fix (write the new key, or delete it)."""
    fix = f"write '{_dotted(use.new)}' instead" if use.new else "delete the key"
    return ConfigError(f"{use.where}: '{_dotted(use.old)}' {what}: {fix}{more}")


def _refusal(use: _Use, label: str, context: str) -> ConfigError:
    """The error for an old key past its last release."""
    done = f"was renamed to '{_dotted(use.new)}'" if use.new else "was removed"
    return _old_key_error(
        use,
        f"{done} and is refused since enhtrain {_next_release(use.change.until)} ({context}{use.change.hint})",
        f", or convert the file with `enhtrain config migrate {label}`",
    )


def _not_in_version(use: _Use, version: int) -> ConfigError:
    """The error for an old key in a file that declares a schema version without it."""
    done = f"became '{_dotted(use.new)}'" if use.new else "was removed"
    return _old_key_error(
        use, f"is not a key of schema version {version} (it {done} in version {use.change.schema}: {use.change.hint})"
    )


def _apply_key_change(
    change: KeyChange, old: KeyPath, data: MutableMapping[str, Any], sources: dict[KeyPath, str], label: str,
    version: int | None, enforce_release: bool,
) -> tuple[str, str, str]:
    """Rename or drop one old key that the file uses; return the warning, its location and a short note.

    Raises:
        ConfigError: If the file declares a schema version without the key, the installed release no longer
            reads it, or the file sets the new key too.
    """
    use = _Use(change, old, _where(sources, old, label))
    if version is not None and version >= change.schema:
        raise _not_in_version(use, version)
    if enforce_release and _installed_release() > _release(change.until):
        raise _refusal(use, label, "")
    old_key, next_release = _dotted(old), _next_release(change.until)
    parent = _get(data, old[:-1])
    new = use.new
    if new is None:
        del parent[old[-1]]
        _rekey(sources, lambda path: None if path[: len(old)] == old else path)
        return (
            f"'{old_key}' at {use.where} is deprecated and ignored ({change.hint}): delete it; enhtrain "
            f"{next_release} refuses it",
            use.where,
            f"{old_key} dropped ({change.hint})",
        )
    new_key = _dotted(new)
    if _has(data, new):
        raise ConfigError(f"{use.where}: both '{old_key}' (deprecated) and '{new_key}' are set: keep only '{new_key}'")
    value = parent[old[-1]]
    if change.convert is not None:
        value = change.convert(value)
    if new[:-1] == old[:-1]:
        _replace_key(parent, old[-1], new[-1], value)
    else:
        del parent[old[-1]]
        _set(data, new, value)

    def target(path: KeyPath) -> KeyPath:
        return (*new, *path[len(old):]) if path[: len(old)] == old else path

    _rekey(sources, target)
    _rewrite_interpolations(data, target, [])
    return (
        f"'{old_key}' at {use.where} is deprecated: write '{new_key}' instead ({change.hint}); enhtrain "
        f"{next_release} refuses the old key, and `enhtrain config migrate {label}` converts the file",
        use.where,
        f"{old_key} -> {new_key}",
    )


# --- schema version 1: the flat config of examples/train_script.py ---------------------------------------------


def is_legacy_script_config(data: Mapping[str, Any]) -> bool:
    """Whether a file's data is of schema version 1, the flat format of ``examples/train_script.py``.

    It is if it says ``schema_version: 1``, or, without ``schema_version``, by its signature: a top-level
    ``seed`` or ``logging`` key (neither is a key of an enhtrain or LightningCLI config). Either way it has none of
    an enhtrain config's marks: ``experiment``, ``seed_everything``, or a ``model`` or ``data`` section with
    ``class_path`` or ``init_args``.
    """
    if _enhtrain_mark(data) is not None:
        return False
    if "schema_version" in data:
        version = data["schema_version"]
        return not isinstance(version, bool) and version == LEGACY_SCHEMA_VERSION
    return any(key in data for key in _LEGACY_KEYS)


def _enhtrain_mark(data: Mapping[str, Any]) -> str | None:
    for key in _ENHTRAIN_KEYS:
        if key in data:
            return key
    for section in ("model", "data"):
        value = data.get(section)
        if isinstance(value, Mapping):
            for key in ("class_path", "init_args"):
                if key in value:
                    return f"{section}.{key}"
    return None


def _check_legacy_file(data: Mapping[str, Any], sources: Mapping[KeyPath, str], label: str) -> None:
    """Refuse a version-1 file that also has keys of an enhtrain config.

    Raises:
        ConfigError: Naming an old key and its new key when both are set, or else the old key and the enhtrain
            key that do not go together.
    """
    mark = _enhtrain_mark(data)
    if mark is None:
        return
    for change in _legacy_changes():
        for old in _present(data, _split(change.old)):
            new = _changed_path(change, old, old)
            if new is not None and _has(data, new):
                raise ConfigError(
                    f"{_where(sources, old, label)}: both '{_dotted(old)}' (deprecated) and '{_dotted(new)}' are "
                    f"set: keep only '{_dotted(new)}'"
                )
    legacy = [key for key in _LEGACY_KEYS if key in data]
    if not legacy:
        raise ConfigError(
            f"{_where(sources, _split(mark), label)}: '{mark}' is a key of an enhtrain config, but this file says "
            f"schema_version: {LEGACY_SCHEMA_VERSION}, the legacy format of a plain Lightning script: write "
            f"schema_version: {CURRENT_SCHEMA_VERSION}, or convert the file with `enhtrain config migrate {label}`"
        )
    raise ConfigError(
        f"{_where(sources, (legacy[0],), label)}: '{legacy[0]}' is a key of {_LEGACY_FORMAT}, but this file also "
        f"has '{mark}' of an enhtrain config: remove '{legacy[0]}' (enhtrain sets seed_everything and experiment "
        "instead), or convert the whole file with `enhtrain config migrate`"
    )


def _refuse_legacy_keys(data: Mapping[str, Any], sources: Mapping[KeyPath, str], label: str, version: int) -> None:
    """Refuse the version-1 keys of a file that declares a later schema version.

    Raises:
        ConfigError: Always, naming the first such key and what became of it.
    """
    for key in _LEGACY_KEYS:
        if key not in data:
            continue
        for leaf in _leaves(data[key], (key,)):
            use, _ = _legacy_lookup(leaf)
            if use is not None:
                raise _not_in_version(_Use(use.change, use.old, _where(sources, use.old, label)), version)
        raise ConfigError(
            f"{_where(sources, (key,), label)}: '{key}' is a key of {_LEGACY_FORMAT}, not of schema version "
            f"{version}: remove it, or convert the file with `enhtrain config migrate {label}`"
        )


def _legacy_note(change: KeyChange, uses: list[_Use]) -> str:
    """One line of the conversion's list: a table entry, where the file first uses it, and the keys it moved."""
    where = uses[0].where
    if change.new is None:
        return f"{where}: {', '.join(_dotted(use.old) for use in uses)} removed ({change.hint})"
    if "*" in change.old:
        keys = ", ".join(use.old[-1] for use in uses)
        return f"{where}: {change.old} -> {change.new} ({keys})"
    return f"{where}: {change.old} -> {change.new}"


def _convert_legacy(data: MutableMapping[str, Any], sources: dict[KeyPath, str],
                    label: str) -> tuple[list[str], list[_Use]]:
    """Turn a version-1 config into an enhtrain config in place, following :data:`KEY_CHANGES`.

    Each key goes where the first matching entry of schema version 2 says; keys no entry names (``trainer``)
    stay. What the script did without a key is added: ``pl.seed_everything(cfg.get("seed", 42))``,
    ``MLPClassifier(**model)`` and ``DatasetDataModule(**data)`` as class paths, and ``CSVLogger(save_dir=
    logging.csv_dir, name=logging.get("name", "lightning_logs"))`` as the CSV logger alone.

    Returns:
        Each change, for the warning, and each old key the file uses, in the file's order.

    Raises:
        ConfigError: If a section that holds keys of the table (``model``, ``data``, ``logging``,
            ``callbacks``) is not a mapping.
    """

    def where(path: KeyPath) -> str:
        return _where(sources, path, label)

    for key, value in data.items():
        if value is not None and not isinstance(value, Mapping) and _legacy_lookup((str(key),)) == (None, None):
            example = _SECTION_EXAMPLES.get(str(key), "key: value")
            raise ConfigError(
                f"{where((str(key),))}: '{key}' must be a mapping in the legacy script format, such as "
                f"'{key}: {{{example}}}', not {type(value).__name__}: fix the value, or remove the key"
            )

    built = _new_mapping(data)
    anchors: dict[str, str | None] = {}  # each new top-level key -> the old one whose place it takes
    notes: list[Any] = []  # a line of text, or the uses of one table entry
    grouped: dict[int, list[_Use]] = {}
    uses: list[_Use] = []
    generated: dict[KeyPath, str] = {}  # a new leaf -> where its reason is

    def add(path: KeyPath, value: Any, anchor: str | None, reason: str, note: str) -> None:
        _set(built, path, value)
        anchors.setdefault(path[0], anchor)
        generated.update({leaf: reason for leaf in _leaves(value, path)})
        notes.append(f"{reason}: {note}")

    def record(found: _Use) -> None:
        use = _Use(found.change, found.old, where(found.old))
        uses.append(use)
        index = KEY_CHANGES.index(found.change)
        if index not in grouped:
            grouped[index] = []
            notes.append(grouped[index])
        grouped[index].append(use)

    def place(path: KeyPath, value: Any, parent: Any, key: Any, anchor: str) -> None:
        _set(built, path, value)
        anchors.setdefault(path[0], anchor)
        _copy_comment(parent, key, _get(built, path[:-1]) if len(path) > 1 else built, path[-1],
                      blank=path[0] == anchor)

    def prune(value: MutableMapping[str, Any], path: KeyPath, target: KeyPath, anchor: str) -> None:
        for child in list(value):
            child_path = (*path, str(child))
            use, child_target = _legacy_lookup(child_path)
            if child_target == (*target, str(child)):
                if isinstance(value[child], MutableMapping):
                    prune(value[child], child_path, child_target, anchor)
                continue
            if use is not None:
                record(use)
            if child_target is not None:
                place(child_target, value[child], value, child, anchor)
            del value[child]

    def move(parent: Any, key: Any, path: KeyPath, anchor: str) -> None:
        value = parent[key]
        use, target = _legacy_lookup(path)
        if use is None and target is None:  # a section: its keys move one by one
            for child in list(value or ()):
                move(value, child, (*path, str(child)), anchor)
            return
        if use is not None:
            record(use)
        if target is not None:
            place(target, value, parent, key, anchor)
            if isinstance(value, MutableMapping):
                prune(value, path, target, anchor)

    first = next(iter(data), None)
    if "seed" not in data:
        add(("seed_everything",), _LEGACY_SEED, first, label,
            f"seed_everything: {_LEGACY_SEED} added (the script's seed when 'seed' is not set)")
    for key in list(data):
        name = str(key)
        if name in _LEGACY_CLASSES:
            add((name, "class_path"), _LEGACY_CLASSES[name], name, where((name,)),
                f"{name}.class_path: {_LEGACY_CLASSES[name]} added (the class the script builds)")
            _copy_comment(data, key, built, name)
        move(data, key, (name,), name)
        if name == "logging":
            reason = where(("logging",))
            if not _has(built, ("experiment", "name")):
                add(("experiment", "name"), _LEGACY_RUN_NAME, name, reason,
                    f"experiment.name: {_LEGACY_RUN_NAME} added (the CSV logger's name when logging.name is not "
                    "set)")
            loggers = _new_mapping(data)
            loggers["csv"] = _new_mapping(data)
            loggers["tensorboard"] = None
            add(("experiment", "loggers"), loggers, name, reason,
                f"experiment.loggers: {_LEGACY_LOGGERS} added (the script logged to CSV only)")
    for head, anchor in anchors.items():
        if anchor is not None and head != anchor:
            _copy_comment(data, anchor, built, head)

    comments = getattr(data, "ca", None)
    if comments is not None:
        comments.items.clear()
    for key in list(data):
        del data[key]
    for key, value in built.items():
        data[key] = value
    if comments is not None:
        comments.items.update(built.ca.items)  # type: ignore[attr-defined]

    _rekey(sources, _legacy_target)
    sources.update(generated)
    lines = [note if isinstance(note, str) else _legacy_note(note[0].change, note) for note in notes]
    _rewrite_interpolations(data, _legacy_target, lines, where)
    return lines, uses


# --- one file --------------------------------------------------------------------------------------------------


def _migrate(data: MutableMapping[str, Any], sources: dict[KeyPath, str], label: str, *,
             enforce_release: bool) -> _Result:
    """Migrate one file's data and sources in place.

    Raises:
        ConfigError: On a bad ``schema_version``, a version-1 file that mixes in enhtrain keys or that the
            installed release no longer reads, version-1 keys in a file of a later version, or an old key that
            can no longer be read.
    """
    has_legacy_keys = any(key in data for key in _LEGACY_KEYS)
    version = _take_schema_version(data, sources, label)
    result = _Result([], None, None, [])
    if version == LEGACY_SCHEMA_VERSION or (version is None and has_legacy_keys):
        _check_legacy_file(data, sources, label)
        until = max((change.until for change in _legacy_changes()), key=_release, default="0.0")
        result.legacy, uses = _convert_legacy(data, sources, label)
        if enforce_release and _installed_release() > _release(until):
            if uses:
                context = f"a key of schema version {LEGACY_SCHEMA_VERSION}, the legacy format of a plain Lightning "
                context += "script; "
                raise _refusal(uses[0], label, context)
            raise ConfigError(
                f"{label}: {_LEGACY_FORMAT} is refused since enhtrain {_next_release(until)}: convert the file "
                f"with `enhtrain config migrate {label}`"
            )
        result.legacy_where = uses[0].where if uses else label
        result.legacy_until = until
        version = LEGACY_SCHEMA_VERSION + 1
    elif has_legacy_keys:
        assert version is not None
        _refuse_legacy_keys(data, sources, label, version)
    for change in _later_changes():
        for old in _present(data, _split(change.old)):
            result.deprecated.append(
                _apply_key_change(change, old, data, sources, label, version, enforce_release)
            )
    return result


def _warn(message: str, where: str) -> None:
    file, _, text = where.rpartition(":")
    line = _line_number(text)
    if line is None:
        file, line = where, 1
    # Attributed to the config file and line, so Python shows the offending line under the message.
    warnings.warn_explicit(
        message, ConfigDeprecationWarning, filename=file, lineno=line, module=__name__, registry=_SHOWN
    )


def migrate_layer(layer: Layer, path: str | Path) -> Layer:
    """Bring one loaded config file up to the current schema, warning about what it still uses.

    ``schema_version`` is removed from the layer (jsonargparse never sees it), a file of schema version 1 is
    converted with one :class:`ConfigDeprecationWarning` that lists every change and its ``file:line``, and the
    keys that a later version renamed are renamed with a warning each.

    Args:
        layer: The file's data and sources, as :func:`~enhtrain.config.loading.load_yaml_file` read them.
        path: The file, as given; sources and messages name it.

    Returns:
        The layer, changed in place.

    Raises:
        ConfigError: On a ``schema_version`` that is malformed or newer than :data:`CURRENT_SCHEMA_VERSION`, an
            old key past its last release, an old key in a file whose ``schema_version`` no longer has it, an
            old and a new key both set, or a file that mixes the legacy format with enhtrain keys.
    """
    label = str(path)
    result = _migrate(layer.data, layer.sources, label, enforce_release=True)
    if result.legacy_where is not None:
        assert result.legacy_until is not None
        _warn(
            f"{label} is in the legacy format of a plain Lightning script (schema version {LEGACY_SCHEMA_VERSION}, "
            "read by examples/train_script.py) and was read as an enhtrain config with these changes:\n"
            + "".join(f"  - {change}\n" for change in result.legacy)
            + f"enhtrain {_next_release(result.legacy_until)} refuses the old keys: convert the file once with "
            f"`enhtrain config migrate {label} -o NEW.yaml`.",
            result.legacy_where,
        )
    for message, where, _ in result.deprecated:
        _warn(message, where)
    return layer


def _round_trip_yaml() -> Any:
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return rt


def _refuse_long_integers(data: Any, label: str, path: tuple[str, ...] = (), line: int | None = None) -> None:
    """Refuse an integer past the reader's digit limit in what the round-trip parser read.

    It reads YAML 1.2, where ``0o17`` is an integer: text that the bounded reader took for a string may reach
    here as a number of any length, which Python then refuses to convert to text.
    """
    if isinstance(data, (Mapping, list)):
        items = data.items() if isinstance(data, Mapping) else enumerate(data)
        where = getattr(data, "lc", None)
        for key, value in items:
            try:
                at = (where.key(key) if isinstance(data, Mapping) else where.item(key))[0] + 1
            except (AttributeError, KeyError, TypeError, IndexError):
                at = line
            _refuse_long_integers(value, label, (*path, str(key)), at)
    elif isinstance(data, int) and not isinstance(data, bool) and data.bit_length() > MAX_INT_DIGITS * 3.33:
        key = ".".join(path) or "the document"
        raise ConfigError(
            f"{label}{'' if line is None else f':{line}'}: {key}: {quote(data)} is longer than {MAX_INT_DIGITS} "
            "digits (limit): give a smaller number"
        )


def migrate_text(text: str, label: str) -> tuple[str, list[str]]:
    """Convert the YAML text of a config file to the current schema, keeping its comments and key order.

    Unlike :func:`migrate_layer` it converts old keys whatever the installed release, since converting is how
    to get rid of them, and it sets ``schema_version`` to :data:`CURRENT_SCHEMA_VERSION`. ``extends`` entries
    are kept as written: the files they name are migrated when they are read.

    Args:
        text: The file's text.
        label: The file's name, for messages.

    Returns:
        The converted YAML text, and each change made (empty when the file was already current).

    Raises:
        ConfigError: If the text is not a config that enhtrain reads (see
            :func:`~enhtrain.config.loading.load_yaml_text`), or on the errors of :func:`migrate_layer` but the
            release check.
    """
    layer = load_yaml_text(text, label)  # the input limits, duplicate keys and tags; lines for messages
    rt = _round_trip_yaml()
    data = rt.load(text) if layer.data else None
    _refuse_long_integers(data, label)
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    result = _migrate(data, dict(layer.sources), label, enforce_release=False)
    changes = [*result.legacy, *(note for _, _, note in result.deprecated)]
    data.insert(0, "schema_version", CURRENT_SCHEMA_VERSION)
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue(), changes
