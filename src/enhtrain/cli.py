"""``EnhancedCLI``: a drop-in ``LightningCLI`` that adds layered configs, plugins and run directories.

With no ``experiment`` section, no ``--env`` and no ``--experiment.*`` flag, ``EnhancedCLI`` parses and
runs exactly as ``LightningCLI``. Otherwise enhtrain composes the config layers itself, validates the
``experiment`` section, and gives the run its directory, loggers, callbacks, profiler and checkpoints.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import functools
import io
import logging
import shutil
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import yaml
from jsonargparse import ArgumentError, DefaultHelpFormatter, Namespace
from lightning.fabric.utilities.rank_zero import _get_rank, rank_prefixed_message
from lightning.fabric.utilities.seed import seed_everything
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from typing_extensions import override

from enhtrain import plugins
from enhtrain._collector import resume as resume_collector
from enhtrain._noise import quiet_library_noise
from enhtrain.callbacks.progress import default_progress_callbacks
from enhtrain.config.arguments import KEYED_MERGE_RULE, PreparedArgs, annotate_printed_config, prepare_arguments
from enhtrain.config.errors import describe_parser_error, where_set
from enhtrain.config.reconcile import TRAINER_PARTS_RULE, GivenParts, plan
from enhtrain.documents import dump_yaml, load_dumped_yaml
from enhtrain.errors import ConfigError, EnhtrainError, RunDirError, one_line
from enhtrain.run.session import RunSession
from enhtrain.secrets import mask_secrets
from enhtrain.security import check_import

__all__ = ["EnhancedCLI", "check_arguments", "run_training"]


class EnhancedCLI(LightningCLI):
    """A ``LightningCLI`` with enhtrain's configuration layers, plugin registry and run directories.

    Takes every argument of :class:`~lightning.pytorch.cli.LightningCLI`, plus:

    Args:
        *args: Positional arguments of ``LightningCLI``.
        experiment_defaults: Switch the experiment on even when the config has no ``experiment`` section, as
            ``python -m enhtrain`` does.
        prepared: The command line already composed by
            :func:`~enhtrain.config.arguments.prepare_arguments` from ``args`` (``python -m enhtrain`` composes
            it before Lightning is imported, so that a refused config ends at once).
        **kwargs: Keyword arguments of ``LightningCLI``.
    """

    def __init__(
        self, *args: Any, experiment_defaults: bool = False, prepared: PreparedArgs | None = None, **kwargs: Any
    ) -> None:
        if experiment_defaults:
            # `python -m enhtrain`: its entry point reports errors.
            self._init(*args, experiment_defaults=True, prepared=prepared, **kwargs)
            return
        # A script of the user's: enhtrain's errors end it as they end `python -m enhtrain`.
        with _errors_in_one_line():
            self._init(*args, prepared=prepared, **kwargs)

    def _init(
        self, *args: Any, experiment_defaults: bool = False, prepared: PreparedArgs | None = None, **kwargs: Any
    ) -> None:
        self.prepared: PreparedArgs | None = prepared
        self.session: RunSession | None = None
        self._parsed_dump: dict[str, Any] | None = None
        self._experiment_defaults = experiment_defaults
        cli_args = kwargs.get("args")
        if isinstance(cli_args, dict) and prepared is None:
            subcommands = tuple(self.subcommands()) if kwargs.get("run", True) else None
            as_argv = _mapping_as_argv(cli_args, subcommands, force=experiment_defaults)
            cli_args = kwargs["args"] = as_argv if as_argv is not None else cli_args
        if not isinstance(cli_args, (dict, Namespace)):
            argv = sys.argv[1:] if cli_args is None else [str(a) for a in cli_args]
            subcommands = tuple(self.subcommands()) if kwargs.get("run", True) else None
            if self.prepared is None:
                self.prepared = prepare_arguments(argv, force=experiment_defaults, subcommands=subcommands)
            if self.prepared is not None:
                kwargs["args"] = self.prepared.argv
        if self.prepared is not None:
            quiet_library_noise()
        super().__init__(*args, **kwargs)

    @property
    def enhanced(self) -> bool:
        """Whether enhtrain's experiment features are on for this invocation."""
        return self.prepared is not None

    @override
    def _setup_parser_kwargs(self, parser_kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        main_kwargs, subparser_kwargs = super()._setup_parser_kwargs(parser_kwargs)
        if self.enhanced:
            # A bad value is raised, to end in one line as with `python -m enhtrain`, not as jsonargparse's usage.
            main_kwargs = {**main_kwargs, "exit_on_error": False}
            subparser_kwargs = {
                name: {**subparser_kwargs.get(name, {}), "exit_on_error": False} for name in self.subcommands()
            }
        return main_kwargs, subparser_kwargs

    @override
    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        settings = self._parser_settings(add_subcommands, main_kwargs, subparser_kwargs)
        if settings is not None and _prebuilt and _prebuilt[0][0] == settings:
            # Built ahead by this process's parent (a sweep's preloaded process) for exactly these settings.
            _, self.parser, self._subcommand_parsers, self._subcommand_method_arguments = _prebuilt.pop()
            return
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)

    def _parser_settings(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> dict[str, Any] | None:
        """What the parser of ``python -m enhtrain SUBCOMMAND`` is built from; ``None`` for any other CLI.

        A subclass (whose hooks may add arguments) and a command line without its subcommand build their own.
        """
        if type(self) not in (EnhancedCLI, _ParserBuilder) or not (add_subcommands and self._experiment_defaults):
            return None
        subcommand = self.prepared.split.subcommand if self.prepared is not None else None
        if subcommand not in self.subcommands():
            return None
        return {"subcommand": subcommand, "main": main_kwargs, "subcommands": subparser_kwargs,
                "classes": (self.model_class, self.datamodule_class, self.trainer_class, self.parser_class),
                "modes": (self.subclass_mode_model, self.subclass_mode_data, self.auto_configure_optimizers),
                "trainer_defaults": self.trainer_defaults, "seed": self.seed_everything_default}

    @override
    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        # Each subcommand's parser costs as much as parsing the config: when the command line names the one to run,
        # only its parser is built (`--help` without a subcommand, or a wrong one, still lists them all).
        chosen = self.prepared.split.subcommand if self.prepared is not None else None
        every = self.subcommands()
        if chosen not in every:
            super()._add_subcommands(parser, **kwargs)
            return
        self.subcommands = lambda: {chosen: every[chosen]}  # type: ignore[method-assign]
        try:
            super()._add_subcommands(parser, **kwargs)
        finally:
            del self.subcommands

    @override
    def _add_arguments(self, parser: LightningArgumentParser) -> None:
        # Added here rather than in `add_arguments_to_parser`, which a subclass may override without calling
        # super() (Lightning's own examples do): the experiment section must not depend on it.
        super()._add_arguments(parser)
        # `python -m enhtrain SUBCOMMAND --help` composes nothing but still lists `--experiment`.
        if self.enhanced or self._experiment_defaults:
            parser.add_argument(
                "--experiment",
                type=dict | None,
                default=None,
                help="enhtrain's experiment section as a YAML mapping: name, root_dir, version, tags, loggers, "
                "callbacks, checkpoint, profiler, resume, ...; `enhtrain fit --help` lists every key with its default",
            )

    def _dumped_config(self) -> dict[str, Any]:
        """The parsed config of the subcommand as plain data (defaults included)."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        parser = self._parser(subcommand)
        # Validated when parsed (and by parse_object after a checkpoint's hyper-parameters): not again.
        return load_dumped_yaml(parser.dump(config, skip_none=False, skip_validation=True)) or {}

    @override
    def _dump_config(self) -> None:
        # LightningCLI dumps the whole config once more for the model's and data module's hyper-parameters, and
        # validates it again: with the experiment on, the config was validated when parsed.
        if not self.enhanced or hasattr(self, "config_dump"):
            super()._dump_config()
            return
        text = self.parser.dump(self.config, skip_link_targets=False, skip_none=False, skip_validation=True,
                                format="yaml")
        self.config_dump = load_dumped_yaml(text)
        if "subcommand" in self.config:
            self.config_dump = self.config_dump[self.config.subcommand]

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if not self.enhanced:
            if self._experiment_defaults:
                # `run_training` was given sys.argv's own arguments: LightningCLI's warning about both does not apply.
                self.config = parser.parse_args(args)
            else:
                super().parse_arguments(parser, args)
            return
        # The arguments were rebuilt from sys.argv by enhtrain, so LightningCLI's warning does not apply.
        try:
            self.config = self._parse_or_print(parser, args)
        except ArgumentError as err:
            assert self.prepared is not None
            raise ConfigError(
                describe_parser_error(str(err), self.prepared.composed, self.prepared.split.rest)
            ) from err
        subcommand = self.config.get("subcommand")
        section = self.config[subcommand] if subcommand else self.config  # no subcommand: run=False
        if section is not None:
            seed = section.get("seed_everything")
            if isinstance(seed, int) and not isinstance(seed, bool) and not _SEED_MIN <= seed <= _SEED_MAX:
                where = where_set("seed_everything", self.prepared.composed, self.prepared.split.rest)
                raise ConfigError(
                    f"{where}: seed_everything: {seed} is out of range: use a whole number from {_SEED_MIN} to "
                    f"{_SEED_MAX}, or true for a random seed"
                )
            # Plugins see every value, defaults and command-line flags included, before anything is built.
            prepared = self.prepared
            # Dumped once: the checks below and the run session read the same plain data, each its own copy.
            self._parsed_dump = self._dumped_config()
            plugins.validate_config(
                copy.deepcopy(self._parsed_dump),
                locate=lambda key: where_set(key, prepared.composed, prepared.split.rest),
            )
            _check_user_paths(copy.deepcopy(self._parsed_dump), prepared)

    def _parse_or_print(self, parser: LightningArgumentParser, args: Any) -> Namespace:
        """Parse; for ``--print_config``, print the config with what enhtrain builds from it, then exit."""
        assert self.prepared is not None
        if not any(str(arg).startswith("--print_config") for arg in self.prepared.split.rest):
            return parser.parse_args(args)
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                config = parser.parse_args(args)
        except SystemExit:
            text = printed.getvalue()
            sys.stdout.write(annotate_printed_config(text, self.prepared.experiment, self._given_parts(text)))
            raise
        except BaseException:
            sys.stdout.write(printed.getvalue())
            raise
        sys.stdout.write(printed.getvalue())
        return config

    def _given_parts(self, printed: str) -> GivenParts:
        """The progress bar and ``ModelCheckpoint`` given to the Trainer by a printed config and by the script."""
        from enhtrain.documents import parse_yaml
        from enhtrain.security import import_object

        assert self.prepared is not None
        subcommand = self.prepared.split.subcommand
        try:
            config = parse_yaml(printed, "the printed config")
        except ConfigError:
            config = None
        config = config if isinstance(config, dict) else {}
        trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
        parser = self._parser(subcommand)
        entries = [*_as_list(trainer.get("callbacks")), *(config.get(key) for key in parser.callback_keys)]
        given: list[Any] = list(_as_list(self.trainer_defaults.get("callbacks")))
        # A callback argument of one class (add_lightning_class_args without subclass mode) prints no class_path.
        given += [getattr(parser.groups.get(key), "group_class", None) for key in parser.callback_keys]
        for entry in entries:
            path = entry.get("class_path") if isinstance(entry, dict) else entry
            if isinstance(path, str):
                with contextlib.suppress(ConfigError, ImportError, AttributeError):
                    given.append(import_object(path, key="trainer.callbacks", where="--print_config",
                                               policy=self.prepared.import_policy))

        def given_kind(kind: type) -> bool:
            return any(isinstance(c, kind) or (isinstance(c, type) and issubclass(c, kind)) for c in given)

        return GivenParts(progress_bar=given_kind(ProgressBar), checkpoint=given_kind(ModelCheckpoint))

    @override
    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the model's hyper-parameters from `ckpt_path` with a bare torch.load; enhtrain reads
        # them through the safe loader, so that a bad or unsafe checkpoint ends with a short message, exit
        # status 2 and no run directory, and `--trust_checkpoint` applies here too.
        if not self.enhanced:
            super()._parse_ckpt_path()
            return
        from enhtrain.checkpoints.safe_load import (
            LIGHTNING_CKPT_ALIASES,
            cli_model_hparams,
            require_lightning,
            safe_load,
        )

        assert self.prepared is not None
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        path = self.config[subcommand].get("ckpt_path")
        trust = self.prepared.trust.trust_checkpoint
        hparams = cli_model_hparams(path, trust=trust)
        if path is not None and str(path) not in LIGHTNING_CKPT_ALIASES and not str(path).startswith("registry:"):
            require_lightning(safe_load(path, trust=trust, mmap=True), path)
        if hparams and isinstance(hparams.get("class_path"), str):
            # A class path stored in a checkpoint becomes an import like any in a config.
            check_import(hparams["class_path"], key="model.class_path", policy=self.prepared.import_policy,
                         where=f"checkpoint '{path}' (hyper_parameters._class_path)")
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
            self._parsed_dump = None  # the config changed: the run session dumps it again

    @override
    def _set_seed(self) -> None:
        # With the experiment on, the seed is set once every check has passed (before_instantiate_classes), so
        # that a refused command prints no "Seed set to" line before its error.
        if not self.enhanced:
            super()._set_seed()

    @override
    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        if not self.enhanced:
            return
        assert self.prepared is not None
        dumped = self._parsed_dump if self._parsed_dump is not None else self._dumped_config()
        self._parsed_dump = None
        # Checks only: the run directory is opened once the model and data module are built. A run=False script
        # trains with its own trainer.fit call: its run is a fit's.
        self.session = RunSession.start(
            self.prepared, dumped, subcommand=self.subcommand or "fit", trust=self.prepared.trust.trust_checkpoint
        )
        self.save_config_callback = None
        self._seed_quietly()

    def _seed_quietly(self) -> None:
        """Seed as LightningCLI does; "Seed set to N" is said once the classes are built, after any error.

        ``seed_everything: true`` draws a seed, recorded as drawn in ``metadata.json``; a resumed run reuses the
        one its run drew, so that it continues the same random stream.
        """
        assert self.session is not None
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.session.reused_seed is not None:
            config["seed_everything"] = self.session.reused_seed
        seed = config.get("seed_everything")
        if seed is False or "seed_everything" not in config:
            return
        value = seed_everything(None if seed is True else seed, workers=True, verbose=False)
        config["seed_everything"] = value
        self.session.seed = {"value": value, "drawn": seed is True or self.session.reused_seed is not None}
        if "seed_everything" in self.session.masked_config:
            # The run's config.yaml records the number, drawn or given.
            self.session.masked_config["seed_everything"] = value

    @override
    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
            if self.session is not None and self.session.seed is not None:
                _seed_log.info(rank_prefixed_message(f"Seed set to {self.session.seed['value']}", _get_rank()))
        except BaseException as err:
            if self.session is not None:
                self.session.abort()
            user_error = (TypeError, ValueError, ImportError, AttributeError, FileNotFoundError,
                          MisconfigurationException)
            missing = _cause(err, FileNotFoundError)
            if self.prepared is not None and missing is not None and missing.filename:
                key = _key_holding(self._dumped_config(), str(missing.filename))
                if key is not None:
                    where = where_set(key, self.prepared.composed, self.prepared.split.rest)
                    raise ConfigError(f"{where}: {key}: file '{missing.filename}' not found: check the path") from err
            if self.prepared is not None and isinstance(err, user_error):
                detail = describe_parser_error(str(err), self.prepared.composed, self.prepared.split.rest)
                raise ConfigError(f"cannot build the run: {detail}") from err
            raise

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if self.session is None:
            return super().instantiate_trainer(**kwargs)
        self.session.open()
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        user_callbacks = _as_list(trainer_config.get("callbacks"))
        # Everything LightningCLI adds to the config's callbacks reaches the Trainer too: the script's callback
        # arguments (add_lightning_class_args) and trainer_defaults' callbacks. The rule sees them all.
        given = [
            *user_callbacks,
            *(self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys),
            *_as_list(self.trainer_defaults.get("callbacks")),
        ]
        checkpoints = [c for c in given if isinstance(c, ModelCheckpoint)]
        extra = self.session.build_trainer_kwargs(
            user_logger=trainer_config.get("logger"),
            user_profiler=trainer_config.get("profiler"),
            user_plugins=trainer_config.get("plugins"),
            has_checkpoint=bool(checkpoints),
            checkpoint_io_cls=CheckpointIO,
            enable_checkpointing=trainer_config.get("enable_checkpointing"),
            user_checkpoints=checkpoints,
        )
        callbacks: list[Callback] = [*user_callbacks, *extra.pop("callbacks")]
        parts = plan(
            GivenParts(progress_bar=any(isinstance(c, ProgressBar) for c in given),
                       enable_progress_bar=trainer_config.get("enable_progress_bar")),
            checkpoint_configured=False,
        )
        if parts.progress_bar:
            callbacks.extend(default_progress_callbacks())
        kwargs.pop("callbacks", None)
        script_run = None
        if self.subcommand is None:
            from enhtrain.run.script import ScriptRun

            script_run = ScriptRun(self.session)
            callbacks.append(script_run)
        trainer = super().instantiate_trainer(**kwargs, **extra, callbacks=callbacks)
        for logger in trainer.loggers:
            _mask_hyperparams(logger, self.session.secret_values)
        if script_run is not None:
            # run=False: the script calls trainer.fit itself, so the run starts now.
            from enhtrain.run.script import start_script_run

            start_script_run(self.session, trainer, script_run)
        return trainer

    @override
    def _run_subcommand(self, subcommand: str) -> None:
        resume_collector()  # the start is over: the collector runs while Lightning trains (see enhtrain._collector)
        if self.session is None:
            super()._run_subcommand(subcommand)
            return
        session = self.session
        if subcommand == "fit" and session.resume_ckpt is not None:
            session.end_if_finished()
            self.config_init[subcommand]["ckpt_path"] = session.resume_ckpt
        session.commit()
        # The run's config is its hyper-parameters too; logged here rather than by a callback, which Lightning
        # would call on every step.
        if session.is_writer:
            for logger in self.trainer.loggers:
                logger.log_hyperparams({"config": session.masked_config})
        try:
            super()._run_subcommand(subcommand)
        except (MisconfigurationException, ValueError) as err:
            if isinstance(err, ValueError) and not _raised_by_lightning(err):
                session.finish(self.trainer, error=err)
                raise
            # Lightning rejected the setup before training began: nothing of this run is worth keeping, and a
            # resumed run gets its files back.
            if self.trainer.global_step == session.resume_step:
                session.abort()
            else:
                session.finish(self.trainer, error=err)
            raise ConfigError(f"Lightning rejected the configuration: {' '.join(str(err).split())}") from err
        except OSError as err:
            session.finish(self.trainer, error=err)
            if err.errno not in _DISK_ERRORS:
                raise
            where = f" ({err.filename})" if err.filename else ""
            raise RunDirError(
                f"cannot write to run directory '{session.run.path}': {err.strerror or err}{where}; the run "
                f"stopped at step {self.trainer.global_step} and is marked failed"
            ) from err
        except SystemExit as err:
            if isinstance(err.__context__, KeyboardInterrupt) and not isinstance(err, SIGTERMException):
                # Lightning answers Ctrl+C with `exit(1)`; the run was interrupted, not failed.
                session.finish(self.trainer, error=err.__context__)
                raise KeyboardInterrupt from None
            session.finish(self.trainer, error=err)
            raise
        except BaseException as err:
            session.finish(self.trainer, error=err)
            raise
        session.finish(self.trainer)
        if session.is_writer and not _summary_printed(self.trainer, subcommand):
            sys.stdout.write(f"Run directory: {session.run.path}\n")
            sys.stdout.flush()


class _HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the description and epilog kept as written."""

    @override
    def _get_help_string(self, action: argparse.Action) -> str:
        if action.dest == "experiment":
            # A mapping whose keys the description lists; "type: dict | null" would say nothing.
            return action.help or ""
        return super()._get_help_string(action)


# The keys of the `experiment` section with their defaults, as `--help` shows them (tests/test_trainer_switches.py
# checks them against the schema). Checkpoint keys are listed one by one under `checkpoint.`.
_EXPERIMENT_HELP: tuple[tuple[str, str, Any, str], ...] = (
    ("name", "NAME", "default", "the run's name: runs go to <root_dir>/<name>/<version>/"),
    ("root_dir", "DIR", "runs", "where run folders are made (trainer.default_root_dir, when set alone)"),
    ("version", "VERSION", None, "null takes the next free version_N"),
    ("tags", "LIST", [], "labels saved in metadata.json"),
    ("description", "TEXT", None, "a sentence saved in metadata.json"),
    ("loggers", "MAPPING", {"csv": {}, "tensorboard": {}}, "logger name -> options"),
    ("callbacks", "MAPPING", {"throughput": {}, "run_summary": {}}, "callback name -> options"),
    ("checkpoint", "MAPPING|null", "(below)", "null: no checkpoints"),
    ("checkpoint.monitor", "METRIC", None, "rank checkpoints by this metric; null keeps the newest"),
    ("checkpoint.mode", "min|max", None, "null infers it from the metric's name"),
    ("checkpoint.save_top_k", "K", 1, "keep the K best (-1: all)"),
    ("checkpoint.keep_last", "N", None, "also keep the N newest"),
    ("checkpoint.save_last", "BOOL", True, "last.ckpt: the state at the end of training"),
    ("checkpoint.every_n_epochs", "N", None, ""),
    ("checkpoint.every_n_train_steps", "N", None, ""),
    ("checkpoint.filename", "PATTERN", "epoch={epoch}-step={step}", ""),
    ("profiler", "NAME|MAPPING", None, "simple, advanced, pytorch, or {name: ..., <options>}"),
    ("resume", "auto|VERSION|PATH", None, "continue a run in its own directory"),
    ("allow_config_change", "BOOL", False, "resume even if the config changed"),
    ("runtime_updates", "BOOL", True, "apply `enhtrain runs set/stop/checkpoint` while the run trains"),
    ("sweep", "MAPPING", None, "set by `enhtrain sweep` on each trial"),
)


_HELP_WIDTH = 110


def _help_value(value: Any) -> str:
    """A default as YAML flow text: ``null``, ``true``, ``[]``, ``{csv: {}, tensorboard: {}}``."""
    if isinstance(value, str) and value == "(below)":
        return "the keys below"
    text = yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


@functools.cache
def _enhtrain_help() -> str:
    """enhtrain's options, the ``experiment`` keys with their defaults, and the keyed-merge rule (built once)."""
    rows = [
        ("-c, --config FILE", "a YAML config or an inline YAML mapping; repeatable, later ones override earlier "
                              "ones; each may `extends: [other.yaml]`"),
        ("--env NAME|FILE", "environment overlay: dev, test, prod, env/NAME.yaml beside the first config, a "
                            "plugin's, or a YAML file (also ENHTRAIN_ENV)"),
        ("--experiment.KEY VALUE", "a key of the experiment section (values are YAML), one of:"),
    ]
    keys = [
        (f"  --experiment.{key} {metavar}", f"{note + ' ' if note else ''}(default: {_help_value(default)})")
        for key, metavar, default, note in _EXPERIMENT_HELP
    ]
    rows += keys
    rows += [
        ("--safe", "allow only registered components, torch, lightning, enhtrain and torchmetrics as class paths"),
        ("--allow_module NAME", "with --safe, also allow classes from this package"),
        ("--trust_checkpoint", "load checkpoints that need pickled objects (only from a trusted source; also "
                               "ENHTRAIN_TRUST_CHECKPOINT=1); never with --safe, never from a config"),
        ("--print_config[=flags]", "print the composed config, with what enhtrain adds in comments, and exit"),
    ]
    width = max(len(left) for left, _ in rows) + 2
    lines = ["enhtrain options (every option after these is LightningCLI's):"]
    for left, right in rows:
        wrapped = textwrap.wrap(right, width=_HELP_WIDTH - width - 2) or [""]
        lines.append(f"  {left:<{width}}{wrapped[0]}".rstrip())
        lines += [f"  {'':<{width}}{more}" for more in wrapped[1:]]
    lines += [
        "",
        *textwrap.wrap("Keyed merge: " + KEYED_MERGE_RULE, width=_HELP_WIDTH),
        *textwrap.wrap(
            "Progress bar, checkpoints and loggers: " + TRAINER_PARTS_RULE + " See `enhtrain config explain` for "
            "where each value comes from.",
            width=_HELP_WIDTH,
        ),
    ]
    return "\n".join(lines)


def _usage(subcommand: str) -> str:
    return (
        f"enhtrain {subcommand} [-h] [-c CONFIG ...] [--env NAME|FILE] [--experiment.KEY VALUE ...] [--safe]\n"
        f"       {' ' * len(subcommand)} [--allow_module NAME] [--trust_checkpoint] [--print_config[=flags]]\n"
        f"       {' ' * len(subcommand)} [--trainer.KEY VALUE ...] [--model ...] [--data ...] [--SECTION.KEY VALUE ...]"
    )


# Lightning's own logger for "Seed set to N", so the line looks and is filtered as without enhtrain.
_seed_log = logging.getLogger("lightning.fabric.utilities.seed")

_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


_E = TypeVar("_E", bound=BaseException)
# The seeds Lightning's `seed_everything` accepts (NumPy's range).
_SEED_MIN, _SEED_MAX = 0, 2**32 - 1


def _check_user_paths(config: dict[str, Any], prepared: PreparedArgs) -> None:
    """Refuse a folder given to a ``trainer.*`` component outside the run directory (see ``config/placement.py``)."""
    import os

    from enhtrain.config.placement import check_user_paths

    exp = prepared.experiment
    run_dir = os.path.join(exp.root_dir, exp.name, exp.version) if exp.version else None
    check_user_paths(config, run_dir, lambda key: where_set(key, prepared.composed, prepared.split.rest))


@contextlib.contextmanager
def _errors_in_one_line() -> Iterator[None]:
    """End on an enhtrain error with its one line and exit status 2 (and the traceback under ``ENHTRAIN_DEBUG``)."""
    try:
        yield
    except EnhtrainError as err:
        from enhtrain.plugins.manager import env_flag

        if env_flag("ENHTRAIN_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"enhtrain: error: {one_line(str(err))}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None


def _cause(err: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of type ``kind`` in ``err``'s chain of causes (jsonargparse wraps what a class raises)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _key_holding(config: Any, value: str, path: tuple[str, ...] = ()) -> str | None:
    """The dotted key of the first leaf of ``config`` equal to ``value``, if any."""
    if isinstance(config, dict):
        items: Any = config.items()
    elif isinstance(config, list):
        items = ((str(i), v) for i, v in enumerate(config))
    else:
        return ".".join(path) if config == value and path else None
    for key, item in items:
        found = _key_holding(item, value, (*path, str(key)))
        if found is not None:
            return found
    return None


def _mapping_as_argv(args: dict[str, Any], subcommands: tuple[str, ...] | None, *, force: bool) -> list[str] | None:
    """``args=`` given as a mapping, as the command line enhtrain composes, when it asks for the experiment.

    A mapping without an ``experiment`` section (and no ``ENHTRAIN_ENV``) is left to LightningCLI, as is one
    that is not plain YAML data.
    """
    import os

    head: list[str] = []
    section: Any = args
    if subcommands:
        chosen = args.get("subcommand") or next((name for name in subcommands if name in args), None)
        if chosen not in subcommands:
            return None
        head, section = [chosen], args.get(chosen) or {}
    if not isinstance(section, dict):
        return None
    if not (force or "experiment" in section or os.environ.get("ENHTRAIN_ENV")):
        return None
    try:
        text = dump_yaml(section)
    except yaml.YAMLError:
        return None
    return [*head, "--config", text]


def _as_list(value: Any) -> list[Any]:
    """A Trainer setting that takes one object or a list of them, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _mask_hyperparams(logger: Logger, values: set[str]) -> None:
    """Mask secrets in whatever hyper-parameters reach ``logger``, whoever logs them (Lightning, a model, a plugin)."""
    log_hyperparams = logger.log_hyperparams

    def masked(params: Any, *args: Any, **kwargs: Any) -> Any:
        return log_hyperparams(mask_secrets(params, values), *args, **kwargs)

    logger.log_hyperparams = masked  # type: ignore[method-assign]


def _summary_printed(trainer: Trainer, subcommand: str) -> bool:
    """Whether the ``run_summary`` callback printed the run directory (it does at the end of ``fit``)."""
    from enhtrain.callbacks.run_summary import RunSummary

    return subcommand == "fit" and any(isinstance(c, RunSummary) and c.print_summary for c in trainer.callbacks)


def _raised_by_lightning(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is Lightning's code."""
    tb = err.__traceback__
    module = ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return module.startswith(("lightning.", "pytorch_lightning."))


_Built = tuple[dict[str, Any], LightningArgumentParser, dict[str, Any], dict[str, Any]]
_prebuilt: list[_Built] = []
"""The parser :func:`prebuild_parser` built, with its settings, until a run of this process takes it."""


class _ParserBuilt(Exception):
    """Raised by :class:`_ParserBuilder` once the parser is built: nothing is parsed."""

    def __init__(self, built: _Built | None) -> None:
        super().__init__("built")
        self.built = built


class _ParserBuilder(EnhancedCLI):
    """Builds the parser of ``python -m enhtrain SUBCOMMAND`` as :func:`run_training` would, and stops there."""

    @override
    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        LightningCLI.setup_parser(self, add_subcommands, main_kwargs, subparser_kwargs)
        settings = self._parser_settings(add_subcommands, main_kwargs, subparser_kwargs)
        raise _ParserBuilt(None if settings is None else (
            settings, self.parser, self._subcommand_parsers, self._subcommand_method_arguments))


def _build_parser(subcommand: str) -> _Built | None:
    """The parser of ``python -m enhtrain SUBCOMMAND`` with its settings, built as :func:`run_training` builds it."""
    prepared = prepare_arguments([subcommand], force=True, environ={})
    try:
        _ParserBuilder(experiment_defaults=True, prepared=prepared, args=[subcommand], parser_kwargs=_parser_kwargs())
    except _ParserBuilt as done:
        return done.built
    return None


def prebuild_parser(subcommand: str) -> None:
    """Build the parser of ``python -m enhtrain SUBCOMMAND`` now, for the next run of this process to take.

    A sweep's preloaded process builds it before it forks, and each trial takes its own copy instead of building
    one (about 40 ms). It is taken once, by a run with the same settings; any other run builds its own.
    """
    built = _build_parser(subcommand)
    _prebuilt[:] = [built] if built is not None else []


def warm_up_parsing(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
    """Compose and parse the command line ``argv`` of ``python -m enhtrain`` once, with a parser of its own.

    Nothing is built or written, and the result is dropped: what jsonargparse and ``typing`` work out of the
    classes a config names the first time (signatures, type hints) is remembered, so that a run of this process,
    or of a process forked from it (a sweep's trial), parses its config faster (about 30 ms).

    Raises:
        ConfigError: If the command line is refused (as ``enhtrain`` would refuse it).
    """
    prepared = prepare_arguments(list(argv), force=True, environ=environ)
    if prepared is None or prepared.split.subcommand is None:
        return
    built = _build_parser(prepared.split.subcommand)
    if built is not None:
        built[1].parse_args(prepared.argv)


def run_training(argv: list[str], prepared: PreparedArgs | None = None) -> None:
    """Run a training subcommand (``fit``, ``validate``, ``test``, ``predict``) with enhtrain's defaults.

    Args:
        argv: The arguments, without the program name.
        prepared: ``argv`` already composed by :func:`~enhtrain.config.arguments.prepare_arguments`.
    """
    EnhancedCLI(
        experiment_defaults=True,
        prepared=prepared,
        args=argv,
        parser_kwargs=_parser_kwargs(),
    )


class _CheckingCLI(EnhancedCLI):
    """An ``EnhancedCLI`` that builds what ``fit`` builds and trains nothing.

    The model, the data module, the loggers, callbacks and profiler and the Trainer are built as for ``fit``, so
    that their own checks run, with the run directory in a throwaway folder that is removed at the end; no
    checkpoint is read and no run is resumed.
    """

    _scratch: str | None = None

    @override
    def _parse_ckpt_path(self) -> None:
        pass

    @override
    def before_instantiate_classes(self) -> None:
        assert self.prepared is not None
        resume = self.prepared.experiment.resume
        self.prepared.experiment.resume = None
        try:
            super().before_instantiate_classes()
        finally:
            self.prepared.experiment.resume = resume
        if self.session is not None:
            self.session.seed = None  # nothing is trained: no "Seed set to" line
            self._scratch = tempfile.mkdtemp(prefix="enhtrain-check-")
            self.session.experiment = self.session.experiment.model_copy(update={"root_dir": self._scratch})

    @override
    def instantiate_classes(self) -> None:
        # Lightning's notes about the Trainer it builds ("GPU available: ...") are about a run that is not made.
        quieted = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
        levels = [logger.level for logger in quieted]
        for logger in quieted:
            logger.setLevel(max(logger.level, logging.WARNING))
        try:
            super().instantiate_classes()
        finally:
            for logger, level in zip(quieted, levels, strict=True):
                logger.setLevel(level)
            if self.session is not None:
                self.session.abort()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)

    @override
    def _run_subcommand(self, subcommand: str) -> None:
        pass


def check_arguments(prepared: PreparedArgs) -> None:
    """Parse and check a composed command line as ``fit`` does, building everything and training nothing.

    jsonargparse checks the ``trainer``, ``model``, ``data`` and other sections against their classes' signatures,
    the plugins' ``enhtrain_validate_config`` checks run, and then the model, the data module, the experiment's
    loggers, callbacks and profiler and the Trainer are built, so that a value their own code refuses
    (``dropout: 7``, ``accelerator: gpu`` without a GPU, a logger whose package is missing) is refused here too.
    Their run directory is a throwaway folder; checkpoints (``ckpt_path``, ``experiment.resume``) are not read.

    Args:
        prepared: The command line composed by :func:`~enhtrain.config.arguments.prepare_arguments`.

    Raises:
        ConfigError: With the same message as ``fit`` for the same input.
    """
    _CheckingCLI(experiment_defaults=True, prepared=prepared, args=prepared.original,
                 parser_kwargs=_parser_kwargs())


def _parser_kwargs() -> dict[str, Any]:
    """jsonargparse's settings for ``enhtrain``: errors raised rather than printed, enhtrain's help and usage."""
    parser_kwargs: dict[str, Any] = {"exit_on_error": False, "prog": "enhtrain", "formatter_class": _HelpFormatter}
    parser_kwargs.update(
        {
            name: {
                "exit_on_error": False,
                "usage": _usage(name),
                "description": _enhtrain_help(),
                "formatter_class": _HelpFormatter,
            }
            for name in LightningCLI.subcommands()
        }
    )
    return parser_kwargs
