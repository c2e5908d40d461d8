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
