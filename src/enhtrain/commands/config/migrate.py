"""``enhtrain config migrate``: convert an old or legacy config file to the current schema, comments kept."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from enhtrain.errors import ConfigError

__all__ = ["run"]

_USAGE = "usage: enhtrain config migrate OLD.yaml [-o NEW.yaml | -o - | --in-place]"

_HELP = f"""{_USAGE}

Convert a config file to the current schema: a config of schema version 1, the format of a plain
Lightning script (examples/train_script.py), becomes an enhtrain config, each old key where the table of
key changes puts it, and schema_version is set. Comments and the order of keys are kept. What changed is
listed on stderr, each change with its file:line.

options:
  -o, --output FILE  where to write the converted config (atomically); '-' or no -o prints it on stdout
  --in-place         replace OLD.yaml itself (refused otherwise)
  -h, --help         show this help
"""


def _parse(args: list[str]) -> tuple[str, str | None, bool]:
    """Return the input file, the output (``None`` or ``-`` for stdout) and whether to write in place."""
    source: str | None = None
    output: str | None = None
    in_place = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-o", "--output"):
            if i + 1 >= len(args) or not args[i + 1]:
                raise ConfigError(f"config migrate: {arg} needs a file name, or - for stdout; {_USAGE}")
            output = args[i + 1]
            i += 1
        elif arg.startswith("--output="):
            output = arg.partition("=")[2]
        elif arg == "--in-place":
            in_place = True
        elif arg.startswith("-") and arg != "-":
            raise ConfigError(f"config migrate: unknown option '{arg}'; {_USAGE}")
        elif source is None:
            source = arg
        else:
            raise ConfigError(f"config migrate: unexpected argument '{arg}' (one file at a time); {_USAGE}")
        i += 1
    if source is None:
        raise ConfigError(f"config migrate: give the config file to convert; {_USAGE}")
    if in_place and output is not None:
        raise ConfigError(f"config migrate: give either -o {output} or --in-place, not both; {_USAGE}")
    return source, output, in_place


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def run(args: list[str]) -> int:
    """Run ``enhtrain config migrate``; returns the exit status.

    Raises:
        ConfigError: On bad arguments, a missing or invalid input file, an output that is the input without
            ``--in-place``, or an output that cannot be written.
    """
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(_HELP)
        return 0
    source, output, in_place = _parse(args)
    from enhtrain.config.loading import read_config_text
    from enhtrain.config.migration import migrate_text

    target = str(Path(source).resolve()) if in_place else output
    if target not in (None, "-") and not in_place and _same_file(target, source):
        raise ConfigError(
            f"config migrate: -o {output} is the input file {source}: write to another file, or pass --in-place "
            "to replace it"
        )
    text, changes = migrate_text(read_config_text(source), source)
    if target in (None, "-"):
        sys.stdout.write(text)
    else:
        from enhtrain._io import atomic_write_text

        try:
            atomic_write_text(target, text)
        except OSError as err:
            raise ConfigError(
                f"config migrate: cannot write '{output or source}': {err.strerror or err}; check that the folder "
                "exists and is writable"
            ) from err
    summary = [f"enhtrain: {source}: " + (f"{len(changes)} change(s):" if changes else "already current")]
    summary += [f"  - {change}" for change in changes]
    if target not in (None, "-"):
        summary.append(f"enhtrain: wrote {output or source}")
    sys.stderr.write("\n".join(summary) + "\n")
    return 0
