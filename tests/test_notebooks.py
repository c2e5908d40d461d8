"""The tutorial notebooks run from top to bottom, offline, on a CPU, each in a scratch folder of its own.

They are committed without outputs, so that a diff shows only what changed in the tutorial itself.

A notebook is run as Jupyter runs it, with its kernel started in ``notebooks/``. Its first code cell moves into
a scratch folder of its own (``os.chdir(tempfile.mkdtemp(...))``), so that the files and run directories it
makes never land in the repository, nor meet those of another notebook: the test checks that the repository,
ignored files included, is as it was after each notebook.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.timeout(600)


def test_there_are_at_least_three_tutorials() -> None:
    assert len(NOTEBOOKS) >= 3, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {index} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_first_moves_into_a_scratch_folder(path: Path) -> None:
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    first = cells[0].source
    assert "os.chdir(tempfile.mkdtemp(" in first, f"{path.name}: its first code cell must move into a scratch folder"


def repository_state() -> dict[str, object]:
    """What a notebook could change in the repository: every path under ``notebooks/`` (ignored ones included),
    the entries of the repository's root, and ``git status`` (when the repository is a git checkout)."""
    notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").rglob("*"))
    root = sorted(p.name for p in ROOT.iterdir())
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return {"notebooks/": notebooks, "root": root, "git status": status.stdout if status.returncode == 0 else None}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_leaves_the_repository_clean(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel inherits this environment: one thread suits the tiny models and a busy machine, and its
    # scratch folder goes under this test's own temporary directory.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    before = repository_state()
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} draws no plot"
    assert repository_state() == before, f"{path.name} changed the repository"
    # It worked in a scratch folder of its own, and removed it at the end.
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"working in {tmp_path}{os.sep}enhtrain-" in printed, f"{path.name} did not work in a scratch folder"
    assert f"removed {tmp_path}{os.sep}enhtrain-" in printed
    assert not list(tmp_path.glob("enhtrain-*")), f"{path.name} left its scratch folder"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_by_removing_its_scratch_folder(path: Path) -> None:
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "shutil.rmtree(scratch)" in cells[-1].source, f"{path.name}: its last code cell must remove its scratch"
