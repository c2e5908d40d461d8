"""Many processes, one run: DDP on CPU through Lightning's launcher, torchrun with two nodes, SLURM, SIGTERM.

Also eight separate runs of one experiment started at once, which must get eight versions.

Every rank must agree on the run's name and version, and only global rank 0 may write run files. Both are
observed from inside the processes: a ``sitecustomize`` module on ``PYTHONPATH`` installs an audit hook
(:func:`sys.addaudithook`) in every process, which records each open-for-writing, ``mkdir``, rename and
removal under the run root; a callback reports what each rank's Trainer, loggers and checkpoint callback
use. SLURM is simulated on this machine by a stand-in ``srun`` that starts one task per ``SLURM_NTASKS``
with ``SLURM_PROCID`` and ``SLURM_LOCALID`` set, which is what Lightning's SLURM support reads.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
import yaml

from enhtrain.checkpoints.manifest import Manifest
from enhtrain.commands import main
from enhtrain.testing import write_tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parent.parent
SBATCH = REPO / "configs" / "slurm" / "train.sbatch"

# Installed as `sitecustomize` in every process of a run: records writes under PROBE_WATCH, one JSON line each.
SITECUSTOMIZE = '''
import json
import os
import sys

_watch = os.environ.get("PROBE_WATCH")
_out = os.environ.get("PROBE_OUT")

if _watch and _out:
    _watch = os.path.realpath(_watch)
    _rank = next((os.environ[k] for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if k in os.environ), "0")
    _log = open(os.path.join(_out, f"writes-{os.getpid()}.jsonl"), "a", buffering=1)
    _busy = [False]
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _EVENTS = {"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.truncate", "shutil.rmtree", "os.symlink",
               "os.link", "os.chmod", "os.utime"}

    def _under(path):
        if path is None or isinstance(path, int):
            return None
        try:
            full = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return None
        return full if full == _watch or full.startswith(_watch + os.sep) else None

    def _hook(event, args):
        if _busy[0]:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, 0))[:3]
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE)
            paths = [path] if writing else []
        elif event in _EVENTS:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        hits = [p for p in map(_under, paths) if p]
        if hits:
            _busy[0] = True
            try:
                _log.write(json.dumps({"rank": _rank, "pid": os.getpid(), "event": event, "paths": hits}) + "\\n")
            finally:
                _busy[0] = False

    sys.addaudithook(_hook)
'''

# A callback in every rank: reports what the rank trains into, and can hold training until SIGTERM arrives.
RANK_PROBE = '''
import json
import os
import time

from lightning.pytorch.callbacks import Callback


class RankProbe(Callback):
    """Writes `<what>-<rank>-<pid>.json` into PROBE_OUT; with PROBE_HOLD set, waits at step 3 for SIGTERM."""

    def _report(self, trainer, what):
        ckpt = trainer.checkpoint_callback
        report = {
            "pid": os.getpid(),
            "global_rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "step": trainer.global_step,
            "default_root_dir": os.path.realpath(trainer.default_root_dir),
            "log_dir": os.path.realpath(trainer.log_dir),
            "loggers": [[type(lg).__name__, lg.name, str(lg.version)] for lg in trainer.loggers],
            "ckpt_dir": os.path.realpath(ckpt.dirpath) if ckpt is not None and ckpt.dirpath else None,
        }
        path = os.path.join(os.environ["PROBE_OUT"], f"{what}-{trainer.global_rank}-{os.getpid()}.json")
        with open(path + ".tmp", "w") as handle:
            json.dump(report, handle)
        os.replace(path + ".tmp", path)

    def on_fit_start(self, trainer, pl_module):
        self._report(trainer, "fit_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3 and os.environ.get("PROBE_HOLD"):
            self._report(trainer, "ready")
            deadline = time.monotonic() + 120
            while not trainer.received_sigterm and time.monotonic() < deadline:
                time.sleep(0.05)
'''

# Stands in for `srun` on a one-node allocation: one task per SLURM_NTASKS, as SLURM starts them; when a task
# fails the others are stopped (`srun --kill-on-bad-exit`). With SRUN_RECORD set it only records its arguments.
FAKE_SRUN = """\
#!/bin/bash
if [ -n "${SRUN_RECORD:-}" ]; then
  printf '%s\\0' "$@" > "$SRUN_RECORD"
  exit 0
fi
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 "$@" &
  pids+=($!)
done
status=0
for ((i = 0; i < SLURM_NTASKS; i++)); do
  if ! wait -n; then
    status=1
    kill "${pids[@]}" 2>/dev/null
  fi
done
exit $status
"""

# Eight steps on every rank, the rank probe as a callback, the best checkpoint and the simple profiler. The
# launchers (Lightning's, torchrun, srun) choose the devices.
CONFIG = {
    "seed_everything": 3,
    "trainer": {
        "limit_train_batches": 8,
        "limit_val_batches": 2,
        "devices": "auto",
        "callbacks": [{"class_path": "rank_probe.RankProbe"}],
    },
    "model": {"init_args": {"hidden_dims": [16], "micro_batch_size": 8}},
    "data": {"init_args": {"batch_size": 16}},
    "experiment": {"name": "ddp", "checkpoint": {"monitor": "val/loss", "save_top_k": 1}, "profiler": "simple"},
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Probe:
    """The probe files of one test and what the processes reported through them.

    Attributes:
        work: The working directory of the runs (holds ``ddp.yaml`` and ``runs/``).
        code: The folder put on ``PYTHONPATH`` (``sitecustomize.py``, ``rank_probe.py``, stand-in ``srun``).
        out: Where the processes write their reports.
    """

    work: Path
    code: Path
    out: Path

    @property
    def root(self) -> Path:
        """The run root, ``<work>/runs``."""
        return self.work / "runs"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a probed run: the test's environment plus the probe's variables and ``extra``."""
        env = dict(os.environ)
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(self.code), env.get("PYTHONPATH")])),
            PROBE_WATCH=str(self.root),
            PROBE_OUT=str(self.out),
            ENHTRAIN_PLAIN_PROGRESS="1",
            **extra,
        )
        env.pop("ENHTRAIN_RUN_DIR", None)
        return env

    def reset(self) -> None:
        """Forget the reports of an earlier launch."""
        for path in self.out.iterdir():
            path.unlink()

    def reports(self, what: str) -> dict[int, dict[str, Any]]:
        """Return the ``what`` reports of the callback, by global rank."""
        found = [json.loads(p.read_text()) for p in self.out.glob(f"{what}-*.json")]
        by_rank = {r["global_rank"]: r for r in found}
        assert len(by_rank) == len(found), f"two processes reported the same rank: {found}"
        return by_rank

    def writes(self) -> list[dict[str, Any]]:
        """Return every write under the run root that the audit hooks recorded."""
        rows: list[dict[str, Any]] = []
        for path in self.out.glob("writes-*.jsonl"):
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return rows


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    """A working directory with the DDP config, and the probe modules on a ``PYTHONPATH`` folder."""
    code, out = tmp_path / "probe", tmp_path / "probe-out"
    code.mkdir()
    out.mkdir()
    (code / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (code / "rank_probe.py").write_text(RANK_PROBE)
    write_tiny_config(tmp_path / "ddp.yaml", CONFIG)
    return Probe(tmp_path, code, out)


def launch(args: list[str], probe: Probe, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    """Start a command in the probe's working directory, its output going to ``<log>.out`` and ``<log>.err``."""
    with open(probe.work / f"{log}.out", "wb") as out, open(probe.work / f"{log}.err", "wb") as err:
        return subprocess.Popen(args, cwd=probe.work, env=env, stdout=out, stderr=err, start_new_session=True)


def output(probe: Probe, log: str) -> tuple[str, str]:
    """Return the stdout and stderr a launched command wrote."""
    return ((probe.work / f"{log}.out").read_text(errors="replace"),
            (probe.work / f"{log}.err").read_text(errors="replace"))


def finish(proc: subprocess.Popen[bytes], probe: Probe, log: str, timeout: float = 240) -> tuple[str, str]:
    """Wait for a launched command and return its output; kill its processes if it runs past ``timeout``."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out, err = output(probe, log)
        pytest.fail(f"{log} did not finish in {timeout} s:\n{out[-2000:]}\n{err[-4000:]}")
    return output(probe, log)


def check_single_writer(probe: Probe, world_size: int) -> Path:
    """Check that every rank used one run directory and that only global rank 0 wrote under the run root.

    Returns:
        The run directory.
    """
    starts = probe.reports("fit_start")
    assert sorted(starts) == list(range(world_size)), starts
    [run] = [p for p in (probe.root / "ddp").iterdir() if p.is_dir()]
    run = run.resolve()
    for rank, report in starts.items():
        assert report["world_size"] == world_size, report
        assert report["default_root_dir"] == str(run), (rank, report)
        assert Path(report["log_dir"]).parent.parent == run, (rank, report)
        assert report["ckpt_dir"] == str(run / "checkpoints"), (rank, report)
        assert {(name, version) for _, name, version in report["loggers"]} == {("ddp", run.name)}, report
    writes = probe.writes()
    assert [w for w in writes if w["rank"] != "0"] == [], "a rank other than 0 wrote run files"
    written = {Path(p).name for w in writes for p in w["paths"]}
    assert {"metadata.json", "manifest.json"} <= written, "the audit hook saw rank 0's writes"
    assert len({w["pid"] for w in writes if w["event"] == "os.rename"}) == 1, "one process renamed files"
    for name in ("config.yaml", "metadata.json", "manifest.json"):
        assert len(list(probe.root.rglob(name))) == 1, name
    leftovers = list(probe.root.rglob(".enhtrain-*"))
    assert leftovers == [], leftovers
    return run


def test_ddp_fit_has_one_run_and_one_writer(probe: Probe) -> None:
    args = [sys.executable, "-m", "enhtrain", "fit", "--config", "ddp.yaml", "--trainer.devices", "2",
            "--trainer.strategy", "ddp"]
    out, err = finish(launch(args, probe, probe.env(), "fit"), probe, "fit")

    assert "Traceback" not in err, err[-4000:]
    run = check_single_writer(probe, world_size=2)
    assert run == (probe.root / "ddp" / "version_0").resolve()
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoints", "config.yaml", "logs", "metadata.json",
                                                      "profiler"]
    assert [p.name for p in (run / "profiler").iterdir()] == ["fit-simple-0.txt"]
    assert out.count("Run directory: runs/ddp/version_0") == 1
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["status"], meta["name"], meta["version"]) == ("completed", "ddp", "version_0")
    assert meta["global_step"] == 8
    assert meta["metrics"]["val/loss"] > 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (str(config["trainer"]["devices"]), config["trainer"]["strategy"]) == ("2", "ddp")
    manifest = Manifest(run / "checkpoints")
    assert {e["file"] for e in manifest.entries} == {"last.ckpt", manifest.data["best"]}
    assert all(manifest.verify(e["file"]) is None for e in manifest.entries)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (ckpt["enhtrain"]["run_version"], ckpt["enhtrain"]["global_step"]) == ("version_0", 8)
    assert (run / "logs" / "csv" / "metrics.csv").read_text().count("\n") > 1


def slurm_bin(folder: Path) -> Path:
    """Create a folder with the stand-in ``srun`` and a ``python`` that runs this interpreter."""
    folder.mkdir(exist_ok=True)
    (folder / "srun").write_text(FAKE_SRUN)
    (folder / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    for tool in ("srun", "python"):
        (folder / tool).chmod(0o755)
    return folder


def slurm_env(base: dict[str, str], bin_dir: Path, *, nodes: int, tasks_per_node: int, **extra: str) -> dict[str, str]:
    """The environment of a batch script in a SLURM allocation of ``nodes`` nodes on this machine."""
    return {
        **base,
        "PATH": f"{bin_dir}{os.pathsep}{base['PATH']}",
        "SLURM_JOB_ID": "7301",
        "SLURM_JOB_NAME": "enhtrain-test",
        "SLURM_NNODES": str(nodes),
        "SLURM_NTASKS": str(nodes * tasks_per_node),
        "SLURM_NTASKS_PER_NODE": str(tasks_per_node),
        "SLURM_NODELIST": "127.0.0.1",
        **extra,
    }


def sbatch_argv(env: dict[str, str], cwd: Path, *extra: str) -> list[str]:
    """Run the sbatch template with ``srun`` recording its command line instead of starting tasks; return it."""
    record = cwd / "srun-argv.bin"
    proc = subprocess.run(["bash", str(SBATCH), *extra], cwd=cwd, env={**env, "SRUN_RECORD": str(record)},
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    argv = record.read_bytes().decode().split("\0")[:-1]
    record.unlink()
    return argv


def test_sbatch_template_parses_and_its_command_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    syntax = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    text = SBATCH.read_text()
    assert text.startswith("#!/bin/bash\n")
    directives = dict(line.split()[1].lstrip("-").partition("=")[::2] for line in text.splitlines()
                      if line.startswith("#SBATCH"))
    assert directives["signal"].startswith(("USR1@", "SIGUSR1@")), directives
    assert "requeue" in directives
    (tmp_path / "configs").symlink_to(REPO / "configs")
    env = slurm_env(dict(os.environ), slurm_bin(tmp_path / "bin"), nodes=int(directives["nodes"]),
                    tasks_per_node=int(directives["ntasks-per-node"]))

    argv = sbatch_argv(env, tmp_path, "--trainer.max_epochs", "3")

    assert argv[:4] == ["python", "-m", "enhtrain", "fit"]
    monkeypatch.chdir(tmp_path)
    assert main([*argv[3:], "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["num_nodes"] == int(directives["nodes"])
    assert str(printed["trainer"]["devices"]) == directives["ntasks-per-node"]
    assert (printed["trainer"]["strategy"], printed["trainer"]["accelerator"]) == ("ddp", "gpu")
    assert printed["trainer"]["max_epochs"] == 3
    assert printed["experiment"]["resume"] == "auto"
    assert printed["experiment"]["name"] == "quickstart"
    assert not (tmp_path / "runs").exists()


def test_sigterm_stops_every_rank_and_a_requeued_slurm_job_resumes(probe: Probe) -> None:
    bin_dir = slurm_bin(probe.work / "bin")
    slurm = slurm_env(probe.env(), bin_dir, nodes=1, tasks_per_node=2, CONFIG="ddp.yaml", ACCELERATOR="cpu",
                      MASTER_PORT=str(free_port()))
    argv = sbatch_argv(slurm, probe.work)
    # The first attempt runs the template's command under Lightning's own launcher, without SLURM.
    proc = launch([sys.executable, *argv[1:]], probe, probe.env(PROBE_HOLD="1"), "first")
    deadline = time.monotonic() + 180
    while len(probe.reports("ready")) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("training did not reach step 3:\n" + output(probe, "first")[1][-4000:])
        time.sleep(0.1)
    pids = [r["pid"] for r in probe.reports("fit_start").values()]

    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = finish(proc, probe, "first", timeout=60)
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() - signalled < 60, "a rank still runs 60 s after SIGTERM"
        time.sleep(0.1)

    assert proc.returncode == 143, err[-4000:]
    assert "Traceback" not in err, err[-4000:]
    assert "stopped by SIGTERM" in err
    run = check_single_writer(probe, world_size=2)
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"]) == ("interrupted", 3)
    manifest = Manifest(run / "checkpoints")
    assert [(e["file"], e["step"]) for e in manifest.entries] == [("last.ckpt", 3)]
    assert manifest.verify("last.ckpt") is None
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["enhtrain"]["global_step"] == 3

    # SLURM requeues the job: the same batch script runs again, and `resume: auto` continues the run.
    probe.reset()
    out, err = finish(launch(["bash", str(SBATCH)], probe, slurm, "requeued"), probe, "requeued")

    assert "Traceback" not in err, err[-4000:]
    assert check_single_writer(probe, world_size=2) == run
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"]) == ("completed", 8), err[-4000:]
    assert [Path(r["checkpoint"]).name for r in meta["resumes"]] == ["last.ckpt"]
    assert not list(run.glob("config.before-resume-*"))
    assert out.count("Run directory: runs/ddp/version_0") == 1


def test_slurm_job_starts_one_run_with_one_writer(probe: Probe) -> None:
    slurm = slurm_env(probe.env(), slurm_bin(probe.work / "bin"), nodes=1, tasks_per_node=2, CONFIG="ddp.yaml",
                      ACCELERATOR="cpu", MASTER_PORT=str(free_port()))
    args = ["bash", str(SBATCH), "--trainer.limit_train_batches", "4"]

    out, err = finish(launch(args, probe, slurm, "slurm"), probe, "slurm", timeout=150)

    assert "cannot find its run directory" not in err
    assert "Traceback" not in err, err[-4000:]
    run = check_single_writer(probe, world_size=2)
    assert run == (probe.root / "ddp" / "version_0").resolve()
    assert json.loads((run / "metadata.json").read_text())["status"] == "completed"
    assert out.count("Run directory: runs/ddp/version_0") == 1


def test_torchrun_two_nodes_on_one_machine(probe: Probe) -> None:
    port = free_port()
    procs = [
        launch(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
             "-m", "enhtrain", "fit", "--config", "ddp.yaml", "--trainer.num_nodes", "2",
             "--trainer.devices", "1", "--trainer.strategy", "ddp"],
            probe, probe.env(), f"node{node}",
        )
        for node in (0, 1)
    ]
    outputs = [finish(proc, probe, f"node{node}") for node, proc in enumerate(procs)]

    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-4000:]
    run = check_single_writer(probe, world_size=2)
    assert run == (probe.root / "ddp" / "version_0").resolve()
    assert [p.name for p in (run / "profiler").iterdir()] == ["fit-simple-0.txt"]
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"]) == ("completed", 8)
    assert "".join(out for out, _ in outputs).count("Run directory: runs/ddp/version_0") == 1


# One training step, a CSV log and no checkpoint.
CONCURRENT = {
    "seed_everything": 1,
    "trainer": {"limit_train_batches": 1},
    "experiment": {"name": "same", "checkpoint": None, "loggers": {"csv": {}, "tensorboard": None}},
}


def test_eight_runs_started_at_once_get_eight_versions(tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "tiny.yaml", CONCURRENT)
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    env.pop("ENHTRAIN_RUN_DIR", None)
    started = time.monotonic()
    procs = []
    for index in range(8):
        with open(tmp_path / f"{index}.out", "wb") as out, open(tmp_path / f"{index}.err", "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "enhtrain", "fit", "--config", "tiny.yaml"],
                                          cwd=tmp_path, env=env, stdout=out, stderr=err))
    for proc in procs:
        proc.wait(timeout=180)
    elapsed = time.monotonic() - started

    announced = []
    for index, proc in enumerate(procs):
        err = (tmp_path / f"{index}.err").read_text(errors="replace")
        assert proc.returncode == 0, err[-4000:]
        lines = [line for line in (tmp_path / f"{index}.out").read_text().splitlines()
                 if line.startswith("Run directory: ")]
        assert len(lines) == 1, lines
        announced.append(lines[0].removeprefix("Run directory: "))
    versions = sorted(p.name for p in (tmp_path / "runs" / "same").iterdir())
    assert versions == [f"version_{n}" for n in range(8)]
    assert sorted(announced) == sorted(f"runs/same/{v}" for v in versions)
    for version in versions:
        run = tmp_path / "runs" / "same" / version
        assert yaml.safe_load((run / "config.yaml").read_text())["experiment"]["name"] == "same"
        meta = json.loads((run / "metadata.json").read_text())
        assert (meta["status"], meta["version"]) == ("completed", version)
        assert "train/loss" in (run / "logs" / "csv" / "metrics.csv").read_text()
    assert list((tmp_path / "runs").rglob(".enhtrain-*")) == []
    assert elapsed < 90, f"8 concurrent runs took {elapsed:.0f} s"


def test_torchrun_two_nodes_model_parallel_share_one_run(probe: Probe) -> None:
    from test_sharded import SHARDMOD

    (probe.code / "shardmod.py").write_text(SHARDMOD)
    config = {
        "seed_everything": 3,
        "trainer": {"max_epochs": 2, "limit_train_batches": 2, "num_sanity_val_steps": 0,
                    "enable_model_summary": False, "callbacks": [{"class_path": "rank_probe.RankProbe"}]},
        "model": {"class_path": "shardmod.ShardedNet"},
        "data": {"class_path": "shardmod.Data"},
        "experiment": {"name": "ddp", "loggers": {"csv": {}, "tensorboard": None},
                       "checkpoint": {"monitor": "val/loss", "save_top_k": 1, "save_last": True}},
    }
    (probe.work / "mp.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    procs = [
        launch(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
             "-m", "enhtrain", "fit", "--config", "mp.yaml", "--trainer.num_nodes", "2", "--trainer.devices", "1",
             "--trainer.accelerator", "cpu",
             "--trainer.strategy", "{class_path: lightning.pytorch.strategies.ModelParallelStrategy}"],
            probe, probe.env(), f"node{node}",
        )
        for node in (0, 1)
    ]
    outputs = [finish(proc, probe, f"node{node}") for node, proc in enumerate(procs)]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-4000:]

    starts = probe.reports("fit_start")
    assert sorted(starts) == [0, 1], starts
    [run] = [p.resolve() for p in (probe.root / "ddp").iterdir() if p.is_dir()]
    assert {r["ckpt_dir"] for r in starts.values()} == {str(run / "checkpoints")}
    for name in (".lock", "metadata.json", "manifest.json", "config.yaml"):
        assert len(list(probe.root.rglob(name))) == 1, name
    # Rank 1 (the other node) wrote its own shards into the temporary directory of each save, and nothing else.
    other = [w for w in probe.writes() if w["rank"] != "0"]
    assert other, "the second node wrote its shards"
    for write in other:
        for path in map(Path, write["paths"]):
            assert path.parent.parent == run / "checkpoints" or path.parent == run / "checkpoints", write
            shard = path.name.startswith("__1_") and path.parent.name.startswith(".enhtrain-tmp-")
            assert shard or (write["event"] == "os.mkdir" and path.name.startswith(".enhtrain-tmp-")), write
    assert len({w["pid"] for w in probe.writes() if w["event"] == "os.rename"}) == 1, "one process committed"
    manifest = Manifest(run / "checkpoints", strict=True)
    assert manifest.entries and manifest.data["last"] == "last.ckpt"
    for entry in manifest.entries:
        assert {"__0_0.distcp", "__1_0.distcp"} <= set(entry["files"]) and entry["world_size"] == 2, entry
        assert manifest.verify(entry["file"]) is None
    assert list(probe.root.rglob(".enhtrain-*")) == []
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["status"], meta["global_step"], meta["world_size"]) == ("completed", 4, 2)
    assert "".join(out for out, _ in outputs).count("Run directory: runs/ddp/version_0") == 1
