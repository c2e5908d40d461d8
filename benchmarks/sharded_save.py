"""Sharded checkpoint save: enhtrain's committed, hashed, listed save against Lightning's own, on 2 processes.

One process group of two CPU processes (gloo) trains one step of a model of ``megabytes`` MiB whose layers are
sharded with FSDP2 (``ModelParallelStrategy``), then saves it in turn with plain Lightning
(``trainer.save_checkpoint`` with enhtrain's callback taken out of the Trainer) and through enhtrain's
``RunCheckpoint`` (temporary directory, each rank hashing its own shards, the digests gathered on rank 0, one
rename, the manifest entry). Each save is timed on rank 0 between two barriers; the variants alternate, and
each saved directory is removed before the next save.

Run alone: ``python -m benchmarks.sharded_save --out result.json --dir SCRATCH [--megabytes 256] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
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
    repeats = {"full": 5, "quick": 3}.get(settings.mode, 1)
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
    """The target row: enhtrain's sharded save takes at most 5 % longer than Lightning's."""
    ratio = result.get("ratio")
    return {
        "target": f"sharded save ({result['megabytes']} MiB, {result['world_size']} processes), enhtrain / Lightning",
        "value": ratio,
        "limit": "<= 1.05",
        "met": None if ratio is None else ratio <= 1.05,
        "note": f"median {result['median_enhtrain_s']:.3f} s against {result['median_lightning_s']:.3f} s",
    }


def render(result: dict[str, Any]) -> list[str]:
    """The Markdown section of the report."""
    rows = [
        ("Lightning `trainer.save_checkpoint`", result["lightning_s"], result["median_lightning_s"]),
        ("enhtrain `RunCheckpoint` (commit, hashes, manifest)", result["enhtrain_s"], result["median_enhtrain_s"]),
    ]
    lines = [
        "", f"## Sharded checkpoint save ({result['megabytes']} MiB over {result['world_size']} processes)", "",
        "| Save | Times (s) | Median (s) |", "|------|-----------|------------|",
    ]
    for name, times, med in rows:
        lines.append(f"| {name} | {', '.join(f'{t:.3f}' for t in times)} | {med:.3f} |")
    ratio = result.get("ratio")
    share = result["megabytes"] / result["world_size"]
    lines += [
        "",
        (f"enhtrain / Lightning: {ratio:.3f} (medians); {result.get('paired_ratio', ratio):.3f} (median of each "
         "repetition's ratio)") if ratio is not None else "enhtrain / Lightning: -",
        f"(sha256 on one core: {result['sha256_mb_s']:.0f} MB/s; each rank hashes its own "
        f"{share:.0f} MiB, {share * 2**20 / 1e6 / result['sha256_mb_s']:.3f} s of CPU at that rate, while torch "
        "writes them).",
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


def _sha256_rate() -> float:
    import hashlib

    data = os.urandom(_HASH_PROBE_MB * 2**20)
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return _HASH_PROBE_MB * 2**20 / 1e6 / (time.perf_counter() - started)


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
            for rep in range(args.repeats):
                order = ["lightning", "enhtrain"] if rep % 2 == 0 else ["enhtrain", "lightning"]
                for variant in order:
                    path = root / variant / f"save-{rep}.ckpt"
                    if trainer.is_global_zero:
                        os.sync()
                    trainer.strategy.barrier()
                    started = time.perf_counter()
                    if variant == "lightning":
                        trainer.callbacks.remove(enh)
                        try:
                            trainer.save_checkpoint(path)
                        finally:
                            trainer.callbacks.append(enh)
                    else:
                        enh._save_checkpoint(trainer, str(path))
                    trainer.strategy.barrier()
                    times[variant].append(time.perf_counter() - started)
                    if variant == "enhtrain":
                        enh._remove_checkpoint(trainer, str(path))
                    elif trainer.is_global_zero:
                        shutil.rmtree(path)
                    trainer.strategy.barrier()
            if trainer.is_global_zero:
                lightning, enhtrain = statistics.median(times["lightning"]), statistics.median(times["enhtrain"])
                result = {
                    "megabytes": args.megabytes,
                    "world_size": trainer.world_size,
                    "repeats": args.repeats,
                    "lightning_s": [round(t, 4) for t in times["lightning"]],
                    "enhtrain_s": [round(t, 4) for t in times["enhtrain"]],
                    "median_lightning_s": lightning,
                    "median_enhtrain_s": enhtrain,
                    "ratio": enhtrain / lightning if lightning > 0 else None,
                    # Each repetition saves both ways back to back: their ratio moves less with the load.
                    "paired_ratio": statistics.median(
                        ours / theirs for ours, theirs in zip(times["enhtrain"], times["lightning"], strict=True)
                    ),
                    "sha256_mb_s": _sha256_rate(),
                }
                Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")

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
    args = parser.parse_args(argv)
    _measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
