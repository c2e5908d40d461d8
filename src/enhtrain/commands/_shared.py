"""What the ``runs`` and ``ckpt`` commands share: their argument parser, finding a run, its status, and
the table of its checkpoints.

Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from enhtrain._io import TMP_PREFIX
from enhtrain.checkpoints.manifest import MANIFEST_NAME, Manifest
from enhtrain.errors import ConfigError, one_line, quote
from enhtrain.run.directory import latest_version

__all__ = [
    "DEFAULT_ROOT",
    "ArgParser",
    "check_launcher_variables",
    "checkpoint_rows",
    "format_checkpoints",
    "resolve_run",
    "run_status",
    "safe_is",
    "warn_about_plugins",
]

DEFAULT_ROOT = "runs"
"""Where ``name/version`` run names are looked up."""

_SUFFIX = ".ckpt"


class ArgParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors become a one-line :class:`~enhtrain.errors.ConfigError`."""

    def error(self, message: str) -> NoReturn:
        """Raise the error instead of printing usage and exiting.

        Args:
            message: argparse's message.

        Raises:
            ConfigError: Always, naming the command.
        """
        raise ConfigError(f"{self.prog}: {message}")


def safe_is(path: Path, test: str = "is_dir") -> bool:
    """``path.is_dir()`` (or ``is_file``, ``exists``), ``False`` for a name the system refuses.

    ``pathlib`` answers ``False`` for a missing path but raises for a name too long or a loop of links; a
    command that looks a name up reports it as not found instead.
    """
    try:
        return bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


def _is_run(path: Path) -> bool:
    return safe_is(path) and any(
        safe_is(path / name, "exists") for name in ("metadata.json", "checkpoints", "config.yaml")
    )


def resolve_run(spec: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """Return the run directory that ``spec`` names.

    Args:
        spec: A run directory, its ``checkpoints/`` folder, ``name/version`` under ``root``, or a run name
            alone (``name`` under ``root``, or the folder of a name's versions), which means its latest version:
            the one whose ``metadata.json`` changed last.
        root: Where ``name/version`` and ``name`` are looked up.

    Raises:
        ConfigError: If no run directory matches.
    """
    candidates = [Path(spec), Path(root) / spec]
    for path in candidates:
        if path.name == "checkpoints" and safe_is(path / MANIFEST_NAME, "is_file"):
            path = path.parent
        if _is_run(path):
            return path
    for path in candidates:
        latest = latest_version(path) if safe_is(path) else None
        if latest is not None and _is_run(path / latest):
            return path / latest
    raise ConfigError(
        f"run '{spec}' not found: give a run directory, name/version under ./{root}, or a run name for its latest "
        "version"
    )


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def run_status(meta: dict[str, Any]) -> str:
    """Return the run's status; a ``running`` run whose process is gone from this host shows as ``killed``."""
    status = str(meta.get("status") or "unknown")
    if status == "running" and meta.get("host") == socket.gethostname() and not _alive(meta.get("pid")):
        return "killed"
    return status


def _size(num: Any) -> str:
    if not isinstance(num, (int, float)) or isinstance(num, bool):
        return "-"
    try:
        value = float(num)
    except OverflowError:
        return f"{num} B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def checkpoint_rows(checkpoints_dir: Path, *, verify: bool) -> list[dict[str, Any]]:
    """Return one row per checkpoint: the manifest's entries, oldest first, then unlisted ``.ckpt`` files.

    Args:
        checkpoints_dir: A run's ``checkpoints/`` folder.
        verify: Whether to check each file's size and digest (``problem`` is ``None`` when it matches).

    Raises:
        ManifestError: If ``manifest.json`` is malformed; it is reported, never followed.
    """
    manifest = Manifest(checkpoints_dir, strict=True)
    monitor = manifest.data.get("monitor")
    rows: list[dict[str, Any]] = []
    for entry in manifest.entries:
        name = entry["file"]
        metrics = entry.get("metrics") or {}
        rows.append(
            {
                "file": name,
                "step": entry.get("step"),
                "epoch": entry.get("epoch"),
                "monitor": monitor,
                "value": metrics.get(monitor) if monitor else None,
                "size": entry.get("size"),
                "files": len(entry["files"]) if isinstance(entry.get("files"), dict) else None,
                "time": entry.get("time"),
                "best": manifest.data.get("best") == name,
                "last": manifest.data.get("last") == name,
                "problem": manifest.verify(name) if verify else None,
            }
        )
    listed = {row["file"] for row in rows}
    if checkpoints_dir.is_dir():
        for path in sorted(checkpoints_dir.glob("*" + _SUFFIX)):
            if path.name not in listed and path.is_file() and not path.name.startswith(TMP_PREFIX):
                try:
                    size: int | None = path.stat().st_size
                except OSError:
                    size = None
                rows.append(
                    {
                        "file": path.name,
                        "step": None,
                        "epoch": None,
                        "monitor": monitor,
                        "value": None,
                        "size": size,
                        "files": None,
                        "time": None,
                        "best": False,
                        "last": False,
                        "problem": "not in the manifest",
                    }
                )
    return rows


def format_checkpoints(rows: list[dict[str, Any]], *, verified: bool) -> str:
    """Format checkpoint rows as a table."""
    if not rows:
        return "no checkpoints\n"
    monitor = next((r["monitor"] for r in rows if r["monitor"]), None)
    header = ["FILE", "STEP", "EPOCH", monitor or "METRIC", "SIZE", "SAVED", "CHECK" if verified else "NOTE"]
    table = []
    for row in rows:
        marks = [m for m in ("best", "last") if row[m]]
        value = row["value"]
        check = "ok" if row["problem"] is None else row["problem"]
        table.append(
            [
                row["file"] + (f" ({', '.join(marks)})" if marks else "")
                + (f" [sharded, {row['files']} files]" if row.get("files") is not None else ""),
                "-" if row["step"] is None else str(row["step"]),
                "-" if row["epoch"] is None else str(row["epoch"]),
                "-" if not isinstance(value, (int, float)) else f"{value:.6g}",
                _size(row["size"]),
                (row["time"] or "-").replace("+00:00", "Z"),
                check if verified or row["problem"] == "not in the manifest" else "",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in [header, *table]
    )


# The launcher's variables that Lightning and enhtrain read as whole numbers, some as Lightning is imported.
_LAUNCHER_NUMBERS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                     "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NTASKS", "JSM_NAMESPACE_RANK")
_READ_ON_IMPORT = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")  # even an empty one is converted
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")


def check_launcher_variables(environ: Mapping[str, str]) -> None:
    """Refuse a rank or size variable that is not a plain whole number, before Lightning converts it.

    Lightning reads ``RANK`` and ``LOCAL_RANK`` as it is imported, and Python's ``int`` takes ``'²'`` for a digit
    yet refuses it, as it refuses more than 4300 digits: either would end the command with a traceback.

    Args:
        environ: The environment variables.

    Raises:
        ConfigError: Naming the variable.
    """
    for name in _LAUNCHER_NUMBERS:
        value = environ.get(name)
        if value is None or (not value.strip() and name not in _READ_ON_IMPORT):
            continue
        if not _WHOLE_NUMBER.fullmatch(value.strip()):
            raise ConfigError(
                f"environment variable {name}: {quote(value)} is not a whole number of at most 9 digits: a launcher "
                f"(torchrun, SLURM) sets it; unset {name} to run a single process"
            )


def warn_about_plugins() -> None:
    """Print one warning line per broken plugin, and per plugin variable that names no installed plugin.

    Commands that compose a config print these first and go on without the broken plugins; under a distributed
    launcher only global rank 0 prints them.
    """
    from enhtrain import plugins

    lines = plugins.warnings() + [failure.message() for failure in plugins.failures()]
    if not lines:
        return
    from enhtrain.run.session import global_rank

    if global_rank() == 0:
        for line in lines:
            sys.stderr.write(f"enhtrain: warning: {one_line(line)}\n")
