"""Checkpoint save time: enhtrain's atomic save with metadata and manifest against Lightning's save.

A 100 MiB checkpoint is saved by each variant in turn (see :func:`benchmarks.probes.probe_checkpoint`) into
a disk-backed scratch directory, after ``os.sync()`` so that no variant pays for another's writeback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, python, run_process, subprocess_env

MEGABYTES = 100


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """Run the checkpoint probe in one fresh process.

    Args:
        settings: Mode (repetitions).
        workroot: Scratch directory (on the disk checkpoints would go to).
        log: Called with progress lines.
    """
    repeats = {"full": 15, "quick": 9}.get(settings.mode, 2)
    megabytes = MEGABYTES if settings.mode != "smoke" else 8
    out = workroot / "checkpoint.json"
    log(f"  checkpoint: {megabytes} MiB saves x {repeats}")
    run_process(
        [python(), "-m", "benchmarks.probes", "--out", str(out), "checkpoint", str(workroot / "ckpt"),
         str(megabytes), str(repeats)],
        cwd=workroot, env=subprocess_env(settings.threads),
    ).check("checkpoint probe")
    return json.loads(out.read_text(encoding="utf-8"))
