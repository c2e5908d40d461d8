"""Pytest fixtures for plugin authors (a ``pytest11`` plugin, active wherever enhtrain is installed).

Example::

    from enhtrain import hookimpl

    class MyPlugin:
        @hookimpl
        def enhtrain_register_callbacks(self, registry):
            registry.register("my_pkg.callbacks:MyCallback", name="my_callback")

    def test_my_callback_trains(enhtrain_plugin, enhtrain_cli):
        enhtrain_plugin(MyPlugin())
        result = enhtrain_cli("fit", "--config", "my.yaml", "--experiment.callbacks.my_callback", "{}")
        assert result.exit_code == 0, result.stderr
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CliResult", "enhtrain_cli", "enhtrain_plugin", "enhtrain_plugin_manager"]


@dataclass
class CliResult:
    """What one ``enhtrain`` command did.

    Attributes:
        exit_code: The exit status.
        stdout: Everything printed to stdout.
        stderr: Everything printed to stderr.
        cwd: The directory it ran in.
    """

    exit_code: int
    stdout: str
    stderr: str
    cwd: Path

    def run_dirs(self, root: str = "runs") -> list[Path]:
        """Return every run directory (``<root>/<name>/<version>``) under the working directory."""
        base = self.cwd / root
        return sorted(p for p in base.glob("*/*") if p.is_dir()) if base.is_dir() else []


@pytest.fixture
def enhtrain_plugin_manager() -> Iterator[Any]:
    """The process's enhtrain ``pluggy.PluginManager``; plugins a test registers on it are removed after."""
    from enhtrain import plugins

    manager = plugins.get_plugin_manager()
    before = set(manager.get_plugins())
    yield manager
    for plugin in set(manager.get_plugins()) - before:
        manager.unregister(plugin)


@pytest.fixture
def enhtrain_plugin(enhtrain_plugin_manager: Any) -> Callable[..., str]:
    """Register a plugin object (a module, class instance or namespace with hook functions) for one test.

    Returns:
        A function ``register(obj, name=None) -> name``; every object it registered is unregistered after
        the test.
    """

    def register(obj: Any, name: str | None = None) -> str:
        registered = enhtrain_plugin_manager.register(obj, name=name)
        return str(registered)

    return register


@pytest.fixture
def enhtrain_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run ``enhtrain`` in-process inside ``tmp_path`` and capture its output.

    Returns:
        A function ``run(*args, cwd=None) -> CliResult``.
    """
    from enhtrain.commands import main

    monkeypatch.setenv("ENHTRAIN_PLAIN_PROGRESS", "1")
    monkeypatch.delenv("ENHTRAIN_RUN_DIR", raising=False)

    def run(*args: str, cwd: str | Path | None = None) -> CliResult:
        where = Path(cwd) if cwd is not None else tmp_path
        out, err = io.StringIO(), io.StringIO()
        previous = Path.cwd()
        os.chdir(where)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(list(args))
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            os.chdir(previous)
            os.environ.pop("ENHTRAIN_RUN_DIR", None)
        return CliResult(code, out.getvalue(), err.getvalue(), where)

    return run
