"""Sharded checkpoint save: enhtrain's committed, checksummed, listed save against Lightning's own, on 2 processes.

One process group of two CPU processes (gloo) trains one step of a model of ``megabytes`` MiB whose layers are
sharded with FSDP2 (``ModelParallelStrategy``), then saves it in turn with plain Lightning
(``trainer.save_checkpoint`` with enhtrain's callback taken out of the Trainer) and through enhtrain's
``RunCheckpoint`` (temporary directory, each rank checksumming its own shards as they are written, the checksums
gathered on rank 0, one rename, the manifest entry), both into the same folder. Each save is timed on rank 0
between two barriers, after ``os.sync()``; the variants alternate, each saved directory is removed before the
next save, and the first repetitions (``--warmups``) are not timed. ``--control`` saves with plain Lightning in
both places, which shows what the measurement's noise alone gives.

The main figure is the median of the repetitions' ratios (each pair saved back to back), with a 95 % bootstrap
interval; the disk's speed moves by a tenth from one save to the next here, more than the target. A second
figure adds enhtrain's steps by phase: its time around Lightning's save (on rank 0) and the checksums' CPU time
at the measured rate.

Run alone: ``python -m benchmarks.sharded_save --out result.json --dir SCRATCH [--megabytes 256] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, python, run_process, subprocess_env

MEGABYTES = 256
WIDTH = 1024
_HASH_PROBE_MB = 64


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """Measure in one fresh process group.

    Args:
        settings: Mode (smoke: a tiny model, one save of each kind).
        workroot: Scratch directory (on the disk checkpoints would go to).
        log: Called with progress lines.
    """
    repeats = {"full": 15, "quick": 7}.get(settings.mode, 1)
    megabytes = MEGABYTES if settings.mode != "smoke" else 4
    out = workroot / "sharded_save.json"
    log(f"  sharded save: {megabytes} MiB over 2 processes x {repeats}")
    run_process(
        [python(), "-m", "benchmarks.sharded_save", "--out", str(out), "--dir", str(workroot / "ckpt"),
         "--megabytes", str(megabytes), "--repeats", str(repeats)],
        cwd=workroot, env=subprocess_env(settings.threads), timeout=1200,
    ).check("sharded save probe")
    return json.loads(out.read_text(encoding="utf-8"))


def target(result: dict[str, Any]) -> dict[str, Any]:
    """The target row: enhtrain's sharded save takes at most 5 % longer than Lightning's (median paired ratio)."""
    ratio = result.get("paired_ratio")
    low, high = result.get("paired_ratio_interval") or (None, None)
    return {
        "target": f"sharded save ({result['megabytes']} MiB, {result['world_size']} processes), enhtrain / Lightning",
        "value": ratio,
        "limit": "<= 1.05",
        "met": None if ratio is None or result.get("control") else ratio <= 1.05,
        "note": (f"median of {result['repeats']} paired ratios, 95 % interval {low:.3f}-{high:.3f}; by phase "
                 f"{result['phase_ratio']:.3f}") if low is not None else "",
    }


def render(result: dict[str, Any]) -> list[str]:
    """The Markdown section of the report."""
    rows = [
        ("Lightning `trainer.save_checkpoint`", result["lightning_s"], result["median_lightning_s"]),
        ("Lightning again (control)" if result.get("control") else
         "enhtrain `RunCheckpoint` (commit, checksums, manifest)", result["enhtrain_s"], result["median_enhtrain_s"]),
    ]
    lines = [
        "", f"## Sharded checkpoint save ({result['megabytes']} MiB over {result['world_size']} processes)", "",
        "| Save | Times (s) | Median (s) |", "|------|-----------|------------|",
    ]
    for name, times, med in rows:
        lines.append(f"| {name} | {', '.join(f'{t:.3f}' for t in times)} | {med:.3f} |")
    low, high = result["paired_ratio_interval"]
    share = result["megabytes"] / result["world_size"]
    lines += [
        "",
        f"enhtrain / Lightning: {result['paired_ratio']:.3f} (median of each repetition's ratio; 95 % interval "
        f"{low:.3f}-{high:.3f}); {result['ratio']:.3f} (medians).",
        f"By phase: enhtrain's steps around Lightning's save {result['median_own_s'] * 1000:.1f} ms, the checksums "
        f"{result['checksum_s'] * 1000:.1f} ms, {result['phase_ratio']:.3f} of Lightning's save.",
        f"(XXH3 on one core: {result['xxh3_mb_s']:.0f} MB/s, sha256: {result['sha256_mb_s']:.0f} MB/s; each rank "
        f"checksums its own {share:.0f} MiB as torch writes them, {share * 2**20 / 1e6 / result['xxh3_mb_s']:.3f} s "
        f"of CPU at that rate, {share * 2**20 / 1e6 / result['sha256_mb_s']:.3f} s with sha256).",
    ]
    return lines


def _model_class() -> Any:
    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    class Big(pl.LightningModule):
        def __init__(self, megabytes: int) -> None:
            super().__init__()
            layers = max(1, math.ceil(megabytes * 2**20 / 4 / (WIDTH * WIDTH)))
            self.net = nn.Sequential(*[nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(layers)])

        def configure_model(self) -> None:
            from torch.distributed.fsdp import fully_shard

            for layer in self.net:
                fully_shard(layer, mesh=self.device_mesh["data_parallel"])

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return self.net(batch).mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=1e-6)

        def train_dataloader(self) -> Any:
            return DataLoader(torch.randn(4, WIDTH), batch_size=2)

    return Big


def _hash_rate(algorithm: str) -> float:
    """MB/s of one core hashing a buffer in memory with ``xxh3_128`` or ``sha256``."""
    import hashlib

    import xxhash

    data = os.urandom(_HASH_PROBE_MB * 2**20)
    started = time.perf_counter()
    (xxhash.xxh3_128(data) if algorithm == "xxh3_128" else hashlib.sha256(data)).hexdigest()
    return _HASH_PROBE_MB * 2**20 / 1e6 / (time.perf_counter() - started)


@contextlib.contextmanager
def _timed_saves(trainer: Any) -> Iterator[list[float]]:
    """Time each ``trainer.save_checkpoint`` called within the context (Lightning's save inside enhtrain's)."""
    original = trainer.save_checkpoint
    spent: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    trainer.save_checkpoint = timed
    try:
        yield spent
    finally:
        del trainer.save_checkpoint


def _interval(values: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of ``values`` (seeded, so that a result reads the same again)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def _result(
    args: argparse.Namespace, world_size: int, times: dict[str, list[float]], own: list[float]
) -> dict[str, Any]:
    lightning, enhtrain = statistics.median(times["lightning"]), statistics.median(times["enhtrain"])
    own_s = statistics.median(own)
    # Each repetition saves both ways back to back: their ratio moves less with the disk's mood.
    pairs = [ours / theirs for ours, theirs in zip(times["enhtrain"], times["lightning"], strict=True)]
    xxh3, sha256 = _hash_rate("xxh3_128"), _hash_rate("sha256")
    checksum_s = 0.0 if args.control else args.megabytes / world_size * 2**20 / 1e6 / xxh3
    return {
        "megabytes": args.megabytes,
        "world_size": world_size,
        "repeats": args.repeats,
        "warmups": args.warmups,
        "control": args.control,
        "lightning_s": [round(t, 4) for t in times["lightning"]],
        "enhtrain_s": [round(t, 4) for t in times["enhtrain"]],
        "median_lightning_s": lightning,
        "median_enhtrain_s": enhtrain,
        "ratio": enhtrain / lightning if lightning > 0 else None,
        "paired_ratio": statistics.median(pairs),
        "paired_ratio_interval": _interval(pairs),
        # What enhtrain adds, by phase: its own steps around Lightning's save, and the checksums within it.
        "median_own_s": own_s,
        "checksum_s": checksum_s,
        "phase_ratio": (lightning + own_s + checksum_s) / lightning if lightning > 0 else None,
        "xxh3_mb_s": xxh3,
        "sha256_mb_s": sha256,
    }


def _measure(args: argparse.Namespace) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.strategies import ModelParallelStrategy

    from enhtrain.checkpoints.run_checkpoint import RunCheckpoint

    root = Path(args.dir)
    enh = RunCheckpoint(run_info={"run_name": "bench"}, dirpath=str(root / "enhtrain"), save_top_k=-1,
                        every_n_epochs=0, save_last=False)

    class Measure(pl.Callback):
        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            times: dict[str, list[float]] = {"lightning": [], "enhtrain": []}
            own: list[float] = []  # each timed enhtrain save less the Lightning save inside it
            for rep in range(-args.warmups, args.repeats):
                order = ["lightning", "enhtrain"] if rep % 2 == 0 else ["enhtrain", "lightning"]
                for variant in order:
                    # Both saves go to the same folder, so that both take blocks from the same part of the disk.
                    path = root / "enhtrain" / f"{variant}-{rep + args.warmups}.ckpt"
                    if trainer.is_global_zero:
                        os.sync()
                    trainer.strategy.barrier()
                    plain = variant == "lightning" or args.control
                    started = time.perf_counter()
                    with _timed_saves(trainer) as inner:
                        if plain:
                            trainer.callbacks.remove(enh)
                            try:
                                trainer.save_checkpoint(path)
                            finally:
                                trainer.callbacks.append(enh)
                        else:
                            enh._save_checkpoint(trainer, str(path))
                    trainer.strategy.barrier()
                    elapsed = time.perf_counter() - started
                    if rep >= 0:
                        times[variant].append(elapsed)
                        if variant == "enhtrain":
                            own.append(elapsed - sum(inner))
                    if not plain:
                        enh._remove_checkpoint(trainer, str(path))
                    elif trainer.is_global_zero:
                        shutil.rmtree(path)
                    trainer.strategy.barrier()
            if trainer.is_global_zero:
                Path(args.out).write_text(json.dumps(_result(args, trainer.world_size, times, own), indent=2),
                                          encoding="utf-8")

    strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)  # FSDP2 over both processes
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy=strategy, max_steps=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[enh, Measure()],
        default_root_dir=str(root),
    )
    trainer.fit(_model_class()(args.megabytes))


def main(argv: list[str] | None = None) -> int:
    """Run the measurement in this process group (Lightning starts the second process)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sharded_save", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the result")
    parser.add_argument("--dir", required=True, help="scratch directory for the checkpoints (the same on every rank)")
    parser.add_argument("--megabytes", type=int, default=MEGABYTES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=2,
                        help="untimed repetitions first (two: each kind saved first and second once)")
    parser.add_argument("--control", action="store_true",
                        help="save with plain Lightning in both places: the measurement's own noise")
    args = parser.parse_args(argv)
    _measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
