"""Joining a run from a process of another rank: only the run that a live rank 0 of the same launch holds.

Rank 0 makes a random token for its launch, passes it to the processes it starts (``ENHTRAIN_RUN_TOKEN``,
beside ``ENHTRAIN_RUN_DIR``) or announces it with the run directory to ranks that a launcher started beside it,
and writes it into the run's ``.lock`` once every check has passed. A process of another rank joins a run
directory only when that lock is held and holds its token: a process that merely says it is rank 1 cannot
write into someone else's folder, nor into a finished run.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from enhtrain.errors import RunDirError
from enhtrain.run.lock import RunLock

__all__ = ["RUN_TOKEN_ENV", "holds", "new_token", "refuse_join"]

RUN_TOKEN_ENV = "ENHTRAIN_RUN_TOKEN"
"""The variable through which rank 0 passes its launch's token to the processes it starts."""


def new_token() -> str:
    """A launch's token: random, so that no other process can guess it."""
    return secrets.token_hex(16)


def holds(run_dir: str | Path, token: str | None) -> bool | None:
    """Whether a live process holds the lock of ``run_dir`` with ``token``.

    Returns:
        ``True`` when the lock is held and holds ``token``; ``False`` when no process holds it; ``None`` when a
        process holds it but the lock does not hold ``token`` (not yet, or another launch's).
    """
    lock = RunLock(run_dir)
    if not lock.in_use():
        return False
    return True if token and lock.holder().get("token") == token else None


def refuse_join(rank: int, run_dir: str | Path, source: str) -> RunDirError:
    """The one-line refusal for a process of rank ``rank`` that may not join ``run_dir`` (named by ``source``)."""
    return RunDirError(
        f"rank {rank} may join only a run directory that a live rank 0 of the same launch holds, and '{run_dir}' "
        f"({source}) is not one: start every rank with torchrun, SLURM or Lightning's own launcher; for a single "
        "process, unset RANK, LOCAL_RANK and ENHTRAIN_RUN_DIR"
    )
