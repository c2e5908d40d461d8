"""Sharded checkpoints through a whole run: ModelParallelStrategy (FSDP2) on two CPU processes with gloo.

Three trainings are shared by every test of this file (and by every pytest-xdist worker, through a file lock):
``straight`` runs 8 steps uninterrupted; ``split`` runs the same config and is killed with SIGKILL at a randomly
chosen commit of a sharded checkpoint (after every rank wrote its shards, before the rename), then resumed with
``experiment.resume: auto``. The other tests copy these runs and work on the copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import xxhash
import yaml
from filelock import FileLock

from enhtrain._io import TMP_PREFIX
from enhtrain.checkpoints.manifest import Manifest, ManifestError, overall_digest, sha256_file
from enhtrain.checkpoints.safe_load import safe_load
from enhtrain.checkpoints.shard_hashing import _ChecksummingStream, hashing_writes
from enhtrain.checkpoints.sharded import own_files
from enhtrain.commands._shared import checkpoint_rows
from enhtrain.run.lock import RunLock
from enhtrain.run.resume import newest_verified
from in_process import run_main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

# A model sharded with FSDP2 when a device mesh exists (ModelParallelStrategy), plain otherwise, and data that
# does not depend on the global seed. With KILL_AT_COMMIT=N in the environment, the process group is killed
# with SIGKILL when rank 0 is about to rename the N-th complete sharded checkpoint into place.
SHARDMOD = '''
import os
import signal
import sys

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

_KILL_AT = int(os.environ.get("KILL_AT_COMMIT", "0"))
_commits = [0]


def _kill_at_commit(event, args):
    if event != "os.rename" or not _KILL_AT:
        return
    source = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
    name = os.path.basename(source)
    if name.startswith(".enhtrain-tmp-") and ".old-" not in name and ".del-" not in name and os.path.isdir(source):
        _commits[0] += 1
        if _commits[0] == _KILL_AT:
            os.killpg(os.getpgid(0), signal.SIGKILL)


if _KILL_AT:
    sys.addaudithook(_kill_at_commit)


class ShardedNet(pl.LightningModule):
    def __init__(self, width: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 1))

    def configure_model(self) -> None:
        if self.device_mesh is not None:
            from torch.distributed.fsdp import fully_shard

            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    fully_shard(layer, mesh=self.device_mesh["data_parallel"])
            fully_shard(self.net, mesh=self.device_mesh["data_parallel"])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.net(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class Data(pl.LightningDataModule):
    def __init__(self, batch_size: int = 4) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(48, 8, generator=generator)
        self.y = self.x.sum(dim=1, keepdim=True).sin()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x[:32], self.y[:32]), batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[32:], self.y[32:]), batch_size=self.batch_size)
'''

# Four epochs of two steps on each of two processes; a sharded checkpoint after each epoch's validation, the
# best one, the two newest and last kept.
CONFIG = {
    "seed_everything": 7,
    "trainer": {
        "accelerator": "cpu",
        "devices": 2,
        "strategy": {
            "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
            "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1},
        },
        "max_epochs": 4,
        "limit_train_batches": 2,
        "num_sanity_val_steps": 0,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    },
    "model": {"class_path": "shardmod.ShardedNet"},
    "data": {"class_path": "shardmod.Data"},
    "experiment": {
        "loggers": {"csv": {}, "tensorboard": None},
        "checkpoint": {"monitor": "val/loss", "save_top_k": 1, "keep_last": 2, "save_last": True},
    },
}
STEPS = 8


@dataclass
class Runs:
    """The shared trainings.

    Attributes:
        work: Their working directory (``shardmod.py``, ``shard.yaml``, ``runs/``).
        straight: The uninterrupted run.
        split: The run killed at a commit and resumed.
        kill_at: Which commit the first part of ``split`` was killed at.
        after_kill: What ``split`` looked like right after the kill.
    """

    work: Path
    straight: Path
    split: Path
    kill_at: int
    after_kill: dict[str, Any]


def _env(work: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), str(Path(__file__).parent), env.get("PYTHONPATH")]))
    env.pop("ENHTRAIN_RUN_DIR", None)
    return env


def _start(work: Path, name: str, *extra: str, **env: str) -> subprocess.Popen[str]:
    log = open(work / f"{name}.log", "w")  # noqa: SIM115 - the child writes to it
    return subprocess.Popen(
        [sys.executable, "-m", "enhtrain", "fit", "--config", "shard.yaml", "--experiment.name", name, *extra],
        cwd=work, env=_env(work, **env), stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _wait(proc: subprocess.Popen[str], work: Path, name: str, timeout: float = 300) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"{name} did not finish in {timeout} s:\n{(work / f'{name}.log').read_text()[-4000:]}")


def _train(work: Path) -> Runs:
    (work / "shardmod.py").write_text(SHARDMOD)
    (work / "shard.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    # Commits come in pairs (the epoch's checkpoint, then last.ckpt); kill at one of epochs 2 and 3.
    kill_at = random.Random().choice([3, 4, 5, 6])
    straight = _start(work, "straight")
    first = _start(work, "split", KILL_AT_COMMIT=str(kill_at))
    assert _wait(first, work, "split") == -signal.SIGKILL, (work / "split.log").read_text()[-4000:]
    split = work / "runs/split/version_0"
    checkpoints = split / "checkpoints"
    newest, skipped = newest_verified(checkpoints)
    after_kill = {
        "listed": [(row["file"], row["problem"]) for row in checkpoint_rows(checkpoints, verify=True)],
        "leftovers": sorted(p.name for p in checkpoints.glob(TMP_PREFIX + "*")),
        "newest": newest,
        "skipped": skipped,
        "steps": sorted(e["step"] for e in Manifest(checkpoints).entries),
        "meta": json.loads((split / "metadata.json").read_text()),
    }
    resumed = _start(work, "split", "--experiment.resume", "auto")
    assert _wait(straight, work, "straight") == 0, (work / "straight.log").read_text()[-4000:]
    assert _wait(resumed, work, "split") == 0, (work / "split.log").read_text()[-4000:]
    return Runs(work, work / "runs/straight/version_0", split, kill_at, after_kill)


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The shared trainings, made once for all pytest-xdist workers."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    work = shared / "sharded-runs"
    with FileLock(str(shared / "sharded-runs.lock")):
        record = shared / "sharded-runs.json"
        if record.is_file():
            data = json.loads(record.read_text())
            return Runs(Path(data["work"]), Path(data["straight"]), Path(data["split"]), data["kill_at"],
                        data["after_kill"])
        work.mkdir(exist_ok=True)
        found = _train(work)
        record.write_text(json.dumps({"work": str(found.work), "straight": str(found.straight),
                                      "split": str(found.split), "kill_at": found.kill_at,
                                      "after_kill": found.after_kill}))
        return found


@pytest.fixture
def copy(runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the uninterrupted run in a working directory of the test's own (``shardmod`` importable)."""
    shutil.copy(runs.work / "shardmod.py", tmp_path / "shardmod.py")
    shutil.copy(runs.work / "shard.yaml", tmp_path / "shard.yaml")
    target = tmp_path / "runs/straight/version_0"
    shutil.copytree(runs.straight, target, symlinks=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield target


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


def _consolidated(capsys: pytest.CaptureFixture[str], run: Path, out: Path, name: str = "last.ckpt") -> dict:
    code, _, err = run_main(capsys, "ckpt", "consolidate", str(run), name, "-o", str(out))
    assert code == 0, err
    return torch.load(out, weights_only=True)


# Item 1 and 2: atomic directories, one manifest entry each, retention, last, metadata


def test_sharded_checkpoints_are_directories_listed_in_the_manifest(runs: Runs) -> None:
    checkpoints = runs.straight / "checkpoints"
    manifest = Manifest(checkpoints, strict=True)
    names = sorted(e["file"] for e in manifest.entries)
    # Retention (keep_last 2, the best one and last) removed the older directories during training.
    assert "last.ckpt" in names and 2 <= len(names) <= 4, names
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted([*names, "manifest.json"])
    for entry in manifest.entries:
        assert (checkpoints / entry["file"]).is_dir()
        assert entry["world_size"] == 2 and entry["strategy"] == "ModelParallelStrategy"
        assert {".metadata", "meta.pt", "__0_0.distcp", "__1_0.distcp"} == set(entry["files"])
        assert entry["sha256"] == overall_digest(entry["files"])
        assert entry["size"] == sum(f["size"] for f in entry["files"].values())
        for name, listing in entry["files"].items():
            data = (checkpoints / entry["file"] / name).read_bytes()
            assert listing == {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
        assert manifest.verify(entry["file"]) is None
    last = manifest.entry("last.ckpt")
    assert last is not None and last["step"] == STEPS and manifest.data["last"] == "last.ckpt"
    assert manifest.data["best"] in names
    meta = json.loads((runs.straight / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"]) == ("completed", STEPS)
    assert (meta["strategy"], meta["world_size"]) == ("ModelParallelStrategy", 2)
    # enhtrain's record lands in meta.pt and is read back through the safe loader.
    saved = safe_load(checkpoints / "last.ckpt")
    assert saved["global_step"] == STEPS
    assert saved["enhtrain"]["run_name"] == "straight" and saved["enhtrain"]["world_size"] == 2
    assert saved["enhtrain"]["config_hash"] == meta["config_hash"]
    assert list(runs.work.rglob(TMP_PREFIX + "*")) == []


def test_kill_during_a_commit_leaves_the_previous_checkpoint_and_resume_auto_is_exact(
    runs: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    after = runs.after_kill
    context = f"killed at commit {runs.kill_at}: {after}"
    # The kill left the complete but uncommitted directory under its temporary name, and nothing else.
    assert len(after["leftovers"]) == 1, context
    assert [problem for _, problem in after["listed"]] == [None] * len(after["steps"]), context
    assert not any(name.startswith(TMP_PREFIX) for name, _ in after["listed"]), context
    assert after["skipped"] == [] and after["newest"] is not None, context
    newest_step = max(after["steps"])
    # Commit 2k-1 is epoch k's checkpoint, commit 2k its last.ckpt: the kill lost only the commit it hit.
    assert newest_step == 2 * (runs.kill_at // 2), context
    assert after["meta"]["status"] == "running", context
    # The resumed run removed the leftover, continued the same directory, and ended where the other did.
    checkpoints = runs.split / "checkpoints"
    assert list(checkpoints.glob(TMP_PREFIX + "*")) == []
    meta = json.loads((runs.split / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"]) == ("completed", STEPS)
    assert [(runs.work / r["checkpoint"]).parent.resolve() for r in meta["resumes"]] == [checkpoints.resolve()]
    split = _consolidated(capsys, runs.split, tmp_path / "split.ckpt")
    whole = _consolidated(capsys, runs.straight, tmp_path / "whole.ckpt")
    assert split["global_step"] == whole["global_step"] == STEPS
    assert split["state_dict"].keys() == whole["state_dict"].keys()
    for key, tensor in whole["state_dict"].items():
        assert torch.equal(split["state_dict"][key], tensor), (key, context)
    [opt_split], [opt_whole] = split["optimizer_states"], whole["optimizer_states"]
    assert opt_split["state"].keys() == opt_whole["state"].keys() and opt_whole["state"]
    for param, state in opt_whole["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(opt_split["state"][param][key]), torch.as_tensor(value)), (param, key)
    assert opt_split["param_groups"] == opt_whole["param_groups"]


# Item 2: list and verify


def test_ckpt_list_shows_size_and_files_and_verify_finds_changed_missing_and_extra_files(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "ckpt", "list", str(copy))
    assert code == 0 and "last.ckpt (last) [sharded, 4 files]" in out and "KiB" in out, out
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 0 and out.startswith("ok:"), out

    last = copy / "checkpoints/last.ckpt"
    shard = last / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 1 and "file '__1_0.distcp': xxh3_128 differs" in out, out

    shard.unlink()
    (last / "stray.bin").write_bytes(b"x")
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 1 and "file '__1_0.distcp' is missing (and 1 more)" in out, out


def test_an_extra_or_linked_file_in_a_shard_fails_verification(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = copy / "checkpoints/last.ckpt"
    (last / "__2_0.distcp").write_bytes(b"not written by this run")
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 1 and "extra file '__2_0.distcp' is not in the manifest" in out, out
    (last / "__2_0.distcp").unlink()
    outside = copy.parent / "outside.bin"
    outside.write_bytes((last / "meta.pt").read_bytes())
    (last / "meta.pt").unlink()
    (last / "meta.pt").symlink_to(outside)
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 1 and "'meta.pt' is a link or special file" in out, out


def test_a_listing_with_sha256_digests_is_still_verified(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Sharded checkpoints listed with each file's sha256 (as enhtrain 0.1 wrote them) verify as before.
    checkpoints = copy / "checkpoints"
    _relist(checkpoints, "last.ckpt")
    listing = Manifest(checkpoints, strict=True).entry("last.ckpt")
    assert listing is not None and all(set(f) == {"size", "sha256"} for f in listing["files"].values())
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 0 and out.startswith("ok:"), out
    shard = checkpoints / "last.ckpt/__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    code, out, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 1 and "file '__0_0.distcp': sha256 differs" in out, out


@pytest.mark.parametrize("listing", [{"size": 1}, {"size": 1, "sha256": "0" * 64, "xxh3_128": "0" * 32},
                                     {"size": 1, "xxh3_128": 7}, {"size": 1, "xxh3_128": "0" * 32, "md5": "0"}])
def test_a_file_listed_without_exactly_one_digest_is_a_malformed_manifest(
    copy: Path, capsys: pytest.CaptureFixture[str], listing: dict[str, Any]
) -> None:
    path = copy / "checkpoints/manifest.json"
    data = json.loads(path.read_text())
    entry = next(e for e in data["checkpoints"] if e["file"] == "last.ckpt")
    entry["files"]["meta.pt"] = listing
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"checkpoints\[\d+\]\.files\['meta\.pt'\]"):
        Manifest(copy / "checkpoints", strict=True)
    code, _, err = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 2 and "manifest.json" in err and "meta.pt" in err and err.count("\n") == 1, err


# Item 3: retention and prune, resume refusals, the evil pickle


def test_ckpt_prune_removes_directories_and_never_follows_a_link_out(
    copy: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    checkpoints = copy / "checkpoints"
    manifest = Manifest(checkpoints)
    # A checkpoint directory that is a link to a folder outside the run, listed as the oldest entry.
    outside = tmp_path / "precious"
    shutil.copytree(checkpoints / "last.ckpt", outside)
    (checkpoints / "linked.ckpt").symlink_to(outside, target_is_directory=True)
    entry = dict(manifest.entry("last.ckpt") or {})
    manifest.add({**entry, "file": "linked.ckpt", "step": 0, "sha256": "0" * 64})
    manifest.save()
    before = _tree(outside)
    code, _, err = run_main(capsys, "ckpt", "prune", str(copy), "--keep-last", "1")
    assert code == 2 and "linked.ckpt" in err and "outside" in err and err.count("\n") == 1, err
    assert _tree(outside) == before and (checkpoints / "linked.ckpt").is_symlink()

    (checkpoints / "linked.ckpt").unlink()
    manifest = Manifest(checkpoints)
    manifest.remove("linked.ckpt")
    manifest.save()
    kept = {"last.ckpt", manifest.data["best"]}
    code, out, err = run_main(capsys, "ckpt", "prune", str(copy), "--keep-last", "0")
    assert code == 0, err
    assert {p.name for p in checkpoints.iterdir()} == kept | {"manifest.json"}, out
    assert {e["file"] for e in Manifest(checkpoints).entries} == kept
    assert _tree(outside) == before


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {os.environ.get('EVIL_MARKER', '/nonexistent/marker')}",))


def _relist(checkpoints: Path, name: str) -> None:
    """Update the manifest entry of ``name`` to its files as they are now, with sha256 digests (a tamperer who
    edits the manifest, or an older enhtrain)."""
    manifest = Manifest(checkpoints)
    entry = dict(manifest.entry(name) or {})
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in (checkpoints / name).iterdir()
    }
    manifest.add({**entry, "files": files, "sha256": overall_digest(files), "size": sum(
        f["size"] for f in files.values())})
    manifest.save()


def test_an_evil_pickle_in_a_sharded_checkpoint_never_runs(
    copy: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    checkpoints = copy / "checkpoints"
    for name in [e["file"] for e in Manifest(checkpoints).entries]:
        (checkpoints / name / "meta.pt").write_bytes(pickle.dumps({"pytorch-lightning_version": "2", "x": _Evil()}))
        _relist(checkpoints, name)
    before = _tree(copy)
    code, _, err = run_main(capsys, "fit", "--config", "shard.yaml", "--experiment.name", "straight",
                            "--experiment.resume", "auto")
    assert code == 2 and "needs pickled Python objects" in err and err.count("\n") == 1, err
    assert not marker.exists() and _tree(copy) == before

    # The index that torch reads with a bare pickle.load is checked the same way.
    (checkpoints / "last.ckpt" / ".metadata").write_bytes(pickle.dumps(_Evil()))
    _relist(checkpoints, "last.ckpt")
    code, _, err = run_main(capsys, "ckpt", "consolidate", str(copy), "last.ckpt", "-o", str(tmp_path / "x.ckpt"))
    assert code == 2 and "checkpoint index" in err and "posix.system" in err and err.count("\n") == 1, err
    assert not marker.exists() and not (tmp_path / "x.ckpt").exists()


def test_resume_refusals_behave_as_for_a_single_file(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Pretend the run was interrupted at its last checkpoint, so that resuming has something to do.
    meta_path = copy / "metadata.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "status": "interrupted"}))
    before = _tree(copy)
    resume = ("fit", "--config", "shard.yaml", "--experiment.name", "straight", "--experiment.resume", "auto")

    code, _, err = run_main(capsys, *resume, "--trainer.devices", "1")
    assert code == 2 and err.count("\n") == 1, err
    assert "was written by 2 processes, and this run has 1" in err and "last.ckpt" in err, err

    code, _, err = run_main(capsys, *resume, "--model.lr", "0.5")
    assert code == 2 and "config differs" in err and "lr" in err, err

    with RunLock(copy) as _:
        code, _, err = run_main(capsys, *resume)
    assert code == 2 and "is in use by" in err and "cannot resume it" in err and err.count("\n") == 1, err
    assert _tree(copy) == before


# Item 5: consolidate


def test_consolidated_file_loads_weights_only_verifies_and_validates_alike(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENHTRAIN_PLAIN_PROGRESS", "1")
    out = copy / "checkpoints/consolidated.ckpt"
    checkpoint = _consolidated(capsys, copy, out)
    assert checkpoint["enhtrain"]["run_name"] == "straight"
    assert checkpoint["enhtrain"]["consolidated_from"] == "last.ckpt"
    assert checkpoint["state_dict"]["net.0.weight"].shape == (16, 8)
    code, out_text, _ = run_main(capsys, "ckpt", "verify", str(copy))
    assert code == 0 and out_text.startswith("ok:"), out_text
    assert Manifest(copy / "checkpoints").verify("consolidated.ckpt") is None

    # One process, in this one, without a sharded strategy: the file is all it needs.
    code, _, err = run_main(capsys, "validate", "--config", "shard.yaml", "--experiment.name", "check",
                            "--trainer.devices", "1", "--trainer.strategy", "auto", "--experiment.checkpoint", "null",
                            "--ckpt_path", str(out))
    assert code == 0, err[-3000:]
    [run] = list(Path("runs/check").iterdir())
    metric = json.loads((run / "metadata.json").read_text())["metrics"]["val/loss"]
    sharded = Manifest(copy / "checkpoints").entry("last.ckpt")["metrics"]["val/loss"]  # type: ignore[index]
    assert metric == pytest.approx(sharded, rel=1e-6, abs=1e-7)


def test_an_fsdp_strategy_checkpoint_consolidates_on_the_cpu(tmp_path: Path) -> None:
    # FSDPStrategy trains only on a GPU; its sharded layout (the model under `model`, each optimizer under
    # `optimizer_<i>`, the rest in meta.pt) is written here by Lightning's own save function.
    from lightning.fabric.strategies.fsdp import _distributed_checkpoint_save
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from enhtrain.checkpoints.consolidate import consolidate

    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    source = tmp_path / "epoch=0-step=1.ckpt"
    source.mkdir()
    # Keyed by parameter name, as FSDP's optimizer state dict is.
    model_state, optimizer_state = get_state_dict(net, optimizer)
    _distributed_checkpoint_save({"model": model_state, "optimizer_0": optimizer_state}, source)
    torch.save({"global_step": 1, "epoch": 0, "pytorch-lightning_version": "2.6.6",
                "enhtrain": {"run_name": "fsdp"}}, source / "meta.pt")

    digest, size = consolidate(source, tmp_path / "one.ckpt")
    data = (tmp_path / "one.ckpt").read_bytes()
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    loaded = torch.load(tmp_path / "one.ckpt", weights_only=True)
    assert loaded["global_step"] == 1 and loaded["enhtrain"] == {"run_name": "fsdp", "consolidated_from": source.name}
    assert loaded["state_dict"].keys() == net.state_dict().keys()
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in net.state_dict().items())
    assert len(loaded["optimizer_states"]) == 1
    state = loaded["optimizer_states"][0]["state"]
    assert state.keys() == optimizer_state["state"].keys() == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert all(torch.equal(state[k]["exp_avg"], v["exp_avg"]) for k, v in optimizer_state["state"].items())


def test_consolidate_help_names_the_formats_it_reads(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "ckpt", "consolidate", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "ModelParallelStrategy" in text and "FSDPStrategy with state_dict_type='sharded'" in text
    assert "-o FILE" in text


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-run", "run 'nowhere' not found"),
        ("unknown-checkpoint", "is not in"),
        ("single-file", "is a single-file checkpoint already"),
        ("output-is-dir", "is a directory"),
        ("output-exists", "exists already"),
        ("output-folder-missing", "does not exist"),
        ("output-in-run", "not a .ckpt file in its checkpoints/"),
        ("output-link", "is a symbolic link"),
        ("output-listed", "lists 'gone.ckpt' already"),
        ("corrupt", "does not match"),
        ("no-sharded", "lists no sharded checkpoint"),
        ("no-output", "the following arguments are required: -o"),
    ],
)
def test_consolidate_refuses_bad_input_in_one_line(
    copy: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, expected: str
) -> None:
    checkpoints = copy / "checkpoints"
    run, name, out = str(copy), "last.ckpt", tmp_path / "out.ckpt"
    if case == "missing-run":
        run = "nowhere"
    elif case == "unknown-checkpoint":
        name = "epoch=9-step=99.ckpt"
    elif case in ("single-file", "no-sharded"):
        single = tmp_path / "single.ckpt"
        _consolidated(capsys, copy, single)
        shutil.copy(single, checkpoints / "single.ckpt")
        manifest = Manifest(checkpoints)
        manifest.add({"file": "single.ckpt", "sha256": sha256_file(single), "size": single.stat().st_size, "step": 1})
        if case == "no-sharded":
            for entry in [e for e in manifest.entries if e.get("files")]:
                manifest.remove(entry["file"])
            name = None  # type: ignore[assignment]
        manifest.save()
        name = "single.ckpt" if case == "single-file" else name
    elif case == "output-is-dir":
        out = tmp_path
    elif case == "output-exists":
        out.write_bytes(b"keep me")
    elif case == "output-folder-missing":
        out = tmp_path / "no/such/folder/out.ckpt"
    elif case == "output-in-run":
        out = copy / "weights.ckpt"
    elif case == "output-link":
        out.symlink_to(tmp_path / "target.ckpt")
    elif case == "output-listed":
        manifest = Manifest(checkpoints)
        manifest.add({"file": "gone.ckpt", "sha256": "0" * 64, "size": 1})
        manifest.save()
        out = checkpoints / "gone.ckpt"
    elif case == "corrupt":
        (checkpoints / "last.ckpt" / "meta.pt").write_bytes(b"tampered")
    before = _tree(copy)
    outside_before = _tree(tmp_path)
    args = ["ckpt", "consolidate", run, *([name] if name else [])]
    if case != "no-output":
        args += ["-o", str(out)]
    code, stdout, err = run_main(capsys, *args)
    assert code == 2, (stdout, err)
    assert err.startswith("enhtrain: error:") and expected in err and err.count("\n") == 1, err
    assert "Traceback" not in err and stdout == ""
    assert _tree(copy) == before and _tree(tmp_path) == outside_before


# Who hashes what


def test_each_rank_hashes_only_its_own_shards(tmp_path: Path) -> None:
    for name in (".metadata", "meta.pt", "__0_0.distcp", "__0_1.distcp", "__1_0.distcp", "__2_0.distcp", "__x.distcp"):
        (tmp_path / name).write_bytes(b"x")
    assert own_files(tmp_path, 1, 2) == ["__1_0.distcp"]
    # Rank 0 takes its shards and every file no rank of this world names as its own.
    assert own_files(tmp_path, 0, 2) == [".metadata", "__0_0.distcp", "__0_1.distcp", "__2_0.distcp", "__x.distcp",
                                         "meta.pt"]


def _xxh3(path: Path) -> str:
    return xxhash.xxh3_128(path.read_bytes()).hexdigest()


def test_a_stream_that_seeks_fails_or_writes_short_is_left_to_be_hashed_afterwards(tmp_path: Path) -> None:
    from torch.distributed.checkpoint.filesystem import FileSystem

    fs = FileSystem()
    with hashing_writes(tmp_path) as streamed:
        with fs.create_stream(tmp_path / "plain", "wb") as stream:
            stream.write(b"a" * (5 << 20))
            stream.write(b"tail")
        with fs.create_stream(tmp_path / "seeked", "wb") as stream:
            stream.write(b"abc")
            stream.seek(0)
            stream.write(b"x")
        with pytest.raises(OSError), fs.create_stream(tmp_path / "failed", "wb") as stream:
            stream.write(b"abc")
            raise OSError("disk full")
        with fs.create_stream(tmp_path / "read", "wb") as stream:
            stream.write(b"r")
        with fs.create_stream(tmp_path / "read", "rb") as stream:
            assert stream.read() == b"r"
        (tmp_path / "elsewhere").mkdir()
        with fs.create_stream(tmp_path / "elsewhere" / "other", "wb") as stream:
            stream.write(b"not in the checkpoint's folder")
    assert sorted(streamed) == ["plain", "read"]
    assert streamed["plain"] == (_xxh3(tmp_path / "plain"), (5 << 20) + 4)
    assert streamed["read"] == (_xxh3(tmp_path / "read"), 1)

    class ShortWriter:
        # A raw file may take less than it is given, and says so.
        def write(self, data: bytes) -> int:
            return min(2, len(data))

    stream = _ChecksummingStream(ShortWriter())
    assert stream.write(b"ab") == 2 and stream.complete
    assert stream.write(b"abc") == 2 and not stream.complete


def test_shards_are_hashed_while_torch_writes_them(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import filesystem

    original = filesystem.FileSystem.create_stream
    state = {"w": torch.arange(600_000, dtype=torch.float32), "b": torch.ones(3)}
    with hashing_writes(tmp_path) as streamed:
        dcp.save(state, checkpoint_id=tmp_path, no_dist=True)
    assert filesystem.FileSystem.create_stream is original
    assert sorted(p.name for p in tmp_path.iterdir()) == [".metadata", "__0_0.distcp"]
    shard = tmp_path / "__0_0.distcp"
    assert streamed["__0_0.distcp"] == (_xxh3(shard), shard.stat().st_size)
    assert streamed[".metadata.tmp"][0] == _xxh3(tmp_path / ".metadata")
    loaded = {"w": torch.zeros(600_000), "b": torch.zeros(3)}
    dcp.load(loaded, checkpoint_id=tmp_path, no_dist=True)
    assert torch.equal(loaded["w"], state["w"])
