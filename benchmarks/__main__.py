"""``python -m benchmarks [--quick | --smoke] [--only SECTION ...] [--out DIR] [--update-docs]``.

Writes ``<out>/<mode>-<time>.json`` and ``.md`` plus ``<out>/latest.json`` and ``latest.md`` (``out`` defaults to
``benchmarks/results/``). ``--update-docs`` also puts the Markdown report into ``docs/performance.md``,
between its ``BEGIN RESULTS`` and ``END RESULTS`` markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import (
    alternation,
    checkpoint,
    first_step,
    micro_batching,
    report,
    runtime_updates,
    sharded_save,
    startup,
    training,
)
from benchmarks.common import (
    REPO,
    RESULTS_DIR,
    Settings,
    busy_processes,
    load_average,
    machine_info,
    write_json,
)

SECTIONS = ("training", "alternation", "startup", "first_step", "micro_batching", "checkpoint", "runtime_updates",
            "sharded_save")
DOCS = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- BEGIN RESULTS -->", "<!-- END RESULTS -->"

MODES = {
    "smoke": Settings(mode="smoke", reps=1, small_steps=12, large_steps=12, warmup=2, startup_reps=1,
                      variants=("vanilla", "lightning_bare"), models=("small_mlp",)),
    "quick": Settings(mode="quick", reps=2, small_steps=150, large_steps=40, warmup=10, startup_reps=2),
    "full": Settings(mode="full", reps=5, small_steps=400, large_steps=120, warmup=20, startup_reps=5),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few minutes: 2 repetitions, fewer steps")
    mode.add_argument("--smoke", action="store_true", help="seconds: checks the harness, measures nothing useful")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output directory (default: %(default)s)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions of the training comparison")
    parser.add_argument("--threads", type=int, help="torch intra-op threads of training processes (default 1)")
    parser.add_argument("--variants", nargs="+", choices=(*training.VARIANTS, *training.MONITOR_VARIANTS),
                        help="training variants to run (default: all)")
    parser.add_argument("--models", nargs="+", choices=tuple(training.MODELS), help="models to train (default: both)")
    parser.add_argument("--steps", type=int, help="training steps of both models")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (run dirs, logs)")
    parser.add_argument("--update-docs", action="store_true", help=f"write the report into {DOCS}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements and write the JSON and Markdown results; returns the exit status."""
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    settings = MODES[mode]
    if args.reps:
        settings = dataclasses.replace(settings, reps=args.reps)
    if args.threads:
        settings = dataclasses.replace(settings, threads=args.threads)
    if args.variants:
        settings = dataclasses.replace(settings, variants=tuple(args.variants))
    if args.models:
        settings = dataclasses.replace(settings, models=tuple(args.models))
    if args.steps:
        settings = dataclasses.replace(settings, small_steps=args.steps, large_steps=args.steps)
    smoke_sections = ("training", "alternation", "runtime_updates")
    sections = tuple(args.only) if args.only else (smoke_sections if mode == "smoke" else SECTIONS)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": mode,
        "settings": dataclasses.asdict(settings),
        "sections": list(sections),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_start": load_average(),
        "busy_start": busy_processes() if mode != "smoke" else [],
        "errors": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="enhtrain-bench-"))
    print(f"benchmarks ({mode}): sections {', '.join(sections)}; scratch {scratch}", flush=True)
    try:
        for section in sections:
            print(f"[{section}] load {load_average()}", flush=True)
            results[f"load_before_{section}"] = load_average()
            section_start = time.perf_counter()
            try:
                results[section] = _run_section(section, settings, scratch / section)
            except Exception as err:
                results["errors"][section] = "".join(traceback.format_exception_only(type(err), err)).strip()
                print(f"[{section}] failed: {results['errors'][section]}", file=sys.stderr, flush=True)
            results.setdefault("section_s", {})[section] = round(time.perf_counter() - section_start, 1)
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["load_end"] = load_average()
    results["elapsed_s"] = time.perf_counter() - started
    results["finished"] = time.strftime("%Y-%m-%d %H:%M %Z")
    results["targets"] = report.evaluate_targets(results)
    markdown = report.render(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out: Path = args.out
    write_json(out / f"{mode}-{stamp}.json", results)
    (out / f"{mode}-{stamp}.md").write_text(markdown, encoding="utf-8")
    write_json(out / "latest.json", results)
    (out / "latest.md").write_text(markdown, encoding="utf-8")
    if args.update_docs:
        update_docs(markdown)
    print(markdown)
    print(f"written: {out / f'{mode}-{stamp}.json'} and .md ({results['elapsed_s']:.0f} s)")
    return 1 if results["errors"] else 0


def _run_section(section: str, settings: Settings, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    if section == "training":
        return training.run(settings, workdir)
    if section == "alternation":
        return alternation.run(settings, workdir)
    if section == "startup":
        return startup.run(settings, workdir)
    if section == "micro_batching":
        return micro_batching.run(settings, workdir)
    if section == "runtime_updates":
        return runtime_updates.run(settings, workdir)
    if section == "sharded_save":
        return sharded_save.run(settings, workdir)
    if section == "first_step":
        return first_step.run(settings, workdir)
    return checkpoint.run(settings, workdir)


def update_docs(markdown: str, path: Path = DOCS) -> None:
    """Replace the results between the markers of ``docs/performance.md`` with ``markdown``.

    The report's own title is dropped; its sections are demoted one level to sit under the page's heading.
    """
    body = markdown.split("\n", 1)[1].lstrip("\n")
    body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n\n{body.rstrip()}\n\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
