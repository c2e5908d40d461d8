"""Micro-batching: the reference model's manual micro-batching against Lightning's automatic accumulation.

Both train the same ``MLPClassifier`` at the same effective batch: manually, one ``batch_size`` batch per
step split into micro-batches of ``micro_batch_size``; automatically, loader batches of ``micro_batch_size``
with ``accumulate_grad_batches = batch_size / micro_batch_size``. Throughput is samples per second over the
measured window. The peak resident memory of the measured steps (after the warm-up) is taken for several
micro-batch sizes: it must follow the micro-batch, not the batch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, make_dataset, python, run_process, subprocess_env

MODEL = {"input_dim": 64, "hidden_dims": [256, 256, 256], "num_classes": 10, "lr": 0.001}
BATCH_SIZE = 2048
THROUGHPUT_MICRO_BATCH = 128
# glibc serves blocks above this size with mmap and returns them on free, so the resident set size tracks
# the memory in use rather than what the allocator keeps cached.
MMAP_THRESHOLD = str(128 * 1024)


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """Run the micro-batching probe in one fresh process.

    Args:
        settings: Mode (steps and repetitions) and torch threads.
        workroot: Scratch directory.
        log: Called with progress lines.
    """
    full = settings.mode == "full"
    steps, warmup = (16, 3) if full else (8, 2)
    micro_batches = [32, 128, 512, 2048] if full else [64, 512, 2048]
    data = make_dataset(workroot / "data.npz", math.ceil((steps + 2) * BATCH_SIZE / 0.9))
    spec = {
        "seed": 42,
        "model": MODEL,
        "data": {"dataset": str(data), "seed": 42, "val_fraction": 0.05, "test_fraction": 0.05},
        "batch_size": BATCH_SIZE,
        "throughput_micro_batch": THROUGHPUT_MICRO_BATCH,
        "memory_micro_batches": micro_batches,
        "steps": steps,
        "warmup": warmup,
        "repeats": 4 if full else 2,
    }
    spec_path = workroot / "microbatch-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out = workroot / "microbatch.json"
    env = subprocess_env(settings.threads)
    env["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
    log("  micro-batching: throughput and peak memory")
    run_process(
        [python(), "-m", "benchmarks.probes", "--out", str(out), "microbatch", str(spec_path)],
        cwd=workroot, env=env,
    ).check("micro-batching probe")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["model"] = MODEL
    result["steps"], result["warmup"] = steps, warmup
    manual = [row for row in result["memory"] if row["manual"]]
    peaks = [row["peak_rss_increase"] for row in manual]
    smallest, whole = peaks[0], peaks[-1]
    result["memory_follows_micro_batch"] = (
        None if None in peaks else bool(smallest < 0.5 * whole and peaks == sorted(peaks))
    )
    return result
