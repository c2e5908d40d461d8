"""``python -m enhtrain``."""

import atexit
import os
import sys

from enhtrain.commands import main

# Commands whose process holds nothing but committed state when they return (every trial was its own process and
# the study is in its store): they end without the interpreter's teardown of torch, Lightning and Optuna, about a
# second. The exit handlers still run and the output is flushed.
_QUICK_EXIT = (["sweep", "run"], ["sweep", "worker"])

if __name__ == "__main__":
    status = main()
    if sys.argv[1:3] in _QUICK_EXIT:
        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            status = status or 1
        os._exit(status)
    sys.exit(status)
