"""``enhtrain plugins new``: the distribution it writes installs, passes its own tests and is listed; names are
checked; every choice of kinds gives a clean package; the example plugin has the layout it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from enhtrain.plugins import scaffold
from installing import installed, run_pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "plugins" / "enhtrain-example"


def _unique_name() -> str:
    return f"acme-{uuid.uuid4().hex[:8]}"


def _enhtrain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enhtrain", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.slow
def test_new_plugin_installs_passes_its_tests_and_is_listed(tmp_path: Path) -> None:
    name = _unique_name()
    ident = name.replace("-", "_")
    created = _enhtrain("plugins", "new", name, "--dir", "pkg", cwd=tmp_path)
    package = tmp_path / "pkg"

    assert created.returncode == 0, created.stderr
    assert f"created enhtrain-{name} in pkg/ (plugin '{name}', package enhtrain_{ident}), 11 files:" in created.stdout
    assert "next: pip install -e pkg; cd pkg; python -m pytest" in created.stdout
    readme = (package / "README.md").read_text(encoding="utf-8")
    assert "pip install -e .\npython -m enhtrain plugins\npython -m pytest\n" in readme
    with installed(package, f"enhtrain-{name}"):
        tests = run_pytest(package)
        listing = _enhtrain("plugins", "--json", cwd=tmp_path)
        text = _enhtrain("plugins", cwd=tmp_path)

    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "7 passed" in tests.stdout
    rows = {row["name"]: row for row in json.loads(listing.stdout)["plugins"]}
    assert rows[name]["distribution"] == f"enhtrain-{name}"
    assert rows[name]["version"] == "0.1.0"
    assert rows[name]["error"] is None
    assert rows[name]["registered"] == {
        "callbacks": [f"{ident}_batch_counter"],
        "loggers": [f"{ident}_jsonl"],
        "profilers": [f"{ident}_wall_clock"],
        "templates": [ident],
    }
    assert rows[name]["hooks"] == sorted(
        ["enhtrain_register_callbacks", "enhtrain_register_loggers", "enhtrain_register_profilers",
         "enhtrain_register_templates", "enhtrain_env_overlays", "enhtrain_validate_config"]
    )
    assert f"{name} (enhtrain-{name} 0.1.0)\n  callbacks: {ident}_batch_counter\n" in text.stdout
    assert name not in _enhtrain("plugins", cwd=tmp_path).stdout  # uninstalled again


@pytest.mark.slow
def test_new_plugin_tests_pass_before_it_is_installed(tmp_path: Path) -> None:
    name = _unique_name()
    plan = scaffold.new_plugin(name, ["template", "env", "check"])
    scaffold.write_plugin(plan, tmp_path / name)

    tests = run_pytest(tmp_path / name, "-k", "not installed")

    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "4 passed, 1 deselected" in tests.stdout


KIND_CHOICES = [[kind] for kind in scaffold.KINDS] + [list(scaffold.KINDS), ["logger", "check"]]


@pytest.mark.parametrize("kinds", KIND_CHOICES, ids=lambda kinds: ",".join(kinds))
def test_every_choice_of_kinds_gives_a_clean_package(tmp_path: Path, kinds: list[str]) -> None:
    plan = scaffold.plan_plugin("acme", kinds)
    written = scaffold.write_plugin(plan, tmp_path / "acme")

    assert {p.relative_to(tmp_path / "acme").as_posix() for p in written} == set(plan.files)
    for relative, text in plan.files.items():
        assert "@@" not in text, relative
        if relative.endswith(".py"):
            compile(text, relative, "exec")
    project = tomllib.loads(plan.files["pyproject.toml"])
    assert project["project"]["name"] == "enhtrain-acme"
    assert project["project"]["entry-points"]["enhtrain"] == {"acme": "enhtrain_acme.plugin"}
    data = project["tool"]["setuptools"]["package-data"]["enhtrain_acme"]
    assert ("templates/*.yaml" in data) is ("template" in kinds)
    assert ("envs/*.yaml" in data) is ("env" in kinds)
    plugin = plan.files["src/enhtrain_acme/plugin.py"]
    hooks = {"callback": "enhtrain_register_callbacks", "logger": "enhtrain_register_loggers",
             "profiler": "enhtrain_register_profilers", "template": "enhtrain_register_templates",
             "env": "enhtrain_env_overlays", "check": "enhtrain_validate_config"}
    for kind, hook in hooks.items():
        assert (f"def {hook}(" in plugin) is (kind in kinds)
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=tmp_path / "acme",
                          capture_output=True, text=True, timeout=120, check=False)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["9lives"], "plugins new: '9lives' is not a valid plugin name: use lower-case letters, digits"),
        (["bad name!"], "'bad name!' is not a valid plugin name"),
        (["acme--x"], "'acme--x' is not a valid plugin name"),
        (["enhtrain"], "'enhtrain' is not a valid plugin name"),
        (["example"], "the name 'example' is already taken by the installed plugin example (enhtrain-example "),
        (["csv"], "the name 'csv' is already taken by the logger 'csv' of plugin enhtrain.plugins.builtin.loggers"),
        (["quickstart"], "the name 'quickstart' is already taken by the template 'quickstart' of plugin "
                         "enhtrain.plugins.builtin.templates"),
        (["dev"], "the name 'dev' is already taken by the built-in environment 'dev': choose another name"),
        (["acme", "--kinds", "callback,widget"], "plugins new: unknown kind 'widget' in --kinds: give a "
                                                 "comma-separated list of callback, logger, profiler, template, env, "
                                                 "check"),
        (["acme", "--dir", "taken"], "plugins new: 'taken' already exists and is not an empty folder: choose "
                                     "another --dir"),
        ([], "enhtrain plugins new: the following arguments are required: name"),
        (["a" * 300], "plugins new: the plugin name 'aaaaaaaaaa"),
        (["a" * 300], "has 300 characters, more than 64: choose a shorter name"),
        (["ab\ncd"], "plugins new: 'ab\\ncd' is not a valid plugin name"),
    ],
)
def test_names_and_options_are_checked(enhtrain_cli: Any, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine\n", encoding="utf-8")

    result = enhtrain_cli("plugins", "new", *args)

    assert result.exit_code == 2
    assert result.stderr.startswith("enhtrain: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert (tmp_path / "taken" / "keep.txt").read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize("link_to", ["nowhere", "elsewhere"], ids=["dangling", "to_a_folder"])
def test_a_dir_that_is_a_symbolic_link_is_refused(enhtrain_cli: Any, tmp_path: Path, link_to: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(link_to)

    result = enhtrain_cli("plugins", "new", "acme", "--dir", "link", "--kinds", "check")

    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "plugins new: 'link' is a symbolic link: choose another --dir" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "link"]
    assert not (tmp_path / "nowhere").exists() and not any((tmp_path / "elsewhere").iterdir())


def test_a_folder_that_cannot_be_made_leaves_nothing(enhtrain_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine\n", encoding="utf-8")

    result = enhtrain_cli("plugins", "new", "acme", "--dir", "file/acme", "--kinds", "check")

    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "plugins new: cannot write 'file/acme': " in result.stderr and "choose another --dir" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_empty_folder_is_filled_in_place(enhtrain_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    before = (tmp_path / "here").stat().st_ino

    result = enhtrain_cli("plugins", "new", "acme", "--dir", "here", "--kinds", "check")

    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "here").stat().st_ino == before
    assert (tmp_path / "here" / "pyproject.toml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no temp folder left beside it


def test_a_leading_enhtrain_prefix_is_dropped(enhtrain_cli: Any, tmp_path: Path) -> None:
    result = enhtrain_cli("plugins", "new", "enhtrain-Acme-Tools", "--kinds", "check")

    assert result.exit_code == 0, result.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "acme-tools").rglob("*") if p.is_file()) \
        == ["acme-tools/README.md", "acme-tools/pyproject.toml", "acme-tools/src/enhtrain_acme_tools/__init__.py",
            "acme-tools/src/enhtrain_acme_tools/plugin.py", "acme-tools/src/enhtrain_acme_tools/py.typed",
            "acme-tools/tests/test_plugin.py"]
    project = tomllib.loads((tmp_path / "acme-tools" / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["enhtrain"] == {"acme-tools": "enhtrain_acme_tools.plugin"}


def _example_files() -> set[str]:
    # What git tracks: no caches (__pycache__, .pytest_cache, .ruff_cache), no build metadata (*.egg-info).
    return {
        relative.as_posix()
        for relative in (p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if p.is_file())
        if not any(part == "__pycache__" or part.startswith(".") or part.endswith(".egg-info")
                   for part in relative.parts)
    }


def test_the_example_plugin_has_the_layout_plugins_new_writes() -> None:
    plan = scaffold.plan_plugin("example")
    example = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))
    generated = tomllib.loads(plan.files["pyproject.toml"])

    assert _example_files() == set(plan.files)
    assert example["project"]["entry-points"] == generated["project"]["entry-points"]
    assert example["tool"]["setuptools"] == generated["tool"]["setuptools"]
    assert example["tool"]["pytest"] == generated["tool"]["pytest"]
    assert example["build-system"] == generated["build-system"]
    example_plugin = (EXAMPLE / "src" / "enhtrain_example" / "plugin.py").read_text(encoding="utf-8")
    for hook in ("enhtrain_register_callbacks", "enhtrain_register_loggers", "enhtrain_register_profilers",
                 "enhtrain_register_templates", "enhtrain_env_overlays", "enhtrain_validate_config"):
        assert f"def {hook}(" in example_plugin and f"def {hook}(" in plan.files["src/enhtrain_example/plugin.py"]
    assert os.path.getsize(EXAMPLE / "src" / "enhtrain_example" / "py.typed") == 0
