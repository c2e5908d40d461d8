"""``checkpoints/manifest.json``: every checkpoint of a run with its sha256, step, epoch and metrics.

A single-file checkpoint is listed with its sha256. A sharded checkpoint (a directory) is listed with each file's
size and 128-bit XXH3 checksum (:data:`SHARD_DIGEST`), and one sha256 over that list: a sharded save writes
hundreds of megabytes per rank, which XXH3 reads at memory speed while sha256 would add a tenth to the save.
Entries of sharded checkpoints whose files carry a sha256 are still verified.

The manifest is validated when it is read (see :func:`manifest_schema`): every entry names a plain file in the
``checkpoints/`` folder, and every field has its type. A manifest that is not valid JSON, or that fails the
schema, is reported as a whole (:class:`ManifestError`) and never followed.

This module imports neither torch nor, until a file is read, pydantic, so ``enhtrain ckpt list/verify`` stay
light.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_json
from enhtrain.documents import parse_json, read_text
from enhtrain.errors import CheckpointError, ConfigError, EnhtrainError, MalformedFileError
from enhtrain.security import inside, is_plain_name

__all__ = [
    "MANIFEST_FIX",
    "MANIFEST_NAME",
    "SHARD_DIGEST",
    "Manifest",
    "ManifestError",
    "file_digests",
    "manifest_schema",
    "new_digest",
    "overall_digest",
    "read_json_object",
    "sha256_file",
    "shard_file_digest",
    "verify_directory",
]

MANIFEST_NAME = "manifest.json"
"""File name of the manifest in a run's ``checkpoints/`` folder."""
MANIFEST_FIX = "repair or remove the file (enhtrain ckpt verify checks the checkpoints against it)"
"""The fix named by every message about a malformed manifest."""
SHARD_DIGEST = "xxh3_128"
"""The checksum of each file of a sharded checkpoint in its manifest entry (``xxhash.xxh3_128``, hex)."""
_FILE_DIGESTS = (SHARD_DIGEST, "sha256")
_CHUNK = 4 << 20
_NAME_MAX = 255
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPECTED = {
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "list_type": "expected a list",
    "missing": "missing",
    "greater_than_equal": "expected 0 or more",
    "finite_number": "expected a finite number",
}


class ManifestError(MalformedFileError, CheckpointError):
    """A ``manifest.json`` that is not valid JSON or does not match the manifest's schema.

    Its fix, unless the raiser names another, is :data:`MANIFEST_FIX`.
    """

    default_fix = MANIFEST_FIX


def new_digest(algorithm: str) -> Any:
    """Return an empty hash object of ``algorithm``: :data:`SHARD_DIGEST` or ``"sha256"``."""
    if algorithm == SHARD_DIGEST:
        import xxhash

        return xxhash.xxh3_128()
    return hashlib.sha256()


def _file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file with ``algorithm``, read through one reused buffer."""
    digest = new_digest(algorithm)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while got := handle.readinto(buffer):
            digest.update(view[:got])
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Return the sha256 hex digest of a file."""
    return _file_digest(path, "sha256")


def shard_file_digest(path: str | Path) -> str:
    """Return the :data:`SHARD_DIGEST` hex digest of a file of a sharded checkpoint."""
    return _file_digest(path, SHARD_DIGEST)


def file_digests(root: str | Path, names: list[str], *, threads: int = 4) -> dict[str, dict[str, Any]]:
    """Checksum files of a sharded checkpoint, several at once (``xxhash`` releases the GIL on large buffers).

    Args:
        root: The checkpoint directory.
        names: Paths relative to ``root``.
        threads: How many files to read at the same time.

    Returns:
        Each name to its manifest listing, ``{"size": bytes, "xxh3_128": hex digest}``.
    """
    root = Path(root)

    def one(name: str) -> tuple[str, dict[str, Any]]:
        path = root / name
        return name, {"size": path.stat().st_size, SHARD_DIGEST: shard_file_digest(path)}

    if len(names) <= 1 or threads <= 1:
        return dict(map(one, names))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, len(names)), thread_name_prefix="enhtrain-hash") as pool:
        return dict(pool.map(one, names))


def _algorithm(listing: dict[str, Any]) -> str:
    """The digest a file's manifest listing carries (the schema allows exactly one)."""
    return next(key for key in _FILE_DIGESTS if isinstance(listing.get(key), str))


def overall_digest(files: dict[str, Any]) -> str:
    """The one sha256 of a sharded checkpoint: over each file's name, size and digest, in name order.

    A sha256 is written as its hex digest, any other digest as ``name:hex``.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        algorithm = _algorithm(files[name])
        value = files[name][algorithm]
        shown = value if algorithm == "sha256" else f"{algorithm}:{value}"
        digest.update(f"{name}\t{files[name]['size']}\t{shown}\n".encode())
    return digest.hexdigest()


def _tree(root: Path) -> tuple[set[str], list[str]]:
    """The regular files under ``root`` as relative POSIX paths, and every entry that is neither file nor folder."""
    import os

    found: set[str] = set()
    odd: list[str] = []
    for base, dirs, names in os.walk(root, followlinks=False):
        rel = Path(base).relative_to(root)
        for name in list(dirs):
            if (Path(base) / name).is_symlink():
                odd.append((rel / name).as_posix())
                dirs.remove(name)
        for name in names:
            path = Path(base) / name
            if path.is_symlink() or not path.is_file():
                odd.append((rel / name).as_posix())
            else:
                found.add((rel / name).as_posix())
    return found, odd


def verify_directory(target: str | Path, entry: dict[str, Any]) -> str | None:
    """Check a sharded checkpoint directory against its manifest entry.

    Every file the entry lists must be there with its size and digest; a file or link the entry does not list
    is a problem too, and so is an entry whose overall digest does not match its files.

    Returns:
        ``None`` if the directory matches; otherwise the first reason it does not (and how many more).
    """
    target = Path(target)
    files = entry.get("files") or {}
    if target.is_symlink() or not target.is_dir():
        return "directory is missing" if not target.exists() else "not a directory (the manifest lists a sharded one)"
    if overall_digest(files) != entry.get("sha256"):
        return "the manifest's sha256 does not match the files it lists (manifest edited?)"
    try:
        found, odd = _tree(target)
        problems = [f"'{name}' is a link or special file, not part of the checkpoint" for name in odd]
        problems += [f"file '{name}' is missing" for name in sorted(set(files) - found)]
        problems += [f"extra file '{name}' is not in the manifest" for name in sorted(found - set(files))]
        for name in sorted(set(files) & found):
            size = (target / name).stat().st_size
            if size != files[name]["size"]:
                problems.append(f"file '{name}': size {size} differs from the manifest's {files[name]['size']}")
                continue
            algorithm = _algorithm(files[name])
            if _file_digest(target / name, algorithm) != files[name][algorithm]:
                problems.append(f"file '{name}': {algorithm} differs from the manifest (corrupt or modified)")
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def _relative(files: dict[str, Any] | None) -> dict[str, Any] | None:
    for name in files or {}:
        parts = name.split("/")
        if not all(is_plain_name(part) and len(part.encode()) <= _NAME_MAX for part in parts):
            raise ValueError(f"expected a relative path of plain names inside the checkpoint, got {_shown(name)}")
    return files


def _plain(value: str | None) -> str | None:
    if value is not None and (not is_plain_name(value) or value == MANIFEST_NAME or len(value.encode()) > _NAME_MAX):
        raise ValueError(f"expected a plain checkpoint file name in checkpoints/, got {_shown(value)}")
    return value


@functools.cache
def manifest_schema() -> type[Any]:
    """Return the pydantic model of ``manifest.json`` (built on first use, so that importing is cheap).

    The top level has ``checkpoints`` (a list of entries, oldest first), ``best``, ``last`` and ``newest``
    (file names or ``null``), ``monitor`` (a metric name or ``null``) and ``mode`` (``min``, ``max`` or
    ``null``). An entry has ``file`` (a plain file name in ``checkpoints/``), ``sha256`` (a string), ``size``
    (an integer, 0 or more), and optionally ``step`` and ``epoch`` (integers), ``metrics`` (names to numbers
    or ``null``) and ``time`` (a string). A sharded checkpoint (a directory) also has ``files`` (each relative
    path to its ``size`` and one digest, ``xxh3_128`` or ``sha256``; the entry's own ``sha256`` is
    :func:`overall_digest` of them and its ``size`` their sum), ``world_size`` (an integer) and ``strategy`` (a
    string). Types are strict (``"3"`` is not an integer); other keys are kept.

    Returns:
        The model class; ``model_validate`` raises ``pydantic.ValidationError`` on a malformed manifest.
    """
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

    class FileDigest(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")

        size: int = Field(ge=0)
        xxh3_128: str | None = None
        sha256: str | None = None

        @model_validator(mode="after")
        def _one_digest(self) -> FileDigest:
            if (self.xxh3_128 is None) == (self.sha256 is None):
                raise ValueError("expected one digest for the file, xxh3_128 or sha256")
            return self

    class ManifestEntry(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")

        file: str
        sha256: str
        size: int = Field(ge=0)
        step: int | None = None
        epoch: int | None = None
        metrics: dict[str, float | None] = Field(default_factory=dict)
        time: str | None = None
        files: dict[str, FileDigest] | None = None
        world_size: int | None = Field(default=None, ge=1)
        strategy: str | None = None

        _file = field_validator("file")(_plain)
        _files = field_validator("files")(_relative)

    class ManifestFile(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")

        checkpoints: list[ManifestEntry] = Field(default_factory=list)
        best: str | None = None
        last: str | None = None
        newest: str | None = None
        monitor: str | None = None
        mode: Literal["min", "max"] | None = None

        _names = field_validator("best", "last", "newest")(_plain)

    return ManifestFile


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error.get("msg", "")))
    expected = _EXPECTED.get(kind)
    if expected is None:
        expected = str(error.get("msg", "invalid value")).replace("Input should be", "expected")
    if kind == "missing":
        return expected
    return f"{expected}, got {_shown(error.get('input'))}"


def read_json_object(
    path: str | Path,
    validate: Callable[[Any], Any],
    *,
    error: Callable[[str], EnhtrainError],
) -> dict[str, Any] | None:
    """Read a JSON file of a run and check it against its schema.

    Args:
        path: The file.
        validate: The schema's check (a pydantic model's ``model_validate``).
        error: Builds the exception to raise from what is wrong (it adds the fix).

    Returns:
        The file's object as read (unknown keys kept), or ``None`` if there is no file.

    Raises:
        EnhtrainError: From ``error``, with one line naming the file and the field, if the file cannot be read,
            is not UTF-8 JSON, is not an object, or fails the schema.
    """
    from pydantic import ValidationError

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = parse_json(read_text(path, str(path), what="run file", follow_symlinks=False, give="a JSON file"),
                          str(path))
    except ConfigError as err:
        raise error(str(err).removeprefix("run file ")) from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object at the top level, got {_shown(data)}")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{path} is not valid JSON (a string escapes a lone UTF-16 surrogate)") from None
    except RecursionError:
        raise error(f"{path} is not valid JSON (nested too deeply)") from None
    try:
        validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        first = errors[0]
        raise error(f"{path}: {_field(tuple(first.get('loc', ())))}: {_problem(dict(first))}{more}") from None
    return data


class Manifest:
    """The manifest of one run's ``checkpoints/`` folder.

    A missing ``manifest.json`` is an empty manifest.

    Args:
        directory: The ``checkpoints/`` folder.
        strict: Raise :class:`ManifestError` if the file is malformed. Otherwise (what a run writing its own
            manifest wants) a malformed file reads as an empty manifest and :attr:`problem` says why.

    Attributes:
        problem: Why the file was ignored (``strict=False`` only), or ``None``.

    Raises:
        ManifestError: With ``strict``, naming the file, the field and the fix.
    """

    def __init__(self, directory: str | Path, *, strict: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_NAME
        self.data: dict[str, Any] = {"checkpoints": [], "best": None, "last": None}
        self.problem: str | None = None
        try:
            loaded = read_json_object(self.path, manifest_schema().model_validate, error=ManifestError)
        except ManifestError as err:
            if strict:
                raise
            self.problem = str(err)
            loaded = None
        if loaded is not None:
            self.data.update(loaded)
            self.data.setdefault("checkpoints", [])

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The checkpoint entries, oldest first."""
        return self.data["checkpoints"]

    def entry(self, filename: str) -> dict[str, Any] | None:
        """Return the entry of a checkpoint file name, if any."""
        return next((e for e in self.entries if e["file"] == filename), None)

    def add(self, entry: dict[str, Any]) -> None:
        """Add or replace the entry for ``entry["file"]``.

        Raises:
            ValueError: If ``entry["file"]`` is not a plain file name.
        """
        if not is_plain_name(entry.get("file")):
            raise ValueError(f"a manifest entry names a plain file in checkpoints/, got {entry.get('file')!r}")
        self.data["checkpoints"] = [e for e in self.entries if e["file"] != entry["file"]] + [entry]

    def remove(self, filename: str) -> None:
        """Drop the entry of a deleted checkpoint."""
        self.data["checkpoints"] = [e for e in self.entries if e["file"] != filename]
        for key in ("best", "last"):
            if self.data.get(key) == filename:
                self.data[key] = None

    def save(self) -> None:
        """Rewrite ``manifest.json`` atomically, through the path gate."""
        atomic_write_json(inside(self.path, self.path.parent, what="manifest"), self.data)

    def verify(self, filename: str) -> str | None:
        """Check a checkpoint (a file, or a sharded checkpoint's directory) against its entry.

        Returns:
            ``None`` if the file exists and its size and sha256 match (for a directory: see
            :func:`verify_directory`); otherwise the reason it does not.
        """
        entry = self.entry(filename)
        if entry is None:
            return "not in the manifest"
        target = self.directory / filename
        if entry.get("files") is not None:
            return verify_directory(target, entry)
        try:
            if not target.is_file():
                return "file is missing"
            size = target.stat().st_size
            if size != entry.get("size"):
                return f"size {size} differs from the manifest's {entry.get('size')} (truncated?)"
            if sha256_file(target) != entry.get("sha256"):
                return "sha256 differs from the manifest (corrupt or modified)"
        except OSError as err:
            return f"cannot be read ({err.strerror or err})"
        return None
