"""``metadata.json``: what ran, where, with which versions, and how it ended."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_json
from enhtrain.checkpoints.manifest import read_json_object
from enhtrain.errors import MalformedFileError, RunDirError
from enhtrain.security import inside

__all__ = [
    "METADATA_FIX",
    "MetadataError",
    "config_hash",
    "git_state",
    "metadata_schema",
    "package_versions",
    "prefetch_git_state",
    "read_metadata",
    "start_metadata",
    "update_metadata",
]

METADATA_FIX = "repair or remove the file (it only describes the run; checkpoints and resuming work without it)"
"""The fix named by every message about a malformed ``metadata.json``."""


class MetadataError(MalformedFileError, RunDirError):
    """A ``metadata.json`` that is not valid JSON or does not match the metadata's schema.

    Its fix, unless the raiser names another, is :data:`METADATA_FIX`.
    """

    default_fix = METADATA_FIX


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _program() -> str:
    name = Path(sys.argv[0]).name
    return "python -m enhtrain" if name == "__main__.py" else name


def package_versions() -> dict[str, str | None]:
    """Return the versions of enhtrain, lightning, torch and Python."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> dict[str, str | None]:
    # Read once a process: the code it runs is what was installed when it imported it (a sweep's forked trials
    # inherit the versions their preloaded process read).
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("enhtrain", "lightning", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


_prefetched: dict[str, tuple[threading.Thread, dict[str, Any]]] = {}
"""Git states being read in the background, by working directory (see :func:`prefetch_git_state`)."""


def prefetch_git_state() -> None:
    """Start reading the working directory's git state in a background thread.

    ``git rev-parse`` and ``git status`` take from milliseconds to seconds (a large repository); the next
    :func:`git_state` call for the same directory takes their answer instead of running them again, so that they
    overlap with the imports and the config parsing that come before a run's ``metadata.json`` is written.
    """
    cwd = os.getcwd()
    if cwd in _prefetched:
        return
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(_read_git_state(cwd)), name="enhtrain-git-state", daemon=True
    )
    _prefetched[cwd] = (thread, result)
    thread.start()


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """Return the git commit and dirty flag of the working directory, or ``None`` values outside a repo.

    Args:
        cwd: The directory to ask about; the process's working directory when ``None``, whose state a
            :func:`prefetch_git_state` call may already have read (it is used once, and read afresh after).
    """
    if cwd is None:
        pending = _prefetched.pop(os.getcwd(), None)
        if pending is not None:
            thread, result = pending
            thread.join(timeout=_GIT_TIMEOUT_S * 2 + 1)
            if "commit" in result:
                return result
    return _read_git_state(cwd)


_GIT_TIMEOUT_S = 5


def _read_git_state(cwd: str | Path | None) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def config_hash(config: dict[str, Any]) -> str:
    """Return a sha256 of the config's canonical JSON form (secrets masked before hashing)."""
    canonical = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def start_metadata(
    path: Path,
    *,
    name: str,
    version: str,
    subcommand: str | None,
    argv: list[str],
    env: str | None,
    config: dict[str, Any],
    plugins: list[dict[str, Any]],
    tags: list[str],
    description: str | None,
    seed: int | None = None,
    resumed_from: str | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the initial ``metadata.json`` (status ``running``) in one atomic write, and return it.

    Args:
        seed: The run's seed, if set.
        resumed_from: The checkpoint the run resumes from (relative to the run's root), if it does.
        previous: The ``metadata.json`` the run had before it resumed: its resume history, first start time and
            runtime updates carry over (in the same write, so that a kill cannot leave the file without them).
    """
    data = {
        "name": name,
        "version": version,
        "status": "running",
        "subcommand": subcommand,
        "tags": tags,
        "description": description,
        "versions": package_versions(),
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "command": [_program(), *argv],
        "env": env,
        "config_hash": config_hash(config),
        "plugins": plugins,
        "start_time": _now(),
        "end_time": None,
        "duration_s": None,
        "metrics": {},
        "_start_monotonic": time.monotonic(),
    }
    if seed is not None:
        data["seed"] = seed
    if resumed_from is not None:
        previous = previous or {}
        data["resumes"] = [*previous.get("resumes", []), {"checkpoint": resumed_from, "time": data["start_time"]}]
        data["first_start_time"] = previous.get("first_start_time", previous.get("start_time"))
        if previous.get("runtime_updates"):
            data["runtime_updates"] = previous["runtime_updates"]
    _write(path, data)
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(inside(path, path.parent, what="metadata file"),
                      {k: v for k, v in data.items() if not k.startswith("_")})


def update_metadata(path: Path, data: dict[str, Any], **changes: Any) -> None:
    """Apply ``changes`` to ``data``, fill end time and duration when the status is final, and rewrite."""
    data.update(changes)
    if data.get("status") in ("completed", "stopped", "failed", "interrupted"):
        data["end_time"] = _now()
        if "_start_monotonic" in data:
            data["duration_s"] = round(time.monotonic() - data["_start_monotonic"], 3)
    _write(path, data)


@functools.cache
def metadata_schema() -> type[Any]:
    """Return the pydantic model of ``metadata.json`` (built on first use, so that importing is cheap).

    Every field is optional and may be ``null``; types are strict, and keys it does not name are kept. Strings:
    ``name``, ``version``, ``status``, ``subcommand``, ``description``, ``host``, ``platform``, ``env``,
    ``config_hash``, ``start_time``, ``end_time``, ``first_start_time``, ``error``, ``best_checkpoint``,
    ``last_checkpoint``. ``pid``, ``global_step`` and ``epoch`` are integers, ``duration_s`` a finite number,
    ``tags`` and ``command`` lists of strings, ``versions`` names to strings, ``git`` an object with
    ``commit`` (a string) and ``dirty`` (true or false), ``metrics`` names to numbers, ``plugins`` a list of
    objects, ``summary`` an object, ``resumes`` a list of objects with ``checkpoint`` and ``time``
    (strings), and ``runtime_updates`` a list of objects (``step``, ``key``, ``old``, ``new``, ``source``).

    Returns:
        The model class; ``model_validate`` raises ``pydantic.ValidationError`` on malformed metadata.
    """
    from pydantic import BaseModel, ConfigDict, Field

    class _Part(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")

    class GitState(_Part):
        commit: str | None = None
        dirty: bool | None = None

    class Resume(_Part):
        checkpoint: str | None = None
        time: str | None = None

    class RunMetadata(_Part):
        name: str | None = None
        version: str | None = None
        status: str | None = None
        subcommand: str | None = None
        tags: list[str] | None = None
        description: str | None = None
        versions: dict[str, str | None] | None = None
        git: GitState | None = None
        host: str | None = None
        platform: str | None = None
        pid: int | None = None
        command: list[str] | None = None
        env: str | None = None
        config_hash: str | None = None
        plugins: list[dict[str, Any]] | None = None
        start_time: str | None = None
        first_start_time: str | None = None
        end_time: str | None = None
        duration_s: float | None = Field(None, allow_inf_nan=False)
        metrics: dict[str, float | None] | None = None
        global_step: int | None = None
        epoch: int | None = None
        error: str | None = None
        summary: dict[str, Any] | None = None
        best_checkpoint: str | None = None
        last_checkpoint: str | None = None
        resumes: list[Resume] | None = None
        runtime_updates: list[dict[str, Any]] | None = None

    return RunMetadata


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read a run's ``metadata.json``, checked against :func:`metadata_schema`.

    Args:
        path: The file.

    Returns:
        Its object as written (unknown keys kept), or an empty dict if there is no file.

    Raises:
        MetadataError: If the file cannot be read, is not valid JSON or fails the schema; the one-line message
            names the file, the field and the fix.
    """
    data = read_json_object(path, metadata_schema().model_validate, error=MetadataError)
    return {} if data is None else data
