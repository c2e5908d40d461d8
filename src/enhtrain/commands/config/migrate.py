"""``enhtrain config migrate``: convert an old or legacy config file to the current schema, comments kept."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from enhtrain.errors import ConfigError, quote

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


_LONG = ("--output", "--in-place", "--help")


def _long_option(arg: str) -> tuple[str, str | None]:
    """Return the long option ``arg`` names, as argparse reads it (an unambiguous prefix: ``--out``), and the
    value given after ``=`` (``None`` without one)."""
    name, sep, value = arg.partition("=")
    matches = [option for option in _LONG if option == name] or [option for option in _LONG if option.startswith(name)]
    if len(matches) != 1:
        what = "ambiguous" if matches else "unknown"
        raise ConfigError(f"config migrate: {what} option {quote(name)}; {_USAGE}")
    return matches[0], value if sep else None


def _parse(args: list[str]) -> tuple[str, str | None, bool]:
    """Return the input file, the output (``None`` or ``-`` for stdout) and whether to write in place."""
    source: str | None = None
    output: str | None = None
    in_place = False
    i = 0
    while i < len(args):
        arg = args[i]
        option, value = _long_option(arg) if arg.startswith("--") and arg != "--" else (arg, None)
        if option.startswith("-o") and len(option) > 2:
            option, value = "-o", option[2:]  # -oNEW.yaml, as argparse reads it
        if option in ("-o", "--output"):
            if value is None:
                value = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            if not value:
                raise ConfigError(f"config migrate: {option} needs a file name, or - for stdout; {_USAGE}")
            output = value
        elif option == "--in-place":
            if value is not None:
                raise ConfigError(f"config migrate: --in-place takes no value (got {quote(value)}); {_USAGE}")
            in_place = True
        elif arg.startswith("-") and arg != "-":
            raise ConfigError(f"config migrate: unknown option {quote(arg)}; {_USAGE}")
        elif source is None:
            source = arg
        else:
            raise ConfigError(f"config migrate: unexpected argument {quote(arg)} (one file at a time); {_USAGE}")
        i += 1
    if source is None:
        raise ConfigError(f"config migrate: give the config file to convert; {_USAGE}")
    if in_place and output is not None:
        raise ConfigError(f"config migrate: give either -o {output} or --in-place, not both; {_USAGE}")
    return source, output, in_place


def _check_target(target: str, option: str) -> int | None:
    """Refuse a target that is a link, not a regular file, or read-only; return the mode of the file replaced.

    Returns:
        The permission bits of the existing file, to keep them; ``None`` when the file does not exist yet.
    """
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigError(f"config migrate: cannot write {quote(target)}: {err.strerror or err}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(
            f"config migrate: {option} {quote(target)} is a symbolic link: name the file it points to, or another file"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"config migrate: {option} {quote(target)} is not a regular file: name a YAML file")
    if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise ConfigError(
            f"config migrate: {option} {quote(target)} is read-only: make it writable (chmod u+w) or write the "
            "converted config to another file with -o NEW.yaml"
        )
    return stat.S_IMODE(st.st_mode)


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
    if any(a == "-h" or (len(a) > 2 and "--help".startswith(a)) for a in args):
        sys.stdout.write(_HELP)
        return 0
    source, output, in_place = _parse(args)
    from enhtrain.config.loading import read_config_text
    from enhtrain.config.migration import migrate_text

    target = os.path.abspath(source) if in_place else output
    option = "--in-place" if in_place else "-o"
    if target not in (None, "-") and not in_place and _same_file(target, source):
        raise ConfigError(
            f"config migrate: -o {output} is the input file {source}: write to another file, or pass --in-place "
            "to replace it"
        )
    shown = source if in_place else output
    mode = None if target in (None, "-") else _check_target(source if in_place else target, option)
    text, changes = migrate_text(read_config_text(source), source)
    if target in (None, "-"):
        sys.stdout.write(text)
    else:
        from enhtrain._io import atomic_write_text
        from enhtrain.security import inside

        try:
            written = inside(target, os.path.dirname(os.path.abspath(target)), what="converted config")
            atomic_write_text(written, text)
            if mode is not None:
                os.chmod(written, mode)  # the file replaced keeps its permissions
        except OSError as err:
            raise ConfigError(
                f"config migrate: cannot write {quote(shown)}: {err.strerror or err}; check that the folder "
                "exists and is writable"
            ) from err
    summary = [f"enhtrain: {source}: " + (f"{len(changes)} change(s):" if changes else "already current")]
    summary += [f"  - {change}" for change in changes]
    if target not in (None, "-"):
        summary.append(f"enhtrain: wrote {shown}")
    sys.stderr.write("\n".join(summary) + "\n")
    return 0
