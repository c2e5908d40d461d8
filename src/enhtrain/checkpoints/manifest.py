"""``checkpoints/manifest.json``: every checkpoint of a run with its sha256, step, epoch and metrics.

This module does not import torch, so ``enhtrain ckpt list/verify`` stay light.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_json

__all__ = ["MANIFEST_NAME", "Manifest", "sha256_file"]

MANIFEST_NAME = "manifest.json"
"""File name of the manifest in a run's ``checkpoints/`` folder."""
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Return the sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Manifest:
    """The manifest of one run's ``checkpoints/`` folder.

    Args:
        directory: The ``checkpoints/`` folder.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_NAME
        self.data: dict[str, Any] = {"checkpoints": [], "best": None, "last": None}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = None
            if isinstance(loaded, dict) and isinstance(loaded.get("checkpoints"), list):
                self.data.update(loaded)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The checkpoint entries, oldest first."""
        return self.data["checkpoints"]

    def entry(self, filename: str) -> dict[str, Any] | None:
        """Return the entry of a checkpoint file name, if any."""
        return next((e for e in self.entries if e["file"] == filename), None)

    def add(self, entry: dict[str, Any]) -> None:
        """Add or replace the entry for ``entry["file"]``."""
        self.data["checkpoints"] = [e for e in self.entries if e["file"] != entry["file"]] + [entry]

    def remove(self, filename: str) -> None:
        """Drop the entry of a deleted checkpoint."""
        self.data["checkpoints"] = [e for e in self.entries if e["file"] != filename]
        for key in ("best", "last"):
            if self.data.get(key) == filename:
                self.data[key] = None

    def save(self) -> None:
        """Rewrite ``manifest.json`` atomically."""
        atomic_write_json(self.path, self.data)

    def verify(self, filename: str) -> str | None:
        """Check a checkpoint against its entry.

        Returns:
            ``None`` if the file exists and its size and sha256 match; otherwise the reason it does not.
        """
        entry = self.entry(filename)
        target = self.directory / filename
        if entry is None:
            return "not in the manifest"
        if not target.is_file():
            return "file is missing"
        if target.stat().st_size != entry.get("size"):
            return f"size {target.stat().st_size} differs from the manifest's {entry.get('size')} (truncated?)"
        if sha256_file(target) != entry.get("sha256"):
            return "sha256 differs from the manifest (corrupt or modified)"
        return None
