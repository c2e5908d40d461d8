"""The plain Lightning script in examples/ trains the reference model from a flat OmegaConf config."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# The same tiny training on both sides: the script's `key=value` overrides and enhtrain's `--key value` flags.
TINY = {"trainer.max_epochs": "2", "trainer.limit_train_batches": "5"}


@dataclass
class ScriptRun:
    """The legacy script's tiny run: its folder, its output, and where it logged and checkpointed."""

    cwd: Path
    result: subprocess.CompletedProcess[str]
    metrics: Path
    checkpoints: Path


@pytest.fixture(scope="module")
def script_run(tmp_path_factory: pytest.TempPathFactory) -> ScriptRun:
    """Run ``examples/train_script.py`` on ``examples/legacy.yaml`` once, tiny."""
    cwd = tmp_path_factory.mktemp("legacy-script")
    config = os.path.relpath(EXAMPLES / "legacy.yaml", cwd)
    overrides = [f"{key}={value}" for key, value in TINY.items()] + ["logging.csv_dir=out", "logging.name=tiny"]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_script.py"), "--config", config, *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return ScriptRun(cwd, result, cwd / "out" / "tiny" / "version_0" / "metrics.csv", cwd / "out" / "checkpoints")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _val_metrics(path: Path) -> list[tuple[int, float, float]]:
    """``(epoch, val/loss, val/acc)`` of each validation, in order."""
    return [(int(r["epoch"]), float(r["val/loss"]), float(r["val/acc"])) for r in _rows(path) if r.get("val/loss")]


@pytest.mark.slow
def test_legacy_script_trains_logs_and_checkpoints(script_run: ScriptRun) -> None:
    checkpoints = list(script_run.checkpoints.glob("*.ckpt"))
    assert len(checkpoints) == 1, "save_top_k=1 keeps one checkpoint under ${logging.csv_dir}/checkpoints"
    assert f"best checkpoint: {checkpoints[0]}" in script_run.result.stdout
    assert "final val/acc: " in script_run.result.stdout

    rows = _rows(script_run.metrics)
    val_epochs = sorted(int(row["epoch"]) for row in rows if row.get("val/loss"))
    assert val_epochs == [0, 1]
    assert "lr-AdamW" in rows[0]
    assert any(row["lr-AdamW"] for row in rows)


@pytest.mark.slow
def test_migrated_config_trains_like_the_script(script_run: ScriptRun, tmp_path: Path) -> None:
    # `enhtrain config migrate` on the script's config, then `fit` with the same tiny overrides and seed: the same
    # validation losses and accuracies, and the same weights in the best checkpoint.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    migrate = subprocess.run(
        [sys.executable, "-m", "enhtrain", "config", "migrate", str(EXAMPLES / "legacy.yaml"), "-o", "migrated.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
    )
    assert migrate.returncode == 0, migrate.stderr
    flags = [word for key, value in TINY.items() for word in (f"--{key}", value)]
    fit = subprocess.run(
        [sys.executable, "-m", "enhtrain", "fit", "--config", "migrated.yaml", *flags,
         "--experiment.root_dir", "out", "--experiment.name", "tiny"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "DeprecationWarning" not in fit.stderr

    run_dir = tmp_path / "out" / "tiny" / "version_0"
    script, migrated = _val_metrics(script_run.metrics), _val_metrics(run_dir / "logs" / "csv" / "metrics.csv")
    assert [epoch for epoch, *_ in migrated] == [epoch for epoch, *_ in script] == [0, 1]
    for (_, loss_a, acc_a), (_, loss_b, acc_b) in zip(script, migrated, strict=True):
        assert loss_b == pytest.approx(loss_a, abs=1e-6)
        assert acc_b == pytest.approx(acc_a, abs=1e-6)

    (script_best,) = script_run.checkpoints.glob("*.ckpt")
    enhtrain_best = run_dir / "checkpoints" / script_best.name  # both name checkpoints epoch=E-step=S.ckpt
    assert enhtrain_best.is_file(), sorted(p.name for p in enhtrain_best.parent.iterdir())
    a = torch.load(script_best, map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(enhtrain_best, map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
