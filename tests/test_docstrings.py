"""Every public module, class, function, method and constant of enhtrain has a docstring.

Public means what the API reference documents: modules whose dotted name has no part starting with ``_``, the
names in their ``__all__`` (or their public classes and functions), and the public methods and properties of
those classes. The check reads the source; ``sphinx/_ext/docstring_check.py`` explains the rules, and the Sphinx
build reports the same findings as warnings.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load_checker() -> ModuleType:
    path = ROOT / "sphinx" / "_ext" / "docstring_check.py"
    spec = importlib.util.spec_from_file_location("enhtrain_docstring_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def test_public_modules_are_found() -> None:
    modules = checker.module_files()
    assert {"enhtrain", "enhtrain.cli", "enhtrain.plugins.registry", "enhtrain.callbacks.grad_norm"} <= set(modules)
    assert not [name for name in modules if any(part.startswith("_") for part in name.split("."))]


def test_every_public_object_has_a_docstring() -> None:
    missing = checker.missing_docstrings()
    assert not missing, "public objects without a docstring:\n" + "\n".join(str(m) for m in missing)


def test_the_check_finds_a_missing_docstring(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n\n__all__ = ["LIMIT", "Thing", "helper"]\n\nLIMIT = 3\n')
    (package / "mod.py").write_text(
        '"""A module."""\n\n\nclass Thing:\n    """A thing."""\n\n    def run(self):\n        pass\n\n'
        "    @override\n    def setup(self):\n        pass\n\n\ndef helper():\n    pass\n"
    )
    (package / "_private.py").write_text("def hidden():\n    pass\n")
    found = {m.name for m in checker.missing_docstrings(package)}
    assert found == {"pkg.LIMIT", "pkg.mod.Thing.run", "pkg.mod.helper"}
