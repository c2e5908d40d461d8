"""Measurements that run inside a fresh process: ``python -m benchmarks.probes --out FILE NAME [ARGS]``.

- ``plugins``: time to import :mod:`enhtrain.plugins`, build the registry (entry-point discovery, plugin
  imports, registration hooks) and list the plugins.
- ``lazy KIND NAME``: which modules selecting one logger or callback by registry name imports.
- ``parse ARG...``: time of enhtrain's own config composition and validation for a command line.
- ``checkpoint DIR``: checkpoint save time, Lightning's ``TorchCheckpointIO`` against enhtrain's
  ``AtomicCheckpointIO`` with checkpoint metadata and the manifest.
- ``microbatch SPEC``: the reference model's manual micro-batching against Lightning's automatic gradient
  accumulation (throughput) and the peak memory of a step for several micro-batch sizes.
- ``callbacks SPEC``: what one callback that overrides no hook costs per training step in Lightning.
- ``alternate SPEC REPEATS VARIANT...``: training variants alternated in one process, step times compared run
  by run.
- ``startup ARG...``: the wall time of enhtrain's own start-up phases in ``python -m enhtrain ARG...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import rotate

HEAVY_LIBRARIES = ("torch", "lightning", "tensorboard", "torch.utils.tensorboard", "wandb", "comet_ml")


def probe_plugins() -> dict[str, Any]:
    """Time plugin discovery and listing in this (fresh) process."""
    from importlib import metadata

    start = time.perf_counter()
    from enhtrain import plugins

    imported = time.perf_counter()
    registry = plugins.get_registry()
    built = time.perf_counter()
    rows = plugins.list_plugins()
    listed = time.perf_counter()
    distributions = sum(1 for _ in metadata.distributions())
    return {
        "import_s": imported - start,
        "registry_s": built - imported,
        "list_s": listed - built,
        "distributions": distributions,
        "plugins": [row["name"] for row in rows],
        "callbacks": registry.callbacks.names(),
        "failures": [row["error"] for row in rows if row["error"]],
        "torch_imported": "torch" in sys.modules,
    }


def probe_lazy(kind: str, name: str) -> dict[str, Any]:
    """Select one component by registry name (and build it, for a logger) and list what that imported.

    Args:
        kind: ``loggers`` or ``callbacks``.
        name: The registry name.
    """
    import tempfile

    from enhtrain import plugins

    registry = plugins.get_registry()
    component_modules = {
        entry.target.partition(":")[0]
        for kind_name in ("callbacks", "loggers", "profilers")
        for entry in registry.kinds[kind_name]
        if isinstance(entry.target, str) and entry.target.startswith("enhtrain.")
    }
    entry = registry.kinds[kind].get(name)
    selected = str(entry.target).partition(":")[0]
    before = set(sys.modules)
    start = time.perf_counter()
    target = entry.load()
    if kind == "loggers":
        with tempfile.TemporaryDirectory() as tmp:
            target(log_dir=os.path.join(tmp, "logs", name), name="bench", version="0")
    else:
        target()
    elapsed = time.perf_counter() - start
    new = set(sys.modules) - before
    others = sorted(m for m in new if m in component_modules and m != selected)
    return {
        "kind": kind,
        "name": name,
        "module": selected,
        "load_s": elapsed,
        "new_enhtrain_modules": sorted(m for m in new if m.startswith("enhtrain")),
        "other_component_modules": others,
        "heavy_libraries": sorted(
            lib for lib in HEAVY_LIBRARIES if any(m == lib or m.startswith(lib + ".") for m in new)
        ),
        "only_its_module": not others,
    }


def probe_parse(argv: list[str], repeats: int = 10) -> dict[str, Any]:
    """Time ``prepare_arguments`` (layers, overlays, interpolation, ``experiment`` validation) on ``argv``.

    Args:
        argv: A training command line without the program name, e.g. ``["fit", "--config", "c.yaml"]``.
        repeats: Warm repetitions after the first (cold) call.
    """
    start = time.perf_counter()
    from enhtrain.config.arguments import SUBCOMMANDS, prepare_arguments

    imported = time.perf_counter()
    prepare_arguments(argv, force=True, subcommands=SUBCOMMANDS)
    cold = time.perf_counter() - imported
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        prepare_arguments(argv, force=True, subcommands=SUBCOMMANDS)
        warm.append(time.perf_counter() - t0)
    return {
        "argv": argv,
        "import_s": imported - start,
        "cold_s": cold,
        "warm_median_s": statistics.median(warm),
        "torch_imported": "torch" in sys.modules,
    }


def _checkpoint_payload(megabytes: int) -> dict[str, Any]:
    """A Lightning-shaped checkpoint whose tensors take ``megabytes`` MiB."""
    import torch

    generator = torch.Generator().manual_seed(0)
    per_tensor = 1 << 20  # 4 MiB float32 tensors
    count = max(1, megabytes * (1 << 20) // (per_tensor * 4))
    state = {f"net.{i}.weight": torch.randn(per_tensor, generator=generator) for i in range(count)}
    return {
        "epoch": 3,
        "global_step": 1000,
        "pytorch-lightning_version": "2.6",
        "state_dict": state,
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hyper_parameters": {"input_dim": 64, "hidden_dims": [128, 64]},
    }


class _FakeTrainer:
    """What :meth:`RunCheckpoint.on_save_checkpoint` and ``_save_checkpoint`` read of a trainer."""

    def __init__(self, io: Any) -> None:
        import torch

        self.global_step = 1000
        self.current_epoch = 3
        self.callback_metrics = {"val/loss": torch.tensor(0.25), "val/acc": torch.tensor(0.9)}
        self.is_global_zero = True
        self.world_size = 1
        self.strategy = type("Strategy", (), {"checkpoint_io": io})()


def probe_checkpoint(directory: str, megabytes: int = 100, repeats: int = 5) -> dict[str, Any]:
    """Compare checkpoint saves, interleaved, each into a fresh file after ``os.sync()``.

    Variants:

    - ``lightning``: ``TorchCheckpointIO.save_checkpoint`` (``torch.save`` to the final path).
    - ``enhtrain``: what ``RunCheckpoint`` does for one file: embed the run metadata, save with
      ``AtomicCheckpointIO`` (temp file, sha256 while writing, fsync, rename, fsync of the directory), then add
      the file to ``manifest.json`` and rewrite it atomically.
    - ``enhtrain_no_metadata``: the same ``AtomicCheckpointIO`` save without the metadata and the manifest:
      ``enhtrain`` / ``enhtrain_no_metadata`` is what writing the metadata and the manifest adds.
    - ``atomic_no_hash``: the least an atomic save does: ``torch.save`` to a temp file, fsync, rename, fsync of
      the directory, without hashing (and without starting the writeback early).
    - ``enhtrain_no_fsync``: ``enhtrain`` with ``os.fsync`` made a no-op, to show what the fsyncs cost.

    Within each ``enhtrain`` save, the metadata (``RunCheckpoint.on_save_checkpoint``) and the manifest update
    are also timed on their own: their share of the save is what they add, free of the disk's noise.

    Args:
        directory: Where to write (a disk-backed directory, as a run's ``checkpoints/`` would be).
        megabytes: Size of the tensors in the checkpoint.
        repeats: Interleaved repetitions.
    """
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from enhtrain._io import fsync_path
    from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO
    from enhtrain.checkpoints.manifest import Manifest
    from enhtrain.checkpoints.run_checkpoint import RunCheckpoint
    from enhtrain.run.metadata import config_hash, package_versions

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    payload = _checkpoint_payload(megabytes)
    config = {
        "seed_everything": 42,
        "trainer": {"max_epochs": 10, "accelerator": "cpu"},
        "model": {"class_path": "enhtrain.models.MLPClassifier", "init_args": {"hidden_dims": [128, 64]}},
        "data": {"class_path": "enhtrain.data.DatasetDataModule", "init_args": {"dataset": "digits"}},
        "experiment": {"name": "bench", "loggers": {"csv": {}, "tensorboard": {}}},
    }
    run_info = {
        "run_name": "bench",
        "run_version": "version_0",
        "run_dir": str(root),
        "config_hash": config_hash(config),
        "config": config,
        "git": {"commit": "0" * 40, "dirty": False},
        "versions": package_versions(),
    }
    callback = RunCheckpoint(run_info=run_info, dirpath=str(root))

    def lightning(path: Path) -> None:
        TorchCheckpointIO().save_checkpoint(dict(payload), path)

    def enhtrain_no_metadata(path: Path) -> None:
        AtomicCheckpointIO().save_checkpoint(dict(payload), path)

    def enhtrain(path: Path) -> float:
        """Save as ``RunCheckpoint`` does; return the seconds spent on the metadata and the manifest."""
        io = AtomicCheckpointIO()
        trainer = _FakeTrainer(io)
        checkpoint = dict(payload)
        start = time.perf_counter()
        callback.on_save_checkpoint(trainer, None, checkpoint)  # type: ignore[arg-type]
        metadata_s = time.perf_counter() - start
        io.save_checkpoint(checkpoint, path)
        start = time.perf_counter()
        digest = io.last_saved.pop(str(path))
        manifest = Manifest(root)
        manifest.add(
            {
                "file": path.name,
                "sha256": digest[0],
                "size": digest[1],
                "step": trainer.global_step,
                "epoch": trainer.current_epoch,
                "metrics": {"val/loss": 0.25},
                "time": "2025-01-01T00:00:00+00:00",
            }
        )
        manifest.data["newest"] = path.name
        manifest.save()
        return metadata_s + time.perf_counter() - start

    def enhtrain_no_fsync(path: Path) -> None:
        real = os.fsync
        os.fsync = lambda fd: None  # type: ignore[assignment]
        try:
            enhtrain(path)
        finally:
            os.fsync = real

    def atomic_no_hash(path: Path) -> None:
        tmp = path.with_name(".tmp-" + path.name)
        with open(tmp, "wb") as handle:
            torch.save(dict(payload), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_path(root)

    fsync_times: list[list[float]] = []
    own_work: list[float] = []  # one per `enhtrain` save, in the order of times["enhtrain"]

    def enhtrain_timed(path: Path) -> None:
        real = os.fsync
        calls: list[float] = []

        def timed(fd: int) -> None:
            t0 = time.perf_counter()
            real(fd)
            calls.append(time.perf_counter() - t0)

        os.fsync = timed  # type: ignore[assignment]
        try:
            own_work.append(enhtrain(path))
        finally:
            os.fsync = real
        fsync_times.append(calls)

    variants = {
        "lightning": lightning,
        "enhtrain": enhtrain_timed,
        "enhtrain_no_metadata": enhtrain_no_metadata,
        "atomic_no_hash": atomic_no_hash,
        "enhtrain_no_fsync": enhtrain_no_fsync,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    lightning(root / "warmup.ckpt")
    (root / "warmup.ckpt").unlink()
    enhtrain(root / "warmup.ckpt")  # first use imports the metadata's and the manifest's pieces: not a save's cost
    (root / "warmup.ckpt").unlink()
    for rep in range(repeats):
        for name in rotate(list(variants), rep):
            path = root / f"{name}-{rep}.ckpt"
            os.sync()
            start = time.perf_counter()
            variants[name](path)
            times[name].append(time.perf_counter() - start)
            size = path.stat().st_size
            path.unlink()
    os.sync()
    ratios = {
        name: statistics.median(t / base for t, base in zip(times[name], times["lightning"], strict=True))
        for name in variants
        if name != "lightning"
    }
    return {
        "megabytes": megabytes,
        "file_bytes": size,
        "repeats": repeats,
        "directory": str(root),
        "times_s": times,
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "ratios_to_lightning": ratios,
        "metadata_manifest_ratio": statistics.median(
            t / base for t, base in zip(times["enhtrain"], times["enhtrain_no_metadata"], strict=True)
        ),
        "metadata_manifest_times_s": own_work,
        "metadata_manifest_s": statistics.median(own_work),
        "metadata_manifest_share": statistics.median(
            own / total for own, total in zip(own_work, times["enhtrain"], strict=True)
        ),
        "hash_ratio": statistics.median(
            t / base for t, base in zip(times["enhtrain_no_metadata"], times["atomic_no_hash"], strict=True)
        ),
        "fsync_calls_per_save": len(fsync_times[0]) if fsync_times else 0,
        "fsync_median_s": [statistics.median(c[i] for c in fsync_times) for i in range(len(fsync_times[0]))]
        if fsync_times
        else [],
        "fsync_total_median_s": statistics.median(sum(c) for c in fsync_times) if fsync_times else None,
    }


def probe_microbatch(spec_path: str) -> dict[str, Any]:
    """Manual micro-batching against automatic accumulation, and step peak memory per micro-batch size.

    The spec (JSON) holds ``model`` (``MLPClassifier`` arguments without ``micro_batch_size``), ``data``,
    ``seed``, ``batch_size`` (the effective batch), ``throughput_micro_batch``, ``memory_micro_batches``,
    ``steps``, ``warmup`` and ``repeats``. Every configuration trains with a fresh bare ``Trainer`` in this
    process; the memory sweep runs in ascending micro-batch size and resets the peak resident set size after
    the warm-up steps, so each peak is that configuration's own.

    Args:
        spec_path: The JSON spec.
    """
    import warnings

    from lightning.pytorch import Trainer, seed_everything

    from benchmarks.records import step_stats
    from benchmarks.timing import StepTimer
    from enhtrain.data import DatasetDataModule
    from enhtrain.models import MLPClassifier

    warnings.filterwarnings("ignore")
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    workdir = Path(spec_path).parent
    batch = spec["batch_size"]

    def train(manual: bool, micro: int, track_memory: bool, tag: str) -> dict[str, Any]:
        accumulate = 1 if manual else batch // micro
        loader_batch = batch if manual else micro
        steps = spec["steps"] * accumulate
        warmup = spec["warmup"] * accumulate
        seed_everything(spec["seed"], verbose=False)
        model = MLPClassifier(
            **spec["model"], manual_optimization=manual, micro_batch_size=micro if manual else None
        )
        data = DatasetDataModule(**{**spec["data"], "batch_size": loader_batch})
        output = workdir / f"{tag}.json"
        timer = StepTimer(str(output), warmup=warmup, track_memory=track_memory)
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=spec["steps"],
            max_epochs=1,
            accumulate_grad_batches=accumulate,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[timer],
        )
        trainer.fit(model, datamodule=data)
        record = json.loads(output.read_text(encoding="utf-8"))
        stats = step_stats(record)
        batches = len(record["starts"]) - 1 - warmup
        window = record["starts"][-1] - record["starts"][warmup] if batches > 0 else None
        return {
            "manual": manual,
            "micro_batch_size": micro,
            "loader_batch_size": loader_batch,
            "accumulate_grad_batches": accumulate,
            "batches": len(record["starts"]),
            "expected_batches": steps,
            "samples_per_s": batches * loader_batch / window if window else None,
            "median_batch_s": stats["median_s"],
            "peak_rss_increase": record.get("peak_rss_increase"),
            "final_loss": record.get("final_loss"),
        }

    micro = spec["throughput_micro_batch"]
    throughput: dict[str, list[dict[str, Any]]] = {"manual": [], "automatic": []}
    for rep in range(spec["repeats"]):
        order = [True, False] if rep % 2 == 0 else [False, True]
        for manual in order:
            key = "manual" if manual else "automatic"
            throughput[key].append(train(manual, micro, False, f"throughput-{key}-{rep}"))
    ratios = [
        m["samples_per_s"] / a["samples_per_s"]
        for m, a in zip(throughput["manual"], throughput["automatic"], strict=True)
        if m["samples_per_s"] and a["samples_per_s"]
    ]
    memory = [
        train(True, size, True, f"memory-manual-{size}") for size in sorted(spec["memory_micro_batches"])
    ]
    memory.append(train(False, micro, True, f"memory-automatic-{micro}"))
    return {
        "batch_size": batch,
        "throughput_micro_batch": micro,
        "throughput": throughput,
        "manual_over_automatic_samples_per_s": statistics.median(ratios) if ratios else None,
        "memory": memory,
    }


def probe_callbacks(spec_path: str, empty: int = 8, repeats: int = 3) -> dict[str, Any]:
    """Cost per training step of a callback that overrides no hook, in one process, interleaved.

    Lightning calls every hook of every callback, each inside a profiler context, so even an empty callback
    costs something per step. A bare ``Trainer`` is trained with and without ``empty`` extra empty callbacks,
    alternately; the difference of the median step times (and of the calls per step) is divided by ``empty``.

    Args:
        spec_path: A training spec of :mod:`benchmarks.training` (``model``, ``data``, ``seed``, ``max_steps``,
            ``warmup``).
        empty: Empty callbacks added.
        repeats: Alternations.
    """
    import warnings

    from lightning.pytorch import Callback, Trainer, seed_everything

    from benchmarks.records import step_stats
    from benchmarks.timing import StepTimer
    from enhtrain.data import DatasetDataModule
    from enhtrain.models import MLPClassifier

    warnings.filterwarnings("ignore")
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    steps, warmup, count = spec["max_steps"], spec["warmup"], 20
    workdir = Path(spec_path).parent

    def train(extra: int, tag: str) -> dict[str, Any]:
        seed_everything(spec["seed"], verbose=False)
        model = MLPClassifier(**spec["model"])
        data = DatasetDataModule(**spec["data"])
        output = workdir / f"{tag}.json"
        timer = StepTimer(str(output), warmup=warmup, count_from=steps, count_steps=count)
        Trainer(
            accelerator="cpu", devices=1, max_steps=steps + count + 1, max_epochs=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0,
            callbacks=[timer, *(Callback() for _ in range(extra))],
        ).fit(model, datamodule=data)
        return step_stats(json.loads(output.read_text(encoding="utf-8")))

    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "empty": []}
    for rep in range(repeats):
        for name in (("bare", "empty") if rep % 2 == 0 else ("empty", "bare")):
            runs[name].append(train(empty if name == "empty" else 0, f"callbacks-{name}-{rep}"))
    per_callback = {
        key: statistics.median(
            (e[key] - b[key]) / empty for e, b in zip(runs["empty"], runs["bare"], strict=True)
        )
        for key in ("median_s", "p10_s", "cpu_median_s", "calls_per_step")
    }
    return {
        "empty_callbacks": empty,
        "repeats": repeats,
        "bare_median_s": statistics.median(r["median_s"] for r in runs["bare"]),
        "bare_p10_s": statistics.median(r["p10_s"] for r in runs["bare"]),
        "per_callback": per_callback,
    }


@contextlib.contextmanager
def _skip_redundant_metric_moves() -> Iterator[None]:
    """Patch Lightning's ``_ResultMetric.to`` to return at once when its tensors are already on the device.

    ``_ResultCollection.log`` calls ``self[key].to(value.device)`` on every ``self.log``, which rebuilds the
    metric's ``__dict__`` through ``apply_to_collection`` (recursing into its metadata dataclasses) even when
    nothing moves. This measures what that costs a step; it is a benchmark of Lightning, not a change
    enhtrain makes to it.
    """
    import torch
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    original = _ResultMetric.to

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        device = args[0] if len(args) == 1 and not kwargs else None
        if isinstance(device, (torch.device, str)):
            target = torch.device(device)
            tensors = [v for v in (self.__dict__.get("value"), self.__dict__.get("cumulated_batch_size"))
                       if isinstance(v, torch.Tensor)]
            if tensors and all(t.device == target for t in tensors):
                return self
        return original(self, *args, **kwargs)

    _ResultMetric.to = to  # type: ignore[method-assign]
    try:
        yield
    finally:
        _ResultMetric.to = original  # type: ignore[method-assign]


def probe_alternate(spec_path: str, repeats: int, variants: list[str]) -> dict[str, Any]:
    """Train several variants alternately in this one process; return every run's step statistics.

    Separate processes differ by a few per cent from one run to the next on a shared machine (memory layout,
    scheduling), which hides a 3 % difference; runs in one process, alternated in rotated order, do not. The
    variants are those of :data:`benchmarks.training.VARIANT_LABELS`: ``vanilla`` runs
    :func:`benchmarks.train_vanilla.train`, the Lightning ones :func:`benchmarks.train_lightning.train`
    (``lightning_bare_log_patched``: the bare ``Trainer`` with :func:`_skip_redundant_metric_moves`), and
    the two CLIs run ``LightningCLI`` and :func:`enhtrain.cli.run_training` on the config file of
    :func:`benchmarks.training.cli_config`. A first round of short runs (not reported) warms every variant up.
    Each run works in its own directory.

    Args:
        spec_path: A training spec of :mod:`benchmarks.training`.
        repeats: Rounds; each runs every variant once.
        variants: The variants.
    """
    import warnings

    import yaml

    from benchmarks import train_lightning, train_vanilla
    from benchmarks.records import step_stats
    from benchmarks.training import LIGHTNING_VARIANTS, cli_config

    warnings.filterwarnings("ignore")
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    workdir = Path(spec_path).parent
    home = os.getcwd()

    def run(variant: str, run_spec: dict[str, Any], tag: str) -> dict[str, Any]:
        rundir = workdir / tag
        rundir.mkdir(parents=True, exist_ok=True)
        output = rundir / "steps.json"
        os.chdir(rundir)
        try:
            if variant in ("lightning_cli", "enhtrain"):
                config = rundir / "config.yaml"
                config.write_text(yaml.safe_dump(cli_config(run_spec, output), sort_keys=False), encoding="utf-8")
                argv = ["fit", "--config", str(config)]
                if variant == "enhtrain":
                    from enhtrain.cli import run_training

                    run_training(argv)
                else:
                    from lightning.pytorch.cli import LightningCLI

                    LightningCLI(args=argv)
            elif variant == "vanilla":
                train_vanilla.train(run_spec, str(output))
            elif variant == "lightning_bare_log_patched":
                with _skip_redundant_metric_moves():
                    train_lightning.train("bare", run_spec, str(output))
            else:
                train_lightning.train(LIGHTNING_VARIANTS[variant], run_spec, str(output))
        finally:
            os.chdir(home)
        record = json.loads(output.read_text(encoding="utf-8"))
        return {**step_stats(record), "final_loss": record.get("final_loss")}

    short = {**spec, "max_steps": spec["warmup"] + 5}
    for name in variants:
        run(name, short, f"warmup-{name}")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for rep in range(repeats):
        for name in rotate(variants, rep):
            runs[name].append(run(name, spec, f"alternate-{name}-{rep}"))
    return {"variants": variants, "repeats": repeats, "steps": spec["max_steps"], "runs": runs}

def probe_startup(argv: list[str]) -> dict[str, Any]:
    """Wall time of enhtrain's own start-up phases in ``python -m enhtrain ARGV``, timed by wrapping them.

    Timed: importing :mod:`enhtrain.cli` beyond ``lightning.pytorch.cli``, ``prepare_arguments`` (config
    layers, plugin discovery, ``experiment`` validation), ``RunSession.start`` (run directory, ``config.yaml``,
    ``metadata.json``), ``RunSession.build_trainer_kwargs`` (loggers, callbacks, checkpoint IO),
    ``RunConfigCallback.save_config`` (the config as hyper-parameters) and ``RunSession.finish``; and, when
    training, the time to the first step from the start of ``main``.

    Args:
        argv: The command line, e.g. ``["fit", "--config", "c.yaml"]``.
    """
    import lightning.pytorch.cli  # noqa: F401

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    import enhtrain.cli as cli
    from enhtrain.commands import main as enhtrain_main
    from enhtrain.run.session import RunSession

    phases["import enhtrain.cli (beyond lightning.pytorch.cli)"] = time.perf_counter() - t0

    def timed(name: str, func: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    cli.prepare_arguments = timed("prepare_arguments", cli.prepare_arguments)
    start_fn = RunSession.start.__func__  # type: ignore[attr-defined]
    RunSession.start = classmethod(timed("RunSession.start", start_fn))  # type: ignore[method-assign]
    RunSession.build_trainer_kwargs = timed(  # type: ignore[method-assign]
        "RunSession.build_trainer_kwargs", RunSession.build_trainer_kwargs
    )
    RunSession.finish = timed("RunSession.finish", RunSession.finish)  # type: ignore[method-assign]
    from enhtrain.run import session as run_session

    run_session.build_loggers = timed(  # type: ignore[attr-defined]
        "  of which build_loggers (csv, tensorboard; LightningCLI builds its TensorBoard logger too)",
        run_session.build_loggers,
    )
    run_session.build_callbacks = timed(  # type: ignore[attr-defined]
        "  of which build_callbacks", run_session.build_callbacks
    )
    if hasattr(cli, "RunConfigCallback"):
        cli.RunConfigCallback.save_config = timed(  # type: ignore[method-assign]
            "RunConfigCallback.save_config", cli.RunConfigCallback.save_config
        )
    first_step: list[float] = []
    from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop

    advance = _TrainingEpochLoop.advance

    def first(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not first_step:
            first_step.append(time.perf_counter())
        return advance(self, *args, **kwargs)

    _TrainingEpochLoop.advance = first  # type: ignore[method-assign]
    started = time.perf_counter()
    code = enhtrain_main(argv)
    return {
        "argv": argv,
        "exit_status": code,
        "phases_s": phases,
        "enhtrain_total_s": sum(v for k, v in phases.items() if not k.startswith("  ")),
        "main_to_first_step_s": first_step[0] - started if first_step else None,
    }


def main(argv: list[str] | None = None) -> None:
    """Run one probe and write its JSON result to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probes --out FILE")
    parser.add_argument("--out", required=True, help="the JSON result file (give it before the probe)")
    parser.add_argument(
        "probe",
        choices=("plugins", "lazy", "parse", "checkpoint", "microbatch", "callbacks", "alternate", "startup"),
    )
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    args = [a for a in ns.args if a != "--"]
    if ns.probe == "plugins":
        result = probe_plugins()
    elif ns.probe == "lazy":
        result = probe_lazy(args[0], args[1])
    elif ns.probe == "parse":
        result = probe_parse(args)
    elif ns.probe == "checkpoint":
        result = probe_checkpoint(args[0], int(args[1]) if len(args) > 1 else 100,
                                  int(args[2]) if len(args) > 2 else 5)
    elif ns.probe == "alternate":
        result = probe_alternate(args[0], int(args[1]), args[2:])
    elif ns.probe == "callbacks":
        result = probe_callbacks(args[0], repeats=int(args[1]) if len(args) > 1 else 3)
    elif ns.probe == "startup":
        result = probe_startup(args)
    else:
        result = probe_microbatch(args[0])
    Path(ns.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
