"""What a sweep reads back from its study's store, checked as a file on disk is checked.

Whoever can write a shared study can put anything into it. A worker therefore trusts nothing it reads there: the
study's record (the spec, the base config and the flags ``sweep run`` was given) is read with the bounded reader,
the spec passes the same checks as a spec file, the base config passes every check ``enhtrain fit`` makes of a
config file (schema, import gate, trust rule), and the folder the trials run in must be the one the worker was
told. A switch that loosens a check (``--allow_module``, ``--trust_checkpoint``, ``experiment.trust_checkpoint``)
is never taken from the store: only the person who starts the worker gives it, on the worker's command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from enhtrain.documents import MAX_DOCUMENT_BYTES, parse_json, parse_yaml
from enhtrain.errors import ConfigError
from enhtrain.sweeps.base import check_config, trial_environment
from enhtrain.sweeps.spec import SweepSpec, check_spec, shown
from enhtrain.trust import check_flag_switches

__all__ = ["RECORD_ATTR", "check_record", "check_root", "read_record", "stored_flags", "worker_flags"]

RECORD_ATTR = "enhtrain"
"""The study's user attribute that holds the spec, the base config and the flags of ``sweep run``."""

_TIGHTENING = ("--safe",)


def stored_flags(flags: Sequence[str]) -> list[str]:
    """The trial flags ``sweep run`` records in the study: only those that tighten a check (``--safe``)."""
    return [flag for flag in flags if flag in _TIGHTENING]


def worker_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split a worker's own command line into its trial flags (``--safe``, ``--allow_module M``) and the rest."""
    flags: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--safe" or arg.startswith("--allow_module="):
            flags.append(arg)
        elif arg == "--allow_module" and index + 1 < len(argv):
            flags += [arg, argv[index + 1]]
            index += 1
        else:
            rest.append(arg)
        index += 1
    return flags, rest


def read_record(storage: Any, name: str, where: str) -> Any:
    """Read the study's record with the bounded reader, without Optuna's unbounded JSON parsing.

    Args:
        storage: An open Optuna RDB storage.
        name: The study's name.
        where: ``study 'NAME' in 'URL'`` (the URL masked), for messages.

    Raises:
        ConfigError: If the record is missing, larger than the reader's limit, or not bounded JSON.
    """
    from sqlalchemy import text

    study_id = storage.get_study_id_from_name(name)
    query = ("SELECT length(value_json), {} FROM study_user_attributes WHERE study_id = :study AND key = :key")
    with storage.engine.connect() as connection:
        row = connection.execute(text(query.format("NULL")), {"study": study_id, "key": RECORD_ATTR}).first()
        if row is None:
            raise ConfigError(f"{where} was not made by `enhtrain sweep run`: it has no spec or base config; start "
                              "it with enhtrain sweep run")
        if row[0] is None or int(row[0]) > MAX_DOCUMENT_BYTES:
            raise ConfigError(f"{where}: the sweep's record is over {MAX_DOCUMENT_BYTES} bytes (limit): the store "
                              "is damaged or was written by something else than enhtrain")
        row = connection.execute(text(query.format("value_json")), {"study": study_id, "key": RECORD_ATTR}).first()
    return parse_json(str(row[1]), f"{where}: the sweep's record")


def _as_mapping(value: Any, key: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: the sweep's record has no '{key}' mapping: the store is damaged or was written "
                          "by something else than enhtrain; start the sweep again with enhtrain sweep run")
    return value


def check_record(record: Any, *, url: str, where: str, flags: Sequence[str],
                 environ: Mapping[str, str] | None = None) -> tuple[SweepSpec, dict[str, Any], list[str]]:
    """Check a study's record as a spec file and a config file are checked; return the spec, base and trial flags.

    Args:
        record: The record, as :func:`read_record` returned it.
        url: The storage URL (set as the spec's storage).
        where: ``study 'NAME' in 'URL'``, for messages.
        flags: The trial flags of the person running this command (``--safe``, ``--allow_module M``).
        environ: The environment (defaults to ``os.environ``).

    Returns:
        The spec, the base config, and the flags every trial gets: ``flags``, plus ``--safe`` when the sweep was
        started in safe mode.

    Raises:
        ConfigError: With one line naming the study, the key, and the fix.
    """
    environ = os.environ if environ is None else environ
    record = _as_mapping(record, "spec", where)
    spec_data = _as_mapping(record.get("spec"), "spec", where)
    spec = check_spec({**spec_data, "storage": url}, lambda keys: where)
    stored = record.get("trial_flags") or []
    if not isinstance(stored, list) or not all(isinstance(flag, str) for flag in stored):
        raise ConfigError(f"{where}: the sweep's record has malformed trial flags: the store is damaged or was "
                          "written by something else than enhtrain")
    check_flag_switches(stored, f"{where}: its stored trial flags")
    loosening = next((flag for flag in stored if flag not in _TIGHTENING), None)
    if loosening is not None:
        raise ConfigError(
            f"{where}: the store sets the trial flag '{shown(loosening.split('=', 1)[0])}', which a worker takes only "
            "from the command line of the person who starts it; give it to `enhtrain sweep worker` yourself if you "
            "trust it"
        )
    base_text = record.get("base")
    if not isinstance(base_text, str):
        raise ConfigError(f"{where}: the sweep's record has no base config: the store is damaged or was written by "
                          "something else than enhtrain")
    label = f"{where}: base config"
    base = parse_yaml(base_text, label)
    if not isinstance(base, dict):
        raise ConfigError(f"{label}: not a mapping: the store is damaged or was written by something else than "
                          "enhtrain")
    experiment = base.get("experiment")
    if isinstance(experiment, dict) and experiment.get("trust_checkpoint") not in (None, False):
        raise ConfigError(
            f"{label}: experiment.trust_checkpoint is set in the store; a switch that loosens a check comes only "
            "from the command line of the person who runs the command, and a sweep's trials load no checkpoint"
        )
    trial_flags = [*flags, *(flag for flag in _TIGHTENING if flag in stored and flag not in flags)]
    check_config(["--config", base_text], trial_flags, trial_environment(environ), label=label)
    return spec, base, trial_flags


def check_root(base: Mapping[str, Any], root: str | Path, where: str) -> None:
    """Refuse a stored ``experiment.root_dir`` other than the folder the worker was told (``--root``).

    Raises:
        ConfigError: Naming both folders and the flag that accepts the stored one.
    """
    experiment = base.get("experiment") if isinstance(base.get("experiment"), dict) else {}
    root_dir = str(experiment.get("root_dir") or "runs")  # type: ignore[union-attr]
    if os.path.realpath(root_dir) != os.path.realpath(root):
        raise ConfigError(
            f"{where}: its trials run in '{shown(root_dir, 200)}' (experiment.root_dir of the stored base config), "
            f"not in --root '{shown(root, 200)}'; give --root {shown(root_dir, 200)} to let this worker write there"
        )
