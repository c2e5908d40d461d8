"""Disk faults: a run root that cannot be created, is read-only, or fills up.

Every fault must end with exit status 2 and one message that names the run directory, leave no
half-written file (no ``.enhtrain-tmp-*`` temp file), and leave the runs that were already there byte for
byte as they were. The faults are real: a file where a directory should be, a small ``tmpfs`` mounted full
or read-only (this needs ``mount``, so root), and a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ``
ignored so that writes fail with ``EFBIG``) in a child process.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enhtrain.commands import main
from refusals import assert_refused

pytestmark = pytest.mark.timeout(180)

TINY = """\
seed_everything: 1
trainer: {max_epochs: 1, limit_train_batches: 2, limit_val_batches: 1, num_sanity_val_steps: 0,
          accelerator: cpu, devices: 1, enable_model_summary: false, log_every_n_steps: 1}
model:
  class_path: enhtrain.models.MLPClassifier
  init_args: {hidden_dims: [HIDDEN]}
data:
  class_path: enhtrain.data.DatasetDataModule
  init_args: {dataset: digits, batch_size: 32}
experiment:
  name: tiny
  loggers: {csv: {}, tensorboard: null}
  callbacks: {throughput: null}
  checkpoint: {monitor: val/loss}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ``tiny.yaml`` (a 16-unit MLP) and ``big.yaml`` (a 512-unit one)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY.replace("HIDDEN", "16"))
    (tmp_path / "big.yaml").write_text(TINY.replace("HIDDEN", "512"))
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    """Return the content of every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_existing_run(root: Path) -> Path:
    """Write a finished run ``<root>/tiny/version_0`` with a config, metadata and a manifest."""
    run = root / "tiny" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "config.yaml").write_text("experiment: {name: tiny}\n")
    (run / "metadata.json").write_text(json.dumps({"name": "tiny", "version": "version_0", "status": "completed"}))
    (run / "checkpoints" / "manifest.json").write_text(json.dumps({"checkpoints": [], "best": None}))
    return run


def leftovers(root: Path) -> list[Path]:
    """Temp files of interrupted atomic writes under ``root``."""
    return sorted(root.rglob(".enhtrain-tmp-*"))


def fill(mount: Path, leave: int) -> None:
    """Fill the file system of ``mount`` until at most ``leave`` bytes are free."""
    with open(mount / "filler", "wb") as handle:
        chunk = b"\0" * 4096
        try:
            while os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize > leave:
                handle.write(chunk)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC, err


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 384 KiB ``tmpfs`` mounted at ``<tmp_path>/disk``, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fit(capsys: pytest.CaptureFixture[str], config: str, root: Path) -> tuple[int, str]:
    """Run ``enhtrain fit`` in-process with ``experiment.root_dir`` set; return exit status and stderr."""
    code = main(["fit", "--config", config, "--experiment.root_dir", str(root)])
    return code, capsys.readouterr().err


def test_root_below_a_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = workdir / "blocker"
    blocker.write_text("a file, not a folder\n")

    code, err = fit(capsys, "tiny.yaml", blocker / "runs")

    assert_refused(code, err, str(blocker / "runs" / "tiny"), "experiment.root_dir")
    assert blocker.read_text() == "a file, not a folder\n"


def test_run_name_taken_by_a_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = workdir / "runs"
    make_existing_run(root / "other")
    (root / "tiny").write_text("not a run folder\n")
    before = snapshot(root)

    code, err = fit(capsys, "tiny.yaml", root)

    assert_refused(code, err, str(root / "tiny"))
    assert snapshot(root) == before
    assert sorted(p.name for p in root.iterdir()) == ["other", "tiny"]


def test_full_disk_before_the_run_starts(workdir: Path, tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmpfs / "runs"
    make_existing_run(root)
    before = snapshot(root)
    fill(tmpfs, leave=0)

    code, err = fit(capsys, "tiny.yaml", root)

    assert_refused(code, err, str(root / "tiny"), os.strerror(errno.ENOSPC))
    assert snapshot(root) == before
    assert [p.name for p in (root / "tiny").iterdir()] == ["version_0"]
    assert leftovers(root) == []


def test_disk_fills_up_during_training(workdir: Path, tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmpfs / "runs"
    existing = make_existing_run(root)
    before = snapshot(existing)
    fill(tmpfs, leave=96 * 1024)  # room for the config, metadata and logs, not for a 512-unit checkpoint

    code, err = fit(capsys, "big.yaml", root)

    run = root / "tiny" / "version_1"
    assert_refused(code, err, str(run), os.strerror(errno.ENOSPC))
    assert snapshot(existing) == before
    assert leftovers(root) == []
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "failed"
    assert os.strerror(errno.ENOSPC) in meta["error"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.suffix == ".ckpt"]


def test_read_only_root(workdir: Path, tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmpfs / "runs"
    make_existing_run(root)
    before = snapshot(root)
    remount = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True, text=True, check=False)
    assert remount.returncode == 0, remount.stderr

    code, err = fit(capsys, "tiny.yaml", root)

    assert_refused(code, err, str(root / "tiny"), os.strerror(errno.EROFS))
    assert snapshot(root) == before


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from enhtrain.commands import main
sys.exit(main(sys.argv[2:]))
"""


def test_file_size_limit_during_training(workdir: Path) -> None:
    root = workdir / "runs"
    existing = make_existing_run(root)
    before = snapshot(existing)
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    env.pop("ENHTRAIN_RUN_DIR", None)

    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, str(24 * 1024), "fit", "--config", "tiny.yaml"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=150, check=False,
    )

    run = root / "tiny" / "version_1"
    assert_refused(proc.returncode, proc.stderr, "runs/tiny/version_1", os.strerror(errno.EFBIG))
    assert snapshot(existing) == before
    assert leftovers(root) == []
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "failed"
    assert os.strerror(errno.EFBIG) in meta["error"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.suffix == ".ckpt"]
