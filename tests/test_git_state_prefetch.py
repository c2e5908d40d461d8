"""The run's git state, read in the background while ``enhtrain fit`` starts, is the state a direct read gives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from enhtrain.run import metadata


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_prefetched_git_state_is_used_once_and_then_read_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metadata, "_prefetched", {})  # commands run in-process by other tests may have left some
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n", encoding="utf-8")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "first")
    monkeypatch.chdir(tmp_path)

    metadata.prefetch_git_state()
    metadata.prefetch_git_state()  # a second call while one is pending starts nothing more
    assert list(metadata._prefetched) == [str(tmp_path)]
    state = metadata.git_state()
    assert state == metadata.git_state(tmp_path)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    assert metadata._prefetched == {}

    # Used once: a change after it is seen by the next read.
    (tmp_path / "a.txt").write_text("two\n", encoding="utf-8")
    assert metadata.git_state() == {"commit": state["commit"], "dirty": True}


def test_prefetch_outside_a_repository_gives_none_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    metadata.prefetch_git_state()
    assert metadata.git_state() == {"commit": None, "dirty": None}
