"""Integers past the digit limit in ``config validate``, ``config explain`` and ``config migrate``: one line, exit 2.

Python refuses to convert an integer of more than 4300 digits to or from text with a ``ValueError``; each way
such a number reaches a config command (a flag, a variable, a file, ``schema_version``, a hexadecimal or octal
literal) must end in enhtrain's one-line refusal instead. ``fit`` is covered by the bad-input corpus.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from enhtrain.commands import main
from enhtrain.documents import MAX_INT_DIGITS
from refusals import assert_refused

BASE = Path(__file__).resolve().parent / "bad_inputs" / "base.yaml"
DIGITS = "9" * 5000
HEX = "0x" + "f" * 4000  # about 4800 decimal digits, with hardly a decimal digit written
OCTAL = "0o" + "7" * 6000  # text to PyYAML, a number to YAML 1.2 readers

# Each input: (file name, file text, flags, environment), and a fragment of the refusal.
INPUTS = {
    "flag": (None, None, ["--trainer.max_epochs", DIGITS], {}, "flag --trainer.max_epochs"),
    "flag_equals": (None, None, [f"--trainer.max_epochs={DIGITS}"], {}, "flag --trainer.max_epochs"),
    "variable": (None, None, [], {"ENHTRAIN_TRAINER__MAX_EPOCHS": DIGITS},
                 "environment variable ENHTRAIN_TRAINER__MAX_EPOCHS"),
    "file": ("big.yaml", f"trainer:\n  max_epochs: {DIGITS}\n", [], {}, "big.yaml:2"),
    "schema_version": ("big.yaml", f"schema_version: {DIGITS}\n", [], {}, "big.yaml:1"),
    "schema_version_hex": ("big.yaml", f"schema_version: {HEX}\n", [], {}, "big.yaml:1: an integer with 4800 digits"),
    "schema_version_octal": ("big.yaml", f"schema_version: {OCTAL}\n", [], {}, "schema_version"),
    "file_hex": ("big.yaml", f"seed_everything: {HEX}\n", [], {}, "big.yaml"),
}
# config migrate reads one file: no flags, no variables.
FILE_INPUTS = [name for name, spec in INPUTS.items() if spec[0] is not None]


# Lightning reads the launcher's rank as it is imported, which config validate does and explain does not.
INPUTS["rank_variable"] = (None, None, [], {"RANK": "1" * 5000}, "environment variable RANK")


def _cases() -> list[tuple[str, str]]:
    cases = [(command, name) for command in ("validate", "explain") for name in INPUTS if name != "rank_variable"]
    return [*cases, ("validate", "rank_variable")] + [("migrate", name) for name in FILE_INPUTS]


@pytest.mark.parametrize(("command", "name"), _cases(), ids=lambda v: v)
def test_a_huge_integer_is_refused_in_one_line(command: str, name: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    file_name, text, flags, env, fragment = INPUTS[name]
    monkeypatch.chdir(tmp_path)
    shutil.copy(BASE, tmp_path / "base.yaml")
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    if file_name is not None:
        (tmp_path / file_name).write_text(text, encoding="utf-8")
    if command == "migrate":
        args = ["config", "migrate", str(file_name), "-o", "out.yaml"]
    else:
        layers = ["--config", "base.yaml"] + (["--config", str(file_name)] if file_name else [])
        args = ["config", command, *layers, *flags]
    before = sorted(p.name for p in tmp_path.iterdir())

    code = main(args)
    out, err = capsys.readouterr()

    line = assert_refused(code, err, fragment)
    assert "digits" in line or "whole number" in line, line
    assert len(line) < 400, line  # the number itself is never echoed
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_limit_is_far_below_pythons() -> None:
    assert 20 <= MAX_INT_DIGITS < 4300
