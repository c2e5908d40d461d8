"""``EnhancedCLI``: a drop-in ``LightningCLI`` that adds layered configs, plugins and run directories.

With no ``experiment`` section, no ``--env`` and no ``--experiment.*`` flag, ``EnhancedCLI`` parses and
runs exactly as ``LightningCLI``. Otherwise enhtrain composes the config layers itself, validates the
``experiment`` section, and gives the run its directory, loggers, callbacks, profiler and checkpoints.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any, TypeVar

import yaml
from jsonargparse import ArgumentError, DefaultHelpFormatter, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from typing_extensions import override

from enhtrain import plugins
from enhtrain.callbacks.progress import default_progress_callbacks
from enhtrain.config.arguments import PreparedArgs, prepare_arguments
from enhtrain.config.errors import describe_parser_error, where_set
from enhtrain.errors import ConfigError, RunDirError
from enhtrain.run.session import RunSession
from enhtrain.secrets import mask_secrets
from enhtrain.security import check_import

__all__ = ["EnhancedCLI", "run_training"]


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
        self.prepared: PreparedArgs | None = prepared
        self.session: RunSession | None = None
        self._experiment_defaults = experiment_defaults
        cli_args = kwargs.get("args")
        if not isinstance(cli_args, (dict, Namespace)):
            argv = sys.argv[1:] if cli_args is None else [str(a) for a in cli_args]
            subcommands = tuple(self.subcommands()) if kwargs.get("run", True) else None
            if self.prepared is None:
                self.prepared = prepare_arguments(argv, force=experiment_defaults, subcommands=subcommands)
            if self.prepared is not None:
                kwargs["args"] = self.prepared.argv
        super().__init__(*args, **kwargs)

    @property
    def enhanced(self) -> bool:
        """Whether enhtrain's experiment features are on for this invocation."""
        return self.prepared is not None

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # `python -m enhtrain SUBCOMMAND --help` composes nothing but still lists `--experiment`.
        if self.enhanced or self._experiment_defaults:
            parser.add_argument(
                "--experiment",
                type=dict | None,
                default=None,
                help="enhtrain's experiment section: run directory, loggers, callbacks, checkpoint, profiler, resume.",
            )

    def _dumped_config(self) -> dict[str, Any]:
        """The parsed config of the subcommand as plain data (defaults included)."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        parser = self._parser(subcommand)
        return yaml.safe_load(parser.dump(config, skip_none=False)) or {}

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
            self.config = parser.parse_args(args)
        except ArgumentError as err:
            assert self.prepared is not None
            raise ConfigError(
                describe_parser_error(str(err), self.prepared.composed, self.prepared.split.rest)
            ) from err
        subcommand = self.config.get("subcommand")
        if subcommand:
            seed = self.config[subcommand].get("seed_everything")
            if isinstance(seed, int) and not isinstance(seed, bool) and not _SEED_MIN <= seed <= _SEED_MAX:
                where = where_set("seed_everything", self.prepared.composed, self.prepared.split.rest)
                raise ConfigError(
                    f"{where}: seed_everything: {seed} is out of range: use a whole number from {_SEED_MIN} to "
                    f"{_SEED_MAX}, or true for a random seed"
                )
            # Plugins see every value, defaults and command-line flags included, before anything is built.
            plugins.validate_config(self._dumped_config())

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
        trust = self.prepared.experiment.trust_checkpoint
        hparams = cli_model_hparams(path, trust=trust)
        if path is not None and str(path) not in LIGHTNING_CKPT_ALIASES and not str(path).startswith("registry:"):
            require_lightning(safe_load(path, trust=trust, mmap=True), path)
        if hparams and isinstance(hparams.get("class_path"), str):
            # A class path stored in a checkpoint becomes an import like any in a config.
            check_import(hparams["class_path"], key="model.class_path", policy=self.prepared.import_policy,
                         where=f"checkpoint '{path}' (hyper_parameters._class_path)")
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    @override
    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        if not self.enhanced or self.subcommand is None:
            return
        assert self.prepared is not None
        parser = self._parser(self.subcommand)
        dumped = yaml.safe_load(parser.dump(self.config[self.subcommand], skip_none=False))
        # Checks only: the run directory is opened once the model and data module are built.
        self.session = RunSession.start(
            self.prepared, dumped, subcommand=self.subcommand, trust=self.prepared.experiment.trust_checkpoint
        )
        self.save_config_callback = None

    @override
    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
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
        trainer_config = self._get(self.config_init, "trainer", default={})
        user_callbacks = trainer_config.get("callbacks") or []
        if not isinstance(user_callbacks, list):
            user_callbacks = [user_callbacks]
        has_checkpoint = any(isinstance(c, ModelCheckpoint) for c in user_callbacks)
        extra = self.session.build_trainer_kwargs(
            user_logger=trainer_config.get("logger"),
            user_profiler=trainer_config.get("profiler"),
            user_plugins=trainer_config.get("plugins"),
            has_checkpoint=has_checkpoint,
            checkpoint_io_cls=CheckpointIO,
        )
        callbacks: list[Callback] = [*user_callbacks, *extra.pop("callbacks")]
        wants_bar = trainer_config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.extend(default_progress_callbacks())
        trainer = super().instantiate_trainer(**kwargs, **extra, callbacks=callbacks)
        for logger in trainer.loggers:
            _mask_hyperparams(logger, self.session.secret_values)
        return trainer

    @override
    def _run_subcommand(self, subcommand: str) -> None:
        if self.session is None:
            super()._run_subcommand(subcommand)
            return
        session = self.session
        if subcommand == "fit" and session.resume_ckpt is not None:
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


class _HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the epilog kept as written."""


_ENHTRAIN_OPTIONS = """\
enhtrain options (read before the options above):
  --config FILE            a YAML config; repeatable; each may `extends: [other.yaml]`
  --env NAME|FILE          environment overlay: dev, test, prod, env/NAME.yaml beside the first config, or a file
  --experiment.KEY VALUE   the experiment section: name, root_dir, version, tags, loggers, callbacks,
                           checkpoint, profiler, resume, allow_config_change
  --trust_checkpoint       load checkpoints that need pickled objects (only from a trusted source)
  --safe                   allow only registered components, torch and lightning as class paths
  --allow_module NAME      with --safe, also allow classes from this package
See `enhtrain config explain` for where each value comes from."""


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


_E = TypeVar("_E", bound=BaseException)
# The seeds Lightning's `seed_everything` accepts (NumPy's range).
_SEED_MIN, _SEED_MAX = 0, 2**32 - 1


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


def _mask_hyperparams(logger: Logger, values: set[str]) -> None:
    """Mask secrets in whatever hyper-parameters reach ``logger``, whoever logs them (Lightning, a model, a plugin)."""
    log_hyperparams = logger.log_hyperparams

    def masked(params: Any, *args: Any, **kwargs: Any) -> Any:
        return log_hyperparams(mask_secrets(params, values), *args, **kwargs)

    logger.log_hyperparams = masked  # type: ignore[method-assign]


def _raised_by_lightning(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is Lightning's code."""
    tb = err.__traceback__
    module = ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return module.startswith(("lightning.", "pytorch_lightning."))


def run_training(argv: list[str], prepared: PreparedArgs | None = None) -> None:
    """Run a training subcommand (``fit``, ``validate``, ``test``, ``predict``) with enhtrain's defaults.

    Args:
        argv: The arguments, without the program name.
        prepared: ``argv`` already composed by :func:`~enhtrain.config.arguments.prepare_arguments`.
    """
    parser_kwargs: dict[str, Any] = {"exit_on_error": False, "prog": "enhtrain", "formatter_class": _HelpFormatter}
    parser_kwargs.update(
        {
            name: {"exit_on_error": False, "epilog": _ENHTRAIN_OPTIONS, "formatter_class": _HelpFormatter}
            for name in LightningCLI.subcommands()
        }
    )
    EnhancedCLI(
        experiment_defaults=True,
        prepared=prepared,
        args=argv,
        parser_kwargs=parser_kwargs,
    )
