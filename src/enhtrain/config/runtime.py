"""The schema of runtime updates: the keys a running run accepts, their types and ranges, and the request file.

A request (``<run>/runtime.yaml``) sets keys and asks for actions::

    request: 6f1c...            # an id; `enhtrain runs set/stop/checkpoint` write one, a hand-written file may not
    source: enhtrain runs set   # who asked, recorded with each applied update
    set:
      optimizer.lr: 1.0e-4
      trainer.max_epochs: 20
    actions: [checkpoint]       # checkpoint, stop

Keys are declared through the ``enhtrain_runtime_keys`` plugin hook, the built-in ones by
:mod:`enhtrain.plugins.builtin.runtime`. Every value is validated by Pydantic against its key's type and range
both by the command that writes the request and by the run before it applies it. Besides a key's own range,
every number must be finite, a whole number at most :data:`MAX_RUNTIME_INT` and any other number at most
:data:`MAX_RUNTIME_FLOAT` in size, and a request sets at most :data:`MAX_RUNTIME_KEYS` keys. Values shown in
messages are cut to a few dozen characters and secrets in them masked. Nothing here imports torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from enhtrain.errors import CheckpointError, ConfigError, PluginError

__all__ = [
    "ACK_FILE",
    "ACTIONS",
    "MAX_RUNTIME_FLOAT",
    "MAX_RUNTIME_INT",
    "MAX_RUNTIME_KEYS",
    "RUNTIME_FILE",
    "RuntimeKey",
    "RuntimeKeyRegistry",
    "RuntimeRequest",
    "check_saved_state",
    "collect_runtime_keys",
    "one_line",
    "out_of_range",
    "parse_assignments",
    "shown",
    "validate_request",
]

RUNTIME_FILE = "runtime.yaml"
"""The file in a run directory that asks the running process for updates."""

ACK_FILE = "runtime.ack.yaml"
"""The file in which the run answers a request: its id, the step, what it applied and what it rejected."""

ACTIONS = ("checkpoint", "stop")
"""What a request can ask for besides values: save a checkpoint now, stop gracefully (after a checkpoint)."""

MAX_RUNTIME_INT = 2**53 - 1
"""The largest whole number a runtime update may set (in size): exactly a float, as its metric is logged."""

MAX_RUNTIME_FLOAT = 1e30
"""The largest number a runtime update may set (in size): it fits a float32 tensor with room to spare."""

MAX_RUNTIME_KEYS = 100
"""The most keys one request may set."""

_SHOWN = 60
_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def shown(value: Any, limit: int = _SHOWN) -> str:
    """``repr(value)`` for a message: cut to ``limit`` characters, secrets masked, never raising.

    A huge or deeply nested value (a YAML alias expanded, an integer of thousands of digits) is described by its
    type instead of being formatted in full.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, (dict, list, tuple, set)) and len(value) > limit:
        return f"<a {type(value).__name__} of {len(value)} items>"
    try:
        text = repr(value)
    except (ValueError, RecursionError, TypeError):
        return f"<a {type(value).__name__}>"
    return one_line(text, limit)


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line, secrets masked, cut to ``limit`` characters.

    It is cut before it is masked (masking costs time that grows faster than the text), with a margin so that a
    secret across the cut is still masked whole.
    """
    from enhtrain.secrets import mask_text

    cut = " ".join(str(text)[: limit + 200].split())
    masked = mask_text(cut)
    return masked if len(masked) <= limit else masked[: limit - 3] + "..."


@dataclass(frozen=True)
class RuntimeKey:
    """One key that a running run accepts.

    Attributes:
        name: The dotted key, ``section.name`` (``optimizer.lr``).
        type: The type of its value, as Pydantic validates it (``float``, ``int``, ``bool``, a ``Literal``).
        apply: ``apply(trainer, pl_module, value) -> None``, or its import path ``"pkg.module:function"``. It
            raises ``ValueError`` with a one-line reason when the value does not apply to this run.
        read: ``read(trainer, pl_module) -> value``, or its import path: the value now in effect (recorded as
            ``old`` and ``new``). ``None`` records the requested value.
        help: One line for ``enhtrain runs set --help`` and error messages.
        target: The key whose value this one changes (``optimizer.lr`` for ``optimizer.lr_scale``): the metric is
            ``runtime/<target>`` and a resumed run re-applies the target's last value.
        bounds: Pydantic's ``ge``, ``gt``, ``le`` and ``lt`` for numbers.
        plugin: The plugin that declared it.
    """

    name: str
    type: Any
    apply: Callable[..., Any] | str
    read: Callable[..., Any] | str | None = None
    help: str = ""
    target: str = ""
    bounds: Mapping[str, float] = field(default_factory=dict)
    plugin: str = ""

    @property
    def numeric(self) -> bool:
        """Whether the key's value is a number (logged as the metric ``runtime/<target>``)."""
        return self.type in (int, float)

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to the key's type, within its range and the limits of every number.

        Raises:
            ConfigError: Naming the key, the value and what is accepted.
        """
        extra: dict[str, Any] = {"allow_inf_nan": False} if self.type is float else {}
        adapter: TypeAdapter[Any] = TypeAdapter(Annotated[self.type, Field(**dict(self.bounds), **extra)])
        if isinstance(value, bool) and self.type in (int, float):
            value = str(value)  # Pydantic would take true as 1
        reason = out_of_range(value)
        if reason is None:
            try:
                converted = adapter.validate_python(value)
            except (ValidationError, ValueError, TypeError, OverflowError) as err:
                errors = err.errors() if isinstance(err, ValidationError) else []
                reason = errors[0].get("msg", "invalid value") if errors else "invalid value"
            else:
                reason = out_of_range(converted)
                if reason is None:
                    return converted
        raise ConfigError(
            f"runtime update {self.name}={shown(value)}: {reason}; give {self.describe()}", key=self.name
        ) from None

    def describe(self) -> str:
        """The accepted values in words: ``a number > 0``, ``a whole number >= -1``."""
        words = {float: "a number", int: "a whole number", bool: "true or false", str: "a string"}
        text = words.get(self.type, str(getattr(self.type, "__name__", self.type)))
        signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        limits = [f"{signs[k]} {v:g}" for k, v in self.bounds.items() if k in signs]
        return f"{text} {' and '.join(limits)}".strip()

    def load_apply(self) -> Callable[..., Any]:
        """Return the ``apply`` function, importing it through the import gate when it is a path."""
        return _load(self.apply, self)

    def load_read(self) -> Callable[..., Any] | None:
        """Return the ``read`` function, or ``None``."""
        return None if self.read is None else _load(self.read, self)


def out_of_range(value: Any) -> str | None:
    """Why a number is past the limits of every runtime value (not finite, too large), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) > MAX_RUNTIME_INT:
        return f"a whole number larger than {MAX_RUNTIME_INT} in size (limit)"
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, float) and abs(value) > MAX_RUNTIME_FLOAT:
        return f"a number larger than {MAX_RUNTIME_FLOAT:g} in size (limit)"
    return None


def _load(target: Callable[..., Any] | str, key: RuntimeKey) -> Callable[..., Any]:
    if not isinstance(target, str):
        return target
    from enhtrain.security import import_object

    try:
        loaded = import_object(target, key=f"runtime key '{key.name}'", where=f"plugin {key.plugin or 'unknown'}")
    except (ImportError, AttributeError) as err:
        raise PluginError(
            f"runtime key '{key.name}' from plugin {key.plugin or 'unknown'} cannot import '{target}' ({err}); "
            "fix that plugin"
        ) from err
    return loaded  # type: ignore[no-any-return]


class RuntimeKeyRegistry:
    """The keys a running run accepts, as handed to the ``enhtrain_runtime_keys`` hook of each plugin."""

    def __init__(self) -> None:
        self._keys: dict[str, RuntimeKey] = {}
        self._current = ""

    def register(
        self,
        name: str,
        *,
        type: Any,
        apply: Callable[..., Any] | str,
        read: Callable[..., Any] | str | None = None,
        help: str = "",
        target: str | None = None,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
    ) -> None:
        """Declare a key.

        Args:
            name: The dotted key, lower case: ``section.name`` (``model.dropout``).
            type: Its value's type, as Pydantic validates it.
            apply: ``apply(trainer, pl_module, value)``, or its import path ``"pkg.module:function"`` (imported
                only when a run applies the key).
            read: ``read(trainer, pl_module) -> value``, or its import path; optional.
            help: One line saying what the key changes.
            target: The key whose value this one changes, when not itself.
            ge: The smallest value allowed.
            gt: Values must be greater than this.
            le: The largest value allowed.
            lt: Values must be less than this.

        Raises:
            ValueError: If the name is not a dotted lower-case key, or another plugin declared it already.
        """
        if not _KEY.match(name):
            raise ValueError(f"invalid runtime key {name!r}: use a dotted lower-case key such as 'model.dropout'")
        existing = self._keys.get(name)
        if existing is not None and existing.plugin != self._current:
            raise ValueError(f"runtime key '{name}' is already declared by plugin {existing.plugin}")
        bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
        self._keys[name] = RuntimeKey(name, type, apply, read, help, target or name, bounds, self._current)

    def get(self, name: str) -> RuntimeKey:
        """Return the key ``name``.

        Raises:
            ConfigError: If no plugin declared it; the message lists the known keys.
        """
        if name not in self._keys:
            raise ConfigError(
                f"runtime update {shown(name)} is not a key a running run accepts: use one of "
                f"{', '.join(self.names())} (or the commands `enhtrain runs stop` and `enhtrain runs checkpoint`)",
                key=name[:_SHOWN],
            )
        return self._keys[name]

    def names(self) -> list[str]:
        """Return the declared keys, sorted."""
        return sorted(self._keys)

    def __iter__(self) -> Iterator[RuntimeKey]:
        return iter(self._keys.values())

    def __contains__(self, name: object) -> bool:
        return name in self._keys


def collect_runtime_keys() -> RuntimeKeyRegistry:
    """Call every plugin's ``enhtrain_runtime_keys`` hook, built-ins first, and return the keys.

    Raises:
        PluginError: If a plugin's hook raises; the message names the plugin.
    """
    from enhtrain import plugins

    manager = plugins.get_plugin_manager()
    registry = RuntimeKeyRegistry()
    impls = list(reversed(manager.hook.enhtrain_runtime_keys.get_hookimpls()))
    # Built-ins first, whenever the others were registered: a plugin that declares a built-in key is at fault.
    impls.sort(key=lambda impl: impl.plugin_name not in plugins.BUILTIN_PLUGINS)
    for impl in impls:
        registry._current = impl.plugin_name
        try:
            impl.function(registry=registry)
        except Exception as err:
            raise PluginError(
                f"plugin {impl.plugin_name} failed in enhtrain_runtime_keys: {type(err).__name__}: {err}; "
                "fix that plugin"
            ) from err
    registry._current = ""
    return registry


class RuntimeRequest(BaseModel):
    """The content of ``runtime.yaml``.

    Attributes:
        request: An id for the request; the run answers with it in ``runtime.ack.yaml``. A file without one is
            identified by its content.
        source: Who asked (``enhtrain runs set``, ``user@host``), recorded with each update.
        set: Key to new value.
        actions: ``checkpoint`` and/or ``stop``.
    """

    model_config = ConfigDict(extra="forbid")

    request: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=500)
    set: dict[str, Any] = Field(default_factory=dict, max_length=MAX_RUNTIME_KEYS)
    actions: list[Literal["checkpoint", "stop"]] = Field(default_factory=list, max_length=len(ACTIONS))


def validate_request(data: Any, keys: RuntimeKeyRegistry) -> tuple[RuntimeRequest, dict[str, Any], list[str]]:
    """Check a request: its layout, then each key and value.

    Args:
        data: The request as loaded from YAML.
        keys: The keys the run accepts.

    Returns:
        The request, the valid updates (key to converted value), and one line per rejected key.

    Raises:
        ConfigError: If the request itself is malformed (not a mapping, an unknown field, a bad action).
    """
    try:
        request = RuntimeRequest.model_validate(data if data is not None else {})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(one_line(p, _SHOWN) for p in first.get("loc", ())) or "the file"
        raise ConfigError(
            f"{RUNTIME_FILE}: {where}: {' '.join(str(first.get('msg', 'invalid')).split())}; write a mapping with "
            f"'set' (key: value, at most {MAX_RUNTIME_KEYS}) and 'actions' (a list of {', '.join(ACTIONS)})"
        ) from None
    valid: dict[str, Any] = {}
    errors: list[str] = []
    for name, value in request.set.items():
        try:
            valid[name] = keys.get(name).validate(value)
        except ConfigError as err:
            errors.append(str(err))
    return request, valid, errors


def parse_assignments(assignments: list[str], keys: RuntimeKeyRegistry) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` arguments into validated updates; values are YAML (``1e-4``, ``20``, ``true``).

    Each value is read by the bounded reader (:mod:`enhtrain.documents`), so an integer of thousands of digits
    or a YAML alias bomb is refused in one line; text that is not YAML stays a string.

    Raises:
        ConfigError: On the first argument without ``=``, unknown key or bad value, or more than
            :data:`MAX_RUNTIME_KEYS` arguments.
    """
    from enhtrain.documents import YAMLSyntaxError, parse_yaml

    if len(assignments) > MAX_RUNTIME_KEYS:
        raise ConfigError(f"runs set: {len(assignments)} updates; give at most {MAX_RUNTIME_KEYS} at once")
    updates: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"runs set: {shown(item)} is not KEY=VALUE: write e.g. optimizer.lr=1e-4")
        key = keys.get(name)
        try:
            value = parse_yaml(text, f"runs set {key.name}") if text.strip() else None
        except YAMLSyntaxError:
            value = text
        updates[name] = key.validate(value)
    return updates


_STATE_KEY = "RuntimeUpdates"
_MAX_STATE_ITEMS = 10_000


def check_saved_state(checkpoint: Any, path: object) -> None:
    """Refuse a checkpoint whose runtime-update state a resumed run could not apply safely.

    The state (``callbacks.RuntimeUpdates.applied``) maps at most :data:`MAX_RUNTIME_KEYS` dotted keys to
    ``{"launch": value, "value": value}``; every value is a string, ``null``, true/false or a number within the
    limits of a runtime value (finite, not too large), or a short list of them (a learning rate per parameter
    group). Called before a run resumes or starts from the checkpoint, before anything is written.

    Raises:
        CheckpointError: Naming the checkpoint and what is wrong, in one line.
    """
    callbacks = checkpoint.get("callbacks") if isinstance(checkpoint, dict) else None
    state = callbacks.get(_STATE_KEY) if isinstance(callbacks, dict) else None
    if state is None:
        return
    problem = _state_problem(state)
    if problem is not None:
        raise CheckpointError(
            f"checkpoint '{path}': its runtime-update state (callbacks.{_STATE_KEY}) {problem}; use another "
            "checkpoint"
        )


def _state_problem(state: Any) -> str | None:
    applied = state.get("applied") if isinstance(state, dict) else None
    if not isinstance(applied, dict):
        return "is not a mapping with 'applied'"
    if len(applied) > MAX_RUNTIME_KEYS:
        return f"sets {len(applied)} keys, more than {MAX_RUNTIME_KEYS} (limit)"
    for key, entry in applied.items():
        if not isinstance(key, str) or len(key) > 200:
            return f"names a key that is not a dotted name: {shown(key)}"
        if not isinstance(entry, dict) or len(entry) > 10:
            return f"holds {shown(entry)} for {one_line(key, _SHOWN)}, not a mapping with 'launch' and 'value'"
        for field_name, value in entry.items():
            items = value if isinstance(value, list) else [value]
            if len(items) > _MAX_STATE_ITEMS:
                where = f"{one_line(key, _SHOWN)}.{one_line(field_name, _SHOWN)}"
                return f"holds {len(items)} values at {where} (limit {_MAX_STATE_ITEMS})"
            for item in items:
                if (isinstance(item, str) and len(item) <= 1000) or item is None or isinstance(item, bool):
                    continue
                reason = out_of_range(item) if isinstance(item, (int, float)) else "not a plain value"
                if reason is not None:
                    return f"holds {shown(item)} at {one_line(key, _SHOWN)}.{one_line(field_name, _SHOWN)}: {reason}"
    return None
