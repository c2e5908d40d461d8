"""Short messages for jsonargparse errors, naming the key, where it was set, and the fix."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Sequence

from enhtrain.config.compose import CLASS_SECTIONS, ComposedConfig
from enhtrain.errors import did_you_mean

__all__ = ["describe_parser_error", "where_set"]

_UNKNOWN = (
    re.compile(r"does not accept option '([^']+)'"),
    re.compile(r"Key '([^']+)' is not expected"),
    re.compile(r"unrecognized arguments: --([^\s=]+)"),
    re.compile(r"No action for key \"([^\"]+)\""),
    re.compile(r"^Option '([^']+)' is not accepted"),
)
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def _class_parameters(class_path: str) -> list[str]:
    """The keyword arguments a class accepts, following ``**kwargs`` into its bases, as jsonargparse does.

    Only a class that jsonargparse has already imported is looked at: a message never imports anything.
    """
    module_name, _, name = class_path.rpartition(".")
    cls = getattr(sys.modules.get(module_name), name, None)
    if not inspect.isclass(cls):
        return []
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        names += [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return list(dict.fromkeys(names))


def _unknown_key_hint(key: str, composed: ComposedConfig | None) -> str:
    """Suggest the accepted key closest to the first unknown part of a dotted key (top level, trainer, init_args)."""
    from enhtrain.config.json_schema import top_level_keys, trainer_parameters

    parts = key.split(".")
    top = top_level_keys()
    if parts[0] not in top:
        return did_you_mean(parts[0], top)
    if parts[0] == "trainer" and len(parts) > 1:
        return did_you_mean(parts[1], list(trainer_parameters()))
    if parts[0] in CLASS_SECTIONS and len(parts) > 2 and parts[1] == "init_args" and composed is not None:
        section = composed.data.get(parts[0])
        class_path = section.get("class_path") if isinstance(section, dict) else section
        if isinstance(class_path, str):
            return did_you_mean(parts[2], _class_parameters(class_path))
    return ""


def _where(key: str, composed: ComposedConfig | None, rest: Sequence[str]) -> str:
    """The flag or layer that set ``key``, one of its parents or something below it; never a sibling's."""
    parts = key.split(".")
    for size in range(len(parts), 0, -1):
        flag = "--" + ".".join(parts[:size])
        if any(arg in (flag, f"{flag}+") or arg.startswith((f"{flag}=", f"{flag}+=")) for arg in rest):
            return f"flag {flag}"
    if composed is not None:
        path = tuple(parts)
        for size in range(len(path), 0, -1):
            if path[:size] in composed.sources:
                return composed.sources[path[:size]]
        below = [v for k, v in composed.sources.items() if k[: len(path)] == path]
        if below:
            return next((v for v in below if v != "default"), below[0])
    return "config"


def _where_any(keys: Sequence[str], composed: ComposedConfig | None, rest: Sequence[str]) -> str:
    """Where the first of ``keys`` that any layer set was set."""
    for key in keys:
        where = _where(key, composed, rest)
        if where != "config":
            return where
    return "config"


def where_set(key: str, composed: ComposedConfig | None, rest: Sequence[str] = ()) -> str:
    """Say where a dotted key was set: ``flag --KEY``, ``file.yaml:LINE``, another layer, or ``config``.

    Args:
        key: The dotted key (``seed_everything``, ``data.init_args.dataset``).
        composed: The composed config, for the file and line of the key.
        rest: The command-line flags that were passed through to jsonargparse.
    """
    return _where(key, composed, rest)


def _subtypes(text: str) -> str:
    match = re.search(r"Subtypes: \[(.*?)\]", text)
    if not match:
        return ""
    names = [n if n != "NoneType" else "null" for n in _CLASS.findall(match.group(1))]
    return " or ".join(dict.fromkeys(names))


def _first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("- ") or "Expected a <class 'NoneType'>" in line:
            continue
        detail = line[2:]
        if detail.endswith(":") and i + 1 < len(lines):
            detail = f"{detail} {lines[i + 1]}"
        return detail
    return ""


_REQUIRED = re.compile(r"the following arguments are required: ([^\n]+)")
_REQUIRED_BY_CLASS = re.compile(
    r"Problem with given class_path '([^']+)':\s*\n\s*the following arguments are required: ([^\n]+)"
)
_NESTED = re.compile(
    r"Problem with given class_path '([^']+)':\s*\n\s*(?:Parser key \"([^\"]+)\":|Option '([^']+)' is not accepted)"
)
_PLAIN_EXPECTED = re.compile(r"Expected a <class '(?:[\w.]+\.)?(\w+)'>\. Got value: (.*)")


_SUBCOMMAND_PREFIXES = ("fit.", "validate.", "test.", "predict.")


def _required_error(text: str, composed: ComposedConfig | None, rest: Sequence[str]) -> str | None:
    """Describe a required argument that no layer set: an ``init_args`` entry of a class, or a whole section."""
    outer = _PARSER_KEY.search(text)
    by_class = _REQUIRED_BY_CLASS.search(text)
    if by_class and outer:
        key, class_path = outer.group(1), by_class.group(1)
        names = [name.strip() for name in by_class.group(2).split(",") if name.strip()]
        where = _where_any([f"{key}.init_args.{names[0]}", f"{key}.class_path", key], composed, rest)
        listed = ", ".join(f"'{name}'" for name in names)
        one = len(names) == 1
        return (
            f"{where}: {key}: {class_path} requires init_args {listed}, which {'is' if one else 'are'} not set; "
            f"add {'it' if one else 'them'} under {key}.init_args"
        )
    match = _REQUIRED.search(text)
    if match is None or by_class is not None:
        return None
    keys = [name.strip() for name in match.group(1).split(",") if name.strip()]
    keys = [name.split(".", 1)[1] if name.startswith(_SUBCOMMAND_PREFIXES) else name for name in keys]
    key = keys[0]
    more = f" (and {', '.join(keys[1:])})" if len(keys) > 1 else ""
    return (
        f"{_where(key, composed, rest)}: {key}: required, but not set (it is missing or null){more}; set it in a "
        f"config or with --{key}"
    )


def _init_arg_error(text: str, outer: str, composed: ComposedConfig | None, rest: Sequence[str]) -> str | None:
    """Describe a bad ``init_args`` entry of a class that itself imported fine."""
    match = _NESTED.search(text)
    if not match:
        return None
    class_path, bad_key, unknown = match.groups()
    if unknown is not None:
        key = f"{outer}.init_args.{unknown}"
        hint = did_you_mean(unknown, _class_parameters(class_path))
        return (f"{_where(key, composed, rest)}: {key}: unknown key{hint}; check the spelling of the init_args of "
                f"{class_path}")
    key = f"{outer}.init_args.{bad_key}"
    block = text[match.end():]
    plain = _PLAIN_EXPECTED.search(block)
    given = re.search(r"Given value: (.*)", block)
    expected = _subtypes(block)
    if plain and (not given or plain.start() < given.start()):
        value, wanted = plain.group(2).strip(), f": expected {plain.group(1)}"
    else:
        value = given.group(1).strip() if given else ""
        wanted = f": expected {expected}" if expected else ""
    if plain and value == "None":
        return f"{_where(key, composed, rest)}: {key}: required, but null: give a {plain.group(1)} for {class_path}"
    shown = f" '{value}'" if value and len(value) < 80 else ""
    return f"{_where(key, composed, rest)}: {key}: invalid value{shown}{wanted}"


def describe_parser_error(text: str, composed: ComposedConfig | None, rest: Sequence[str] = ()) -> str:
    """Turn a jsonargparse error into one line: ``<file:line>: <key>: <problem>; <fix>``.

    Args:
        text: The error message jsonargparse raised.
        composed: The composed config, for the file and line of the key.
        rest: The command-line flags that were passed through to jsonargparse.
    """
    required = _required_error(text, composed, rest)
    if required:
        return required
    outer = _PARSER_KEY.search(text)
    if outer:
        described = _init_arg_error(text, outer.group(1), composed, rest)
        if described:
            return described
    for pattern in _UNKNOWN:
        match = pattern.search(text)
        if match:
            key = match.group(1)
            return (
                f"{_where(key, composed, rest)}: {key}: unknown key{_unknown_key_hint(key, composed)}; check the "
                "spelling (`enhtrain fit --help` lists every option)"
            )
    match = _PARSER_KEY.search(text)
    if match:
        key = match.group(1)
        detail = _first_error(text)
        class_path = re.search(r"Problem with given class_path '([^']+)'", text)
        if class_path:
            where = _where(f"{key}.class_path", composed, rest)
            reason = " ".join(detail.split(":", 1)[-1].split()) if ":" in detail else detail
            return (
                f"{where}: {key}.class_path: cannot use '{class_path.group(1)}' ({reason}); give the full import "
                "path of an installed class"
            )
        given = re.search(r"Given value: (.*)", text)
        expected = _subtypes(text)
        plain = _PLAIN_EXPECTED.search(text)
        if not detail and plain and not given:
            value = plain.group(2).strip()
            shown = f" '{value}'" if len(value) < 80 else ""
            return f"{_where(key, composed, rest)}: {key}: invalid value{shown}: expected {plain.group(1)}"
        if detail and "Expected a" not in detail:
            return f"{_where(key, composed, rest)}: {key}: {detail}"
        value = f" '{given.group(1).strip()}'" if given and len(given.group(1)) < 80 else ""
        wanted = f": expected {expected}" if expected else ""
        return f"{_where(key, composed, rest)}: {key}: invalid value{value}{wanted}"
    detail = _first_error(text)
    if detail:
        return detail
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("usage:", "tip:"))]
    return " ".join(" ".join(lines[:3]).split())[:400]
