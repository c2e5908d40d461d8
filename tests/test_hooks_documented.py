"""Every plugin hook is typed, has a docstring, is documented in docs/plugins.md and is used by a test."""

from __future__ import annotations

import inspect
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from enhtrain.plugins import hookspecs
from enhtrain.plugins.registry import KindRegistry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent
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
    assert set(HOOK_NAMES) >= {
        "enhtrain_env_overlays",
        "enhtrain_register_callbacks",
        "enhtrain_register_loggers",
        "enhtrain_register_profilers",
        "enhtrain_register_templates",
        "enhtrain_validate_config",
    }
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
    hints = typing.get_type_hints(hook(name), localns={"KindRegistry": KindRegistry})
    assert set(hints) == {*sig.parameters, "return"}


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_signature_is_in_the_docs(name: str, docs_text: str) -> None:
    assert signature_line(name) in docs_text, f"docs/plugins.md does not mention `{signature_line(name)}`"
    assert f"### `{signature_line(name)}`" in docs_text, f"docs/plugins.md has no heading for {name}"


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_exercised_by_a_test(name: str) -> None:
    me = Path(__file__).resolve()
    users = [
        path.name
        for path in sorted(TESTS.rglob("*.py"))
        if path.resolve() != me and name in path.read_text(encoding="utf-8")
    ]
    assert users, f"no test under tests/ uses {name}"


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
