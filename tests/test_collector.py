"""The garbage collector is paused while a command starts and runs again while it trains (enhtrain._collector)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enhtrain._collector import paused_while_starting, resume
from enhtrain.testing import write_tiny_config

RECORDER = """
import gc, json
from lightning.pytorch import Callback


class Record(Callback):
    def on_train_start(self, trainer, pl_module):
        with open("collector.json", "w") as out:
            json.dump({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}, out)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "recorder.py").write_text(RECORDER, encoding="utf-8")
    write_tiny_config(tmp_path / "tiny.yaml", {"trainer": {"callbacks": [{"class_path": "recorder.Record"}]}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


def test_paused_for_the_start_and_resumed_once() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with paused_while_starting(whole_process=False):
        assert not gc.isenabled()
        with paused_while_starting(whole_process=False):  # a command run by a command: the outer one decides
            assert not gc.isenabled()
        assert not gc.isenabled()
        resume()
        assert gc.isenabled()
        gc.disable()  # the caller's own choice after the start is left alone
    assert not gc.isenabled()
    gc.enable()
    assert gc.get_freeze_count() == frozen  # not the whole process: nothing frozen


def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        with paused_while_starting(whole_process=True):
            resume()
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_command_s_own_process_freezes_what_its_start_created() -> None:
    code = ("import gc\nfrom enhtrain._collector import paused_while_starting, resume\n"
            "with paused_while_starting(whole_process=True):\n"
            "    import torch\n"
            "    print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
            "    resume()\n"
            "    print(gc.isenabled(), gc.get_freeze_count() > 10000)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True"]


def test_training_runs_with_the_collector_on_in_process(project: Path) -> None:
    from enhtrain.commands import main

    frozen = gc.get_freeze_count()
    assert main(["fit", "--config", "tiny.yaml"]) == 0
    recorded = json.loads((project / "collector.json").read_text(encoding="utf-8"))
    assert recorded["enabled"] is True
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # a caller's process is not frozen


def test_python_m_enhtrain_trains_with_the_collector_on_and_its_start_frozen(project: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "enhtrain", "fit", "--config", "tiny.yaml"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    recorded = json.loads((project / "collector.json").read_text(encoding="utf-8"))
    assert recorded["enabled"] is True and recorded["frozen"] > 10000
