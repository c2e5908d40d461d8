"""Which checkpoints to keep: the best K by the monitored metric and the newest N.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enhtrain.checkpoints.manifest import Manifest
from enhtrain.errors import CheckpointError, ConfigError
from enhtrain.security import is_plain_name

__all__ = ["plan_prune", "protected_files"]

_LAST_STEM = "last"


def _data(manifest: Manifest | Mapping[str, Any]) -> tuple[Mapping[str, Any], Path | None]:
    if isinstance(manifest, Manifest):
        return manifest.data, manifest.directory
    return manifest, None


def _entries(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The entries that name a plain file: nothing else is ever kept, ranked or deleted."""
    entries = data.get("checkpoints")
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, Mapping) and is_plain_name(e.get("file"))]


def _step(entry: Mapping[str, Any]) -> tuple[int, str]:
    step = entry.get("step")
    return (step if isinstance(step, int) and not isinstance(step, bool) else 0), str(entry.get("time") or "")


def _is_last(name: str) -> bool:
    stem = name.rsplit(".", 1)[0]
    return stem == _LAST_STEM or stem.startswith(_LAST_STEM + "-v")


def protected_files(manifest: Manifest | Mapping[str, Any]) -> set[str]:
    """Return the files that pruning never deletes.

    They are ``last.ckpt`` (and Lightning's ``last-vN.ckpt``), the checkpoint ``last.ckpt`` points to (its link
    target, or the entry with the same sha256 when it is a copy), and the manifest's best checkpoint.

    Args:
        manifest: A :class:`~enhtrain.checkpoints.manifest.Manifest`, or its data.
    """
    data, directory = _data(manifest)
    entries = _entries(data)
    keep = {e["file"] for e in entries if _is_last(e["file"])}
    for key in ("last", "best"):
        if is_plain_name(data.get(key)):
            keep.add(data[key])
    for name in list(keep):
        if directory is not None:
            with contextlib.suppress(OSError):
                if (directory / name).is_symlink():
                    keep.add(Path(os.readlink(directory / name)).name)
        digest = next((e.get("sha256") for e in entries if e["file"] == name), None)
        if digest and _is_last(name):
            keep.update(e["file"] for e in entries if e.get("sha256") == digest)
    return keep


def _score(entry: Mapping[str, Any], monitor: str) -> float | None:
    metrics = entry.get("metrics")
    value = metrics.get(monitor) if isinstance(metrics, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def plan_prune(manifest: Manifest | Mapping[str, Any], keep_last: int | None, keep_best: int | None) -> list[str]:
    """Return the checkpoint files to delete so that only the best ``keep_best`` and newest ``keep_last`` remain.

    A file is kept if it is protected (see :func:`protected_files`), among the ``keep_last`` newest checkpoints
    (by step, then save time), or among the ``keep_best`` best by the manifest's monitored metric and mode.
    ``None`` for a count leaves that rule out; with both ``None`` nothing is deleted. Only files the manifest
    lists under a plain file name are considered.

    Args:
        manifest: A :class:`~enhtrain.checkpoints.manifest.Manifest`, or its data.
        keep_last: How many of the newest checkpoints to keep.
        keep_best: How many of the best checkpoints to keep.

    Returns:
        The file names to delete, oldest first.

    Raises:
        ConfigError: If a count is negative.
        CheckpointError: If ``keep_best`` is given but the manifest records no monitored metric.
    """
    for name, value in (("--keep-last", keep_last), ("--keep-best", keep_best)):
        if value is not None and value < 0:
            raise ConfigError(f"{name} must be 0 or more, got {value}")
    if keep_last is None and keep_best is None:
        return []
    data, _ = _data(manifest)
    protected = protected_files(manifest)
    entries = [e for e in _entries(data) if not _is_last(e["file"])]
    keep = set(protected)
    if keep_last is not None and keep_last > 0:
        newest = sorted(entries, key=_step, reverse=True)
        keep.update(e["file"] for e in newest[:keep_last])
    if keep_best is not None:
        monitor, mode = data.get("monitor"), data.get("mode") or "min"
        if not monitor or not isinstance(monitor, str):
            raise CheckpointError(
                "--keep-best needs a monitored metric, but this run's manifest records none "
                "(experiment.checkpoint.monitor was not set); use --keep-last"
            )
        scored = [(s, e) for e in entries if (s := _score(e, monitor)) is not None]
        scored.sort(key=lambda pair: pair[0], reverse=mode == "max")
        keep.update(e["file"] for _, e in scored[:keep_best])
    doomed = [e for e in entries if e["file"] not in keep]
    doomed.sort(key=_step)
    return [e["file"] for e in doomed]
