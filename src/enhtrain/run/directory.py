"""One directory per run: ``<root_dir>/<name>/<version>/`` with its config, metadata, logs and checkpoints."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from enhtrain.errors import RunDirError

__all__ = ["RunDir", "create_run_dir", "latest_version", "list_versions", "open_existing"]

_VERSION = re.compile(r"^version_(\d+)$")


@dataclass(frozen=True)
class RunDir:
    """A run's directory.

    Attributes:
        path: ``<root>/<name>/<version>``.
        name: The run's name.
        version: The run's version (``version_N`` unless named in the config).
        created: Whether this process created it (and so may remove it if the run never starts).
    """

    path: Path
    name: str
    version: str
    created: bool = True
    created_parents: tuple[Path, ...] = ()

    @property
    def config_path(self) -> Path:
        """``config.yaml``: the composed, resolved config with secrets masked."""
        return self.path / "config.yaml"

    @property
    def metadata_path(self) -> Path:
        """``metadata.json``: versions, git state, host, command, status and final metrics."""
        return self.path / "metadata.json"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``."""
        return self.path / "checkpoints"

    @property
    def logs(self) -> Path:
        """``logs/``: one folder per logger."""
        return self.path / "logs"

    @property
    def profiler(self) -> Path:
        """``profiler/``: profiler reports."""
        return self.path / "profiler"

    def remove_if_created(self) -> None:
        """Remove the directory if this process created it (a run that failed before it started)."""
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            for parent in self.created_parents:
                try:
                    parent.rmdir()  # only succeeds if nothing else was created there meanwhile
                except OSError:
                    break


def list_versions(name_dir: Path) -> list[str]:
    """Return the versions under a run name's folder, numbered ``version_N`` first in order, then others."""
    if not name_dir.is_dir():
        return []
    numbered, named = [], []
    for child in name_dir.iterdir():
        if not child.is_dir() or child.name.startswith("."):
            continue
        match = _VERSION.match(child.name)
        if match:
            numbered.append((int(match.group(1)), child.name))
        else:
            named.append(child.name)
    return [n for _, n in sorted(numbered)] + sorted(named)


def latest_version(name_dir: Path) -> str | None:
    """Return the most recently started version (by ``metadata.json`` time, else directory time)."""
    versions = list_versions(name_dir)
    if not versions:
        return None

    def started(version: str) -> float:
        meta = name_dir / version / "metadata.json"
        target = meta if meta.exists() else name_dir / version
        return target.stat().st_mtime

    return max(versions, key=started)


def _mkdir(path: Path, root: Path) -> bool:
    try:
        path.mkdir()
        return True
    except FileExistsError:
        return False
    except OSError as err:
        raise RunDirError(
            f"cannot create run directory '{path}': {err.strerror or err}; "
            f"set experiment.root_dir to a writable folder (now '{root}')"
        ) from err


def create_run_dir(root: str | Path, name: str, version: str | None = None) -> RunDir:
    """Create a new run directory atomically.

    With ``version=None`` the next free ``version_N`` is taken; ``mkdir`` either creates a version or fails
    because another process took it, so runs started at once never share one.

    Raises:
        RunDirError: If the root cannot be written, or a named version already exists.
    """
    root = Path(root)
    name_dir = root / name
    missing = [p for p in (name_dir, *name_dir.parents) if not p.exists()]
    try:
        name_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(
            f"cannot create '{name_dir}': {err.strerror or err}; set experiment.root_dir to a writable folder"
        ) from err
    if version is not None:
        path = name_dir / version
        if not _mkdir(path, root):
            raise RunDirError(
                f"run '{path}' already exists: choose another experiment.version, leave it null for the next "
                "free one, or set experiment.resume to continue it"
            )
        run = RunDir(path, name, version, created_parents=tuple(missing))
    else:
        existing = [int(m.group(1)) for v in list_versions(name_dir) if (m := _VERSION.match(v))]
        n = max(existing, default=-1) + 1
        while not _mkdir(name_dir / f"version_{n}", root):
            n += 1
        run = RunDir(name_dir / f"version_{n}", name, f"version_{n}", created_parents=tuple(missing))
    # checkpoints/, logs/ and profiler/ are made by whatever first writes into them: a run that saves no
    # checkpoint has no empty checkpoints/ folder.
    return run


def open_existing(path: str | Path) -> RunDir:
    """Return a :class:`RunDir` for an existing run directory (one this process did not create)."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory '{path}' not found")
    return RunDir(path, path.parent.name, path.name, created=False)

