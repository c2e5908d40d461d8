"""``enhtrain plugins [--json]`` lists every plugin; ``enhtrain plugins new NAME`` writes a new plugin distribution.

The listing shows each plugin's version, what it registered, and any failure (with the original traceback under
``ENHTRAIN_DEBUG=1``). It exits with status 1 when a plugin failed, as ``pip check`` does for broken
requirements, and 0 otherwise.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from enhtrain.errors import ConfigError, one_line

__all__ = ["run"]

_USAGE = "usage: enhtrain plugins [--json] | enhtrain plugins new NAME [--dir DIR] [--kinds KIND,...]"


def run(args: list[str]) -> int:
    """List plugins (exit status 1 when one failed, 0 otherwise), or write a new plugin with ``new``."""
    if args[:1] == ["new"]:
        return _new(args[1:])
    if {"-h", "--help"} & set(args):
        sys.stdout.write(
            f"{_USAGE}\n\nList every plugin, its version, what it registered and any failure (exit status 1 when a\n"
            "plugin failed; ENHTRAIN_DEBUG=1 adds each failure's traceback), or write a new plugin with `new`.\n"
        )
        return 0
    from enhtrain import plugins

    unknown = [a for a in args if a != "--json"]
    if unknown:
        raise ConfigError(f"enhtrain plugins: unknown argument '{unknown[0]}'; {_USAGE}")
    # A plugin that failed to load comes first, where it is seen.
    rows = sorted(plugins.list_plugins(envs=True), key=lambda row: row["error"] is None)
    for row in rows:
        row["runtime_keys"] = []
    registry = plugins.get_registry()
    _add_runtime_keys(rows)
    for line in plugins.warnings():
        sys.stderr.write(f"enhtrain: warning: {one_line(line)}\n")
    conflicts = {
        kind: {name: [p.describe() for p in owners] for name, owners in reg.conflicts.items()}
        for kind, reg in registry.kinds.items()
        if reg.conflicts
    }
    status = 1 if any(row["error"] for row in rows) else 0
    if "--json" in args:
        json.dump({"plugins": rows, "conflicts": conflicts}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return status
    debug = plugins.env_flag("ENHTRAIN_DEBUG")
    out = sys.stdout
    for row in rows:
        origin = "built-in" if row["builtin"] else f"{row['distribution'] or '?'} {row['version'] or ''}".strip()
        out.write(f"{row['name']} ({origin})\n")
        for kind, names in sorted(row["registered"].items()):
            out.write(f"  {kind}: {', '.join(sorted(names))}\n")
        for env, files in sorted(row["envs"].items()):
            out.write(f"  env overlay: {env} -> {', '.join(files)}\n")
        if row["runtime_keys"]:
            out.write(f"  runtime keys: {', '.join(row['runtime_keys'])}\n")
        if row["config_check"]:
            out.write("  config check: enhtrain_validate_config\n")
        if row["error"]:
            out.write(f"  FAILED: {row['error']}\n")
            if debug and row["traceback"]:
                out.write(textwrap.indent(row["traceback"].rstrip("\n"), "    ") + "\n")
    for kind, names in conflicts.items():
        for name, owners in names.items():
            out.write(f"conflict: {kind[:-1]} '{name}' registered by {' and '.join(owners)}\n")
    return status


def _add_runtime_keys(rows: list[dict[str, Any]]) -> None:
    """Fill each row's ``runtime_keys``: the keys its ``enhtrain_runtime_keys`` declares (``enhtrain runs set``)."""
    from enhtrain.config.runtime import collect_runtime_keys
    from enhtrain.errors import PluginError

    try:
        keys = collect_runtime_keys()
    except PluginError as err:
        sys.stderr.write(f"enhtrain: warning: {one_line(str(err))}\n")
        return
    by_plugin: dict[str, list[str]] = {}
    for key in keys:
        by_plugin.setdefault(key.plugin, []).append(key.name)
    for row in rows:
        row["runtime_keys"] = by_plugin.get(row["name"], [])


def _new(args: list[str]) -> int:
    """``enhtrain plugins new NAME [--dir DIR] [--kinds KIND,...]``."""
    from enhtrain.commands._shared import ArgParser
    from enhtrain.plugins import scaffold

    if {"-h", "--help"} & set(args):
        sys.stdout.write(
            "usage: enhtrain plugins new NAME [--dir DIR] [--kinds KIND,...]\n\n"
            "Write a plugin distribution: pyproject.toml with the enhtrain entry point, a src/ package with one\n"
            "example per kind, tests that use enhtrain.testing, and a README.\n\n"
            "  NAME           the plugin's name; the distribution is enhtrain-NAME, the package enhtrain_NAME\n"
            "  --dir DIR      where to write it (missing or empty; default ./NAME)\n"
            f"  --kinds KINDS  comma-separated, from {','.join(scaffold.KINDS)} (default: all)\n"
        )
        return 0
    parser = ArgParser(prog="enhtrain plugins new", add_help=False)
    parser.add_argument("name")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--kinds", default=",".join(scaffold.KINDS))
    options = parser.parse_args(args)
    kinds = [kind.strip() for kind in options.kinds.split(",") if kind.strip()]
    plan = scaffold.new_plugin(options.name, kinds)
    target = Path(options.dir) if options.dir is not None else Path(plan.name)
    written = scaffold.write_plugin(plan, target)
    out = sys.stdout
    out.write(
        f"created {plan.distribution} in {target}/ (plugin '{plan.name}', package {plan.package}), "
        f"{len(written)} files:\n"
    )
    for path in written:
        out.write(f"  {path.relative_to(target).as_posix()}\n")
    for kind, component in plan.components.items():
        out.write(f"{kind}: {component}\n")
    out.write(f"next: pip install -e {target}; cd {target}; python -m pytest\n")
    return 0
