"""The ``jsonl`` logger: metrics as JSON lines, hyper-parameters as JSON."""

from __future__ import annotations

import json
import math
import os
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger

__all__ = ["JsonlLogger"]


def _to_number(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JsonlLogger(Logger):
    """Write one JSON object per :meth:`log_metrics` call to ``<log_dir>/metrics.jsonl``.

    Each line holds the metrics plus ``step``, for example
    ``{"step": 6, "val/loss": 2.31, "val/acc": 0.12, "epoch": 1}``. Hyper-parameters go to
    ``<log_dir>/hparams.json``; later calls add to the keys already written. Non-finite values are
    written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` so that every line is valid JSON.

    enhtrain passes ``log_dir`` (the run's ``logs/jsonl/``), ``name`` and ``version``.

    Args:
        log_dir: The folder the files are written to; created when missing.
        name: The run's name.
        version: The run's version.
        flush_every: Flush the file after this many lines.

    Raises:
        ValueError: If ``flush_every`` is below 1.
    """

    def __init__(self, log_dir: str, name: str, version: str, flush_every: int = 1) -> None:
        super().__init__()
        if flush_every < 1:
            raise ValueError(f"flush_every must be at least 1, got {flush_every}")
        self._log_dir = str(log_dir)
        self._name = name
        self._version = version
        self.flush_every = flush_every
        self._file: IO[str] | None = None
        self._pending = 0
        self._hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """The run's name."""
        return self._name

    @property
    def version(self) -> str:
        """The run's version."""
        return self._version

    @property
    def log_dir(self) -> str:
        """The folder holding ``metrics.jsonl`` and ``hparams.json``."""
        return self._log_dir

    @property
    def save_dir(self) -> str:
        """Same as :attr:`log_dir`."""
        return self._log_dir

    @property
    def root_dir(self) -> str:
        """Same as :attr:`log_dir`."""
        return self._log_dir

    @property
    def metrics_path(self) -> Path:
        """``<log_dir>/metrics.jsonl``."""
        return Path(self._log_dir) / "metrics.jsonl"

    @property
    def hparams_path(self) -> Path:
        """``<log_dir>/hparams.json``."""
        return Path(self._log_dir) / "hparams.json"

    def _open(self) -> IO[str]:
        if self._file is None:
            os.makedirs(self._log_dir, exist_ok=True)
            self._file = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115
        return self._file

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append one line with ``step`` and the metrics."""
        row: dict[str, Any] = {"step": step}
        row.update({key: _to_number(value) for key, value in metrics.items()})
        handle = self._open()
        handle.write(json.dumps(row, default=str) + "\n")
        self._pending += 1
        if self._pending >= self.flush_every:
            handle.flush()
            self._pending = 0

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Merge ``params`` into ``hparams.json``."""
        if isinstance(params, Namespace):
            params = vars(params)
        self._hparams.update(dict(params))
        os.makedirs(self._log_dir, exist_ok=True)
        tmp = self.hparams_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._hparams, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.hparams_path)

    @rank_zero_only
    def save(self) -> None:
        """Flush pending lines."""
        if self._file is not None:
            self._file.flush()
            self._pending = 0

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._pending = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pending"] = 0
        return state
