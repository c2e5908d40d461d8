"""enhtrain's command line run in the test's own process."""

from __future__ import annotations

import pytest

from enhtrain.commands import main


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``enhtrain ARGS`` through :func:`enhtrain.commands.main`.

    Returns:
        The exit status, and what the command wrote to stdout and stderr.
    """
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
