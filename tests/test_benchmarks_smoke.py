"""The benchmark harness runs end to end in its smoke mode and writes its JSON and Markdown results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmarks_smoke_writes_results(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    results = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert results["mode"] == "smoke"
    assert results["errors"] == {}
    for key in ("machine", "settings", "load_start", "load_end", "elapsed_s", "targets", "training"):
        assert key in results
    model = results["training"]["models"]["small_mlp"]
    assert set(model["variants"]) == {"vanilla", "lightning_bare"}
    for row in model["variants"].values():
        assert row["median_step_s"] > 0
        assert row["cpu_median_step_s"] > 0
        assert row["final_loss"] is not None
    assert model["losses_agree"] is True
    ratio = model["ratios"]["lightning_bare/vanilla (2/1)"]["median_step"]
    assert ratio["n"] == 1 and ratio["median"] > 0
    assert all({"target", "value", "limit", "met"} <= set(t) for t in results["targets"])

    alternated = results["alternation"]["models"]["small_mlp"]
    assert set(alternated["variants"]) == {"lightning_bare", "lightning_bare_log_patched", "lightning_cli", "enhtrain"}
    assert alternated["losses_agree"] is True
    for name in ("enhtrain/lightning_cli (5/3)", "bare_log_patched/lightning_bare (2'/2)"):
        assert alternated["ratios"][name]["median_step"]["median"] > 0

    runtime = results["runtime_updates"]
    assert runtime["steps"] > 0 and runtime["stat_s"] > 0 and runtime["share_of_step"] >= 0
    assert any(t["target"].startswith("runtime updates") for t in results["targets"])

    markdown = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "## Training overhead" in markdown and "## Targets" in markdown
    assert "## Training overhead, variants alternated in one process" in markdown
    assert "## Runtime updates" in markdown
    assert list(tmp_path.glob("smoke-*.json")) and list(tmp_path.glob("smoke-*.md"))


def test_checkpoint_probe_splits_the_save_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.probes import probe_checkpoint

    result = probe_checkpoint(str(tmp_path), megabytes=4, repeats=2)
    assert set(result["times_s"]) == {
        "lightning", "enhtrain", "enhtrain_no_metadata", "atomic_no_hash", "enhtrain_no_fsync"
    }
    assert all(len(times) == 2 and min(times) > 0 for times in result["times_s"].values())
    assert result["file_bytes"] > 4 << 20
    assert result["fsync_calls_per_save"] == 4
    assert len(result["metadata_manifest_times_s"]) == 2  # the enhtrain variant's own saves only
    assert 0 < result["metadata_manifest_s"] < min(result["times_s"]["enhtrain"])
    assert 0 < result["metadata_manifest_share"] < 1
    assert list(tmp_path.iterdir()) == [tmp_path / "manifest.json"]


def test_metadata_move_patch_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    import torch
    from benchmarks.probes import _skip_redundant_metric_moves
    from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric

    original = _ResultMetric.to
    metric = _ResultMetric(_Metadata(fx="training_step", name="loss"), is_tensor=True)
    meta = metric.meta
    with _skip_redundant_metric_moves():
        assert _ResultMetric.to is not original
        assert metric.to(torch.device("cpu")) is metric and metric.meta is meta  # nothing rebuilt
    assert _ResultMetric.to is original
    metric.to(torch.device("cpu"))
    assert metric.meta is not meta and metric.meta == meta  # Lightning's own move rebuilds the metadata


@pytest.mark.slow
def test_sharded_save_section_measures_both_saves_with_a_tiny_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.sharded_save", "--out", str(tmp_path / "result.json"),
         "--dir", str(tmp_path / "ckpt"), "--megabytes", "4", "--repeats", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    assert (result["megabytes"], result["world_size"], result["repeats"]) == (4, 2, 2)
    for key in ("lightning_s", "enhtrain_s"):
        assert len(result[key]) == 2 and min(result[key]) > 0
    assert result["ratio"] > 0 and result["xxh3_mb_s"] > result["sha256_mb_s"] > 0
    low, high = result["paired_ratio_interval"]
    assert 0 < low <= result["paired_ratio"] <= high
    assert result["median_own_s"] < result["median_enhtrain_s"] and result["checksum_s"] > 0
    assert result["phase_ratio"] > 1
    # Every save (the untimed first ones too) was removed; enhtrain's manifest lists none of them any more.
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["enhtrain"]
    assert sorted(p.name for p in (tmp_path / "ckpt/enhtrain").iterdir()) == ["manifest.json"]
    assert json.loads((tmp_path / "ckpt/enhtrain/manifest.json").read_text())["checkpoints"] == []

    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import sharded_save

    row = sharded_save.target(result)
    assert row["limit"] == "<= 1.05" and row["met"] == (result["paired_ratio"] <= 1.05) and "interval" in row["note"]
    assert "## Sharded checkpoint save (4 MiB over 2 processes)" in "\n".join(sharded_save.render(result))
    # The control: Lightning's save in both places, every directory removed.
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.sharded_save", "--out", str(tmp_path / "control.json"),
         "--dir", str(tmp_path / "control"), "--megabytes", "4", "--repeats", "1", "--warmups", "0", "--control"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    control = json.loads((tmp_path / "control.json").read_text(encoding="utf-8"))
    assert control["control"] is True and len(control["enhtrain_s"]) == 1
    assert list((tmp_path / "control/enhtrain").iterdir()) == []
    assert sharded_save.target(control)["met"] is None
    assert "| Lightning again (control) |" in "\n".join(sharded_save.render(control))


@pytest.mark.slow
def test_first_step_section_times_both_clis_to_their_first_step(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "first_step.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.first_step", "--reps", "1", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    enhtrain, lightning = result["variants"]["enhtrain"], result["variants"]["lightning_cli"]
    for row in (enhtrain, lightning):
        assert row["first_step_s"]["n"] == 1
        assert 0 < row["fit_start_s"]["median"] <= row["first_step_s"]["median"]
        assert row["cpu_s"]["median"] > 0 and "FirstStepMark" in row["callbacks"]
    # Each CLI ran with its own defaults: enhtrain's run loggers, LightningCLI's TensorBoard logger.
    assert enhtrain["loggers"] == ["RunCSVLogger", "RunTensorBoardLogger"]
    assert lightning["loggers"] == ["TensorBoardLogger"]
    assert result["ratio"]["n"] == 1 and result["ratio"]["median"] > 0
    assert "## Time to first step" in proc.stdout and "Ratio enhtrain / LightningCLI" in proc.stdout


@pytest.mark.slow
def test_sweep_against_plain_optuna_smoke(tmp_path: Path) -> None:
    """The plain Optuna script and ``sweep run`` (1 worker), 2 trials: the same values, a ratio, per-trial times."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.sweep", "--smoke", "--only", "versus", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    versus = json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8"))["versus"]
    assert versus["trials"] == 2 and versus["plain_wall_s"] > 0
    for workers in ("workers_1",):
        row = versus[workers]
        assert row["same_values_as_plain"] is True, row
        assert row["ratio_to_plain"] > 0 and row["bookkeeping_median_s"] >= 0
        assert row["process_minus_run_median_s"] is not None
