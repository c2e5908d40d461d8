"""Lightning's private API that enhtrain relies on is still there, with the parameters enhtrain passes.

:data:`enhtrain._lightning_compat.PRIVATE_API` lists every private method, attribute, function and constant
of Lightning that enhtrain overrides, calls or reads. A Lightning release may change any of them without
notice; these tests name the one that changed and the enhtrain code to fix.
"""

from __future__ import annotations

import sys
import types
from importlib.metadata import version

import pytest
from packaging.specifiers import SpecifierSet

from enhtrain._lightning_compat import PRIVATE_API, TESTED_LIGHTNING, PrivateName, check_private_api


def test_the_private_api_enhtrain_relies_on_is_unchanged() -> None:
    problems = check_private_api()
    assert problems == [], (
        "Lightning's private API changed; fix the enhtrain code named in each line, then update "
        "enhtrain/_lightning_compat.py:\n" + "\n".join(problems)
    )


def test_installed_lightning_is_a_tested_version() -> None:
    installed = version("lightning")
    assert installed in SpecifierSet(TESTED_LIGHTNING), (
        f"Lightning {installed} is outside TESTED_LIGHTNING ({TESTED_LIGHTNING}): run the test suite with it, "
        "then widen TESTED_LIGHTNING in enhtrain/_lightning_compat.py"
    )


def test_the_table_names_the_overrides_of_enhtrain() -> None:
    names = {(entry.owner, entry.name) for entry in PRIVATE_API}
    assert {
        ("lightning.pytorch.cli:LightningCLI", "_parse_ckpt_path"),
        ("lightning.pytorch.cli:LightningCLI", "_run_subcommand"),
        ("lightning.pytorch.cli:LightningCLI", "_add_arguments"),
        ("lightning.pytorch.callbacks.model_checkpoint:ModelCheckpoint", "_save_checkpoint"),
        ("lightning.pytorch.callbacks.model_checkpoint:ModelCheckpoint", "_remove_checkpoint"),
        ("lightning.pytorch.callbacks.model_checkpoint:ModelCheckpoint", "_update_best_and_save"),
        ("lightning.pytorch.callbacks.model_checkpoint:ModelCheckpoint", "_last_global_step_saved"),
    } <= names
    assert all("enhtrain." in entry.used_by for entry in PRIVATE_API)
    assert all(entry.name.startswith("_") for entry in PRIVATE_API)


def test_every_private_override_of_enhanced_cli_is_in_the_table() -> None:
    from lightning.pytorch.cli import LightningCLI

    from enhtrain.cli import EnhancedCLI

    overridden = {
        name for name in vars(EnhancedCLI)
        if name.startswith("_") and not name.startswith("__") and hasattr(LightningCLI, name)
    }
    listed = {entry.name for entry in PRIVATE_API if entry.owner == "lightning.pytorch.cli:LightningCLI"}
    assert overridden and overridden <= listed, overridden - listed


# --- the checker finds each kind of change ----------------------------------------------------------------


class _Base:
    def __init__(self) -> None:
        self._step_saved = 0


class _FakeCheckpoint(_Base):
    def _save(self, trainer: object, filepath: str) -> None:
        pass

    @staticmethod
    def _static(trainer: object) -> None:
        pass

    @property
    def _prop(self) -> int:
        return 0


def _fake_function(params: dict[str, object]) -> dict[str, object]:
    return params


@pytest.fixture
def fake_lightning(monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``fake_lightning`` holding a class, a function and a constant to check."""
    module = types.ModuleType("fake_lightning")
    module.Checkpoint = _FakeCheckpoint  # type: ignore[attr-defined]
    module.convert = _fake_function  # type: ignore[attr-defined]
    module._AVAILABLE = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_lightning", module)
    return "fake_lightning"


def test_the_checker_accepts_what_is_there(fake_lightning: str) -> None:
    table = [
        PrivateName(f"{fake_lightning}:Checkpoint", "_save", "method", ("self", "trainer", "filepath"), "enhtrain.x"),
        PrivateName(f"{fake_lightning}:Checkpoint", "_step_saved", "attribute", used_by="enhtrain.x"),
        PrivateName(fake_lightning, "convert", "function", ("params",), "enhtrain.x"),
        PrivateName(fake_lightning, "_AVAILABLE", "constant", used_by="enhtrain.x"),
    ]
    assert check_private_api(table) == []


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            PrivateName("fake_lightning:Checkpoint", "_gone", "method", ("self",), "enhtrain.cli.EnhancedCLI._gone"),
            "fake_lightning.Checkpoint._gone: missing; enhtrain.cli.EnhancedCLI._gone relies on it",
        ),
        (
            PrivateName("fake_lightning:Checkpoint", "_save", "method", ("self", "trainer", "path"), "enhtrain.y"),
            "fake_lightning.Checkpoint._save: parameters changed: (self, trainer, filepath), expected "
            "(self, trainer, path); enhtrain.y relies on it",
        ),
        (
            PrivateName("fake_lightning:Checkpoint", "_static", "method", ("trainer",), "enhtrain.y"),
            "fake_lightning.Checkpoint._static: no longer a method (it is a staticmethod); enhtrain.y relies on it",
        ),
        (
            PrivateName("fake_lightning:Checkpoint", "_prop", "method", ("self",), "enhtrain.y"),
            "fake_lightning.Checkpoint._prop: no longer a method (it is a property); enhtrain.y relies on it",
        ),
        (
            PrivateName("fake_lightning:Checkpoint", "_step", "attribute", used_by="enhtrain.y"),
            "fake_lightning.Checkpoint._step: no longer set on instances (no self._step = ...); enhtrain.y relies "
            "on it",
        ),
        (
            PrivateName("fake_lightning", "convert", "function", ("params", "prefix"), "enhtrain.y"),
            "fake_lightning.convert: parameters changed: (params), expected (params, prefix); enhtrain.y relies "
            "on it",
        ),
        (
            PrivateName("fake_lightning", "_MISSING", "constant", used_by="enhtrain.y"),
            "fake_lightning._MISSING: missing; enhtrain.y relies on it",
        ),
        (
            PrivateName("fake_lightning:Gone", "_save", "method", ("self",), "enhtrain.y"),
            "fake_lightning.Gone._save: cannot import fake_lightning:Gone (AttributeError: module 'fake_lightning' "
            "has no attribute 'Gone'); enhtrain.y relies on it",
        ),
    ],
    ids=["missing", "signature", "staticmethod", "property", "attribute", "function", "constant", "owner"],
)
def test_the_checker_reports_each_change(fake_lightning: str, entry: PrivateName, expected: str) -> None:
    assert check_private_api([entry]) == [expected]


def test_the_checker_reports_every_problem_and_raises_nothing(fake_lightning: str) -> None:
    table = [
        PrivateName("no_such_lightning.module:Class", "_x", "method", ("self",), "enhtrain.a"),
        PrivateName(f"{fake_lightning}:Checkpoint", "_save", "method", ("self", "trainer", "filepath"), "enhtrain.b"),
        PrivateName(f"{fake_lightning}:Checkpoint", "_load", "method", ("self",), "enhtrain.c"),
    ]
    problems = check_private_api(table)
    assert [line.split(":", 1)[0] for line in problems] == [
        "no_such_lightning.module.Class._x",
        "fake_lightning.Checkpoint._load",
    ]
    assert "ModuleNotFoundError" in problems[0] and problems[0].endswith("enhtrain.a relies on it")
