"""``enhtrain plugins [--json]``: every plugin, its version, what it registered, and any failure."""

from __future__ import annotations

import json
import sys

from enhtrain.errors import ConfigError

__all__ = ["run"]


def run(args: list[str]) -> int:
    """List plugins, with the reason for any that failed; exit status 0 (``--json`` for machines)."""
    from enhtrain import plugins

    unknown = [a for a in args if a != "--json"]
    if unknown:
        raise ConfigError(f"enhtrain plugins: unknown argument '{unknown[0]}'; usage: enhtrain plugins [--json]")
    rows = plugins.list_plugins()
    registry = plugins.get_registry()
    conflicts = {
        kind: {name: [p.describe() for p in owners] for name, owners in reg.conflicts.items()}
        for kind, reg in registry.kinds.items()
        if reg.conflicts
    }
    if "--json" in args:
        json.dump({"plugins": rows, "conflicts": conflicts}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    for row in rows:
        origin = "built-in" if row["builtin"] else f"{row['distribution'] or '?'} {row['version'] or ''}".strip()
        out.write(f"{row['name']} ({origin})\n")
        for kind, names in sorted(row["registered"].items()):
            out.write(f"  {kind}: {', '.join(sorted(names))}\n")
        if row["error"]:
            out.write(f"  FAILED: {row['error']}\n")
    for kind, names in conflicts.items():
        for name, owners in names.items():
            out.write(f"conflict: {kind[:-1]} '{name}' registered by {' and '.join(owners)}\n")
    return 0
