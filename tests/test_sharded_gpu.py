"""Sharded checkpoints of the strategies that need CUDA: FSDPStrategy (sharded and full state dicts), DeepSpeed.

These run only where CUDA is present (``bash benchmarks/gpu_check.sh`` runs them on a GPU machine in a few
minutes). Each trains the model of ``tests/test_sharded.py`` for two epochs on every visible GPU (at most two),
then resumes it for a third epoch, and checks the run's checkpoints as the CPU tests do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from enhtrain.checkpoints.manifest import Manifest
from in_process import run_main
from test_sharded import CONFIG, SHARDMOD

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDPStrategy and DeepSpeed need a CUDA GPU"),
]

DEVICES = min(2, torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _fit(work: Path, strategy: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    config = json.loads(json.dumps(CONFIG))
    config["trainer"].update(accelerator="gpu", devices=DEVICES, strategy=strategy, max_epochs=2)
    config["experiment"]["name"] = "gpu"
    (work / "shardmod.py").write_text(SHARDMOD)
    (work / "gpu.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "enhtrain", "fit", "--config", "gpu.yaml", *extra],
        cwd=work, env=env, capture_output=True, text=True, timeout=540, check=False,
    )


def _check_run(work: Path, capsys: pytest.CaptureFixture[str], *, sharded: bool, steps: int) -> Manifest:
    run = work / "runs/gpu/version_0"
    manifest = Manifest(run / "checkpoints", strict=True)
    assert manifest.entries and manifest.data["last"] == "last.ckpt"
    for entry in manifest.entries:
        path = run / "checkpoints" / entry["file"]
        assert path.is_dir() == sharded, entry
        assert (entry.get("files") is not None) == sharded, entry
        if sharded:
            assert entry["world_size"] == DEVICES
        assert manifest.verify(entry["file"]) is None
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"], meta["world_size"]) == ("completed", steps, DEVICES)
    code, out, _ = run_main(capsys, "ckpt", "verify", str(run))
    assert code == 0, out
    assert list(run.rglob(".enhtrain-tmp-*")) == []
    return manifest


@pytest.mark.parametrize("state_dict_type", ["sharded", "full"])
def test_fsdp_checkpoints_are_kept_verified_and_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state_dict_type: str
) -> None:
    strategy = {"class_path": "lightning.pytorch.strategies.FSDPStrategy",
                "init_args": {"state_dict_type": state_dict_type}}
    first = _fit(tmp_path, strategy)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    steps = 2 * 2
    _check_run(tmp_path, capsys, sharded=state_dict_type == "sharded", steps=steps)

    resumed = _fit(tmp_path, strategy, "--experiment.resume", "auto", "--trainer.max_epochs", "3",
                   "--experiment.allow_config_change", "true")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    _check_run(tmp_path, capsys, sharded=state_dict_type == "sharded", steps=steps + 2)

    run = tmp_path / "runs/gpu/version_0"
    if state_dict_type == "sharded":
        out = tmp_path / "model.ckpt"
        code, _, err = run_main(capsys, "ckpt", "consolidate", str(run), "-o", str(out))
        assert code == 0, err
        checkpoint = torch.load(out, weights_only=True)
    else:
        checkpoint = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == steps + 2
    assert checkpoint["state_dict"]["net.0.weight"].shape == (16, 8)
    assert checkpoint["enhtrain"]["run_name"] == "gpu"


def test_deepspeed_checkpoints_are_kept_verified_and_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed")
    strategy = {"class_path": "lightning.pytorch.strategies.DeepSpeedStrategy", "init_args": {"stage": 2}}
    first = _fit(tmp_path, strategy)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    manifest = _check_run(tmp_path, capsys, sharded=True, steps=4)
    last = manifest.entry("last.ckpt")
    assert last is not None and any("/" in name for name in last["files"]), last  # DeepSpeed's own layout

    # DeepSpeed's model states file holds pickled Python objects besides tensors: resuming needs trust.
    resumed = _fit(tmp_path, strategy, "--experiment.resume", "auto", "--trainer.max_epochs", "3",
                   "--experiment.allow_config_change", "true", "--trust_checkpoint")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    _check_run(tmp_path, capsys, sharded=True, steps=6)
