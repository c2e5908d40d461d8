"""``enhtrain.testing``: a plugin manager of each test's own, with or without the installed plugins, that follows
the plugin variables and is gone after the test; registering a plugin module that was loaded from its entry
point; the test example of ``docs/plugins.md``, verbatim, with its plugin installed and not."""

from __future__ import annotations

import re
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from enhtrain import hookimpl, plugins
from enhtrain.plugins.registry import KindRegistry
from enhtrain.testing import isolated_plugins
from installing import installed, run_pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent


class TimerPlugin:
    """Registers Lightning's ``Timer`` as ``helper_timer``."""

    @hookimpl
    def enhtrain_register_callbacks(self, registry: KindRegistry) -> None:
        registry.register("lightning.pytorch.callbacks:Timer", name="helper_timer")


def names(manager: Any) -> set[str]:
    """The names of the plugins a manager holds."""
    return {name for name, plugin in manager.list_name_plugin() if plugin is not None}


def test_isolated_manager_without_autoload_holds_only_the_builtins_and_goes_away() -> None:
    process = plugins.get_plugin_manager()
    assert "example" in names(process)  # the example plugin is installed in the test environment

    with isolated_plugins() as manager:
        assert plugins.get_plugin_manager() is manager is not process
        assert names(manager) == set(plugins.BUILTIN_PLUGINS)
        manager.register(TimerPlugin(), name="helper")
        assert "helper_timer" in plugins.get_registry().callbacks.names()

    assert plugins.get_plugin_manager() is process
    assert "helper" not in names(process)
    assert "helper_timer" not in plugins.get_registry().callbacks.names()
    assert "epoch_timer" in plugins.get_registry().callbacks.names()


def test_isolated_manager_with_autoload_loads_the_installed_plugins() -> None:
    with isolated_plugins(autoload=True) as manager:
        assert "example" in names(manager)
        assert plugins.get_registry().callbacks.get("epoch_timer").plugin.distribution == "enhtrain-example"


def test_the_variables_take_effect_inside_a_test(enhtrain_plugins: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    enhtrain_plugins(autoload=True)
    plugins.get_plugin_manager().register(TimerPlugin(), name="helper")
    assert "example" in names(plugins.get_plugin_manager())

    monkeypatch.setenv("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "1")
    off = names(plugins.get_plugin_manager())
    monkeypatch.setenv("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "false")
    on_again = names(plugins.get_plugin_manager())
    monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", "Enhtrain_Example")
    blocked = names(plugins.get_plugin_manager())

    assert "example" not in off and "helper" in off
    assert "example" in on_again and "helper" in on_again
    assert "example" not in blocked and "helper" in blocked


def test_a_module_loaded_from_its_entry_point_registers_under_another_name(
    enhtrain_plugins: Any, enhtrain_plugin: Any
) -> None:
    import enhtrain_example.plugin as module

    enhtrain_plugins(autoload=True)
    assert plugins.get_plugin_manager().get_name(module) == "example"

    same = enhtrain_plugin(module)
    moved = enhtrain_plugin(module, name="example-direct")

    registry = plugins.get_registry()
    assert (same, moved) == ("example", "example-direct")
    assert "example" not in names(plugins.get_plugin_manager())
    entry = registry.callbacks.get("epoch_timer")
    assert (entry.plugin.name, entry.plugin.distribution) == ("example-direct", "enhtrain-example")
    assert registry.callbacks.conflicts == {}


def test_a_module_registers_without_autoload_too(enhtrain_plugin: Any, enhtrain_plugin_manager: Any) -> None:
    import enhtrain_example.plugin as module

    name = enhtrain_plugin(module, name="example-direct")

    assert name == "example-direct"
    assert plugins.get_plugin_manager() is enhtrain_plugin_manager
    assert names(enhtrain_plugin_manager) == {*plugins.BUILTIN_PLUGINS, "example-direct"}
    assert plugins.get_registry().loggers.get("jsonl").plugin.name == "example-direct"


FIXTURE_LIFECYCLE = '''
from enhtrain import hookimpl, plugins

PROCESS = plugins.get_plugin_manager()


class TimerPlugin:
    @hookimpl
    def enhtrain_register_callbacks(self, registry):
        registry.register("lightning.pytorch.callbacks:Timer", name="helper_timer")


def test_first(enhtrain_plugin, enhtrain_plugins):
    enhtrain_plugin(TimerPlugin(), name="helper")
    enhtrain_plugins(autoload=True)
    enhtrain_plugin(TimerPlugin(), name="helper-again")
    assert plugins.get_plugin_manager() is not PROCESS


def test_second():
    assert plugins.get_plugin_manager() is PROCESS
    held = {name for name, _ in PROCESS.list_name_plugin()}
    assert "helper" not in held and "helper-again" not in held
    assert "helper_timer" not in plugins.get_registry().callbacks.names()
'''


@pytest.mark.slow
def test_the_fixtures_give_the_process_manager_back(tmp_path: Path) -> None:
    (tmp_path / "test_lifecycle.py").write_text(FIXTURE_LIFECYCLE, encoding="utf-8")

    result = run_pytest(tmp_path)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def docs_test_example() -> str:
    """The test module that ``docs/plugins.md`` shows, exactly as written there."""
    page = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- test: file=tests/test_batch_counter\.py -->\n```python\n(.*?)^```", page, re.S | re.M)
    assert match, "docs/plugins.md no longer shows tests/test_batch_counter.py"
    return match.group(1)


CLASHING_PLUGIN = '''
from enhtrain import hookimpl


@hookimpl
def enhtrain_register_callbacks(registry):
    registry.register("lightning.pytorch.callbacks:Timer", name="batch_counter")
'''


@pytest.mark.slow
def test_the_docs_test_example_passes_with_its_plugin_installed_and_not(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    distribution, package = f"enhtrain-docs-counter-{suffix}", f"enhtrain_docs_counter_{suffix}"
    root = tmp_path / distribution
    (root / "src" / package).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=77"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{distribution}"
        version = "0.1.0"
        dependencies = ["enhtrain"]

        [project.entry-points.enhtrain]
        counter-{suffix} = "{package}.plugin"

        [tool.setuptools.packages.find]
        where = ["src"]
        """), encoding="utf-8")
    (root / "src" / package / "__init__.py").write_text("", encoding="utf-8")
    (root / "src" / package / "plugin.py").write_text(CLASHING_PLUGIN, encoding="utf-8")
    (root / "tests" / "test_batch_counter.py").write_text(docs_test_example(), encoding="utf-8")

    not_installed = run_pytest(root)
    with installed(root, distribution):
        listing = plugins_listing(root)
        with_it = run_pytest(root)

    assert not_installed.returncode == 0, not_installed.stdout[-4000:]
    assert "3 passed" in not_installed.stdout
    assert f"counter-{suffix} ({distribution} 0.1.0)\n  callbacks: batch_counter\n" in listing
    assert with_it.returncode == 0, with_it.stdout[-4000:]
    assert "3 passed" in with_it.stdout


def plugins_listing(cwd: Path) -> str:
    """``enhtrain plugins`` in a fresh interpreter."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "enhtrain", "plugins"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)
    return proc.stdout
