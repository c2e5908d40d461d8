"""The run's TensorBoard logger: ``<log_dir>/events.out.tfevents.*`` and ``<log_dir>/hparams.yaml``.

The ``tensorboard`` factory is called as ``tensorboard_logger(log_dir, name, version, **options)``: ``log_dir``
is the logger's own directory, ``<run>/logs/tensorboard`` in a run ``runs/<name>/<version>/``. The logger reports
the run's name and version; ``logger.log_dir`` is ``log_dir`` (``<log_dir>/<sub_dir>`` with ``sub_dir``) and,
inside a run directory, ``logger.save_dir`` is the runs root, as for the CSV logger
(:mod:`enhtrain.loggers.csv`). Secrets in the hyper-parameters are masked (see :mod:`enhtrain.secrets`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from enhtrain.loggers._common import _check_options, _checked_by, _parameters, _RunLayout, _write_hparams

__all__ = ["RunTensorBoardLogger", "tensorboard_logger"]


class RunTensorBoardLogger(_RunLayout, TensorBoardLogger):
    r"""Lightning's ``TensorBoardLogger`` writing its events and ``hparams.yaml`` directly in ``log_dir``.

    With ``sub_dir``, the event files go to ``<log_dir>/<sub_dir>`` instead.

    Example::

        logger = RunTensorBoardLogger("runs/mnist/version_0/logs/tensorboard", name="mnist", version="version_0")
        trainer = Trainer(logger=logger)

    Args:
        log_dir: The logger's directory, which holds the event files and ``hparams.yaml``.
        name: The run's name.
        version: The run's version.
        \**kwargs: Further arguments of ``TensorBoardLogger`` and of its ``SummaryWriter``.

    """

    @property
    @override
    def log_dir(self) -> str:
        """The directory of the event files (``<log_dir>/<sub_dir>`` when ``sub_dir`` is given)."""
        return self._run_log_dir if self.sub_dir is None else os.path.join(self._run_log_dir, self.sub_dir)

    @override
    @rank_zero_only
    def save(self) -> None:
        # Lightning writes `hparams.yaml` at the first save, when it is absent: written here first, as the CSV
        # logger writes it (plain data without an OmegaConf object of the whole config), Lightning leaves it be.
        hparams_file = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        if os.path.isdir(self.log_dir) and not os.path.isfile(hparams_file):
            _write_hparams(hparams_file, self.hparams)
        super().save()


def _summary_writer_parameters() -> set[str]:
    """The options of the ``SummaryWriter`` that Lightning's ``TensorBoardLogger`` uses."""
    if _TENSORBOARD_AVAILABLE:
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter

    return _parameters(SummaryWriter.__init__)


def _check_tensorboard_options(options: Mapping[str, Any]) -> None:
    """Refuse an option that neither Lightning's ``TensorBoardLogger`` nor its ``SummaryWriter`` takes.

    Raises:
        ConfigError: Naming the option and the accepted ones.
    """
    _check_options("tensorboard", options, _parameters(TensorBoardLogger.__init__) | _summary_writer_parameters())


@_checked_by(_check_tensorboard_options)
def tensorboard_logger(log_dir: str, name: str, version: str, **options: Any) -> RunTensorBoardLogger:
    """Create the run's TensorBoard logger, writing its event files and ``hparams.yaml`` in ``log_dir``.

    Args:
        log_dir: The logger's directory, ``<run>/logs/tensorboard``.
        name: The run's name.
        version: The run's version.
        **options: Options of Lightning's ``TensorBoardLogger`` (``log_graph``, ``default_hp_metric``,
            ``prefix``, ``sub_dir``) and of its ``SummaryWriter`` (``max_queue``, ``flush_secs``, ...).

    Returns:
        A :class:`RunTensorBoardLogger`.

    Raises:
        ConfigError: If an option is unknown to both ``TensorBoardLogger`` and ``SummaryWriter``, or is set by
            enhtrain.
    """
    _check_tensorboard_options(options)
    return RunTensorBoardLogger(log_dir, name, version, **options)
