"""The sweep spec: a YAML file with one ``sweep`` section, validated by a Pydantic model.

Example::

    sweep:
      name: lr-search
      metric: val/acc
      trials: 20
      params:
        model.init_args.lr: {float: [1.0e-4, 1.0e-1], log: true}
        model.init_args.hidden_dims: {choice: [[64], [128, 64]]}

Nothing here imports optuna until a distribution, sampler or pruner is built.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from enhtrain.config.compose import ComposedConfig
from enhtrain.config.loading import Layer, load_yaml_file
from enhtrain.config.schema import NamedComponent, infer_mode
from enhtrain.documents import parse_json
from enhtrain.errors import ConfigError
from enhtrain.secrets import is_secret_key, secret_values
from enhtrain.sweeps._common import quiet_optuna

__all__ = [
    "MAX_CHOICES",
    "MAX_GRID_POINTS",
    "MAX_HEARTBEAT_INTERVAL",
    "MAX_INT",
    "MAX_TRIALS",
    "PRUNERS",
    "RESERVED_PARAMS",
    "SAMPLERS",
    "Param",
    "SweepSpec",
    "build_pruner",
    "build_sampler",
    "check_spec",
    "continuation_seed",
    "grid_size",
    "load_spec",
    "param_locations",
    "parse_param",
    "shown",
]

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
}
"""Sampler names of a spec and the ``optuna.samplers`` classes they stand for."""

PRUNERS = {
    "median": "MedianPruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "none": "NopPruner",
}
"""Pruner names of a spec and the ``optuna.pruners`` classes they stand for."""

RESERVED_PARAMS = ("experiment.name", "experiment.version", "experiment.root_dir", "experiment.resume",
                   "experiment.sweep", "trainer.callbacks", "ckpt_path")
"""Keys a sweep sets on every trial itself, which a spec may not sample."""

MAX_TRIALS = 100_000
"""The most trials a sweep may ask for."""

MAX_GRID_POINTS = 100_000
"""The most points a grid search may have (the product of every parameter's number of values); Optuna's grid
sampler holds them all in memory."""

MAX_CHOICES = 10_000
"""The most values one ``choice`` may list."""

MAX_INT = 2**53
"""The largest magnitude of an ``int`` range's bounds: Optuna stores every sampled value as a float, which holds
whole numbers exactly up to here."""

MAX_HEARTBEAT_INTERVAL = 3600
"""The longest heartbeat interval and the shortest grace period's upper bound, in seconds (one hour; the grace
period may be up to a day)."""

_KINDS = ("float", "int", "choice")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class Param:
    """One sampled key of the config and its distribution.

    Attributes:
        key: The dotted config key (``model.init_args.lr``).
        kind: ``float``, ``int`` or ``choice``.
        low: The lower bound of a range.
        high: The upper bound of a range.
        log: Whether a range is sampled on a log scale.
        step: The step of a range, if any.
        choices: The values of a ``choice``.
        encoded: Whether the choices are handed to Optuna as JSON text (lists and mappings are).
    """

    key: str
    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    encoded: bool = False

    def distribution(self) -> Any:
        """Return the Optuna distribution of this parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)  # type: ignore[arg-type]
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))  # type: ignore[arg-type]
        return CategoricalDistribution(self.optuna_choices())

    def optuna_choices(self) -> list[Any]:
        """The choices as Optuna stores them: JSON text when any of them is a list or a mapping."""
        return [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)

    def encode(self, value: Any) -> Any:
        """Turn a config value into what Optuna stores for this parameter.

        Raises:
            ValueError: If the value is not one of the choices, or lies outside the range.
        """
        if self.kind == "choice":
            for choice, stored in zip(self.choices, self.optuna_choices(), strict=True):
                if choice == value and type(choice) is type(value):
                    return stored
            raise ValueError(f"{json.dumps(value, default=str)} is not one of the choices")
        if not _number(value) or (self.kind == "int" and not float(value).is_integer()):
            raise ValueError(f"{value!r} is not {'a whole number' if self.kind == 'int' else 'a number'}")
        if not float(self.low) <= value <= float(self.high):  # type: ignore[arg-type]
            raise ValueError(f"{value} is outside [{self.low}, {self.high}]")
        return int(value) if self.kind == "int" else float(value)

    def decode(self, value: Any) -> Any:
        """Turn a value Optuna sampled back into the config value.

        Raises:
            ConfigError: If a stored choice is not bounded JSON (a damaged store).
        """
        if self.encoded and isinstance(value, str):
            return parse_json(value, f"sweep.params.{shown(self.key)}: a stored choice")
        if self.kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def grid_count(self) -> int:
        """How many values a grid search tries, counted without listing them.

        Raises:
            ValueError: For a float range without a ``step``.
        """
        if self.kind == "choice":
            return len(self.choices)
        if self.step is None and self.kind == "float":
            raise ValueError("the grid sampler needs a step for a float range (or use choice)")
        if self.kind == "int":
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1  # type: ignore[arg-type]
        spans = (float(self.high) - float(self.low)) / float(self.step) + 1e-9  # type: ignore[arg-type]
        return math.floor(spans) + 1 if math.isfinite(spans) and spans < MAX_GRID_POINTS else MAX_GRID_POINTS + 1

    def grid(self) -> list[Any]:
        """The values a grid search tries.

        Raises:
            ValueError: For a float range without a ``step``, or with more than :data:`MAX_GRID_POINTS` values.
        """
        count = self.grid_count()
        if count > MAX_GRID_POINTS:
            raise ValueError(f"{count} grid points is over the limit of {MAX_GRID_POINTS}: use a wider step")
        if self.kind == "choice":
            return self.optuna_choices()
        step = self.step or 1
        values = [float(self.low) + i * step for i in range(count)]  # type: ignore[arg-type]
        return [round(v) for v in values] if self.kind == "int" else [round(v, 12) for v in values]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def shown(text: object, limit: int = 80) -> str:
    """A value for a one-line message: control characters escaped, cut to ``limit`` characters."""
    text = str(text)
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def grid_size(params: list[Param]) -> int:
    """The number of points of a grid search over ``params`` (capped just past :data:`MAX_GRID_POINTS`).

    Raises:
        ValueError: For a float range without a ``step``.
    """
    total = 1
    for param in params:
        total = min(total * param.grid_count(), MAX_GRID_POINTS + 1)
    return total


def parse_param(key: str, raw: Any) -> Param:
    """Read one entry of ``params``.

    Args:
        key: The dotted config key.
        raw: Its value in the spec: ``{float: [lo, hi], log: bool, step: x}``, ``{int: [lo, hi], step: n,
            log: bool}`` or ``{choice: [a, b, ...]}``.

    Raises:
        ValueError: Saying what is wrong with the distribution and how to write it.
    """
    if not isinstance(raw, dict):
        raise ValueError(
            f"bad distribution {json.dumps(raw, default=str)}: write {{float: [low, high]}}, {{int: [low, high]}} "
            "or {choice: [a, b]}"
        )
    kinds = [k for k in _KINDS if k in raw]
    unknown = [k for k in raw if k not in (*_KINDS, "log", "step")]
    if unknown or len(kinds) != 1:
        what = f"unknown key '{unknown[0]}'" if unknown else (
            "no kind" if not kinds else f"two kinds ({', '.join(kinds)})")
        raise ValueError(
            f"bad distribution ({what}): give exactly one of float: [low, high], int: [low, high] or choice: [...], "
            "with log: true or step: N for a range"
        )
    kind = kinds[0]
    if kind == "choice":
        choices = raw["choice"]
        if set(raw) != {"choice"}:
            raise ValueError("bad distribution: log and step apply to a float or int range, not to choice")
        if not isinstance(choices, list) or not choices:
            raise ValueError("empty choice: give a non-empty list of values, such as choice: [32, 64]")
        if len(choices) > MAX_CHOICES:
            raise ValueError(f"choice lists {len(choices)} values, over the limit of {MAX_CHOICES}")
        texts = [json.dumps(c, sort_keys=True) for c in choices]
        if len(set(texts)) != len(texts):
            raise ValueError("choice lists a value twice: give each value once")
        encoded = any(isinstance(c, (list, dict)) for c in choices)
        return Param(key, "choice", choices=tuple(choices), encoded=encoded)
    bounds = raw[kind]
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)):
        shown = json.dumps(bounds, default=str)
        raise ValueError(f"bad distribution: {kind} takes two numbers [low, high], got {shown}")
    low, high = bounds
    log = raw.get("log", False)
    step = raw.get("step")
    if not isinstance(log, bool):
        raise ValueError("bad distribution: log must be true or false")
    if step is not None and (not _number(step) or step <= 0):
        raise ValueError(f"bad distribution: step must be a positive number, got {step!r}")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise ValueError(f"bad distribution: an int range takes whole numbers, got {bounds} (use float for others)")
    if kind == "int" and not all(abs(v) <= MAX_INT for v in (low, high, step or 1)):
        raise ValueError(f"bad distribution: an int range lies within -2**53 and 2**53, got {bounds}")
    if not math.isfinite(float(high) - float(low)):
        raise ValueError(f"bad distribution: the range [{low}, {high}] is too wide to sample")
    if low >= high:
        raise ValueError(f"empty range [{low}, {high}]: the first number must be below the second")
    if log and low <= 0:
        raise ValueError(f"bad distribution: a log range must be above 0, got [{low}, {high}]")
    if log and step is not None and kind == "float":
        raise ValueError("bad distribution: a float range takes log or step, not both")
    if log and step not in (None, 1) and kind == "int":
        raise ValueError("bad distribution: a log int range takes no step")
    if step is not None and step > high - low:
        raise ValueError(f"empty range: step {step} is wider than [{low}, {high}]")
    if kind == "int":
        return Param(key, "int", int(low), int(high), log, int(step) if step is not None else None)
    return Param(key, "float", float(low), float(high), log, float(step) if step is not None else None)


class SweepSpec(BaseModel):
    """The ``sweep`` section of a sweep spec.

    Attributes:
        name: The study's name; trials run in ``<root_dir>/<name>/trial_<n>/``.
        metric: The metric to optimise, as the model logs it (``val/acc``).
        mode: ``min`` or ``max``; inferred from the metric's name when left out, as for checkpoints.
        trials: How many trials to finish (complete, pruned or failed); a worker stops once the study has them.
        sampler: ``tpe``, ``random``, ``grid``, ``cmaes`` or ``qmc``, or a mapping with ``name`` and the sampler's
            options (``{name: tpe, seed: 0}``).
        pruner: ``median``, ``hyperband``, ``successive_halving`` or ``none``, or a mapping with ``name`` and
            options.
        storage: ``None`` for the embedded store in the sweep's directory, or a database URL.
        heartbeat_interval: Seconds between a running trial's heartbeats in the store.
        grace_period: Seconds without a heartbeat after which a trial counts as dead (default twice the interval).
        max_retry: How many times a trial whose worker died is queued again with the same values (``None``:
            always).
        params: Dotted config keys to their distributions.
        enqueue: Values to try first, before the sampler takes over: one mapping of parameter keys to values per
            trial (a known good config, say); keys left out are sampled.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    metric: str
    mode: Literal["min", "max"] | None = None
    trials: int = Field(default=20, ge=1, le=MAX_TRIALS)
    sampler: str | NamedComponent = "tpe"
    pruner: str | NamedComponent = "median"
    storage: str | None = None
    heartbeat_interval: int = Field(default=10, ge=1, le=MAX_HEARTBEAT_INTERVAL)
    grace_period: int | None = Field(default=None, ge=1, le=24 * MAX_HEARTBEAT_INTERVAL)
    max_retry: int | None = Field(default=3, ge=0, le=1000)
    params: dict[str, Any]
    enqueue: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value or not set(value) <= _NAME_CHARS or value[0] in ".-_" or len(value.encode()) > 200:
            raise ValueError(f"'{shown(value)}' is not a valid sweep name: use letters, digits, '_', '-' and '.' "
                             "(200 bytes at most)")
        return value

    @field_validator("sampler", "pruner", mode="before")
    @classmethod
    def _component(cls, value: Any) -> Any:
        return value.get("name") if isinstance(value, dict) and set(value) == {"name"} else value

    @field_validator("sampler", "pruner")
    @classmethod
    def _check_component(cls, value: Any, info: ValidationInfo) -> Any:
        name = value if isinstance(value, str) else value.name
        known = SAMPLERS if info.field_name == "sampler" else PRUNERS
        if name not in known:
            raise ValueError(f"unknown {info.field_name} '{name}'; use one of {', '.join(known)}")
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("no params: name at least one config key to sample, such as model.init_args.lr")
        return value

    @model_validator(mode="after")
    def _infer_mode(self) -> SweepSpec:
        if self.mode is None:
            mode = infer_mode(self.metric)
            if mode is None:
                raise ValueError(f"cannot tell whether '{self.metric}' should be minimised or maximised: set mode")
            self.mode = mode
        return self

    @property
    def direction(self) -> str:
        """``minimize`` or ``maximize``."""
        return "maximize" if self.mode == "max" else "minimize"

    @property
    def sampler_name(self) -> str:
        """The sampler's name."""
        return self.sampler if isinstance(self.sampler, str) else self.sampler.name

    @property
    def pruner_name(self) -> str:
        """The pruner's name."""
        return self.pruner if isinstance(self.pruner, str) else self.pruner.name

    def parsed_params(self) -> list[Param]:
        """The parameters, in the spec's order (already checked by :func:`load_spec`)."""
        return [parse_param(key, raw) for key, raw in self.params.items()]

    def stored(self) -> dict[str, Any]:
        """The spec as the study stores it: everything but the storage URL, which may hold a password."""
        return self.model_dump(mode="json", exclude={"storage"})


def _where(layer: Layer, path: tuple[str, ...], fallback: str) -> str:
    return ComposedConfig(layer.data, layer.sources).source_of(path) or fallback


def param_locations(path: str | Path) -> dict[str, str]:
    """Each parameter key of a spec file and the ``file:line`` that names it, for messages."""
    layer = load_yaml_file(path)
    params = (layer.data.get("sweep") or {}).get("params") or {}
    return {key: _where(layer, ("sweep", "params", key), str(path)) for key in params}


def load_spec(path: str | Path, *, trials: int | None = None, storage: str | None = None) -> SweepSpec:
    """Read and check a sweep spec file.

    Args:
        path: The YAML file, with a top-level ``sweep`` section.
        trials: Overrides ``sweep.trials`` (``--trials``).
        storage: Overrides ``sweep.storage`` (``--storage``).

    Raises:
        ConfigError: Naming the file, line and key, and the fix.
    """
    layer = load_yaml_file(path)
    section = layer.data.get("sweep")
    if set(layer.data) != {"sweep"} or not isinstance(section, dict):
        extra = sorted(k for k in layer.data if k != "sweep")
        detail = f"unknown top-level key '{shown(extra[0])}'" if extra else "no 'sweep' mapping"
        raise ConfigError(f"{path}: {detail}: a sweep spec holds one section, 'sweep:', with name, metric and params")
    data = dict(section)
    if trials is not None:
        data["trials"] = trials
    if storage is not None:
        data["storage"] = storage
    return check_spec(data, lambda keys: _where(layer, ("sweep", *keys), str(path)))


def check_spec(data: Any, where: Callable[[tuple[str, ...]], str]) -> SweepSpec:
    """Check the ``sweep`` section of a spec, from a file or from a study's store, as one.

    Args:
        data: The section's mapping.
        where: Where a key path of the section was set (``spec.yaml:7``), for messages.

    Raises:
        ConfigError: Naming where, the key, and the fix.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where(())}: sweep: not a mapping: a sweep spec holds name, metric and params")
    _check_secrets(data, where)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(str(p) for p in first["loc"] if not (isinstance(p, str) and (p[:1].isupper() or p == "str")))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key '{shown(loc[-1])}'; allowed keys: {', '.join(SweepSpec.model_fields)}"
        elif first["type"] == "missing":
            message = f"'{loc[-1]}' is missing: a sweep needs name, metric and params"
        raise ConfigError(f"{where(loc)}: sweep.{shown('.'.join(loc), 120)}: {shown(message, 300)}") from err
    for key, raw in spec.params.items():
        at = where(("params", key))
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{at}: sweep.params: '{shown(key)}' is not a dotted config key such as "
                              "model.init_args.lr")
        reserved = next((r for r in RESERVED_PARAMS if key == r or key.startswith(r + ".")), None)
        if reserved is not None:
            raise ConfigError(f"{at}: sweep.params.{shown(key)}: '{reserved}' is set by the sweep on every trial; "
                              "sample another key")
        holds = next((r for r in RESERVED_PARAMS if r.startswith(key + ".")), None)
        if holds is not None:
            raise ConfigError(f"{at}: sweep.params.{shown(key)}: it holds '{holds}', which the sweep sets on every "
                              f"trial; sample the keys under {shown(key)} one by one")
        try:
            parse_param(key, raw)
        except ValueError as err:
            raise ConfigError(f"{at}: sweep.params.{shown(key)}: {shown(err, 300)}") from err
    params = {p.key: p for p in spec.parsed_params()}
    if len(spec.enqueue) > spec.trials:
        raise ConfigError(f"{where(('enqueue',))}: sweep.enqueue: {len(spec.enqueue)} entries, but trials is "
                          f"{spec.trials}: enqueue at most as many as the sweep runs")
    for index, values in enumerate(spec.enqueue):
        at = where(("enqueue", str(index)))
        for key, value in values.items():
            if key not in params:
                raise ConfigError(f"{at}: sweep.enqueue[{index}]: '{shown(key)}' is not one of sweep.params: "
                                  f"{shown(', '.join(params), 200)}")
            try:
                params[key].encode(value)
            except ValueError as err:
                raise ConfigError(f"{at}: sweep.enqueue[{index}].{shown(key)}: {shown(err, 200)}") from err
    for kind, component, table in (("sampler", spec.sampler, SAMPLERS), ("pruner", spec.pruner, PRUNERS)):
        options = component.options() if isinstance(component, NamedComponent) else {}
        name = component if isinstance(component, str) else component.name
        try:
            _check_options(kind, name, table, options, spec)
        except ValueError as err:
            raise ConfigError(f"{where((kind,))}: sweep.{kind}: {shown(err, 300)}") from err
    return spec


def _check_secrets(data: dict[str, Any], where: Callable[[tuple[str, ...]], str]) -> None:
    """Refuse a spec that holds a secret: the study stores it, and every trial's files repeat its values."""
    values = sorted(secret_values(), key=len, reverse=True)

    def walk(obj: Any, keys: tuple[str, ...], depth: int = 0) -> None:
        if depth > 100:
            return  # the schema refuses it; no secret check can be deeper than the reader's limit
        if isinstance(obj, dict):
            for key, item in obj.items():
                named = keys[-1:] == ("params",) and isinstance(key, str) and is_secret_key(key.rsplit(".", 1)[-1])
                if named or any(v in str(key) for v in values):
                    _refuse_secret(where((*keys, str(key))), (*keys, str(key)))
                walk(item, (*keys, str(key)), depth + 1)
        elif isinstance(obj, list):
            for index, item in enumerate(obj):
                walk(item, (*keys, str(index)), depth + 1)
        elif isinstance(obj, str) and any(v in obj for v in values):
            _refuse_secret(where(keys), keys)

    walk({k: v for k, v in data.items() if k != "storage"}, ())


def _refuse_secret(at: str, keys: tuple[str, ...]) -> None:
    raise ConfigError(
        f"{at}: sweep.{shown('.'.join(keys), 120)}: holds a secret (the value of a secret environment variable, or "
        "a key named like one); a sweep stores its spec in the study and in every trial's files: remove it and let "
        "the component read its own environment variable"
    )


def _optuna_class(kind: str, name: str, table: dict[str, str]) -> Any:
    import optuna

    module = optuna.samplers if kind == "sampler" else optuna.pruners
    return getattr(module, table[name])


_SET_BY_SWEEP = {"search_space"}


def _check_options(kind: str, name: str, table: dict[str, str], options: dict[str, Any], spec: SweepSpec) -> None:
    cls = _optuna_class(kind, name, table)
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p not in ("self", *_SET_BY_SWEEP) and params[p].kind not in
                (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(f"{name} has no option '{unknown[0]}'; its options: {', '.join(accepted) or 'none'}")
    if kind == "sampler" and name == "grid":
        params = spec.parsed_params()
        for param in params:
            try:
                param.grid_count()
            except ValueError as err:
                raise ValueError(f"{param.key}: {err}") from err
        if grid_size(params) > MAX_GRID_POINTS:
            raise ValueError(f"the grid has over {MAX_GRID_POINTS} points (the product of each parameter's number of "
                             "values): use wider steps or fewer values, or another sampler")


def _build(kind: str, name: str, table: dict[str, str], options: dict[str, Any], extra: dict[str, Any]) -> Any:
    quiet_optuna()
    cls = _optuna_class(kind, name, table)
    try:
        return cls(**extra, **options)
    except (TypeError, ValueError, ImportError) as err:
        hint = "; install it with pip install cmaes" if isinstance(err, ImportError) else ""
        raise ConfigError(f"sweep.{kind}: {name}: {' '.join(str(err).split())}{hint}") from err


_RESEEDED = ("tpe", "random", "cmaes")
"""Samplers whose seed only starts a random stream: a continued sweep gives them a new one. ``qmc`` continues its
sequence from the trials in the study and ``grid`` never repeats a point, so their seed stays."""


def continuation_seed(seed: int, done: int) -> int:
    """The sampler seed of a sweep continued when ``done`` trials are already in its study.

    The same seed and count give the same seed again, so that continuing a seeded sweep stays repeatable, while the
    values it draws differ from those the first trials drew (a sampler started again on the spec's own seed would
    draw them once more).

    Args:
        seed: The spec's seed (plus a worker's offset).
        done: How many trials the study holds, of any state.

    Returns:
        ``seed`` itself when the study has no trial yet, else a seed in ``[0, 2**32)`` made from both numbers.
    """
    if done <= 0:
        return seed
    digest = hashlib.sha256(f"enhtrain-sweep-seed:{seed}:{done}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def build_sampler(spec: SweepSpec, seed_offset: int = 0, *, done: int = 0) -> Any:
    """Build the spec's Optuna sampler.

    Args:
        spec: The sweep spec.
        seed_offset: Added to a ``seed`` option, so that workers of one study do not draw the same values.
        done: How many trials the study already holds: a continued sweep's seeded ``tpe``, ``random`` or ``cmaes``
            sampler starts from :func:`continuation_seed` rather than the spec's seed.

    Raises:
        ConfigError: If the sampler rejects its options.
    """
    sampler = spec.sampler
    options = sampler.options() if isinstance(sampler, NamedComponent) else {}
    if isinstance(options.get("seed"), int):
        options["seed"] += seed_offset
        if spec.sampler_name in _RESEEDED:
            options["seed"] = continuation_seed(options["seed"], done)
    extra: dict[str, Any] = {}
    if spec.sampler_name == "grid":
        extra["search_space"] = {p.key: p.grid() for p in spec.parsed_params()}
    return _build("sampler", spec.sampler_name, SAMPLERS, options, extra)


def build_pruner(spec: SweepSpec) -> Any:
    """Build the spec's Optuna pruner.

    Raises:
        ConfigError: If the pruner rejects its options.
    """
    pruner = spec.pruner
    options = pruner.options() if isinstance(pruner, NamedComponent) else {}
    return _build("pruner", spec.pruner_name, PRUNERS, options, {})
