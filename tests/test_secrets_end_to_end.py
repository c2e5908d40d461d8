"""Secrets never reach the disk or the console: a whole run with every logger, a profiler and checkpoints.

API keys come from the environment (``WANDB_API_KEY``, ``COMET_API_KEY``, ``MY_SERVICE_TOKEN``), from the
config (``experiment.loggers.comet.api_key``, and ``${oc.env:MY_SERVICE_TOKEN}`` inside a tag) and from a
command-line flag. The run is a real ``python -m enhtrain fit`` process with CSV, TensorBoard, W&B and Comet
loggers (both offline), the simple profiler and checkpoints. Afterwards every file under the run root and
the sandboxed home is read as bytes, zip archives (checkpoints, the Comet archive) also member by member,
and so are stdout and stderr: none of the keys may appear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from enhtrain.secrets import MASK

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECRETS = {
    "WANDB_API_KEY": "wandbEnvKey0c8e2b7d9a41f3565e2f8a1c7d3b90",
    "COMET_API_KEY": "CometEnvKey93b1d7e4c2a85f06",
    "MY_SERVICE_TOKEN": "SvcToken5e2f8a1c7d3b9046",
}
CONFIG_KEY = "CometConfigKey7f3a9c1e5b2d4f60"
FLAG_KEY = "WandbFlagKey1a2b3c4d5e6f7a8b9c"

CONFIG = f"""\
seed_everything: 1
trainer:
  max_epochs: 2
  limit_train_batches: 2
  limit_val_batches: 1
  num_sanity_val_steps: 0
  accelerator: cpu
  devices: 1
  log_every_n_steps: 1
  enable_model_summary: false
model:
  class_path: enhtrain.models.MLPClassifier
  init_args: {{hidden_dims: [8]}}
data:
  class_path: enhtrain.data.DatasetDataModule
  init_args: {{dataset: digits, batch_size: 32}}
experiment:
  name: secrets
  tags: [plain, "svc-${{oc.env:MY_SERVICE_TOKEN}}"]
  loggers:
    csv: {{}}
    tensorboard: {{}}
    wandb: {{offline: true, project: leak-check}}
    comet: {{offline: true, project: leak-check, api_key: {CONFIG_KEY}}}
  profiler: simple
  checkpoint: {{monitor: val/loss, save_top_k: 2}}
"""


def contents(path: Path) -> list[tuple[str, bytes]]:
    """Return a file's bytes and, for a zip archive, the bytes of each member."""
    data = path.read_bytes()
    found = [(str(path), data)]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            found += [(f"{path}!{name}", archive.read(name)) for name in archive.namelist()]
    return found


def test_no_secret_is_written_anywhere(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "secrets.yaml").write_text(CONFIG)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WANDB_", "COMET_"))}
    env.pop("ENHTRAIN_RUN_DIR", None)
    env.update(SECRETS)
    env.update(
        HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
        WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(home / "wandb"),
        WANDB_CONFIG_DIR=str(home / "wandb-config"), WANDB_CACHE_DIR=str(home / "wandb-cache"),
        WANDB_DATA_DIR=str(home / "wandb-data"), WANDB_DISABLE_GIT="true", WANDB_ERROR_REPORTING="false",
        COMET_CONFIG=str(home / ".comet.config"), COMET_DISABLE_AUTO_LOGGING="1",
        COMET_ERROR_TRACKING_ENABLE="false", ENHTRAIN_PLAIN_PROGRESS="1",
    )

    proc = subprocess.run(
        [sys.executable, "-m", "enhtrain", "fit", "--config", "secrets.yaml",
         "--experiment.loggers.wandb.api_key", FLAG_KEY],
        cwd=tmp_path, env=env, capture_output=True, timeout=240, check=False,
    )

    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    run = tmp_path / "runs" / "secrets" / "version_0"
    written = [p for root in (tmp_path / "runs", home) for p in root.rglob("*") if p.is_file()]
    names = {p.suffix for p in written}
    assert {".ckpt", ".wandb", ".zip", ".csv", ".txt"} <= names, names
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run / "profiler").iterdir())
    secrets = [*SECRETS.values(), CONFIG_KEY, FLAG_KEY]
    leaks = [
        (where, secret)
        for path in written
        for where, data in contents(path)
        for secret in secrets
        if secret.encode() in data
    ]
    leaks += [(stream, s) for stream, data in (("stdout", proc.stdout), ("stderr", proc.stderr))
              for s in secrets if s.encode() in data]
    assert leaks == []

    # The secrets were there to leak: each shows up masked.
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["experiment"]["loggers"]["comet"]["api_key"] == MASK
    assert config["experiment"]["loggers"]["wandb"]["api_key"] == MASK
    assert config["experiment"]["tags"] == ["plain", f"svc-{MASK}"]
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["tags"] == ["plain", f"svc-{MASK}"]
    assert meta["command"][-2:] == ["--experiment.loggers.wandb.api_key", MASK]
    assert meta["status"] == "completed"
