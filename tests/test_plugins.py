"""Tests of the plugin system: entry-point loading, allow and deny lists, broken plugins, the registry.

Entry-point behaviour is tested with fake distributions: a folder on ``sys.path`` holding a
``<name>-<version>.dist-info`` directory (``METADATA`` and ``entry_points.txt``) and the plugin modules,
which :mod:`importlib.metadata` finds exactly as it finds an installed distribution.
"""

from __future__ import annotations

import importlib
import json
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
