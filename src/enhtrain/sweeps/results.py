"""What a person looks at: the leaderboard of a sweep, its best trial's config, and Optuna's plots."""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path
from typing import Any

from enhtrain._io import atomic_write_bytes, atomic_write_text
from enhtrain.documents import dump_yaml
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
    return header + dump_yaml(mask_secrets(config, secret_values()))


_WORST, _BEST = "#d62728", "#08519c"
"""Line colours of the worst and the best trial: both ends of the scale stand out on a white page."""

_COLORSCALE = [[0.0, _WORST], [0.5, "#9467bd"], [1.0, _BEST]]


def _short_names(sweep: Sweep) -> list[str]:
    """Each parameter's shortest dotted tail that no other parameter shares (``lr`` for ``model.init_args.lr``)."""
    keys = [p.key.split(".") for p in sweep.params]
    names = []
    for parts in keys:
        for size in range(1, len(parts) + 1):
            tail = parts[-size:]
            if sum(other[-size:] == tail for other in keys) == 1:
                names.append(".".join(tail))
                break
        else:
            names.append(".".join(parts))
    return names


def _shown_trials(sweep: Sweep) -> list[tuple[Any, float]]:
    """Complete trials with their value, and pruned ones with the last value they reported, by number."""
    shown_trials = []
    for trial in sorted(sweep.study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.state.name == "COMPLETE" and trial.value is not None:
            value = trial.value
        elif trial.state.name == "PRUNED" and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            continue
        if math.isfinite(value):
            shown_trials.append((trial, value))
    return shown_trials


def _hover(sweep: Sweep, trial: Any, value: float) -> str:
    lines = [f"trial {trial.number} ({trial.state.name.lower()})", f"{sweep.spec.metric}: {value:.6g}"]
    for param in sweep.params:
        if param.key in trial.params:
            lines.append(f"{param.key}: {_cell(param.decode(trial.params[param.key]))}")
    return "<br>".join(lines)


def _history_figure(sweep: Sweep) -> Any:
    """Every trial's metric by trial number (pruned ones at their last report, as crosses), and the best so far."""
    import plotly.graph_objects as go

    metric = sweep.spec.metric
    trials = _shown_trials(sweep)
    figure = go.Figure()
    for state, marker, name in (("COMPLETE", {"symbol": "circle", "size": 9, "color": _BEST}, "complete"),
                                ("PRUNED", {"symbol": "x", "size": 10, "color": _WORST},
                                 "pruned (last reported value)")):
        chosen = [(t, v) for t, v in trials if t.state.name == state]
        if chosen:
            figure.add_trace(go.Scatter(x=[t.number for t, _ in chosen], y=[v for _, v in chosen], mode="markers",
                                        name=name, marker=marker, hoverinfo="text",
                                        hovertext=[_hover(sweep, t, v) for t, v in chosen]))
    best: list[float] = []
    numbers: list[int] = []
    pick = max if sweep.spec.mode == "max" else min
    for trial, value in trials:
        if trial.state.name == "COMPLETE":
            best.append(value if not best else pick(best[-1], value))
            numbers.append(trial.number)
    figure.add_trace(go.Scatter(x=numbers, y=best, mode="lines", name="best so far", line={"color": "#444"},
                                line_shape="hv"))
    failed = sum(t.state.name == "FAIL" for t in sweep.study.get_trials(deepcopy=False)
                 if not t.user_attrs.get(_SURPLUS))
    title = f"Optimization History Plot: {sweep.spec.name}"
    if failed:
        title += f" ({failed} failed trial{'s' if failed > 1 else ''} without a value)"
    figure.update_layout(title={"text": title}, xaxis={"title": {"text": "trial"}, "dtick": 1 if len(trials) <= 20
                                                                                        else None},
                         yaxis={"title": {"text": metric}}, legend={"orientation": "h", "y": -0.2},
                         margin={"l": 80, "r": 40, "t": 80, "b": 100}, template="plotly_white")
    return figure


def _param_dimension(param: Any, name: str, trials: list[tuple[Any, float]]) -> dict[str, Any]:
    """One axis of the parallel coordinates: log ranges on a log10 scale, choices as their values."""
    from optuna.distributions import CategoricalDistribution

    distribution = param.distribution()
    raw = [trial.params.get(param.key) for trial, _ in trials]
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        return {"label": name, "values": [choices.index(v) if v in choices else None for v in raw],
                "tickvals": list(range(len(choices))), "ticktext": [_cell(param.decode(c)) for c in choices],
                "range": [-0.5, len(choices) - 0.5] if len(choices) > 1 else [-1, 1]}
    if getattr(distribution, "log", False):
        low, high = math.log10(distribution.low), math.log10(distribution.high)
        ticks = list(range(math.ceil(low), math.floor(high) + 1))
        return {"label": name, "values": [None if v is None else math.log10(v) for v in raw], "range": [low, high],
                "tickvals": ticks, "ticktext": [f"1e{t}" for t in ticks]}
    return {"label": name, "values": raw, "range": [distribution.low, distribution.high]}


def _parallel_figure(sweep: Sweep) -> Any:
    """Each trial as a line through its values and its metric, coloured from the worst (red) to the best (blue)."""
    import plotly.graph_objects as go

    metric = sweep.spec.metric
    trials = _shown_trials(sweep)
    names = _short_names(sweep)
    values = [v for _, v in trials]
    dimensions = [{"label": metric, "values": values}]
    dimensions += [_param_dimension(p, n, trials) for p, n in zip(sweep.params, names, strict=True)]
    if any(t.state.name == "PRUNED" for t, _ in trials):
        dimensions.append({"label": "state", "values": [int(t.state.name == "PRUNED") for t, _ in trials],
                           "tickvals": [0, 1], "ticktext": ["complete", "pruned"], "range": [-0.5, 1.5]})
    line = {"color": values, "colorscale": _COLORSCALE, "reversescale": sweep.spec.mode != "max",
            "showscale": True, "colorbar": {"title": {"text": metric}}}
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line=line, labelangle=0, labelside="top",
                                    labelfont={"size": 13}))
    legend = [f"{n} = {p.key}" for n, p in zip(names, sweep.params, strict=True) if n != p.key]
    note = "<br>".join(legend)
    if any(t.state.name == "PRUNED" for t, _ in trials):
        note += ("<br>" if note else "") + "pruned trials at the last value they reported"
    figure.update_layout(title={"text": f"Parallel Coordinate Plot: {sweep.spec.name} ({len(trials)} trials)"},
                         margin={"l": 90, "r": 90, "t": 120, "b": 50 + 18 * (note.count("<br>") + 1)},
                         template="plotly_white")
    if note:  # below the axes' lowest tick labels, in the bottom margin kept for it
        figure.add_annotation(text=note, xref="paper", yref="paper", x=0, y=0, yshift=-36, yanchor="top",
                              showarrow=False, align="left", xanchor="left", font={"size": 12, "color": "#444"})
    return figure


def _figures(sweep: Sweep, name: str) -> tuple[Any, Any]:
    """The plotly figure and the matplotlib axes of one plot."""
    import optuna.visualization as plotly_plots
    import optuna.visualization.matplotlib as mpl_plots

    study = sweep.study
    target_name = sweep.spec.metric
    kwargs: dict[str, Any] = {}
    if name in ("optimization_history", "parallel_coordinate", "param_importances"):
        kwargs["target_name"] = target_name
    axes = getattr(mpl_plots, f"plot_{name}")(study, **kwargs)
    if name == "optimization_history":
        return _history_figure(sweep), axes
    if name == "parallel_coordinate":
        return _parallel_figure(sweep), axes
    return getattr(plotly_plots, f"plot_{name}")(study, **kwargs), axes


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
