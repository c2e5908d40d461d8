"""Training overhead measured in one process per model: the variants alternated run by run.

The ``training`` section runs every variant in its own process, as users do; on a shared machine two
processes of the same program differ by a few per cent, which hides the 3 % targets. Here every variant of
one model trains in a single process (see :func:`benchmarks.probes.probe_alternate`), in rotated order
round after round, and each ratio is taken within a round: the median over the rounds is the figure the
per-step targets are judged on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, make_dataset, python, ratio, run_process, subprocess_env, summary
from benchmarks.training import (
    CLASSES,
    FEATURES,
    MODELS,
    RATIOS,
    VARIANT_LABELS,
    dataset_rows,
    losses_agree,
    make_spec,
)

# Per mode and model: rounds, steps per run, and the variants.
PLANS: dict[str, dict[str, tuple[int, int, tuple[str, ...]]]] = {
    "smoke": {"small_mlp": (1, 12, ("lightning_bare", "lightning_bare_log_patched", "lightning_cli", "enhtrain"))},
    "quick": {
        "small_mlp": (8, 300, ("lightning_cli", "lightning_same", "enhtrain", "csv_tb", "csv_tb_monitors")),
        "large_mlp": (5, 100, ("vanilla", "lightning_bare", "lightning_bare_log_patched", "lightning_cli",
                               "lightning_same", "enhtrain")),
    },
    "full": {
        "small_mlp": (10, 500, ("vanilla", "lightning_bare", "lightning_bare_log_patched", "lightning_cli",
                                "lightning_same", "enhtrain", "csv_tb", "csv_tb_monitors")),
        "large_mlp": (5, 150, ("vanilla", "lightning_bare", "lightning_bare_log_patched", "lightning_cli",
                               "lightning_same", "enhtrain", "csv_tb", "csv_tb_monitors")),
    },
}


def run(settings: Settings, workroot: Path, log: Any = print) -> dict[str, Any]:
    """Run each model's alternation in one fresh process and compute the ratios.

    Args:
        settings: Mode, torch threads and the models to run.
        workroot: Scratch directory.
        log: Called with progress lines.

    Returns:
        Per model: rounds, steps, variants, every run's statistics, the ratios of
        :data:`benchmarks.training.RATIOS` whose variants ran (median over rounds, with the range) and whether
        the final losses agree.
    """
    plan = PLANS[settings.mode]
    models = [m for m in (settings.models or tuple(MODELS)) if m in plan]
    out: dict[str, Any] = {"variants": {v: VARIANT_LABELS[v] for v in VARIANT_LABELS}, "models": {}}
    for model in models:
        rounds, steps, variants = plan[model]
        workdir = workroot / model
        workdir.mkdir(parents=True, exist_ok=True)
        data = make_dataset(workdir / "data.npz", dataset_rows(steps), FEATURES, CLASSES)
        spec = make_spec(model, data, steps, min(settings.warmup, steps // 4))
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        result_path = workdir / "alternate.json"
        log(f"  alternation: {model}, {rounds} rounds of {len(variants)} variants x {steps} steps, one process")
        run_process(
            [python(), "-m", "benchmarks.probes", "--out", str(result_path), "alternate", str(spec_path),
             str(rounds), *variants],
            cwd=workdir, env=subprocess_env(settings.threads),
        ).check(f"alternation probe ({model})")
        result = json.loads(result_path.read_text(encoding="utf-8"))
        out["models"][model] = _aggregate(model, result)
    return out


def _aggregate(model: str, result: dict[str, Any]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = result["runs"]
    rounds = result["repeats"]
    per_variant = {
        name: {
            "median_step_s": summary([r["median_s"] for r in rs])["median"],
            "p10_step_s": summary([r["p10_s"] for r in rs])["median"],
            "mean_step_s": summary([r["mean_s"] for r in rs])["median"],
            "final_loss": rs[-1].get("final_loss"),
        }
        for name, rs in runs.items()
    }
    ratios = {
        name: {
            key: summary([ratio(runs[num][i][stat], runs[den][i][stat]) for i in range(rounds)])
            for key, stat in (("median_step", "median_s"), ("p10_step", "p10_s"), ("mean_step", "mean_s"))
        }
        for name, num, den in RATIOS
        if num in runs and den in runs
    }
    main_variants = [v for v in runs if v not in ("csv_tb", "csv_tb_monitors")]
    agree = [losses_agree([runs[v][i].get("final_loss") for v in main_variants]) for i in range(rounds)]
    return {
        "description": MODELS[model]["description"],
        "rounds": rounds,
        "steps": result["steps"],
        "variants": per_variant,
        "ratios": ratios,
        "losses_agree": all(agree) if agree else False,
        "runs": runs,
    }
