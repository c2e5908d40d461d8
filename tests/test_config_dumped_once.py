"""The run's ``config.yaml`` is the config the run trained with, also when a checkpoint's hyper-parameters change it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

CONFIG = """\
trainer: {accelerator: cpu, devices: 1, max_steps: 2, limit_val_batches: 1, num_sanity_val_steps: 0,
          enable_progress_bar: false}
model: {class_path: enhtrain.models.MLPClassifier, init_args: {hidden_dims: [16]}}
data: {class_path: enhtrain.data.DatasetDataModule, init_args: {dataset: digits}}
"""


def _enhtrain(cwd: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "enhtrain", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_config_from_a_checkpoints_hyper_parameters_is_the_one_recorded(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    _enhtrain(tmp_path, "fit", "--config", "c.yaml")
    checkpoint = sorted((tmp_path / "runs/default/version_0/checkpoints").glob("epoch=*.ckpt"))[0]
    # The checkpoint's hyper-parameters replace the flag (LightningCLI's rule): the run records what it built.
    _enhtrain(tmp_path, "validate", "--config", "c.yaml", "--model.init_args.hidden_dims", "[32]",
              "--ckpt_path", str(checkpoint))
    for version in ("version_0", "version_1"):
        config = yaml.safe_load((tmp_path / "runs/default" / version / "config.yaml").read_text(encoding="utf-8"))
        assert config["model"]["init_args"]["hidden_dims"] == [16], version
