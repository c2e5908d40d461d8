"""The embedded sweep store: Optuna's journal file against SQLite, with several worker processes on one machine.

``python -m benchmarks.sweep_storage [--workers 4] [--trials 200] [--reps 3] [--out DIR]``

Each worker process runs trials the way ``enhtrain sweep`` does: ``ask`` with a fixed search space (a log-float,
an int and a categorical, sampled by TPE), one heartbeat (SQLite only: the journal store has no heartbeat),
five intermediate values with a pruning check after each, then ``tell``. Trials take no time of their own, so
the store is under far more load than in a real sweep, where a trial trains for seconds or hours. Every store
runs in every repetition, in rotated order. Reported: the wall time per trial, the slowest single store
operation, the errors (``database is locked`` and the like), whether every trial number was told exactly once,
and, after a worker is killed with SIGKILL in the middle of its writes, how long the others take to finish.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import print_json

STORES = ("journal", "sqlite", "sqlite_wal")
"""The embedded stores compared: Optuna's journal file, SQLite, and SQLite in write-ahead-log mode."""


def _storage(kind: str, directory: Path) -> Any:
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(directory / "study.journal")))
    if kind == "sqlite_wal":
        import sqlite3

        connection = sqlite3.connect(directory / "study.db")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.close()
    return optuna.storages.RDBStorage(
        f"sqlite:///{directory / 'study.db'}",
        engine_kwargs={"connect_args": {"timeout": 60}},
        heartbeat_interval=60,
        grace_period=120,
    )


def _worker(kind: str, directory: str, study_name: str, trials: int, queue: Any) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "width": IntDistribution(16, 256, step=16),
        "depth": CategoricalDistribution(["[64]", "[128, 64]", "[256, 128]"]),
    }
    storage = _storage(kind, Path(directory))
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=os.getpid()),
                              pruner=optuna.pruners.MedianPruner())
    slowest, errors, told = 0.0, [], []
    for _ in range(trials):
        try:
            start = time.perf_counter()
            trial = study.ask(space)
            if kind != "journal":
                storage.record_heartbeat(trial._trial_id)
            value = trial.params["lr"] * trial.params["width"]
            for step in range(5):
                trial.report(value * (step + 1), step)
                trial.should_prune()
            study.tell(trial, value)
            slowest = max(slowest, time.perf_counter() - start)
            told.append(trial.number)
        except Exception as err:
            errors.append(f"{type(err).__name__}: {' '.join(str(err).split())[:160]}")
    queue.put({"pid": os.getpid(), "slowest_trial_s": slowest, "errors": errors, "told": told})


def _run(kind: str, workers: int, trials: int, kill_one: bool) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory(prefix=f"sweep-storage-{kind}-") as tmp:
        directory = Path(tmp)
        optuna.create_study(study_name="bench", storage=_storage(kind, directory), direction="maximize")
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        per_worker = trials // workers
        procs = [context.Process(target=_worker, args=(kind, tmp, "bench", per_worker, queue)) for _ in range(workers)]
        start = time.perf_counter()
        for proc in procs:
            proc.start()
        killed_at = None
        if kill_one:
            # Kill one worker once the study is being written by all of them.
            deadline = time.monotonic() + 120
            study = optuna.load_study(study_name="bench", storage=_storage(kind, directory))
            while time.monotonic() < deadline and len(study.get_trials(deepcopy=False)) < trials // 4:
                time.sleep(0.05)
            os.kill(procs[0].pid, signal.SIGKILL)
            killed_at = time.perf_counter() - start
        results = []
        for _ in procs[1:] if kill_one else procs:
            results.append(queue.get(timeout=1800))
        for proc in procs:
            proc.join(timeout=60)
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name="bench", storage=_storage(kind, directory))
        states: dict[str, int] = {}
        for trial in study.get_trials(deepcopy=False):
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
        told = [n for r in results for n in r["told"]]
        errors = [e for r in results for e in r["errors"]]
        return {
            "store": kind,
            "workers": workers,
            "trials_asked": per_worker * workers,
            "wall_s": round(wall, 3),
            "ms_per_trial": round(1000 * wall / max(1, len(told)), 2),
            "slowest_trial_s": round(max((r["slowest_trial_s"] for r in results), default=0.0), 3),
            "errors": len(errors),
            "error_examples": sorted(set(errors))[:3],
            "told_once": len(told) == len(set(told)),
            "states": states,
            "killed_worker_at_s": None if killed_at is None else round(killed_at, 3),
        }


def measure(workers: int = 4, trials: int = 200, reps: int = 3, *, kill: bool = True) -> dict[str, Any]:
    """Run every store ``reps`` times, in rotated order, then once each with a worker killed by SIGKILL.

    Args:
        workers: Worker processes sharing one study.
        trials: Trials per repetition, split evenly between the workers.
        reps: Repetitions of each store.
        kill: Also run each store once with a worker killed.

    Returns:
        ``runs`` (every repetition), ``killed`` (the SIGKILL runs) and a per-store ``summary``.
    """
    runs = []
    for rep in range(reps):
        for kind in STORES[rep % len(STORES):] + STORES[:rep % len(STORES)]:
            runs.append(_run(kind, workers, trials, kill_one=False))
    killed = [_run(kind, workers, trials, kill_one=True) for kind in STORES] if kill else []
    summary = {}
    for kind in STORES:
        mine = [r for r in runs if r["store"] == kind]
        summary[kind] = {
            "median_ms_per_trial": round(statistics.median(r["ms_per_trial"] for r in mine), 2),
            "slowest_trial_s": max(r["slowest_trial_s"] for r in mine),
            "errors": sum(r["errors"] for r in mine),
            "told_once": all(r["told_once"] for r in mine),
        }
    return {"workers": workers, "trials": trials, "reps": reps, "runs": runs, "killed": killed, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print (or write) its JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_storage", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the JSON here as well")
    args = parser.parse_args(argv)
    result = measure(args.workers, args.trials, args.reps)
    print_json(result, args.out, "sweep-storage.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
