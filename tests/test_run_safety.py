"""What a refused command must not do to earlier runs, the run lock, secrets in every byte of a run, and exits.

One finished run is trained per test session (``trained``) and copied into each test's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from enhtrain import hookimpl, plugins
from enhtrain._io import file_mode
from enhtrain.checkpoints.manifest import Manifest, sha256_file
from enhtrain.commands import main
from enhtrain.errors import ConfigError, PluginError
from enhtrain.run.lock import RunLock
from enhtrain.security import PathEscapeError, check_import, import_object, inside, is_plain_name
from enhtrain.testing import tiny_config
from refusals import assert_refused

RUN = Path("runs/safe/version_0")


def _config(**experiment: object) -> dict[str, object]:
    return tiny_config({"trainer": {"max_epochs": 2}, "experiment": {
        "name": "safe", "loggers": {"csv": {}}, "callbacks": {"throughput": None, "run_summary": None},
        "checkpoint": {"monitor": "val/loss", "save_top_k": 1}, **experiment}})


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``base.yaml`` and the finished run ``runs/safe/version_0`` made from it."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "base.yaml").write_text(yaml.safe_dump(_config()))
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-m", "enhtrain", "fit", "--config", "base.yaml"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture
def workdir(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the trained folder as the working directory."""
    work = tmp_path / "work"
    shutil.copytree(trained, work, symlinks=True)
    monkeypatch.chdir(work)
    return work


def digests(root: Path) -> dict[str, str]:
    """The sha256 of every file under ``root``, by relative path (the file set included)."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


# --- a refused command leaves the earlier run as it was ----------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _pickled_last(work: Path) -> list[str]:
    """Make ``last.ckpt`` need pickled objects while still matching its manifest entry."""
    path = work / RUN / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["extra"] = _RunsCode(work / "pwned")
    torch.save(checkpoint, path)
    manifest = Manifest(path.parent)
    entry = manifest.entry("last.ckpt")
    assert entry is not None
    entry.update(sha256=sha256_file(path), size=path.stat().st_size)
    manifest.save()
    return ["--experiment.resume", "auto"]


def _truncated_last(work: Path) -> list[str]:
    path = work / RUN / "checkpoints" / "last.ckpt"
    path.write_bytes(path.read_bytes()[:1000])
    return ["--experiment.resume", str(RUN / "checkpoints" / "last.ckpt")]


REFUSALS: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "invalid_value": (
        lambda w: ["--experiment.resume", "auto", "--experiment.allow_config_change", "true",
                   "--model.init_args.dropout", "7"],
        ["dropout"],
    ),
    "unsafe_checkpoint": (_pickled_last, ["last.ckpt", "needs pickled Python objects"]),
    "config_drift": (lambda w: ["--experiment.resume", "auto", "--model.init_args.lr", "0.5"],
                     ["differs from the resumed run's"]),
    "corrupt_checkpoint": (_truncated_last, ["last.ckpt", "differs from the manifest"]),
    "checkpoint_filename_escapes": (
        lambda w: ["--experiment.resume", "auto", "--experiment.checkpoint.filename", "../../../ESCAPED-{step}"],
        ["experiment.checkpoint.filename", "not a plain file name pattern"],
    ),
    "profiler_outside": (
        lambda w: ["--experiment.resume", "auto", "--experiment.profiler", "{name: simple, dirpath: elsewhere}"],
        ["experiment.profiler.dirpath"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_resume_changes_nothing_of_the_earlier_run(
    case: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, fragments = REFUSALS[case]
    args = make(workdir)
    before = digests(workdir)

    code, err = run_cli(capsys, "fit", "--config", "base.yaml", *args)

    assert_refused(code, err, *fragments)
    assert digests(workdir) == before
    assert sorted(p.name for p in (workdir / "runs/safe").iterdir()) == ["version_0"]
    assert not (workdir / "pwned").exists()
    assert json.loads((workdir / RUN / "metadata.json").read_text())["status"] == "completed"


def test_a_held_lock_refuses_a_second_writer_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = RunLock(workdir / RUN)
    lock.acquire()
    lock.claim()
    before = digests(workdir)
    try:
        code, err = run_cli(capsys, "fit", "--config", "base.yaml", "--experiment.resume", "auto")
        prune_code, prune_err = run_cli(capsys, "ckpt", "prune", str(RUN), "--keep-last", "0")
    finally:
        lock.release()
    assert_refused(code, err, f"pid {os.getpid()} on host {socket.gethostname()}")
    assert_refused(prune_code, prune_err, f"pid {os.getpid()}")
    assert digests(workdir) == before


def test_the_lock_is_held_for_the_whole_run_and_released_by_the_kernel(workdir: Path) -> None:
    script = (
        "import os, sys, time\n"
        "from enhtrain.run.lock import RunLock\n"
        "lock = RunLock(sys.argv[1]); lock.acquire(); lock.claim()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(workdir / RUN)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match=f"in use by pid {holder.pid} on host"):
            RunLock(workdir / RUN).acquire()
    finally:
        holder.kill()  # kill -9: no clean-up code runs
        holder.wait()
    second = RunLock(workdir / RUN)
    second.acquire()  # the kernel released the dead holder's lock: no stale lock
    second.release()


def test_two_resumes_at_once_one_writer(workdir: Path) -> None:
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    longer = ["--trainer.max_epochs", "100000", "--experiment.allow_config_change", "true"]
    command = [sys.executable, "-m", "enhtrain", "fit", "--config", "base.yaml", "--experiment.resume", "auto"]
    first = subprocess.Popen([*command, *longer], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while RunLock(workdir / RUN).holder().get("pid") != first.pid:
        if first.poll() is not None:
            raise AssertionError(f"the first resume ended ({first.returncode}): {first.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, "the first resume never took the lock"
        time.sleep(0.05)
    second = subprocess.run([*command, *longer], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first resume ended before the second one started"
    first.send_signal(signal.SIGTERM)
    _, first_err = first.communicate(timeout=300)

    assert first.returncode == 143, first_err[-3000:]
    assert_refused(second.returncode, second.stderr, f"in use by pid {first.pid}")
    meta = json.loads((workdir / RUN / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and len(meta["resumes"]) == 1
    assert not list((workdir / RUN / "checkpoints").glob("*-v1.ckpt"))
    steps = [int(row.split(",")[1]) for row in (workdir / RUN / "logs/csv/metrics.csv").read_text().splitlines()[1:]
             if row.split(",")[1].isdigit()]
    assert steps == sorted(steps)


# --- the path gate -----------------------------------------------------------------------------------------------


def test_inside_resolves_dot_dot_and_symbolic_links(tmp_path: Path) -> None:
    root = tmp_path / "run"
    (root / "checkpoints").mkdir(parents=True)
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    (root / "checkpoints" / "link.ckpt").symlink_to(outside)
    assert inside(root / "checkpoints" / "a.ckpt", root) == (root / "checkpoints" / "a.ckpt").resolve()
    for escaping in (root / "../victim.txt", root / "checkpoints/link.ckpt", root, Path("/etc/passwd")):
        with pytest.raises(PathEscapeError, match="outside"):
            inside(escaping, root)
    assert [is_plain_name(n) for n in ("a.ckpt", "../a", "a/b", "", ".", "..", "a\\b", 3)] == [
        True, False, False, False, False, False, False, False]


def test_a_checkpoint_written_through_a_link_out_of_the_run_is_refused(tmp_path: Path) -> None:
    from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO

    root = tmp_path / "run"
    (root / "checkpoints").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "checkpoints" / "out").symlink_to(tmp_path / "elsewhere")
    io_plugin = AtomicCheckpointIO(root=root)
    io_plugin.save_checkpoint({"state_dict": {}}, root / "checkpoints" / "fine.ckpt")
    with pytest.raises(PathEscapeError):
        io_plugin.save_checkpoint({"state_dict": {}}, root / "checkpoints" / "out" / "escaped.ckpt")
    assert not list((tmp_path / "elsewhere").iterdir())


# --- the import gate ---------------------------------------------------------------------------------------------


@pytest.fixture
def side_effect_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package whose import writes a marker file."""
    marker = tmp_path / "imported.txt"
    package = tmp_path / "site" / "loud_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield marker
    sys.modules.pop("loud_pkg", None)


def test_the_gate_decides_without_importing(side_effect_package: Path) -> None:
    policy_safe = __import__("enhtrain.security", fromlist=["ImportPolicy"]).ImportPolicy(safe=True)
    check_import("loud_pkg.Thing", key="model.class_path", where="t.yaml:1", must_exist=True)
    with pytest.raises(ConfigError, match="not allowed in safe mode"):
        check_import("loud_pkg.Thing", key="model.class_path", where="t.yaml:1", policy=policy_safe)
    with pytest.raises(ConfigError, match="not installed"):
        check_import("no_such_pkg_xyz.Thing", key="data.init_args.dataset", where="t.yaml:2", must_exist=True)
    assert not side_effect_package.exists() and "loud_pkg" not in sys.modules
    assert import_object("loud_pkg:Thing", key="k", where="w").__name__ == "Thing"
    assert side_effect_package.exists()


@pytest.mark.parametrize("path", ["os.system", "subprocess:Popen", "this.Model", "_posixsubprocess.fork_exec",
                                  "torch.hub.load", "builtins.eval", "pickle.loads"])
def test_the_gate_refuses_the_deny_list(path: str) -> None:
    with pytest.raises(ConfigError, match="configs may not use"):
        check_import(path, key="k", where="w")


def test_a_plugin_cannot_register_a_denied_import_path() -> None:
    class Hostile:
        @hookimpl
        def enhtrain_register_callbacks(self, registry: object) -> None:
            registry.register("os:system", name="hostile_cb")  # type: ignore[attr-defined]

    manager = plugins.get_plugin_manager()
    plugin = Hostile()
    manager.register(plugin, name="hostile")
    try:
        entry = plugins.get_registry().callbacks.find("hostile_cb")
        assert entry is not None
        with pytest.raises((ConfigError, PluginError), match="would import the module 'os'"):
            entry.load()
    finally:
        manager.unregister(plugin)


def test_a_class_path_stored_in_a_checkpoint_passes_the_gate(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "hostile.ckpt"
    checkpoint = torch.load(workdir / RUN / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint["hyper_parameters"] = {"_class_path": "subprocess.Popen", "args": ["touch", "pwned"]}
    torch.save(checkpoint, path)
    before = digests(workdir / "runs")

    code, err = run_cli(capsys, "fit", "--config", "base.yaml", "--ckpt_path", str(path))

    assert_refused(code, err, "hyper_parameters._class_path", "'subprocess.Popen' would import the module")
    assert digests(workdir / "runs") == before and not (workdir / "pwned").exists()


# --- secrets in every byte of a run ------------------------------------------------------------------------------

DATASET_MODULE = '''
import torch
from torch.utils.data import TensorDataset


class KeyedDigits(TensorDataset):
    """A tiny dataset that needs an API key, as a hosted dataset would."""

    def __init__(self, api_key: str, size: int = 64) -> None:
        assert api_key
        generator = torch.Generator().manual_seed(0)
        super().__init__(torch.rand(size, 64, generator=generator), torch.randint(0, 10, (size,), generator=generator))
'''

PLANTED = {"API": "planted-dataset-api-key-9931", "DB": "hu5Zq"}


def test_no_secret_reaches_any_byte_of_a_run(tmp_path: Path) -> None:
    (tmp_path / "keyed_data.py").write_text(DATASET_MODULE)
    config = _config(description="db password ${oc.env:DB_PASSWORD} for the nightly job",
                     tags=["${oc.env:DB_PASSWORD}"])
    config["experiment"]["loggers"] = {"csv": {}, "tensorboard": {}}  # type: ignore[index]
    config["data"]["init_args"] = {"dataset": "keyed_data.KeyedDigits", "batch_size": 16,  # type: ignore[index]
                                   "init_args": {"api_key": PLANTED["API"]}}
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1", "DB_PASSWORD": PLANTED["DB"], "PYTHONPATH": str(tmp_path)}
    commands = [["fit"]] + [[sub, "--ckpt_path", str(RUN / "checkpoints/last.ckpt"), "--experiment.checkpoint", "null"]
                            for sub in ("validate", "test", "predict")]
    outputs = []
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "enhtrain", *command, "--config", "secret.yaml"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs += [proc.stdout, proc.stderr]
    # Every command wrote a run of its own: fit, validate, test and predict.
    assert len(list((tmp_path / "runs/safe").iterdir())) == 4
    checkpoints = list((tmp_path / RUN / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) >= 2
    saved = torch.load(checkpoints[0], weights_only=True)
    assert saved["datamodule_hyper_parameters"]["init_args"]["api_key"] == "**********"
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.suffix == ".ckpt" for p in files) and any("tfevents" in p.name for p in files)
    for path in files:
        content = path.read_bytes()
        for secret in PLANTED.values():
            assert secret.encode() not in content, f"{secret} in {path}"
    for stream in outputs:
        assert all(secret not in stream for secret in PLANTED.values())


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_a_refused_evaluation_leaves_the_runs_alone(
    subcommand: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pickled_last(workdir)
    before = digests(workdir)
    code, err = run_cli(capsys, subcommand, "--config", "base.yaml", "--ckpt_path", str(RUN / "checkpoints/last.ckpt"))
    assert_refused(code, err, "needs pickled Python objects")
    assert digests(workdir) == before and not (workdir / "pwned").exists()


# --- exits and file modes ----------------------------------------------------------------------------------------


def test_ctrl_c_exits_130_and_the_run_is_interrupted(workdir: Path) -> None:
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "enhtrain", "fit", "--config", "base.yaml", "--trainer.max_epochs", "100000",
         "--experiment.name", "stopped", "--experiment.callbacks.run_summary", "{}"],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    metrics = workdir / "runs/stopped/version_0/logs/csv/metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) > 3):
        assert proc.poll() is None and time.monotonic() < deadline, "training never got going"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    meta = json.loads((workdir / "runs/stopped/version_0/metadata.json").read_text())
    assert meta["status"] == "interrupted"
    assert meta["summary"]["status"] == "interrupted"


def test_run_files_follow_the_umask(trained: Path) -> None:
    run = trained / RUN
    for path in (run / "config.yaml", run / "metadata.json", run / "checkpoints/manifest.json"):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode(), path


def test_a_closed_pipe_ends_quietly(workdir: Path) -> None:
    for command in ("config explain --config base.yaml", "runs list", f"runs show {RUN}", f"ckpt list {RUN}",
                    "templates list", "plugins"):
        proc = subprocess.run(
            ["bash", "-c", f"{sys.executable} -m enhtrain {command} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"],
            cwd=workdir, capture_output=True, text=True, timeout=60,
        )
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
        assert proc.stdout.strip() in ("0", "141"), (command, proc.stdout)


def test_a_failed_resume_setup_restores_the_resumed_runs_files(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lightning rejects this only once `fit` has begun: after config.yaml and metadata.json were rewritten.
    before = digests(workdir / RUN)
    code, err = run_cli(capsys, "fit", "--config", "base.yaml", "--experiment.resume", "auto",
                        "--experiment.allow_config_change", "true", "--trainer.max_epochs", "3",
                        "--trainer.val_check_interval", "1000")
    assert code == 2, err
    after = digests(workdir / RUN)
    assert {k: v for k, v in after.items() if k.startswith(("config", "metadata"))} == {
        k: v for k, v in before.items() if k.startswith(("config", "metadata"))}



def test_a_refused_config_ends_before_lightning_is_imported(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(_config()))
    aliases = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    aliases += [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
    (tmp_path / "bomb.yaml").write_text("\n".join(aliases) + "\n")
    probe = (
        "import sys, time\n"
        "from enhtrain.commands import main\n"
        "start = time.monotonic()\n"
        "code = main(['fit', '--config', 'base.yaml', '--config', 'bomb.yaml'])\n"
        "print(code, round(time.monotonic() - start, 3), 'lightning' in sys.modules, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    code, elapsed, lightning, torch_loaded = proc.stdout.split()
    assert_refused(int(code), proc.stderr, "bomb.yaml:", "YAML aliases expand to more than")
    assert float(elapsed) < 2.0 and lightning == "False" and torch_loaded == "False"
    assert not (tmp_path / "runs").exists()
