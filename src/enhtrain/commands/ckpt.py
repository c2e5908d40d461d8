"""``enhtrain ckpt list|verify|prune RUN``: a run's checkpoints against its ``checkpoints/manifest.json``.

Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from enhtrain.checkpoints.manifest import Manifest
from enhtrain.checkpoints.retention import plan_prune, protected_files
from enhtrain.commands._shared import ArgParser, checkpoint_rows, format_checkpoints, resolve_run, run_status
from enhtrain.errors import CheckpointError, ConfigError
from enhtrain.run.lock import LOCK_NAME, RunLock
from enhtrain.run.metadata import read_metadata
from enhtrain.security import PathEscapeError, inside

__all__ = ["run"]


def _checkpoints_dir(spec: str) -> Path:
    path = resolve_run(spec) / "checkpoints"
    if not path.is_dir():
        raise ConfigError(f"run '{spec}' has no checkpoints/ folder")
    return path


def _list(args: argparse.Namespace) -> int:
    rows = checkpoint_rows(_checkpoints_dir(args.run), verify=False)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(format_checkpoints(rows, verified=False))
    return 0


def _verify(args: argparse.Namespace) -> int:
    directory = _checkpoints_dir(args.run)
    rows = checkpoint_rows(directory, verify=True)
    bad = [row for row in rows if row["problem"] is not None]
    for row in bad:
        sys.stdout.write(f"BAD {directory / row['file']}: {row['problem']}\n")
    good = len(rows) - len(bad)
    if bad:
        sys.stdout.write(f"{len(bad)} of {len(rows)} checkpoint(s) failed verification\n")
        return 1
    sys.stdout.write(f"ok: {good} checkpoint(s) match {directory / 'manifest.json'}\n")
    return 0


def _refuse_if_running(run_dir: Path) -> None:
    """Refuse a run without a lock file whose metadata says a live process of this host writes it.

    Runs started by an enhtrain that takes the run lock have a ``.lock``, and the lock alone decides; this
    covers runs started by an earlier enhtrain, which recorded only their pid.
    """
    if (run_dir / LOCK_NAME).exists():
        return
    meta = read_metadata(run_dir / "metadata.json")
    if meta.get("host") == socket.gethostname() and run_status(meta) == "running":
        raise CheckpointError(
            f"run '{run_dir}' is still training (pid {meta.get('pid')}); prune its checkpoints after it ends"
        )


def _plan(directory: Path, args: argparse.Namespace) -> tuple[Manifest, list[str], list[Path]]:
    """Read the manifest and return it, the files to delete and their paths, each checked by the path gate."""
    manifest = Manifest(directory, strict=True)
    doomed = plan_prune(manifest, args.keep_last, args.keep_best)
    targets = []
    for name in doomed:
        try:
            inside(directory / name, directory, what="checkpoint file")
        except PathEscapeError:
            raise CheckpointError(
                f"ckpt prune: the checkpoint '{name}' listed in {manifest.path} resolves to "
                f"'{os.path.realpath(directory / name)}', outside {directory}; nothing was deleted; remove that "
                "link and its entry from the manifest"
            ) from None
        targets.append(directory / name)
    return manifest, doomed, targets


def _prune(args: argparse.Namespace) -> int:
    if args.keep_last is None and args.keep_best is None:
        raise ConfigError("ckpt prune: give --keep-last N, --keep-best K or both")
    directory = _checkpoints_dir(args.run)
    manifest, doomed, targets = _plan(directory, args)
    if args.dry_run:
        for target in targets:
            sys.stdout.write(f"would delete {target}\n")
    else:
        _refuse_if_running(directory.parent)
        lock = RunLock(directory.parent)
        lock.acquire(action="prune its checkpoints")
        try:
            manifest, doomed, targets = _plan(directory, args)  # again, now that no run can change it
            for name, target in zip(doomed, targets, strict=True):
                try:
                    target.unlink(missing_ok=True)
                except OSError as err:
                    raise CheckpointError(
                        f"ckpt prune: cannot delete '{target}' ({err.strerror or err}); the checkpoints listed above "
                        "it were deleted; fix its permissions or remove it by hand, then prune again"
                    ) from None
                manifest.remove(name)
                manifest.save()
                sys.stdout.write(f"deleted {target}\n")
        finally:
            lock.release()
    protected = protected_files(manifest)
    kept = [e["file"] for e in manifest.entries if e["file"] not in doomed]
    notes = ", ".join(f"{name} (protected)" if name in protected else name for name in kept) or "nothing"
    sys.stdout.write(f"kept: {notes}\n")
    return 0


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{value}'") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {number}")
    return number


def run(args: list[str]) -> int:
    """Run ``enhtrain ckpt``; returns the exit status (``verify``: 1 when a checkpoint fails).

    Raises:
        ConfigError: On bad arguments or a missing run.
        CheckpointError: On a malformed manifest (reported, never followed), when a checkpoint to delete resolves
            outside ``checkpoints/``, when pruning a run that is still training, or ``--keep-best`` without a
            metric.
        RunDirError: When another process holds the run's lock, or its ``metadata.json`` is malformed.
    """
    parser = ArgParser(prog="enhtrain ckpt", description="List, verify and prune a run's checkpoints.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=ArgParser)
    listing = sub.add_parser("list", help="list the checkpoints in the run's manifest")
    listing.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    listing.add_argument("--json", action="store_true", help="print JSON")
    verify = sub.add_parser("verify", help="check each checkpoint's size and sha256 against the manifest")
    verify.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    prune = sub.add_parser("prune", help="delete all but the best K and newest N checkpoints")
    prune.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    prune.add_argument("--keep-last", type=_count, default=None, metavar="N", help="keep the N newest checkpoints")
    prune.add_argument("--keep-best", type=_count, default=None, metavar="K", help="keep the K best checkpoints")
    prune.add_argument("--dry-run", action="store_true", help="print what would be deleted and delete nothing")
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return {"list": _list, "verify": _verify, "prune": _prune}[parsed.action](parsed)
