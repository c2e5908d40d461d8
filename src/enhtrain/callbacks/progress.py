"""Progress reporting: a rich bar on a terminal, plain periodic lines in logs (CI, batch jobs)."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from typing_extensions import override

__all__ = ["PlainProgressBar", "RunProgressBar", "default_progress_callbacks"]


def _format(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if key == "v_num":
            continue
        try:
            parts.append(f"{key}={float(value):.4g}")
        except (TypeError, ValueError):
            parts.append(f"{key}={value}")
    return " ".join(parts)


class PlainProgressBar(ProgressBar):
    """Prints one line every ``refresh_rate`` training steps and one per validation, for non-terminal output.

    Each epoch ends with two lines: ``validation epoch N ...`` when validation runs, then ``epoch N done in
    X.Xs ...`` with the epoch's wall time (for an epoch a resumed run joined midway, the time since it resumed).

    Args:
        refresh_rate: Print every N training steps; ``0`` prints only at epoch ends.
    """

    def __init__(self, refresh_rate: int = 50) -> None:
        super().__init__()
        self._refresh_rate = refresh_rate
        self._enabled = True
        self._epoch_start = 0.0

    @property
    def refresh_rate(self) -> int:
        """Training steps between two lines."""
        return self._refresh_rate

    @property
    @override
    def is_enabled(self) -> bool:
        return self._enabled

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    def _print(self, text: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A run resumed in the middle of an epoch gets no `on_train_epoch_start` for that epoch: its time counts
        # from here.
        self._epoch_start = time.monotonic()

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = batch_idx + 1
        if self._refresh_rate and n % self._refresh_rate == 0:
            total = self.total_train_batches
            total_text = f"/{total}" if isinstance(total, int) else ""
            metrics = _format(self.get_metrics(trainer, pl_module))
            self._print(f"epoch {trainer.current_epoch} step {n}{total_text} {metrics}".rstrip())

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.monotonic() - self._epoch_start
        metrics = _format(self.get_metrics(trainer, pl_module))
        self._print(f"epoch {trainer.current_epoch} done in {seconds:.1f}s {metrics}".rstrip())

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        if metrics:
            self._print(f"validation epoch {trainer.current_epoch} {_format(metrics)}")

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test")}
        if metrics:
            self._print(f"test {_format(metrics)}")


_RUN_VERSION = re.compile(r"^version_(\d+)$")
# The loggers whose lines (`Trainer.fit` stopped, "Seed set to", ...) are written while the bar is drawn.
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


class RunProgressBar(RichProgressBar):
    """Lightning's rich progress bar, fitted to a run: what is printed around it stays on screen.

    - The bar ends with training, so the run's summary printed at the end of ``fit`` comes after it, not under
      a copy of the bar drawn again over its last lines.
    - While the bar is drawn, Lightning's log lines go through the bar's console, above the bar, instead of
      being written where the bar redraws itself.
    - ``v_num`` is the run's version: the number of ``version_N``, or a named version whole (Lightning shows
      the last four characters of a version name: ``on_0``).

    Args:
        *args: Arguments of :class:`~lightning.pytorch.callbacks.RichProgressBar`.
        **kwargs: Keyword arguments of :class:`~lightning.pytorch.callbacks.RichProgressBar`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rerouted: list[tuple[logging.StreamHandler[Any], Any]] = []

    @override
    def _init_progress(self, trainer: pl.Trainer) -> None:
        super()._init_progress(trainer)
        # Rich's live display puts a proxy in sys.stderr that prints above the bar; Lightning's handlers still
        # hold the stream they were made with.
        if self.progress is None or self._rerouted or sys.stderr is sys.__stderr__:
            return
        for name in _LIGHTNING_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stderr__:
                    self._rerouted.append((handler, handler.setStream(sys.stderr)))

    @override
    def _stop_progress(self) -> None:
        super()._stop_progress()
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted = []

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_progress()

    @override
    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        if "v_num" in items:
            versions = {str(logger.version) for logger in trainer.loggers if logger.version is not None}
            if len(versions) == 1:
                version = versions.pop()
                match = _RUN_VERSION.match(version)
                items["v_num"] = match.group(1) if match else version
        return items


def default_progress_callbacks() -> list[ProgressBar]:
    """A rich bar when stdout is a terminal, plain lines otherwise (``ENHTRAIN_PLAIN_PROGRESS=1`` forces them)."""
    plain = os.environ.get("ENHTRAIN_PLAIN_PROGRESS", "") not in ("", "0") or not sys.stdout.isatty()
    return [PlainProgressBar()] if plain else [RunProgressBar(refresh_rate=10)]
