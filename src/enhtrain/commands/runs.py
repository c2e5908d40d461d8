"""``enhtrain runs list [ROOT]`` and ``enhtrain runs show RUN``: what ran, how it ended, what it saved; and
``enhtrain runs set RUN KEY=VALUE ...``, ``runs stop RUN`` and ``runs checkpoint RUN``, which ask a running run
for changes through its ``runtime.yaml`` and wait for its answer.

Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from enhtrain.checkpoints.manifest import Manifest, ManifestError
from enhtrain.commands._shared import (
    DEFAULT_ROOT,
    ArgParser,
    checkpoint_rows,
    format_checkpoints,
    resolve_run,
    run_status,
    safe_is,
)
from enhtrain.errors import ConfigError
from enhtrain.run.directory import list_versions
from enhtrain.run.metadata import MetadataError, read_metadata

__all__ = ["DEFAULT_TIMEOUT", "UNREADABLE", "best_metric", "find_runs", "run", "summarize"]

DEFAULT_TIMEOUT = 60.0
"""How long ``runs set/stop/checkpoint`` wait for the run to answer, in seconds."""

UNREADABLE = "unreadable"
"""The status ``runs list`` shows for a run whose ``metadata.json`` or ``manifest.json`` is malformed."""


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def best_metric(run_dir: Path, meta: dict[str, Any] | None = None) -> tuple[str, float] | None:
    """Return ``(metric, value)``: the best checkpoint's monitored metric, else the final one, else ``None``.

    Raises:
        ManifestError: If the run's ``manifest.json`` is malformed.
    """
    manifest = Manifest(run_dir / "checkpoints", strict=True)
    monitor = manifest.data.get("monitor")
    best = manifest.entry(manifest.data["best"]) if isinstance(manifest.data.get("best"), str) else None
    if monitor and best is not None and isinstance((best.get("metrics") or {}).get(monitor), (int, float)):
        return monitor, float(best["metrics"][monitor])
    metrics = (meta or {}).get("metrics") or {}
    if monitor and isinstance(metrics.get(monitor), (int, float)):
        return monitor, float(metrics[monitor])
    return None


def _duration(meta: dict[str, Any]) -> float | None:
    if isinstance(meta.get("duration_s"), (int, float)):
        return float(meta["duration_s"])
    start = _parse_time(meta.get("start_time"))
    if start is not None and meta.get("status") == "running":
        return (datetime.now(timezone.utc) - start).total_seconds()
    return None


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def summarize(run_dir: Path) -> dict[str, Any]:
    """Return a run's summary: name, version, subcommand, status, start, duration, best metric and paths.

    Raises:
        ManifestError: If the run's ``manifest.json`` is malformed.
        MetadataError: If its ``metadata.json`` is malformed.
    """
    meta = read_metadata(run_dir / "metadata.json")
    best = best_metric(run_dir, meta)
    return {
        "name": meta.get("name") or run_dir.parent.name,
        "version": meta.get("version") or run_dir.name,
        "subcommand": meta.get("subcommand"),
        "status": run_status(meta) if meta else "unknown",
        "start_time": meta.get("first_start_time") or meta.get("start_time"),
        "end_time": meta.get("end_time"),
        "duration_s": _duration(meta),
        "best_metric": best[0] if best else None,
        "best_value": best[1] if best else None,
        "path": str(run_dir),
    }


def _unreadable(run_dir: Path) -> dict[str, Any]:
    return {
        "name": run_dir.parent.name,
        "version": run_dir.name,
        "subcommand": None,
        "status": UNREADABLE,
        "start_time": None,
        "end_time": None,
        "duration_s": None,
        "best_metric": None,
        "best_value": None,
        "path": str(run_dir),
    }


def find_runs(root: str | Path) -> list[Path]:
    """Return every ``<root>/<name>/<version>`` run directory, by name then version."""
    root = Path(root)
    found = []
    for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version in list_versions(name_dir):
            path = name_dir / version
            if (path / "metadata.json").is_file() or (path / "config.yaml").is_file():
                found.append(path)
    return found


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines) + "\n"


def _fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _list(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not safe_is(root):
        raise ConfigError(f"runs list: '{root}' is not a directory (give the runs root, default ./{DEFAULT_ROOT})")
    summaries = []
    for path in find_runs(root):
        try:
            summaries.append(summarize(path))
        except (ManifestError, MetadataError) as err:
            sys.stderr.write(f"enhtrain: warning: {err}\n")
            summaries.append(_unreadable(path))
    if args.json:
        sys.stdout.write(json.dumps(summaries, indent=2) + "\n")
        return 0
    if not summaries:
        sys.stdout.write(f"no runs under {root}\n")
        return 0
    rows = [
        [
            s["name"],
            s["version"],
            s["status"],
            s["subcommand"] or "-",
            (s["start_time"] or "-").replace("+00:00", "Z"),
            _fmt_duration(s["duration_s"]),
            f"{s['best_metric']}={_fmt_value(s['best_value'])}" if s["best_metric"] else "-",
        ]
        for s in summaries
    ]
    sys.stdout.write(_table(rows, ["NAME", "VERSION", "STATUS", "SUBCOMMAND", "START", "DURATION", "BEST"]))
    return 0


def _show(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run)
    if args.path:
        sys.stdout.write(f"{run_dir}\n")
        return 0
    meta = read_metadata(run_dir / "metadata.json")
    summary = summarize(run_dir)
    checkpoints = checkpoint_rows(run_dir / "checkpoints", verify=False)
    if args.json:
        sys.stdout.write(
            json.dumps({"summary": summary, "metadata": meta, "checkpoints": checkpoints}, indent=2) + "\n"
        )
        return 0
    versions = meta.get("versions") or {}
    git = meta.get("git") or {}
    commit = git.get("commit")
    lines = [
        f"Run:         {summary['name']}/{summary['version']}  ({run_dir})",
        f"Subcommand:  {summary['subcommand'] or '-'}",
        f"Status:      {summary['status']}",
        f"Started:     {summary['start_time'] or '-'}",
        f"Ended:       {summary['end_time'] or '-'}",
        f"Duration:    {_fmt_duration(summary['duration_s'])}",
        f"Command:     {' '.join(meta.get('command') or []) or '-'}",
        f"Git:         {commit[:12] + (' (dirty)' if git.get('dirty') else '') if commit else '-'}",
        "Versions:    " + (", ".join(f"{k} {v}" for k, v in versions.items() if v) or "-"),
        f"Config hash: {meta.get('config_hash') or '-'}",
    ]
    if meta.get("tags"):
        lines.append("Tags:        " + ", ".join(map(str, meta["tags"])))
    if meta.get("resumes"):
        lines.append(f"Resumed:     {len(meta['resumes'])} time(s), last from {meta['resumes'][-1].get('checkpoint')}")
    if meta.get("error"):
        lines.append(f"Error:       {meta['error']}")
    if summary["best_metric"]:
        lines.append(f"Best:        {summary['best_metric']} = {_fmt_value(summary['best_value'])}")
    metrics = meta.get("metrics") or {}
    if metrics:
        lines.append("Metrics:     " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(metrics.items())))
    sys.stdout.write("\n".join(lines) + "\n\n")
    sys.stdout.write(format_checkpoints(checkpoints, verified=False))
    return 0


def _fmt(value: Any) -> str:
    from enhtrain.config.runtime import shown

    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return shown(value).strip("'") if isinstance(value, str) else shown(value)


def _rows(value: Any) -> list[dict[str, Any]]:
    """The answer's list of mappings, bounded: an answer file is the run's, but anyone may have written it."""
    return [row for row in value[:100] if isinstance(row, dict)] if isinstance(value, list) else []


def _ask(args: argparse.Namespace) -> int:
    """``set``, ``stop`` and ``checkpoint``: write the request, wait for the run's answer, print it."""
    from enhtrain.config.runtime import collect_runtime_keys, one_line, parse_assignments
    from enhtrain.run.runtime import check_accepts_updates, wait_for_ack, write_request

    if not math.isfinite(args.timeout) or args.timeout < 0:
        raise ConfigError(
            f"runs {args.action}: --timeout {args.timeout:g} is not a number of seconds >= 0: give seconds, 0 not to "
            "wait"
        )
    updates: dict[str, Any] = {}
    if args.action == "set":
        updates = parse_assignments(args.assignments, collect_runtime_keys())
    run_dir = resolve_run(args.run)
    check_accepts_updates(run_dir)
    actions = [args.action] if args.action in ("stop", "checkpoint") else []
    request = write_request(run_dir, updates, actions, command=f"enhtrain runs {args.action}")
    if args.timeout == 0:
        sys.stdout.write(f"asked run {run_dir}: request {request} written to runtime.yaml\n")
        return 0
    answer = wait_for_ack(run_dir, request, args.timeout)
    step = _fmt(answer.get("step"))
    lines = [
        f"{_fmt(row.get('key'))}: {_fmt(row.get('old'))} -> {_fmt(row.get('new'))}"
        for row in _rows(answer.get("applied"))
    ]
    if answer.get("checkpoint"):
        lines.append(f"checkpoint saved: {_fmt(answer['checkpoint'])}")
    if answer.get("stopped"):
        lines.append("training stops now; the run will be marked stopped")
    if lines:
        sys.stdout.write(f"run {run_dir}, step {step}:\n" + "".join(f"  {line}\n" for line in lines))
    rejected = answer.get("rejected") if isinstance(answer.get("rejected"), list) else []
    if rejected:
        reasons = "; ".join(one_line(r) for r in rejected[:10])
        raise ConfigError(f"run '{run_dir}' rejected the update at step {step}: {reasons}")
    return 0


def run(args: list[str]) -> int:
    """Run ``enhtrain runs``; returns the exit status.

    ``list`` shows a run whose ``metadata.json`` or ``manifest.json`` is malformed with the status
    ``unreadable`` and writes why to stderr; ``show`` refuses it. ``set``, ``stop`` and ``checkpoint`` write the
    run's ``runtime.yaml`` and wait for its answer.

    Raises:
        ConfigError: On bad arguments, a missing run, an unknown key or bad value, a run that is not running or
            that rejected the update.
        RunDirError: If the run ended or did not answer in time.
        ManifestError: ``show``: if the run's ``manifest.json`` is malformed.
        MetadataError: ``show``: if the run's ``metadata.json`` is malformed.
    """
    parser = ArgParser(
        prog="enhtrain runs", description="List and inspect runs; change, checkpoint or stop a running one."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=ArgParser)
    listing = sub.add_parser("list", help="list every run under ROOT")
    listing.add_argument("root", nargs="?", default=DEFAULT_ROOT, help=f"the runs root (default ./{DEFAULT_ROOT})")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="show one run: its metadata and checkpoints")
    show.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--path", action="store_true", help="print only the run directory, for scripts")
    run_help = "a running run: its directory, name/version under ./runs, or a name for its latest version"
    wait_help = f"seconds to wait for the run's answer (default {DEFAULT_TIMEOUT:g}; 0: do not wait)"
    setting = sub.add_parser("set", help="change settings of a running run (optimizer.lr=1e-4 trainer.max_epochs=20)")
    setting.add_argument("run", help=run_help)
    setting.add_argument("assignments", nargs="+", metavar="KEY=VALUE",
                         help="optimizer.lr, optimizer.lr_scale, trainer.gradient_clip_val, trainer.log_every_n_steps, "
                              "trainer.max_epochs, trainer.max_steps, early_stopping.patience, or a plugin's key")
    stop = sub.add_parser("stop", help="save a checkpoint and stop a running run gracefully (status stopped)")
    stop.add_argument("run", help=run_help)
    checkpoint = sub.add_parser("checkpoint", help="save a checkpoint of a running run now")
    checkpoint.add_argument("run", help=run_help)
    for each in (setting, stop, checkpoint):
        each.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=wait_help)
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    if parsed.action in ("set", "stop", "checkpoint"):
        return _ask(parsed)
    return _list(parsed) if parsed.action == "list" else _show(parsed)
