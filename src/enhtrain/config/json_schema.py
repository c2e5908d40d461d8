"""A JSON Schema (draft 2020-12) of an enhtrain config file, for editors and CI.

The ``experiment`` section comes from its Pydantic models, with the registered logger, callback and profiler
names as enums; ``trainer`` from the signature of Lightning's ``Trainer``; ``model``, ``data``, ``optimizer``
and ``lr_scheduler`` are class specifications (``class_path`` and ``init_args``), whose arguments depend on
the class and are left open. Lightning is imported (to read the ``Trainer``), nothing is built.
"""

from __future__ import annotations

import collections.abc
import copy
import datetime
import inspect
import os
import pathlib
import re
import types
import typing
from typing import Any

from enhtrain.config.compose import CLASS_SECTIONS

__all__ = [
    "SCHEMA_DIALECT",
    "config_schema",
    "top_level_keys",
    "trainer_parameters",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect of :func:`config_schema`."""


_SEED_MAX = 2**32 - 1
_CLASS_REF = {"$ref": "#/$defs/ClassSpec"}


def trainer_parameters() -> dict[str, inspect.Parameter]:
    """The keyword arguments of Lightning's ``Trainer``, the keys of the ``trainer`` section, in order."""
    from lightning.pytorch import Trainer

    parameters = list(inspect.signature(Trainer.__init__).parameters.values())[1:]
    return {p.name: p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _subcommand_keys() -> dict[str, tuple[inspect.Parameter, Any]]:
    """The top-level keys that the ``Trainer`` methods of the subcommands add (``ckpt_path``, ``verbose``, ...).

    Returns:
        Each key's parameter and the method it belongs to.
    """
    from lightning.pytorch import Trainer
    from lightning.pytorch.cli import LightningCLI

    keys: dict[str, tuple[inspect.Parameter, Any]] = {}
    for subcommand, skipped in LightningCLI.subcommands().items():
        method = getattr(Trainer, subcommand)
        for parameter in list(inspect.signature(method).parameters.values())[1:]:
            if parameter.name not in skipped:
                keys.setdefault(parameter.name, (parameter, method))
    return keys


def top_level_keys() -> list[str]:
    """Every key a config file may have at its top level, under any subcommand."""
    return ["seed_everything", "trainer", *CLASS_SECTIONS, *_subcommand_keys(), "experiment", "extends",
            "schema_version"]


def _type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a value of a Python type, as jsonargparse reads it from YAML; ``{}`` when unknown."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None) or annotation is None:
        return {"type": "null"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation in (str, pathlib.Path, os.PathLike) or origin is os.PathLike:
        return {"type": "string"}
    if annotation is datetime.timedelta:
        return {"type": "string"}  # "DD:HH:MM:SS"; the mapping form is a dict[str, int] in Lightning's hints
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        members = [_type_schema(arg) for arg in args]
        if {} in members:
            return {}
        unique = [m for i, m in enumerate(members) if m not in members[:i]]
        return unique[0] if len(unique) == 1 else {"anyOf": unique}
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable):
        items = [a for a in args if a is not Ellipsis]
        return {"type": "array", **({"items": _type_schema(items[0])} if len(items) == 1 else {})}
    if annotation in (list, tuple):
        return {"type": "array"}
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        return {"type": "object"}
    if inspect.isclass(annotation) and annotation.__module__ not in ("builtins", "typing"):
        return _CLASS_REF
    return {}


def _json_default(value: Any) -> Any:
    """``value`` when JSON can hold it, else ``...`` (left out of the schema)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return ...


def _arg_docs(function: Any) -> dict[str, str]:
    """The first sentence of each argument's description in a Google-style ``Args:`` docstring section."""
    doc = inspect.getdoc(function) or ""
    out: dict[str, str] = {}
    current = None
    inside = False
    for line in doc.splitlines():
        if line.strip() == "Args:":
            inside = True
            continue
        if inside and line and not line.startswith(" "):
            break
        match = re.match(r"^    (\w+)(?: \([^)]*\))?: ?(.*)$", line)
        if inside and match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif inside and current and line.strip():
            out[current] += " " + line.strip()
    return {k: re.split(r"(?<=\.)\s", v, maxsplit=1)[0] for k, v in out.items() if v}


def _parameter_schema(parameter: inspect.Parameter, hints: dict[str, Any], docs: dict[str, str]) -> dict[str, Any]:
    schema = dict(_type_schema(hints.get(parameter.name, parameter.annotation)))
    if parameter.name in docs:
        schema["description"] = docs[parameter.name]
    if parameter.default is not inspect.Parameter.empty and _json_default(parameter.default) is not ...:
        schema["default"] = parameter.default
    return schema


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # an unresolvable forward reference: fall back to the raw annotations
        return {}


def _trainer_schema() -> dict[str, Any]:
    from lightning.pytorch import Trainer

    hints, docs = _hints(Trainer.__init__), _arg_docs(Trainer.__init__)
    properties = {name: _parameter_schema(p, hints, docs) for name, p in trainer_parameters().items()}
    # enhtrain also accepts a registry name for a callback, logger or profiler (`callbacks: [grad_norm]`).
    return {
        "type": "object",
        "description": "Keyword arguments of lightning.pytorch.Trainer.",
        "properties": properties,
        "additionalProperties": False,
    }


def _class_spec() -> dict[str, Any]:
    return {
        "description": "A class: its name or import path, or a mapping with class_path and init_args.",
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {
                    "class_path": {"type": "string", "description": "The class's import path."},
                    "init_args": {"type": "object", "description": "Keyword arguments of the class."},
                    "dict_kwargs": {"type": "object", "description": "Arguments passed through **kwargs."},
                },
                "additionalProperties": False,
            },
        ],
    }


def _names(kind: str) -> list[str]:
    from enhtrain import plugins

    return sorted(plugins.get_registry().kinds[kind].names())


def _keyed(names: list[str], what: str) -> dict[str, Any]:
    """A ``loggers``/``callbacks`` mapping keyed by registered names, or its list shorthand."""
    return {
        "description": f"Registry name of a {what} to its options; null removes one set by a lower layer.",
        "anyOf": [
            {
                "type": "object",
                "propertyNames": {"enum": names},
                "additionalProperties": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            },
            {"type": "array", "items": {"enum": names}},
        ],
    }


def _experiment_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``experiment`` section's schema and the definitions it refers to."""
    from enhtrain.config.schema import ExperimentConfig

    schema = ExperimentConfig.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    properties = schema["properties"]
    properties["loggers"] = {**_keyed(_names("loggers"), "logger"), "default": properties["loggers"].get("default")}
    callbacks_default = properties["callbacks"].get("default")
    properties["callbacks"] = {**_keyed(_names("callbacks"), "callback"), "default": callbacks_default}
    profilers = _names("profilers")
    profiler = copy.deepcopy(defs.get("ProfilerConfig", {}))
    profiler.setdefault("properties", {})["name"] = {"enum": profilers, "description": "The profiler's registry name."}
    defs["ProfilerConfig"] = profiler
    properties["profiler"] = {
        "description": "A profiler's registry name, or a mapping with name and options; null for none.",
        "anyOf": [{"enum": profilers}, {"$ref": "#/$defs/ProfilerConfig"}, {"type": "null"}],
        "default": None,
    }
    # A version given as a number (`version: 3`) is read as the string "3".
    properties["version"] = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}], "default": None}
    return schema, defs


def config_schema() -> dict[str, Any]:
    """Build the JSON Schema (draft 2020-12) of an enhtrain config file.

    Returns:
        The schema as plain data, ready for ``json.dumps``.
    """
    experiment, defs = _experiment_schema()
    defs["ExperimentConfig"] = experiment
    defs["ClassSpec"] = _class_spec()
    class_or_null = {"anyOf": [_CLASS_REF, {"type": "null"}]}
    properties: dict[str, Any] = {
        "extends": {
            "description": "Config files to load first, relative to this one.",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        },
        "schema_version": {"type": "integer", "minimum": 1, "description": "The version of the config format."},
        "seed_everything": {
            "description": "The seed, or true for a random one.",
            "anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0, "maximum": _SEED_MAX}, {"type": "null"}],
        },
        "trainer": _trainer_schema(),
        **{
            section: {**class_or_null, "description": f"The {section} class, as jsonargparse reads it."}
            for section in CLASS_SECTIONS
        },
    }
    for name, (parameter, method) in _subcommand_keys().items():
        properties[name] = _parameter_schema(parameter, _hints(method), _arg_docs(method))
    properties["experiment"] = {"$ref": "#/$defs/ExperimentConfig"}
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "enhtrain config",
        "description": "A config file of `enhtrain fit|validate|test|predict` (generated by `enhtrain config schema`).",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "$defs": defs,
    }
