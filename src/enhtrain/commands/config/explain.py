"""``enhtrain config explain``: every value of the composed config and the layer that set it."""

from __future__ import annotations

import json
import sys
from typing import Any

from enhtrain.errors import ConfigError

__all__ = ["explain", "run"]

_USAGE = "usage: enhtrain config explain [--config FILE ...] [--env NAME] [--json] [--KEY VALUE ...]"


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, dict) and obj:
        out = []
        for key, value in obj.items():
            out.extend(_leaves(value, (*prefix, str(key))))
        return out
    return [(prefix, obj)]


def _passed_flags(rest: list[str]) -> list[tuple[str, Any]]:
    """The flags that jsonargparse alone applies (``--model Name``, ``--trainer.callbacks+=X``), as pairs."""
    from enhtrain.config.compose import parse_flag_value

    pairs: list[tuple[str, Any]] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--"):
            raise ConfigError(f"config explain: unexpected argument '{arg}'; {_USAGE}")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(rest):
                raise ConfigError(f"config explain: --{key} needs a value")
            value = rest[i + 1]
            i += 1
        pairs.append((key, parse_flag_value(value, f"flag --{key}")))
        i += 1
    return pairs


def explain(args: list[str]) -> list[dict[str, Any]]:
    """Return ``{"key", "value", "source"}`` for every leaf of the config composed from ``args``.

    The config is composed exactly as ``fit`` composes it. Flags that jsonargparse alone applies (a class chosen
    by name, ``+=``) follow as rows of their own, with the flag as their source.
    """
    from enhtrain.config.arguments import (
        check_components,
        compose_arguments,
        reconcile_root_dir,
        split_arguments,
        trainer_root_dir,
        validate_experiment,
    )

    split = split_arguments(args, subcommands=None)
    passed = _passed_flags([a for a in split.rest if a != "--json"])
    composed = compose_arguments(split)
    experiment = validate_experiment(composed)
    composed.data["experiment"] = experiment.model_dump(mode="json")
    experiment = reconcile_root_dir(experiment, composed, *trainer_root_dir(composed))
    # The same checks as `fit`: a config explained here is one that fit can build.
    check_components(experiment, composed)
    from enhtrain.secrets import mask_secrets, secret_values

    data = mask_secrets(composed.data, secret_values())
    rows = [
        {"key": ".".join(path), "value": value, "source": composed.source_of(path) or "default"}
        for path, value in _leaves(data)
    ]
    composed_keys = {key for key, _ in split.config_flags}
    shown = mask_secrets({key: value for key, value in passed if key not in composed_keys}, secret_values())
    rows += [{"key": key, "value": value, "source": f"flag --{key} (applied by jsonargparse)"}
             for key, value in shown.items()]
    return rows


def run(args: list[str]) -> int:
    """Print the explanation as aligned text, or JSON with ``--json``."""
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(_USAGE + "\n\nEvery value of the composed config, with the layer that set it. The config "
                         "is checked as `fit` checks it (names and options of loggers, callbacks and the profiler "
                         "included) but nothing is built or written.\n")
        return 0
    rows = explain(args)
    if "--json" in args:
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    width = max((len(r["key"]) for r in rows), default=0)
    vwidth = min(max((len(json.dumps(r["value"], default=str)) for r in rows), default=0), 40)
    for row in rows:
        value = json.dumps(row["value"], default=str)
        sys.stdout.write(f"{row['key']:<{width}}  {value:<{vwidth}}  # {row['source']}\n")
    return 0
