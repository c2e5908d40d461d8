"""``enhtrain sweep run|worker|show|best|plots``: hyper-parameter sweeps on Optuna.

The parent process of a sweep never imports torch: each trial is an ordinary ``enhtrain fit`` in its own process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enhtrain.commands._shared import ArgParser
from enhtrain.errors import ConfigError

__all__ = ["USAGE", "run"]

USAGE = """\
usage: enhtrain sweep run --sweep SPEC [--workers N] [--trials N] [--storage URL] [--no-fork] [--config FILE ...]
                           [flags]
       enhtrain sweep worker [NAME] [--storage URL] [--study NAME] [--workers N] [--root DIR] [--no-fork]
                             [--safe] [--allow_module M]
       enhtrain sweep show NAME [--storage URL] [--root DIR] [--json]
       enhtrain sweep best NAME [--storage URL] [--root DIR] [--print_config | --json]
       enhtrain sweep plots NAME [--storage URL] [--root DIR] [--out DIR]

Hyper-parameter sweeps on Optuna: every trial is an ordinary `enhtrain fit` run, in runs/<sweep>/trial_<n>/.
"""
"""What ``enhtrain sweep --help`` prints."""

_ACTIONS = ("run", "worker", "show", "best", "plots")


def _parser(action: str) -> ArgParser:
    parser = ArgParser(prog=f"enhtrain sweep {action}", add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action="store_true")
    if action == "run":
        parser.add_argument("--sweep", required=False)
        parser.add_argument("--trials", type=int)
    if action in ("run", "worker"):
        parser.add_argument("--workers", type=int, default=1)
        parser.add_argument("--no-fork", dest="no_fork", action="store_true")
    if action == "worker":
        parser.add_argument("--study")
    if action != "run":
        if action != "worker":
            parser.add_argument("name")
        else:
            parser.add_argument("name", nargs="?")
        parser.add_argument("--root", default="runs")
    parser.add_argument("--storage")
    if action in ("show", "best"):
        parser.add_argument("--json", action="store_true")
    if action == "best":
        parser.add_argument("--print_config", action="store_true")
    if action == "plots":
        parser.add_argument("--out")
    return parser


def _echo_lock() -> Any:
    lock = threading.Lock()

    def echo(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return echo


_MAX_WORKERS = 256


def _check_workers(workers: int) -> None:
    if not 1 <= workers <= _MAX_WORKERS:
        raise ConfigError(f"--workers {_count(workers)}: give 1 to {_MAX_WORKERS} (the number of trials that run at a "
                          "time on this machine)")


def _count(value: int) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


def _check_name(name: str | None) -> None:
    """Refuse a sweep name that cannot be one: a control character would also break the one-line message."""
    from enhtrain.sweeps.spec import shown

    if name is not None and (not name or not name.isprintable() or len(name.encode()) > 4096):
        raise ConfigError(f"sweep name '{shown(name)}': not a sweep's name or directory (it holds a control "
                          "character, or is empty or too long); give the name of the sweep (see its spec's sweep.name)")


_DAMAGED = (ValueError, KeyError, TypeError, AttributeError, LookupError, RecursionError)


def _reading(action: str, handler: Any, argv: list[str]) -> Any:
    """Run a command that reads a study; whatever a damaged store breaks inside Optuna becomes one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from enhtrain.sweeps.spec import shown
    from enhtrain.sweeps.study import mask_url

    try:
        return handler(argv)
    except ConfigError:
        raise
    except (*_DAMAGED, SQLAlchemyError) as err:
        detail = mask_url(" ".join(str(err).split()))
        raise ConfigError(
            f"enhtrain sweep {action}: cannot read the sweep's store ({type(err).__name__}: {shown(detail, 200)}): "
            "the store is damaged or was written by something else than enhtrain"
        ) from err


def _sweep_run(argv: list[str]) -> int:
    from enhtrain.secrets import mask_argv
    from enhtrain.sweeps.base import check_params, compose_base
    from enhtrain.sweeps.runner import preloaded_server
    from enhtrain.sweeps.spec import load_spec, param_locations
    from enhtrain.sweeps.study import create_or_continue, embedded_url, mask_url, open_storage, sweep_dir

    args, rest = _parser("run").parse_known_args(argv)
    if args.sweep is None:
        raise ConfigError("enhtrain sweep run: --sweep SPEC is required: the YAML file with the sweep's name, metric "
                          "and params (see configs/sweeps/lr.yaml)")
    _check_workers(args.workers)
    from enhtrain.sweeps.spec import MAX_TRIALS

    if args.trials is not None and not 1 <= args.trials <= MAX_TRIALS:
        raise ConfigError(f"--trials {_count(args.trials)}: give 1 to {MAX_TRIALS}")
    if not Path(args.sweep).is_file():
        raise ConfigError(f"--sweep: spec file '{args.sweep}' not found: check the path")
    spec = load_spec(args.sweep, trials=args.trials, storage=args.storage)
    if spec.storage is not None and not _new_sqlite(spec.storage):
        # Reached before anything is composed or written: a wrong URL or password ends the command at once.
        what = "--storage" if args.storage else f"{args.sweep}: sweep.storage"
        open_storage(spec.storage, what=what).engine.dispose()
    trial_flags = _trial_flags(rest)
    # The workers' preloaded process imports torch and Lightning while this process composes the base config.
    with preloaded_server(fork=not args.no_fork) as server:
        base = compose_base(rest)
        check_params(spec.parsed_params(), base, param_locations(args.sweep))
        root_dir = str((base.get("experiment") or {}).get("root_dir") or "runs")
        directory = sweep_dir(root_dir, spec.name)
        created: list[Path] = []
        if spec.storage is not None:
            url = spec.storage
        else:
            url = embedded_url(directory)
            created = [p for p in (directory, *directory.parents) if not p.exists()]
            directory.mkdir(parents=True, exist_ok=True)
        command = ["enhtrain", "sweep", "run", *(mask_url(arg) for arg in mask_argv(argv))]
        try:
            sweep = create_or_continue(spec, base, trial_flags, url, directory, command=command, spec_file=args.sweep)
        except BaseException:
            _remove_created(created)
            raise
        sweep.write_base()
        return _work(sweep, args.workers, created=created, fork=not args.no_fork, server=server)


def _new_sqlite(url: str) -> bool:
    """Whether the URL names an SQLite file that does not exist yet (``sweep run`` creates it once input is checked)."""
    return url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists()


def _trial_flags(rest: list[str]) -> list[str]:
    """The flags of ``sweep run`` that are not config values and that every trial needs: safe mode."""
    flags: list[str] = []
    for index, arg in enumerate(rest):
        if arg == "--safe" or arg.startswith("--allow_module="):
            flags.append(arg)
        elif arg == "--allow_module" and index + 1 < len(rest):
            flags += [arg, rest[index + 1]]
    return flags


def _remove_created(created: list[Path]) -> None:
    """Remove the folders this command created (the outermost, with all below it), when bad input stopped it."""
    from enhtrain.security import inside

    if not created:
        return
    top = created[-1]
    if top.exists():
        shutil.rmtree(inside(top, top.parent, what="sweep folder"), ignore_errors=True)


def _work(sweep: Any, workers: int, *, created: list[Path] | None = None, started_here: bool = True,
          fork: bool = True, server: Any = None) -> int:
    import optuna

    from enhtrain._collector import resume as resume_collector
    from enhtrain.sweeps.results import best_trial
    from enhtrain.sweeps.runner import WorkerPool, gpu_devices

    resume_collector()  # the start is over: the workers run for long
    echo = _echo_lock()
    accelerator = str((sweep.base.get("trainer") or {}).get("accelerator") or "auto")
    pool = WorkerPool(sweep, workers=workers, echo=echo, devices=[] if accelerator == "cpu" else gpu_devices(),
                      fork=fork, server=server)
    echo(f"sweep {sweep.spec.name}: {sweep.target()} trials, {workers} at a time; runs in {sweep.directory}")
    try:
        pool.run()
    except ConfigError:
        finished = [t for t in sweep.study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]
        if not finished and started_here:  # a worker that joined a study never removes it
            # Bad input showed in the first trials: leave nothing behind, so that the fixed spec starts afresh.
            optuna.delete_study(study_name=sweep.spec.name, storage=sweep.storage)
            _remove_created(created or [])
        raise
    except KeyboardInterrupt:
        sys.stderr.write(f"enhtrain: sweep {sweep.spec.name} stopped; its running trials were queued again: "
                         "run the same command to continue\n")
        return 130
    best = best_trial(sweep)
    if best is None:
        sys.stderr.write(f"enhtrain: sweep {sweep.spec.name}: no trial completed; each trial's output is in "
                         f"{sweep.directory}/sweep-trial-<n>.log\n")
        return 1
    echo(f"best: trial {best.number}, {sweep.spec.metric}={best.value:.6g}; "
         f"`enhtrain sweep show {sweep.spec.name}` lists every trial")
    return 0


def _sweep_worker(argv: list[str]) -> int:
    from enhtrain.sweeps.runner import preloaded_server
    from enhtrain.sweeps.stored import worker_flags
    from enhtrain.sweeps.study import find_storage, open_sweep

    # The flags that loosen or tighten the trials' checks come from this command line only, never from the store.
    flags, argv = worker_flags(argv)
    args = _parser("worker").parse_args(argv)
    _check_workers(args.workers)
    name = args.study or args.name
    if name is None:
        raise ConfigError("enhtrain sweep worker: give the study: --study NAME (with --storage URL), or the sweep's "
                          "name for its embedded store")
    _check_name(name)
    url, directory = find_storage(name, storage=args.storage, root=args.root)
    with preloaded_server(fork=not args.no_fork) as server:  # importing while the store is read and checked
        sweep = _reading("worker", lambda _: open_sweep(Path(name).name, url, directory, seed_offset=os.getpid(),
                                                         flags=flags, root=args.root), argv)
        sweep.write_base()
        return _work(sweep, args.workers, started_here=False, fork=not args.no_fork, server=server)


@contextlib.contextmanager
def _open_for_results(args: Any) -> Iterator[Any]:
    from enhtrain.sweeps.study import find_storage, open_sweep

    _check_name(args.name)
    url, directory = find_storage(args.name, storage=args.storage, root=args.root)
    sweep = open_sweep(Path(args.name).name, url, directory, for_work=False, root=args.root)
    try:
        yield sweep
    finally:
        sweep.close()


def _sweep_show(argv: list[str]) -> int:
    from enhtrain.sweeps.results import format_table, summary, trial_rows

    args = _parser("show").parse_args(argv)
    with _open_for_results(args) as sweep:
        rows = trial_rows(sweep)
        if args.json:
            json.dump({"sweep": summary(sweep, rows), "trials": rows}, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(format_table(sweep, rows))
        return 0


def _sweep_best(argv: list[str]) -> int:
    from enhtrain.sweeps.results import best_config, summary, trial_rows

    args = _parser("best").parse_args(argv)
    with _open_for_results(args) as sweep:
        if args.print_config:
            sys.stdout.write(best_config(sweep))
            return 0
        best = summary(sweep, trial_rows(sweep))["best"]
        if best is None:
            best_config(sweep)  # raises the error that says no trial is complete
        if args.json:
            json.dump(best, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
            return 0
        sys.stdout.write(f"trial {best['trial']}: {sweep.spec.metric}={best['value']:.6g}\n")
        for key, value in best["params"].items():
            sys.stdout.write(f"  {key}: {json.dumps(value)}\n")
        sys.stdout.write(f"run: {best['run_dir'] or '-'}\n")
        return 0


def _sweep_plots(argv: list[str]) -> int:
    from enhtrain.sweeps.results import write_plots

    args = _parser("plots").parse_args(argv)
    out = _plots_folder(args.out)
    with _open_for_results(args) as sweep:
        try:
            written, skipped = write_plots(sweep, out)
        except OSError as err:
            from enhtrain.sweeps.spec import shown

            folder = out if out is not None else sweep.directory
            raise ConfigError(f"sweep plots: cannot write the plots into '{shown(folder, 200)}': "
                              f"{err.strerror or type(err).__name__}; give --out a folder you can write") from err
        for path in written:
            sys.stdout.write(f"{path}\n")
        for name, reason in skipped.items():
            sys.stdout.write(f"skipped {name}: {reason}\n")
        return 0


def _plots_folder(out: str | None) -> Path | None:
    """Refuse an ``--out`` that is not a folder one can write into, before the store is opened."""
    from enhtrain.sweeps.spec import shown

    if out is None:
        return None
    path = Path(out)
    if not out or not out.isprintable():
        raise ConfigError(f"--out '{shown(out)}': give the folder to write the plots into")
    real = Path(os.path.realpath(path))
    if real.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise ConfigError(f"--out '{shown(out, 200)}': a system folder ({real.parts[1]}) cannot hold plots; give "
                          "a folder of your own")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out '{shown(out, 200)}' is a file, not a folder: give the folder to write the plots "
                          "into")
    return path


def run(args: list[str]) -> int:
    """Run ``enhtrain sweep ACTION ...``; returns the exit status.

    Args:
        args: The arguments after ``sweep``.

    Raises:
        ConfigError: For bad input: an unknown action, a bad spec, an unknown parameter key, an unreachable storage.
    """
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    action, rest = args[0], args[1:]
    if action not in _ACTIONS:
        raise ConfigError(f"enhtrain sweep: unknown action '{action}'; use one of {', '.join(_ACTIONS)}")
    if any(a in ("-h", "--help") for a in rest):
        sys.stdout.write(USAGE)
        return 0
    try:
        import optuna  # noqa: F401
    except ImportError as err:
        raise ConfigError("enhtrain sweep needs Optuna: pip install 'enhtrain[sweep]'") from err
    handler = {"run": _sweep_run, "worker": _sweep_worker, "show": _sweep_show, "best": _sweep_best,
               "plots": _sweep_plots}[action]
    if action in ("show", "best", "plots"):
        return _reading(action, handler, rest)
    return handler(rest)
