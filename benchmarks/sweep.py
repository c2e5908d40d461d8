"""Sweeps: the cost of a sweep per trial, a plain Optuna script against ``sweep run``, and a 20-trial sweep.

``python -m benchmarks.sweep [--smoke] [--only overhead|versus|twenty] [--rounds 3] [--out DIR]``

**Against a plain Optuna script.** ``benchmarks/sweep_plain.py`` runs ``configs/sweeps/lr.yaml``'s search on
``configs/quickstart.yaml``'s model and data for 2 epochs, 8 trials, every trial a ``Trainer.fit`` in the
script's one process; ``enhtrain sweep run`` runs the same spec with 1 worker, and with 2. Each of the
``--rounds`` rounds runs the three once, in an order that rotates from round to round. Wall times are whole
commands, imports included; the ratio is ``sweep run``'s over the script's within a round, and its median over
the rounds is reported. Per trial: the trial's process wall time less the run's own time (``duration_s`` of its
``metadata.json``), and the worker's bookkeeping (Optuna's ``ask`` to ``tell`` less the process), medians over
every trial of every round.

**Overhead per trial.** Each repetition adds one trial to a sweep whose parameters have one value each (so
every trial trains the same config) and launches that config alone with ``enhtrain fit``, in alternating order,
with one torch thread. The overhead per trial is the median, over repetitions, of the trial's process against
the alone process (both whole processes, timed from start to exit: what the trial layer, the pruning callback
and its channel cost), plus the median of the worker's bookkeeping around the process (from Optuna's ``ask`` to
its ``tell``, less the process: writing the trial's files, the heartbeat, reading and recording its metadata).
Composing the base config (``fit --print_config``) is a one-off per ``sweep run``, reported apart. The target is
under 1 s or 5 % of the alone run, whichever is larger.

**Twenty trials.** ``configs/sweeps/lr.yaml``'s search (learning rate, width, batch size; TPE, median pruner) on
``configs/quickstart.yaml`` with fewer epochs, 2 workers, against the same 20 configs run one after another, each
to the end: wall times, and the best ``val/acc`` of each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    REPO,
    load_average,
    machine_info,
    print_json,
    python,
    rotate,
    run_process,
    subprocess_env,
)

QUICKSTART = REPO / "configs" / "quickstart.yaml"
SPEC = REPO / "configs" / "sweeps" / "lr.yaml"


def _enhtrain(args: list[str], cwd: Path, threads: int | None = None) -> Any:
    return run_process([python(), "-m", "enhtrain", *args], cwd=cwd, env=subprocess_env(threads), timeout=3600)


def _apply(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with dotted keys set to ``values``."""
    config = json.loads(json.dumps(base))
    for key, value in values.items():
        parts = key.split(".")
        node = config
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return config


def _trial_configs(cwd: Path, name: str) -> list[tuple[int, str, dict[str, Any]]]:
    """``(number, state, config)`` of every trial of a finished sweep: its base config with the trial's values."""
    import optuna

    from enhtrain.sweeps.study import embedded_url, open_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = open_sweep(name, embedded_url(cwd / "runs" / name), cwd / "runs" / name, for_work=False)
    out = []
    for trial in sweep.study.get_trials():
        values = {p.key: p.decode(trial.params[p.key]) for p in sweep.params}
        out.append((trial.number, trial.state.name, _apply(sweep.base, values)))
    return out


def _alone(cwd: Path, number: int, config: dict[str, Any], name: str, threads: int | None = None) -> dict[str, Any]:
    """Run one trial's config as an ordinary ``enhtrain fit`` and return its wall time and final ``val/acc``."""
    config = json.loads(json.dumps(config))
    config["experiment"].update({"name": name, "version": f"run_{number}"})
    path = cwd / f"{name}-{number}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = _enhtrain(["fit", "--config", path.name], cwd, threads).check(f"alone run {number}")
    meta = json.loads((cwd / "runs" / name / f"run_{number}" / "metadata.json").read_text(encoding="utf-8"))
    return {"wall_s": result.wall_s, "val_acc": meta["metrics"].get("val/acc")}


def _write_spec(path: Path, **changes: Any) -> Path:
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    spec["sweep"].update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def overhead(work: Path, *, reps: int, epochs: int) -> dict[str, Any]:
    """Measure the overhead of a sweep per trial (see the module's docstring).

    Each repetition adds one trial to the same sweep (``sweep run --trials r+1``, values fixed by ``enqueue``) and
    launches the same config alone, in alternating order; both are whole processes, timed the same way.
    """
    values = {"model.init_args.lr": 0.003, "model.init_args.hidden_dims": [128, 64], "data.init_args.batch_size": 64}
    cwd = work / "overhead"
    cwd.mkdir(parents=True)
    shutil.copy(QUICKSTART, cwd / "base.yaml")
    flags = ["--config", "base.yaml", "--trainer.max_epochs", str(epochs)]
    compose = _enhtrain(["fit", *flags, "--print_config"], cwd, threads=1).check("fit --print_config")
    base = yaml.safe_load(compose.stdout)
    rows = []
    for rep in range(reps):
        # One value per parameter: every trial trains exactly the config launched alone.
        _write_spec(cwd / "spec.yaml", name="ovh", trials=reps, sampler="random", pruner="none",
                    params={key: {"choice": [value]} for key, value in values.items()})
        alone = sweep_wall = None
        for variant in ("sweep", "alone") if rep % 2 == 0 else ("alone", "sweep"):
            if variant == "sweep":
                sweep_wall = _enhtrain(["sweep", "run", "--sweep", "spec.yaml", "--trials", str(rep + 1), *flags],
                                       cwd, threads=1).check("sweep").wall_s
            else:
                alone = _alone(cwd, rep, _apply(base, values), "alone", threads=1)
        trial = _trials(cwd, "ovh")[rep]
        assert alone is not None and sweep_wall is not None
        process = float(trial.user_attrs["enhtrain_duration_s"])
        asked_to_told = (trial.datetime_complete - trial.datetime_start).total_seconds()
        rows.append({
            "rep": rep,
            "alone_wall_s": round(alone["wall_s"], 3),
            "trial_process_s": round(process, 3),
            "process_minus_alone_s": round(process - alone["wall_s"], 3),
            "bookkeeping_s": round(asked_to_told - process, 3),
            "sweep_command_wall_s": round(sweep_wall, 3),
            "same_val_acc": alone["val_acc"] == trial.value,
        })
    process_minus_alone = statistics.median(r["process_minus_alone_s"] for r in rows)
    bookkeeping = statistics.median(r["bookkeeping_s"] for r in rows)
    alone_median = statistics.median(r["alone_wall_s"] for r in rows)
    per_trial = process_minus_alone + bookkeeping
    limit = max(1.0, 0.05 * alone_median)
    return {"reps": reps, "epochs": epochs, "rows": rows,
            "process_minus_alone_s": round(process_minus_alone, 3),
            "process_minus_alone_range_s": [min(r["process_minus_alone_s"] for r in rows),
                                            max(r["process_minus_alone_s"] for r in rows)],
            "bookkeeping_per_trial_s": round(bookkeeping, 3),
            "overhead_per_trial_s": round(per_trial, 3),
            "compose_base_s": round(compose.wall_s, 3),
            "alone_median_s": round(alone_median, 3), "limit_s": round(limit, 3), "met": per_trial < limit}


def _trials(cwd: Path, name: str) -> list[Any]:
    import optuna

    from enhtrain.sweeps.study import embedded_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=embedded_url(cwd / "runs" / name))
    return sorted(study.get_trials(), key=lambda t: t.number)


def _plain_run(work: Path, *, trials: int, epochs: int) -> tuple[float, dict[str, Any]]:
    """Run the plain Optuna script in ``work``; return its wall time and its JSON."""
    work.mkdir(parents=True, exist_ok=True)
    plain = run_process([python(), "-m", "benchmarks.sweep_plain", "--trials", str(trials), "--epochs", str(epochs)],
                        cwd=work, env=subprocess_env(), timeout=3600).check("plain Optuna script")
    return plain.wall_s, json.loads(plain.stdout)


def _sweep_run(cwd: Path, *, trials: int, epochs: int, workers: int) -> dict[str, Any]:
    """Run the sweep with ``workers`` workers in ``cwd``; return its wall time and its trials' times."""
    cwd.mkdir(parents=True)
    shutil.copy(QUICKSTART, cwd / "base.yaml")
    _write_spec(cwd / "spec.yaml", trials=trials)
    flags = ["--config", "base.yaml", "--trainer.max_epochs", str(epochs)]
    sweep = _enhtrain(["sweep", "run", "--sweep", "spec.yaml", "--workers", str(workers), *flags],
                      cwd).check(f"sweep run --workers {workers}")
    done = _trials(cwd, "lr-search")
    overheads, bookkeeping = [], []
    for trial in done:
        process = float(trial.user_attrs["enhtrain_duration_s"])
        meta_path = cwd / "runs" / "lr-search" / f"trial_{trial.number}" / "metadata.json"
        own = json.loads(meta_path.read_text(encoding="utf-8")).get("duration_s")
        if own is not None:
            overheads.append(process - float(own))
        bookkeeping.append((trial.datetime_complete - trial.datetime_start).total_seconds() - process)
    complete = [t for t in done if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"wall_s": sweep.wall_s, "states": [t.state.name for t in done], "params": [t.params for t in done],
            "best": None if best is None else {"number": best.number, "value": best.value},
            "overheads": overheads, "bookkeeping": bookkeeping}


def versus(work: Path, *, trials: int, epochs: int, workers_runs: tuple[int, ...] = (1, 2),
           rounds: int = 3) -> dict[str, Any]:
    """The plain Optuna script against ``sweep run`` with 1 and 2 workers, ``rounds`` times, interleaved.

    Each round runs the plain script and each sweep once, in an order that rotates from round to round; the
    ratio to the plain script is taken within each round, and its median over the rounds is reported (as the
    wall times, medians too). The per-trial times are medians over every trial of every round.
    """
    variants = ["plain", *(f"workers_{w}" for w in workers_runs)]
    runs: dict[str, list[Any]] = {v: [] for v in variants}
    for index in range(rounds):
        for variant in rotate(variants, index):
            if variant == "plain":
                runs[variant].append(_plain_run(work / f"plain-{index}", trials=trials, epochs=epochs))
            else:
                workers = int(variant.removeprefix("workers_"))
                runs[variant].append(_sweep_run(work / f"versus-{workers}-{index}", trials=trials, epochs=epochs,
                                                workers=workers))
    plain_walls = [wall for wall, _ in runs["plain"]]
    plain_out = runs["plain"][0][1]
    result: dict[str, Any] = {"trials": trials, "epochs": epochs, "rounds": rounds,
                              "plain_wall_s": round(statistics.median(plain_walls), 3),
                              "plain_walls_s": [round(w, 3) for w in plain_walls], "plain_best": plain_out["best"]}
    for variant in variants[1:]:
        rows = runs[variant]
        ratios = [row["wall_s"] / wall for row, wall in zip(rows, plain_walls, strict=True)]
        overheads = [v for row in rows for v in row["overheads"]]
        bookkeeping = [v for row in rows for v in row["bookkeeping"]]
        result[variant] = {
            "wall_s": round(statistics.median(row["wall_s"] for row in rows), 3),
            "walls_s": [round(row["wall_s"], 3) for row in rows],
            "ratio_to_plain": round(statistics.median(ratios), 3),
            "ratios_to_plain": [round(r, 3) for r in ratios],
            "states": rows[0]["states"],
            "same_values_as_plain": all(row["params"] == [t["params"] for t in plain_out["trials"]] for row in rows),
            "best": rows[0]["best"],
            "process_minus_run_median_s": round(statistics.median(overheads), 3) if overheads else None,
            "bookkeeping_median_s": round(statistics.median(bookkeeping), 3),
            "bookkeeping_max_s": round(max(bookkeeping), 3),
        }
    one = result["workers_1"]
    result["met"] = {"ratio_at_most_1.5": one["ratio_to_plain"] <= 1.5,
                     "same_best": (one["best"] or {}).get("value") == (plain_out["best"] or {}).get("value"),
                     "two_workers_faster": "workers_2" in result and result["workers_2"]["wall_s"] < one["wall_s"],
                     "process_minus_run_at_most_0.3": (one["process_minus_run_median_s"] or 0) <= 0.3,
                     "bookkeeping_below_0.05": one["bookkeeping_median_s"] < 0.05}
    return result


def twenty(work: Path, *, trials: int, workers: int, epochs: int) -> dict[str, Any]:
    """Run the 20-trial sweep with ``workers`` workers, then the same configs one after another."""
    cwd = work / "twenty"
    cwd.mkdir(parents=True)
    shutil.copy(QUICKSTART, cwd / "base.yaml")
    _write_spec(cwd / "spec.yaml", trials=trials)
    flags = ["--config", "base.yaml", "--trainer.max_epochs", str(epochs)]
    sweep = _enhtrain(["sweep", "run", "--sweep", "spec.yaml", "--workers", str(workers), *flags], cwd).check("sweep")
    shown = json.loads(_enhtrain(["sweep", "show", "lr-search", "--json"], cwd).check("show").stdout)
    states: dict[str, int] = {}
    for row in shown["trials"]:
        states[row["state"]] = states.get(row["state"], 0) + 1
    trial_time = sum(float(t.user_attrs["enhtrain_duration_s"]) for t in _trials(cwd, "lr-search"))
    sequential_start = time.perf_counter()
    runs = [_alone(cwd, number, config, "sequential") for number, _, config in _trial_configs(cwd, "lr-search")]
    sequential_wall = time.perf_counter() - sequential_start
    best_run = max(runs, key=lambda r: r["val_acc"] if r["val_acc"] is not None else -1.0)
    best_index = runs.index(best_run)
    in_sweep = next(row for row in shown["trials"] if row["trial"] == best_index)
    return {
        "trials": trials, "workers": workers, "epochs": epochs,
        "sweep_wall_s": round(sweep.wall_s, 3),
        "sweep_states": states,
        "sweep_trial_time_s": round(trial_time, 3),
        "sweep_best": shown["sweep"]["best"],
        "sequential_wall_s": round(sequential_wall, 3),
        "sequential_best_val_acc": best_run["val_acc"],
        "sequential_best_trial": best_index,
        "sequential_best_in_sweep": {"state": in_sweep["state"], "value": in_sweep["value"],
                                     "validations": len(_trials(cwd, "lr-search")[best_index].intermediate_values)},
        "speedup": round(sequential_wall / sweep.wall_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print (or write) their JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few short trials: checks the harness only")
    parser.add_argument("--only", choices=("overhead", "versus", "twenty"))
    parser.add_argument("--trials", type=int, default=8, help="trials of the comparison with the plain script")
    parser.add_argument("--reps", type=int, default=6, help="repetitions of the overhead measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the comparison with the plain script")
    parser.add_argument("--out", type=Path, help="write the JSON here as well")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="enhtrain-sweep-bench-"))
    result: dict[str, Any] = {"machine": machine_info(), "load_start": load_average(),
                              "mode": "smoke" if args.smoke else "full"}
    try:
        if args.only in (None, "overhead"):
            result["overhead"] = overhead(work, reps=1 if args.smoke else args.reps, epochs=1 if args.smoke else 3)
        if args.only in (None, "versus"):
            result["versus"] = versus(work, trials=2 if args.smoke else args.trials, epochs=1 if args.smoke else 2,
                                      workers_runs=(1,) if args.smoke else (1, 2),
                                      rounds=1 if args.smoke else args.rounds)
        if args.only in (None, "twenty"):
            result["twenty"] = twenty(work, trials=2 if args.smoke else 20, workers=2, epochs=1 if args.smoke else 5)
    finally:
        result["load_end"] = load_average()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_json(result, args.out, "sweep.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
