"""``enhtrain templates list`` and ``enhtrain templates show NAME``."""

from __future__ import annotations

import sys
from pathlib import Path

from enhtrain.errors import ConfigError

__all__ = ["describe", "run"]

_USAGE = "usage: enhtrain templates {list,show NAME}"


def describe(path: Path) -> str:
    """Return a template's description: its first comment line."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("#"):
                    return line.lstrip("#").strip()
                if line.strip():
                    break
    except OSError:
        return "(unreadable)"
    return ""


def run(args: list[str]) -> int:
    """List templates or print one."""
    from enhtrain import plugins

    templates = plugins.get_registry().templates
    if args[:1] == ["list"] and len(args) == 1:
        width = max((len(n) for n in templates.names()), default=0)
        for entry in templates:
            origin = "" if entry.plugin.distribution == "enhtrain" else f"  [{entry.plugin.describe()}]"
            sys.stdout.write(f"{entry.name:<{width}}  {describe(Path(entry.target))}{origin}\n")
        return 0
    if args[:1] == ["show"] and len(args) == 2:
        entry = templates.get(args[1])
        path = entry.load()
        try:
            sys.stdout.write(path.read_text(encoding="utf-8"))
        except OSError as err:
            origin = entry.plugin.describe()
            raise ConfigError(f"template '{args[1]}' from {origin}: cannot read {path}: {err}") from err
        return 0
    raise ConfigError(_USAGE)
