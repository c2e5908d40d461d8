"""Quiet two messages of the libraries enhtrain builds on that every training command printed and no user can act on.

- Lightning's tip to install ``litlogger`` (enhtrain chooses the run's loggers);
- the ``FutureWarning`` that torch raises when Lightning's ``_pytree`` module builds a ``LeafSpec``.

Each is matched by its logger or module and its text, so every other message of the same libraries still shows.
The troubleshooting page says how to quiet the rest.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_library_noise"]

_LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"
_TIP_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _DropLitLoggerTip(logging.Filter):
    """Drops Lightning's ``litlogger`` tip and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_LITLOGGER_TIP)


def quiet_library_noise() -> None:
    """Install the two filters (once per process)."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    logger = logging.getLogger(_TIP_LOGGER)
    if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
        logger.addFilter(_DropLitLoggerTip())
