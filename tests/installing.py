"""What the tests of plugin packages share: installing a distribution for the processes a test starts, and
running a package's own tests in a fresh interpreter."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


@contextlib.contextmanager
def installed(path: Path, distribution: str) -> Iterator[None]:
    """Install the distribution in ``path`` with ``pip install -e`` for the processes this test starts.

    pip installs it into a site folder of the test's own, which is put on ``PYTHONPATH`` (with the paths of its
    ``.pth`` files, as the interpreter reads them in a site folder) while the context lasts: every ``python``
    this test starts sees the distribution and its entry point, and the tests that other pytest-xdist workers
    run meanwhile never do. Leaving the context uninstalls it by removing the folder.
    """
    site = Path(tempfile.mkdtemp(prefix="enhtrain-site-"))
    saved = os.environ.get("PYTHONPATH")
    try:
        proc = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), "-e",
                    str(path))
        assert proc.returncode == 0, f"{distribution}: " + proc.stdout[-2000:] + proc.stderr[-2000:]
        paths = [str(site)]
        for pth in sorted(site.glob("*.pth")):
            paths += [line.strip() for line in pth.read_text(encoding="utf-8").splitlines()
                      if line.strip() and not line.startswith(("#", "import"))]
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([saved] if saved else [])])
        importlib.invalidate_caches()
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        shutil.rmtree(site, ignore_errors=True)
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
