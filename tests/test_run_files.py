"""Malformed ``manifest.json`` and ``metadata.json``: every reader reports them in one line and follows nothing.

The commands ``ckpt list/verify/prune``, ``runs list/show`` and ``experiment.resume`` read a run's files, which a
crash, a user or an attacker may have broken. No reader prints a traceback, no malformed entry is followed, and
``ckpt prune`` deletes only files inside the run's ``checkpoints/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhtrain.checkpoints.manifest import Manifest, ManifestError
from enhtrain.config.schema import ExperimentConfig
from enhtrain.errors import CheckpointError
from enhtrain.run.lock import RunLock
from enhtrain.run.metadata import MetadataError, read_metadata
from enhtrain.run.resume import find_resume_point
from fakes import CHECKPOINTS
from in_process import run_main
from refusals import assert_refused

MANIFEST = "runs/rt/version_0/checkpoints/manifest.json"
METADATA = "runs/rt/version_0/metadata.json"


def _manifest_data(ckpts: Path) -> dict[str, Any]:
    entries = []
    for file, step, loss in CHECKPOINTS:
        data = f"{file}:{step}".encode() * 20
        (ckpts / file).write_bytes(data)
        entries.append(
            {
                "file": file,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "step": step,
                "epoch": step // 10 - 1,
                "metrics": {"val/loss": loss},
                "time": f"2025-01-01T00:00:{step:02d}+00:00",
            }
        )
    return {
        "checkpoints": entries,
        "best": "epoch=1-step=20.ckpt",
        "last": "last.ckpt",
        "newest": "epoch=3-step=40.ckpt",
        "monitor": "val/loss",
        "mode": "min",
    }


def _metadata(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "version_0",
        "status": "completed",
        "subcommand": "fit",
        "tags": ["a"],
        "description": None,
        "versions": {"python": "3.11", "torch": None},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "host": socket.gethostname(),
        "platform": "Linux",
        "pid": 2**22 + 4321,
        "command": ["enhtrain", "fit"],
        "env": None,
        "config_hash": "f" * 64,
        "plugins": [],
        "start_time": "2025-01-01T00:00:00+00:00",
        "end_time": "2025-01-01T00:01:00+00:00",
        "duration_s": 60.0,
        "metrics": {"val/loss": 0.5},
        "resumes": [{"checkpoint": "x.ckpt", "time": "2025-01-01T00:00:30+00:00"}],
        "first_start_time": "2025-01-01T00:00:00+00:00",
    }


def _make_run(root: Path, name: str) -> Path:
    run = root / name / "version_0"
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True)
    (run / "config.yaml").write_text(f"experiment: {{name: {name}}}\n")
    (ckpts / "manifest.json").write_text(json.dumps(_manifest_data(ckpts)))
    (run / "metadata.json").write_text(json.dumps(_metadata(name)))
    return run


def snapshot(root: Path) -> dict[str, bytes]:
    """Return the content of every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``runs/rt`` (the run that gets broken) and ``runs/ok`` under the working directory, and ``victim.txt``."""
    monkeypatch.chdir(tmp_path)
    _make_run(tmp_path / "runs", "rt")
    _make_run(tmp_path / "runs", "ok")
    (tmp_path / "victim.txt").write_text("keep me")
    return tmp_path


def _entry(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["checkpoints"][index][key] = value

    return change


def _drop(index: int, key: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        del data["checkpoints"][index][key]

    return change


def _top(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[key] = value

    return change


def _set_entry(index: int, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["checkpoints"][index] = value

    return change


# id: (new content: bytes, or a change to the valid data), what the message says
BAD_MANIFESTS: dict[str, tuple[bytes | Callable[[dict[str, Any]], None], str]] = {
    "not_json": (b'{"checkpoints": [', "is not valid JSON (line 1, column 18)"),
    "not_utf8": (b"\xff\xfe\x00{", "is not UTF-8 text"),
    "empty_file": (b"", "is not valid JSON (line 1, column 1)"),
    "top_list": (b"[1, 2]", "expected a JSON object at the top level, got a list"),
    "top_string": (b'"checkpoints"', "expected a JSON object at the top level, got 'checkpoints'"),
    "entry_not_object": (_set_entry(2, 7), "checkpoints[2]: expected an object, got 7"),
    "entry_list": (_set_entry(0, ["epoch=0-step=10.ckpt"]), "checkpoints[0]: expected an object, got a list"),
    "file_missing": (_drop(1, "file"), "checkpoints[1].file: missing"),
    "file_int": (_entry(1, "file", 3), "checkpoints[1].file: expected a string, got 3"),
    "step_string": (_entry(2, "step", "x"), "checkpoints[2].step: expected an integer, got 'x'"),
    "step_bool": (_entry(2, "step", True), "checkpoints[2].step: expected an integer, got true"),
    "epoch_float": (_entry(0, "epoch", 1.5), "checkpoints[0].epoch: expected an integer, got 1.5"),
    "size_string": (_entry(3, "size", "12"), "checkpoints[3].size: expected an integer, got '12'"),
    "size_negative": (_entry(3, "size", -1), "checkpoints[3].size: expected 0 or more, got -1"),
    "sha_null": (_entry(0, "sha256", None), "checkpoints[0].sha256: expected a string, got null"),
    "metrics_list": (_entry(0, "metrics", [1]), "checkpoints[0].metrics: expected an object, got a list"),
    "metric_string": (
        _entry(0, "metrics", {"val/loss": "low"}),
        "checkpoints[0].metrics['val/loss']: expected a number, got 'low'",
    ),
    "time_int": (_entry(4, "time", 5), "checkpoints[4].time: expected a string, got 5"),
    "checkpoints_object": (_top("checkpoints", {}), "checkpoints: expected a list, got an object"),
    "best_int": (_top("best", 3), "best: expected a string, got 3"),
    "last_path": (_top("last", "../../config.yaml"), "last: expected a plain checkpoint file name"),
    "monitor_list": (_top("monitor", ["val/loss"]), "monitor: expected a string, got a list"),
    "mode_unknown": (_top("mode", "sideways"), "mode: expected 'min' or 'max', got 'sideways'"),
    "file_traversal": (
        _entry(0, "file", "../../../../victim.txt"),
        "checkpoints[0].file: expected a plain checkpoint file name in checkpoints/, got '../../../../victim.txt'",
    ),
    "file_absolute": (_entry(0, "file", "/etc/passwd"), "got '/etc/passwd'"),
    "file_dotdot": (_entry(0, "file", ".."), "checkpoints[0].file: expected a plain checkpoint file name"),
    "file_manifest": (_entry(0, "file", "manifest.json"), "checkpoints[0].file: expected a plain checkpoint"),
    "lone_surrogate": (b'{"checkpoints": [], "monitor": "\\udc80"}', "escapes a lone UTF-16 surrogate"),
}

BAD_METADATA: dict[str, tuple[bytes | Callable[[dict[str, Any]], None], str]] = {
    "not_json": (b"{'status': 'completed'}", "is not valid JSON (line 1, column 2)"),
    "not_utf8": (b"\xc3\x28", "is not UTF-8 text"),
    "top_list": (b"[]", "expected a JSON object at the top level, got a list"),
    "status_int": (_top("status", 1), "status: expected a string, got 1"),
    "tags_object": (_top("tags", {"a": 1}), "tags: expected a list, got an object"),
    "tag_int": (_top("tags", ["a", 2]), "tags[1]: expected a string, got 2"),
    "command_string": (_top("command", "enhtrain fit"), "command: expected a list, got 'enhtrain fit'"),
    "git_list": (_top("git", []), "git: expected an object, got a list"),
    "git_commit_int": (_top("git", {"commit": 12}), "git.commit: expected a string, got 12"),
    "versions_list": (_top("versions", ["torch"]), "versions: expected an object, got a list"),
    "pid_string": (_top("pid", "12"), "pid: expected an integer, got '12'"),
    "metrics_list": (_top("metrics", [0.5]), "metrics: expected an object, got a list"),
    "metric_bool": (_top("metrics", {"val/loss": False}), "metrics['val/loss']: expected a number, got false"),
    "duration_nan": (b'{"duration_s": NaN}', "'NaN' is not a JSON number: write a finite number or null"),
    "start_time_int": (_top("start_time", 5), "start_time: expected a string, got 5"),
    "resumes_entry": (_top("resumes", [1]), "resumes[0]: expected an object, got 1"),
}


def _write_broken(path: Path, case: bytes | Callable[[dict[str, Any]], None]) -> None:
    if isinstance(case, bytes):
        path.write_bytes(case)
        return
    data = json.loads(path.read_text())
    case(data)
    path.write_text(json.dumps(data))


MANIFEST_COMMANDS = [
    ["ckpt", "list", "rt/version_0"],
    ["ckpt", "list", "rt/version_0", "--json"],
    ["ckpt", "verify", "rt/version_0"],
    ["ckpt", "prune", "rt/version_0", "--keep-last", "0"],
    ["ckpt", "prune", "rt/version_0", "--keep-last", "0", "--dry-run"],
    ["ckpt", "prune", "rt/version_0", "--keep-best", "1"],
    ["runs", "show", "rt/version_0"],
    ["runs", "show", "rt/version_0", "--json"],
]


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_malformed_manifest_is_reported_in_one_line_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    content, message = BAD_MANIFESTS[case]
    _write_broken(workdir / MANIFEST, content)
    before = snapshot(workdir)
    for args in MANIFEST_COMMANDS:
        code, out, err = run_main(capsys, *args)
        assert_refused(code, err, MANIFEST, message, "repair or remove the file")
        assert out == "", args
    # runs list still lists every run, and shows the broken one as unreadable.
    code, out, err = run_main(capsys, "runs", "list")
    assert code == 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if line] == [line for line in err.splitlines() if MANIFEST in line]
    assert err.count("\n") == 1 and err.startswith("enhtrain: warning: ") and message in err
    rows = [line.split()[:3] for line in out.splitlines()[1:]]
    assert rows == [["ok", "version_0", "completed"], ["rt", "version_0", "unreadable"]]
    code, out, _ = run_main(capsys, "runs", "list", "--json")
    assert code == 0 and [r["status"] for r in json.loads(out)] == ["completed", "unreadable"]
    assert snapshot(workdir) == before


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_malformed_metadata_is_reported_in_one_line_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    content, message = BAD_METADATA[case]
    _write_broken(workdir / METADATA, content)
    before = snapshot(workdir)
    for args in (["runs", "show", "rt/version_0"], ["runs", "show", "rt/version_0", "--json"]):
        code, out, err = run_main(capsys, *args)
        assert_refused(code, err, METADATA, message, "repair or remove the file")
        assert out == ""
    # Without a run lock, prune reads the metadata to tell whether an older enhtrain still writes the run.
    code, out, err = run_main(capsys, "ckpt", "prune", "rt/version_0", "--keep-last", "0")
    assert_refused(code, err, METADATA, message)
    # The checkpoint commands need only the manifest.
    for args in (["ckpt", "list", "rt/version_0"], ["ckpt", "verify", "rt/version_0"]):
        assert run_main(capsys, *args)[0] == 0
    assert run_main(capsys, "ckpt", "prune", "rt/version_0", "--keep-last", "0", "--dry-run")[0] == 0
    code, out, err = run_main(capsys, "runs", "list")
    assert code == 0 and err.count("\n") == 1 and METADATA in err and message in err
    assert [line.split()[:3] for line in out.splitlines()[1:]][1] == ["rt", "version_0", "unreadable"]
    assert snapshot(workdir) == before


def test_read_metadata_of_a_missing_file_is_empty_and_a_malformed_one_raises(tmp_path: Path) -> None:
    assert read_metadata(tmp_path / "metadata.json") == {}
    (tmp_path / "metadata.json").write_text('{"status": "completed", "extra": {"kept": [1]}}')
    assert read_metadata(tmp_path / "metadata.json") == {"status": "completed", "extra": {"kept": [1]}}
    (tmp_path / "metadata.json").write_text('{"status": 3}')
    with pytest.raises(MetadataError, match=r"metadata.json: status: expected a string, got 3; repair or remove"):
        read_metadata(tmp_path / "metadata.json")


def test_manifest_reading_strict_and_lenient(tmp_path: Path) -> None:
    assert Manifest(tmp_path, strict=True).entries == []  # no manifest: empty
    data = _manifest_data(tmp_path)
    data["checkpoints"][0]["note"] = "kept"
    data["written_by"] = "a newer enhtrain"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    manifest = Manifest(tmp_path, strict=True)
    assert manifest.entries[0]["note"] == "kept" and manifest.data["written_by"] == "a newer enhtrain"
    assert all(manifest.verify(file) is None for file, *_ in CHECKPOINTS)
    data["checkpoints"][2]["step"] = "x"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"manifest.json: checkpoints\[2\]\.step: expected an integer, got 'x'"):
        Manifest(tmp_path, strict=True)
    lenient = Manifest(tmp_path)  # what a run writing its own manifest reads: a malformed one starts over
    assert lenient.entries == [] and "checkpoints[2].step" in (lenient.problem or "")
    with pytest.raises(ValueError, match="plain file"):
        lenient.add({"file": "../x.ckpt", "sha256": "0", "size": 1})


def test_prune_never_follows_a_path_out_of_checkpoints(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = workdir / MANIFEST
    data = json.loads(manifest.read_text())
    victim = workdir / "victim.txt"
    data["checkpoints"].append(
        {"file": "../../../../victim.txt", "sha256": "0" * 64, "size": 7, "step": 0, "epoch": 0, "metrics": {}}
    )
    manifest.write_text(json.dumps(data))
    before = snapshot(workdir)
    code, out, err = run_main(capsys, "ckpt", "prune", "runs/rt/version_0", "--keep-last", "0")
    assert_refused(code, err, MANIFEST, "checkpoints[5].file", "'../../../../victim.txt'")
    assert out == "" and victim.read_text() == "keep me"
    assert snapshot(workdir) == before


def test_prune_never_deletes_through_a_link_out_of_checkpoints(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpts = workdir / "runs/rt/version_0/checkpoints"
    outside = workdir / "outside.ckpt"
    outside.write_bytes(b"not the run's")
    (ckpts / "evil.ckpt").symlink_to(outside)
    data = json.loads((ckpts / "manifest.json").read_text())
    data["checkpoints"].insert(
        0,
        {
            "file": "evil.ckpt",
            "sha256": hashlib.sha256(outside.read_bytes()).hexdigest(),
            "size": outside.stat().st_size,
            "step": 1,
            "metrics": {},
        },
    )
    (ckpts / "manifest.json").write_text(json.dumps(data))
    before = snapshot(workdir)
    for extra in ([], ["--dry-run"]):
        code, out, err = run_main(capsys, "ckpt", "prune", "rt/version_0", "--keep-last", "0", *extra)
        assert_refused(code, err, "'evil.ckpt'", str(outside), "outside", "nothing was deleted")
        assert out == ""
    assert outside.read_bytes() == b"not the run's" and (ckpts / "evil.ckpt").is_symlink()
    assert snapshot(workdir) == before


def test_prune_takes_the_run_lock(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = workdir / "runs/rt/version_0"
    holder = RunLock(run_dir)
    holder.acquire(action="train")
    try:
        before = snapshot(workdir)
        code, _, err = run_main(capsys, "ckpt", "prune", "rt/version_0", "--keep-last", "0")
        assert_refused(code, err, "is in use by", "cannot prune its checkpoints")
        assert snapshot(workdir) == before
    finally:
        holder.release()
    # A run with a lock file is judged by its lock alone, whatever its metadata says.
    meta = json.loads((run_dir / "metadata.json").read_text())
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "status": "running", "pid": os.getpid()}))
    code, out, _ = run_main(capsys, "ckpt", "prune", "rt/version_0", "--keep-last", "0")
    assert code == 0 and out.count("deleted ") == 3
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "epoch=1-step=20.ckpt",
        "last.ckpt",
        "manifest.json",
    ]
    probe = RunLock(run_dir)
    probe.acquire()  # released after the prune
    probe.release()


def _experiment(root: Path, resume: str) -> ExperimentConfig:
    return ExperimentConfig(name="rt", root_dir=str(root), resume=resume)


def test_resume_auto_refuses_a_malformed_manifest(workdir: Path) -> None:
    experiment = _experiment(workdir / "runs", "auto")
    point = find_resume_point(experiment)
    assert point is not None and Path(point.checkpoint).name == "last.ckpt"
    before = snapshot(workdir)
    for case in ("not_json", "step_string", "file_traversal", "top_list"):
        (workdir / MANIFEST).write_bytes(before[MANIFEST])
        _write_broken(workdir / MANIFEST, BAD_MANIFESTS[case][0])
        with pytest.raises(CheckpointError) as info:
            find_resume_point(experiment)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"experiment.resume auto: {workdir / MANIFEST}")
        assert BAD_MANIFESTS[case][1] in message
        assert message.endswith("or remove it and resume from one of its checkpoints with --experiment.resume PATH")
        with pytest.raises(CheckpointError, match=r"experiment.resume version_0: .*repair it and resume again"):
            find_resume_point(_experiment(workdir / "runs", "version_0"))
        with pytest.raises(CheckpointError, match=r"experiment.resume: .*manifest.json.*repair it, or remove it"):
            find_resume_point(_experiment(workdir / "runs", str(workdir / "runs/rt/version_0/checkpoints/last.ckpt")))
    (workdir / MANIFEST).unlink()  # the documented fix: without a manifest the run has nothing verified
    assert find_resume_point(experiment) is None


# --- random shapes ------------------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_ENTRY_KEYS = ["file", "sha256", "size", "step", "epoch", "metrics", "time"]
_MANIFEST_KEYS = ["checkpoints", "best", "last", "newest", "monitor", "mode"]
_META_KEYS = list(_metadata("x"))


@st.composite
def _near_valid(draw: st.DrawFn, keys: list[str], entry_keys: list[str]) -> list[tuple[str, Any, Any]]:
    """Changes to a valid file: ``(top-level key, entry index or None, new value or ... to drop it)``."""
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        if entry_keys and draw(st.booleans()):
            key = draw(st.sampled_from(entry_keys))
            index = draw(st.integers(0, len(CHECKPOINTS) - 1))
        else:
            key, index = draw(st.sampled_from(keys)), None
        changes.append((key, index, draw(st.just(...) | _JSON | st.sampled_from(["..", "../victim.txt", "/", ""]))))
    return changes


def _content(kind: str, value: Any, valid: dict[str, Any]) -> bytes:
    if kind == "bytes":
        return value
    if kind == "json":
        return json.dumps(value).encode()
    data = copy.deepcopy(valid)
    for key, index, new in value:
        entries = data.get("checkpoints")
        if index is None:
            target = data
        else:
            target = entries[index] if isinstance(entries, list) and index < len(entries) else None
        if not isinstance(target, dict):
            continue  # an earlier change replaced the list or the entry
        if new is ...:
            target.pop(key, None)
        else:
            target[key] = new
    return json.dumps(data).encode()


def _shapes(keys: list[str], entry_keys: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("bytes"), st.binary(max_size=40)),
        st.tuples(st.just("json"), _JSON),
        st.tuples(st.just("changed"), _near_valid(keys, entry_keys)),
    )


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=_shapes(_MANIFEST_KEYS, _ENTRY_KEYS), metadata=_shapes(_META_KEYS, []))
def test_no_command_crashes_on_files_of_any_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: tuple[str, Any], metadata: tuple[str, Any]
) -> None:
    base = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    run = _make_run(base / "runs", "rt")
    (base / "victim.txt").write_text("keep me")
    ckpts = run / "checkpoints"
    (ckpts / "manifest.json").write_bytes(_content(*manifest, _manifest_data(ckpts)))
    (run / "metadata.json").write_bytes(_content(*metadata, _metadata("rt")))
    outside = {path: data for path, data in snapshot(base).items() if not path.startswith("runs/rt/version_0/ch")}
    whole = snapshot(base)
    commands = [
        ["ckpt", "list", str(run)],
        ["ckpt", "list", str(run), "--json"],
        ["ckpt", "verify", str(run)],
        ["ckpt", "prune", str(run), "--keep-last", "0", "--dry-run"],
        ["runs", "list", str(base / "runs")],
        ["runs", "list", str(base / "runs"), "--json"],
        ["runs", "show", str(run)],
        ["runs", "show", str(run), "--json"],
    ]
    for args in commands:
        code, _, err = run_main(capsys, *args)
        assert code in (0, 1, 2) and "Traceback" not in err, (args, err)
        if code == 2:
            assert_refused(code, err)
    assert snapshot(base) == whole  # reading changes nothing
    code, _, err = run_main(capsys, "ckpt", "prune", str(run), "--keep-last", "0")
    assert code in (0, 2) and "Traceback" not in err, err
    after = snapshot(base)
    assert {path: after.get(path) for path in outside} == outside  # nothing outside checkpoints/ was touched
    assert set(after) - set(whole) <= {"runs/rt/version_0/.lock"}
    if code == 2:
        assert after == whole


def test_prune_reports_a_checkpoint_it_cannot_delete(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpts = workdir / "runs/rt/version_0/checkpoints"
    (ckpts / "epoch=2-step=30.ckpt").unlink()
    (ckpts / "epoch=2-step=30.ckpt").mkdir()
    code, out, err = run_main(capsys, "ckpt", "prune", "rt/version_0", "--keep-last", "0")
    assert_refused(code, err, "cannot delete", "epoch=2-step=30.ckpt", "prune again")
    assert out == "deleted runs/rt/version_0/checkpoints/epoch=0-step=10.ckpt\n"
    assert [e["file"] for e in Manifest(ckpts, strict=True).entries] == [file for file, *_ in CHECKPOINTS[1:]]


def test_run_files_that_point_outside_the_run_are_never_written_through(tmp_path: Path) -> None:
    from enhtrain.checkpoints.manifest import Manifest
    from enhtrain.run.metadata import update_metadata
    from enhtrain.security import PathEscapeError

    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "manifest.json").symlink_to(victim)
    (tmp_path / "run" / "metadata.json").symlink_to(victim)
    manifest = Manifest(checkpoints)
    with pytest.raises(PathEscapeError, match="outside"):
        manifest.save()
    with pytest.raises(PathEscapeError, match="outside"):
        update_metadata(tmp_path / "run" / "metadata.json", {"status": "running"}, status="failed")
    assert victim.read_text() == "{}"


def test_fit_with_resume_auto_refuses_a_malformed_manifest_and_starts_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from enhtrain.testing import write_tiny_config

    write_tiny_config(workdir / "rt.yaml", {"experiment": {"name": "rt", "resume": "auto"}})
    _write_broken(workdir / MANIFEST, BAD_MANIFESTS["not_json"][0])
    before = snapshot(workdir)
    code, _, err = run_main(capsys, "fit", "--config", "rt.yaml")
    assert_refused(code, err, MANIFEST, BAD_MANIFESTS["not_json"][1])
    assert snapshot(workdir) == before  # no version_1 started afresh, the broken run as it was


def test_a_resumed_run_s_metadata_holds_its_history_from_the_first_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kill between two writes would leave metadata.json without the history, and the next resume would lose it.
    from enhtrain.run import metadata

    writes: list[dict[str, Any]] = []
    real_write = metadata._write
    monkeypatch.setattr(metadata, "_write", lambda path, data: (writes.append(dict(data)), real_write(path, data)))
    previous = {"start_time": "2025-01-01T00:00:00+00:00", "runtime_updates": [{"step": 3}],
                "resumes": [{"checkpoint": "runs/r/v/checkpoints/a.ckpt", "time": "2025-01-01T00:01:00+00:00"}]}
    data = metadata.start_metadata(tmp_path / "metadata.json", name="r", version="v", subcommand="fit", argv=[],
                                   env=None, config={}, plugins=[], tags=[], description=None, seed=7,
                                   resumed_from="runs/r/v/checkpoints/b.ckpt", previous=previous)
    assert len(writes) == 1
    written = json.loads((tmp_path / "metadata.json").read_text(encoding="utf-8"))
    assert written["resumes"] == [*previous["resumes"], {"checkpoint": "runs/r/v/checkpoints/b.ckpt",
                                                         "time": data["start_time"]}]
    assert (written["seed"], written["first_start_time"]) == (7, "2025-01-01T00:00:00+00:00")
    assert written["runtime_updates"] == [{"step": 3}]
