"""Every plugin hook is typed, has a docstring, is documented in docs/plugins.md and is called by enhtrain.

A recording plugin object that implements every hook is registered on the plugin manager while a real
``enhtrain fit --env test`` runs; each hook must have been called on it, with the arguments its spec names.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from enhtrain.config.runtime import RuntimeKeyRegistry
from enhtrain.plugins import hookspecs
from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.registry import KINDS, KindRegistry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith("enhtrain_"))


def hook(name: str) -> Callable[..., Any]:
    """Return the hook specification function ``name``."""
    return getattr(hookspecs, name)


def signature_line(name: str) -> str:
    """Return ``name(arg, ...)`` as it must appear in the docs."""
    return f"{name}({', '.join(inspect.signature(hook(name)).parameters)})"


@pytest.fixture(scope="module")
def docs_text() -> str:
    """The plugin guide."""
    return DOCS.read_text(encoding="utf-8")


def test_hooks_exist() -> None:
    registrations = {f"enhtrain_register_{kind}" for kind in ("callbacks", "loggers", "profilers", "templates")}
    assert set(HOOK_NAMES) >= {*registrations, "enhtrain_env_overlays", "enhtrain_runtime_keys",
                               "enhtrain_validate_config"}
    assert sorted(n for n in hookspecs.__all__ if n.startswith("enhtrain_")) == HOOK_NAMES


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_a_hookspec(name: str) -> None:
    assert getattr(hook(name), "enhtrain_spec", None) is not None


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_has_docstring(name: str) -> None:
    doc = inspect.getdoc(hook(name))
    assert doc, f"{name} has no docstring"
    assert len(doc.splitlines()[0]) > 20
    for arg in inspect.signature(hook(name)).parameters:
        assert re.search(rf"^\s+{arg}:", doc, re.M), f"{name}: docstring does not describe '{arg}' in Args"


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_fully_annotated(name: str) -> None:
    sig = inspect.signature(hook(name))
    missing = [arg for arg, p in sig.parameters.items() if p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: arguments without a type: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name} has no return type"
    localns = {"KindRegistry": KindRegistry, "RuntimeKeyRegistry": RuntimeKeyRegistry}
    hints = typing.get_type_hints(hook(name), localns=localns)
    assert set(hints) == {*sig.parameters, "return"}


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_signature_is_in_the_docs(name: str, docs_text: str) -> None:
    assert signature_line(name) in docs_text, f"docs/plugins.md does not mention `{signature_line(name)}`"
    assert f"### `{signature_line(name)}`" in docs_text, f"docs/plugins.md has no heading for {name}"


def _recording_registration(kind: str) -> Callable[..., None]:
    """Return a :class:`RecordingPlugin` method implementing ``enhtrain_register_<kind>``."""
    hook_name = f"enhtrain_register_{kind}"

    def record(self: RecordingPlugin, registry: KindRegistry) -> None:
        self._record(hook_name, registry=registry)

    record.__name__ = record.__qualname__ = hook_name
    return hookimpl(record)


class RecordingPlugin:
    """Implements every hook, records each call with its arguments and changes nothing."""

    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {}

    def _record(self, hook_name: str, **arguments: Any) -> None:
        self.calls.setdefault(hook_name, []).append(arguments)

    enhtrain_register_callbacks = _recording_registration("callbacks")
    enhtrain_register_loggers = _recording_registration("loggers")
    enhtrain_register_profilers = _recording_registration("profilers")
    enhtrain_register_templates = _recording_registration("templates")

    @hookimpl
    def enhtrain_validate_config(self, config: dict[str, Any]) -> None:
        self._record("enhtrain_validate_config", config=config)

    @hookimpl
    def enhtrain_env_overlays(self, env: str) -> list[str] | None:
        self._record("enhtrain_env_overlays", env=env)
        return None

    @hookimpl
    def enhtrain_runtime_keys(self, registry: RuntimeKeyRegistry) -> None:
        self._record("enhtrain_runtime_keys", registry=registry)


def _registry_of(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda call: isinstance(call["registry"], KindRegistry) and call["registry"].kind == kind


# What each hook must have been called with during the run of `hook_calls`.
EXPECTED_CALLS: dict[str, Callable[[dict[str, Any]], bool]] = {
    **{f"enhtrain_register_{kind}": _registry_of(kind) for kind in KINDS},
    "enhtrain_validate_config": lambda call: call["config"]["experiment"]["name"] == "hooks"
    and call["config"]["trainer"]["limit_train_batches"] == 4,  # from the `test` overlay
    "enhtrain_env_overlays": lambda call: call == {"env": "test"},
    # The run collects the keys when it starts; the built-in ones are declared before a third-party plugin's.
    "enhtrain_runtime_keys": lambda call: isinstance(call["registry"], RuntimeKeyRegistry)
    and "optimizer.lr" in call["registry"].names(),
}


@pytest.fixture(scope="module")
def hook_calls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The calls that a real ``enhtrain fit --env test`` makes to a registered :class:`RecordingPlugin`."""
    from enhtrain.commands import main
    from enhtrain.testing import temporary_plugins, write_tiny_config

    work = tmp_path_factory.mktemp("hooks")
    write_tiny_config(work / "tiny.yaml", {"experiment": {"name": "hooks", "checkpoint": None}})
    recorder = RecordingPlugin()
    with pytest.MonkeyPatch.context() as patch, temporary_plugins() as manager:
        patch.chdir(work)
        patch.setattr(sys, "argv", ["enhtrain"])
        patch.setenv("ENHTRAIN_PLAIN_PROGRESS", "1")
        for variable in ("ENHTRAIN_RUN_DIR", "ENHTRAIN_ENV", "ENHTRAIN_DEBUG"):
            patch.delenv(variable, raising=False)
        manager.register(recorder, name="hook_recorder")
        try:
            code = main(["fit", "--config", "tiny.yaml", "--env", "test"])
        finally:
            os.environ.pop("ENHTRAIN_RUN_DIR", None)
    assert code == 0
    assert (work / "runs" / "hooks" / "version_0" / "metadata.json").is_file()
    return recorder.calls


def test_the_recording_plugin_implements_every_hook() -> None:
    implemented = sorted(name for name in vars(RecordingPlugin) if name.startswith("enhtrain_"))
    assert implemented == HOOK_NAMES, "add the new hook to RecordingPlugin and EXPECTED_CALLS"
    assert sorted(EXPECTED_CALLS) == HOOK_NAMES


def test_every_hook_is_called_on_a_registered_plugin(hook_calls: dict[str, list[dict[str, Any]]]) -> None:
    assert sorted(hook_calls) == HOOK_NAMES


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_exercised_by_a_test(name: str, hook_calls: dict[str, list[dict[str, Any]]]) -> None:
    calls = hook_calls.get(name, [])
    assert calls, f"`enhtrain fit --env test` did not call {name} on a registered plugin"
    assert all(EXPECTED_CALLS[name](call) for call in calls), f"{name} was called with {calls}"


def test_docs_headings_name_only_real_hooks(docs_text: str) -> None:
    documented = re.findall(r"^### `(enhtrain_\w+)\(", docs_text, re.M)
    assert sorted(documented) == HOOK_NAMES


def test_docs_name_the_environment_variables(docs_text: str) -> None:
    for var in ("ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD", "ENHTRAIN_LOAD_PLUGINS", "ENHTRAIN_DISABLED_PLUGINS"):
        assert f"`{var}" in docs_text


def test_docs_code_blocks_parse(docs_text: str) -> None:
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", docs_text, re.S | re.M)
    languages = {lang for lang, _ in blocks}
    assert {"python", "yaml", "toml", "bash"} <= languages
    assert "" not in languages, "every code block in docs/plugins.md names its language"
    for index, (lang, body) in enumerate(blocks):
        where = f"docs/plugins.md code block {index} ({lang})"
        if lang == "python":
            compile(body, where, "exec")
        elif lang == "yaml":
            assert isinstance(yaml.safe_load(body), dict), where
        elif lang == "toml":
            assert tomllib.loads(body), where


def test_docs_start_from_plugins_new(docs_text: str) -> None:
    first_section = re.search(r"^## (.+)$", docs_text, re.M)
    first_block = re.search(r"^```(\w+)\n(.*?)^```", docs_text, re.S | re.M)

    assert first_section is not None and first_section.group(1) == "Start with `enhtrain plugins new`"
    assert first_block is not None and first_block.group(1) == "console"
    assert first_block.group(2).startswith("$ enhtrain plugins new acme\n")
