"""The base config of a sweep: composed once, checked against the spec, and stored in the study.

The base config is what ``enhtrain fit <the same arguments> --print_config`` prints: every layer composed (config
files, environment overlay, ``ENHTRAIN_*`` variables, flags) and every default filled in. It is computed in the
``sweep run`` process by ``fit``'s own composition, exactly as a trial will see it. Every trial runs
this config plus one layer of its own, and workers on other machines read it from the study.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from enhtrain.config.compose import RESERVED_ENV_VARS
from enhtrain.documents import parse_yaml
from enhtrain.errors import ConfigError
from enhtrain.secrets import MASK
from enhtrain.sweeps.spec import Param, shown

__all__ = [
    "check_config",
    "check_params",
    "compose_base",
    "config_keys",
    "first_difference",
    "get_dotted",
    "set_dotted",
    "trial_environment",
]

_CHECKING = threading.Lock()  # the plugin registry and the composition are shared by a worker's threads
_UNSET = object()


def trial_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a trial's process: ``environ`` without what the base config already holds.

    ``ENHTRAIN_ENV`` and the ``ENHTRAIN_<SECTION>__<KEY>`` variables are composed into the base config; applied
    again, they would sit above the trial's layer and hide the sampled values.
    """
    # A trial is a launch of its own (no run token) and trusts no checkpoint.
    keep = set(RESERVED_ENV_VARS) - {"ENHTRAIN_ENV", "ENHTRAIN_RUN_DIR", "ENHTRAIN_RUN_TOKEN",
                                     "ENHTRAIN_TRUST_CHECKPOINT"}
    return {k: v for k, v in environ.items() if not k.startswith("ENHTRAIN_") or k in keep}


def compose_base(args: Sequence[str], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Compose the base config of ``enhtrain fit ARGS`` with every default, as ``--print_config`` prints it.

    The composition is ``fit``'s own (:func:`~enhtrain.config.arguments.prepare_arguments`, then Lightning's parser
    with every default), run in this process: no second process imports torch and Lightning for it.

    Args:
        args: The training arguments: ``--config`` files, ``--env``, flags.
        environ: The environment (defaults to ``os.environ``).

    Raises:
        ConfigError: With the one-line message ``enhtrain fit`` gives for a bad config, or when the config holds a
            secret (a sweep stores its base config in the study, for every worker to read).
    """
    from enhtrain.commands import main

    env = dict(os.environ if environ is None else environ)
    env.pop("ENHTRAIN_DEBUG", None)
    printed, errors = io.StringIO(), io.StringIO()
    with _CHECKING, _environment(env), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        try:
            status = main(["fit", *args, "--print_config"])
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    if status != 0:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        message = next((line.removeprefix("enhtrain: error: ") for line in reversed(lines)
                        if line.startswith("enhtrain: error: ")), None)
        if message is None:
            tail = lines[-1] if lines else f"exit status {status}"
            message = f"cannot compose the base config (enhtrain fit ... --print_config failed: {tail})"
        raise ConfigError(message)
    data = parse_yaml(printed.getvalue(), "the composed base config")
    if not isinstance(data, dict):
        raise ConfigError("the composed base config is empty: give a config with --config")
    secret = _find_mask(data)
    if secret is not None:
        raise ConfigError(
            f"{secret}: the base config holds a secret, and a sweep stores its base config in the study for every "
            "worker to read; remove the key and let the logger read its own environment variable (such as "
            "WANDB_API_KEY)"
        )
    return data


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` set to ``env`` for the block, as a child process given ``env`` would see it."""
    saved = dict(os.environ)
    if saved == dict(env):
        yield
        return
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _find_mask(obj: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted key of the first value that ``--print_config`` masked as a secret."""
    if isinstance(obj, dict):
        items: Any = obj.items()
    elif isinstance(obj, list):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return ".".join(path) if isinstance(obj, str) and MASK in obj else None
    for key, item in items:
        found = _find_mask(item, (*path, str(key)))
        if found is not None:
            return found
    return None


def config_keys(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """Every dotted key of a config, mappings and leaves alike (lists are leaves)."""
    out = []
    for key, value in data.items():
        path = (*prefix, str(key))
        out.append(".".join(path))
        if isinstance(value, Mapping):
            out.extend(config_keys(value, path))
    return out


def check_params(params: Sequence[Param], base: Mapping[str, Any], where: Mapping[str, str]) -> None:
    """Refuse a parameter whose key is not in the composed base config, suggesting the closest key.

    Args:
        params: The spec's parameters.
        base: The composed base config, defaults included.
        where: Parameter key to the spec's ``file:line`` that names it.

    Raises:
        ConfigError: Naming the spec's line, the key, and the closest key of the config.
    """
    keys = config_keys(base)
    known = set(keys)
    for param in params:
        if param.key in known:
            continue
        parent = param.key.rsplit(".", 1)[0] if "." in param.key else ""
        siblings = [k for k in keys if k.rsplit(".", 1)[0] == parent] if parent in known else []
        close = difflib.get_close_matches(param.key, siblings or keys, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else "; `enhtrain fit ... --print_config` lists every key"
        raise ConfigError(
            f"{where.get(param.key, 'sweep spec')}: sweep.params: unknown key '{param.key}': the composed config has "
            f"no such key{hint}"
        )


def first_difference(old: Any, new: Any, path: tuple[str, ...] = ()) -> str | None:
    """The first dotted key at which two configs differ, or ``None`` when they are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in old or key not in new:
                return ".".join((*path, str(key)))
            found = first_difference(old[key], new[key], (*path, str(key)))
            if found is not None:
                return found
        return None
    return None if old == new else (".".join(path) or "(the whole config)")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for the key ``"a.b"``, creating (or replacing non-mapping) levels on the way."""
    parts = key.split(".")
    for part in parts[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[parts[-1]] = value


def get_dotted(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``data["a"]["b"]`` for the key ``"a.b"``, or ``default`` when a level is missing or not a mapping."""
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def check_config(args: Sequence[str], flags: Sequence[str], environ: Mapping[str, str], *, label: str,
                 expected: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Compose ``enhtrain fit ARGS FLAGS`` and check it as ``fit`` does before it imports Lightning.

    Every check of ``fit`` applies (schema, components, import gate, trust rule); then each key of ``expected``
    must hold the value the sweep sets, so that a sampled section (``experiment: {root_dir: ...}``) cannot move a
    trial, and no checkpoint is trusted or loaded.

    Args:
        args: The config arguments (``--config FILE`` or inline YAML).
        flags: The trial flags (``--safe``, ``--allow_module M``).
        environ: The trial's environment.
        label: What is checked, for messages.
        expected: Dotted keys the sweep sets and their values.

    Returns:
        The composed config.

    Raises:
        ConfigError: With ``fit``'s one-line message, or naming the key the sweep sets.
    """
    from enhtrain.config.arguments import prepare_arguments

    with _CHECKING:
        prepared = prepare_arguments(["fit", *args, *flags], force=True, environ=environ)
    assert prepared is not None  # force=True always composes
    data = prepared.composed.data
    for key, value in (expected or {}).items():
        actual = get_dotted(data, key, _UNSET)
        if actual is _UNSET and value is None:
            continue
        if actual != value:
            where = prepared.composed.source_of(tuple(key.split("."))) or label
            raise ConfigError(
                f"{where}: {key}: set to {shown(actual)} but the sweep sets it on every trial (to {shown(value)}); "
                "sample other keys"
            )
    if get_dotted(data, "experiment.trust_checkpoint") not in (None, False):
        where = prepared.composed.source_of(("experiment", "trust_checkpoint")) or label
        raise ConfigError(f"{where}: experiment.trust_checkpoint: a sweep's trials load no checkpoint and trust "
                          "none; remove it")
    return data
