"""Training overhead: the same model, data, seed and steps trained five ways, interleaved.

Variants (each its own subprocess, stdout and stderr captured to files as in CI):

1. ``vanilla``: a plain PyTorch loop (:mod:`benchmarks.train_vanilla`), the limit.
2. ``lightning_bare``: a ``Trainer`` with no logger, no checkpointing and no progress bar.
3. ``lightning_cli``: a bare ``LightningCLI`` script with its defaults (TensorBoard logger, checkpointing,
   TQDM progress bar, model summary, saved config).
4. ``lightning_same``: a ``Trainer`` with the loggers and callbacks enhtrain turns on by default, built by hand.
5. ``enhtrain``: ``python -m enhtrain fit --config ...`` with its defaults.

and, for the monitoring callbacks, ``csv_tb`` (a ``Trainer`` with CSV and TensorBoard loggers only) against
``csv_tb_monitors`` (the same plus enhtrain's ``throughput`` and ``memory`` callbacks).

The Lightning variants time their steps with :class:`benchmarks.timing.StepTimer`, passed to the CLIs through
the config's ``trainer.callbacks`` so their own defaults are untouched. Ratios are taken within each
repetition and then their median is reported. The CLI runs also give the time from the process start to the
first training step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    Settings,
    load_average,
    make_dataset,
    median,
    python,
    ratio,
    rotate,
    run_process,
    subprocess_env,
    summary,
)
from benchmarks.records import step_stats

VARIANTS = ("vanilla", "lightning_bare", "lightning_cli", "lightning_same", "enhtrain")
MONITOR_VARIANTS = ("csv_tb", "csv_tb_monitors")
VARIANT_LABELS = {
    "vanilla": "1 vanilla PyTorch loop",
    "lightning_bare": "2 Lightning Trainer, bare",
    "lightning_cli": "3 LightningCLI defaults",
    "lightning_same": "4 Lightning + enhtrain's default loggers/callbacks",
    "enhtrain": "5 python -m enhtrain fit",
    "csv_tb": "Trainer + CSV + TensorBoard",
    "csv_tb_monitors": "Trainer + CSV + TensorBoard + throughput + memory",
    "lightning_bare_log_patched": "2' bare Trainer, Lightning's redundant metric move skipped",
}

# The variants that are a ``Trainer`` built in a script, by their name in :mod:`benchmarks.train_lightning`.
LIGHTNING_VARIANTS = {
    "lightning_bare": "bare",
    "lightning_same": "same_components",
    "csv_tb": "csv_tb",
    "csv_tb_monitors": "csv_tb_monitors",
}

SEED = 42
BATCH_SIZE = 64
MICRO_BATCH_SIZE = 32
FEATURES = 64
CLASSES = 10
DATA_FRACTIONS = {"val_fraction": 0.05, "test_fraction": 0.05}
# Steps whose function calls are counted after the timed ones, per mode.
COUNT_STEPS = {"smoke": 3, "quick": 20, "full": 50}

MODELS: dict[str, dict[str, Any]] = {
    "small_mlp": {
        "description": "MLP 64-128-64-10, batch 64 in micro-batches of 32 (step dominated by framework overhead)",
        "model": {
            "input_dim": FEATURES,
            "hidden_dims": [128, 64],
            "num_classes": CLASSES,
            "lr": 0.003,
            "micro_batch_size": MICRO_BATCH_SIZE,
        },
    },
    "large_mlp": {
        "description": "MLP 64-1024-1024-10, batch 64 in micro-batches of 32 (>= 10 ms per step on this CPU)",
        "model": {
            "input_dim": FEATURES,
            "hidden_dims": [1024, 1024],
            "num_classes": CLASSES,
            "lr": 0.001,
            "micro_batch_size": MICRO_BATCH_SIZE,
        },
    },
}

# (name, numerator, denominator) of the reported ratios.
RATIOS = (
    ("enhtrain/lightning_cli (5/3)", "enhtrain", "lightning_cli"),
    ("enhtrain/lightning_same (5/4)", "enhtrain", "lightning_same"),
    ("enhtrain/vanilla (5/1)", "enhtrain", "vanilla"),
    ("lightning_cli/lightning_bare (3/2)", "lightning_cli", "lightning_bare"),
    ("lightning_bare/vanilla (2/1)", "lightning_bare", "vanilla"),
    ("monitors/csv_tb", "csv_tb_monitors", "csv_tb"),
    ("enhtrain/lightning_bare (5/2)", "enhtrain", "lightning_bare"),
    ("bare_log_patched/lightning_bare (2'/2)", "lightning_bare_log_patched", "lightning_bare"),
    ("bare_log_patched/vanilla (2'/1)", "lightning_bare_log_patched", "vanilla"),
)


def dataset_rows(max_steps: int) -> int:
    """Rows of the synthetic set so that one training epoch holds ``max_steps`` batches and a few more."""
    train_share = 1.0 - DATA_FRACTIONS["val_fraction"] - DATA_FRACTIONS["test_fraction"]
    return math.ceil((max_steps + 4) * BATCH_SIZE / train_share)


def make_spec(model: str, data_path: Path, steps: int, warmup: int, count_steps: int = 0) -> dict[str, Any]:
    """The description of one training run, shared by every variant.

    Args:
        model: A key of :data:`MODELS`.
        data_path: The synthetic ``.npz`` data set.
        steps: Timed training steps (the first ``warmup`` of them left out of the statistics).
        warmup: Steps left out of the statistics.
        count_steps: Steps after the timed ones whose function calls are counted; the run trains
            ``steps + count_steps + 1`` steps when it is not zero.
    """
    spec: dict[str, Any] = {
        "seed": SEED,
        "model": dict(MODELS[model]["model"]),
        "data": {"dataset": str(data_path), "batch_size": BATCH_SIZE, "seed": SEED, **DATA_FRACTIONS},
        "max_steps": steps,
        "warmup": warmup,
    }
    if count_steps:
        spec.update(max_steps=steps + count_steps + 1, count_from=steps, count_steps=count_steps)
    return spec


def cli_config(spec: dict[str, Any], output: Path) -> dict[str, Any]:
    """The YAML config both CLIs run: the spec, plus the step timer in ``trainer.callbacks``.

    Args:
        spec: The run's description.
        output: The step record file.
    """
    timer_args: dict[str, Any] = {"output": str(output), "warmup": spec["warmup"]}
    if spec.get("track_memory"):
        timer_args["track_memory"] = True
    if spec.get("count_steps"):
        timer_args.update(count_from=spec["count_from"], count_steps=spec["count_steps"])
    return {
        "seed_everything": spec["seed"],
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": spec["max_steps"],
            "max_epochs": 1,
            **spec.get("trainer", {}),
            "callbacks": [{"class_path": "benchmarks.timing.StepTimer", "init_args": timer_args}],
        },
        "model": {"class_path": "enhtrain.models.MLPClassifier", "init_args": spec["model"]},
        "data": {"class_path": "enhtrain.data.DatasetDataModule", "init_args": spec["data"]},
    }


def command(variant: str, workdir: Path, spec: dict[str, Any], output: Path) -> list[str]:
    """The command line of one variant, writing its spec or config into ``workdir``.

    Args:
        variant: A key of :data:`VARIANT_LABELS`.
        workdir: The run's working directory.
        spec: The run's description.
        output: The step record file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if variant in ("lightning_cli", "enhtrain"):
        config = workdir / "config.yaml"
        config.write_text(yaml.safe_dump(cli_config(spec, output), sort_keys=False), encoding="utf-8")
        module = "benchmarks.lightning_cli" if variant == "lightning_cli" else "enhtrain"
        return [python(), "-m", module, "fit", "--config", str(config)]
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    if variant == "vanilla":
        return [python(), "-m", "benchmarks.train_vanilla", str(spec_path), str(output)]
    return [python(), "-m", "benchmarks.train_lightning", LIGHTNING_VARIANTS[variant], str(spec_path), str(output)]


def run_variant(
    variant: str, workdir: Path, spec: dict[str, Any], threads: int
) -> dict[str, Any]:
    """Run one variant in a fresh process and return its step statistics.

    Args:
        variant: A key of :data:`VARIANT_LABELS`.
        workdir: The run's working directory.
        spec: The run's description.
        threads: Torch intra-op threads.

    Raises:
        RuntimeError: If the process fails or records no steps.
    """
    output = workdir / "steps.json"
    args = command(variant, workdir, spec, output)
    result = run_process(args, cwd=workdir, env=subprocess_env(threads)).check(f"training variant {variant}")
    if not output.is_file():
        raise RuntimeError(f"training variant {variant} wrote no step record; stdout:\n{result.stdout[-2000:]}")
    record = json.loads(output.read_text(encoding="utf-8"))
    stats = step_stats(record)
    first = record.get("first_step_wall")
    stats.update(
        final_loss=record.get("final_loss"),
        global_step=record.get("global_step"),
        process_wall_s=result.wall_s,
        time_to_first_step_s=None if first is None else first - result.start_wall,
        torch_threads=record.get("torch_threads"),
        callbacks=record.get("callbacks"),
        loggers=record.get("loggers"),
        checkpoint_io=record.get("checkpoint_io"),
        peak_rss_increase=record.get("peak_rss_increase"),
        calls_per_step=record.get("calls_per_step"),
        gc_objects=record.get("gc_objects"),
        gc_time_s=sum(record.get("gc_time_s") or []),
    )
    return stats


def losses_agree(losses: Sequence[float | None], rel_tol: float = 1e-4) -> bool:
    """Whether every final loss equals the others within ``rel_tol``."""
    values = [v for v in losses if v is not None]
    if len(values) != len(losses) or not values:
        return False
    return all(math.isclose(v, values[0], rel_tol=rel_tol, abs_tol=1e-6) for v in values)


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """Run the interleaved training comparison.

    Args:
        settings: How many repetitions and steps.
        workroot: A scratch directory for data and run directories.
        log: Called with one line per finished run.

    Returns:
        Per model: the description, per-repetition statistics of every variant, the aggregated step times,
        the ratios (median over repetitions, with their range) and whether the final losses agree.
    """
    models = settings.models or tuple(MODELS)
    steps = {"small_mlp": settings.small_steps, "large_mlp": settings.large_steps}
    data_path = workroot / "data" / "synthetic.npz"
    count_steps = COUNT_STEPS.get(settings.mode, 0)
    make_dataset(data_path, dataset_rows(max(steps[m] for m in models) + max(count_steps, 20) + 1), FEATURES, CLASSES)
    variants = settings.variants or VARIANTS
    monitor_models = ("small_mlp",) if settings.mode != "full" else tuple(MODELS)
    plan = {
        m: [*variants, *(MONITOR_VARIANTS if m in monitor_models and settings.variants is None else ())]
        for m in models
    }
    reps: dict[str, list[dict[str, dict[str, Any]]]] = {m: [] for m in models}
    loads: list[list[float] | None] = [load_average()]
    for rep in range(settings.reps):
        for model in models:
            spec = make_spec(
                model, data_path, steps[model], min(settings.warmup, max(0, steps[model] - 3)), count_steps
            )
            results: dict[str, dict[str, Any]] = {}
            for variant in rotate(plan[model], rep):
                workdir = workroot / f"rep{rep}" / model / variant
                results[variant] = run_variant(variant, workdir, spec, settings.threads)
                stats = results[variant]
                log(
                    f"  training rep {rep + 1}/{settings.reps} {model:9s} {variant:16s}"
                    f" median step {1000 * (stats['median_s'] or 0):8.3f} ms"
                    f"  loss {stats['final_loss']}"
                )
            reps[model].append(results)
        loads.append(load_average())
    out: dict[str, Any] = {"variants": {v: VARIANT_LABELS[v] for v in VARIANT_LABELS}, "load_average": loads}
    out["models"] = {m: _aggregate(m, steps[m], settings, reps[m]) for m in models}
    if settings.mode != "smoke" and settings.variants is None:
        out["empty_callback_cost"] = callback_cost(settings, data_path, workroot / "callbacks", log)
    return out


def callback_cost(settings: Settings, data_path: Path, workdir: Path, log: Any = print) -> dict[str, Any]:
    """What one callback that overrides no hook costs per step of the small MLP (see ``probes.probe_callbacks``).

    Args:
        settings: Mode and torch threads.
        data_path: The synthetic data set (large enough for ``settings.small_steps`` + 21 steps).
        workdir: Scratch directory.
        log: Called with a progress line.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    spec = make_spec("small_mlp", data_path, settings.small_steps, settings.warmup)
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out = workdir / "callbacks.json"
    log("  training: cost of an empty callback per step (in one process)")
    run_process(
        [python(), "-m", "benchmarks.probes", "--out", str(out), "callbacks", str(spec_path),
         str(5 if settings.mode == "full" else 3)],
        cwd=workdir, env=subprocess_env(settings.threads),
    ).check("callback cost probe")
    return json.loads(out.read_text(encoding="utf-8"))


def _aggregate(model: str, steps: int, settings: Settings, reps: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    variants = list(reps[0]) if reps else []
    per_variant = {}
    for variant in variants:
        runs = [r[variant] for r in reps]
        per_variant[variant] = {
            "median_step_s": median(r["median_s"] for r in runs),
            "mean_step_s": median(r["mean_s"] for r in runs),
            "p10_step_s": median(r["p10_s"] for r in runs),
            "p90_step_s": median(r["p90_s"] for r in runs),
            "cpu_median_step_s": median(r["cpu_median_s"] for r in runs),
            "cpu_mean_step_s": median(r["cpu_mean_s"] for r in runs),
            "compute_median_s": median(r["compute_median_s"] for r in runs),
            "calls_per_step": median(r["calls_per_step"] for r in runs),
            "time_to_first_step_s": median(r["time_to_first_step_s"] for r in runs),
            "process_wall_s": median(r["process_wall_s"] for r in runs),
            "final_loss": runs[-1]["final_loss"],
            "torch_threads": runs[-1]["torch_threads"],
            "callbacks": runs[-1]["callbacks"],
            "loggers": runs[-1]["loggers"],
            "checkpoint_io": runs[-1]["checkpoint_io"],
        }
    ratios: dict[str, Any] = {}
    for name, num, den in RATIOS:
        if num not in variants or den not in variants:
            continue
        ratios[name] = {
            "median_step": summary([ratio(r[num]["median_s"], r[den]["median_s"]) for r in reps]),
            "mean_step": summary([ratio(r[num]["mean_s"], r[den]["mean_s"]) for r in reps]),
            "p10_step": summary([ratio(r[num]["p10_s"], r[den]["p10_s"]) for r in reps]),
            "calls_per_step": summary([ratio(r[num]["calls_per_step"], r[den]["calls_per_step"]) for r in reps]),
            "cpu_median_step": summary([ratio(r[num]["cpu_median_s"], r[den]["cpu_median_s"]) for r in reps]),
            "cpu_mean_step": summary([ratio(r[num]["cpu_mean_s"], r[den]["cpu_mean_s"]) for r in reps]),
        }
    if "enhtrain" in variants and "lightning_cli" in variants:
        ratios["time_to_first_step enhtrain/lightning_cli"] = summary(
            [ratio(r["enhtrain"]["time_to_first_step_s"], r["lightning_cli"]["time_to_first_step_s"]) for r in reps]
        )
    main_variants = [v for v in variants if v in VARIANTS]
    agree = [losses_agree([r[v]["final_loss"] for v in main_variants]) for r in reps]
    return {
        "description": MODELS[model]["description"],
        "steps": steps,
        "warmup": settings.warmup,
        "count_steps": COUNT_STEPS.get(settings.mode, 0),
        "repetitions": len(reps),
        "variants": per_variant,
        "ratios": ratios,
        "losses_agree": all(agree) if agree else False,
        "runs": reps,
    }
