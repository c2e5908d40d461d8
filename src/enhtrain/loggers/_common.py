"""What the built-in loggers share: the run's directory layout, option checking and the offline switch."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from enhtrain.errors import ConfigError

_RUN_OPTIONS = {
    "save_dir": "the run directory",
    "root_dir": "the run directory",
    "dir": "the run directory",
    "log_dir": "the run directory",
    "offline_directory": "the run directory",
    "name": "experiment.name",
    "experiment_name": "experiment.name",
    "version": "experiment.version",
    "experiment": "the logger",
    "mode": "the offline option",
    "disabled": "the offline option",
}
"""Options that enhtrain sets from the run, with where they come from (part of the error message)."""


def _parameters(*callables: Callable[..., Any]) -> set[str]:
    """Return the names of the parameters the callables take, without ``self``, ``*args`` and ``**kwargs``."""
    names: set[str] = set()
    for fn in callables:
        for parameter in inspect.signature(fn).parameters.values():
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) and parameter.name != "self":
                names.add(parameter.name)
    return names


def _check_options(logger: str, options: Mapping[str, Any], accepted: Collection[str]) -> None:
    """Raise a :class:`~enhtrain.errors.ConfigError` for an option the logger does not take.

    Args:
        logger: The logger's registry name, for the message.
        options: The user's options.
        accepted: The options the logger takes.

    Raises:
        ConfigError: If an option is set by enhtrain (:data:`_RUN_OPTIONS`) or not in ``accepted``.
    """
    for key in options:
        if key in _RUN_OPTIONS:
            raise ConfigError(
                f"logger {logger!r}: option {key!r} is set by enhtrain from {_RUN_OPTIONS[key]}; remove it"
            )
        if key not in accepted:
            # The options enhtrain sets itself are refused above, so they are not offered either.
            offered = sorted(set(accepted) - set(_RUN_OPTIONS))
            close = difflib.get_close_matches(key, offered, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"logger {logger!r} has no option {key!r}{hint}; accepted: {', '.join(offered)}")


_F = TypeVar("_F", bound=Callable[..., Any])


def _checked_by(check: Callable[[Mapping[str, Any]], None]) -> Callable[[_F], _F]:
    """Attach ``check`` to a logger factory as its ``check_options``, for checking a config before a run starts.

    :func:`enhtrain.run.components.check_options` calls it when the config is composed, so that an unknown
    option is refused before anything is built; the factory calls the same check when it creates the logger.
    """

    def attach(factory: _F) -> _F:
        factory.check_options = check  # type: ignore[attr-defined]
        return factory

    return attach


def _require(logger: str, module: str, extra: str) -> None:
    """Raise a :class:`~enhtrain.errors.ConfigError` naming the extra to install if ``module`` is missing."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"logger {logger!r} needs the {module} package: pip install 'enhtrain[{extra}]'") from err


def _offline(logger: str, options: dict[str, Any], api_key: str | None, key_variable: str) -> bool:
    """Pop ``offline``/``online`` from ``options``; without either, run offline unless an API key is set.

    Args:
        logger: The logger's registry name, for the message.
        options: The user's options; ``offline`` and ``online`` are removed from it.
        api_key: The ``api_key`` option, if given.
        key_variable: The environment variable that holds the service's API key.

    Returns:
        Whether to log offline.

    Raises:
        ConfigError: If ``offline`` and ``online`` contradict each other.
    """
    offline = options.pop("offline", None)
    online = options.pop("online", None)
    if offline is not None and online is not None and bool(offline) == bool(online):
        raise ConfigError(f"logger {logger!r}: options offline={offline} and online={online} contradict each other")
    if offline is not None:
        return bool(offline)
    if online is not None:
        return not online
    return not (api_key or os.environ.get(key_variable))


def _run_root(log_dir: str, name: str, version: str) -> str | None:
    """Return ``<root>`` when ``log_dir`` is ``<root>/<name>/<version>/logs/<key>``, else ``None``."""
    if not name or not version:
        return None
    logs = os.path.dirname(os.path.normpath(log_dir))
    suffix = os.path.normpath(os.path.join(name, version, "logs"))
    if logs == suffix:
        return "."
    if logs.endswith(os.sep + suffix):
        return logs[: -len(suffix) - 1] or os.sep
    return None


class _RunLayout:
    """Places a Lightning logger's files directly in ``log_dir`` while it reports the run's name and version.

    Mixed in before a Lightning logger that takes ``save_dir``, ``name`` and ``version``. Inside a run directory,
    ``save_dir`` is the runs root, so that Lightning's default checkpoint folder,
    ``<save_dir>/<name>/<version>/checkpoints``, is the run's ``checkpoints/``; elsewhere it is ``log_dir`` itself.

    Args:
        log_dir: The logger's directory.
        name: The run's name.
        version: The run's version.
        **kwargs: Further arguments of the Lightning logger.
    """

    _run_log_dir: str
    _run_root: str | None

    def __init__(self, log_dir: str, name: str, version: str, **kwargs: Any) -> None:
        self._run_log_dir = os.fspath(log_dir)
        self._run_root = _run_root(self._run_log_dir, name, version)
        super().__init__(  # type: ignore[call-arg]
            save_dir=self._run_log_dir if self._run_root is None else self._run_root,
            name=name,
            version=version,
            **kwargs,
        )

    @property
    def root_dir(self) -> str:
        """``<root>/<name>``, holding the run's versions; ``log_dir`` outside a run directory."""
        name = self.name  # type: ignore[attr-defined]
        return self._run_log_dir if self._run_root is None else os.path.join(self._run_root, name)
