"""The Lightning versions enhtrain is tested with, and the private parts of Lightning it relies on.

enhtrain extends Lightning through its public extension points, except for the private methods, attributes,
functions and constants listed in :data:`PRIVATE_API`. Lightning may change any of them in any release, so
:func:`check_private_api` compares the table with the installed Lightning: each name must still exist and each
method or function must still take the parameters enhtrain passes. ``tests/test_lightning_internals.py`` runs
it. When a Lightning upgrade breaks one, fix the enhtrain code named in the entry's ``used_by`` and update the
entry.

Importing this module imports nothing from Lightning; :func:`check_private_api` does.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PRIVATE_API", "TESTED_LIGHTNING", "PrivateName", "check_private_api"]

TESTED_LIGHTNING = ">=2.6.4,<2.7"
"""The Lightning versions enhtrain is tested with, as a PEP 440 version specifier.

Wider than this, ``pyproject.toml`` allows any Lightning 2 from 2.6.4; the private API in :data:`PRIVATE_API`
is what may break between minor versions.
"""


@dataclass(frozen=True)
class PrivateName:
    """One private name of Lightning that enhtrain relies on.

    Attributes:
        owner: Where it is defined: ``"package.module:Class"`` for a method or attribute, ``"package.module"``
            for a function or constant.
        name: The private name.
        kind: ``"method"`` (of the class, overridden or called by enhtrain), ``"attribute"`` (set on the
            class's instances, so it is looked for as ``self.<name>`` in the source of the class and its
            bases), ``"function"`` or ``"constant"`` (of the module).
        parameters: For a method or function, the names of its parameters in order, ``self`` included;
            empty otherwise.
        used_by: The enhtrain code that relies on it.
    """

    owner: str
    name: str
    kind: Literal["method", "attribute", "function", "constant"]
    parameters: tuple[str, ...] = ()
    used_by: str = ""


_CLI = "lightning.pytorch.cli:LightningCLI"
_CHECKPOINT = "lightning.pytorch.callbacks.model_checkpoint:ModelCheckpoint"
_RUN_CHECKPOINT = "enhtrain.checkpoints.run_checkpoint.RunCheckpoint"
_LOGGER_UTILITIES = "lightning.fabric.utilities.logger"
_CSV_WRITER = "lightning.pytorch.loggers.csv_logs:ExperimentWriter"
_WANDB = "lightning.pytorch.loggers.wandb:WandbLogger"
_COMET = "lightning.pytorch.loggers.comet:CometLogger"
_RICH_BAR = "lightning.pytorch.callbacks.progress.rich_progress:RichProgressBar"

PRIVATE_API: tuple[PrivateName, ...] = (
    PrivateName(_CLI, "_add_arguments", "method", ("self", "parser"), "enhtrain.cli.EnhancedCLI._add_arguments"),
    PrivateName(_CLI, "_add_subcommands", "method", ("self", "parser", "kwargs"),
                "enhtrain.cli.EnhancedCLI._add_subcommands"),
    PrivateName(_CLI, "_parse_ckpt_path", "method", ("self",), "enhtrain.cli.EnhancedCLI._parse_ckpt_path"),
    PrivateName(_CLI, "_dump_config", "method", ("self",), "enhtrain.cli.EnhancedCLI._dump_config"),
    PrivateName(_CLI, "_setup_parser_kwargs", "method", ("self", "parser_kwargs"),
                "enhtrain.cli.EnhancedCLI._setup_parser_kwargs"),
    PrivateName(_CLI, "_run_subcommand", "method", ("self", "subcommand"), "enhtrain.cli.EnhancedCLI._run_subcommand"),
    PrivateName(
        _CLI, "_set_seed", "method", ("self",), "enhtrain.cli.EnhancedCLI._set_seed and before_instantiate_classes"
    ),
    PrivateName(
        _CLI,
        "_parser",
        "method",
        ("self", "subcommand"),
        "enhtrain.cli.EnhancedCLI.parse_arguments and before_instantiate_classes",
    ),
    PrivateName(
        _CLI, "_get", "method", ("self", "config", "key", "default"), "enhtrain.cli.EnhancedCLI.instantiate_trainer"
    ),
    PrivateName(
        _CHECKPOINT,
        "_save_checkpoint",
        "method",
        ("self", "trainer", "filepath"),
        f"{_RUN_CHECKPOINT}._save_checkpoint and on_exception; enhtrain.callbacks.runtime_updates.RuntimeUpdates",
    ),
    PrivateName(
        _CHECKPOINT,
        "_remove_checkpoint",
        "method",
        ("self", "trainer", "filepath"),
        f"{_RUN_CHECKPOINT}._remove_checkpoint and _apply_retention",
    ),
    PrivateName(
        _CHECKPOINT,
        "_update_best_and_save",
        "method",
        ("self", "current", "trainer", "monitor_candidates"),
        f"{_RUN_CHECKPOINT}._update_best_and_save",
    ),
    PrivateName(
        _CHECKPOINT,
        "_last_global_step_saved",
        "attribute",
        used_by=f"{_RUN_CHECKPOINT}.on_exception and on_train_end",
    ),
    PrivateName(
        _CHECKPOINT,
        "_save_last_checkpoint",
        "method",
        ("self", "trainer", "monitor_candidates"),
        f"{_RUN_CHECKPOINT}.on_train_end; enhtrain.callbacks.runtime_updates.RuntimeUpdates._save_checkpoint",
    ),
    PrivateName(
        _CHECKPOINT,
        "_monitor_candidates",
        "method",
        ("self", "trainer"),
        f"{_RUN_CHECKPOINT}.on_train_end; enhtrain.callbacks.runtime_updates.RuntimeUpdates._save_checkpoint",
    ),
    PrivateName(
        _CSV_WRITER,
        "_check_log_dir_exists",
        "method",
        ("self",),
        "enhtrain.loggers.csv._KeepingCSVWriter._check_log_dir_exists",
    ),
    PrivateName(
        _CSV_WRITER,
        "_rewrite_with_new_header",
        "method",
        ("self", "fieldnames"),
        "enhtrain.loggers.csv._KeepingCSVWriter._check_log_dir_exists",
    ),
    PrivateName(
        "lightning.pytorch.loggers.csv_logs:CSVLogger",
        "_experiment",
        "attribute",
        used_by="enhtrain.loggers.csv.RunCSVLogger.experiment",
    ),
    PrivateName(
        _WANDB,
        "_wandb_init",
        "attribute",
        used_by="enhtrain.loggers.wandb.RunWandbLogger.__init__ and experiment",
    ),
    PrivateName(
        _WANDB,
        "_offline",
        "attribute",
        used_by="enhtrain.loggers.wandb.RunWandbLogger.experiment",
    ),
    PrivateName(_WANDB, "_id", "attribute", used_by="enhtrain.loggers.wandb.RunWandbLogger.run_id"),
    PrivateName(
        _WANDB,
        "_experiment",
        "attribute",
        used_by="enhtrain.loggers.wandb.RunWandbLogger.experiment, run_id and finalize",
    ),
    PrivateName(
        _COMET,
        "_create_experiment",
        "method",
        ("self",),
        "enhtrain.loggers.comet.CometOnlineLogger._create_experiment",
    ),
    PrivateName(
        _COMET,
        "_experiment",
        "attribute",
        used_by="enhtrain.loggers.comet.CometOnlineLogger._create_experiment",
    ),
    PrivateName(
        _LOGGER_UTILITIES,
        "_convert_params",
        "function",
        ("params",),
        "the log_hyperparams of enhtrain.loggers.csv, tensorboard, wandb, comet and mlflow",
    ),
    PrivateName(
        _LOGGER_UTILITIES,
        "_add_prefix",
        "function",
        ("metrics", "prefix", "separator"),
        "enhtrain.loggers.comet.CometOfflineLogger.log_metrics",
    ),
    PrivateName(
        _LOGGER_UTILITIES,
        "_sanitize_callable_params",
        "function",
        ("params",),
        "enhtrain.loggers.comet.CometOfflineLogger.log_hyperparams",
    ),
    PrivateName(
        "lightning.fabric.loggers.tensorboard",
        "_TENSORBOARD_AVAILABLE",
        "constant",
        used_by="enhtrain.loggers.tensorboard._summary_writer_parameters",
    ),
    PrivateName("lightning.fabric.utilities.types", "_PATH", "constant", used_by="enhtrain.checkpoints.atomic_io"),
    PrivateName(
        _RICH_BAR, "_init_progress", "method", ("self", "trainer"), "enhtrain.callbacks.progress.RunProgressBar"
    ),
    PrivateName(_RICH_BAR, "_stop_progress", "method", ("self",), "enhtrain.callbacks.progress.RunProgressBar"),
    PrivateName(
        "lightning.fabric.utilities.load",
        "_load_distributed_checkpoint",
        "function",
        ("checkpoint_folder",),
        "enhtrain.checkpoints.consolidate.load_consolidated",
    ),
    PrivateName(
        "lightning.pytorch.utilities.consolidate_checkpoint",
        "_format_checkpoint",
        "function",
        ("checkpoint",),
        "enhtrain.checkpoints.consolidate.load_consolidated",
    ),
    PrivateName(
        "lightning.pytorch.strategies.model_parallel:ModelParallelStrategy",
        "_save_distributed_checkpoint",
        "attribute",
        used_by="enhtrain.checkpoints.sharded.strategy_writes_directory",
    ),
    PrivateName(
        "lightning.pytorch.strategies.fsdp:FSDPStrategy",
        "_state_dict_type",
        "attribute",
        used_by="enhtrain.checkpoints.sharded.strategy_writes_directory",
    ),
)
"""Every private method, attribute, function and constant of Lightning that enhtrain relies on."""


def check_private_api(table: Iterable[PrivateName] = PRIVATE_API) -> list[str]:
    """Compare ``table`` with the installed Lightning; raises nothing.

    Args:
        table: The names to check; :data:`PRIVATE_API` by default.

    Returns:
        One line per problem (an owner that cannot be imported, a missing name, a method or function whose
        parameters changed), naming the enhtrain code that relies on it; empty when every name is as expected.
    """
    problems: list[str] = []
    for entry in table:
        where = f"{entry.owner.replace(':', '.')}.{entry.name}"
        relies = f"; {entry.used_by} relies on it" if entry.used_by else ""
        try:
            owner = _import(entry.owner)
        except Exception as err:
            problems.append(f"{where}: cannot import {entry.owner} ({type(err).__name__}: {err}){relies}")
            continue
        problem = _check(owner, entry)
        if problem:
            problems.append(f"{where}: {problem}{relies}")
    return problems


def _import(path: str) -> Any:
    """Import ``"package.module:Class"`` or ``"package.module"``."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():
        obj = getattr(obj, part)
    return obj


def _check(owner: Any, entry: PrivateName) -> str | None:
    """Return what is wrong with ``entry`` in ``owner``, or ``None``."""
    if entry.kind == "attribute":
        return None if _assigns(owner, entry.name) else f"no longer set on instances (no self.{entry.name} = ...)"
    if not hasattr(owner, entry.name):
        return "missing"
    if entry.kind == "constant":
        return None
    if entry.kind == "method":
        static = inspect.getattr_static(owner, entry.name)
        if isinstance(static, (staticmethod, classmethod, property)) or not callable(static):
            return f"no longer a method (it is a {type(static).__name__})"
    target = getattr(owner, entry.name)
    if not callable(target):
        return f"no longer a function (it is a {type(target).__name__})"
    try:
        parameters = tuple(inspect.signature(target).parameters)
    except (TypeError, ValueError) as err:
        return f"has no signature to check ({err})"
    if parameters != entry.parameters:
        return f"parameters changed: ({', '.join(parameters)}), expected ({', '.join(entry.parameters)})"
    return None


def _assigns(cls: Any, name: str) -> bool:
    """Whether ``self.<name> =`` (or ``: type =``) appears in the source of ``cls`` or one of its bases."""
    assignment = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]*)?=(?!=)")
    for klass in getattr(cls, "__mro__", (cls,)):
        if klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if assignment.search(source):
            return True
    return False
