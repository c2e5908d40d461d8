"""Checking the options of the loggers, callbacks and profiler an ``experiment`` section names, before any is built.

Every command that composes a config runs these checks; :mod:`enhtrain.run.components` builds the components
with the same rules once a run starts.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from enhtrain import plugins
from enhtrain.errors import ConfigError, located

if TYPE_CHECKING:
    from enhtrain.config.schema import ExperimentConfig

__all__ = [
    "FILLED_OPTIONS",
    "check_experiment_options",
    "check_options",
    "parameters",
    "refuse_run_options",
    "resolve_component",
]

FILLED_OPTIONS = {
    "loggers": frozenset({"log_dir", "save_dir", "name", "version"}),
    "callbacks": frozenset({"run_dir", "dirpath"}),
    "profilers": frozenset({"dirpath", "filename"}),
}
"""Per kind of component, the options enhtrain fills in from the run when the signature takes them."""


def parameters(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named parameters of a class's ``__init__`` or a factory, and whether it takes ``**options``.

    Args:
        target: The class or factory.

    Returns:
        The parameters by name (``self`` and ``*args``/``**kwargs`` left out), and whether any keyword is taken;
        an unreadable signature gives ``({}, True)``.
    """
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


def check_options(target: Callable[..., Any], options: Mapping[str, Any], key: str,
                  filled: Collection[str] = ()) -> None:
    """Check a component's options against what it accepts, without building it.

    A class or factory whose signature names its parameters is checked against them: an option it does not
    take, or a required parameter that neither the options nor enhtrain (``filled``) give, is an error. A
    factory that takes ``**options`` may carry a ``check_options(options)`` function (the built-in loggers
    do), which is called instead; without one, any option is accepted here and the factory checks its own.

    Args:
        target: The registered class or factory.
        options: The user's options from the config.
        key: The config key, for messages (``experiment.callbacks.grad_norm``).
        filled: The options enhtrain fills in from the run; they are left out of the accepted ones listed.

    Raises:
        ConfigError: Naming ``key``, the option, and the accepted options.
    """
    own_check = getattr(target, "check_options", None)
    if callable(own_check) and not inspect.isclass(target):
        try:
            own_check(options)
        except ConfigError as err:
            raise ConfigError(f"{key}: {err}") from err
        return
    params, var_kw = parameters(target)
    accepted = ", ".join(k for k in params if k not in filled) or "none"
    unknown = [k for k in options if k not in params]
    if unknown and not var_kw:
        close = difflib.get_close_matches(unknown[0], [k for k in params if k not in filled], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{key}: unknown option '{unknown[0]}'; accepted options: {accepted}{hint}")
    missing = [
        k for k, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.POSITIONAL_ONLY
        and k not in options and k not in filled
    ]
    if missing:
        raise ConfigError(f"{key}: missing required option '{missing[0]}'; accepted options: {accepted}")


def refuse_run_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse the options through which every logger shares the run's directory, name and version.

    Args:
        name: The logger's name.
        options: Its options from the config.

    Raises:
        ConfigError: Naming the first such option.
    """
    reserved = sorted(set(options) & FILLED_OPTIONS["loggers"])
    if reserved:
        raise ConfigError(
            f"experiment.loggers.{name}.{reserved[0]}: set by enhtrain so that every logger shares the run's "
            "directory, name and version; remove it (set experiment.name, experiment.version or "
            "experiment.root_dir instead)"
        )


def resolve_component(registry: Any, name: str, key: str) -> Any:
    """Import the class or factory registered under ``name``.

    Args:
        registry: The kind's registry (:class:`~enhtrain.plugins.registry.KindRegistry`).
        name: The registered name.
        key: The config key, for messages.

    Raises:
        ConfigError: If no such name is registered.
        PluginError: If the plugin's component cannot be imported.
    """
    found = registry.find(name)
    if found is None:
        from enhtrain.errors import did_you_mean

        known = ", ".join(registry.names()) or "none"
        raise ConfigError(
            f"{key}: unknown {registry.kind[:-1]} '{name}'{did_you_mean(name, registry.names())}. "
            f"Known {registry.kind}: {known}"
            + plugins.failure_hint(name)
        )
    return found.load()


def check_experiment_options(experiment: ExperimentConfig, source_of: Callable[[Sequence[str]], str | None]) -> None:
    """Check the options of every logger, callback and profiler the experiment names, before anything is built.

    Every command that composes a config calls this (``fit``, ``validate``, ``test``, ``predict``,
    ``--print_config``, ``config explain``). A component is imported only when the config gives it options:
    ``{}`` needs no look at its signature, so the defaults cost nothing.

    Args:
        experiment: The validated experiment section.
        source_of: Where a key was set (:meth:`enhtrain.config.compose.ComposedConfig.source_of`).

    Raises:
        ConfigError: Naming where the option was set, the key, and the accepted options.
        PluginError: If a plugin's component cannot be imported.
    """
    registry = plugins.get_registry()
    wanted: list[tuple[str, str, Mapping[str, Any], tuple[str, ...]]] = []
    for name, options in experiment.active_loggers().items():
        wanted.append(("loggers", name, options, ("experiment", "loggers", name)))
    for name, options in experiment.active_callbacks().items():
        wanted.append(("callbacks", name, options, ("experiment", "callbacks", name)))
    spec = experiment.profiler_spec()
    if spec is not None:
        wanted.append(("profilers", spec[0], spec[1], ("experiment", "profiler")))
    for kind, name, options, path in wanted:
        key = ".".join(path)
        try:
            if kind == "loggers":
                refuse_run_options(name, options)
            if not options:
                continue
            check_options(resolve_component(registry.kinds[kind], name, key), options, key, filled=FILLED_OPTIONS[kind])
        except ConfigError as err:
            option = str(err).split(":", 1)[0].split(".")
            where = source_of(option) or source_of(path)
            raise ConfigError(located(where, str(err))) from err
