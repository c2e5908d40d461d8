"""``enhtrain templates list`` and ``enhtrain templates show NAME``."""

from __future__ import annotations

import sys
from pathlib import Path

from enhtrain.commands._shared import ArgParser
from enhtrain.errors import ConfigError

__all__ = ["describe", "run"]

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


def _list() -> int:
    from enhtrain import plugins

    templates = plugins.get_registry().templates
    width = max((len(n) for n in templates.names()), default=0)
    for entry in templates:
        origin = "" if entry.plugin.distribution == "enhtrain" else f"  [{entry.plugin.describe()}]"
        sys.stdout.write(f"{entry.name:<{width}}  {describe(Path(entry.target))}{origin}\n")
    return 0


def _show(name: str) -> int:
    from enhtrain import plugins

    entry = plugins.get_registry().templates.get(name)
    path = entry.load()
    try:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    except OSError as err:
        origin = entry.plugin.describe()
        raise ConfigError(f"template '{name}' from {origin}: cannot read {path}: {err}") from err
    return 0


def run(args: list[str]) -> int:
    """List templates or print one; ``--help`` on the command or a subcommand prints its usage.

    Raises:
        ConfigError: On bad arguments, or a template that is unknown or cannot be read.
    """
    parser = ArgParser(prog="enhtrain templates", description="Ready-made configs to start from.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=ArgParser)
    sub.add_parser("list", help="list every template with its description")
    show = sub.add_parser("show", help="print a template, ready to save and edit")
    show.add_argument("name", help="the template's name, as `templates list` shows it")
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return _list() if parsed.action == "list" else _show(parsed.name)
