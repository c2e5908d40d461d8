"""Pytest fixtures for plugin authors (a ``pytest11`` plugin, active wherever enhtrain is installed).

Each test that uses :func:`enhtrain_plugin`, :func:`enhtrain_plugin_manager` or :func:`enhtrain_plugins` gets a
plugin manager of its own, with the built-in plugins and no installed plugin unless it asks for them, so it
passes whether or not the plugin's distribution is installed; the process's manager is back after the test.

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

    def test_installed_plugins_load(enhtrain_plugins, monkeypatch):
        enhtrain_plugins(autoload=True)  # entry points load, as the environment variables allow
        monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", "my-plugin")  # takes effect at once
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

__all__ = [
    "CliResult",
    "enhtrain_cli",
    "enhtrain_plugin",
    "enhtrain_plugin_manager",
    "enhtrain_plugins",
    "isolated_plugins",
    "temporary_plugins",
    "tiny_config",
    "write_tiny_config",
]


def tiny_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A training config that runs in about a second on a CPU, with ``overrides`` merged into it.

    Two training batches and one validation batch of scikit-learn's digits through an 8-unit
    :class:`~enhtrain.models.MLPClassifier`, on the CPU, logging every step, without sanity check or model
    summary. ``overrides`` is merged key by key into mappings (a ``None`` value is kept as ``null``, which
    switches a named logger or callback on with its defaults); any other value replaces the default.

    Args:
        overrides: Sections and keys to change or add, e.g. ``{"trainer": {"max_epochs": 2}, "experiment":
            {"name": "mine", "callbacks": {"my_callback": {}}}}``.

    Returns:
        A new config dictionary, ready for :func:`~enhtrain.documents.dump_yaml`.

    Example::

        >>> config = tiny_config({"trainer": {"max_epochs": 2}, "experiment": {"name": "demo"}})
        >>> config["trainer"]["max_epochs"], config["trainer"]["limit_train_batches"], config["experiment"]
        (2, 2, {'name': 'demo'})

    """
    base: dict[str, Any] = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "num_sanity_val_steps": 0,
            "accelerator": "cpu",
            "devices": 1,
            "log_every_n_steps": 1,
            "enable_model_summary": False,
        },
        "model": {"class_path": "enhtrain.models.MLPClassifier", "init_args": {"hidden_dims": [8]}},
        "data": {"class_path": "enhtrain.data.DatasetDataModule", "init_args": {"dataset": "digits", "batch_size": 32}},
    }
    return _merged(base, overrides or {})


def write_tiny_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write :func:`tiny_config` with ``overrides`` merged into it as a YAML file.

    Args:
        path: The file to write.
        overrides: As for :func:`tiny_config`.

    Returns:
        The path of the file.

    Example::

        write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "demo", "checkpoint": None}})
        result = enhtrain_cli("fit", "--config", "tiny.yaml")

    """
    from enhtrain._io import atomic_write_text
    from enhtrain.documents import dump_yaml

    path = Path(path)
    atomic_write_text(path, dump_yaml(tiny_config(overrides)))
    return path


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


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


@contextlib.contextmanager
def temporary_plugins() -> Iterator[Any]:
    """Yield the process's enhtrain ``pluggy.PluginManager``; plugins registered on it in the block are removed after.

    Example::

        with temporary_plugins() as manager:
            manager.register(MyPlugin(), name="my_plugin")
            assert "my_callback" in plugins.get_registry().callbacks.names()
        assert "my_callback" not in plugins.get_registry().callbacks.names()

    """
    from enhtrain import plugins

    manager = plugins.get_plugin_manager()
    before = set(manager.get_plugins())
    try:
        yield manager
    finally:
        for plugin in set(manager.get_plugins()) - before:
            manager.unregister(plugin)


@contextlib.contextmanager
def isolated_plugins(autoload: bool = False) -> Iterator[Any]:
    """Use a plugin manager of its own inside the block; the process's manager is back after it.

    The manager holds the built-in plugins and, with ``autoload``, the installed plugins that the
    ``ENHTRAIN_*PLUGIN*`` variables allow. It follows changes of those variables made inside the block (by
    ``monkeypatch.setenv``, say), keeping the plugins registered on it directly. A plugin module that it already
    loaded from its entry point can be registered again under another name with
    :func:`enhtrain.plugins.register_plugin` (the :func:`enhtrain_plugin` fixture does).

    Args:
        autoload: Whether installed plugins load from their entry points.

    Yields:
        The new ``pluggy.PluginManager`` (:func:`enhtrain.plugins.get_plugin_manager` returns the current one,
        also after a variable changed).

    Example::

        with isolated_plugins() as manager:
            manager.register(MyPlugin(), name="my_plugin")
            assert "my_callback" in plugins.get_registry().callbacks.names()
        assert "my_plugin" not in [name for name, _ in plugins.get_plugin_manager().list_name_plugin()]

    """
    from enhtrain import plugins

    with plugins.isolated(autoload=autoload) as manager:
        yield manager


@pytest.fixture
def enhtrain_plugins() -> Iterator[Callable[..., Any]]:
    """Give the test a plugin manager of its own, with or without the installed plugins.

    Returns:
        A function ``isolate(autoload=False) -> pluggy.PluginManager``: each call starts a new manager for the
        rest of the test (:func:`isolated_plugins`); the process's manager is back after the test.
    """
    with contextlib.ExitStack() as stack:

        def isolate(autoload: bool = False) -> Any:
            return stack.enter_context(isolated_plugins(autoload=autoload))

        yield isolate


@pytest.fixture
def enhtrain_plugin_manager(enhtrain_plugins: Callable[..., Any]) -> Any:
    """The test's own ``pluggy.PluginManager``: built-in plugins only, forgotten after the test.

    Call ``enhtrain_plugins(autoload=True)`` for a manager that also loads the installed plugins.
    """
    return enhtrain_plugins(autoload=False)


@pytest.fixture
def enhtrain_plugin(enhtrain_plugin_manager: Any) -> Callable[..., str]:
    """Register a plugin object (a module, class instance or namespace with hook functions) for one test.

    It registers on the test's own plugin manager (:func:`enhtrain_plugin_manager`, or the one the last
    ``enhtrain_plugins(...)`` call made), so the same test passes with the plugin's distribution installed or
    not. A module already loaded from its entry point is registered again under the new name.

    Returns:
        A function ``register(obj, name=None) -> name``.
    """
    from enhtrain import plugins

    def register(obj: Any, name: str | None = None) -> str:
        return plugins.register_plugin(obj, name=name)

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
