"""A ``run=False`` script's run: it calls the Trainer itself, so the run starts when the Trainer is built.

``EnhancedCLI(..., run=False)`` builds the model, the data module and the Trainer, and the script then calls
``cli.trainer.fit(...)`` (and ``test``, ...) itself. With the experiment on, :func:`start_script_run` does, once
the Trainer is built, what a subcommand does before it runs: it ends a resumed run that is finished, points the
Trainer at the checkpoint to resume from, and writes the run's ``config.yaml`` and ``metadata.json``;
:class:`ScriptRun` records how each of the script's Trainer calls ended.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

if TYPE_CHECKING:
    from enhtrain.run.session import RunSession

__all__ = ["ScriptRun", "start_script_run"]


class ScriptRun(Callback):
    """Records the run's status, step and metrics in ``metadata.json`` at the end of each Trainer call.

    The run's lock is held from the start of each call to its end, as a subcommand holds it.

    The first call resumes from the run's checkpoint (``experiment.resume``) unless the script passes its own
    ``ckpt_path``; the calls after it start from where the script's model is, as in Lightning.

    Args:
        session: The run.
    """

    def __init__(self, session: RunSession) -> None:
        self.session = session
        self._resuming = False

    def resume(self, trainer: pl.Trainer, checkpoint: str) -> None:
        """Make the Trainer's next call start from ``checkpoint`` (Lightning's ``trainer.ckpt_path``)."""
        trainer.ckpt_path = checkpoint
        self._resuming = True

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.session.hold()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._end(trainer, None)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._end(trainer, exception)

    def _end(self, trainer: pl.Trainer, error: BaseException | None) -> None:
        if self._resuming:
            # Lightning keeps a `trainer.ckpt_path` that was set for every later call; the resume is for the first.
            trainer.ckpt_path = None
            self._resuming = False
        self.session.finish(trainer, error)
        summary = trainer.state.fn == "fit" and any(getattr(c, "print_summary", False) for c in trainer.callbacks)
        if error is None and self.session.is_writer and not summary:
            # As after a subcommand: the run_summary callback says it at the end of a fit, or this line does.
            sys.stdout.write(f"Run directory: {self.session.run.path}\n")
            sys.stdout.flush()


def start_script_run(session: RunSession, trainer: pl.Trainer, script_run: ScriptRun) -> None:
    """Start the run of a ``run=False`` script once its Trainer is built.

    Args:
        session: The run (its directory open).
        trainer: The Trainer the script will call.
        script_run: The :class:`ScriptRun` callback among the Trainer's callbacks.

    Raises:
        SystemExit: With status 0, when the run to resume is finished (see
            :meth:`~enhtrain.run.session.RunSession.end_if_finished`).
    """
    if session.resume_ckpt is not None:
        session.end_if_finished()
        script_run.resume(trainer, session.resume_ckpt)
    session.commit()
    if session.is_writer:
        config: dict[str, Any] = {"config": session.masked_config}
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
