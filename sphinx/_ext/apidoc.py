"""The API reference: one page per public module of ``enhtrain``, written before Sphinx reads its sources.

A module is public when no part of its dotted name starts with ``_``. Its public names are its ``__all__``
or, without one, the classes and functions it defines whose names do not start with ``_``. A name defined
in another public module (a package re-exporting its submodules' classes) is documented there and linked
from here, so that every object has exactly one description.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from docstring_check import SRC, module_files

_SIMPLE_VALUES = (str, int, float, bool)


def public_modules(src: Path = SRC) -> list[str]:
    """Return the dotted names of the public modules under ``src``, sorted.

    Args:
        src: The package directory.
    """
    return sorted(module_files(src))


def public_names(module: Any) -> list[str]:
    """Return a module's public names: its ``__all__``, or the classes and functions it defines.

    Args:
        module: The imported module.
    """
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return list(declared)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == module.__name__
    ]


def _home(module_name: str, obj: Any, public: set[str]) -> str:
    """The public module that documents ``obj``: where it is defined, or ``module_name``."""
    defined_in = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isfunction(obj) else None
    if defined_in and defined_in != module_name and defined_in in public:
        return defined_in
    return module_name


def _show_value(value: Any) -> bool:
    if isinstance(value, _SIMPLE_VALUES):
        return len(repr(value)) <= 80
    if isinstance(value, tuple) and all(isinstance(v, _SIMPLE_VALUES) for v in value):
        return len(repr(value)) <= 80
    return False


def module_page(module_name: str, public: set[str]) -> str:
    """Return the reStructuredText page of one module.

    Args:
        module_name: The module's dotted name.
        public: Every public module, to tell documented re-exports from local objects.
    """
    module = importlib.import_module(module_name)
    title = f"``{module_name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module_name}", "   :no-members:", ""]
    elsewhere: list[tuple[str, str, Any]] = []
    for name in public_names(module):
        obj = getattr(module, name)
        home = _home(module_name, obj, public)
        if home != module_name:
            elsewhere.append((name, home, obj))
            continue
        if inspect.isclass(obj):
            lines += [f".. autoclass:: {module_name}.{name}", "   :members:", "   :show-inheritance:", ""]
        elif inspect.isfunction(obj):
            lines += [f".. autofunction:: {module_name}.{name}", ""]
        else:
            lines += [f".. autodata:: {module_name}.{name}"]
            if not _show_value(obj):
                lines += ["   :no-value:"]
            lines += [""]
    if elsewhere:
        lines += [".. rubric:: Also importable from here", ""]
        for name, home, obj in elsewhere:
            role = "class" if inspect.isclass(obj) else "func"
            lines += [f"- :py:{role}:`{name} <{home}.{obj.__name__}>`, documented in :py:mod:`{home}`"]
        lines += [""]
    submodules = sorted(m for m in public if m.startswith(module_name + ".") and "." not in m[len(module_name) + 1 :])
    if submodules:
        lines += [".. rubric:: Modules", "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {m}" for m in submodules]
        lines += [""]
    return "\n".join(lines)


def api_pages(src: Path = SRC) -> dict[str, str]:
    """Return ``{relative path: text}`` of every API page, ``index.rst`` included.

    Args:
        src: The package directory.
    """
    modules = public_modules(src)
    public = set(modules)
    pages = {f"{name}.rst": module_page(name, public) for name in modules}
    top = [m for m in modules if "." not in m]
    index = [
        "API reference",
        "=============",
        "",
        "Every public module, class and function of enhtrain, generated from their docstrings. Modules and",
        "names that start with an underscore are internal and may change without notice.",
        "",
        ".. toctree::",
        "   :maxdepth: 2",
        "",
        *[f"   {m}" for m in top],
        "",
    ]
    pages["index.rst"] = "\n".join(index)
    return pages
