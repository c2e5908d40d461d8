"""Building the loggers, callbacks and profiler an ``experiment`` section names, from the registry.

Their options are checked before anything is built by :mod:`enhtrain.config.components`, which this module
builds on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from enhtrain import plugins
from enhtrain.config.components import (
    check_experiment_options,
    check_options,
    parameters,
    refuse_run_options,
    resolve_component,
)
from enhtrain.errors import ConfigError, EnhtrainError
from enhtrain.run.directory import RunDir

__all__ = [
    "build_callbacks",
    "build_loggers",
    "build_profiler",
    "call_with_options",
    "check_experiment_options",
    "check_options",
]


def call_with_options(
    target: Callable[..., Any], options: Mapping[str, Any], context: Mapping[str, Any], key: str
) -> Any:
    """Call a registered class or factory with the user's options plus the context values it accepts.

    Args:
        target: The class or factory.
        options: The user's options from the config.
        context: Values enhtrain offers (``log_dir``, ``name``, ...), passed only if the signature names them
            and the user did not set them.
        key: The config key, for messages (``experiment.callbacks.grad_norm``).

    Raises:
        ConfigError: If an option is not accepted or the call rejects a value.
    """
    check_options(target, options, key, filled=set(context))
    params, _ = parameters(target)
    kwargs = {k: v for k, v in context.items() if k in params and k not in options}
    kwargs.update(options)
    try:
        return target(**kwargs)
    except EnhtrainError as err:
        if type(err) is ConfigError and not str(err).startswith(key):
            raise ConfigError(f"{key}: {err}") from err
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {' '.join(str(err).split())}") from err


def build_loggers(loggers: Mapping[str, Mapping[str, Any]], run: RunDir) -> list[Any]:
    """Instantiate the named loggers, each writing under ``<run>/logs/<name>/`` with the run's name and version."""
    registry = plugins.get_registry().loggers
    out = []
    for name, options in loggers.items():
        refuse_run_options(name, options)
        target = resolve_component(registry, name, f"experiment.loggers.{name}")
        context = {
            "log_dir": str(run.logs / name),
            "save_dir": str(run.logs / name),
            "name": run.name,
            "version": run.version,
        }
        out.append(call_with_options(target, options, context, f"experiment.loggers.{name}"))
    return out


def build_callbacks(callbacks: Mapping[str, Mapping[str, Any]], run: RunDir) -> list[Any]:
    """Instantiate the named callbacks with their options."""
    registry = plugins.get_registry().callbacks
    context = {"run_dir": str(run.path), "dirpath": str(run.checkpoints)}
    return [
        call_with_options(
            resolve_component(registry, name, f"experiment.callbacks.{name}"), options, context,
            f"experiment.callbacks.{name}",
        )
        for name, options in callbacks.items()
    ]


def build_profiler(name: str, options: Mapping[str, Any], run: RunDir) -> Any:
    """Instantiate the named profiler, reporting into ``<run>/profiler/``."""
    registry = plugins.get_registry().profilers
    target = resolve_component(registry, name, "experiment.profiler")
    context = {"dirpath": str(run.profiler), "filename": name}
    return call_with_options(target, options, context, "experiment.profiler")
