"""Building the loggers, callbacks and profiler an ``experiment`` section names, from the registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from enhtrain import plugins
from enhtrain.errors import ConfigError, EnhtrainError
from enhtrain.run.directory import RunDir

__all__ = ["build_callbacks", "build_loggers", "build_profiler", "call_with_options"]


def _parameters(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    func = target.__init__ if inspect.isclass(target) else target  # type: ignore[misc]
    try:
        params = dict(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return {}, True
    params.pop("self", None)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    named = {k: p for k, p in params.items() if p.kind not in variadic}
    return named, var_kw


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
    params, var_kw = _parameters(target)
    unknown = [k for k in options if k not in params]
    if unknown and not var_kw:
        set_by_enhtrain = {"log_dir", "save_dir", "name", "version"} & set(context)
        accepted = ", ".join(k for k in params if k not in set_by_enhtrain) or "none"
        raise ConfigError(f"{key}: unknown option '{unknown[0]}'; accepted options: {accepted}")
    kwargs = {k: v for k, v in context.items() if k in params and k not in options}
    kwargs.update(options)
    try:
        return target(**kwargs)
    except EnhtrainError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {' '.join(str(err).split())}") from err


def build_loggers(loggers: Mapping[str, Mapping[str, Any]], run: RunDir) -> list[Any]:
    """Instantiate the named loggers, each writing under ``<run>/logs/<name>/`` with the run's name and version."""
    registry = plugins.get_registry().loggers
    out = []
    for name, options in loggers.items():
        reserved = sorted(set(options) & {"log_dir", "save_dir", "name", "version"})
        if reserved:
            raise ConfigError(
                f"experiment.loggers.{name}.{reserved[0]}: set by enhtrain so that every logger shares the run's "
                "directory, name and version; remove it (set experiment.name, experiment.version or "
                "experiment.root_dir instead)"
            )
        target = _resolve(registry, name, f"experiment.loggers.{name}")
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
            _resolve(registry, name, f"experiment.callbacks.{name}"), options, context, f"experiment.callbacks.{name}"
        )
        for name, options in callbacks.items()
    ]


def build_profiler(name: str, options: Mapping[str, Any], run: RunDir) -> Any:
    """Instantiate the named profiler, reporting into ``<run>/profiler/``."""
    registry = plugins.get_registry().profilers
    target = _resolve(registry, name, "experiment.profiler")
    context = {"dirpath": str(run.profiler), "filename": name}
    return call_with_options(target, options, context, "experiment.profiler")


def _resolve(registry: Any, name: str, key: str) -> Any:
    found = registry.find(name)
    if found is None:
        known = ", ".join(registry.names()) or "none"
        raise ConfigError(
            f"{key}: unknown {registry.kind[:-1]} '{name}'. Known {registry.kind}: {known}"
            + plugins.failure_hint(name)
        )
    return found.load()
