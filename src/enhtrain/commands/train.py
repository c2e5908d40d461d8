"""``enhtrain fit|validate|test|predict``: training through :class:`enhtrain.cli.EnhancedCLI`."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

from enhtrain.errors import ConfigError

__all__ = ["format_parser_error", "prebuild_parser", "run", "warm_up_parsing"]


def format_parser_error(message: str) -> str:
    """Shorten a jsonargparse error to its first meaningful lines, without usage text."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("usage:", "[", "tip:"))]
    text = " ".join(lines[:3])
    text = re.sub(r"\s+", " ", text)
    return text[:600]


def run(argv: list[str]) -> int:
    """Run a training subcommand; jsonargparse errors become a :class:`ConfigError`.

    A broken plugin does not stop it: each one is named on a warning line of stderr first.
    """
    from enhtrain.commands._shared import check_launcher_variables, warn_about_plugins
    from enhtrain.config.arguments import prepare_arguments
    from enhtrain.run.metadata import prefetch_git_state

    check_launcher_variables(os.environ)
    # The run's metadata.json records the git state: read it while torch and Lightning are imported.
    prefetch_git_state()
    warn_about_plugins()
    # Composing and checking the config needs no torch: a refused config ends before Lightning is imported.
    prepared = prepare_arguments(argv, force=True)

    from jsonargparse import ArgumentError

    from enhtrain.cli import run_training

    try:
        run_training(argv, prepared)
    except ArgumentError as err:
        raise ConfigError(format_parser_error(str(err))) from err
    except SystemExit as exit_:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exit_, SIGTERMException):
            sys.stderr.write("enhtrain: stopped by SIGTERM; the run was saved and marked interrupted\n")
            return 143
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    sys.stdout.flush()
    return 0


def prebuild_parser() -> None:
    """Build ``fit``'s parser now, for the next run of this process to take (see :func:`enhtrain.cli.prebuild_parser`).

    A sweep's preloaded process calls it before it forks its trials.
    """
    from enhtrain.cli import prebuild_parser as prebuild

    prebuild("fit")


def warm_up_parsing(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Compose and parse a training command line once, keeping nothing (see :func:`enhtrain.cli.warm_up_parsing`)."""
    from enhtrain.cli import warm_up_parsing as warm_up

    warm_up(argv, environ)
