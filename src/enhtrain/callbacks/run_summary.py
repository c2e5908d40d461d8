"""Run Summary
===========

Prints a table of the run's results when fitting ends and keeps them as a JSON-ready dict.

"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typing_extensions import override

_Mode = Literal["min", "max"]
# Matched against the last part of a metric name; loss-like names are tested first ("val/map_loss" is a loss).
_MIN_HINTS = ("loss", "err", "mse", "mae", "rmse", "nll", "perplexity", "ppl", "wer", "cer", "distance")
_MAX_HINTS = ("acc", "f1", "auc", "auroc", "precision", "recall", "iou", "dice", "map", "bleu", "rouge", "r2")
_NON_TTY_WIDTH = 100


class RunSummary(Callback):
    r"""Summarise the run when ``fit`` ends: best and final validation metrics, duration, steps, checkpoints.

    During fitting the callback follows every metric whose name starts with ``prefix`` (``val/`` by
    default) after each validation run (sanity checks excluded) and remembers its best value, the minimum for
    loss-like names (``loss``, ``err``, ``mse``, ...) and the maximum for score-like ones (``acc``, ``f1``,
    ``auc``, ...). The direction of the metric monitored by ``trainer.checkpoint_callback`` is taken from
    that callback, and ``modes`` overrides any of them; other names count as loss-like. The best values
    survive a resume from a checkpoint.

    At the end of ``fit`` the global-rank-zero process prints the summary with :mod:`rich` (plain text, 100
    columns wide, when standard output is not a terminal; paths are printed unwrapped so they can be copied).
    Every process keeps it in :attr:`summary`, a dict of strings, numbers and ``None`` (non-finite values
    become ``None``) ready for ``json.dump``::

        {"status": "finished", "run_dir": "runs/mnist/0", "duration_s": 73.2, "global_step": 1000,
         "epochs": 5, "monitor": "val/loss", "monitor_mode": "min", "best_model_score": 0.21,
         "best_model_path": ".../epoch=4-step=1000.ckpt", "last_model_path": ".../last.ckpt",
         "metrics": {"val/loss": {"final": 0.21, "best": 0.21, "mode": "min",
                                  "best_epoch": 4, "best_step": 1000}}}

    If ``fit`` ends with an exception the summary is still collected, with ``"status": "interrupted"`` for
    Ctrl+C or a termination signal (``SIGTERM``) and ``"status": "failed"`` for any other exception, but not
    printed.

    Args:
        run_dir: The run directory to report. ``None`` reports ``trainer.default_root_dir``.
        prefix: Metrics whose names start with this are summarised.
        modes: Direction per metric name, ``"min"`` or ``"max"``, overriding the guess from its name.
        print_summary: Print the table. With ``False`` the summary is only collected.

    Example::

        # config.yaml
        experiment:
          callbacks:
            run_summary: {modes: {val/top5: max}}

        # or, with Lightning's own syntax
        trainer:
          callbacks:
            - class_path: enhtrain.callbacks.RunSummary
              init_args: {run_dir: runs/mnist/0}

    """

    def __init__(
        self,
        run_dir: str | None = None,
        prefix: str = "val/",
        modes: dict[str, _Mode] | None = None,
        print_summary: bool = True,
    ) -> None:
        modes = dict(modes or {})
        for name, mode in modes.items():
            if mode not in ("min", "max"):
                raise ValueError(f"`modes[{name!r}]` must be 'min' or 'max', got {mode!r}.")
        self.run_dir = run_dir
        self.prefix = prefix
        self.modes = modes
        self.print_summary = print_summary
        self.summary: dict[str, Any] = {}
        self._best: dict[str, dict[str, Any]] = {}
        self._final: dict[str, float] = {}
        self._start: float | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Reset here rather than in ``on_fit_start``: a resumed fit restores the callback's state in between.
        if stage == "fit":
            self._best = {}
            self._final = {}
            self.summary = {}

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not ``on_validation_epoch_end``: only here are the epoch-level values of the metrics logged in
        # ``validation_step`` already reduced into ``trainer.callback_metrics``.
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for name, value in self._prefixed_metrics(trainer).items():
            self._final[name] = value
            if not math.isfinite(value):
                continue
            best = self._best.get(name)
            if best is None or _improves(value, best["value"], self._mode(name, trainer)):
                self._best[name] = {
                    "value": value,
                    "epoch": trainer.current_epoch,
                    "step": trainer.global_step,
                }

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.summary = self._collect(trainer, status="finished")
        if self.print_summary and trainer.is_global_zero:
            self._print(self.summary)

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if trainer.state.fn == "fit":
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            interrupted = isinstance(exception, (KeyboardInterrupt, SIGTERMException))
            self.summary = self._collect(trainer, status="interrupted" if interrupted else "failed")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"best": self._best, "final": self._final}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._best = dict(state_dict.get("best", {}))
        self._final = dict(state_dict.get("final", {}))

    def _mode(self, name: str, trainer: pl.Trainer) -> _Mode:
        if name in self.modes:
            return self.modes[name]
        callback = trainer.checkpoint_callback
        if callback is not None and getattr(callback, "monitor", None) == name:
            return "max" if getattr(callback, "mode", "min") == "max" else "min"
        return _guess_mode(name)

    def _prefixed_metrics(self, trainer: pl.Trainer) -> dict[str, float]:
        metrics = {}
        for name, value in trainer.callback_metrics.items():
            if name.startswith(self.prefix):
                number = _to_float(value)
                if number is not None:
                    metrics[name] = number
        return metrics

    def _collect(self, trainer: pl.Trainer, status: str) -> dict[str, Any]:
        final = {**self._final, **self._prefixed_metrics(trainer)}
        metrics = {}
        for name in sorted(final.keys() | self._best.keys()):
            best = self._best.get(name, {})
            metrics[name] = {
                "final": _finite_or_none(final.get(name)),
                "best": best.get("value"),
                "mode": self._mode(name, trainer),
                "best_epoch": best.get("epoch"),
                "best_step": best.get("step"),
            }

        callback = trainer.checkpoint_callback
        monitor = getattr(callback, "monitor", None)
        return {
            "status": status,
            "run_dir": str(self.run_dir if self.run_dir is not None else trainer.default_root_dir),
            "duration_s": round(time.monotonic() - self._start, 3) if self._start is not None else None,
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "monitor": monitor,
            "monitor_mode": self._mode(monitor, trainer) if monitor else None,
            "best_model_score": _finite_or_none(_to_float(getattr(callback, "best_model_score", None))),
            "best_model_path": getattr(callback, "best_model_path", None) or None,
            "last_model_path": getattr(callback, "last_model_path", None) or None,
            "metrics": metrics,
        }

    @staticmethod
    def _print(summary: Mapping[str, Any]) -> None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=_NON_TTY_WIDTH)

        table = Table(title="Run summary", title_justify="left")
        table.add_column("Metric")
        table.add_column("Final", justify="right")
        table.add_column("Best", justify="right")
        table.add_column("Mode")
        table.add_column("Best epoch", justify="right")
        for name, row in summary["metrics"].items():
            table.add_row(
                Text(name),
                _fmt(row["final"]),
                _fmt(row["best"]),
                row["mode"],
                "-" if row["best_epoch"] is None else str(row["best_epoch"]),
            )
        if summary["metrics"]:
            console.print(table)

        duration = summary["duration_s"]
        lines = [
            f"Duration: {'-' if duration is None else datetime.timedelta(seconds=round(duration))}"
            f"  Global step: {summary['global_step']}  Epochs: {summary['epochs']}"
        ]
        if summary["monitor"]:
            lines.append(
                f"Best {summary['monitor']} ({summary['monitor_mode']}): {_fmt(summary['best_model_score'])}"
            )
        lines.append(f"Run directory: {summary['run_dir']}")
        if summary["best_model_path"]:
            lines.append(f"Best checkpoint: {summary['best_model_path']}")
        if summary["last_model_path"]:
            lines.append(f"Last checkpoint: {summary['last_model_path']}")
        for line in lines:
            # Unwrapped and without markup so that paths can be copied whole.
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def _guess_mode(name: str) -> _Mode:
    leaf = name.rsplit("/", 1)[-1].lower()
    if any(hint in leaf for hint in _MIN_HINTS):
        return "min"
    if any(hint in leaf for hint in _MAX_HINTS):
        return "max"
    return "min"


def _improves(value: float, best: float, mode: _Mode) -> bool:
    return value > best if mode == "max" else value < best


def _to_float(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
