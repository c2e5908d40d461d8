"""Environments contributed by plugins: listed among the known ones, and shown by ``enhtrain plugins``."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from enhtrain import ConfigError, plugins
from enhtrain.config.compose import resolve_env_overlays
from enhtrain.testing import CliResult

PLUGIN = """
from pathlib import Path

from enhtrain import ConfigError, hookimpl

ENV_DIR = Path(__file__).resolve().parent / "envs"


@hookimpl
def enhtrain_env_overlays(env):
    if env == "prod":
        return [str(ENV_DIR.parent / "overlays" / "prod.yaml")]
    path = ENV_DIR / f"{env}.yaml"
    return [str(path)] if path.is_file() else None


@hookimpl
def enhtrain_validate_config(config):
    if config.get("trainer", {}).get("max_epochs") == 99:
        raise ConfigError("99 epochs is too many", key="trainer.max_epochs")
"""


@pytest.fixture
def env_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enhtrain_plugin: Callable[..., str]) -> ModuleType:
    """A plugin module that ships ``envs/staging.yaml`` and adds ``overlays/prod.yaml`` to the built-in ``prod``."""
    package = tmp_path / "site" / "envplug"
    (package / "envs").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "plugin.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    (package / "envs" / "staging.yaml").write_text("trainer: {max_epochs: 1}\n", encoding="utf-8")
    (package / "overlays").mkdir()
    (package / "overlays" / "prod.yaml").write_text("trainer: {max_epochs: 2}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    module = importlib.import_module("envplug.plugin")
    enhtrain_plugin(module, name="envplug")
    yield module
    for name in ("envplug.plugin", "envplug"):
        sys.modules.pop(name, None)


def test_plugin_envs_are_found(env_plugin: ModuleType) -> None:
    envs = plugins.plugin_envs()
    package = Path(env_plugin.__file__).resolve().parent
    # `staging` is found in envs/; `prod`, a built-in name, is asked about too.
    assert envs["envplug"] == {"prod": [str(package / "overlays" / "prod.yaml")],
                               "staging": [str(package / "envs" / "staging.yaml")]}
    assert set(envs["enhtrain.plugins.builtin.envs"]) == {"dev", "prod", "test"}


def test_unknown_environment_lists_plugin_envs(env_plugin: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'nowhere'\. Known environments: dev, prod, staging, "
                                          r"test \(or add"):
        resolve_env_overlays("nowhere", str(tmp_path / "config.yaml"))
    assert resolve_env_overlays("staging", None)[0].endswith("staging.yaml")


def test_plugins_command_shows_overlays_and_checks(env_plugin: ModuleType,
                                                   enhtrain_cli: Callable[..., CliResult]) -> None:
    result = enhtrain_cli("plugins")
    assert result.exit_code == 0, result.stderr
    block = result.stdout.split("envplug", 1)[1].split("\nenhtrain.plugins.builtin", 1)[0]
    folder = Path(env_plugin.__file__).resolve().parent / "envs"
    assert f"  env overlay: staging -> {folder / 'staging.yaml'}" in block
    assert f"  env overlay: prod -> {folder.parent / 'overlays' / 'prod.yaml'}" in block
    assert "  config check: enhtrain_validate_config" in block
    assert "  env overlay: dev -> " in result.stdout  # the built-in environments
    rows = {row["name"]: row for row in json.loads(enhtrain_cli("plugins", "--json").stdout)["plugins"]}
    assert rows["envplug"]["envs"]["staging"] == [str(folder / "staging.yaml")]
    assert rows["envplug"]["config_check"] is True
    assert rows["enhtrain.plugins.builtin.loggers"]["config_check"] is False
    assert rows["enhtrain.plugins.builtin.loggers"]["envs"] == {}


def test_raising_hook_is_left_out_of_the_listing(enhtrain_plugin: Callable[..., str]) -> None:
    class Broken:
        @staticmethod
        def enhtrain_env_overlays(env: str) -> list[str] | None:
            raise RuntimeError("boom")

    from enhtrain import hookimpl

    Broken.enhtrain_env_overlays = hookimpl(Broken.enhtrain_env_overlays)  # type: ignore[method-assign]
    enhtrain_plugin(Broken(), name="broken_envs")
    assert "broken_envs" not in plugins.plugin_envs()
