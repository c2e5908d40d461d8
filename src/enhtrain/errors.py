"""Exceptions that end a command with a short message and exit status 2."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EnhtrainError",
    "MalformedFileError",
    "PluginError",
    "RunDirError",
    "did_you_mean",
    "located",
    "one_line",
    "quote",
]


class EnhtrainError(Exception):
    """Base class of every error caused by the user's input rather than a bug.

    The command line prints ``str(error)`` on one line of stderr and exits with status 2, with no traceback
    unless ``ENHTRAIN_DEBUG=1``.
    """

    exit_code = 2


class ConfigError(EnhtrainError):
    """A config is malformed or rejected. Plugins raise it from ``enhtrain_validate_config``.

    Args:
        message: What is wrong and what to do, on one line.
        key: The dotted config key the message is about (``"trainer.max_epochs"``), if any. When a plugin's
            ``enhtrain_validate_config`` raises it, enhtrain adds where the key was set (``file:line``, a flag or
            a variable) and the plugin's name to the message.

    Example::

        raise ConfigError("at most 100 epochs on the shared cluster; lower it", key="trainer.max_epochs")
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class PluginError(EnhtrainError):
    """A plugin failed to load, or a config uses a component of a plugin that failed."""


class CheckpointError(EnhtrainError):
    """A checkpoint is missing, truncated, corrupt or unsafe to load."""


class RunDirError(EnhtrainError):
    """A run directory cannot be created or written."""


class MalformedFileError(EnhtrainError):
    """A JSON file of a run that is not valid JSON or does not match its schema.

    Each subclass, one per file, sets :attr:`default_fix`.

    Args:
        detail: What is wrong, starting with the file (and the field).
        fix: What to do about it; :attr:`default_fix` when not given.

    Attributes:
        detail: What is wrong, without the fix.
    """

    default_fix = "repair or remove the file"

    def __init__(self, detail: str, fix: str | None = None) -> None:
        super().__init__(f"{detail}; {self.default_fix if fix is None else fix}")
        self.detail = detail


def did_you_mean(name: str, accepted: Sequence[str]) -> str:
    """Return `` (did you mean 'X'?)`` with the accepted name closest to ``name``, or ``""`` when none is close.

    Args:
        name: The unknown name the user gave.
        accepted: The names that would have been accepted.
    """
    import difflib

    close = difflib.get_close_matches(name, [a for a in accepted if a != name], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def located(where: str | None, message: str) -> str:
    """Put where a setting comes from in front of a message, without naming the key twice.

    Args:
        where: ``"file.yaml:LINE"``, ``"flag --KEY"``, another layer's description, or ``None`` when unknown.
        message: The message, usually starting with ``"KEY: "``.

    Returns:
        ``"where: message"``; when ``where`` is the flag of the very key the message starts with, the key is
        said once: ``located("flag --a.b", "a.b: bad")`` is ``"flag --a.b: bad"``.
    """
    if not where:
        return message
    flag = where.removeprefix("flag --")
    if flag != where and message.startswith(f"{flag}:"):
        return f"{where}{message[len(flag):]}"
    return f"{where}: {message}"


_MAX_SHOWN_DIGITS = 60


def quote(value: object, limit: int = 80) -> str:
    """Render a user's value for a one-line message: quoted and escaped like ``repr``, and shortened.

    A newline, tab, escape sequence or any other character that is not printable is shown escaped (``\\n``),
    so that a message stays on one line whatever the value holds; text past ``limit`` characters ends in
    ``...``; an integer too long to show (or to convert: Python refuses more than 4300 digits) is described by
    its size.

    Args:
        value: The value: usually a string (a name, a path, a variable's text), or a number.
        limit: The most characters of the value to show.

    Returns:
        ``'text'`` for a string, the number for a short integer, ``repr(value)`` shortened otherwise.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_SHOWN_DIGITS * 3:
        digits = int(value.bit_length() * 0.30103) + 1  # log10(2): no conversion of the whole number to text
        return f"an integer of about {digits} digits"
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        shown = repr(value[:limit])
        return f"{shown[:-1]}...{shown[-1]}"
    try:
        text = repr(value)
    except ValueError:  # an integer too long to convert, inside a list or mapping
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def one_line(message: str) -> str:
    """Escape every character of ``message`` that would break its line or the terminal (``\\n``, ``\\x1b``).

    The last guard of the one-line rule, for a value that reached a message without :func:`quote`.
    """
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
