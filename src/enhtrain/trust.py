"""The trust rule: a switch that loosens a security check comes only from the person running the command.

:data:`LOOSENING_SWITCHES` lists every such switch, with its flag and its variable. A switch is read from
these two places only (:func:`read_switches`): the command line the person typed and their shell's
environment. Everything else is refused with one line naming where it was set: a key in a config file, a file
it ``extends``, an overlay, an ``ENHTRAIN_SECTION__KEY`` variable or an inline mapping
(:func:`check_config_switches`, run on every composed config), and a flag found in a list of arguments that
comes from a store, a run file or a plugin (:func:`check_flag_switches`). A switch that turns a safe-mode check
off is refused together with safe mode (``--safe`` or ``ENHTRAIN_SAFE_CONFIG``).

This module imports nothing of enhtrain but its errors, so that every layer may call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from enhtrain.errors import ConfigError

__all__ = [
    "LOOSENING_SWITCHES",
    "SAFE_FLAG",
    "SAFE_VARIABLE",
    "LooseningSwitch",
    "TrustSwitches",
    "check_config_switches",
    "check_flag_switches",
    "read_switches",
    "switch_value",
]


@dataclass(frozen=True)
class LooseningSwitch:
    """A switch that loosens a security check.

    Attributes:
        name: The switch's name.
        flag: Its command-line flag.
        variable: Its environment variable.
        loosens: What it allows, for messages and documentation.
        with_safe: Whether it is accepted in safe mode (a switch that only widens safe mode's own list is).
        config_keys: Config keys through which a layer might try to set it; each is refused.
    """

    name: str
    flag: str
    variable: str
    loosens: str
    with_safe: bool
    config_keys: tuple[tuple[str, ...], ...] = ()


LOOSENING_SWITCHES: tuple[LooseningSwitch, ...] = (
    LooseningSwitch(
        "trust_checkpoint",
        "--trust_checkpoint",
        "ENHTRAIN_TRUST_CHECKPOINT",
        "load checkpoints that need pickled Python objects, which can run code",
        with_safe=False,
        config_keys=(("experiment", "trust_checkpoint"), ("trust_checkpoint",)),
    ),
    LooseningSwitch(
        "allow_module",
        "--allow_module",
        "ENHTRAIN_ALLOWED_MODULES",
        "name classes of one more package in safe mode",
        with_safe=True,
        config_keys=(("experiment", "allow_module"), ("experiment", "allowed_modules"), ("allow_module",),
                     ("allowed_modules",)),
    ),
)
"""Every switch that loosens a security check, in one place (``docs/guides/security.md`` lists them too)."""

SAFE_FLAG = "--safe"
"""The flag that turns safe mode on (it tightens the import gate, so any layer could set it; only these do)."""

SAFE_VARIABLE = "ENHTRAIN_SAFE_CONFIG"
"""The variable that turns safe mode on."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def switch_value(environ: Mapping[str, str], variable: str) -> bool:
    """Read an on/off variable: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (or unset).

    Raises:
        ConfigError: For any other value.
    """
    text = environ.get(variable, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    shown = text if len(text) <= 40 and text.isprintable() else text[:40].encode("unicode_escape").decode() + "..."
    raise ConfigError(f"variable {variable}: '{shown}' is not on or off; set it to 1 or 0, or unset it")


@dataclass(frozen=True)
class TrustSwitches:
    """The switches in force for one command, as the person running it gave them.

    Attributes:
        safe: Safe mode (``--safe`` or ``ENHTRAIN_SAFE_CONFIG``).
        trust_checkpoint: Load checkpoints that need pickled objects.
        allowed_modules: Packages whose classes safe mode also allows.
        origins: Switch name to where it was given (``flag --trust_checkpoint``, ``variable ...``).
    """

    safe: bool = False
    trust_checkpoint: bool = False
    allowed_modules: tuple[str, ...] = ()
    origins: Mapping[str, str] = field(default_factory=dict)


def read_switches(
    *, safe_flag: bool, trust_flag: bool, allow_flags: Sequence[str], environ: Mapping[str, str]
) -> TrustSwitches:
    """Read the switches from the person's own flags and shell variables: the only places they come from.

    Args:
        safe_flag: ``--safe`` was given.
        trust_flag: ``--trust_checkpoint`` was given.
        allow_flags: The values of ``--allow_module`` (comma-separated lists allowed).
        environ: The environment of the command.

    Raises:
        ConfigError: For a variable that is not on or off, or a switch refused in safe mode.
    """
    origins: dict[str, str] = {}
    safe_variable = environ.get(SAFE_VARIABLE, "").strip() not in ("", "0")
    if safe_flag or safe_variable:
        origins["safe"] = f"flag {SAFE_FLAG}" if safe_flag else f"variable {SAFE_VARIABLE}"
    trust_variable = switch_value(environ, "ENHTRAIN_TRUST_CHECKPOINT")
    if trust_flag or trust_variable:
        origins["trust_checkpoint"] = "flag --trust_checkpoint" if trust_flag else "variable ENHTRAIN_TRUST_CHECKPOINT"
    allowed = [m.strip() for value in allow_flags for m in value.split(",") if m.strip()]
    allowed_variable = [m.strip() for m in environ.get("ENHTRAIN_ALLOWED_MODULES", "").split(",") if m.strip()]
    if allowed or allowed_variable:
        origins["allow_module"] = "flag --allow_module" if allowed else "variable ENHTRAIN_ALLOWED_MODULES"
    switches = TrustSwitches("safe" in origins, "trust_checkpoint" in origins,
                             tuple(dict.fromkeys([*allowed, *allowed_variable])), origins)
    if switches.safe:
        for switch in LOOSENING_SWITCHES:
            if switch.name in origins and not switch.with_safe:
                raise ConfigError(
                    f"{origins[switch.name]} and {origins['safe']}: safe mode never lets a command "
                    f"{switch.loosens}; drop one of the two"
                )
    return switches


def _refusal(where: str, key: str, switch: LooseningSwitch) -> ConfigError:
    return ConfigError(
        f"{where}: {key}: a switch that loosens a security check is taken only from your own command line "
        f"({switch.flag}) or shell variable ({switch.variable}), never from a config, an overlay, a config "
        "variable, an inline mapping, a store or a run file; remove it"
    )


def check_config_switches(data: Any, source_of: Callable[[Sequence[str]], str | None]) -> None:
    """Refuse a loosening switch set anywhere in a composed config; drop a key that sets it off.

    Every layer of a config (files, ``extends``, overlays, ``ENHTRAIN_SECTION__KEY`` variables, ``--experiment``
    flags and inline mappings) ends in the composed data, so one look at it covers them all. A key set to
    ``false`` or ``null`` loosens nothing (configs saved by earlier versions hold ``trust_checkpoint: false``):
    it is removed.

    Args:
        data: The composed config; keys that set a switch off are removed from it.
        source_of: Where a key path was set (``file.yaml:3``, ``environment variable ...``), for the message.

    Raises:
        ConfigError: Naming where the switch was set, the key, the dedicated flag and variable.
    """
    if not isinstance(data, dict):
        return
    for switch in LOOSENING_SWITCHES:
        for path in switch.config_keys:
            parent: Any = data
            for part in path[:-1]:
                parent = parent.get(part) if isinstance(parent, dict) else None
            if not isinstance(parent, dict) or path[-1] not in parent:
                continue
            value = parent[path[-1]]
            if value is None or value is False or value == [] or value == "":
                del parent[path[-1]]
                continue
            raise _refusal(source_of(path) or "config", ".".join(path), switch)


def check_flag_switches(args: Sequence[str], where: str) -> None:
    """Refuse a loosening switch in arguments that do not come from the person (a store, a run file, a plugin).

    ``--safe`` is kept: it only tightens. ``--experiment`` mappings and ``--experiment.KEY`` flags are left to
    :func:`check_config_switches`, which sees them once they are composed.

    Args:
        args: The arguments, as they would be given to ``enhtrain``.
        where: Where they come from, for the message (``study 'x' (trial 3)``).

    Raises:
        ConfigError: Naming where the arguments came from and the flag.
    """
    for arg in args:
        name = str(arg).split("=", 1)[0]
        for switch in LOOSENING_SWITCHES:
            if name == switch.flag:
                raise _refusal(where, switch.flag, switch)
