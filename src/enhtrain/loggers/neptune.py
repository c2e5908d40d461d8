"""The ``neptune`` logger: Lightning's ``NeptuneLogger``, named after the run.

The ``neptune`` factory is called as ``neptune_logger(log_dir, name, version, **options)``. It needs the
``neptune`` package, and a Lightning release that still ships a working ``NeptuneLogger``: Neptune has been
sunset, and the Lightning releases enhtrain is tested with replace the logger by a stub that refuses to start.
Either way the factory ends with a :class:`~enhtrain.errors.ConfigError` that says what to do, before training
starts. With a Lightning that has the logger, the Neptune run is named ``<name>/<version>`` and the user's options
(``project``, ``api_key``, ``mode``, ...) are passed on.

Importing this module does not import ``neptune``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from lightning.pytorch.loggers.logger import Logger

from enhtrain.errors import ConfigError

__all__ = ["neptune_logger"]


def neptune_logger(log_dir: str, name: str, version: str, **options: Any) -> Logger:
    """Create Lightning's Neptune logger for the run.

    Args:
        log_dir: The logger's directory, ``<run>/logs/neptune`` (Neptune keeps its files on its servers).
        name: The run's name.
        version: The run's version.
        **options: Options of Lightning's ``NeptuneLogger`` and of ``neptune.init_run``.

    Returns:
        Lightning's ``NeptuneLogger``.

    Raises:
        ConfigError: If the neptune package is not installed, or the installed Lightning no longer supports
            Neptune.
    """
    if importlib.util.find_spec("neptune") is None:
        raise ConfigError("logger 'neptune' needs the neptune package: pip install neptune")
    from lightning.pytorch.loggers.neptune import NeptuneLogger

    try:
        return NeptuneLogger(name=f"{name}/{version}", **options)  # type: ignore[no-any-return]
    except RuntimeError as err:
        import lightning

        raise ConfigError(
            f"logger 'neptune': Lightning {lightning.__version__} no longer supports Neptune, which has been "
            f"sunset ({' '.join(str(err).split())}); choose another logger, such as mlflow or wandb"
        ) from err
