"""``enhtrain runs`` and ``enhtrain ckpt``: listing, showing, verifying and pruning, without importing torch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enhtrain.checkpoints.manifest import Manifest, sha256_file
from fakes import CHECKPOINTS
from in_process import run_main


def _make_run(
    root: Path, name: str, version: str, *, status: str = "completed", monitor: str | None = "val/loss", **meta: Any
) -> Path:
    run = root / name / version
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True)
    (run / "config.yaml").write_text(f"experiment: {{name: {name}}}\n")
    manifest = Manifest(ckpts)
    for file, step, loss in CHECKPOINTS:
        (ckpts / file).write_bytes(f"{file}:{step}".encode() * 50)
        manifest.add(
            {
                "file": file,
                "sha256": sha256_file(ckpts / file),
                "size": (ckpts / file).stat().st_size,
                "step": step,
                "epoch": step // 10 - 1,
                "metrics": {"val/loss": loss},
                "time": f"2025-01-01T00:00:{step:02d}+00:00",
            }
        )
    manifest.data.update({"best": "epoch=1-step=20.ckpt", "last": "last.ckpt", "monitor": monitor, "mode": "min"})
    manifest.save()
    data = {
        "name": name,
        "version": version,
        "status": status,
        "start_time": "2025-01-01T00:00:00+00:00",
        "end_time": "2025-01-01T01:02:03+00:00",
        "duration_s": 3723.0,
        "metrics": {"val/loss": 0.5},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": ["enhtrain", "fit"],
        "git": {"commit": "0123456789abcdef", "dirty": True},
        "versions": {"torch": "2.x"},
        "config_hash": "f" * 64,
        **meta,
    }
    (run / "metadata.json").write_text(json.dumps(data))
    return run


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    _make_run(root, "digits", "version_0", subcommand="fit")
    _make_run(root, "digits", "version_1", status="running", pid=2**22 + 12345, duration_s=None, subcommand="test")
    _make_run(root, "other", "v2", status="failed")
    return root


def test_runs_list(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "runs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "STATUS", "SUBCOMMAND", "START", "DURATION", "BEST"]
    assert lines[1].split() == [
        "digits", "version_0", "completed", "fit", "2025-01-01T00:00:00Z", "1:02:03", "val/loss=0.4"
    ]
    assert lines[2].split()[:4] == ["digits", "version_1", "killed", "test"]  # its process is gone
    assert lines[3].split()[:4] == ["other", "v2", "failed", "-"]  # a run that recorded no subcommand
    code, out, _ = run_main(capsys, "runs", "list", str(runs), "--json")
    listed = json.loads(out)
    assert [(r["name"], r["version"]) for r in listed] == [
        ("digits", "version_0"),
        ("digits", "version_1"),
        ("other", "v2"),
    ]
    assert listed[0]["best_metric"] == "val/loss" and listed[0]["best_value"] == 0.4


def test_runs_show(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "runs", "show", "digits/version_0")
    assert code == 0
    assert "Status:      completed" in out
    assert "0123456789ab (dirty)" in out
    assert "Best:        val/loss = 0.4" in out
    assert "epoch=1-step=20.ckpt (best)" in out and "last.ckpt (last)" in out
    code, out_by_path, _ = run_main(capsys, "runs", "show", str(runs / "digits" / "version_0"))
    assert code == 0 and out_by_path.splitlines()[1:] == out.splitlines()[1:]
    assert out_by_path.splitlines()[0].endswith(f"({runs / 'digits' / 'version_0'})")
    code, out, _ = run_main(capsys, "runs", "show", "digits/version_0", "--json")
    shown = json.loads(out)
    assert shown["metadata"]["config_hash"] == "f" * 64
    assert [c["file"] for c in shown["checkpoints"]] == [c[0] for c in CHECKPOINTS]


def test_a_run_name_alone_means_its_latest_version(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # version_0 is the newest by its metadata, whatever the numbers say.
    os.utime(runs / "digits/version_1/metadata.json", (1_000_000, 1_000_000))
    code, out, _ = run_main(capsys, "runs", "show", "digits")
    assert code == 0 and out.startswith("Run:         digits/version_0 ")
    os.utime(runs / "digits/version_0/metadata.json", (500_000, 500_000))
    code, out, _ = run_main(capsys, "runs", "show", "digits")
    assert code == 0 and out.startswith("Run:         digits/version_1 ")
    assert "Subcommand:  test" in out
    code, by_name, _ = run_main(capsys, "ckpt", "list", "digits")
    code_v, by_version, _ = run_main(capsys, "ckpt", "list", "digits/version_1")
    assert code == code_v == 0 and by_name == by_version
    code, out, _ = run_main(capsys, "ckpt", "verify", str(runs / "other"))
    assert code == 0 and "runs/other/v2/checkpoints/manifest.json" in out
    code, _, err = run_main(capsys, "runs", "show", "nothing-here")
    assert code == 2 and "or a run name for its latest version" in err
    code, out, _ = run_main(capsys, "runs", "show", "digits", "--path")
    assert code == 0 and out == "runs/digits/version_1\n"


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--help"], ["runs", "list", "--help"], ["runs", "show", "-h"],
        ["ckpt", "--help"], ["ckpt", "list", "--help"], ["ckpt", "verify", "--help"], ["ckpt", "prune", "--help"],
        ["runs", "set", "--help"], ["runs", "stop", "--help"], ["runs", "checkpoint", "--help"],
        ["templates", "--help"], ["templates", "list", "--help"], ["templates", "show", "--help"],
        ["config", "--help"], ["config", "explain", "--help"], ["config", "validate", "--help"],
        ["config", "schema", "--help"], ["config", "migrate", "--help"],
        ["plugins", "--help"], ["plugins", "new", "--help"],
        ["sweep", "--help"], ["sweep", "run", "--help"], ["sweep", "worker", "--help"], ["sweep", "show", "--help"],
        ["sweep", "best", "--help"], ["sweep", "plots", "--help"],
    ],
    ids=" ".join,
)
def test_every_info_command_answers_help(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    assert out.startswith("usage: enhtrain " + args[0]) and err == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "digits/version_9"], "run 'digits/version_9' not found"),
        (["runs", "list", "nowhere"], "'nowhere' is not a directory"),
        (["runs"], "the following arguments are required: ACTION"),
        (["runs", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["ckpt", "list", "nope"], "run 'nope' not found"),
        (["ckpt", "verify"], "the following arguments are required: run"),
        (["ckpt", "prune", "digits/version_0"], "give --keep-last N, --keep-best K or both"),
        (["ckpt", "prune", "digits/version_0", "--keep-last", "two"], "expected a whole number, got 'two'"),
        (["ckpt", "prune", "digits/version_0", "--keep-last", "9" * 5000], "expected a whole number, got '999"),
        (["ckpt", "prune", "digits/version_0", "--keep-best", "-1"], "expected 0 or more, got -1"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    runs: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("enhtrain: error: ")
    assert message in err
    assert out == ""


def test_ckpt_list(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (runs / "digits/version_0/checkpoints/stray.ckpt").write_bytes(b"x")
    code, out, _ = run_main(capsys, "ckpt", "list", "digits/version_0")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["FILE", "STEP", "EPOCH", "val/loss", "SIZE", "SAVED", "NOTE"]
    assert lines[2].split()[:5] == ["epoch=1-step=20.ckpt", "(best)", "20", "1", "0.4"]
    assert lines[-1].split()[0] == "stray.ckpt" and lines[-1].endswith("not in the manifest")
    code, out, _ = run_main(capsys, "ckpt", "list", str(runs / "digits/version_0/checkpoints"), "--json")
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [c[0] for c in CHECKPOINTS] + ["stray.ckpt"]


def test_ckpt_verify(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "ckpt", "verify", "digits/version_0")
    assert code == 0 and out.startswith("ok: 5 checkpoint(s) match")
    ckpts = runs / "digits/version_0/checkpoints"
    data = (ckpts / "epoch=0-step=10.ckpt").read_bytes()
    (ckpts / "epoch=0-step=10.ckpt").write_bytes(data[:-10])
    flipped = bytearray((ckpts / "epoch=2-step=30.ckpt").read_bytes())
    flipped[5] ^= 1
    (ckpts / "epoch=2-step=30.ckpt").write_bytes(bytes(flipped))
    (ckpts / "epoch=3-step=40.ckpt").unlink()
    code, out, _ = run_main(capsys, "ckpt", "verify", "digits/version_0")
    assert code == 1
    bad = [line for line in out.splitlines() if line.startswith("BAD ")]
    assert len(bad) == 3
    assert "epoch=0-step=10.ckpt: size" in bad[0]
    assert "epoch=2-step=30.ckpt: sha256 differs" in bad[1]
    assert "epoch=3-step=40.ckpt: file is missing" in bad[2]
    assert out.splitlines()[-1] == "3 of 5 checkpoint(s) failed verification"


def test_ckpt_prune(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpts = runs / "digits/version_0/checkpoints"
    before = sorted(p.name for p in ckpts.iterdir())
    code, out, _ = run_main(
        capsys, "ckpt", "prune", "digits/version_0", "--keep-last", "0", "--keep-best", "0", "--dry-run"
    )
    assert code == 0
    prefix = "runs/digits/version_0/checkpoints/"
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("would delete")] == [
        prefix + "epoch=0-step=10.ckpt",
        prefix + "epoch=2-step=30.ckpt",
        prefix + "epoch=3-step=40.ckpt",
    ]
    assert sorted(p.name for p in ckpts.iterdir()) == before

    code, out, _ = run_main(capsys, "ckpt", "prune", "digits/version_0", "--keep-last", "1", "--keep-best", "1")
    assert code == 0
    assert "deleted" in out and "epoch=1-step=20.ckpt (protected)" in out
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "epoch=1-step=20.ckpt",
        "epoch=3-step=40.ckpt",
        "last.ckpt",
        "manifest.json",
    ]
    manifest = Manifest(ckpts)
    assert [e["file"] for e in manifest.entries] == ["epoch=1-step=20.ckpt", "epoch=3-step=40.ckpt", "last.ckpt"]
    assert manifest.data["best"] == "epoch=1-step=20.ckpt" and manifest.data["last"] == "last.ckpt"
    assert not [p for p in ckpts.iterdir() if p.name.startswith(".")]

    code, _, _ = run_main(capsys, "ckpt", "prune", "digits/version_0", "--keep-last", "0")
    assert code == 0
    assert sorted(e["file"] for e in Manifest(ckpts).entries) == ["epoch=1-step=20.ckpt", "last.ckpt"]
    assert run_main(capsys, "ckpt", "verify", "digits/version_0")[0] == 0


def test_prune_refuses_a_running_run_and_keep_best_without_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _make_run(tmp_path / "runs", "live", "version_0", status="running")  # this process: alive
    code, _, err = run_main(capsys, "ckpt", "prune", "live/version_0", "--keep-last", "0")
    assert code == 2 and "is still training" in err
    assert len(Manifest(tmp_path / "runs/live/version_0/checkpoints").entries) == 5
    _make_run(tmp_path / "runs", "plain", "version_0", monitor=None)
    code, _, err = run_main(capsys, "ckpt", "prune", "plain/version_0", "--keep-best", "1")
    assert code == 2 and "--keep-best needs a monitored metric" in err


def test_commands_do_not_import_torch(runs: Path) -> None:
    code = """
import sys
from enhtrain.commands import runs, ckpt
results = [
    runs.run(["list"]), runs.run(["show", "digits/version_0"]), ckpt.run(["list", "digits/version_0"]),
    ckpt.run(["verify", "digits/version_0"]), ckpt.run(["prune", "digits/version_0", "--keep-last", "1"]),
]
print("RESULT", results, "torch" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=runs.parent, capture_output=True, text=True, env=env, timeout=120
    ).stdout
    result = [line for line in out.splitlines() if line.startswith("RESULT")]
    assert result == ["RESULT [0, 0, 0, 0, 0] False"], out
