"""``enhtrain config``: explain, validate, migrate and describe configs, without training.

Each subcommand lives in its own module with a ``run(args) -> int`` function; this module dispatches.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from enhtrain.errors import ConfigError

__all__ = ["SUBCOMMANDS", "run"]

SUBCOMMANDS = {
    "explain": "every value of the composed config, with the layer that set it",
    "validate": "every check of `fit` on a config, building nothing (exit status 0 or 2)",
    "schema": "a JSON Schema of the config file, for editors and CI",
    "migrate": "convert an old or legacy config file to the current schema, comments kept",
}
"""The subcommands of ``enhtrain config``, each with a one-line description."""

_USAGE = "usage: enhtrain config {" + ",".join(SUBCOMMANDS) + "} ..."


def _help() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [_USAGE, ""] + [f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()]
    lines.append("\nRun `enhtrain config SUBCOMMAND --help` for its options.")
    return "\n".join(lines) + "\n"


def _load(name: str) -> Callable[[list[str]], int]:
    module = __import__(f"enhtrain.commands.config.{name}", fromlist=["run"])
    return module.run


def run(args: list[str]) -> int:
    """Run ``enhtrain config SUBCOMMAND ...``; returns the exit status."""
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_help())
        return 0 if args else 2
    if args[0] not in SUBCOMMANDS:
        raise ConfigError(f"config: unknown subcommand '{args[0]}'; {_USAGE}")
    return _load(args[0])(args[1:])
