"""The sweep cases of the bad-input corpus, ``tests/bad_inputs/sweeps/``: specs and sweep commands refused.

Every case runs in-process through :func:`enhtrain.commands.main` and must end with exit status 2, exactly one
``enhtrain: error:`` line holding each expected fragment, no traceback, and no file created or changed: no
``study.db``, no trial, nothing under ``runs/``. Refusals come before any trial, so each case takes
milliseconds.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from enhtrain.commands import main
from refusals import assert_refused
from test_bad_inputs import read_case, snapshot

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
SWEEP_CASES = sorted((CORPUS / "sweeps").glob("[0-9]*_*.yaml"), key=lambda p: int(p.name.split("_", 1)[0]))


def test_sweep_corpus_is_complete() -> None:
    assert len(SWEEP_CASES) >= 20
    numbers = [p.name.split("_", 1)[0] for p in SWEEP_CASES]
    assert len(set(numbers)) == len(SWEEP_CASES), numbers
    for path in SWEEP_CASES:
        case = read_case(path)
        assert case.expect and all(case.expect), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", SWEEP_CASES, ids=lambda p: p.stem)
def test_broken_sweep(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    case = read_case(path)
    shutil.copy(CORPUS / "base.yaml", tmp_path / "base.yaml")
    (tmp_path / "sweeps").mkdir()
    shutil.copy(path, tmp_path / "sweeps" / path.name)
    monkeypatch.chdir(tmp_path)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    given = f"sweeps/{path.name}"
    if "command" in case.fields:
        args = shlex.split(case.fields["command"])
    else:
        args = ["sweep", "run", "--config", "base.yaml", "--sweep", given, *case.flags]
    before = snapshot(tmp_path)

    code = main(args)

    out, err = capsys.readouterr()
    assert_refused(code, err, *(fragment.replace("{file}", given) for fragment in case.expect))
    assert snapshot(tmp_path) == before, "a refused sweep created or changed a file"
    assert not (tmp_path / "runs").exists()
    if "secret" in case.fields:
        assert case.fields["secret"] not in out + err
