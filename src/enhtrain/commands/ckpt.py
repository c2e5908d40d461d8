"""``enhtrain ckpt list|verify|prune|consolidate RUN``: a run's checkpoints against its ``checkpoints/manifest.json``.

Nothing here imports torch, except ``consolidate``, which loads the checkpoint it converts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

from enhtrain.checkpoints.manifest import Manifest
from enhtrain.checkpoints.retention import plan_prune, protected_files
from enhtrain.checkpoints.sharded import SHARDED_FORMATS, remove_checkpoint_path
from enhtrain.commands._shared import ArgParser, checkpoint_rows, format_checkpoints, resolve_run, run_status
from enhtrain.errors import CheckpointError, ConfigError, quote
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
                    entry = manifest.entry(name) or {}
                    remove_checkpoint_path(directory, name, sharded=entry.get("files") is not None)
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


def _sharded_entry(directory: Path, manifest: Manifest, name: str | None) -> dict:
    """The manifest entry of the sharded checkpoint to consolidate: ``name``, or the run's newest one."""
    if name is None:
        sharded = [e for e in manifest.entries if e.get("files") is not None]
        if not sharded:
            raise CheckpointError(
                f"ckpt consolidate: {manifest.path} lists no sharded checkpoint; only a checkpoint saved by a "
                "sharded strategy (a directory) needs consolidating"
            )
        last = manifest.entry(manifest.data.get("last") or "")
        newest = max(sharded, key=lambda e: (e.get("step") or 0, e is last))
        return last if last is not None and last.get("files") is not None else newest
    entry = manifest.entry(name)
    if entry is None:
        listed = ", ".join(e["file"] for e in manifest.entries) or "none"
        raise CheckpointError(
            f"ckpt consolidate: checkpoint '{name}' is not in {manifest.path} (checkpoints: {listed})"
        )
    if entry.get("files") is None:
        raise CheckpointError(
            f"ckpt consolidate: '{directory / name}' is a single-file checkpoint already; load it as it is, or name "
            "a sharded checkpoint (a directory)"
        )
    return entry


def _output(spec: str, run_dir: Path, checkpoints: Path, manifest: Manifest) -> Path:
    """Check ``-o``: a new file in an existing folder; inside the run only as a new checkpoint in checkpoints/."""
    out = Path(spec)
    if out.is_symlink():
        raise ConfigError(f"ckpt consolidate -o: '{spec}' is a symbolic link; give a new file name")
    if out.is_dir():
        raise ConfigError(f"ckpt consolidate -o: '{spec}' is a directory; give a file name, such as {out / 'x.ckpt'}")
    if out.exists():
        raise ConfigError(f"ckpt consolidate -o: '{spec}' exists already; give a new file name or remove it first")
    if not out.parent.is_dir():
        raise ConfigError(f"ckpt consolidate -o: folder '{out.parent}' does not exist; create it or choose another")
    real = Path(os.path.realpath(out))
    if real.is_relative_to(os.path.realpath(run_dir)):
        if real.parent != Path(os.path.realpath(checkpoints)) or out.suffix != ".ckpt":
            raise ConfigError(
                f"ckpt consolidate -o: '{spec}' is inside run '{run_dir}' but not a .ckpt file in its checkpoints/ "
                f"folder; write it to {checkpoints / 'consolidated.ckpt'} or outside the run"
            )
        if manifest.entry(out.name) is not None:
            raise ConfigError(f"ckpt consolidate -o: {manifest.path} lists '{out.name}' already; choose another name")
    return out


def _consolidate(args: argparse.Namespace) -> int:
    directory = _checkpoints_dir(args.run)
    run_dir = directory.parent
    manifest = Manifest(directory, strict=True)
    entry = _sharded_entry(directory, manifest, args.checkpoint)
    out = _output(args.output, run_dir, directory, manifest)
    source = directory / entry["file"]
    problem = manifest.verify(entry["file"])
    if problem is not None:
        raise CheckpointError(
            f"ckpt consolidate: '{source}' does not match {manifest.path}: {problem}; consolidate another checkpoint "
            "(`enhtrain ckpt verify` checks them all)"
        )
    in_run = Path(os.path.realpath(out)).parent == Path(os.path.realpath(directory))
    lock = None
    if in_run:
        _refuse_if_running(run_dir)
        lock = RunLock(run_dir)
        lock.acquire(action="add a checkpoint to it")
    try:
        from enhtrain.checkpoints.consolidate import consolidate

        digest, size = consolidate(source, out)
        if in_run:
            manifest = Manifest(directory, strict=True)
            manifest.add({**{k: v for k, v in entry.items() if k not in ("files", "world_size", "strategy")},
                          "file": out.name, "sha256": digest, "size": size, "consolidated_from": entry["file"],
                          "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            manifest.save()
    finally:
        if lock is not None:
            lock.release()
    sys.stdout.write(f"wrote {out} ({size} bytes) from {source}\n")
    return 0


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {quote(value)}") from None
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
    parser = ArgParser(prog="enhtrain ckpt", description="List, verify, prune and consolidate a run's checkpoints.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=ArgParser)
    listing = sub.add_parser("list", help="list the checkpoints in the run's manifest")
    listing.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    listing.add_argument("--json", action="store_true", help="print JSON")
    verify = sub.add_parser("verify", help="check each checkpoint's size and digest against the manifest")
    verify.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    prune = sub.add_parser("prune", help="delete all but the best K and newest N checkpoints")
    prune.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    prune.add_argument("--keep-last", type=_count, default=None, metavar="N", help="keep the N newest checkpoints")
    prune.add_argument("--keep-best", type=_count, default=None, metavar="K", help="keep the K best checkpoints")
    prune.add_argument("--dry-run", action="store_true", help="print what would be deleted and delete nothing")
    formats = "; ".join(SHARDED_FORMATS)
    consolidate = sub.add_parser(
        "consolidate",
        help="turn a sharded checkpoint (a directory) into one file",
        description=(
            "Turn a sharded checkpoint of a run into one file that torch.load(weights_only=True) and "
            f"--ckpt_path load on one process. Reads the directories written by {formats}, with "
            "torch.distributed.checkpoint and Lightning's own converter. The file carries enhtrain's record of the "
            "run; written into the run's checkpoints/ folder, it is listed in the manifest."
        ),
    )
    consolidate.add_argument("run", help="a run directory, name/version under ./runs, or a name for its latest version")
    consolidate.add_argument(
        "checkpoint", nargs="?", default=None,
        help="the sharded checkpoint's name in checkpoints/ (default: last, else the newest sharded one)",
    )
    consolidate.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write (must not exist)")
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return {"list": _list, "verify": _verify, "prune": _prune, "consolidate": _consolidate}[parsed.action](parsed)
