"""The check every bad-input test shares: how enhtrain refuses."""

from __future__ import annotations


def assert_refused(code: int, err: str, *fragments: str) -> str:
    """Check exit status 2, one ``enhtrain: error:`` line containing every fragment, and no traceback.

    Returns:
        The error line.
    """
    assert code == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("enhtrain: error: ")]
    assert len(errors) == 1, err[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]
