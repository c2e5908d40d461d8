"""Find public objects of ``enhtrain`` without a docstring, by reading the source (nothing is imported).

Public means: a module with no part of its dotted name starting with ``_``; in it, every name of its
``__all__`` (or, without one, every top-level class and function whose name does not start with ``_``); in a
public class, every method and property whose name does not start with ``_``. A method decorated with
``@override`` is documented by the method it overrides. A constant in ``__all__`` is documented by a string
literal right after its assignment. A name that a module imports is checked where it is defined, and so are the
names an ``__all__`` takes from another module's (``[*other.__all__]``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "enhtrain"


@dataclass(frozen=True)
class Missing:
    """A public object without a docstring.

    Attributes:
        path: The source file.
        line: The line of its definition.
        name: Its dotted name.
    """

    path: Path
    line: int
    name: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name} has no docstring"


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Return every public module's dotted name and file.

    Args:
        src: The package directory.
    """
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            out[".".join(parts)] = path
    return out


def _all_names(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            elements = getattr(node.value, "elts", None)
            if elements is None:
                return None
            return [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return None


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements at module level, the bodies of ``if``/``try`` blocks included."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            out += _top_level(node.body) + _top_level(node.orelse)
    return out


def _is_override(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        name = decorator.attr if isinstance(decorator, ast.Attribute) else getattr(decorator, "id", "")
        if name == "override":
            return True
    return False


def _check_class(node: ast.ClassDef, prefix: str, path: Path, out: list[Missing]) -> None:
    name = f"{prefix}.{node.name}"
    if ast.get_docstring(node) is None:
        out.append(Missing(path, node.lineno, name))
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if item.name.startswith("_") or _is_override(item) or ast.get_docstring(item) is not None:
                continue
            if any(getattr(d, "attr", None) == "setter" for d in item.decorator_list):
                continue
            out.append(Missing(path, item.lineno, f"{name}.{item.name}"))
        elif isinstance(item, ast.ClassDef) and not item.name.startswith("_"):
            _check_class(item, name, path, out)


def _check_module(
    module: str, path: Path, files: dict[str, Path], out: list[Missing], seen: set[tuple[str, str]]
) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    if ast.get_docstring(tree) is None:
        out.append(Missing(path, 1, module))
    names = _all_names(tree)
    statements = _top_level(tree.body)
    definitions: dict[str, ast.stmt] = {}
    documented: set[str] = set()
    imported: dict[str, str] = {}
    for index, node in enumerate(statements):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            definitions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            following = statements[index + 1] if index + 1 < len(statements) else None
            has_doc = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            for target in targets:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
                    if has_doc:
                        documented.add(target.id)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
    if names is None:
        names = [
            n
            for n, d in definitions.items()
            if not n.startswith("_") and isinstance(d, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        ]
    for name in names:
        node = definitions.get(name)
        if isinstance(node, ast.ClassDef):
            _check_class(node, module, path, out)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if ast.get_docstring(node) is None:
                out.append(Missing(path, node.lineno, f"{module}.{name}"))
        elif node is not None:
            if name not in documented:
                out.append(Missing(path, node.lineno, f"{module}.{name}"))
        elif name in imported and imported[name] not in files and (imported[name], name) not in seen:
            # Re-exported from a private module: nowhere else would check it.
            seen.add((imported[name], name))
            home_path = _module_file(imported[name], path)
            if home_path is not None:
                _check_names_in(imported[name], home_path, [name], out)


def _module_file(module: str, importer: Path) -> Path | None:
    """The file of a module of the same package as ``importer``, if there is one."""
    root = next(p for p in importer.parents if not (p / "__init__.py").is_file())
    candidate = root.joinpath(*module.split("."))
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path
    return None


def _check_names_in(module: str, path: Path, names: list[str], out: list[Missing]) -> None:
    """Check names that a public module re-exports from a private one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _top_level(tree.body):
        if isinstance(node, ast.ClassDef) and node.name in names:
            _check_class(node, module, path, out)
        elif (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name in names
            and ast.get_docstring(node) is None
        ):
            out.append(Missing(path, node.lineno, f"{module}.{node.name}"))


def missing_docstrings(src: Path = SRC) -> list[Missing]:
    """Return every public object of the package at ``src`` that has no docstring.

    Args:
        src: The package directory.
    """
    files = module_files(src)
    out: list[Missing] = []
    seen: set[tuple[str, str]] = set()
    for module, path in files.items():
        _check_module(module, path, files, out, seen)
    return out
