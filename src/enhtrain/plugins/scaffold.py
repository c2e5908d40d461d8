"""``enhtrain plugins new NAME``: write a new plugin distribution that installs, tests and lists at once.

For the plugin ``acme`` it writes::

    acme/
      pyproject.toml                 the ``enhtrain`` entry point: acme = "enhtrain_acme.plugin"
      README.md                      what it registers, and how to install and test it
      src/enhtrain_acme/__init__.py
      src/enhtrain_acme/plugin.py    the hook implementations; components named by import path
      src/enhtrain_acme/callbacks.py BatchCounter, registered as acme_batch_counter
      src/enhtrain_acme/loggers.py   JsonlLogger, registered as acme_jsonl
      src/enhtrain_acme/profilers.py WallClockProfiler, registered as acme_wall_clock
      src/enhtrain_acme/templates/acme.yaml, src/enhtrain_acme/envs/acme.yaml
      src/enhtrain_acme/py.typed
      tests/test_plugin.py           tests with enhtrain's fixtures (enhtrain.testing)

with one small working example per chosen kind (:data:`KINDS`). Nothing here imports torch.

The files' text is package data, ``scaffold_files/*.tmpl``, with ``@@TOKEN@@`` placeholders: ``@@NAME@@`` (the
plugin's entry-point name), ``@@ID@@`` (the same with ``_`` for ``-``, the prefix of every component name),
``@@DIST@@`` (the distribution), ``@@PACKAGE@@`` (the import package), ``@@VERSIONS@@`` (the enhtrain versions to
depend on), and placeholders of one file's own. A placeholder alone on its line stands for whole lines, possibly
none. Files named after a kind (``plugin_<kind>.py``, ``tests_<kind>.py``, ``tests_fit_<kind>.py``) are the parts
joined for the kinds chosen.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import NamedTuple

from enhtrain._io import TMP_PREFIX, atomic_write_text, file_mode
from enhtrain.errors import ConfigError, quote
from enhtrain.plugins.manager import ENTRY_POINT_GROUP, normalize_name

__all__ = ["KINDS", "MAX_NAME_LENGTH", "PluginPlan", "new_plugin", "plan_plugin", "write_plugin"]

KINDS = ("callback", "logger", "profiler", "template", "env", "check")
"""The kinds of example ``plugins new`` can write, in the order of ``--kinds``."""

MAX_NAME_LENGTH = 64
"""The longest plugin name: its folder, package and file names must fit the file system's 255 bytes."""

_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_RUNTIME_KINDS = ("callback", "logger", "profiler")
_OWN_TESTS = ("callback", "template", "env", "check")
_PLUGIN_CONSTANTS = {
    "template": 'TEMPLATE_DIR = PACKAGE_DIR / "templates"\n',
    "env": 'ENV_DIR = PACKAGE_DIR / "envs"\n',
    "check": "MAX_EPOCHS = 1000\n",
}


class _Use(NamedTuple):
    """How a config turns on a runtime component: a line of a template, the README's block, and in words."""

    inline: str
    block: str
    effect: str


_USES = {
    "logger": _Use("  loggers: {@@ID@@_jsonl: {}}", "  loggers:\n    @@ID@@_jsonl: {}", "logged as JSON lines"),
    "callback": _Use("  callbacks: {@@ID@@_batch_counter: {}}", "  callbacks:\n    @@ID@@_batch_counter: {}",
                     "counting batches"),
    "profiler": _Use("  profiler: @@ID@@_wall_clock", "  profiler: @@ID@@_wall_clock", "profiled by wall clock"),
}
_COMPONENTS = {
    "callback": ("callbacks", "@@ID@@_batch_counter", "`@@PACKAGE@@.callbacks.BatchCounter`: logs `train/batches`, "
                 "the number of training batches so far, at the end of every epoch"),
    "logger": ("loggers", "@@ID@@_jsonl", "`@@PACKAGE@@.loggers.JsonlLogger`: one JSON line per `log_metrics` "
               "call in `<run>/logs/@@ID@@_jsonl/metrics.jsonl`"),
    "profiler": ("profilers", "@@ID@@_wall_clock", "`@@PACKAGE@@.profilers.WallClockProfiler`: wall time per "
                 "action, in `<run>/profiler/fit-@@ID@@_wall_clock.txt`"),
    "template": ("templates", "@@ID@@", "an MLP on scikit-learn's digits for 2 epochs"),
    "env": ("environments", "@@ID@@", "`--env @@ID@@`: one epoch of five batches"),
    "check": ("config check", "", "refuses `trainer.max_epochs` above 1000"),
}


@dataclass(frozen=True)
class PluginPlan:
    """A plugin distribution to write.

    Attributes:
        name: The plugin's name: its entry-point name, which ``ENHTRAIN_LOAD_PLUGINS`` and
            ``ENHTRAIN_DISABLED_PLUGINS`` take.
        distribution: The distribution's name, ``enhtrain-<name>``.
        package: The import package, ``enhtrain_<name>``.
        kinds: The kinds of example it holds.
        components: Kind to the name it registers (``{"callback": "acme_batch_counter", ...}``).
        files: Path relative to the distribution's folder to the file's text.
    """

    name: str
    distribution: str
    package: str
    kinds: tuple[str, ...]
    components: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _check_name(name: str) -> str:
    plain = name.strip().lower()
    for prefix in ("enhtrain-", "enhtrain_"):
        plain = plain.removeprefix(prefix)
    package = "enhtrain_" + plain.replace("-", "_")
    if not _NAME.fullmatch(plain) or not package.isidentifier() or plain == "enhtrain":
        raise ConfigError(
            f"plugins new: {quote(name)} is not a valid plugin name: use lower-case letters, digits, '-' and '_', "
            "starting with a letter (for example acme or acme-tools)"
        )
    if len(plain) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"plugins new: the plugin name {quote(name, 40)} has {len(plain)} characters, more than "
            f"{MAX_NAME_LENGTH}: choose a shorter name"
        )
    return plain


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ConfigError(
            f"plugins new: unknown kind '{unknown[0] if unknown else ''}' in --kinds: give a comma-separated list "
            f"of {', '.join(KINDS)}"
        )
    return tuple(kind for kind in KINDS if kind in kinds)


@cache
def _read(name: str) -> str:
    """Return the text of ``scaffold_files/<name>.tmpl``."""
    return (resources.files("enhtrain.plugins") / "scaffold_files" / f"{name}.tmpl").read_text(encoding="utf-8")


def _fill(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(f"@@{token}@@", value)
    return text


def _fill_lines(text: str, token: str, lines: str) -> str:
    """Put ``lines`` (each ending with a newline, or none) in place of the line ``@@token@@``."""
    return text.replace(f"@@{token}@@\n", lines)


def _parts(names: list[str]) -> str:
    """Return the template files ``names`` joined, each after two blank lines, as top-level definitions are."""
    return "".join("\n\n" + _read(name) for name in names)


def plan_plugin(name: str, kinds: Sequence[str] = KINDS) -> PluginPlan:
    """Return the files of a new plugin distribution, checking the name's form but not what is installed.

    Args:
        name: The plugin's name (``acme``); a leading ``enhtrain-`` is dropped.
        kinds: The kinds of example to include, from :data:`KINDS`.

    Raises:
        ConfigError: If the name is not a valid plugin name, or a kind is unknown.
    """
    plain = _check_name(name)
    chosen = _check_kinds(kinds)
    ident = plain.replace("-", "_")
    values = {
        "NAME": plain,
        "ID": ident,
        "DIST": f"enhtrain-{plain}",
        "PACKAGE": f"enhtrain_{ident}",
        "VERSIONS": _enhtrain_range(),
    }
    components = {kind: _fill(_COMPONENTS[kind][1], values) for kind in chosen if _COMPONENTS[kind][1]}
    registered = {
        _COMPONENTS[kind][0]: [components[kind]] for kind in chosen if kind in ("callback", "logger", "profiler",
                                                                             "template")
    }
    values["REGISTERED"] = (
        "{\n" + "".join(f"        {_py(kind)}: {_py(names)},\n" for kind, names in registered.items()) + "    }"
    )
    values["SUMMARY"] = ", ".join(_summary(kind) for kind in chosen)
    data = ['"py.typed"'] + ['"templates/*.yaml"'] * ("template" in chosen) + ['"envs/*.yaml"'] * ("env" in chosen)
    values["PACKAGE_DATA"] = ", ".join(data)
    package_dir = f"src/{values['PACKAGE']}"
    out: dict[str, str] = {
        "pyproject.toml": _fill(_read("pyproject.toml"), values),
        f"{package_dir}/__init__.py": _fill(_read("package_init.py"), {**values, "BULLETS": _bullets(chosen, values)}),
        f"{package_dir}/plugin.py": _plugin_module(chosen, values),
        f"{package_dir}/py.typed": "",
        "tests/test_plugin.py": _tests(chosen, values),
    }
    for kind in _RUNTIME_KINDS:
        if kind in chosen:
            module = _COMPONENTS[kind][0]
            out[f"{package_dir}/{module}.py"] = _fill(_read(f"{module}.py"), values)
    if "template" in chosen:
        out[f"{package_dir}/templates/{ident}.yaml"] = _template(chosen, values)
    if "env" in chosen:
        out[f"{package_dir}/envs/{ident}.yaml"] = _fill(_read("env.yaml"), values)
    out["README.md"] = _readme(chosen, values, sorted(out))
    return PluginPlan(plain, values["DIST"], values["PACKAGE"], chosen, components, dict(sorted(out.items())))


def _enhtrain_range() -> str:
    try:
        major, minor = metadata.version("enhtrain").split(".")[:2]
    except (metadata.PackageNotFoundError, ValueError):
        return "enhtrain"
    if not (major.isdigit() and minor.isdigit()):
        return "enhtrain"
    upper = f"{int(major)}.{int(minor) + 1}" if major == "0" else f"{int(major) + 1}"
    return f"enhtrain>={major}.{minor},<{upper}"


def _summary(kind: str) -> str:
    return {"callback": "a callback", "logger": "a logger", "profiler": "a profiler", "template": "a template",
            "env": "an environment overlay", "check": "a config check"}[kind]


def _bullets(kinds: tuple[str, ...], values: dict[str, str]) -> str:
    lines = {
        "callback": "- the callback ``@@ID@@_batch_counter`` (:class:`~@@PACKAGE@@.callbacks.BatchCounter`),",
        "logger": "- the logger ``@@ID@@_jsonl`` (:class:`~@@PACKAGE@@.loggers.JsonlLogger`),",
        "profiler": "- the profiler ``@@ID@@_wall_clock`` (:class:`~@@PACKAGE@@.profilers.WallClockProfiler`),",
        "template": "- the config template ``@@ID@@``,",
        "env": "- an overlay for the environment ``@@ID@@``,",
        "check": "- a config check that refuses more than 1000 epochs.",
    }
    return "\n".join(_fill(lines[kind], values) for kind in kinds)


def _plugin_module(kinds: tuple[str, ...], values: dict[str, str]) -> str:
    stdlib = []
    if {"template", "env"} & set(kinds):
        stdlib.append("from pathlib import Path\n")
    if "check" in kinds:
        stdlib.append("from typing import Any\n")
    own = ["from enhtrain import ConfigError, hookimpl\n" if "check" in kinds else "from enhtrain import hookimpl\n"]
    if {"callback", "logger", "profiler", "template"} & set(kinds):
        own.append("from enhtrain.plugins.registry import KindRegistry\n")
    constants = ["PACKAGE_DIR = Path(__file__).resolve().parent\n"] if {"template", "env"} & set(kinds) else []
    constants += [line for kind, line in _PLUGIN_CONSTANTS.items() if kind in kinds]
    blocks = ["".join(block) for block in (stdlib, own, constants) if block]
    text = _read("plugin_head.py") + "\n".join(blocks) + _parts([f"plugin_{kind}.py" for kind in kinds])
    return _fill(text, values)


def _py(value: object) -> str:
    """Python source for a value made of dicts, lists, strings and ``None``, with double quotes."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _template(kinds: tuple[str, ...], values: dict[str, str]) -> str:
    chosen = [use for kind, use in _USES.items() if kind in kinds]
    with_text = "".join(f", {use.effect}" for use in chosen)
    text = _fill_lines(_read("template.yaml"), "TEMPLATE_EXPERIMENT", "".join(f"{use.inline}\n" for use in chosen))
    return _fill(text, {**values, "TEMPLATE_WITH": with_text})


def _tests(kinds: tuple[str, ...], values: dict[str, str]) -> str:
    text = _read("tests_head.py")
    runtime = [kind for kind in _RUNTIME_KINDS if kind in kinds]
    if runtime:
        experiment = {"name": "@@ID@@-test", "checkpoint": None}
        loggers: dict[str, object] = {"tensorboard": None}
        if "logger" in kinds:
            loggers["@@ID@@_jsonl"] = {}
        experiment["loggers"] = loggers
        if "callback" in kinds:
            experiment["callbacks"] = {"@@ID@@_batch_counter": {}}
        if "profiler" in kinds:
            experiment["profiler"] = "@@ID@@_wall_clock"
        lines = "".join(f"        {_py(key)}: {_py(value)},\n" for key, value in experiment.items())
        fit = _fill_lines(_parts(["tests_fit.py"]), "FIT_EXPERIMENT", lines)
        text += _fill_lines(fit, "FIT_CHECKS", "".join(_read(f"tests_fit_{kind}.py") for kind in runtime))
    text += _parts([f"tests_{kind}.py" for kind in kinds if kind in _OWN_TESTS])
    testing_import = "from enhtrain.testing import write_tiny_config\n\n" if "write_tiny_config(" in text else "\n"
    return _fill(_fill_lines(text, "TESTING_IMPORT", testing_import), values)


def _readme(kinds: tuple[str, ...], values: dict[str, str], paths: list[str]) -> str:
    rows = []
    for kind in kinds:
        _, name, what = _COMPONENTS[kind]
        shown = f"`{_fill(name, values)}`" if name else ""
        rows.append(f"| {'config check' if kind == 'check' else kind} | {shown} | {_fill(what, values)} |")
    use = [entry.block for kind, entry in _USES.items() if kind in kinds]
    use_text = ""
    if use:
        use_text = "## Use\n\n```yaml\nexperiment:\n" + "\n".join(use) + "\n```\n\n"
    if "template" in kinds:
        use_text += (
            "Start from the template:\n\n```bash\npython -m enhtrain templates show @@ID@@ > @@ID@@.yaml\n"
            "python -m enhtrain fit --config @@ID@@.yaml\n```\n\n"
        )
    layout = "\n".join(["README.md", *paths])
    return _fill(_read("README.md"), {**values, "README_ROWS": "\n".join(rows), "README_USE": _fill(use_text, values),
                                "README_LAYOUT": layout})


def _installed_clash(plan: PluginPlan) -> str | None:
    wanted = {normalize_name(plan.name), normalize_name(plan.distribution)}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        names = {normalize_name(ep.name)} | ({normalize_name(dist.name)} if dist is not None else set())
        if names & wanted:
            where = f" ({dist.name} {dist.version})" if dist is not None else ""
            return f"the installed plugin {ep.name}{where}"
    try:
        dist = metadata.distribution(plan.distribution)
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        return f"the installed distribution {dist.metadata['Name']} {dist.version}"
    if importlib.util.find_spec(plan.package) is not None:
        return f"the installed package {plan.package}"
    return None


def _component_clash(plan: PluginPlan) -> str | None:
    from enhtrain import plugins
    from enhtrain.plugins.builtin.envs import builtin_envs

    registry = plugins.get_registry()
    names = {plan.name, plan.name.replace("-", "_"), *plan.components.values()}
    for kind, kind_registry in registry.kinds.items():
        for entry in kind_registry:
            if entry.name in names:
                return f"the {kind[:-1]} '{entry.name}' of plugin {entry.plugin.describe()}"
    envs = set(builtin_envs()) & names
    if envs:
        return f"the built-in environment '{sorted(envs)[0]}'"
    return None


def new_plugin(name: str, kinds: Sequence[str] = KINDS) -> PluginPlan:
    """Plan a new plugin distribution after checking that its names are free.

    Args:
        name: The plugin's name.
        kinds: The kinds of example to include.

    Raises:
        ConfigError: If the name is not valid, a kind is unknown, or the plugin, its distribution, its package or
            one of its component names is already taken.
    """
    plan = plan_plugin(name, kinds)
    taken = _installed_clash(plan) or _component_clash(plan)
    if taken is not None:
        raise ConfigError(
            f"plugins new: the name '{plan.name}' is already taken by {taken}: choose another name"
        )
    return plan


def write_plugin(plan: PluginPlan, target: str | Path) -> list[Path]:
    """Write the plan's files into ``target``, which must be missing or an empty folder.

    The distribution is built in a temp folder beside ``target`` and renamed into place, so that ``target``
    appears complete or not at all.

    Args:
        plan: What to write.
        target: The distribution's folder.

    Returns:
        The files written, sorted.

    Raises:
        ConfigError: If ``target`` is a symbolic link, exists and is not an empty folder, or cannot be written.
    """
    from enhtrain.security import inside

    target = Path(target)
    if target.is_symlink():
        raise ConfigError(f"plugins new: {quote(str(target))} is a symbolic link: choose another --dir")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"plugins new: {quote(str(target))} already exists and is not an empty folder: choose another --dir"
        )
    parent = Path(os.path.abspath(target)).parent
    building: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=parent))
        building.chmod(file_mode() | 0o111)  # mkdtemp's 0700 would outlive the rename
        for relative, text in plan.files.items():
            path = inside(building / relative, building, what="plugin file")
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        destination = inside(target, parent, what="plugin folder")
        if not os.path.lexists(destination):
            os.rename(building, destination)
        else:
            # An empty folder the user made (perhaps the working directory) keeps its identity: move the
            # finished parts into it, never over anything that appeared meanwhile.
            for entry in sorted(building.iterdir()):
                moved = inside(destination / entry.name, destination, what="plugin file")
                if os.path.lexists(moved):
                    raise FileExistsError(17, f"{entry.name} appeared while the plugin was written")
                os.rename(entry, moved)
            inside(building, parent, what="plugin folder").rmdir()
        building = None
    except OSError as err:
        reason = err.strerror or str(err)
        raise ConfigError(
            f"plugins new: cannot write {quote(str(target))}: {reason}: choose another --dir"
        ) from None
    finally:
        if building is not None:
            shutil.rmtree(inside(building, parent, what="plugin folder"), ignore_errors=True)
    return sorted(target / relative for relative in plan.files)
