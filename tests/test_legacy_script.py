"""The plain Lightning script in examples/ trains the reference model from a flat OmegaConf config."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_legacy_script_trains_logs_and_checkpoints(tmp_path: Path) -> None:
    config = os.path.relpath(EXAMPLES / "legacy.yaml", tmp_path)
    overrides = [
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=5",
        "logging.csv_dir=out",
        "logging.name=tiny",
    ]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_script.py"), "--config", config, *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    checkpoints = list((tmp_path / "out" / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 1, "save_top_k=1 keeps one checkpoint under ${logging.csv_dir}/checkpoints"
    assert f"best checkpoint: {checkpoints[0]}" in result.stdout
    assert "final val/acc: " in result.stdout

    with (tmp_path / "out" / "tiny" / "version_0" / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    val_epochs = sorted(int(row["epoch"]) for row in rows if row.get("val/loss"))
    assert val_epochs == [0, 1]
    assert "lr-AdamW" in rows[0]
    assert any(row["lr-AdamW"] for row in rows)
