"""Checkpoint files: atomic saves, the manifest, metadata inside each checkpoint, safe loading, retention, RNG."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from enhtrain._io import TMP_PREFIX
from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO
from enhtrain.checkpoints.manifest import Manifest, sha256_file
from enhtrain.checkpoints.retention import plan_prune, protected_files
from enhtrain.checkpoints.rng import collect_rng_states, restore_rng_states
from enhtrain.checkpoints.safe_load import check_manifest, cli_model_hparams, safe_load
from enhtrain.commands import main
from enhtrain.errors import CheckpointError, ConfigError
from enhtrain.testing import write_tiny_config


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker() -> Iterator[Path]:
    path = Path(f"/tmp/PWNED-{uuid.uuid4().hex}")
    yield path
    assert not path.exists(), "the pickled payload ran"
    path.unlink(missing_ok=True)


def _listed(directory: Path, *names: str) -> Manifest:
    manifest = Manifest(directory)
    for step, name in enumerate(names):
        path = directory / name
        manifest.add({"file": name, "sha256": sha256_file(path), "size": path.stat().st_size, "step": step})
    manifest.save()
    return manifest


def test_atomic_save_records_digest_and_leaves_no_temp_file(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "ckpts" / "a.ckpt"
    io.save_checkpoint({"w": torch.arange(10)}, target)
    digest, size = io.last_saved[str(target)]
    assert digest == sha256_file(target) and size == target.stat().st_size
    assert [p.name for p in target.parent.iterdir()] == ["a.ckpt"]
    assert torch.equal(io.load_checkpoint(target)["w"], torch.arange(10))


def test_large_tensors_are_hashed_while_written_on_another_thread(tmp_path: Path) -> None:
    # Storages of 1 MiB and more take the two-thread path; the small records around them do not.
    state = {f"w{i}": torch.randn(300_000 + i, generator=torch.Generator().manual_seed(i)) for i in range(3)}
    io = AtomicCheckpointIO()
    target = tmp_path / "big.ckpt"
    io.save_checkpoint({"state_dict": state, "step": 7}, target)
    digest, size = io.last_saved[str(target)]
    assert size == target.stat().st_size > 3 * 1_200_000
    assert digest == sha256_file(target)
    loaded = io.load_checkpoint(target)
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in state.items()) and loaded["step"] == 7


_SAVE_OVER_LIMIT = """\
import json, resource, signal, sys, torch
from pathlib import Path
from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO
target = Path(sys.argv[1])
io = AtomicCheckpointIO()
io.save_checkpoint({"step": 1}, target)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    io.save_checkpoint({"w": torch.zeros(1 << 20)}, target)  # 4 MiB: the limit is hit in a worker-thread write
except OSError as err:
    print(json.dumps({"type": type(err).__name__, "errno": err.errno}))
"""


def test_a_failed_large_write_raises_the_os_error_and_keeps_the_previous_file(tmp_path: Path) -> None:
    import errno
    import subprocess
    import sys

    target = tmp_path / "a.ckpt"
    done = subprocess.run(
        [sys.executable, "-c", _SAVE_OVER_LIMIT, str(target)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"type": "OSError", "errno": errno.EFBIG}
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


@pytest.mark.parametrize("signal_error", [KeyboardInterrupt, SystemExit])
def test_a_signal_during_a_write_ends_the_save_as_the_signal_asks(
        signal_error: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enhtrain.checkpoints import atomic_io

    io = AtomicCheckpointIO()
    target = tmp_path / "a.ckpt"
    io.save_checkpoint({"step": 1}, target)
    before = target.read_bytes()
    write = atomic_io._HashingWriter.write
    calls: list[int] = []

    def interrupted(self: Any, data: Any) -> int:
        written = write(self, data)
        calls.append(written)
        if len(calls) == 3:  # Ctrl+C (or SIGTERM) lands after a write, inside torch's zip writer
            raise signal_error
        return written

    monkeypatch.setattr(atomic_io._HashingWriter, "write", interrupted)
    # torch's writer, closing, finds the file short and raises a RuntimeError of its own: the signal wins.
    with pytest.raises(signal_error):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(100_000)}, target)
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "a.ckpt"
    io.save_checkpoint({"step": 1}, target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="cannot pickle"):
        io.save_checkpoint({"step": 2, "bad": _Unpicklable()}, target)
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_manifest_verify_reasons_and_atomic_rewrite(tmp_path: Path) -> None:
    for name in ("a.ckpt", "b.ckpt", "c.ckpt"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    manifest = _listed(tmp_path, "a.ckpt", "b.ckpt", "c.ckpt")
    assert all(manifest.verify(n) is None for n in ("a.ckpt", "b.ckpt", "c.ckpt"))
    (tmp_path / "a.ckpt").write_bytes(b"x")
    (tmp_path / "b.ckpt").write_bytes(b"c.ckpt" * 100)
    (tmp_path / "c.ckpt").unlink()
    assert "truncated" in (manifest.verify("a.ckpt") or "")
    assert "sha256 differs" in (manifest.verify("b.ckpt") or "")
    assert manifest.verify("c.ckpt") == "file is missing"
    assert manifest.verify("zzz.ckpt") == "not in the manifest"
    manifest.data["best"] = "c.ckpt"
    manifest.remove("c.ckpt")
    manifest.save()
    reloaded = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["file"] for e in reloaded["checkpoints"]] == ["a.ckpt", "b.ckpt"] and reloaded["best"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt", "b.ckpt", "manifest.json"]
    (tmp_path / "manifest.json").write_text("{not json")
    assert Manifest(tmp_path).entries == []


def test_safe_load_refuses_truncated_tampered_and_pickled(tmp_path: Path, marker: Path) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}}, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    tampered = tmp_path / "tampered.ckpt"
    tampered.write_bytes(data)
    evil = tmp_path / "evil.ckpt"
    torch.save({"x": _Evil(marker)}, evil)
    _listed(tmp_path, "good.ckpt", "tampered.ckpt")
    tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    assert torch.equal(safe_load(good)["state_dict"]["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match=r"truncated or corrupt"):
        safe_load(truncated)
    with pytest.raises(CheckpointError, match=r"does not match .*manifest.json: sha256 differs"):
        safe_load(tampered)
    with pytest.raises(CheckpointError, match=r"pickled Python objects.*--trust_checkpoint"):
        safe_load(evil)
    with pytest.raises(CheckpointError, match="not found"):
        safe_load(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError):
        check_manifest(tampered)
    check_manifest(good)
    check_manifest(evil)  # not listed: nothing to check against


def test_trust_checkpoint_loads_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "pickled.ckpt"
    torch.save({"args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="--trust_checkpoint"):
        AtomicCheckpointIO().load_checkpoint(path)
    assert AtomicCheckpointIO(trust_checkpoint=True).load_checkpoint(path)["args"].lr == 0.1
    assert safe_load(path, trust=True)["args"] == argparse.Namespace(lr=0.1)


def test_cli_model_hparams(tmp_path: Path) -> None:
    for alias in (None, "last", "best", "hpc", "registry"):
        assert cli_model_hparams(alias) is None
    with pytest.raises(CheckpointError, match="not found"):
        cli_model_hparams(tmp_path / "nope.ckpt")
    path = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "pkg.Model", "lr": 0.5, "_instantiator": "x"}}, path)
    assert cli_model_hparams(path) == {"class_path": "pkg.Model", "dict_kwargs": {"lr": 0.5}}
    torch.save({"hyper_parameters": {}}, path)
    assert cli_model_hparams(path) is None


def test_rng_states_survive_a_weights_only_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    torch.save({"rng": collect_rng_states()}, tmp_path / "rng.pt")
    expected = (torch.rand(4), random.random(), np.random.rand(2))
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (torch.rand(4), random.random(), np.random.rand(2))
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
    np.testing.assert_array_equal(got[2], expected[2])


def _manifest(entries: list[tuple[str, int, float | None]], **extra: Any) -> dict[str, Any]:
    return {
        "checkpoints": [
            {
                "file": f,
                "step": s,
                "sha256": hashlib.sha256(f.encode()).hexdigest(),
                "size": 1,
                "metrics": {} if v is None else {"val/loss": v},
            }
            for f, s, v in entries
        ],
        "monitor": "val/loss",
        "mode": "min",
        "last": "last.ckpt",
        **extra,
    }


ENTRIES = [
    ("s10.ckpt", 10, 0.5),
    ("s20.ckpt", 20, 0.2),
    ("s30.ckpt", 30, 0.4),
    ("s40.ckpt", 40, 0.3),
    ("s50.ckpt", 50, float("nan")),
    ("last.ckpt", 50, 0.3),
]


def test_plan_prune_keeps_newest_best_and_protected() -> None:
    data = _manifest(ENTRIES, best="s20.ckpt")
    assert plan_prune(data, None, None) == []
    assert plan_prune(data, keep_last=1, keep_best=None) == ["s10.ckpt", "s30.ckpt", "s40.ckpt"]
    assert plan_prune(data, keep_last=None, keep_best=2) == ["s10.ckpt", "s30.ckpt", "s50.ckpt"]
    assert plan_prune(data, keep_last=2, keep_best=1) == ["s10.ckpt", "s30.ckpt"]
    assert plan_prune(data, keep_last=0, keep_best=0) == ["s10.ckpt", "s30.ckpt", "s40.ckpt", "s50.ckpt"]
    assert protected_files(data) == {"last.ckpt", "s20.ckpt"}
    # The best entry stays even if a stale manifest ranks it badly; `max` reverses the ranking.
    data_max = _manifest(ENTRIES, best="s10.ckpt", mode="max")
    assert plan_prune(data_max, keep_last=None, keep_best=1) == ["s20.ckpt", "s30.ckpt", "s40.ckpt", "s50.ckpt"]


def test_plan_prune_protects_the_target_of_last(tmp_path: Path) -> None:
    for name, *_ in ENTRIES[:-1]:
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "last.ckpt").symlink_to("s30.ckpt")
    manifest = Manifest(tmp_path)
    manifest.data.update(_manifest(ENTRIES, best="s20.ckpt"))
    assert "s30.ckpt" in protected_files(manifest)
    assert plan_prune(manifest, keep_last=0, keep_best=0) == ["s10.ckpt", "s40.ckpt", "s50.ckpt"]
    # A copy with the same content counts as its target too.
    copy = _manifest(ENTRIES, best="s20.ckpt")
    copy["checkpoints"][-1]["sha256"] = copy["checkpoints"][1]["sha256"]
    assert plan_prune(copy, keep_last=0, keep_best=0) == ["s10.ckpt", "s30.ckpt", "s40.ckpt", "s50.ckpt"]
    copy["checkpoints"][-1]["sha256"] = copy["checkpoints"][3]["sha256"]
    assert plan_prune(copy, keep_last=0, keep_best=0) == ["s10.ckpt", "s30.ckpt", "s50.ckpt"]


def test_plan_prune_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="--keep-last must be 0 or more"):
        plan_prune(_manifest(ENTRIES), keep_last=-1, keep_best=None)
    with pytest.raises(CheckpointError, match="needs a monitored metric"):
        plan_prune(_manifest(ENTRIES, monitor=None), keep_last=None, keep_best=1)


# Three epochs keeping the best two checkpoints by validation accuracy; a secret in the run's description.
TINY = {
    "seed_everything": 3,
    "trainer": {"max_epochs": 3, "limit_train_batches": 3, "limit_val_batches": 2},
    "model": {"init_args": {"hidden_dims": [16], "micro_batch_size": 8}},
    "data": {"init_args": {"batch_size": 16}},
    "experiment": {
        "name": "meta",
        "description": "${oc.env:MY_SERVICE_API_KEY}",
        "loggers": {"tensorboard": None},
        "checkpoint": {"monitor": "val/acc", "save_top_k": 2},
    },
}


def test_every_checkpoint_carries_metadata_and_the_manifest_matches_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_SERVICE_API_KEY", "hunter2-cafebabe")
    write_tiny_config(tmp_path / "tiny.yaml", TINY)
    assert main(["fit", "--config", "tiny.yaml"]) == 0, capsys.readouterr().err
    run = tmp_path / "runs/meta/version_0"
    ckpts = run / "checkpoints"
    manifest = Manifest(ckpts)
    on_disk = sorted(p.name for p in ckpts.iterdir() if p.name != "manifest.json")
    assert sorted(e["file"] for e in manifest.entries) == on_disk
    assert len(on_disk) == 3 and "last.ckpt" in on_disk  # the best two and last
    assert manifest.data["best"] in on_disk and manifest.data["monitor"] == "val/acc"
    meta = json.loads((run / "metadata.json").read_text())
    for entry in manifest.entries:
        assert set(entry) >= {"file", "sha256", "size", "step", "epoch", "metrics", "time"}
        assert manifest.verify(entry["file"]) is None
        raw = (ckpts / entry["file"]).read_bytes()
        assert b"hunter2-cafebabe" not in raw
        info = torch.load(ckpts / entry["file"], weights_only=True)["enhtrain"]
        assert info["run_name"] == "meta" and info["run_version"] == "version_0"
        assert info["config_hash"] == meta["config_hash"]
        assert info["config"]["experiment"]["description"] == "**********"
        assert info["config"]["trainer"]["max_epochs"] == 3
        assert {"commit", "dirty"} <= set(info["git"])
        assert info["versions"]["torch"] == torch.__version__
        assert (info["global_step"], info["epoch"]) == (entry["step"], entry["epoch"])
        assert info["metrics"]["val/acc"] == entry["metrics"]["val/acc"]
        assert info["monitor"] == "val/acc" and info["mode"] == "max"
        assert info["wall_time_s"] >= 0 and isinstance(info["rng"]["torch"], torch.Tensor)
    best = max((e for e in manifest.entries if e["file"] != "last.ckpt"), key=lambda e: e["metrics"]["val/acc"])
    assert manifest.data["best"] == best["file"]


def test_keep_last_keeps_the_best_k_and_newest_n_while_training(tmp_path: Path) -> None:
    from lightning.pytorch import Trainer, seed_everything

    from enhtrain.checkpoints.run_checkpoint import RunCheckpoint
    from enhtrain.data import DatasetDataModule
    from enhtrain.models import MLPClassifier

    seed_everything(0)
    saved: list[tuple[str, int, float]] = []

    class Recorder(RunCheckpoint):
        def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
            saved.append((Path(filepath).name, trainer.global_step, float(trainer.callback_metrics["val/loss"])))
            super()._save_checkpoint(trainer, filepath)

    callback = Recorder(
        dirpath=str(tmp_path),
        keep_last=2,
        save_top_k=1,
        monitor="val/loss",
        mode="max",
        save_last=True,
        filename="{step}",
    )
    trainer = Trainer(
        max_epochs=6,
        limit_train_batches=2,
        limit_val_batches=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(MLPClassifier(hidden_dims=[8]), DatasetDataModule("digits", batch_size=16))

    numbered = [(name, step, loss) for name, step, loss in saved if name != "last.ckpt"]
    assert len(numbered) == 6
    worst = max(numbered, key=lambda item: item[2])[0]  # mode=max: the highest loss is "best"
    newest = {name for name, _, _ in numbered[-2:]}
    expected = {worst, *newest, "last.ckpt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*expected, "manifest.json"])
    manifest = Manifest(tmp_path)
    assert sorted(e["file"] for e in manifest.entries) == sorted(expected)
    assert manifest.data["best"] == worst == Path(callback.best_model_path).name
    assert all(manifest.verify(e["file"]) is None for e in manifest.entries)


def test_both_hyper_parameter_blocks_of_a_checkpoint_are_masked(tmp_path: Path) -> None:
    import torch

    from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO

    checkpoint = {
        "state_dict": {"w": torch.zeros(2)},
        "hyper_parameters": {"lr": 0.1, "api_key": "model-secret-value", "nested": {"token": "tok-secret-value"}},
        "datamodule_hyper_parameters": {"init_args": {"password": "data-secret-value"}},
    }
    AtomicCheckpointIO(root=tmp_path).save_checkpoint(checkpoint, tmp_path / "a.ckpt")
    raw = (tmp_path / "a.ckpt").read_bytes()
    for secret in (b"model-secret-value", b"tok-secret-value", b"data-secret-value"):
        assert secret not in raw
    loaded = torch.load(tmp_path / "a.ckpt", weights_only=True)
    assert loaded["hyper_parameters"]["lr"] == 0.1 and loaded["hyper_parameters"]["api_key"] == "**********"
    assert checkpoint["hyper_parameters"]["api_key"] == "model-secret-value"  # the live object is left alone
