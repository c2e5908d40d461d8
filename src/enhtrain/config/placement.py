"""Where the components a user adds under ``trainer.*`` write: inside the run directory, or nowhere.

A run writes only inside its directory. enhtrain points the components of the ``experiment`` section there
itself, and refuses the options through which a config would point them elsewhere
(:func:`enhtrain.config.arguments.check_reserved_options`). A component given the Lightning way
(``trainer.callbacks``, ``trainer.logger``, ``trainer.profiler``) keeps the options it is given, so a folder it is
given must lie inside the run directory; without one, Lightning and enhtrain place its files in the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from enhtrain.errors import ConfigError

__all__ = ["PATH_OPTIONS", "check_user_paths"]

PATH_OPTIONS = (
    "dirpath", "save_dir", "log_dir", "root_dir", "run_dir", "dir", "default_root_dir", "offline_directory",
    "output_dir",
)
"""Options of a component that name the folder it writes into."""

_SETTINGS = ("callbacks", "logger", "profiler")


def _given_paths(trainer: Any) -> Iterator[tuple[str, str, str]]:
    """``(key, short key, folder)`` of every folder option of the components under ``trainer.*``."""
    if not isinstance(trainer, dict):
        return
    for setting in _SETTINGS:
        value = trainer.get(setting)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            args = item.get("init_args") if isinstance(item, dict) else None
            if not isinstance(args, dict):
                continue
            prefix = f"trainer.{setting}" + (f".{index}" if isinstance(value, list) else "")
            for option in PATH_OPTIONS:
                folder = args.get(option)
                if isinstance(folder, (str, os.PathLike)) and str(folder):
                    yield f"{prefix}.init_args.{option}", f"trainer.{setting}.{option}", str(folder)


def check_user_paths(config: dict[str, Any], run_dir: str | None, locate: Callable[[str], str]) -> None:
    """Refuse a folder given to a component under ``trainer.*`` that lies outside the run directory.

    Args:
        config: The parsed config of the subcommand (defaults included).
        run_dir: The run directory when the config names it (``experiment.version`` set), else ``None``: then
            no folder can be known to lie inside the run, and any is refused.
        locate: Where a dotted key was set (``flag --trainer.callbacks.dirpath``, ``file.yaml:3``).

    Raises:
        ConfigError: Naming where the folder was set, the key, and the two ways to fix it.
    """
    base = os.path.realpath(run_dir) if run_dir else None
    for key, short, folder in _given_paths(config.get("trainer")):
        resolved = os.path.realpath(folder)
        if base is not None and (resolved == base or resolved.startswith(base + os.sep)):
            continue
        where = locate(short)
        where = locate(key) if where == "config" else where
        shown = run_dir or "the run directory (set experiment.version to know its path)"
        raise ConfigError(
            f"{where}: {key}: '{folder}' lies outside {shown}, and a run writes only inside its directory; leave "
            f"{key.rsplit('.', 1)[-1]} out (the component then writes into the run) or give a folder inside the run"
        )
