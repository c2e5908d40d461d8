"""The run's CSV logger: ``<log_dir>/metrics.csv`` and ``<log_dir>/hparams.yaml``.

The ``csv`` factory is called as ``csv_logger(log_dir, name, version, **options)``: ``log_dir`` is the logger's
own directory, ``<run>/logs/csv`` in a run ``runs/<name>/<version>/``, and ``options`` are the user's options
from the config. The logger reports the run's name and version (``logger.name == name``,
``str(logger.version) == version``). ``logger.log_dir`` is ``log_dir`` (so it is ``trainer.log_dir`` when the
logger comes first) and, when ``log_dir`` sits at ``<root>/<name>/<version>/logs/csv``, ``logger.save_dir`` is
``<root>``, so that Lightning's default checkpoint directory, ``<save_dir>/<name>/<version>/checkpoints``, is the
run's ``checkpoints/``. Elsewhere ``save_dir`` is ``log_dir``. Secrets in the hyper-parameters are masked (see
:mod:`enhtrain.secrets`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from typing_extensions import override

from enhtrain.loggers._common import _check_options, _checked_by, _parameters, _RunLayout, _write_hparams

__all__ = ["RunCSVLogger", "csv_logger"]


class _KeepingCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued instead of deleted, and
    ``hparams.yaml`` is written at the next ``save`` rather than at every ``log_hparams``.

    A run logs its config and then Lightning logs the model's hyper-parameters, each followed by a ``save``
    (Lightning's TensorBoard logger writes its ``hparams.yaml`` there too): the file is written once, with both,
    instead of once per call. ``finalize`` saves, so a run that fails before its first ``save`` still has it.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._hparams_pending = False

    @override
    def log_hparams(self, params: dict[str, Any]) -> None:
        """Record the hyper-parameters; the next :meth:`save` writes ``hparams.yaml``."""
        self.hparams.update(params)
        self._hparams_pending = True

    @override
    def save(self) -> None:
        """Write ``hparams.yaml`` if hyper-parameters were logged since the last save, then the recorded metrics."""
        if self._hparams_pending:
            self._hparams_pending = False
            _write_hparams(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams)
        super().save()

    @override
    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as handle:
            header = next(csv.reader(handle), [])
        self.metrics_keys = sorted(header)
        if header != self.metrics_keys:
            self._rewrite_with_new_header(self.metrics_keys)


class RunCSVLogger(_RunLayout, CSVLogger):
    r"""Lightning's ``CSVLogger`` writing ``metrics.csv`` and ``hparams.yaml`` directly in ``log_dir``.

    An existing ``metrics.csv`` (a resumed run's) is continued rather than replaced.

    Example::

        logger = RunCSVLogger("runs/mnist/version_0/logs/csv", name="mnist", version="version_0")
        trainer = Trainer(logger=logger)

    Args:
        log_dir: The logger's directory, which holds ``metrics.csv`` and ``hparams.yaml``.
        name: The run's name.
        version: The run's version.
        \**kwargs: Further arguments of ``CSVLogger`` (``prefix``, ``flush_logs_every_n_steps``).

    """

    @property
    @override
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer of ``metrics.csv``; it appends to the rows already there (those of a resumed run)."""
        if self._experiment is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _KeepingCSVWriter(self.log_dir)
        return self._experiment


def _check_csv_options(options: Mapping[str, Any]) -> None:
    """Refuse an option that Lightning's ``CSVLogger`` does not take, or that enhtrain sets.

    Raises:
        ConfigError: Naming the option and the accepted ones.
    """
    _check_options("csv", options, _parameters(CSVLogger.__init__))


@_checked_by(_check_csv_options)
def csv_logger(log_dir: str, name: str, version: str, **options: Any) -> RunCSVLogger:
    """Create the run's CSV logger, writing ``<log_dir>/metrics.csv`` and ``<log_dir>/hparams.yaml``.

    Args:
        log_dir: The logger's directory, ``<run>/logs/csv``; ``metrics.csv`` and ``hparams.yaml`` go in it.
        name: The run's name.
        version: The run's version.
        **options: Options of Lightning's ``CSVLogger``: ``prefix``, ``flush_logs_every_n_steps``.

    Returns:
        A :class:`RunCSVLogger`.

    Raises:
        ConfigError: If an option is unknown or is set by enhtrain.
    """
    _check_csv_options(options)
    return RunCSVLogger(log_dir, name, version, **options)
