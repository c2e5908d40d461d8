"""What the built-in loggers share: the run's name, version and directory, masked hyper-parameters, the run's
directory layout, option checking and the offline switch."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from argparse import Namespace
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from enhtrain.errors import ConfigError
from enhtrain.secrets import mask_secrets

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


def _checked_by(check: Callable[[Mapping[str, Any]], object]) -> Callable[[_F], _F]:
    """Attach ``check`` to a logger factory as its ``check_options``, for checking a config before a run starts.

    :func:`enhtrain.config.components.check_options` calls it when the config is composed, so that an unknown
    option is refused before anything is built; the factory calls the same check when it creates the logger.
    What ``check`` returns (the checked options, for a factory that goes on to use them) is dropped.
    """

    def check_options(options: Mapping[str, Any]) -> None:
        check(options)

    check_options.__doc__ = check.__doc__

    def attach(factory: _F) -> _F:
        factory.check_options = check_options  # type: ignore[attr-defined]
        return factory

    return attach


def _require(logger: str, module: str, extra: str) -> None:
    """Raise a :class:`~enhtrain.errors.ConfigError` naming the extra to install if ``module`` is missing."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"logger {logger!r} needs the {module} package: pip install 'enhtrain[{extra}]'") from err


def _offline(logger: str, options: Mapping[str, Any], key_variable: str) -> tuple[dict[str, Any], str | None, bool]:
    """Take ``api_key``, ``offline`` and ``online`` out of ``options``; without ``offline`` or ``online``, run
    offline unless an API key is set.

    Args:
        logger: The logger's registry name, for the message.
        options: The user's options; left as they are.
        key_variable: The environment variable that holds the service's API key.

    Returns:
        The other options, the ``api_key`` option (``None`` without one) and whether to log offline.

    Raises:
        ConfigError: If ``offline`` and ``online`` contradict each other.
    """
    rest = dict(options)
    api_key = rest.pop("api_key", None)
    offline = rest.pop("offline", None)
    online = rest.pop("online", None)
    if offline is not None and online is not None and bool(offline) == bool(online):
        raise ConfigError(f"logger {logger!r}: options offline={offline} and online={online} contradict each other")
    if offline is not None:
        return rest, api_key, bool(offline)
    if online is not None:
        return rest, api_key, not online
    return rest, api_key, not (api_key or os.environ.get(key_variable))


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


def _write_hparams(path: str, hparams: dict[str, Any]) -> None:
    """Write ``hparams.yaml``: plain data directly, anything else through Lightning's ``save_hparams_to_yaml``.

    For plain data the file holds what Lightning writes, without building an OmegaConf object of the whole config
    first (the slowest step of a small run's start).
    """
    if not _plain(hparams):
        from lightning.pytorch.core.saving import save_hparams_to_yaml

        save_hparams_to_yaml(path, hparams)
        return
    import yaml

    from enhtrain._io import atomic_write_text

    # The text of yaml.safe_dump, written by libyaml when PyYAML has it.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    atomic_write_text(path, yaml.dump(hparams, Dumper=dumper, sort_keys=False, allow_unicode=True))


def _plain(value: Any) -> bool:
    """Whether ``value`` is YAML's plain data: mappings with string keys, lists, strings, numbers, booleans, None."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


class _RunLogger(Logger):
    """Reports the run's name and version, whatever the Lightning logger below calls its experiment, and logs
    hyper-parameters with their secrets masked (see :mod:`enhtrain.secrets`).

    Mixed in before a Lightning logger (or before :class:`~lightning.pytorch.loggers.logger.Logger` itself), whose
    arguments the subclass passes on after the run's three.

    Args:
        log_dir: The logger's directory.
        name: The run's name.
        version: The run's version.
        **kwargs: The arguments of the Lightning logger.
    """

    def __init__(self, log_dir: str, name: str, version: str, /, **kwargs: Any) -> None:
        self._run_log_dir = os.fspath(log_dir)
        self._reported_name = name
        self._reported_version = version
        super().__init__(**kwargs)

    @property
    @override
    def name(self) -> str:
        """The run's name."""
        return self._reported_name

    @property
    @override
    def version(self) -> str:
        """The run's version."""
        return self._reported_version

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Log hyper-parameters as the Lightning logger does, with their secrets masked.

        Args:
            params: The hyper-parameters.
            *args: Further arguments of the Lightning logger's ``log_hyperparams``.
            **kwargs: Further keyword arguments of the Lightning logger's ``log_hyperparams``.
        """
        super().log_hyperparams(mask_secrets(_convert_params(params)), *args, **kwargs)


class _RunLogDir(_RunLogger):
    """A :class:`_RunLogger` whose ``log_dir`` is the logger's directory."""

    @property
    @override
    def log_dir(self) -> str:
        """The logger's directory."""
        return self._run_log_dir


class _AllInLogDir(_RunLogDir):
    """A :class:`_RunLogDir` that keeps all its files in the logger's directory, its ``save_dir`` too."""

    @property
    @override
    def save_dir(self) -> str:
        """The logger's directory, where it keeps all its files."""
        return self._run_log_dir


class _RunLayout(_RunLogDir):
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

    _run_root: str | None

    def __init__(self, log_dir: str, name: str, version: str, **kwargs: Any) -> None:
        log_dir = os.fspath(log_dir)
        self._run_root = _run_root(log_dir, name, version)
        save_dir = log_dir if self._run_root is None else self._run_root
        super().__init__(log_dir, name, version, save_dir=save_dir, name=name, version=version, **kwargs)

    @property
    def root_dir(self) -> str:
        """``<root>/<name>``, holding the run's versions; ``log_dir`` outside a run directory."""
        return self._run_log_dir if self._run_root is None else os.path.join(self._run_root, self.name)
