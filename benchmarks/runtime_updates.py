"""Runtime updates: what looking for ``runtime.yaml`` costs a training step.

The :class:`~enhtrain.callbacks.runtime_updates.RuntimeUpdates` callback runs after every training step. Most
steps it only compares the step and the clock with its schedule; at most every 10 steps and once a second it
calls ``os.stat`` on ``runtime.yaml``. Both are timed in one fresh process, on a stand-in trainer (no model):

- ``per_step_s``: the callback's ``on_train_batch_end`` with its default schedule, averaged over many steps;
- ``stat_s``: one look at the file (``os.stat``, nothing changed), the most a single step can pay;
- ``baseline_s``: an empty callback method called the same way, subtracted from ``per_step_s``.

The target is that the callback costs below 1% of a 2 ms step, on average.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.common import Settings, python, run_process, subprocess_env

STEP_S = 0.002
"""The training step the overhead is compared with: 2 ms."""

LIMIT = 0.01
"""The largest share of a 2 ms step the callback may take, on average."""


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """Run the probe in one fresh process.

    Args:
        settings: Mode (the number of steps timed).
        workroot: Scratch directory (the stand-in run directory).
        log: Called with progress lines.
    """
    steps = {"full": 2_000_000, "quick": 500_000}.get(settings.mode, 20_000)
    out = workroot / "runtime_updates.json"
    log(f"  runtime updates: {steps} steps")
    run_process([python(), "-m", "benchmarks.runtime_updates", "--out", str(out), "--steps", str(steps),
                 str(workroot / "run")], cwd=workroot, env=subprocess_env(settings.threads)).check("runtime updates")
    return json.loads(out.read_text(encoding="utf-8"))


def _time_calls(method: Any, trainer: Any, steps: int) -> float:
    """Mean seconds of ``method(trainer, None, None, None, 0)`` with the global step advancing each call."""
    started = time.perf_counter()
    for step in range(1, steps + 1):
        trainer.global_step = step
        method(trainer, None, None, None, 0)
    return (time.perf_counter() - started) / steps


def probe(run_dir: Path, steps: int) -> dict[str, Any]:
    """Time the callback on a stand-in trainer; return the measurements."""
    import os

    from enhtrain.callbacks.runtime_updates import RuntimeUpdates

    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = SimpleNamespace(global_step=0, world_size=1, is_global_zero=True)

    class _Empty:
        def on_train_batch_end(self, *args: Any) -> None:
            return None

    baseline = min(_time_calls(_Empty().on_train_batch_end, trainer, steps) for _ in range(3))
    per_step = min(_time_calls(RuntimeUpdates(run_dir).on_train_batch_end, trainer, steps) for _ in range(3))
    path = run_dir / "runtime.yaml"
    path.write_text("set: {}\n", encoding="utf-8")
    rounds = max(1000, steps // 100)
    started = time.perf_counter()
    for _ in range(rounds):
        os.stat(path)
    stat = (time.perf_counter() - started) / rounds
    overhead = max(0.0, per_step - baseline)
    return {
        "steps": steps,
        "per_step_s": per_step,
        "baseline_s": baseline,
        "overhead_s": overhead,
        "stat_s": stat,
        "step_s": STEP_S,
        "share_of_step": overhead / STEP_S,
        "worst_step_share": (overhead + stat) / STEP_S,
    }


def target(result: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's target row: the mean share of a 2 ms step."""
    share = result["share_of_step"]
    return {"target": "runtime updates: the callback's mean cost per step, share of a 2 ms step",
            "value": round(share, 5), "limit": f"<= {LIMIT}", "met": share <= LIMIT,
            "note": f"{result['overhead_s'] * 1e6:.2f} us a step; one look at the file {result['stat_s'] * 1e6:.2f} us"}


def render(result: dict[str, Any]) -> list[str]:
    """The Markdown section of the report."""
    return [
        "## Runtime updates",
        "",
        f"`RuntimeUpdates.on_train_batch_end` on a stand-in trainer, {result['steps']} steps, best of three:",
        "",
        "| Measurement | Microseconds | Share of a 2 ms step |",
        "|---|---|---|",
        f"| the callback, mean per step (an empty callback subtracted) | {result['overhead_s'] * 1e6:.3f} | "
        f"{100 * result['share_of_step']:.3f} % |",
        f"| one look at `runtime.yaml` (`os.stat`), at most every 10 steps and 1 s | {result['stat_s'] * 1e6:.3f} | "
        f"{100 * result['stat_s'] / result['step_s']:.3f} % |",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.runtime_updates --out FILE [--steps N] [RUN_DIR]``: measure and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtime_updates", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("run_dir", type=Path, nargs="?")
    args = parser.parse_args(argv)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="enhtrain-runtime-"))
    result = probe(run_dir, args.steps)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
