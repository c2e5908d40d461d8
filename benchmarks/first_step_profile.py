"""``python -m benchmarks.first_step_profile OUT.prof MODULE ARGS...``: profile a CLI up to its first step.

Runs ``python -m MODULE ARGS...`` under ``cProfile`` with the process's CPU time as its clock (so that other
processes on the machine do not change the figures), and writes the profile when
:class:`benchmarks.first_step_mark.FirstStepMark` marks the first training step. Nothing is imported before the
profile starts, so the CLI's imports are in it.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Profile ``python -m MODULE ARGS...`` up to its first training step; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    out, module, rest = args[0], args[1], args[2:]
    profile = cProfile.Profile(time.process_time)

    def dump() -> None:
        profile.disable()
        profile.dump_stats(out)

    sys.argv = [module, *rest]
    profile.enable()
    from benchmarks import first_step_mark

    first_step_mark._before_exit.append(dump)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
