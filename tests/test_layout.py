"""The package's dependency rules (CONTRIBUTING.md, "Style"), read from the import statements of every module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "enhtrain"

# Modules that turn a constant of enhtrain's own (never a config's string) into an import: the lazy exports of
# two packages, the built-in plugins' module names, and the optional packages that loggers need. The
# reference data module imports its `dataset`, which the import gate has judged before the module is built.
IMPORT_MODULE_ALLOWED = {
    "security.py",
    "callbacks/__init__.py",
    "loggers/__init__.py",
    "loggers/_common.py",
    "plugins/manager.py",
    "data/_sources.py",
    "_lightning_compat.py",
}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield str(path.relative_to(SRC)), ast.parse(path.read_text(encoding="utf-8"))


def _imports(tree: ast.Module) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth (deferred imports included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MODULES = dict(_modules())


def _enhtrain_imports(rel: str) -> set[str]:
    return {name for name in _imports(MODULES[rel]) if name == "enhtrain" or name.startswith("enhtrain.")}


def test_the_layout_is_the_designed_one() -> None:
    for room in ("plugins/hookspecs.py", "plugins/manager.py", "plugins/registry.py", "plugins/builtin/__init__.py",
                 "run/directory.py", "run/lock.py", "run/session.py", "run/metadata.py", "run/resume.py",
                 "loggers/csv.py", "loggers/tensorboard.py", "loggers/wandb.py", "loggers/comet.py",
                 "security.py", "secrets.py", "callbacks/progress.py", "hookspecs.py", "cli.py", "testing.py"):
        assert room in MODULES, room
    assert not (SRC / "experiment").exists() and not (SRC / "default_plugins").exists()


@pytest.mark.parametrize("rel", sorted(r for r in MODULES if r.startswith(("models/", "data/"))))
def test_models_and_data_are_plain_lightning(rel: str) -> None:
    own = {name for name in _enhtrain_imports(rel) if not name.startswith(("enhtrain.models", "enhtrain.data"))}
    assert not own, f"{rel} imports {sorted(own)}"


# The commands that parse with Lightning sit above cli.py: training, and checking a config as training would.
_CLI_USERS = ("__init__.py", "commands/train.py", "commands/config/validate.py", "cli.py")


@pytest.mark.parametrize("rel", sorted(r for r in MODULES if r not in _CLI_USERS))
def test_nothing_below_cli_imports_it(rel: str) -> None:
    assert not {n for n in _enhtrain_imports(rel) if n == "enhtrain.cli" or n.startswith("enhtrain.cli.")}, rel


@pytest.mark.parametrize("rel", sorted(r for r in MODULES if r.startswith("plugins/")))
def test_plugins_never_import_the_components_they_list(rel: str) -> None:
    components = ("enhtrain.loggers", "enhtrain.callbacks", "enhtrain.profilers", "enhtrain.models", "enhtrain.data",
                  "enhtrain.checkpoints", "enhtrain.run", "enhtrain.cli")
    found = {n for n in _enhtrain_imports(rel) if n.startswith(components)}
    assert not found, f"{rel} imports {sorted(found)}"


@pytest.mark.parametrize("rel", sorted(r for r in MODULES if r.startswith("commands/") and r != "commands/__init__.py"))
def test_commands_do_not_import_each_other(rel: str) -> None:
    # A command is a module of commands/, or a package of them whose modules may import one another.
    this = "enhtrain.commands." + Path(rel).parts[1].removesuffix(".py")
    others = {
        n for n in _enhtrain_imports(rel)
        if n.startswith("enhtrain.commands.") and not n.startswith((this, "enhtrain.commands._shared"))
    }
    assert not others, f"{rel} imports {sorted(others)}"


def test_only_the_import_gate_imports_strings() -> None:
    users = set()
    for rel, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = getattr(func, "attr", getattr(func, "id", ""))
                if name in ("import_module", "__import__"):
                    users.add(rel)
    # The command dispatchers import their own subcommand modules by name.
    dispatchers = {"commands/__init__.py", "commands/config/__init__.py"}
    assert users <= IMPORT_MODULE_ALLOWED | dispatchers, sorted(users - IMPORT_MODULE_ALLOWED)


def test_the_hookspecs_alias_is_the_plugin_systems_module() -> None:
    import enhtrain.hookspecs as alias
    from enhtrain.plugins import hookspecs

    assert sorted(alias.__all__) == sorted(hookspecs.__all__)
    for name in hookspecs.__all__:
        assert getattr(alias, name) is getattr(hookspecs, name), name
    from enhtrain import hookimpl

    assert hookimpl is hookspecs.hookimpl


# --- no import cycles; the reader and the gates at the bottom; one reader, one writer ----------------------------


def _module_name(rel: str) -> str:
    parts = ["enhtrain", *Path(rel).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULE_NAMES = {_module_name(rel): rel for rel in MODULES}


def _owner(name: str) -> str | None:
    """The module of enhtrain that ``name`` (a module, or an object of one) lives in, if any."""
    while name and name not in MODULE_NAMES:
        name = name.rpartition(".")[0]
    return name or None


def _import_edges(rel: str) -> set[str]:
    """The modules of enhtrain that ``rel`` imports anywhere: at the top, in functions, under TYPE_CHECKING."""
    this = _module_name(rel)
    package = this if rel.endswith("__init__.py") else this.rpartition(".")[0]
    edges: set[str | None] = set()
    for node in ast.walk(MODULES[rel]):
        if isinstance(node, ast.Import):
            edges.update(_owner(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from enhtrain.plugins import hookspecs` imports the module hookspecs; `from enhtrain.x import f`, x.
            edges.update(_owner(f"{module}.{alias.name}") for alias in node.names)
    return {edge for edge in edges if edge is not None and edge != this}


IMPORT_GRAPH = {name: _import_edges(rel) for name, rel in MODULE_NAMES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for edge in sorted(graph[node]):
            if edge not in index:
                visit(edge)
                low[node] = min(low[node], low[edge])
            elif edge in stack:
                low[node] = min(low[node], index[edge])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_reports_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _import_edges("commands/config/__init__.py") >= {"enhtrain.errors"}


def test_no_import_cycles() -> None:
    # Deferred imports count: a function-level import that closes a circle still ties the layers together.
    report = [
        "; ".join(f"{name} -> {', '.join(sorted(IMPORT_GRAPH[name] & set(cycle)))}" for name in cycle)
        for cycle in _cycles(IMPORT_GRAPH)
    ]
    assert not report, "import cycles:\n" + "\n".join(report)


# The one reader, the gates and the one writer import nothing of enhtrain above them.
_BOTTOM = {"enhtrain.documents", "enhtrain.security", "enhtrain.errors", "enhtrain._io"}


@pytest.mark.parametrize("name", sorted(_BOTTOM))
def test_the_reader_and_the_gates_are_below_everything(name: str) -> None:
    assert name in IMPORT_GRAPH, name
    above = IMPORT_GRAPH[name] - _BOTTOM
    assert not above, f"{name} imports {sorted(above)}"


_YAML_READERS = {"safe_load", "load", "compose", "full_load", "unsafe_load", "load_all", "safe_load_all",
                 "compose_all", "full_load_all", "unsafe_load_all"}
_PARSERS = {"yaml": _YAML_READERS, "json": {"load", "loads"}}


def _parser_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls of yaml's and json's parsers: ``yaml.safe_load(...)``, ``y.load(...)`` after ``import yaml as y``,
    ``loads(...)`` after ``from json import loads``."""
    modules: dict[str, str] = {}
    functions: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({alias.asname or alias.name: alias.name for alias in node.names if alias.name in _PARSERS})
        elif isinstance(node, ast.ImportFrom) and node.module in _PARSERS:
            functions.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names
                              if alias.name in _PARSERS[node.module]})
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
            module = modules[func.value.id]
            if func.attr in _PARSERS[module]:
                calls.append((node.lineno, f"{module}.{func.attr}"))
        elif isinstance(func, ast.Name) and func.id in functions:
            calls.append((node.lineno, functions[func.id]))
    return calls


def test_parser_call_finder() -> None:
    tree = ast.parse("import yaml as y\nfrom json import loads as l\ny.safe_load(t)\nl(t)\nyaml.dump(d)\n")
    assert _parser_calls(tree) == [(3, "yaml.safe_load"), (4, "json.loads")]


def test_one_reader_parses_every_document() -> None:
    # documents.py bounds size, nodes, depth, digits and tags; a parser called anywhere else bounds nothing.
    found = sorted(f"{rel}:{line}: {call}" for rel, tree in MODULES.items() if rel != "documents.py"
                   for line, call in _parser_calls(tree))
    assert not found, "parse through enhtrain.documents instead:\n" + "\n".join(found)


_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


def _writes_mode(mode: ast.expr | None) -> bool:
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return bool(set(mode.value) & set("wax+"))
    return True  # a mode computed at run time may write


def _write_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls that write, rename or link a file: ``open``/``Path.open`` with a writing mode, ``os.open`` with
    writing flags, ``os.replace``/``os.rename``/``os.link``/``os.symlink``, ``Path.write_text``/``write_bytes``/
    ``rename``, ``shutil.move``/``shutil.copy*``."""
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, keywords = node.func, {k.arg: k.value for k in node.keywords}
        if isinstance(func, ast.Name) and func.id == "open":
            if _writes_mode(node.args[1] if len(node.args) > 1 else keywords.get("mode")):
                calls.append((node.lineno, "open"))
            continue
        if not isinstance(func, ast.Attribute):
            continue
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if owner == "os" and func.attr == "open":
            flags = node.args[1] if len(node.args) > 1 else keywords.get("flags")
            if flags is not None and {n.attr for n in ast.walk(flags) if isinstance(n, ast.Attribute)} & _WRITE_FLAGS:
                calls.append((node.lineno, "os.open"))
        elif owner == "os" and func.attr in ("replace", "rename", "link", "symlink"):
            calls.append((node.lineno, f"os.{func.attr}"))
        elif owner == "shutil" and (func.attr == "move" or func.attr.startswith("copy")):
            calls.append((node.lineno, f"shutil.{func.attr}"))
        elif func.attr == "open" and owner not in ("os", "tarfile", "zipfile", "io"):
            if _writes_mode(node.args[0] if node.args else keywords.get("mode")):
                calls.append((node.lineno, "Path.open"))
        elif func.attr in ("write_text", "write_bytes", "rename"):
            calls.append((node.lineno, f"Path.{func.attr}"))
    return calls


# Writes that are another kind than a run file's atomic replace, each with why it cannot be one.
WRITERS_ALLOWED = {
    ("_io.py", "os.replace"): "the one writer: temp file, fsync, rename over the target",
    ("checkpoints/atomic_io.py", "open"): "torch.save streams a checkpoint into a temp file while hashing it",
    ("checkpoints/atomic_io.py", "os.replace"): "that temp checkpoint renamed over its target, as _io does",
    ("run/lock.py", "os.open"): "the lock file is flock()ed in place: replacing it would break the lock",
    ("commands/__init__.py", "os.open"): "stdout pointed at /dev/null after a closed pipe; no file is written",
    ("sweeps/runner.py", "open"): "a trial's log file streams the child process's output as it runs",
    ("sweeps/study.py", "os.link"): "a new SQLite store built aside and linked into place, never over another",
    ("plugins/scaffold.py", "os.rename"): "a new plugin folder built aside and renamed into place, never over files",
    ("checkpoints/sharded.py", "os.replace"): "a sharded checkpoint's directory, written by every rank, renamed into "
    "place by rank 0 (or renamed away to be deleted, or a leftover put back)",
}


def test_write_call_finder() -> None:
    tree = ast.parse("open(p, 'wb')\nopen(p)\np.open('a')\nos.open(p, os.O_RDONLY)\nos.open(p, os.O_WRONLY)\n"
                     "os.replace(a, b)\np.write_text(t)\nshutil.move(a, b)\ns.replace('a', 'b')\n")
    assert _write_calls(tree) == [(1, "open"), (3, "Path.open"), (5, "os.open"), (6, "os.replace"),
                                  (7, "Path.write_text"), (8, "shutil.move")]


def test_one_writer_writes_every_file() -> None:
    found = sorted(f"{rel}:{line}: {call}" for rel, tree in MODULES.items() for line, call in _write_calls(tree)
                   if (rel, call) not in WRITERS_ALLOWED)
    assert not found, "write through enhtrain._io (atomic_write_*, atomic_open) instead:\n" + "\n".join(found)
    used = {(rel, call) for rel, tree in MODULES.items() for _, call in _write_calls(tree)}
    assert set(WRITERS_ALLOWED) <= used, f"stale allowed writers: {sorted(set(WRITERS_ALLOWED) - used)}"


# --- config/ stays below run/ and knows no command line ---------------------------------------------------------

_ABOVE_CONFIG = ("enhtrain.run", "enhtrain.cli", "enhtrain.commands")


def _imported_modules(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import at any depth; ``from enhtrain import name`` is ``enhtrain.name`` when
    ``name`` is a module of the package, else the package root ``enhtrain`` itself."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "enhtrain":
                yield node.lineno, node.module
                continue
            for alias in node.names:
                submodule = (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").is_file()
                yield node.lineno, f"enhtrain.{alias.name}" if submodule else "enhtrain"


def _upward(tree: ast.Module) -> list[str]:
    return [f"{line}: {name}" for line, name in _imported_modules(tree)
            if name == "enhtrain" or name.startswith(tuple(f"{m}." for m in _ABOVE_CONFIG)) or name in _ABOVE_CONFIG]


def test_upward_import_finder() -> None:
    tree = ast.parse("import enhtrain.run.lock\nfrom enhtrain import __version__\nfrom enhtrain import plugins\n"
                     "def f():\n    from enhtrain.cli import EnhancedCLI\n    from enhtrain.commands import main\n"
                     "    from enhtrain.runtime_x import y\n    import enhtrain\n")
    assert _upward(tree) == ["1: enhtrain.run.lock", "2: enhtrain", "5: enhtrain.cli", "6: enhtrain.commands",
                             "8: enhtrain"]


@pytest.mark.parametrize("rel", sorted(r for r in MODULES if r.startswith("config/")))
def test_config_never_imports_run_the_command_line_or_the_package_root(rel: str) -> None:
    # Function-level and TYPE_CHECKING imports count: each is an arrow from config/ up to a layer above it.
    found = _upward(MODULES[rel])
    assert not found, f"{rel} imports from above config/: {found}"
