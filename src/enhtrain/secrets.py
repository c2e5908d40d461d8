"""Masking of secrets (API keys, tokens, passwords) in configs, hyper-parameters, command lines and text.

Two things make a value secret:

- its key names a secret (:func:`is_secret_key`): ``api_key``, ``token``, ``password``, ``secret`` and their
  compounds such as ``wandb_api_key``, ``access_token``, ``client_secret`` or ``apiKey``;
- it is the value of an environment variable whose name marks a secret (``*_API_KEY``, ``*_TOKEN``, or a name
  containing ``SECRET`` or ``PASSWORD``), whatever its length, wherever it shows up. A value of six characters
  or more is masked even inside a longer string; a shorter one where it stands alone (not inside a longer run
  of letters, digits and ``_``), so that a five-letter password does not mask every word containing it.

Every secret is written as :data:`MASK`.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["MASK", "is_secret_key", "mask_argv", "mask_secrets", "mask_text", "secret_values"]

MASK = "**********"
"""What a secret is replaced with."""

# Values at least this long are masked wherever they occur, even inside a longer word; shorter ones only where
# they stand alone, so that a short password does not mask every word that happens to contain it.
_SUBSTRING_LENGTH = 6

# A key is secret when its last word is one of these, or its last two words are one of the pairs.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "secret",
        "token",
    }
)
_SECRET_PAIRS = frozenset({("access", "key"), ("api", "key"), ("auth", "key"), ("private", "key"), ("secret", "key")})
# Tokenizer settings (``pad_token: "<pad>"``) are not credentials.
_VOCABULARY_TOKENS = frozenset(
    {
        "additional",
        "begin",
        "bos",
        "cls",
        "end",
        "eos",
        "mask",
        "pad",
        "sep",
        "special",
        "start",
        "stop",
        "unk",
    }
)
_ENV_SUFFIXES = ("_API_KEY", "_APIKEY", "_TOKEN")
_ENV_PARTS = ("SECRET", "PASSWORD", "PASSWD")

_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
# ``key: value`` and ``key=value`` in free text; the value stays on the key's line.
# The key starts where no key character precedes it: a match is tried once per key, not at every position
# inside a long word, so masking stays linear in the text's length.
_KEY_VALUE = re.compile(
    r"""(?<![\w.\-])(?P<dashes>-*)(?P<key>[A-Za-z_][\w.\-]*)(?P<quote>["']?)(?P<sep>[ \t]*[:=][ \t]*)"""
    r"""(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;}\]]+)"""
)
_EMPTY_VALUES = frozenset({"", "null", "none", "~", '""', "''"})


@functools.lru_cache(maxsize=4096)  # a pure function of the name, asked of every key of every config written
def is_secret_key(key: str) -> bool:
    """Tell whether a mapping key, option name or flag names a secret.

    Matching is case-insensitive and works on ``snake_case``, ``kebab-case``, ``camelCase``, dotted paths and
    command-line flags: ``api_key``, ``WANDB_API_KEY``, ``apiKey``, ``access_token``, ``client_secret``,
    ``db_password`` and ``--experiment.loggers.comet.api_key`` are secret; ``tokenizer``, ``max_tokens``,
    ``pad_token`` and ``api_key_file`` are not.

    Args:
        key: The key to check.

    Returns:
        ``True`` if values under this key must be masked.
    """
    words = [word for word in _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub(r"\1_\2", key).lower()) if word]
    if not words:
        return False
    last = words[-1]
    previous = words[-2] if len(words) > 1 else ""
    if last == "token" and previous in _VOCABULARY_TOKENS:
        return False
    return last in _SECRET_WORDS or (previous, last) in _SECRET_PAIRS


@functools.lru_cache(maxsize=4096)
def _is_secret_env_name(name: str) -> bool:
    upper = name.upper()
    return (
        upper.endswith(_ENV_SUFFIXES)
        or upper in ("API_KEY", "APIKEY", "TOKEN")
        or any(part in upper for part in _ENV_PARTS)
        or is_secret_key(name)
    )


def secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Collect the values of the environment variables whose names mark a secret.

    A name marks a secret when it ends in ``_API_KEY`` or ``_TOKEN``, contains ``SECRET`` or ``PASSWORD``, or
    is a secret key by :func:`is_secret_key`. Every non-empty value counts, whatever its length.

    Args:
        environ: The environment to read; ``os.environ`` by default.

    Returns:
        The stripped secret values.
    """
    environ = os.environ if environ is None else environ
    values = set()
    for name, value in environ.items():
        value = value.strip()
        if value and _is_secret_env_name(name):
            values.add(value)
    return values


def _known_values(extra_values: Iterable[str]) -> list[str]:
    values = secret_values()
    values.update(value.strip() for value in extra_values if isinstance(value, str))
    # Longest first, so that a secret containing another one is masked whole.
    return sorted((value for value in values if value), key=len, reverse=True)


def _value_pattern(value: str) -> str:
    escaped = re.escape(value)
    if len(value) >= _SUBSTRING_LENGTH:
        return escaped
    # A short value is masked where it stands alone: not inside a longer run of letters, digits or '_'.
    return rf"(?<![A-Za-z0-9_]){escaped}(?![A-Za-z0-9_])"


def _values_pattern(values: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(_value_pattern(value) for value in values)) if values else None


def _mask_string(text: str, pattern: re.Pattern[str] | None) -> str:
    return text if pattern is None else pattern.sub(MASK, text)


def _is_sequence(obj: Any) -> bool:
    # Other sequences (such as OmegaConf's ListConfig) come back as lists.
    return isinstance(obj, Sequence) and not isinstance(obj, (str, bytes, bytearray, memoryview))


def _mask_value(value: Any) -> Any:
    """Mask everything under a secret key, keeping empty values (``None``, ``""``) and booleans visible."""
    if isinstance(value, Mapping):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(item) for item in value)
    if _is_sequence(value):
        return [_mask_value(item) for item in value]
    if value is None or isinstance(value, bool) or value == "":
        return value
    return MASK


def _mask(obj: Any, pattern: re.Pattern[str] | None) -> Any:
    if isinstance(obj, str):
        return _mask_string(obj, pattern)
    if isinstance(obj, Mapping):
        return {
            key: _mask_value(value) if is_secret_key(str(key)) else _mask(value, pattern) for key, value in obj.items()
        }
    if isinstance(obj, argparse.Namespace):
        masked = {
            key: _mask_value(value) if is_secret_key(key) else _mask(value, pattern) for key, value in vars(obj).items()
        }
        return type(obj)(**masked)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_mask(item, pattern) for item in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_mask(item, pattern) for item in obj)
    if _is_sequence(obj):
        return [_mask(item, pattern) for item in obj]
    return obj


def mask_secrets(obj: Any, extra_values: Iterable[str] = ()) -> Any:
    """Return a copy of a config or hyper-parameter tree with every secret masked.

    Mappings (returned as plain ``dict``), ``argparse`` namespaces, lists, tuples and other sequences
    (returned as lists) are copied recursively; the original is never changed. A value under a secret key
    (:func:`is_secret_key`) becomes :data:`MASK`, except ``None``, ``""`` and booleans, which hold nothing
    secret; containers under a secret key have all their leaves masked. Any other string has each occurrence
    of a known secret value (from the environment, see :func:`secret_values`, or from ``extra_values``)
    replaced with :data:`MASK`. Other objects are returned as they are.

    Args:
        obj: The tree to mask.
        extra_values: More secret values to mask wherever they occur (values shorter than six characters where
            they stand alone).

    Returns:
        The masked copy.
    """
    return _mask(obj, _values_pattern(_known_values(extra_values)))


def mask_text(text: str, extra_values: Iterable[str] = ()) -> str:
    """Mask the secrets in free text, such as a log line or a YAML or JSON dump.

    Every occurrence of a known secret value (from the environment, see :func:`secret_values`, or from
    ``extra_values``) is replaced with :data:`MASK`, and so is the value in each ``key: value`` or
    ``key=value`` whose key is secret (:func:`is_secret_key`), quoted or not, unless the value is empty or
    ``null``.

    Args:
        text: The text to mask.
        extra_values: More secret values to mask (values shorter than six characters where they stand alone).

    Returns:
        The masked text.
    """
    text = _mask_string(text, _values_pattern(_known_values(extra_values)))

    def _replace(match: re.Match[str]) -> str:
        value = match["value"]
        if not is_secret_key(match["key"]) or value.lower() in _EMPTY_VALUES or value == MASK:
            return match[0]
        quoted = value[0] in "\"'" and value[-1] == value[0]
        value = f"{value[0]}{MASK}{value[0]}" if quoted else MASK
        return f"{match['dashes']}{match['key']}{match['quote']}{match['sep']}{value}"

    return _KEY_VALUE.sub(_replace, text)


def mask_argv(argv: Sequence[str], extra_values: Iterable[str] = ()) -> list[str]:
    """Mask the secrets in a command line, such as ``sys.argv``.

    The value of a secret flag is masked in both forms, ``--x.api_key=VALUE`` and ``--x.api_key VALUE``, and
    every argument goes through :func:`mask_text`.

    Args:
        argv: The command line.
        extra_values: More secret values to mask (values shorter than six characters where they stand alone).

    Returns:
        The masked command line, as a new list.
    """
    extra = list(extra_values)
    masked: list[str] = []
    secret_follows = False
    for arg in argv:
        if secret_follows and not arg.startswith("-"):
            masked.append(MASK)
            secret_follows = False
            continue
        secret_follows = False
        if arg.startswith("-"):
            flag, equals, value = arg.partition("=")
            if is_secret_key(flag):
                if equals:
                    masked.append(f"{flag}={MASK}" if value else arg)
                else:
                    masked.append(arg)
                    secret_follows = True
                continue
        masked.append(mask_text(arg, extra))
    return masked
