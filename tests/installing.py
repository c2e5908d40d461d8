"""What the tests of plugin packages share: installing a distribution into the test environment for a while, and
running a package's own tests in a fresh interpreter."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


@contextlib.contextmanager
def installed(path: Path, distribution: str) -> Iterator[None]:
    """Install the distribution in ``path`` (editable, without its dependencies) and uninstall it afterwards."""
    try:
        proc = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(path))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        importlib.invalidate_caches()
        yield
    finally:
        _pip("uninstall", "-y", distribution)
        importlib.invalidate_caches()


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pytest`` inside ``folder`` in a fresh interpreter, on one process, without a cache."""
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    for name in ("ENHTRAIN_RUN_DIR", "ENHTRAIN_DEBUG", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", *args],
        cwd=folder, capture_output=True, text=True, timeout=600, env=env, check=False,
    )
