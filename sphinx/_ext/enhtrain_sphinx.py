"""The Sphinx extension of the enhtrain documentation.

- stages the Markdown pages and the API pages before Sphinx reads its sources (see :mod:`stage`);
- warns about every public object without a docstring, so that ``sphinx-build -W`` fails on one
  (see :mod:`docstring_check`);
- shows a private base class (``_Strict``) as the public classes it derives from;
- keeps the docstrings of constants and properties as written: Google style would read a first line such as
  ``config.yaml: the composed config`` as a type followed by a description.
"""

from __future__ import annotations

from typing import Any

from docstring_check import missing_docstrings
from sphinx.util import logging
from stage import stage

logger = logging.getLogger(__name__)

_PLAIN_KINDS = ("attribute", "data", "property")
_original: dict[str, list[str]] = {}


def check_docstrings(app: Any) -> None:
    """Warn about every public object without a docstring."""
    for missing in missing_docstrings():
        logger.warning("%s", missing, type="enhtrain", subtype="docstring")


def _stash(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what in _PLAIN_KINDS:
        _original[name] = list(lines)


def _restore(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    original = _original.pop(name, None)
    if original is not None and any(line.startswith(":type:") for line in lines):
        lines[:] = original


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    expanded: list[type] = []
    for base in bases:
        while base.__name__.startswith("_") and base.__bases__:
            base = base.__bases__[0]
        if base not in expanded:
            expanded.append(base)
    bases[:] = expanded


def setup(app: Any) -> dict[str, Any]:
    """Connect the extension's handlers."""
    app.connect("config-inited", stage)
    app.connect("builder-inited", check_docstrings)
    app.connect("autodoc-process-docstring", _stash, priority=100)
    app.connect("autodoc-process-docstring", _restore, priority=900)
    app.connect("autodoc-process-bases", _public_bases)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
