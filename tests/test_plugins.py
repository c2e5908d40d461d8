"""Tests of the plugin system: entry-point loading, allow and deny lists, broken plugins, the registry.

Entry-point behaviour is tested with fake distributions: a folder on ``sys.path`` holding a
``<name>-<version>.dist-info`` directory (``METADATA`` and ``entry_points.txt``) and the plugin modules,
which :mod:`importlib.metadata` finds exactly as it finds an installed distribution.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from enhtrain import ConfigError, PluginError, hookimpl, plugins
from enhtrain.plugins.registry import KindRegistry, snake_case
from enhtrain.testing import temporary_plugins, tiny_config

pytestmark = pytest.mark.timeout(120)

TINY_CONFIG = tiny_config(
    {
        "model": {"init_args": {"input_dim": 64, "num_classes": 10}},
        "experiment": {
            "name": "plugins",
            "loggers": {"csv": {}, "tensorboard": None},
            "callbacks": {"throughput": None, "run_summary": None},
            "checkpoint": None,
        },
    }
)

TIMER_PLUGIN = """
from enhtrain import hookimpl

@hookimpl
def enhtrain_register_callbacks(registry):
    registry.register("lightning.pytorch.callbacks:Timer", name="{name}")
"""

BROKEN_IMPORT = """
raise ImportError("No module named 'fancy_dependency'")
"""

UNKNOWN_HOOK = """
from enhtrain import hookimpl

@hookimpl
def enhtrain_register_callbacks(registry):
    registry.register("lightning.pytorch.callbacks:Timer", name="nonsense_timer")

@hookimpl
def enhtrain_nonsense(registry):
    pass
"""

WRONG_SIGNATURE = """
from enhtrain import hookimpl

@hookimpl
def enhtrain_register_callbacks(registry, extra):
    registry.register("lightning.pytorch.callbacks:Timer", name="signature_timer")
"""

RAISES_IN_REGISTER = """
from enhtrain import hookimpl

@hookimpl
def enhtrain_register_callbacks(registry):
    raise RuntimeError("boom while registering")
"""

# entry-point name -> (distribution, module source, expected stage, expected text in the error)
BROKEN = {
    "bad_import": ("broken-import", BROKEN_IMPORT, "import", "fancy_dependency"),
    "unknown_hook": ("broken-unknown-hook", UNKNOWN_HOOK, "register", "unknown hook enhtrain_nonsense"),
    "bad_signature": ("broken-signature", WRONG_SIGNATURE, "register", "extra"),
    "raises": ("broken-raises", RAISES_IN_REGISTER, "enhtrain_register_callbacks", "RuntimeError: boom"),
}


@dataclass
class FakeSite:
    """A ``sys.path`` folder where tests install fake distributions."""

    root: Path
    modules: list[str] = field(default_factory=list)

    def add(self, distribution: str, version: str, entry_points: dict[str, str]) -> None:
        """Install ``distribution`` with one ``enhtrain`` entry point (and module) per item.

        Args:
            distribution: The distribution's name.
            version: Its version.
            entry_points: Entry-point name to the source of the module it points at; the module is
                named ``fake_<entry point name>``.
        """
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = ["[enhtrain]"]
        for name, source in entry_points.items():
            module = f"fake_{name}"
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            lines.append(f"{name} = {module}")
            self.modules.append(module)
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        importlib.invalidate_caches()


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """Rebuild the plugin manager before and after the test."""
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> Iterator[FakeSite]:
    """A folder of fake distributions prepended to ``sys.path``; their modules are forgotten after."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    site = FakeSite(root)
    yield site
    for module in site.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def tiny_config_file(tmp_path: Path) -> Path:
    """Write a tiny training config that uses only built-in components."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG, sort_keys=False), encoding="utf-8")
    return path


def plugin_rows(stdout: str) -> dict[str, dict[str, Any]]:
    """Parse ``enhtrain plugins --json`` into plugin name -> row."""
    return {row["name"]: row for row in json.loads(stdout)["plugins"]}


def loaded_names() -> set[str]:
    """Return the names of the plugins loaded in this process."""
    return {row["name"] for row in plugins.list_plugins() if not row["error"]}


# --- entry points --------------------------------------------------------------------------------------


def test_entry_point_plugin_loads_with_distribution_and_version(fake_site: FakeSite, enhtrain_cli: Any) -> None:
    fake_site.add("fake-dist", "1.0", {"fake_timer": TIMER_PLUGIN.format(name="fake_timer")})

    result = enhtrain_cli("plugins", "--json")

    assert result.exit_code == 0, result.stderr
    row = plugin_rows(result.stdout)["fake_timer"]
    assert row["distribution"] == "fake-dist"
    assert row["version"] == "1.0"
    assert row["builtin"] is False
    assert row["error"] is None
    assert row["hooks"] == ["enhtrain_register_callbacks"]
    assert row["registered"] == {"callbacks": ["fake_timer"]}
    entry = plugins.get_registry().callbacks.get("fake_timer")
    assert (entry.plugin.name, entry.plugin.distribution, entry.plugin.version) == (
        "fake_timer",
        "fake-dist",
        "1.0",
    )

    text = enhtrain_cli("plugins")
    assert "fake_timer (fake-dist 1.0)\n  callbacks: fake_timer\n" in text.stdout


def test_disable_autoload_loads_no_entry_points(fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_site.add("fake-dist", "1.0", {"alpha": TIMER_PLUGIN.format(name="alpha_timer")})
    monkeypatch.setenv("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "1")

    names = loaded_names()

    assert "alpha" not in names
    assert "example" not in names
    assert all(name.startswith("enhtrain.plugins.builtin.") for name in names)
    registry = plugins.get_registry()
    assert "alpha_timer" not in registry.callbacks.names()
    assert {"csv", "tensorboard"} <= set(registry.loggers.names())
    assert "throughput" in registry.callbacks.names()


@pytest.mark.parametrize("selector", ["alpha", "dist-alpha"])
def test_load_plugins_loads_only_those_named(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch, selector: str
) -> None:
    fake_site.add("dist-alpha", "1.0", {"alpha": TIMER_PLUGIN.format(name="alpha_timer")})
    fake_site.add("dist-beta", "2.0", {"beta": TIMER_PLUGIN.format(name="beta_timer")})
    monkeypatch.setenv("ENHTRAIN_LOAD_PLUGINS", selector)

    names = loaded_names()

    assert "alpha" in names
    assert "beta" not in names
    assert "example" not in names
    assert "enhtrain.plugins.builtin.loggers" in names
    assert "beta_timer" not in plugins.get_registry().callbacks.names()


@pytest.mark.parametrize("selector", ["alpha", "dist-alpha", " beta , alpha "])
def test_disabled_plugins_blocks_those_named(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch, selector: str
) -> None:
    fake_site.add("dist-alpha", "1.0", {"alpha": TIMER_PLUGIN.format(name="alpha_timer")})
    fake_site.add("dist-beta", "2.0", {"beta": TIMER_PLUGIN.format(name="beta_timer")})
    monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", selector)

    names = loaded_names()

    assert "alpha" not in names
    assert ("beta" in names) is ("beta" not in selector)
    assert "alpha_timer" not in plugins.get_registry().callbacks.names()
    assert "enhtrain.plugins.builtin.callbacks" in names


# --- broken plugins ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_plugin_is_reported_by_name_and_distribution(fake_site: FakeSite, enhtrain_cli: Any, name: str) -> None:
    distribution, source, stage, detail = BROKEN[name]
    fake_site.add(distribution, "1.0", {name: source})

    result = enhtrain_cli("plugins", "--json")

    rows = plugin_rows(result.stdout)
    row = rows[name]
    assert row["distribution"] == distribution
    assert row["version"] == "1.0"
    assert row["error"] is not None
    assert f"plugin {name} ({distribution} 1.0) failed at {stage}:" in row["error"]
    assert detail in row["error"]
    assert row["registered"].get("callbacks", []) == []
    assert {"csv", "tensorboard", "wandb", "comet"} <= set(
        rows["enhtrain.plugins.builtin.loggers"]["registered"]["loggers"]
    )
    assert rows["example"]["error"] is None

    text = enhtrain_cli("plugins")
    assert f"{name} ({distribution} 1.0)\n" in text.stdout
    assert f"  FAILED: plugin {name} ({distribution} 1.0) failed at {stage}:" in text.stdout
    assert "callbacks: backbone_finetuning" in text.stdout
    # The failure comes first, before every plugin that loaded (built-ins included).
    assert text.stdout.startswith(f"{name} ({distribution} 1.0)\n"), text.stdout
    assert next(iter(rows)) == name
    assert "  runtime keys: optimizer.lr, optimizer.lr_scale, trainer.gradient_clip_val" in text.stdout
    assert rows["enhtrain.plugins.builtin.runtime"]["runtime_keys"][:2] == ["optimizer.lr", "optimizer.lr_scale"]


def test_fit_not_using_broken_plugins_succeeds(fake_site: FakeSite, enhtrain_cli: Any, tiny_config_file: Path) -> None:
    for name, (distribution, source, _, _) in BROKEN.items():
        fake_site.add(distribution, "1.0", {name: source})

    result = enhtrain_cli("fit", "--config", str(tiny_config_file))

    assert result.exit_code == 0, result.stderr
    [run] = result.run_dirs()
    assert (run / "logs" / "csv" / "metrics.csv").is_file()
    metadata = json.loads((run / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["status"] == "completed"
    rows = {row["name"]: row for row in metadata["plugins"]}
    assert rows["example"] == {"name": "example", "distribution": "enhtrain-example", "version": "0.1.0",
                               "error": None}
    assert {name for name, row in rows.items() if row["error"]} == set(BROKEN)
    assert {f.plugin.name for f in plugins.failures()} == set(BROKEN)


@pytest.mark.parametrize("name", ["bad_import", "raises"])
def test_config_using_component_of_broken_plugin_names_the_plugin(
    fake_site: FakeSite, enhtrain_cli: Any, tiny_config_file: Path, name: str
) -> None:
    distribution, source, stage, _ = BROKEN[name]
    fake_site.add(distribution, "1.0", {name: source})

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.callbacks.fancy_callback", "{}")

    assert result.exit_code == 2
    assert "experiment.callbacks.fancy_callback: unknown callback 'fancy_callback'" in result.stderr
    assert f"plugin {name} ({distribution} 1.0) failed at {stage}" in result.stderr
    assert "if 'fancy_callback' comes from it, fix that plugin" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.run_dirs() == []
    hint = plugins.failure_hint("fancy_callback")
    assert f"{name} ({distribution} 1.0)" in hint


def test_failure_hint_is_empty_without_failures(fresh_plugins: None) -> None:
    assert plugins.failure_hint("anything") == ""


# --- name clashes ----------------------------------------------------------------------------------------


def test_name_clash_names_both_distributions(fake_site: FakeSite, enhtrain_cli: Any, tiny_config_file: Path) -> None:
    fake_site.add("dup-a", "1.0", {"dup_a": TIMER_PLUGIN.format(name="twin")})
    fake_site.add("dup-b", "2.0", {"dup_b": TIMER_PLUGIN.format(name="twin")})

    listing = enhtrain_cli("plugins")
    as_json = json.loads(enhtrain_cli("plugins", "--json").stdout)
    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.callbacks.twin", "{}")

    [conflict] = [line for line in listing.stdout.splitlines() if line.startswith("conflict:")]
    assert conflict.startswith("conflict: callback 'twin' registered by ")
    assert "dup_a (dup-a 1.0)" in conflict
    assert "dup_b (dup-b 2.0)" in conflict
    assert sorted(as_json["conflicts"]["callbacks"]["twin"]) == ["dup_a (dup-a 1.0)", "dup_b (dup-b 2.0)"]
    assert result.exit_code == 2
    assert "callback name 'twin' is registered by both" in result.stderr
    assert "dup-a 1.0" in result.stderr
    assert "dup-b 2.0" in result.stderr
    assert "ENHTRAIN_DISABLED_PLUGINS" in result.stderr
    assert result.run_dirs() == []
    with pytest.raises(PluginError, match=r"dup-a 1\.0"):
        plugins.get_registry().callbacks.get("twin")


def test_blocking_one_side_resolves_a_clash(fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_site.add("dup-a", "1.0", {"dup_a": TIMER_PLUGIN.format(name="twin")})
    fake_site.add("dup-b", "2.0", {"dup_b": TIMER_PLUGIN.format(name="twin")})
    monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", "dup-a")

    entry = plugins.get_registry().callbacks.get("twin")

    assert entry.plugin.distribution == "dup-b"
    assert plugins.get_registry().callbacks.conflicts == {}


# --- registry ---------------------------------------------------------------------------------------------


class NamedPlugin:
    """A plugin object registering components without names."""

    def __init__(self, template: Path) -> None:
        self.template = template

    @hookimpl
    def enhtrain_register_callbacks(self, registry: KindRegistry) -> None:
        from lightning.pytorch.callbacks import Callback

        class GradNormProbe(Callback):
            pass

        registry.register(GradNormProbe)
        registry.register("my_pkg.callbacks:HTTPRequestCounter")

    @hookimpl
    def enhtrain_register_loggers(self, registry: KindRegistry) -> None:
        registry.register("my_pkg.loggers:JSONLinesLogger")

    @hookimpl
    def enhtrain_register_profilers(self, registry: KindRegistry) -> None:
        registry.register("my_pkg.profilers.WallTimeProfiler")

    @hookimpl
    def enhtrain_register_templates(self, registry: KindRegistry) -> None:
        registry.register(self.template)


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("GradNormMonitor", "grad_norm_monitor"),
        ("HTTPRequestCounter", "http_request_counter"),
        ("JSONLinesLogger", "json_lines_logger"),
        ("Timer", "timer"),
        ("EMA2Callback", "ema2_callback"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake_case(class_name: str, expected: str) -> None:
    assert snake_case(class_name) == expected


def test_names_default_to_snake_case_of_the_class_name(enhtrain_plugin: Any, tmp_path: Path) -> None:
    template = tmp_path / "my_template.yaml"
    template.write_text("# my template\ntrainer: {max_epochs: 1}\n", encoding="utf-8")
    enhtrain_plugin(NamedPlugin(template), name="named")

    registry = plugins.get_registry()

    assert registry.by_plugin()["named"] == {
        "callbacks": ["grad_norm_probe", "http_request_counter"],
        "loggers": ["json_lines_logger"],
        "profilers": ["wall_time_profiler"],
        "templates": ["my_template"],
    }
    assert registry.templates.get("my_template").load() == template


def test_lookup_by_registry_name_class_name_and_import_path(fresh_plugins: None) -> None:
    callbacks = plugins.get_registry().callbacks

    by_name = callbacks.get("throughput")

    assert callbacks.get("StepThroughput") is by_name
    assert callbacks.get("enhtrain.callbacks.throughput.StepThroughput") is by_name
    assert callbacks.get("enhtrain.callbacks.throughput:StepThroughput") is by_name
    assert by_name.import_path == "enhtrain.callbacks.throughput.StepThroughput"
    assert by_name.class_name == "StepThroughput"
    assert by_name.load().__name__ == "StepThroughput"
    assert plugins.get_registry().loggers.get("csv_logger").name == "csv"
    with pytest.raises(ConfigError, match=r"unknown callback 'NoSuchThing'\. Known callbacks: .*throughput"):
        callbacks.get("NoSuchThing")
    assert callbacks.find("NoSuchThing") is None


def test_lookup_of_a_registered_class_object(enhtrain_plugin: Any, tmp_path: Path) -> None:
    enhtrain_plugin(NamedPlugin(tmp_path / "t.yaml"), name="named")
    callbacks = plugins.get_registry().callbacks

    entry = callbacks.get("grad_norm_probe")

    assert callbacks.get("GradNormProbe") is entry
    assert callbacks.get(entry.import_path) is entry
    assert entry.load().__name__ == "GradNormProbe"
    assert entry.plugin.name == "named"


class GhostPlugin:
    """Registers components whose import paths are wrong."""

    @hookimpl
    def enhtrain_register_callbacks(self, registry: KindRegistry) -> None:
        registry.register("no_such_package.callbacks:Ghost", name="ghost")
        registry.register("enhtrain.callbacks.throughput:NoSuchClass", name="missing_class")


def test_registration_load_of_bad_import_path_names_the_plugin(enhtrain_plugin: Any) -> None:
    enhtrain_plugin(GhostPlugin(), name="ghost_plugin")
    callbacks = plugins.get_registry().callbacks

    with pytest.raises(PluginError) as missing_module:
        callbacks.get("ghost").load()
    with pytest.raises(PluginError) as missing_attr:
        callbacks.get("missing_class").load()

    assert "callback 'ghost' from plugin ghost_plugin cannot be imported" in str(missing_module.value)
    assert "no_such_package" in str(missing_module.value)
    assert "module 'enhtrain.callbacks.throughput' has no 'NoSuchClass'" in str(missing_attr.value)
    assert "ghost_plugin" in str(missing_attr.value)


def test_fit_with_unimportable_component_fails_cleanly(
    enhtrain_plugin: Any, enhtrain_cli: Any, tiny_config_file: Path
) -> None:
    enhtrain_plugin(GhostPlugin(), name="ghost_plugin")

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.callbacks.ghost", "{}")

    assert result.exit_code == 2
    assert "callback 'ghost' from plugin ghost_plugin cannot be imported" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.run_dirs() == []


def test_registered_plugin_object_is_used_and_removed_after(enhtrain_plugin: Any, enhtrain_plugin_manager: Any) -> None:
    name = enhtrain_plugin(GhostPlugin(), name="ghost_plugin")

    registered = plugins.get_registry().by_plugin()

    assert name == "ghost_plugin"
    assert enhtrain_plugin_manager.get_plugin("ghost_plugin") is not None
    assert registered["ghost_plugin"] == {"callbacks": ["ghost", "missing_class"]}


def test_plugin_object_registered_for_a_test_is_gone_after() -> None:
    # `temporary_plugins` is what the `enhtrain_plugin_manager` fixture wraps around a test.
    with temporary_plugins() as manager:
        manager.register(GhostPlugin(), name="ghost_plugin")
        assert "ghost" in plugins.get_registry().callbacks.names()
        assert plugins.get_plugin_manager().get_plugin("ghost_plugin") is not None

    assert "ghost" not in plugins.get_registry().callbacks.names()
    assert plugins.get_plugin_manager().get_plugin("ghost_plugin") is None


# --- validate and env hooks from plugin objects -----------------------------------------------------------


class StagingPlugin:
    """Contributes an overlay for ``staging`` and checks the run name."""

    def __init__(self, overlay: Path) -> None:
        self.overlay = overlay

    @hookimpl
    def enhtrain_env_overlays(self, env: str) -> list[str] | None:
        return [str(self.overlay)] if env == "staging" else None

    @hookimpl
    def enhtrain_validate_config(self, config: dict[str, Any]) -> None:
        if config["experiment"]["name"] == "scratch":
            raise ConfigError("experiment.name: 'scratch' runs are not kept; choose another experiment.name")


def test_env_overlay_hook_of_a_plugin_object(enhtrain_plugin: Any, enhtrain_cli: Any, tiny_config_file: Path) -> None:
    overlay = tiny_config_file.parent / "staging_overlay.yaml"
    overlay.write_text("trainer:\n  max_epochs: 7\n", encoding="utf-8")
    enhtrain_plugin(StagingPlugin(overlay), name="staging")

    result = enhtrain_cli("config", "explain", "--json", "--config", str(tiny_config_file), "--env", "staging")
    unknown = enhtrain_cli("config", "explain", "--config", str(tiny_config_file), "--env", "nowhere")

    assert result.exit_code == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["trainer.max_epochs"]["value"] == 7
    assert "env overlay 'staging'" in rows["trainer.max_epochs"]["source"]
    assert "staging_overlay.yaml" in rows["trainer.max_epochs"]["source"]
    assert plugins.env_overlays("production") == []
    assert unknown.exit_code == 2
    assert "unknown environment 'nowhere'" in unknown.stderr


def test_validate_hook_of_a_plugin_object_rejects_config(
    enhtrain_plugin: Any, enhtrain_cli: Any, tiny_config_file: Path
) -> None:
    enhtrain_plugin(StagingPlugin(tiny_config_file), name="staging")

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.name", "scratch")

    assert result.exit_code == 2
    assert "experiment.name: 'scratch' runs are not kept" in result.stderr
    assert not (tiny_config_file.parent / "runs").exists()


class CrashingPlugin:
    """Raises unexpected errors from its hooks."""

    @hookimpl
    def enhtrain_validate_config(self, config: dict[str, Any]) -> None:
        raise KeyError("model")

    @hookimpl
    def enhtrain_env_overlays(self, env: str) -> list[str] | None:
        raise OSError("overlay folder unreadable")


def test_unexpected_errors_in_hooks_name_the_plugin(
    enhtrain_plugin: Any, enhtrain_cli: Any, tiny_config_file: Path
) -> None:
    enhtrain_plugin(CrashingPlugin(), name="crashing")

    fit = enhtrain_cli("fit", "--config", str(tiny_config_file))
    explain = enhtrain_cli("config", "explain", "--config", str(tiny_config_file), "--env", "dev")

    assert fit.exit_code == 2
    assert "plugin crashing failed in enhtrain_validate_config: KeyError" in fit.stderr
    assert not (tiny_config_file.parent / "runs").exists()
    assert explain.exit_code == 2
    assert "plugin crashing failed in enhtrain_env_overlays: OSError: overlay folder unreadable" in explain.stderr


# --- laziness ----------------------------------------------------------------------------------------------

_PROBE = """
import contextlib, io, json, sys
from enhtrain.commands import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "output": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def run_probe(*args: str, script: str = _PROBE) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter and return the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["plugins"],
        ["plugins", "--json"],
        ["templates", "list"],
        ["templates", "show", "example"],
    ],
    ids=lambda a: " ".join(a),
)
def test_info_commands_never_import_torch(args: list[str]) -> None:
    probe = run_probe(*args)

    assert probe["code"] == 0
    assert probe["output"]
    modules = set(probe["modules"])
    assert "torch" not in modules
    assert "lightning" not in modules
    assert not {"enhtrain_example.callbacks", "enhtrain_example.loggers", "enhtrain_example.profilers"} & modules


def test_version_output() -> None:
    from enhtrain import __version__

    assert run_probe("--version")["output"] == f"enhtrain {__version__}\n"


_LOGGER_PROBE = """
import json, sys, tempfile
from enhtrain import plugins
loggers = plugins.get_registry().loggers
csv_factory = loggers.get("csv").load()
csv_logger = csv_factory(log_dir=tempfile.mkdtemp(), name="probe", version="v0")
after_csv = sorted(sys.modules)
jsonl_cls = loggers.get("jsonl").load()
after_jsonl = sorted(sys.modules)
print(json.dumps({"csv": type(csv_logger).__name__, "jsonl": jsonl_cls.__name__,
                  "after_csv": after_csv, "after_jsonl": after_jsonl}))
"""


def test_selecting_a_logger_imports_only_its_module() -> None:
    probe = run_probe(script=_LOGGER_PROBE)

    after_csv, after_jsonl = set(probe["after_csv"]), set(probe["after_jsonl"])
    assert probe["csv"] == "RunCSVLogger"
    assert probe["jsonl"] == "JsonlLogger"
    assert "enhtrain.loggers.csv" in after_csv
    assert not {"enhtrain.loggers.tensorboard", "enhtrain.loggers.wandb", "enhtrain.loggers.comet"} & after_csv
    assert not {"wandb", "comet_ml", "enhtrain_example.loggers"} & after_csv
    assert "enhtrain_example.loggers" in after_jsonl
    assert not {"wandb", "comet_ml", "enhtrain_example.callbacks", "enhtrain_example.profilers"} & after_jsonl


def test_tiny_config_merges_overrides_into_a_fresh_copy() -> None:
    first = tiny_config({"trainer": {"max_epochs": 3}, "experiment": {"loggers": {"csv": None}}})
    assert first["trainer"]["max_epochs"] == 3 and first["trainer"]["limit_train_batches"] == 2
    assert first["experiment"] == {"loggers": {"csv": None}}  # None is kept: the logger is on with defaults
    first["trainer"]["max_epochs"] = 99
    first["model"]["init_args"]["hidden_dims"].append(4)
    second = tiny_config({"model": {"init_args": {"hidden_dims": [32]}}, "seed_everything": 5})
    assert second["trainer"]["max_epochs"] == 1 and "experiment" not in second
    assert second["model"]["init_args"] == {"hidden_dims": [32]} and second["seed_everything"] == 5
    assert tiny_config()["model"]["init_args"]["hidden_dims"] == [8]


# --- debug mode and broken plugins ---------------------------------------------------------------------------

BAD_NAME = """
from enhtrain import hookimpl

@hookimpl
def enhtrain_register_callbacks(registry):
    registry.register("lightning.pytorch.callbacks:Timer", name="bad name!")
"""


def test_plugins_exits_1_when_a_plugin_failed(fake_site: FakeSite, enhtrain_cli: Any) -> None:
    healthy = enhtrain_cli("plugins")
    fake_site.add("broken-name", "1.0", {"bad_name": BAD_NAME})
    plugins.reset()

    listing = enhtrain_cli("plugins")
    as_json = enhtrain_cli("plugins", "--json")

    assert healthy.exit_code == 0, healthy.stdout
    assert listing.exit_code == 1
    assert as_json.exit_code == 1
    assert "  FAILED: plugin bad_name (broken-name 1.0) failed at enhtrain_register_callbacks: ValueError: " \
           "invalid callback name 'bad name!'" in listing.stdout
    assert "Traceback" not in listing.stdout + listing.stderr


def test_debug_prints_each_failed_plugins_own_traceback(
    fake_site: FakeSite, enhtrain_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_site.add("broken-name", "1.0", {"bad_name": BAD_NAME})
    fake_site.add("broken-import", "1.0", {"bad_import": BROKEN_IMPORT})
    monkeypatch.setenv("ENHTRAIN_DEBUG", "1")

    result = enhtrain_cli("plugins")
    rows = plugin_rows(enhtrain_cli("plugins", "--json").stdout)

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    start = lines.index("  FAILED: plugin bad_name (broken-name 1.0) failed at enhtrain_register_callbacks: "
                        "ValueError: invalid callback name 'bad name!': use letters, digits, '_', '-', '.'")
    shown = "\n".join(lines[start + 1:])
    assert lines[start + 1] == "    Traceback (most recent call last):"
    assert 'fake_bad_name.py", line 6, in enhtrain_register_callbacks' in shown
    assert "registry.py" in shown
    assert "    ValueError: invalid callback name 'bad name!'" in shown
    assert "fake_bad_import.py" in shown and "    ImportError: No module named 'fancy_dependency'" in shown
    assert rows["bad_name"]["traceback"].startswith("Traceback (most recent call last):")
    assert rows["bad_import"]["traceback"].rstrip().endswith("ImportError: No module named 'fancy_dependency'")
    assert rows["example"]["traceback"] is None


def test_debug_keeps_exit_status_2_and_adds_the_traceback(
    enhtrain_cli: Any, tiny_config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = enhtrain_cli("fit", "--config", str(tiny_config_file), "--trainer.precision", "16-mixed")
    monkeypatch.setenv("ENHTRAIN_DEBUG", "1")
    loud = enhtrain_cli("fit", "--config", str(tiny_config_file), "--trainer.precision", "16-mixed")
    monkeypatch.setenv("ENHTRAIN_DEBUG", "off")
    off = enhtrain_cli("fit", "--config", str(tiny_config_file), "--trainer.precision", "16-mixed")

    assert quiet.exit_code == loud.exit_code == off.exit_code == 2
    assert "Traceback" not in quiet.stderr and "Traceback" not in off.stderr
    assert loud.stderr.startswith("Traceback (most recent call last):")
    assert "enhtrain.errors.ConfigError: trainer.precision '16-mixed' is not supported on CPU" in loud.stderr
    assert loud.stderr.splitlines()[-1] == quiet.stderr.strip()
    assert quiet.stderr.strip().startswith("enhtrain: error: ")


def test_fit_warns_once_per_broken_plugin(fake_site: FakeSite, enhtrain_cli: Any, tiny_config_file: Path) -> None:
    for name, (distribution, source, _, _) in BROKEN.items():
        fake_site.add(distribution, "1.0", {name: source})

    result = enhtrain_cli("fit", "--config", str(tiny_config_file))

    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("enhtrain: warning: ")]
    assert len(warnings) == len(BROKEN)
    for name, (distribution, _, stage, _) in BROKEN.items():
        assert [w for w in warnings if w.startswith(f"enhtrain: warning: plugin {name} ({distribution} 1.0) "
                                                   f"failed at {stage}: ")]
    assert result.stderr.index("enhtrain: warning: ") == 0


def test_fit_without_broken_plugins_prints_no_warning(enhtrain_cli: Any, tiny_config_file: Path,
                                                      fresh_plugins: None) -> None:
    result = enhtrain_cli("fit", "--config", str(tiny_config_file))

    assert result.exit_code == 0, result.stderr
    assert "enhtrain: warning:" not in result.stderr


# --- the allow and deny lists --------------------------------------------------------------------------------

JSONL_PLUGIN = """
from enhtrain import hookimpl

@hookimpl
def enhtrain_register_loggers(registry):
    registry.register("lightning.pytorch.loggers:CSVLogger", name="acme_jsonl")
"""


@pytest.mark.parametrize(
    ("variable", "value", "reason", "fix"),
    [
        ("ENHTRAIN_DISABLED_PLUGINS", "acme-tools", "is disabled by ENHTRAIN_DISABLED_PLUGINS=acme-tools",
         "remove it from ENHTRAIN_DISABLED_PLUGINS"),
        ("ENHTRAIN_LOAD_PLUGINS", "bad_import", "is not loaded because ENHTRAIN_LOAD_PLUGINS=bad_import does not "
         "name it", "add acme to ENHTRAIN_LOAD_PLUGINS"),
        ("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "yes", "is not loaded because ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD=yes",
         "unset ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD"),
        # A value that would break the line is shown quoted and escaped.
        ("ENHTRAIN_DISABLED_PLUGINS", "acme-tools,\nother", "is disabled by ENHTRAIN_DISABLED_PLUGINS='acme-tools,"
         "\\nother'", "remove it from ENHTRAIN_DISABLED_PLUGINS"),
        ("ENHTRAIN_LOAD_PLUGINS", "bad_import,\x1b[2J", "is not loaded because ENHTRAIN_LOAD_PLUGINS='bad_import,"
         "\\x1b[2J' does not name it", "add acme to ENHTRAIN_LOAD_PLUGINS"),
    ],
)
def test_unknown_name_says_which_unloaded_plugin_provides_it(
    fake_site: FakeSite, enhtrain_cli: Any, tiny_config_file: Path, monkeypatch: pytest.MonkeyPatch,
    variable: str, value: str, reason: str, fix: str,
) -> None:
    fake_site.add("acme-tools", "1.0", {"acme": JSONL_PLUGIN})
    fake_site.add("broken-import", "1.0", {"bad_import": BROKEN_IMPORT})
    monkeypatch.setenv(variable, value)

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.loggers.acme_jsonl", "{}")
    with pytest.raises(ConfigError) as shown:
        plugins.get_registry().loggers.get("acme_jsonl")

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()[-1:]
    # The closest loaded name, if any is close, comes before the list of them.
    assert line.startswith("enhtrain: error: flag --experiment.loggers.acme_jsonl: unknown logger 'acme_jsonl'")
    assert ". Known loggers: " in line
    assert line.endswith(f"(logger 'acme_jsonl' comes from plugin acme (acme-tools 1.0), which {reason}; {fix})")
    assert "fix that plugin" not in line
    assert all(each.startswith("enhtrain: ") for each in result.stderr.splitlines()), result.stderr
    assert "\x1b" not in result.stderr
    assert f"which {reason}" in str(shown.value)
    assert result.run_dirs() == []


@pytest.mark.parametrize("selector", ["ACME_Tools", "acme.tools", "Acme-Tools", "ACME"])
def test_plugin_names_are_normalised_as_pep_503_does(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch, selector: str
) -> None:
    fake_site.add("acme-tools", "1.0", {"acme": JSONL_PLUGIN})
    fake_site.add("dist-beta", "2.0", {"beta": TIMER_PLUGIN.format(name="beta_timer")})

    monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", selector)
    blocked = loaded_names()
    monkeypatch.delenv("ENHTRAIN_DISABLED_PLUGINS")
    monkeypatch.setenv("ENHTRAIN_LOAD_PLUGINS", selector)
    allowed = loaded_names()

    assert "acme" not in blocked and "beta" in blocked
    assert "acme" in allowed and "beta" not in allowed
    assert plugins.warnings() == []


def test_names_matching_no_installed_plugin_are_warned_about(
    fake_site: FakeSite, enhtrain_cli: Any, tiny_config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_site.add("acme-tools", "1.0", {"acme": JSONL_PLUGIN})
    monkeypatch.setenv("ENHTRAIN_LOAD_PLUGINS", "acmee")
    monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", "acme_broken,enhtrain.plugins.builtin.profilers")

    listing = enhtrain_cli("plugins")
    fit = enhtrain_cli("fit", "--config", str(tiny_config_file))

    expected = [
        "enhtrain: warning: ENHTRAIN_LOAD_PLUGINS: 'acmee' matches no installed plugin (installed plugins: ",
        "enhtrain: warning: ENHTRAIN_DISABLED_PLUGINS: 'acme_broken' matches no installed plugin (installed "
        "plugins: ",
    ]
    for result in (listing, fit):
        warnings = [line for line in result.stderr.splitlines() if line.startswith("enhtrain: warning: ")]
        assert len(warnings) == 2, result.stderr
        for line, start in zip(warnings, expected, strict=True):
            assert line.startswith(start)
            assert "acme" in line and "example" in line and line.endswith("); check the spelling")
    assert fit.exit_code == 0, fit.stderr
    assert "acme" not in loaded_names()
    assert "enhtrain.plugins.builtin.profilers" not in loaded_names()


@pytest.mark.parametrize(("value", "autoload"), [
    ("", True), ("0", True), ("false", True), ("No", True), ("OFF", True), (" off ", True),
    ("1", False), ("true", False), ("yes", False), ("on", False),
])
def test_disable_autoload_accepts_the_usual_false_values(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch, value: str, autoload: bool
) -> None:
    fake_site.add("dist-alpha", "1.0", {"alpha": TIMER_PLUGIN.format(name="alpha_timer")})
    monkeypatch.setenv("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", value)

    assert ("alpha" in loaded_names()) is autoload
    assert plugins.env_flag("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD") is not autoload


def test_changing_a_plugin_variable_rebuilds_the_manager(fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_site.add("dist-alpha", "1.0", {"alpha": TIMER_PLUGIN.format(name="alpha_timer")})
    manager = plugins.get_plugin_manager()
    manager.register(GhostPlugin(), name="ghost_plugin")
    assert "alpha" in loaded_names()

    monkeypatch.setenv("ENHTRAIN_DISABLED_PLUGINS", "alpha")

    assert plugins.get_plugin_manager() is not manager
    assert "alpha" not in loaded_names()
    assert "ghost" in plugins.get_registry().callbacks.names()  # registered directly: kept


# --- messages ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "message", "expected"),
    [
        ("flag --a.b", "a.b: bad", "flag --a.b: bad"),
        ("flag --a", "a.b: bad", "flag --a: a.b: bad"),
        ("flag --a.b", "a.bc: bad", "flag --a.b: a.bc: bad"),
        ("cfg.yaml:3", "a.b: bad", "cfg.yaml:3: a.b: bad"),
        (None, "a.b: bad", "a.b: bad"),
    ],
)
def test_located_says_the_key_once(where: str | None, message: str, expected: str) -> None:
    from enhtrain.errors import located

    assert located(where, message) == expected


class PickyPlugin:
    """A callback whose constructor rejects a value, and config checks that name their key, or not."""

    @hookimpl
    def enhtrain_register_callbacks(self, registry: KindRegistry) -> None:
        registry.register(make_picky_callback, name="picky")

    @hookimpl
    def enhtrain_validate_config(self, config: dict[str, Any]) -> None:
        trainer = config["trainer"]
        if trainer["max_epochs"] is not None and trainer["max_epochs"] > 50:
            raise ConfigError("at most 50 epochs on the shared cluster; lower it", key="trainer.max_epochs")
        if trainer["max_steps"] == 7:
            raise ConfigError("trainer.max_steps: 7 is unlucky; choose another")


def make_picky_callback(every: int = 1) -> Any:
    """A callback factory that refuses ``every < 1``."""
    from lightning.pytorch.callbacks import Callback

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    return Callback()


def test_a_value_error_from_a_flag_names_the_key_once(
    enhtrain_plugin: Any, enhtrain_cli: Any, tiny_config_file: Path
) -> None:
    enhtrain_plugin(PickyPlugin(), name="picky_plugin")

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.callbacks.picky", "{every: 0}")
    unknown = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.callbacks.pickyy", "{}")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "enhtrain: error: flag --experiment.callbacks.picky: every must be at least 1, got 0"
    )
    assert unknown.stderr.startswith("enhtrain: error: flag --experiment.callbacks.pickyy: unknown callback 'pickyy'")
    assert result.run_dirs() == []


def test_plugin_config_error_gets_the_location_of_its_key_and_the_plugin_name(
    enhtrain_plugin: Any, enhtrain_cli: Any, tiny_config_file: Path
) -> None:
    text = tiny_config_file.read_text(encoding="utf-8").replace("max_epochs: 1", "max_epochs: 60")
    tiny_config_file.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  max_epochs: 60") + 1
    registered = enhtrain_plugin(PickyPlugin(), name="picky")

    from_file = enhtrain_cli("fit", "--config", str(tiny_config_file))
    from_flag = enhtrain_cli("fit", "--config", str(tiny_config_file), "--trainer.max_epochs", "99")
    unkeyed = enhtrain_cli("fit", "--config", str(tiny_config_file), "--trainer.max_epochs", "2",
                           "--trainer.max_steps", "7")

    assert registered == "picky"
    assert from_file.exit_code == from_flag.exit_code == unkeyed.exit_code == 2
    assert from_file.stderr == (
        f"enhtrain: error: {tiny_config_file}:{line}: trainer.max_epochs: at most 50 epochs on the shared cluster; "
        "lower it (from plugin picky)\n"
    )
    assert from_flag.stderr == (
        "enhtrain: error: flag --trainer.max_epochs: at most 50 epochs on the shared cluster; lower it "
        "(from plugin picky)\n"
    )
    assert unkeyed.stderr == "enhtrain: error: trainer.max_steps: 7 is unlucky; choose another (from plugin picky)\n"
    assert not (tiny_config_file.parent / "runs").exists()


def test_validate_config_passes_the_key_on() -> None:
    with temporary_plugins() as manager:
        manager.register(PickyPlugin(), name="picky")
        with pytest.raises(ConfigError) as raised:
            plugins.validate_config({"trainer": {"max_epochs": 51, "max_steps": -1}},
                                    locate=lambda key: f"here.yaml:{len(key)}")

    assert raised.value.key == "trainer.max_epochs"
    assert str(raised.value) == ("here.yaml:18: trainer.max_epochs: at most 50 epochs on the shared cluster; "
                                 "lower it (from plugin picky)")


_SEED_PROBE = """
import sys
from enhtrain.commands import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_no_seed_line_before_a_refused_resume(tmp_path: Path) -> None:
    from enhtrain.testing import write_tiny_config

    write_tiny_config(tmp_path / "r.yaml", {"seed_everything": 42, "experiment": {"name": "r", "checkpoint": {}}})
    command = [sys.executable, "-c", _SEED_PROBE, "fit", "--config", "r.yaml"]
    env = {**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"}
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    refused = subprocess.run([*command, "--experiment.resume", "auto", "--model.init_args.lr", "0.5"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)

    assert first.returncode == 0, first.stderr
    assert "Seed set to 42" in first.stdout + first.stderr
    assert refused.returncode == 2
    assert "the config differs from the resumed run's" in refused.stderr
    assert "Seed set to" not in refused.stdout + refused.stderr
    saved = yaml.safe_load((tmp_path / "runs" / "r" / "version_0" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["seed_everything"] == 42


# --- Lightning's remaining loggers and profilers -------------------------------------------------------------


def test_lightning_loggers_and_profilers_are_registered_by_import_path(fresh_plugins: None) -> None:
    registry = plugins.get_registry()

    assert registry.loggers.get("mlflow").target == "enhtrain.loggers.mlflow:mlflow_logger"
    assert registry.loggers.get("neptune").target == "enhtrain.loggers.neptune:neptune_logger"
    assert registry.profilers.get("xla").target == "enhtrain.profilers.xla:xla_profiler"
    assert registry.profilers.get("passthrough").target == "lightning.pytorch.profilers:PassThroughProfiler"
    assert registry.profilers.get("PassThroughProfiler").name == "passthrough"


@pytest.mark.parametrize(
    ("flags", "module", "message"),
    [
        (["--experiment.loggers.mlflow", "{}"], "mlflow",
         "logger 'mlflow' needs the mlflow package: pip install 'enhtrain[mlflow]'"),
        (["--experiment.loggers.mlflow", "{tags: {team: a}}"], "mlflow",
         "logger 'mlflow' needs the mlflow package: pip install 'enhtrain[mlflow]'"),
        (["--experiment.loggers.neptune", "{}"], "neptune",
         "logger 'neptune' needs the neptune package: pip install neptune"),
        (["--experiment.profiler", "xla"], "torch_xla",
         "profiler 'xla' needs the torch_xla package (PyTorch/XLA, for TPUs): pip install torch_xla"),
    ],
    ids=["mlflow", "mlflow-with-options", "neptune", "xla"],
)
def test_missing_package_ends_with_exit_2_naming_it(
    enhtrain_cli: Any, tiny_config_file: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None,
    flags: list[str], module: str, message: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # found nowhere, as when it is not installed

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), *flags)

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.run_dirs() == []


def test_neptune_with_a_lightning_that_dropped_it_is_refused(
    enhtrain_cli: Any, tiny_config_file: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    import importlib.machinery
    import types

    import lightning

    installed = types.ModuleType("neptune")  # as if the neptune package were installed
    installed.__spec__ = importlib.machinery.ModuleSpec("neptune", None)
    monkeypatch.setitem(sys.modules, "neptune", installed)

    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.loggers.neptune", "{}")

    assert result.exit_code == 2
    assert f"logger 'neptune': Lightning {lightning.__version__} no longer supports Neptune" in result.stderr
    assert "choose another logger, such as mlflow or wandb" in result.stderr
    assert result.run_dirs() == []


def test_mlflow_logger_keeps_its_file_store_in_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.loggers import MLFlowLogger

    from enhtrain.loggers import mlflow as mlflow_module

    calls: list[dict[str, Any]] = []  # the arguments Lightning's MLFlowLogger gets
    monkeypatch.setattr(MLFlowLogger, "__init__", lambda self, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(mlflow_module, "_require", lambda *args: None)
    log_dir = tmp_path / "runs" / "demo" / "version_3" / "logs" / "mlflow"

    logger = mlflow_module.mlflow_logger(str(log_dir), "demo", "version_3", tags={"team": "a"})
    remote = mlflow_module.mlflow_logger(str(log_dir), "demo", "version_3", tracking_uri="https://mlflow.example")

    assert calls[0] == {
        "experiment_name": "demo",
        "run_name": "version_3",
        "tracking_uri": f"file:{log_dir}",
        "save_dir": str(log_dir),
        "tags": {"team": "a"},
    }
    assert calls[1]["tracking_uri"] == "https://mlflow.example"
    assert (logger.name, logger.version, logger.log_dir) == ("demo", "version_3", str(log_dir))
    assert remote.name == "demo"
    for options, text in [
        ({"run_name": "x"}, "option 'run_name' is set by enhtrain from experiment.version"),
        ({"artifact_location": "/tmp/a"}, "option 'artifact_location' is set by enhtrain from the run directory"),
        ({"save_dir": "/tmp/a"}, "option 'save_dir' is set by enhtrain"),
        ({"tracking_uri": "file:/tmp/elsewhere"}, "tracking_uri 'file:/tmp/elsewhere' is not an MLflow server"),
        ({"tracking_uri": "sqlite:///m.db"}, "is not an MLflow server"),
        ({"tagz": {}}, "logger 'mlflow' has no option 'tagz' (did you mean 'tags'?)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(text)):
            mlflow_module.mlflow_logger(str(log_dir), "demo", "version_3", **options)


def test_passthrough_profiler_trains(enhtrain_cli: Any, tiny_config_file: Path, fresh_plugins: None) -> None:
    result = enhtrain_cli("fit", "--config", str(tiny_config_file), "--experiment.profiler", "passthrough")

    assert result.exit_code == 0, result.stderr
    [run] = result.run_dirs()
    assert json.loads((run / "metadata.json").read_text(encoding="utf-8"))["status"] == "completed"
    # It profiles nothing: Lightning writes its empty report into the run's profiler/ folder.
    assert [p.name for p in (run / "profiler").iterdir()] == ["fit-passthrough.txt"]
    assert (run / "profiler" / "fit-passthrough.txt").read_text(encoding="utf-8").strip() == ""
