"""Warm trial processes: the preloaded process starts no thread, and a forked trial uses threads, workers and CUDA.

The fallback (``sweep run --no-fork``) is tested in ``tests/test_sweeps.py``; the kill tests of
``tests/test_sweeps_storage.py`` run with warm trial processes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enhtrain.sweeps.forkserver import ForkServer, fork_available
from enhtrain.testing import write_tiny_config

pytestmark = pytest.mark.skipif(not fork_available(), reason="warm trial processes need fork (POSIX)")

PROBE = '''
import atexit, gc, importlib, json, os, sys, threading
import torch
from lightning.pytorch import Callback
from enhtrain import cli
from enhtrain.checkpoints.manifest import manifest_schema
from enhtrain.run.metadata import metadata_schema
from enhtrain.sweeps import forkserver

# Imported by the preloaded process once it has warmed up: the schemas a run checks its files with are built, and
# so is fit's parser.
WARM = [schema.cache_info().currsize for schema in (manifest_schema, metadata_schema)] + [len(cli._prebuilt)]

class Probe(Callback):
    def on_fit_end(self, trainer, pl_module):
        atexit.register(lambda: open("exited.txt", "w").write(str(os.getpid())))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        wanted = os.environ.get("PROBE_IMPORT")
        inherited = wanted in forkserver._preloaded
        if wanted:
            importlib.import_module(wanted)
        loader = trainer.train_dataloader
        with open("probe.json", "w") as out:
            json.dump({"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
                       "tasks": len(os.listdir("/proc/self/task")), "loader_workers": loader.num_workers,
                       "cuda": torch.cuda.is_available() and torch.cuda.is_initialized(),
                       "device": str(pl_module.device),
                       "late": sorted(m for m in sys.modules if m not in forkserver._preloaded),
                       "inherited": inherited, "warm": WARM, "parser_left": len(cli._prebuilt),
                       "collector": gc.isenabled()}, out)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ForkServer, Path]]:
    """One preloaded process, started in a project folder that holds a probe callback."""
    project = tmp_path_factory.mktemp("forked")
    (project / "threadprobe.py").write_text(PROBE, encoding="utf-8")
    (project / "learnme.py").write_text("VALUE = 1\n", encoding="utf-8")
    (project / "threadstarter.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n",
        encoding="utf-8")
    here = os.getcwd()
    os.chdir(project)  # a worker's preloaded process finds the project's modules as `python -m enhtrain` does
    try:
        started = ForkServer(["threadprobe"])
    finally:
        os.chdir(here)
    try:
        started.ready()
        yield started, project
    finally:
        started.close()


def _fit(server: ForkServer, project: Path, name: str, overrides: dict[str, Any],
         env: dict[str, str]) -> dict[str, Any]:
    config = write_tiny_config(project / f"{name}.yaml", {
        "experiment": {"name": name},
        "trainer": {"callbacks": [{"class_path": "threadprobe.Probe"}]},
        **overrides,
    })
    (project / "probe.json").unlink(missing_ok=True)
    (project / "exited.txt").unlink(missing_ok=True)
    read, write = os.pipe()
    log = project / f"{name}.log"
    with open(log, "wb") as out:
        trial = server.start(["fit", "--config", config.name], {**os.environ, **env}, str(project), out.fileno(),
                             (read, write), "_UNUSED_CHANNEL")
    os.close(read)
    os.close(write)
    assert trial.pid != server.ready()["ready"]
    status = trial.wait(timeout=240)
    assert status == 0, log.read_text(encoding="utf-8")[-3000:]
    probe = json.loads((project / "probe.json").read_text(encoding="utf-8"))
    assert probe["pid"] == trial.pid  # the trial ran in its own process, the forked child
    assert probe["collector"] is True  # it trains with the garbage collector on (the server's is off)
    assert (project / "exited.txt").read_text(encoding="utf-8") == str(trial.pid)  # its exit handlers ran
    meta = json.loads(next((project / "runs" / name).glob("*/metadata.json")).read_text(encoding="utf-8"))
    assert meta["status"] == "completed" and meta["pid"] == trial.pid
    return probe


def test_the_preloaded_process_starts_no_thread(server: tuple[ForkServer, Path]) -> None:
    started, _ = server
    ready = started.ready()
    assert ready["failed"] == []  # torch, Lightning, enhtrain and the project's module were all imported
    assert ready["threads"] == 1  # no OpenMP or BLAS pool, no thread of any library, before a fork
    assert len(os.listdir(f"/proc/{ready['ready']}/task")) == 1  # still one, seen from outside, between trials


def test_a_forked_trial_finds_the_run_modules_imported(server: tuple[ForkServer, Path]) -> None:
    started, project = server
    probe = _fit(started, project, "late", {}, {})
    late = [m for m in probe["late"] if m.split(".")[0] in ("enhtrain", "omegaconf", "pydantic", "tensorboard")]
    # Only the config's own model and data modules, which a sweep's worker preloads from its base config.
    assert [m for m in late if not m.startswith(("enhtrain.models", "enhtrain.data"))] == []
    assert probe["warm"] == [1, 1, 1]  # and the run files' schemas and fit's parser were built before the fork
    assert probe["parser_left"] == 0  # the trial took the parser


def test_the_next_trial_finds_what_a_trial_imported(server: tuple[ForkServer, Path]) -> None:
    started, project = server
    first = _fit(started, project, "learn1", {}, {"PROBE_IMPORT": "learnme"})
    second = _fit(started, project, "learn2", {}, {"PROBE_IMPORT": "learnme"})
    assert first["inherited"] is False and "learnme" in first["late"]
    assert second["inherited"] is True and "learnme" not in second["late"]  # imported by the server in between
    assert len(os.listdir(f"/proc/{started.ready()['ready']}/task")) == 1


def test_a_package_that_starts_a_thread_is_left_to_each_trial(server: tuple[ForkServer, Path]) -> None:
    started, project = server
    first = _fit(started, project, "thread1", {}, {"PROBE_IMPORT": "threadstarter"})
    second = _fit(started, project, "thread2", {}, {"PROBE_IMPORT": "threadstarter"})
    assert first["inherited"] is False and second["inherited"] is False  # each trial imports it itself
    assert len(os.listdir(f"/proc/{started.ready()['ready']}/task")) == 1


def test_a_thread_started_in_the_preloaded_process_all_the_same_ends_forking(server: tuple[ForkServer, Path]) -> None:
    _, project = server
    # Starts a thread in the preloaded process only: the trial's and the throwaway probe's imports pass.
    (project / "sneaky.py").write_text(
        "import os, threading, time\n"
        "if open('server.pid').read() == str(os.getpid()):\n"
        "    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n", encoding="utf-8")
    here = os.getcwd()
    os.chdir(project)
    try:
        tainted = ForkServer(["threadprobe"])
    finally:
        os.chdir(here)
    try:
        (project / "server.pid").write_text(str(tainted.ready()["ready"]), encoding="utf-8")
        _fit(tainted, project, "sneaky", {}, {"PROBE_IMPORT": "sneaky"})
        read, write = os.pipe()
        try:
            with pytest.raises(OSError, match="started a thread in the preloaded process"):
                tainted.start(["fit"], dict(os.environ), str(project), write, (read, write), "_UNUSED_CHANNEL")
        finally:
            os.close(read)
            os.close(write)
    finally:
        tainted.close()


def test_another_worker_s_server_is_a_copy_of_a_ready_one(server: tuple[ForkServer, Path]) -> None:
    started, project = server
    copy = started.clone()
    try:
        assert copy.ready()["ready"] != started.ready()["ready"] and copy.ready()["threads"] == 1
        probe = _fit(copy, project, "copy", {}, {})
        late = [m for m in probe["late"] if m.split(".")[0] in ("enhtrain", "omegaconf", "pydantic", "tensorboard")]
        assert [m for m in late if not m.startswith(("enhtrain.models", "enhtrain.data"))] == []  # all inherited
        assert len(os.listdir(f"/proc/{copy.ready()['ready']}/task")) == 1
    finally:
        copy.close()
    assert started.ready()["threads"] == 1


def test_a_forked_trial_uses_torch_threads_and_dataloader_workers(server: tuple[ForkServer, Path]) -> None:
    started, project = server
    probe = _fit(started, project, "threads", {"data": {"init_args": {"num_workers": 1}}}, {"OMP_NUM_THREADS": "2"})
    assert probe["torch_threads"] == 2 and probe["loader_workers"] == 1
    assert probe["tasks"] > 1  # the trial's own threads (intra-op pool, loader's pin/queue threads) started in it
    assert started.ready()["threads"] == 1 and len(os.listdir(f"/proc/{started.ready()['ready']}/task")) == 1


@pytest.mark.skipif(not os.path.exists("/dev/nvidiactl") and not os.path.exists("/dev/nvidia0"),
                    reason="needs a CUDA GPU")
def test_a_forked_trial_creates_its_own_cuda_context(server: tuple[ForkServer, Path]) -> None:
    started, project = server
    probe = _fit(started, project, "cuda", {"trainer": {"accelerator": "gpu", "devices": 1,
                                                        "callbacks": [{"class_path": "threadprobe.Probe"}]}}, {})
    assert probe["cuda"] is True and probe["device"].startswith("cuda")


def test_a_trial_skips_only_torch_s_release_of_its_operator_libraries_at_exit() -> None:
    code = (
        "import weakref, torch\n"
        "from torch.library import _del_library\n"
        "from enhtrain.sweeps.forkserver import _skip_torch_library_release\n"
        "held = type('Held', (), {})()\n"
        "mine = weakref.finalize(held, print, 'kept')\n"
        "count = lambda: sum(i.func is _del_library for i in weakref.finalize._registry.values())\n"
        "before = count()\n"
        "_skip_torch_library_release()\n"
        "print(before, count(), mine.alive)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after, kept = out.stdout.split()[:3]
    assert int(before) > 0 and int(after) == 0 and kept == "True"


def test_the_preloaded_process_parses_a_trial_s_config_once_importing_no_new_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enhtrain.cli import warm_up_parsing
    from enhtrain.plugins.manager import get_registry
    from enhtrain.sweeps.forkserver import _PRELOAD, _RUN_MODULES, _preload, _warm_parse, _warm_up

    assert _preload((*_PRELOAD, *_RUN_MODULES, "enhtrain.models", "enhtrain.data")) == []  # as the server does
    _warm_up()
    get_registry()
    package = f"freshpkg_{os.getpid()}"
    (tmp_path / f"{package}.py").write_text(
        "from lightning.pytorch import Callback\n\nclass Quiet(Callback):\n    pass\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_tiny_config(tmp_path / "c.yaml", {"trainer": {"callbacks": [{"class_path": f"{package}.Quiet"}]}})
    argv = ["fit", "--config", config.name]
    assert _warm_parse(argv)[0] is False  # the callback's package is left to the trials
    assert package not in sys.modules
    # Once the server has learned what a trial imported (the callback's package, what the parser imports for it),
    # the parse goes through.
    warm_up_parsing(argv)
    assert package in sys.modules
    assert _warm_parse(argv)[0] is True
    assert not (tmp_path / "runs").exists()  # parsed only: no run directory
    assert _warm_parse(["fit", "--config", "missing.yaml"])[0] is False  # refused: left to the trials' message
