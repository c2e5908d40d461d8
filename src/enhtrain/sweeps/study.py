"""Where a sweep lives: its directory, its Optuna storage and study, and what the study stores about it.

The embedded store is a SQLite file, ``study.db``, in the sweep's directory (``<root_dir>/<name>/``), in
write-ahead-log mode: several processes of one machine share it safely, it needs no server, and unlike Optuna's
journal file it has Optuna's heartbeat, which turns the trial of a killed worker into a failed trial that is
queued again (``benchmarks/sweep_storage.py`` measures both). Any SQLAlchemy database URL (PostgreSQL, MySQL)
serves many machines. The study's user attributes hold the spec (without the storage URL) and the base config,
so that a worker elsewhere needs only the code and the URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from enhtrain.documents import dump_yaml, read_text
from enhtrain.errors import ConfigError
from enhtrain.security import inside
from enhtrain.sweeps._common import quiet_optuna
from enhtrain.sweeps.base import first_difference
from enhtrain.sweeps.spec import MAX_TRIALS, Param, SweepSpec, build_pruner, build_sampler, shown
from enhtrain.sweeps.stored import RECORD_ATTR, check_record, check_root, read_record, stored_flags

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ATTR",
    "EMBEDDED_NAME",
    "Sweep",
    "create_or_continue",
    "embedded_url",
    "find_storage",
    "mask_text",
    "mask_url",
    "open_storage",
    "open_sweep",
    "quiet_optuna",
    "sweep_dir",
]

EMBEDDED_NAME = "study.db"
"""File name of the embedded store in a sweep's directory."""

ATTR = RECORD_ATTR
"""The study's user attribute that holds the spec, the base config and the trials' extra flags."""

_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_QUERY_PASSWORD = re.compile(r"([?&;](?:password|passwd|pwd)=)([^&;#\s]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A storage URL (or any text holding one) with its passwords replaced by ``***``, for messages and files.

    Both places a database URL holds a password are masked: ``user:PASSWORD@host`` and ``?password=PASSWORD``.
    """
    return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1***\3", url))


def _passwords(url: str) -> list[str]:
    found = [m.group(2) for m in _PASSWORD.finditer(url)] + [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    return [p for p in {*found, *(unquote(p) for p in found)} if p]


def mask_text(text: str, url: str) -> str:
    """``text`` with the URL masked, and every password of the URL masked wherever else it appears."""
    masked = mask_url(text.replace(url, mask_url(url)))
    for password in sorted(_passwords(url), key=len, reverse=True):
        masked = masked.replace(password, "***")
    return masked


def sweep_dir(root_dir: str | Path, name: str) -> Path:
    """The sweep's directory, ``<root_dir>/<name>/``: the trials' run directories, the store, the plots."""
    return Path(root_dir) / name


def embedded_url(directory: str | Path) -> str:
    """The SQLAlchemy URL of the embedded store of a sweep directory."""
    return f"sqlite:///{Path(directory).resolve() / EMBEDDED_NAME}"


def _create_embedded(path: Path) -> None:
    """Create the embedded store with Optuna's tables, so that it appears at ``path`` complete or not at all.

    Two workers that start at once on a new sweep would otherwise both create the tables in one file, and one of
    them fails on "table already exists". The schema is built in a private file in the same folder, switched to
    write-ahead logging (a setting kept in the file), and linked into place only if no one else was first.
    """
    from optuna.storages import RDBStorage

    private = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        storage = RDBStorage(f"sqlite:///{private}")
        storage.engine.dispose()
        with contextlib.closing(sqlite3.connect(private, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        with contextlib.suppress(FileExistsError):  # another worker was first: its store is used
            os.link(private, path)
    finally:
        for leftover in (private, private.with_name(private.name + "-wal"), private.with_name(private.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _connect_args(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"timeout": 60}
    if url.startswith(("postgresql", "postgres", "mysql", "mariadb")):
        return {"connect_timeout": 10}
    return {}


def open_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int | None = 3, what: str = "sweep.storage", create: bool = False) -> Any:
    """Open an Optuna RDB storage, with the heartbeat and the retry of dead workers' trials when asked.

    Args:
        url: A SQLAlchemy URL.
        heartbeat_interval: Seconds between heartbeats; ``None`` for a storage that only reads.
        grace_period: Seconds without a heartbeat before a running trial counts as dead.
        max_retry: How many times a dead worker's trial is queued again.
        what: Where the URL came from, for messages.
        create: Create an SQLite file that does not exist yet (``sweep run`` only; a command that reads a sweep
            never creates a database).

    Raises:
        ConfigError: If the URL is malformed, its driver is missing, or the database cannot be reached.
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    quiet_optuna()
    shown_url = shown(mask_url(url), 200)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.parent.is_dir():
            raise ConfigError(f"{what}: cannot open '{shown_url}': the folder '{shown(path.parent, 200)}' does not "
                              "exist")
        if not path.exists():
            if not create:
                raise ConfigError(f"{what}: no database '{shown_url}': the file "
                                  f"'{shown(path, 200)}' does not exist; give the URL of an existing sweep's store")
            _create_embedded(path)
    kwargs: dict[str, Any] = {"engine_kwargs": {"connect_args": _connect_args(url)}}
    if heartbeat_interval is not None:
        kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
    try:
        return _rdb_storage(url, kwargs)
    except ImportError as err:
        cause = err.__cause__ if isinstance(err.__cause__, ImportError) else err
        raise ConfigError(
            f"{what}: '{shown_url}' needs the database driver '{cause.name or cause}', which is not installed; "
            "install it (pip install 'enhtrain[sweep]' has psycopg, the PostgreSQL one)"
        ) from err
    except Exception as err:
        detail = mask_text(" ".join(str(err).split("\n")[0].split()), url)[:300]
        raise ConfigError(f"{what}: cannot reach the storage '{shown_url}': {shown(detail, 300)}; check the URL, and "
                          "that the database server runs and accepts this user") from err


def _rdb_storage(url: str, kwargs: dict[str, Any], attempts: int = 5) -> Any:
    """Open the storage; workers that create a new database's tables at the same moment retry once they exist."""
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            return RDBStorage(url, **kwargs)
        except (IntegrityError, OperationalError, ProgrammingError) as err:
            racing = "already exists" in str(err) or "duplicate" in str(err).lower()
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def find_storage(name: str, *, storage: str | None, root: str | Path) -> tuple[str, Path | None]:
    """The storage URL of the sweep ``name``, and its directory when the store is the embedded one.

    Args:
        name: The sweep's name, or the path of its directory.
        storage: A database URL (``--storage``); ``None`` looks for the embedded store.
        root: Where sweep directories are looked up (``--root``).

    Raises:
        ConfigError: If no embedded store is found.
    """
    if storage is not None:
        return storage, None
    for candidate in (Path(root) / name, Path(name)):
        if (candidate / EMBEDDED_NAME).is_file():
            return embedded_url(candidate), candidate
    raise ConfigError(
        f"sweep '{shown(name)}' not found: no {shown(Path(root) / name / EMBEDDED_NAME, 200)}; give the sweep's name "
        f"(its directory under ./{shown(root)}, or --root DIR), its directory, or --storage URL for a sweep in a "
        "database"
    )


@dataclass
class Sweep:
    """An open sweep: its spec, base config, storage and study.

    Attributes:
        spec: The spec.
        base: The composed base config.
        trial_flags: Command-line flags every trial gets (``--safe``, ``--allow_module``).
        url: The storage URL.
        storage: The Optuna storage.
        study: The Optuna study.
        directory: The sweep's directory on this machine.
        params: The spec's parameters, parsed.
    """

    spec: SweepSpec
    base: dict[str, Any]
    trial_flags: list[str]
    url: str
    storage: Any
    study: optuna.Study
    directory: Path
    params: list[Param] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.params:
            self.params = self.spec.parsed_params()

    @property
    def base_path(self) -> Path:
        """``sweep-base.yaml``: the base config, as every trial reads it."""
        return self.directory / "sweep-base.yaml"

    @property
    def root_dir(self) -> str:
        """The ``experiment.root_dir`` of the trials."""
        experiment = self.base.get("experiment") or {}
        return str(experiment.get("root_dir") or "runs")

    def write_base(self) -> Path:
        """Write ``sweep-base.yaml`` into the sweep's directory (atomically) and return its path."""
        from enhtrain._io import atomic_write_text

        self.directory.mkdir(parents=True, exist_ok=True)
        header = (f"# The base config of sweep {self.spec.name}: every trial runs it plus its own layer, "
                  "sweep-trial-<n>.yaml.\n")
        text = header + dump_yaml(self.base)
        path = inside(self.base_path, self.directory, what="sweep file")
        try:
            same = read_text(path, what="sweep file") == text
        except ConfigError:  # missing, or not a plain file: replaced by the file it should be
            same = False
        if not same:
            atomic_write_text(path, text)
        return self.base_path

    def close(self) -> None:
        """Close the storage's connections (an embedded store's side files go with the last one)."""
        self.storage.engine.dispose()

    def target(self) -> int:
        """The number of trials the study is to finish, as stored (``sweep run --trials`` may raise it)."""
        where = f"study '{self.spec.name}' in '{mask_url(self.url)}'"
        record = read_record(self.storage, self.spec.name, where)
        trials = (record.get("spec") or {}).get("trials") if isinstance(record, dict) else None
        if trials is None:
            return self.spec.trials
        if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= MAX_TRIALS:
            raise ConfigError(f"{where}: sweep.trials: {shown(trials)} is not a number of trials from 1 to "
                              f"{MAX_TRIALS}: the store is damaged")
        return trials


def _study_names(storage: Any) -> list[str]:
    """The studies of a storage, read without Optuna's loading of every study's attributes (unbounded JSON)."""
    from sqlalchemy import text

    with storage.engine.connect() as connection:
        return [str(row[0]) for row in connection.execute(text("SELECT study_name FROM studies"))]


def open_sweep(name: str, url: str, directory: Path | None = None, *, seed_offset: int = 0,
               for_work: bool = True, flags: Sequence[str] = (), root: str | Path = "runs") -> Sweep:
    """Open an existing sweep from its study, checking what the store holds as a file on disk is checked.

    Args:
        name: The study's name.
        url: The storage URL.
        directory: The sweep's directory on this machine (default: ``<root>/<name>``).
        seed_offset: Added to the sampler's seed (one offset per worker).
        for_work: Open with the heartbeat (to run trials) rather than to read results.
        flags: The trial flags of the person running this command (``--safe``, ``--allow_module M``); none is
            ever taken from the store.
        root: The folder trials run in (``--root``): a worker refuses a study whose base config sends them
            elsewhere.

    Raises:
        ConfigError: If the storage cannot be reached, the study does not exist or was not made by enhtrain, or
            what the store holds fails a check.
    """
    shown_url = mask_url(url)
    where = f"study '{shown(name)}' in '{shown(shown_url, 200)}'"
    probe = open_storage(url, what="--storage")
    try:
        return _open_checked(name, url, probe, directory, seed_offset=seed_offset, for_work=for_work, flags=flags,
                             root=root, where=where)
    except BaseException:
        probe.engine.dispose()  # no connection left open: SQLite's side files go with it
        raise


def _open_checked(name: str, url: str, probe: Any, directory: Path | None, *, seed_offset: int, for_work: bool,
                  flags: Sequence[str], root: str | Path, where: str) -> Sweep:
    import optuna

    shown_url = mask_url(url)
    names = _study_names(probe)
    if name not in names:
        listed = shown(", ".join(sorted(names)), 300) or "none"
        raise ConfigError(f"no study '{shown(name)}' in '{shown(shown_url, 200)}'; its studies: {listed}")
    record = read_record(probe, name, where)
    spec, base, trial_flags = check_record(record, url=url, where=where, flags=flags)
    if spec.name != name:
        raise ConfigError(f"{where}: the stored spec names the sweep '{spec.name}': the store is damaged")
    if directory is None:
        directory = sweep_dir(root, name)
    if for_work:
        check_root(base, directory.parent, where)
    storage = probe
    if for_work:
        storage = open_storage(url, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
                               max_retry=spec.max_retry, what="--storage")
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=build_sampler(spec, seed_offset),
                                  pruner=build_pruner(spec))
        _check_trials(study, where)
        if for_work:
            _reseed(study, spec, seed_offset)
    except BaseException:
        storage.engine.dispose()
        raise
    return Sweep(spec, base, trial_flags, url, storage, study, directory)


def _reseed(study: Any, spec: SweepSpec, seed_offset: int = 0) -> None:
    """Give a continued study a sampler seeded from the number of trials it holds (repeatable, and new values)."""
    done = len(study.get_trials(deepcopy=False))
    if done:
        study.sampler = build_sampler(spec, seed_offset, done=done)


def _check_trials(study: Any, where: str) -> None:
    """Read every trial once, so that a damaged one is refused before anything runs or is written."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        study.get_trials(deepcopy=False)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, SQLAlchemyError) as err:
        detail = shown(" ".join(str(err).split()), 150)
        raise ConfigError(f"{where}: cannot read its trials ({type(err).__name__}: {detail}): the store is damaged "
                          "or was written by something else than enhtrain") from err


def create_or_continue(spec: SweepSpec, base: dict[str, Any], trial_flags: list[str], url: str, directory: Path,
                       *, command: list[str], spec_file: str) -> Sweep:
    """Create the sweep's study, or continue it when it exists with the same base config and spec.

    Args:
        spec: The checked spec.
        base: The composed base config.
        trial_flags: Flags for every trial.
        url: The storage URL.
        directory: The sweep's directory.
        command: The command line that started the sweep, recorded in the study.
        spec_file: The spec's file, for messages.

    Raises:
        ConfigError: If the study exists with another base config or spec (``trials`` may change), or was not made
            by enhtrain.
    """
    import optuna

    from enhtrain import __version__

    storage = open_storage(url, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
                           max_retry=spec.max_retry, create=True)
    where = f"study '{spec.name}' in '{shown(mask_url(url), 200)}'"
    existing = _study_names(storage)
    base_text = dump_yaml(base)
    study = optuna.create_study(study_name=spec.name, storage=storage, direction=spec.direction,
                                sampler=build_sampler(spec), pruner=build_pruner(spec), load_if_exists=True)
    if spec.name in existing:
        stored = read_record(storage, spec.name, where)
        stored_spec, stored_base, _ = check_record(stored, url=url, where=where, flags=trial_flags)
        old_spec = {k: v for k, v in stored_spec.stored().items() if k != "trials"}
        new_spec = {k: v for k, v in spec.stored().items() if k != "trials"}
        changed = first_difference(old_spec, new_spec)
        if changed is not None:
            raise ConfigError(
                f"{spec_file}: sweep.{changed}: differs from the spec sweep '{spec.name}' started with (only trials "
                "may change when a sweep continues); restore it, or give the sweep another name"
            )
        changed = first_difference(stored_base, base)
        if changed is not None:
            raise ConfigError(
                f"{changed}: the base config differs from the one sweep '{spec.name}' started with; give the same "
                "config files, environment and flags, or give the sweep another name"
            )
        if stored_spec.trials != spec.trials:
            study.set_user_attr(ATTR, {**stored, "spec": spec.stored()})
        _reseed(study, spec)
    else:
        study.set_user_attr(ATTR, {"version": __version__, "spec": spec.stored(), "base": base_text,
                                   "trial_flags": stored_flags(trial_flags),
                                   "command": [mask_url(arg) for arg in command],
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        params = {p.key: p for p in spec.parsed_params()}
        for values in spec.enqueue:
            study.enqueue_trial({key: params[key].encode(value) for key, value in values.items()})
    return Sweep(spec, base, trial_flags, url, storage, study, directory)
