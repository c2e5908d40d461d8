"""Time to first step: ``python -m enhtrain fit`` against a ``LightningCLI`` script, same model and data.

``python -m benchmarks.first_step [--reps N] [--importtime] [--out FILE.json]`` (or the ``first_step`` section of
``python -m benchmarks``). Both CLIs run the same config (``enhtrain.models.MLPClassifier`` on scikit-learn's
digits through ``enhtrain.data.DatasetDataModule``) with :class:`benchmarks.first_step_mark.FirstStepMark` in
``trainer.callbacks``. The time is measured from the parent's ``time.time()`` just before it starts the process
to the first ``on_train_batch_start``, where the mark ends the process. Runs are interleaved (the order
alternates every repetition); the ratio is taken within each repetition and its median is reported.

With ``--importtime`` each CLI also runs once under ``python -X importtime``: the modules only enhtrain imports
are listed by their own import time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import Settings, load_average, python, ratio, rotate, run_process, subprocess_env, summary

VARIANTS = ("enhtrain", "lightning_cli")
LIMIT = 1.0
_MODULES = {"enhtrain": "enhtrain", "lightning_cli": "benchmarks.lightning_cli"}


def config(output: Path) -> dict[str, Any]:
    """The config both CLIs run: the reference MLP on digits, one device, the first-step mark.

    Args:
        output: The JSON file the mark writes.
    """
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 5,
            "max_epochs": 1,
            "callbacks": [{"class_path": "benchmarks.first_step_mark.FirstStepMark",
                           "init_args": {"output": str(output)}}],
        },
        "model": {"class_path": "enhtrain.models.MLPClassifier", "init_args": {"hidden_dims": [128, 64]}},
        "data": {"class_path": "enhtrain.data.DatasetDataModule", "init_args": {"dataset": "digits"}},
    }


def _command(variant: str, workdir: Path, extra: tuple[str, ...] = ()) -> tuple[list[str], Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / "first_step.json"
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config(output), sort_keys=False), encoding="utf-8")
    return [python(), *extra, "-m", _MODULES[variant], "fit", "--config", str(path)], output


def run_once(variant: str, workdir: Path) -> dict[str, Any]:
    """Run one CLI in a fresh process up to its first training step.

    Args:
        variant: ``enhtrain`` or ``lightning_cli``.
        workdir: The process's working directory (its run or log directory goes under it).

    Raises:
        RuntimeError: If the process fails or never reaches a training step.
    """
    args, output = _command(variant, workdir)
    result = run_process(args, cwd=workdir, env=subprocess_env(1), timeout=300).check(f"first step of {variant}")
    if not output.is_file():
        raise RuntimeError(f"{variant} reached no training step; stderr:\n{result.stderr[-2000:]}")
    mark = json.loads(output.read_text(encoding="utf-8"))
    fit_start = mark.get("fit_start_wall")
    return {
        "first_step_s": mark["first_step_wall"] - result.start_wall,
        "fit_start_s": None if fit_start is None else fit_start - result.start_wall,
        "cpu_s": mark.get("cpu_s"),
        "process_wall_s": result.wall_s,
        "modules": mark.get("modules"),
        "callbacks": mark.get("callbacks"),
        "loggers": mark.get("loggers"),
    }


def importtime(variant: str, workdir: Path) -> dict[str, tuple[int, int]]:
    """Every module one CLI imports before its first step: ``{name: (self_us, cumulative_us)}``.

    Args:
        variant: ``enhtrain`` or ``lightning_cli``.
        workdir: The process's working directory.
    """
    args, _ = _command(variant, workdir, ("-X", "importtime"))
    result = run_process(args, cwd=workdir, env=subprocess_env(1), timeout=300).check(f"importtime of {variant}")
    modules: dict[str, tuple[int, int]] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            modules[parts[2]] = (int(parts[0]), int(parts[1]))
    return modules


def added_imports(workdir: Path, top: int = 15) -> dict[str, Any]:
    """The modules ``enhtrain fit`` imports before its first step and the ``LightningCLI`` script does not.

    Args:
        workdir: Scratch directory.
        top: How many to list, by their own import time.
    """
    ours = importtime("enhtrain", workdir / "importtime-enhtrain")
    theirs = importtime("lightning_cli", workdir / "importtime-lightning_cli")
    added = {name: times for name, times in ours.items() if name not in theirs}
    ranked = sorted(added.items(), key=lambda item: -item[1][0])[:top]
    return {
        "modules": {"enhtrain": len(ours), "lightning_cli": len(theirs), "added": len(added)},
        "added_self_s": sum(t[0] for t in added.values()) / 1e6,
        "top_added": [{"module": name, "self_s": s / 1e6, "cumulative_s": c / 1e6} for name, (s, c) in ranked],
    }


def measure(reps: int, workroot: Path, with_importtime: bool = False, log: Any = print) -> dict[str, Any]:
    """Interleave ``reps`` runs of each CLI and return the times, their medians and the ratio.

    Args:
        reps: Runs of each CLI.
        workroot: Scratch directory.
        with_importtime: Also compare the modules both import (one more run of each).
        log: Called with progress lines.
    """
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    ratios: list[float | None] = []
    load_before = load_average()
    for rep in range(reps):
        for variant in rotate(list(VARIANTS), rep):
            runs[variant].append(run_once(variant, workroot / f"{variant}-{rep}"))
        ratios.append(ratio(runs["enhtrain"][-1]["first_step_s"], runs["lightning_cli"][-1]["first_step_s"]))
        log(f"  first step {rep + 1}/{reps}: enhtrain {runs['enhtrain'][-1]['first_step_s']:.2f} s, "
            f"LightningCLI {runs['lightning_cli'][-1]['first_step_s']:.2f} s")
    result: dict[str, Any] = {
        "reps": reps,
        "load_before": load_before,
        "load_after": load_average(),
        "variants": {
            v: {
                "first_step_s": summary([r["first_step_s"] for r in rs]),
                "fit_start_s": summary([r["fit_start_s"] for r in rs]),
                "cpu_s": summary([r["cpu_s"] for r in rs]),
                "modules": rs[-1]["modules"],
                "callbacks": rs[-1]["callbacks"],
                "loggers": rs[-1]["loggers"],
                "runs": [r["first_step_s"] for r in rs],
            }
            for v, rs in runs.items()
        },
        "ratios": [r for r in ratios if r is not None],
        "cpu_ratio": summary([ratio(e["cpu_s"], c["cpu_s"])
                              for e, c in zip(runs["enhtrain"], runs["lightning_cli"], strict=True)]),
        "ratio": summary([r for r in ratios if r is not None]),
    }
    if with_importtime:
        result["importtime"] = added_imports(workroot)
    return result


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """The ``first_step`` section: 1 run of each in the smoke mode, twice the training repetitions otherwise."""
    reps = 1 if settings.mode == "smoke" else 2 * settings.reps
    return measure(reps, workroot, with_importtime=settings.mode != "smoke", log=log)


def target(result: dict[str, Any]) -> dict[str, Any]:
    """The target row: enhtrain's time to first step at most that of ``LightningCLI``."""
    value = result["ratio"]["median"]
    return {
        "target": "time to first step, python -m enhtrain fit / LightningCLI (digits MLP)",
        "value": value,
        "limit": f"<= {LIMIT:.2f}",
        "met": None if value is None else value <= LIMIT,
        "note": f"{result['reps']} interleaved runs of each, range {result['ratio']['min']:.3f}-"
                f"{result['ratio']['max']:.3f}",
    }


def render(result: dict[str, Any]) -> list[str]:
    """The Markdown section of the result."""
    e, c = result["variants"]["enhtrain"], result["variants"]["lightning_cli"]
    r = result["ratio"]
    lines = [
        "## Time to first step",
        "",
        f"`enhtrain.models.MLPClassifier` on digits, {result['reps']} interleaved runs of each, from the process "
        f"start to the first `on_train_batch_start` (load average before {result['load_before']}).",
        "",
        "| CLI | First step (s, median) | min-max | `on_fit_start` (s, median) | Modules at first step |",
        "|---|---|---|---|---|",
    ]
    for label, row in (("`python -m enhtrain fit`", e), ("`LightningCLI` script", c)):
        lines.append(f"| {label} | {row['first_step_s']['median']:.3f} | {row['first_step_s']['min']:.3f}-"
                     f"{row['first_step_s']['max']:.3f} | {row['fit_start_s']['median']:.3f} | {row['modules']} |")
    lines += ["", f"Ratio enhtrain / LightningCLI (median of the per-repetition ratios): {r['median']:.3f} "
              f"({r['min']:.3f}-{r['max']:.3f}).", ""]
    imports = result.get("importtime")
    if imports:
        lines += [
            f"Modules imported before the first step only by enhtrain: {imports['modules']['added']} of "
            f"{imports['modules']['enhtrain']} ({imports['added_self_s'] * 1000:.0f} ms of own import time).",
            "",
            "| Module (only enhtrain) | Own import (ms) | Cumulative (ms) |",
            "|---|---|---|",
        ]
        lines += [f"| `{m['module'].strip()}` | {m['self_s'] * 1000:.1f} | {m['cumulative_s'] * 1000:.1f} |"
                  for m in imports["top_added"][:10]]
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure and print the Markdown section; write the JSON result with ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_step", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=6, help="runs of each CLI (default: %(default)s)")
    parser.add_argument("--importtime", action="store_true", help="also list the modules only enhtrain imports")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="enhtrain-first-step-") as scratch:
        result = measure(args.reps, Path(scratch), with_importtime=args.importtime, log=print)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
