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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from enhtrain.errors import ConfigError
from enhtrain.security import inside
from enhtrain.sweeps._common import quiet_optuna
from enhtrain.sweeps.base import first_difference
from enhtrain.sweeps.spec import Param, SweepSpec, build_pruner, build_sampler

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ATTR",
    "EMBEDDED_NAME",
    "Sweep",
    "create_or_continue",
    "embedded_url",
    "find_storage",
    "mask_url",
    "open_storage",
    "open_sweep",
    "quiet_optuna",
    "sweep_dir",
]

EMBEDDED_NAME = "study.db"
"""File name of the embedded store in a sweep's directory."""

ATTR = "enhtrain"
"""The study's user attribute that holds the spec, the base config and the trials' extra flags."""

_PASSWORD = re.compile(r"(://[^:/@]*:)([^@]*)(@)")


def mask_url(url: str) -> str:
    """A storage URL with its password replaced by ``***``, for messages and tables."""
    return _PASSWORD.sub(r"\1***\3", url)


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
                 max_retry: int | None = 3, what: str = "sweep.storage") -> Any:
    """Open an Optuna RDB storage, with the heartbeat and the retry of dead workers' trials when asked.

    Args:
        url: A SQLAlchemy URL.
        heartbeat_interval: Seconds between heartbeats; ``None`` for a storage that only reads.
        grace_period: Seconds without a heartbeat before a running trial counts as dead.
        max_retry: How many times a dead worker's trial is queued again.
        what: Where the URL came from, for messages.

    Raises:
        ConfigError: If the URL is malformed, its driver is missing, or the database cannot be reached.
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    quiet_optuna()
    shown = mask_url(url)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.parent.is_dir():
            raise ConfigError(f"{what}: cannot open '{shown}': the folder '{path.parent}' does not exist")
        if not path.exists():
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
            f"{what}: '{shown}' needs the database driver '{cause.name or cause}', which is not installed; "
            "install it (pip install 'enhtrain[sweep]' has psycopg, the PostgreSQL one)"
        ) from err
    except Exception as err:
        detail = " ".join(str(err).split("\n")[0].split())
        detail = detail.replace(url, shown)[:300]
        raise ConfigError(f"{what}: cannot reach the storage '{shown}': {detail}; check the URL, and that the "
                          "database server runs and accepts this user") from err


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
        f"sweep '{name}' not found: no {Path(root) / name / EMBEDDED_NAME}; give the sweep's name (its directory "
        f"under ./{root}, or --root DIR), its directory, or --storage URL for a sweep in a database"
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
        text = header + yaml.safe_dump(self.base, sort_keys=False)
        path = inside(self.base_path, self.directory, what="sweep file")
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
        return self.base_path

    def target(self) -> int:
        """The number of trials the study is to finish, as stored (``sweep run --trials`` may raise it)."""
        stored = self.study.user_attrs.get(ATTR, {})
        return int((stored.get("spec") or {}).get("trials") or self.spec.trials)


def _stored(study: optuna.Study, name: str, shown: str) -> dict[str, Any]:
    stored = study.user_attrs.get(ATTR)
    if not isinstance(stored, dict) or not isinstance(stored.get("spec"), dict) or "base" not in stored:
        raise ConfigError(f"study '{name}' in '{shown}' was not made by `enhtrain sweep run`: it has no spec or base "
                          "config; start it with enhtrain sweep run")
    return stored


def open_sweep(name: str, url: str, directory: Path | None = None, *, seed_offset: int = 0,
               for_work: bool = True) -> Sweep:
    """Open an existing sweep from its study.

    Args:
        name: The study's name.
        url: The storage URL.
        directory: The sweep's directory on this machine (default: ``<root_dir>/<name>`` of its base config).
        seed_offset: Added to the sampler's seed (one offset per worker).
        for_work: Open with the heartbeat (to run trials) rather than to read results.

    Raises:
        ConfigError: If the storage cannot be reached, the study does not exist or was not made by enhtrain.
    """
    import optuna

    shown = mask_url(url)
    probe = open_storage(url, what="--storage")
    names = [s.study_name for s in optuna.get_all_study_summaries(probe, include_best_trial=False)]
    if name not in names:
        raise ConfigError(f"no study '{name}' in '{shown}'; its studies: {', '.join(sorted(names)) or 'none'}")
    study = optuna.load_study(study_name=name, storage=probe)
    stored = _stored(study, name, shown)
    spec = SweepSpec.model_validate({**stored["spec"], "storage": url})
    base = yaml.safe_load(stored["base"])
    storage = probe
    if for_work:
        storage = open_storage(url, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
                               max_retry=spec.max_retry, what="--storage")
    study = optuna.load_study(study_name=name, storage=storage, sampler=build_sampler(spec, seed_offset),
                              pruner=build_pruner(spec))
    if directory is None:
        directory = sweep_dir(str((base.get("experiment") or {}).get("root_dir") or "runs"), name)
    return Sweep(spec, base, list(stored.get("trial_flags") or []), url, storage, study, directory)


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
                           max_retry=spec.max_retry)
    shown = mask_url(url)
    existing = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    base_text = yaml.safe_dump(base, sort_keys=False)
    study = optuna.create_study(study_name=spec.name, storage=storage, direction=spec.direction,
                                sampler=build_sampler(spec), pruner=build_pruner(spec), load_if_exists=True)
    if spec.name in existing:
        stored = _stored(study, spec.name, shown)
        old_spec = {k: v for k, v in stored["spec"].items() if k != "trials"}
        new_spec = {k: v for k, v in spec.stored().items() if k != "trials"}
        changed = first_difference(old_spec, new_spec)
        if changed is not None:
            raise ConfigError(
                f"{spec_file}: sweep.{changed}: differs from the spec sweep '{spec.name}' started with (only trials "
                "may change when a sweep continues); restore it, or give the sweep another name"
            )
        changed = first_difference(yaml.safe_load(stored["base"]), base)
        if changed is not None:
            raise ConfigError(
                f"{changed}: the base config differs from the one sweep '{spec.name}' started with; give the same "
                "config files, environment and flags, or give the sweep another name"
            )
        if stored["spec"].get("trials") != spec.trials:
            study.set_user_attr(ATTR, {**stored, "spec": spec.stored()})
        trial_flags = list(stored.get("trial_flags") or [])
    else:
        study.set_user_attr(ATTR, {"version": __version__, "spec": spec.stored(), "base": base_text,
                                   "trial_flags": trial_flags, "command": command,
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        params = {p.key: p for p in spec.parsed_params()}
        for values in spec.enqueue:
            study.enqueue_trial({key: params[key].encode(value) for key, value in values.items()})
    return Sweep(spec, base, trial_flags, url, storage, study, directory)
