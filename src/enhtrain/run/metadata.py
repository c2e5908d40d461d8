"""``metadata.json``: what ran, where, with which versions, and how it ended."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_json

__all__ = ["config_hash", "git_state", "package_versions", "read_metadata", "start_metadata", "update_metadata"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _program() -> str:
    name = Path(sys.argv[0]).name
    return "python -m enhtrain" if name == "__main__.py" else name


def package_versions() -> dict[str, str | None]:
    """Return the versions of enhtrain, lightning, torch and Python."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("enhtrain", "lightning", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """Return the git commit and dirty flag of the working directory, or ``None`` values outside a repo."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
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
) -> dict[str, Any]:
    """Write the initial ``metadata.json`` (status ``running``) and return it."""
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
    _write(path, data)
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(path, {k: v for k, v in data.items() if not k.startswith("_")})


def update_metadata(path: Path, data: dict[str, Any], **changes: Any) -> None:
    """Apply ``changes`` to ``data``, fill end time and duration when the status is final, and rewrite."""
    data.update(changes)
    if data.get("status") in ("completed", "failed", "interrupted"):
        data["end_time"] = _now()
        if "_start_monotonic" in data:
            data["duration_s"] = round(time.monotonic() - data["_start_monotonic"], 3)
    _write(path, data)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read a run's ``metadata.json`` (an empty dict if it is missing or unreadable)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
