"""What a person looks at: the leaderboard of a sweep, its best trial's config, and Optuna's plots."""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

from enhtrain._io import atomic_write_bytes, atomic_write_text
from enhtrain.errors import ConfigError
from enhtrain.secrets import mask_secrets, secret_values
from enhtrain.security import inside
from enhtrain.sweeps._common import quiet_optuna
from enhtrain.sweeps.base import set_dotted
from enhtrain.sweeps.runner import SURPLUS_ATTR as _SURPLUS
from enhtrain.sweeps.study import Sweep, mask_url

__all__ = ["PLOTS", "best_config", "best_trial", "format_table", "summary", "trial_rows", "write_plots"]

PLOTS = ("optimization_history", "parallel_coordinate", "param_importances", "intermediate_values")
"""The plots ``sweep plots`` writes, each as ``<name>.html`` and ``<name>.png``."""


def _value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def trial_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per trial, by number: state, sampled values, the metric, the run directory, who ran it.

    Trials asked beyond the target by a worker that lost a race (they never ran) are left out.
    """
    trials = sweep.study.get_trials(deepcopy=False)
    retried_as = {}
    for trial in trials:
        for number in trial.system_attrs.get("retry_history") or []:
            retried_as[number] = trial.number
    best = best_trial(sweep)
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.user_attrs.get(_SURPLUS):
            continue
        params = {p.key: p.decode(trial.params[p.key]) if p.key in trial.params else None for p in sweep.params}
        value = trial.value if trial.state.name == "COMPLETE" else None
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        rows.append({
            "trial": trial.number,
            "state": trial.state.name,
            "params": params,
            "value": _value(value),
            "best": best is not None and trial.number == best.number,
            "run_dir": trial.user_attrs.get("enhtrain_run_dir"),
            "worker": trial.user_attrs.get("enhtrain_worker"),
            "duration_s": trial.user_attrs.get("enhtrain_duration_s"),
            "error": trial.user_attrs.get("enhtrain_error"),
            "retry_of": (trial.system_attrs.get("retry_history") or [None])[-1],
            "retried_as": retried_as.get(trial.number),
        })
    return rows


def best_trial(sweep: Sweep) -> Any:
    """The best complete trial, or ``None`` when no trial is complete."""
    complete = [t for t in sweep.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                and t.value is not None and math.isfinite(t.value)]
    if not complete:
        return None
    pick = max if sweep.spec.mode == "max" else min
    return pick(complete, key=lambda t: (t.value, -t.number) if sweep.spec.mode == "max" else (t.value, t.number))


def summary(sweep: Sweep, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweep as a whole: name, storage, metric, target, counts by state, and the best trial."""
    states: dict[str, int] = {}
    for row in rows:
        if row["retried_as"] is None:
            states[row["state"]] = states.get(row["state"], 0) + 1
    best = next((r for r in rows if r["best"]), None)
    return {
        "name": sweep.spec.name,
        "storage": mask_url(sweep.url),
        "metric": sweep.spec.metric,
        "mode": sweep.spec.mode,
        "trials": sweep.target(),
        "states": states,
        "best": None if best is None else {"trial": best["trial"], "value": best["value"], "params": best["params"],
                                           "run_dir": best["run_dir"]},
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def format_table(sweep: Sweep, rows: list[dict[str, Any]]) -> str:
    """The leaderboard as aligned text: a summary line, then one line per trial; ``*`` marks the best."""
    info = summary(sweep, rows)
    leaves = [p.key.rsplit(".", 1)[-1] for p in sweep.params]
    names = [leaf if leaves.count(leaf) == 1 else p.key for leaf, p in zip(leaves, sweep.params, strict=True)]
    header = ["TRIAL", "STATE", *[n.upper() for n in names], sweep.spec.metric.upper(), "RUN"]
    table = []
    for row in rows:
        state = row["state"].lower()
        if row["retried_as"] is not None:
            state += f" (retried as {row['retried_as']})"
        elif row["error"] and row["state"] == "FAIL":
            state += f" ({row['error'][:40]})"
        table.append([f"{row['trial']}{' *' if row['best'] else ''}", state,
                      *[_cell(row["params"].get(p.key)) for p in sweep.params], _cell(row["value"]),
                      row["run_dir"] or "-"])
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(info["states"].items())) or "no trials yet"
    best = info["best"]
    lines = [f"sweep {info['name']} ({info['storage']}): {sweep.spec.mode} {sweep.spec.metric}, "
             f"{info['trials']} trials: {counts}"]
    if best is not None:
        lines.append(f"best: trial {best['trial']}, {sweep.spec.metric}={_cell(best['value'])}")
    lines.append("")
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
              for line in [header, *table]]
    return "\n".join(lines) + "\n"


def best_config(sweep: Sweep) -> str:
    """The best trial's full config as YAML, ready to train again: the base config with the trial's values.

    Raises:
        ConfigError: If no trial is complete yet.
    """
    best = best_trial(sweep)
    if best is None:
        raise ConfigError(f"sweep '{sweep.spec.name}' has no complete trial yet: run it (enhtrain sweep run) or "
                          "wait for its workers")
    config = copy.deepcopy(sweep.base)
    for param in sweep.params:
        set_dotted(config, param.key, param.decode(best.params[param.key]))
    header = (f"# The best trial ({best.number}) of sweep {sweep.spec.name}: {sweep.spec.metric}={best.value:.6g}\n"
              "# Train it again with: enhtrain fit --config best.yaml\n")
    return header + yaml.safe_dump(mask_secrets(config, secret_values()), sort_keys=False)


def _figures(sweep: Sweep, name: str) -> tuple[Any, Any]:
    """The plotly figure and the matplotlib axes of one plot."""
    import optuna.visualization as plotly_plots
    import optuna.visualization.matplotlib as mpl_plots

    study = sweep.study
    target_name = sweep.spec.metric
    kwargs: dict[str, Any] = {}
    if name in ("optimization_history", "parallel_coordinate", "param_importances"):
        kwargs["target_name"] = target_name
    return getattr(plotly_plots, f"plot_{name}")(study, **kwargs), getattr(mpl_plots, f"plot_{name}")(study, **kwargs)


def write_plots(sweep: Sweep, out: Path | None = None) -> tuple[list[Path], dict[str, str]]:
    """Write Optuna's plots of the sweep as HTML (interactive, plotly) and PNG (matplotlib).

    Args:
        sweep: The open sweep.
        out: The folder (default: the sweep's directory).

    Returns:
        The files written, and the plots left out with the reason (too few complete trials, no intermediate
        values).

    Raises:
        ConfigError: If the sweep has no complete trial.
    """
    import warnings

    import matplotlib.pyplot as plt
    from plotly.offline import get_plotlyjs

    quiet_optuna()
    complete = [t for t in sweep.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        raise ConfigError(f"sweep '{sweep.spec.name}' has no complete trial to plot yet: run it first")
    directory = Path(out) if out is not None else sweep.directory
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: dict[str, str] = {}
    script = inside(directory / "plotly.min.js", directory, what="plot file")
    if not script.exists():
        atomic_write_text(script, get_plotlyjs())
    for name in PLOTS:
        if name == "param_importances" and len(complete) < 2:
            skipped[name] = "needs two complete trials"
            continue
        if name == "intermediate_values" and not any(t.intermediate_values for t in sweep.study.trials):
            skipped[name] = "no trial reported intermediate values"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # matplotlib's notes on flat axes of a one-value parameter
                figure, axes = _figures(sweep, name)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            skipped[name] = " ".join(str(err).split())[:200]
            continue
        html = inside(directory / f"{name}.html", directory, what="plot file")
        atomic_write_text(html, figure.to_html(include_plotlyjs="plotly.min.js", full_html=True))
        png = inside(directory / f"{name}.png", directory, what="plot file")
        axes_figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        axes_figure.set_size_inches(9, 5)
        axes_figure.tight_layout()
        buffer = io.BytesIO()
        axes_figure.savefig(buffer, format="png", dpi=100)
        plt.close(axes_figure)
        atomic_write_bytes(png, buffer.getvalue())
        written += [html, png]
    return written, skipped
