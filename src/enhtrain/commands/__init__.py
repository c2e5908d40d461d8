"""The ``enhtrain`` command: info commands that never import torch, and the training subcommands.

``enhtrain --version``, ``plugins``, ``templates``, ``runs``, ``ckpt`` and ``config`` are answered here
without importing torch; ``fit``, ``validate``, ``test`` and ``predict`` hand over to
:class:`enhtrain.cli.EnhancedCLI`.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence

from enhtrain._collector import paused_while_starting
from enhtrain.errors import EnhtrainError, one_line, quote

__all__ = ["INFO_COMMANDS", "main"]

USAGE = """\
usage: enhtrain {fit,validate,test,predict} [--config FILE ...] [--env NAME] [flags]
       enhtrain plugins [--json]
       enhtrain plugins new NAME [--dir DIR] [--kinds callback,logger,profiler,template,env,check]
       enhtrain templates {list,show NAME}
       enhtrain config explain [--config FILE ...] [--env NAME] [flags]
       enhtrain config validate [--config FILE ...] [--env NAME] [flags]
       enhtrain config schema [-o FILE]
       enhtrain config migrate OLD.yaml [-o NEW.yaml | -o - | --in-place]
       enhtrain runs {list [ROOT],show RUN}
       enhtrain runs {set RUN KEY=VALUE ...,stop RUN,checkpoint RUN} [--timeout S]
       enhtrain ckpt {list RUN,verify RUN,prune RUN --keep-last N --keep-best K,consolidate RUN [CKPT] -o FILE}
       enhtrain sweep {run --sweep SPEC [--workers N] [--config FILE ...],worker,show NAME,best NAME,plots NAME}
       enhtrain --version

Train any LightningModule/LightningDataModule with layered configs, plugins and one directory per run.
Run `enhtrain fit --help` for the training options.
"""


def _load(name: str) -> Callable[[list[str]], int]:
    module = __import__(f"enhtrain.commands.{name}", fromlist=["run"])
    return module.run


INFO_COMMANDS = ("plugins", "templates", "config", "runs", "ckpt")
"""The commands answered without importing torch."""


def _error(message: str) -> int:
    sys.stderr.write(f"enhtrain: error: {one_line(message)}\n")
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``enhtrain`` and ``python -m enhtrain``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        from enhtrain import __version__

        sys.stdout.write(f"enhtrain {__version__}\n")
        return 0
    # Python hides DeprecationWarning outside __main__; a config's deprecated keys are for the person running this.
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"enhtrain\.config\.migration$")
    with paused_while_starting(whole_process=argv is None):
        return _dispatch(args)


def _dispatch(args: list[str]) -> int:
    try:
        if args[0] in INFO_COMMANDS or args[0] == "sweep":
            status = _load(args[0])(args[1:])
        else:
            from enhtrain.commands.train import run

            status = run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except EnhtrainError as err:
        from enhtrain.plugins.manager import env_flag

        if env_flag("ENHTRAIN_DEBUG"):
            # The traceback for a bug report, and the same message and exit status as without debug.
            traceback.print_exc(file=sys.stderr)
        return _error(str(err))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`enhtrain runs list | head`): stop quietly, as other command-line tools do.
        _silence_stdout()
        return 141
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise
        # A path the user gave that the system refuses as too long, met while looking it up: bad input, not a bug.
        return _error(f"{quote(err.filename)}: a file name or path is too long for the system: give a shorter one")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
