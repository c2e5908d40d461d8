"""``enhtrain config explain``: every value of the composed config and the layer that set it."""

from __future__ import annotations

import json
import os
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


def _check_arguments(rest: list[str]) -> None:
    """Refuse what is not a flag with a value (``--json`` aside): explain takes nothing else."""
    from enhtrain.config.arguments import iter_flags

    for key, text, taken in iter_flags([arg for arg in rest if arg != "--json"]):
        if not key:
            raise ConfigError(f"config explain: unexpected argument '{taken[0]}'; {_USAGE}")
        if text is None:
            raise ConfigError(f"config explain: --{key} needs a value")


def explain(args: list[str]) -> list[dict[str, Any]]:
    """Return ``{"key", "value", "source"}`` for every leaf of the config composed from ``args``.

    The config is composed exactly as ``fit`` composes it, a flag that chooses a class and the flags after it
    included. Flags that jsonargparse alone applies (``+=``, a class it resolves among the classes it knows) follow
    as rows of their own, with the flag as their source.
    """
    from enhtrain.config.arguments import (
        check_components,
        compose_arguments,
        reconcile_root_dir,
        split_arguments,
        trainer_root_dir,
        trust_switches,
        validate_experiment,
    )
    from enhtrain.config.class_flags import composed_class_flags
    from enhtrain.config.compose import parse_flag_value

    split = split_arguments(args, subcommands=None)
    _check_arguments(split.rest)
    trust_switches(split, os.environ)  # refused together as fit refuses them: --trust_checkpoint with --safe
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
    composed_keys = composed_class_flags(split.class_flags, composed.sources)
    passed = {key: parse_flag_value(text, f"flag --{key}") for key, text in split.passed_flags
              if key not in composed_keys}
    shown = mask_secrets(passed, secret_values())
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
