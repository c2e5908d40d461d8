"""Shared fixtures: every test runs with plain progress output and no inherited run directory."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The suite's models are tiny: one thread per process trains them as fast, and the pytest-xdist workers and the
# training processes they start do not fight over the two cores of a small CI machine. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Lightning's INFO lines ("Seed set to ...") go through handlers bound to the stderr of the first test that
# imported Lightning; keep them out of captured output. Lightning sets its level on import, so import first.
import lightning.pytorch  # noqa: E402, F401

for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENHTRAIN_PLAIN_PROGRESS", "1")
    for name in ("ENHTRAIN_RUN_DIR", "ENHTRAIN_ENV", "ENHTRAIN_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(sys, "argv", ["enhtrain"])


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the slow tests (those that train in subprocesses) first, so that no worker ends the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
