"""Turning a command line into the composed config that jsonargparse then parses.

enhtrain reads the ``--config`` files, ``--env`` and ``--experiment.*`` flags itself, composes the layers,
validates the ``experiment`` section, and hands jsonargparse one resolved config plus the remaining flags,
which it parses exactly as ``LightningCLI`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from enhtrain.config.compose import CLASS_SECTIONS, ComposedConfig, compose, parse_flag_value
from enhtrain.config.loading import Layer
from enhtrain.config.merging import set_path
from enhtrain.documents import dump_yaml
from enhtrain.errors import ConfigError, located
from enhtrain.security import check_config_imports

if TYPE_CHECKING:
    from enhtrain.config.reconcile import GivenParts
    from enhtrain.config.schema import ExperimentConfig
    from enhtrain.security import ImportPolicy
    from enhtrain.trust import TrustSwitches

__all__ = [
    "KEYED_MERGE_RULE",
    "SUBCOMMANDS",
    "PreparedArgs",
    "annotate_printed_config",
    "check_component_names",
    "check_components",
    "check_reserved_options",
    "compose_arguments",
    "experiment_defaults_layer",
    "import_policy",
    "iter_flags",
    "prepare_arguments",
    "reconcile_root_dir",
    "resolve_registered_classes",
    "split_arguments",
    "trainer_root_dir",
    "trust_switches",
    "validate_experiment",
]

SUBCOMMANDS = ("fit", "validate", "test", "predict")
"""The training subcommands of ``LightningCLI``."""


KEYED_MERGE_RULE = (
    "experiment.loggers and experiment.callbacks merge name by name over the lower layers, the defaults "
    "included: a layer adds or changes only the names it gives and keeps the others, NAME: null removes one, "
    "and an empty mapping {} (or a list of names, [csv]) replaces them all."
)
"""How the keyed sections of ``experiment`` merge across layers, in one sentence (shown in ``--help``)."""


@dataclass
class SplitArguments:
    """A command line taken apart.

    Attributes:
        head: Arguments before the subcommand (passed through untouched).
        subcommand: The subcommand, if any.
        config_files: Values of ``--config``/``-c``, in order.
        env: The ``--env`` value.
        experiment_flags: ``(dotted key, value)`` pairs of ``--experiment.*`` flags.
        config_flags: ``(dotted key, value)`` pairs of the other flags that set a config value
            (``--trainer.max_epochs 3``, ``--model.init_args.lr 0.1``): composed with the other layers.
        passed_flags: ``(key, value text)`` of the flags with a value that jsonargparse applies (a class
            chosen by name, ``+=``, anything outside the config's sections).
        class_flags: ``(dotted key, value)`` pairs of the flags that choose a section's class and the flags after
            them for that section, in order: among ``passed_flags`` too, and composed as jsonargparse applies them
            (see :mod:`enhtrain.config.class_flags`).
        rest: The arguments jsonargparse parses, in order: every argument after the subcommand that enhtrain
            does not take for itself. A config flag stays here too, so that jsonargparse reads it with its
            types, unless its value holds an interpolation, which only the composed config can resolve.
        safe: ``--safe`` was given.
        allowed_modules: The values of ``--allow_module``.
        trust_checkpoint: ``--trust_checkpoint`` was given (the switch never enters the composed config).
    """

    head: list[str] = field(default_factory=list)
    subcommand: str | None = None
    config_files: list[str] = field(default_factory=list)
    env: str | None = None
    experiment_flags: list[tuple[str, Any]] = field(default_factory=list)
    config_flags: list[tuple[str, Any]] = field(default_factory=list)
    passed_flags: list[tuple[str, str]] = field(default_factory=list)
    class_flags: list[tuple[str, Any]] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)
    safe: bool = False
    allowed_modules: list[str] = field(default_factory=list)
    trust_checkpoint: bool = False


def _take_value(args: list[str], i: int, flag: str) -> tuple[str, int]:
    arg = args[i]
    if arg.startswith(flag + "="):
        return arg[len(flag) + 1 :], i + 1
    if i + 1 >= len(args):
        raise ConfigError(f"{flag} needs a value")
    return args[i + 1], i + 2


def split_arguments(argv: Sequence[str], subcommands: Sequence[str] | None = SUBCOMMANDS) -> SplitArguments:
    """Split ``argv`` into what enhtrain handles and what it passes to jsonargparse.

    Args:
        argv: The arguments, without the program name.
        subcommands: The known subcommands, or ``None`` when the CLI has none (``run=False``).
    """
    args = list(argv)
    out = SplitArguments()
    start = 0
    if subcommands:
        for i, arg in enumerate(args):
            if arg in subcommands:
                out.head, out.subcommand, start = args[:i], arg, i + 1
                break
        else:
            out.head = args
            return out
    i = start
    while i < len(args):
        arg = args[i]
        if arg in ("--config", "-c") or arg.startswith("--config="):
            value, i = _take_value(args, i, "--config" if arg != "-c" else "-c")
            out.config_files.append(value)
        elif arg == "--env" or arg.startswith("--env="):
            out.env, i = _take_value(args, i, "--env")
        elif arg == "--safe":
            out.safe = True
            i += 1
        elif arg == "--allow_module" or arg.startswith("--allow_module="):
            value, i = _take_value(args, i, "--allow_module")
            out.allowed_modules.extend(v.strip() for v in value.split(",") if v.strip())
        elif arg == "--trust_checkpoint":
            out.trust_checkpoint = True
            i += 1
        elif arg.startswith("--experiment.") or arg == "--experiment" or arg.startswith("--experiment="):
            flag = arg.split("=", 1)[0]
            value, i = _take_value(args, i, flag)
            key = flag[len("--experiment") :].lstrip(".")
            out.experiment_flags.append((key, parse_flag_value(value, f"flag {flag}")))
        else:
            out.rest.append(arg)
            i += 1
    out.config_flags, out.passed_flags, out.rest = _config_flags(out.rest)
    out.class_flags = _class_flags(out.passed_flags)
    return out


# The sections of LightningCLI's parsers whose flags set config values that enhtrain composes.
_COMPOSED_SECTIONS = ("trainer", "model", "data", "optimizer", "lr_scheduler", "seed_everything", "ckpt_path")
# Trainer settings that hold classes, whose sub-keys address list items or a class jsonargparse picks.
_CLASS_SETTINGS = ("trainer.callbacks", "trainer.logger", "trainer.plugins", "trainer.profiler")


def _composes(key: str, value: Any, chosen: set[str]) -> bool:
    """Whether the flag ``--key value`` is a config value to compose, rather than jsonargparse's alone.

    A flag that chooses a section's class (``--model Name``, ``--model.class_path Name``) is jsonargparse's, and
    so are the flags after it that set that section's arguments (``--model.lr``), which belong to the new class.
    """
    path = key.split(".")
    # `--model Name` chooses a class by name, which is jsonargparse's to resolve.
    if path[0] in CLASS_SECTIONS and (len(path) == 1 or path[1:] == ["class_path"]):
        chosen.add(path[0])
    if "+" in key or path[0] not in _COMPOSED_SECTIONS or path[0] in chosen:
        return False
    if path[1:] == ["help"]:
        return False  # `--model.help Class`: jsonargparse prints the class's options
    setting = ".".join(path[:2])
    if setting in _CLASS_SETTINGS:
        return len(path) == 2 and not isinstance(value, str)
    return True


def _class_flags(passed_flags: Sequence[tuple[str, str]]) -> list[tuple[str, Any]]:
    """The flags among jsonargparse's that choose a section's class, with the flags after them for that section."""
    from enhtrain.config.class_flags import chosen_class

    chosen: set[str] = set()
    out: list[tuple[str, Any]] = []
    for key, text in passed_flags:
        path = key.split(".")
        if path[0] not in CLASS_SECTIONS or "+" in key or path[1:] == ["help"]:
            continue
        value = parse_flag_value(text, f"flag --{key}")
        if chosen_class(key, value) is not None:
            chosen.add(path[0])
        if path[0] in chosen:
            out.append((key, value))
    return out


def iter_flags(args: Sequence[str]) -> Iterator[tuple[str, str | None, list[str]]]:
    """Read a list of arguments flag by flag, as jsonargparse does.

    Yields:
        ``(key, value, taken)``: the key without ``--`` (``""`` for an argument that is not a flag), the value
        (after ``=``, or the next argument unless that is a flag; ``None`` without one), and the arguments taken.
    """
    i = 0
    while i < len(args):
        arg = args[i]
        name, sep, text = arg.partition("=")
        key = name[2:] if name.startswith("--") else ""
        if not key:
            yield "", None, [arg]
            i += 1
        elif sep:
            yield key, text, [arg]
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            yield key, args[i + 1], [arg, args[i + 1]]
            i += 2
        else:
            yield key, None, [arg]
            i += 1


def _config_flags(rest: list[str]) -> tuple[list[tuple[str, Any]], list[tuple[str, str]], list[str]]:
    """Take the flags that set config values out of jsonargparse's arguments, for the composition.

    Returns:
        The ``(dotted key, value)`` pairs to compose, the ``(key, value text)`` pairs of the flags jsonargparse
        alone applies, and the arguments left for jsonargparse.
    """
    from enhtrain.config.compose import has_interpolation

    flags: list[tuple[str, Any]] = []
    passed_flags: list[tuple[str, str]] = []
    passed: list[str] = []
    chosen: set[str] = set()
    for key, text, taken in iter_flags(rest):
        if not key or text is None:
            passed.extend(taken)  # not a flag, or a flag without a value: jsonargparse's to judge
            continue
        value = parse_flag_value(text, f"flag --{key}") if key.split(".")[0] in _COMPOSED_SECTIONS else text
        if not _composes(key, value, chosen):
            passed_flags.append((key, text))
            passed.extend(taken)
            continue
        flags.append((key, value))
        if not has_interpolation(value):
            passed.extend(taken)
    return flags, passed_flags, passed


def compose_arguments(
    split: SplitArguments, *, environ: Mapping[str, str] | None = None, defaults: bool = True
) -> ComposedConfig:
    """Compose the layers of a command line taken apart: files, overlay, variables and every config flag.

    This is the one composition of a command line: ``fit`` and the other training subcommands, ``config
    explain``, ``config validate`` and sweeps all compose through it, so each shows or uses the same values.

    Args:
        split: The command line, from :func:`split_arguments`.
        environ: Environment variables (defaults to ``os.environ``).
        defaults: Include the code-defaults layer of the ``experiment`` section.

    Raises:
        ConfigError: For any invalid layer.
    """
    inline = [(i, v) for i, v in enumerate(split.config_files) if _looks_inline(v)]
    flags = [(f"experiment.{k}" if k else "experiment", v) for k, v in split.experiment_flags]
    class_flags: Callable[[Layer], None] | None = None
    if split.class_flags:
        from functools import partial

        from enhtrain.config.class_flags import apply_class_flags

        policy = import_policy(split, os.environ if environ is None else environ)
        class_flags = partial(apply_class_flags, flags=split.class_flags, policy=policy)

    return compose(
        split.config_files,
        defaults=experiment_defaults_layer() if defaults else None,
        env=split.env,
        environ=environ,
        flags=[*split.config_flags, *flags],
        inline_configs=inline,
        class_flags=class_flags,
    )


def _looks_inline(value: str) -> bool:
    """Whether a ``--config`` value is inline YAML rather than a file name.

    It is when no such file exists and the value opens a YAML mapping or list (``{``, ``[``, ``- ``), spans
    lines, or sets a key (``trainer: {max_epochs: 3}``); a list is then refused as not a mapping.
    """
    if os.path.exists(value):
        return False
    text = value.strip()
    return text.startswith(("{", "[", "- ")) or "\n" in text or ": " in text


def experiment_defaults_layer() -> Layer:
    """The code-defaults layer: the ``experiment`` schema's defaults, so that overlays merge into them."""
    from enhtrain.config.schema import ExperimentConfig

    layer = Layer()
    set_path(layer, ("experiment",), ExperimentConfig().model_dump(mode="json"), "default")
    return layer


_UNION_TAG = re.compile(r"(str|int|float|bool|none|list|dict|[A-Z][A-Za-z]*Config|NamedComponent)|[a-z-]+\[.*\]")


def _field_locations(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """Drop the union-member tags (``str``, ``ProfilerConfig``, ``dict[str,any]``) pydantic puts in a location.

    A user's key is never taken for a tag: only the names of the schema's types are, and for an unknown key
    (``Name``, ``\\x1b[31m``), the last part of the location is the key itself.
    """
    *path, last = loc or ("",)
    kept = tuple(str(p) for p in path if not (isinstance(p, str) and _UNION_TAG.fullmatch(p)))
    return kept if isinstance(last, str) and _UNION_TAG.fullmatch(last) and loc else (*kept, str(last))


def validate_experiment(composed: ComposedConfig) -> ExperimentConfig:
    """Validate the ``experiment`` section of a composed config.

    Raises:
        ConfigError: Naming the key, where it was set, and what is accepted.
    """
    import difflib

    from pydantic import ValidationError

    from enhtrain.config.schema import ExperimentConfig
    from enhtrain.trust import check_config_switches

    # Every layer ends here, so a switch that loosens a check is refused here whichever layer set it.
    check_config_switches(composed.data, composed.source_of)
    section = composed.data.get("experiment")
    if section is None:
        section = {}
    if not isinstance(section, dict):
        where = composed.source_of(("experiment",)) or "config"
        raise ConfigError(f"{where}: 'experiment' must be a mapping, got {type(section).__name__}")
    try:
        return ExperimentConfig.model_validate(section)
    except ValidationError as err:
        errors = err.errors()
        fields = _field_locations(errors[0]["loc"])
        # A union reports one error per member; the deepest one under the same key is the useful one.
        first = max((e for e in errors if _field_locations(e["loc"])[:len(fields)] == fields),
                    key=lambda e: len(_field_locations(e["loc"])))
        loc = _field_locations(first["loc"])
        key = ".".join(("experiment", *loc))
        where = composed.source_of(("experiment", *loc)) or "config"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            model: Any = ExperimentConfig
            for part in loc[:-1]:
                model = model.model_fields[part].annotation if hasattr(model, "model_fields") else None
                model = next((a for a in getattr(model, "__args__", (model,)) if hasattr(a, "model_fields")), model)
            names = list(getattr(model, "model_fields", {}) or [])
            close = difflib.get_close_matches(loc[-1], names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            allowed = ", ".join(names)
            message = f"unknown key '{loc[-1]}'{hint}" + (f"; allowed keys: {allowed}" if allowed else "")
        more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
        raise ConfigError(f"{where}: {key}: {message}{more}") from err


def check_component_names(experiment: ExperimentConfig, composed: ComposedConfig) -> None:
    """Check that every logger, callback and profiler the experiment names is registered.

    Runs before anything is parsed or instantiated, and imports none of the components.

    Raises:
        ConfigError: Naming the key, where it was set, and the known names.
        PluginError: If two plugins registered the name.
    """
    from enhtrain import plugins

    registry = plugins.get_registry()
    wanted = [("loggers", name) for name in experiment.active_loggers()]
    wanted += [("callbacks", name) for name in experiment.active_callbacks()]
    spec = experiment.profiler_spec()
    if spec is not None:
        wanted.append(("profilers", spec[0]))
    for kind, name in wanted:
        kind_registry = registry.kinds[kind]
        if kind_registry.find(name) is not None:
            continue
        path = ("experiment", "profiler") if kind == "profilers" else ("experiment", kind, name)
        where = composed.source_of(path) or "config"
        known = ", ".join(kind_registry.names()) or "none"
        from enhtrain.errors import did_you_mean

        hint = did_you_mean(name, kind_registry.names())
        raise ConfigError(
            located(where, f"{'.'.join(path)}: unknown {kind[:-1]} '{name}'{hint}. Known {kind}: {known}")
            + plugins.failure_hint(name, kind)
        )


_TRAINER_COMPONENTS = (("callbacks", "callbacks"), ("logger", "loggers"), ("profiler", "profilers"))


def resolve_registered_classes(config: dict[str, Any]) -> None:
    """Expand registry names and class names in ``trainer.callbacks/logger/profiler`` to full import paths.

    ``trainer.callbacks: [{class_path: grad_norm}]`` or ``[GradNormMonitor]`` then works like the full path.
    Only classes are expanded (factories cannot be a ``class_path``); anything unknown is left for
    jsonargparse to report.
    """
    trainer = config.get("trainer")
    if not isinstance(trainer, dict):
        return
    from enhtrain import plugins

    registry = plugins.get_registry()

    def expand(name: str, kind: str) -> str:
        if "." in name:
            return name
        entry = registry.kinds[kind].find(name)
        return entry.import_path if entry is not None and entry.class_name[:1].isupper() else name

    for key, kind in _TRAINER_COMPONENTS:
        if key not in trainer:
            continue  # an absent setting stays absent: the script's trainer_defaults then apply
        value = trainer.get(key)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("class_path"), str):
                item["class_path"] = expand(item["class_path"], kind)
            elif isinstance(item, str):
                items[index] = expand(item, kind)
        if not isinstance(value, list) and items:
            trainer[key] = items[0]


# Options that enhtrain fills in from the run directory: a user who sets one would write outside the run.
_RESERVED_OPTIONS = {
    "loggers": ("log_dir", "save_dir", "dir", "root_dir", "offline_directory"),
    "callbacks": ("dirpath", "run_dir", "log_dir", "save_dir"),
    "profiler": ("dirpath", "filename"),
}
_RESERVED_WHY = {
    "loggers": "the logger's folder under the run's logs/",
    "callbacks": "the run directory",
    "profiler": "the run's profiler/ folder",
}


def check_reserved_options(experiment: ExperimentConfig, composed: ComposedConfig) -> None:
    """Refuse the options through which enhtrain points a component into the run directory, when a user sets them.

    Raises:
        ConfigError: Naming the key, where it was set, and what enhtrain sets it to.
    """
    found: list[tuple[str, tuple[str, ...]]] = []
    for kind in ("loggers", "callbacks"):
        for name, options in getattr(experiment, f"active_{kind}")().items():
            found += [(kind, ("experiment", kind, name, k)) for k in options if k in _RESERVED_OPTIONS[kind]]
    spec = experiment.profiler_spec()
    if spec is not None:
        found += [("profiler", ("experiment", "profiler", k)) for k in spec[1] if k in _RESERVED_OPTIONS["profiler"]]
    if found:
        kind, path = found[0]
        where = composed.source_of(path) or "config"
        raise ConfigError(
            f"{where}: {'.'.join(path)}: set by enhtrain to {_RESERVED_WHY[kind]}, since a run writes only inside "
            f"its run directory; remove it (experiment.root_dir, experiment.name and experiment.version choose "
            "where the run directory is)"
        )


def check_components(experiment: ExperimentConfig, composed: ComposedConfig) -> None:
    """Check every logger, callback and profiler the experiment names: the name, then its options.

    Every command that composes a config runs these checks (``fit``, ``validate``, ``test``, ``predict``,
    ``--print_config`` and ``config explain``), so a config they accept is one that ``fit`` can build.

    Raises:
        ConfigError: Naming where the key was set, the key, and what is accepted.
        PluginError: If two plugins registered a name, or a plugin's component cannot be imported.
    """
    from enhtrain.config.components import check_experiment_options

    check_component_names(experiment, composed)
    check_reserved_options(experiment, composed)
    check_experiment_options(experiment, composed.source_of)


def trainer_root_dir(composed: ComposedConfig) -> tuple[Any, str]:
    """``trainer.default_root_dir`` as the layers set it (a ``--trainer.default_root_dir`` flag is one), and where."""
    trainer = composed.data.get("trainer")
    value = trainer.get("default_root_dir") if isinstance(trainer, dict) else None
    return value, composed.source_of(("trainer", "default_root_dir")) or "config"


def reconcile_root_dir(
    experiment: ExperimentConfig, composed: ComposedConfig, default_root_dir: Any, where: str
) -> ExperimentConfig:
    """Honour Lightning's ``trainer.default_root_dir``: it is the runs root unless ``experiment.root_dir`` is set.

    Runs go to ``<experiment.root_dir>/<name>/<version>/`` and Lightning's ``default_root_dir`` is set to that
    run directory. A ``trainer.default_root_dir`` given by the user takes the place of ``experiment.root_dir``
    when no layer set the latter, and the composed config then records it there (with its source).

    Args:
        experiment: The validated experiment section.
        composed: The composed config; its ``experiment.root_dir`` is updated.
        default_root_dir: The value of ``trainer.default_root_dir`` (``None`` when not set).
        where: Where ``trainer.default_root_dir`` was set, for messages.

    Returns:
        The experiment section with its ``root_dir`` settled.

    Raises:
        ConfigError: If both are set, to different folders.
    """
    if default_root_dir is None or default_root_dir == "":
        return experiment
    root = str(default_root_dir)
    source = composed.sources.get(("experiment", "root_dir"), "default")
    if source == "default":
        section = composed.data.get("experiment")
        if isinstance(section, dict):
            section["root_dir"] = root
        composed.sources[("experiment", "root_dir")] = f"{where} (trainer.default_root_dir)"
        return experiment.model_copy(update={"root_dir": root})
    if os.path.normpath(root) == os.path.normpath(experiment.root_dir):
        return experiment
    raise ConfigError(
        f"{where}: trainer.default_root_dir '{root}' differs from experiment.root_dir '{experiment.root_dir}' "
        f"({source}); runs go to <experiment.root_dir>/<experiment.name>/<version>: set experiment.root_dir only"
    )


def trust_switches(split: SplitArguments, environ: Mapping[str, str]) -> TrustSwitches:
    """The switches of a command line that loosen or tighten a check, from its own flags and shell variables only.

    Raises:
        ConfigError: For a switch variable that is not on or off, or a loosening switch refused in safe mode.
    """
    from enhtrain.trust import read_switches

    return read_switches(safe_flag=split.safe, trust_flag=split.trust_checkpoint, allow_flags=split.allowed_modules,
                         environ=environ)


def import_policy(split: SplitArguments, environ: Mapping[str, str]) -> ImportPolicy:
    """The import gate's rules for a command line: safe mode and allowed modules from flags and variables."""
    from enhtrain import plugins
    from enhtrain.security import ImportPolicy

    switches = trust_switches(split, environ)
    safe = switches.safe
    registered = [e.import_path for kind in plugins.get_registry().kinds.values() for e in kind] if safe else []
    return ImportPolicy(safe, switches.allowed_modules, frozenset(r.replace(":", ".") for r in registered))


def _default_policy() -> ImportPolicy:
    from enhtrain.security import ImportPolicy

    return ImportPolicy()


def _no_switches() -> TrustSwitches:
    from enhtrain.trust import TrustSwitches

    return TrustSwitches()


@dataclass
class PreparedArgs:
    """What :func:`prepare_arguments` hands to ``LightningCLI``.

    Attributes:
        argv: The arguments jsonargparse parses: the composed config inline, then the remaining flags.
        composed: The composed config, with provenance.
        experiment: The validated experiment section.
        split: The original command line taken apart.
        original: The original command line.
        import_policy: The import gate's rules for this command line.
        trust: The switches the person gave on the command line or in their shell (never from a config).
    """

    argv: list[str]
    composed: ComposedConfig
    experiment: ExperimentConfig
    split: SplitArguments
    original: list[str] = field(default_factory=list)
    import_policy: ImportPolicy = field(default_factory=lambda: _default_policy())
    trust: TrustSwitches = field(default_factory=lambda: _no_switches())


def prepare_arguments(
    argv: Sequence[str],
    *,
    force: bool,
    subcommands: Sequence[str] | None = SUBCOMMANDS,
    environ: Mapping[str, str] | None = None,
) -> PreparedArgs | None:
    """Compose the layers of a command line, or return ``None`` when no enhtrain feature is asked for.

    Args:
        argv: The arguments, without the program name.
        force: Compose even without an ``experiment`` section (``python -m enhtrain``).
        subcommands: Known subcommands, or ``None`` for a CLI without them.
        environ: Environment variables (defaults to ``os.environ``).

    Raises:
        ConfigError: For any invalid layer or experiment setting.
    """
    environ = os.environ if environ is None else environ
    split = split_arguments(argv, subcommands)
    if subcommands and split.subcommand is None:
        return None
    asks_for_experiment = (
        split.env is not None
        or bool(split.experiment_flags)
        or split.safe
        or split.trust_checkpoint
        or bool(environ.get("ENHTRAIN_ENV"))
    )
    if not split.config_files and not asks_for_experiment and any(a in ("-h", "--help") for a in split.rest):
        # `SUBCOMMAND --help` alone: nothing to compose, the help lists the options, not a config's values.
        return None
    inline = [(i, v) for i, v in enumerate(split.config_files) if _looks_inline(v)]
    if not (force or asks_for_experiment):
        # Library use: switch on only if a config file has an `experiment` section.
        try:
            composed = compose(split.config_files, environ={}, inline_configs=inline)
        except ConfigError:
            return None
        if "experiment" not in composed.data:
            return None
    switches = trust_switches(split, environ)
    composed = compose_arguments(split, environ=environ)
    experiment = validate_experiment(composed)
    composed.data["experiment"] = experiment.model_dump(mode="json")
    experiment = reconcile_root_dir(experiment, composed, *trainer_root_dir(composed))
    check_components(experiment, composed)
    resolve_registered_classes(composed.data)
    policy = import_policy(split, environ)
    check_config_imports(composed.data, composed.source_of, split.rest, policy=policy)
    data = composed.data
    if any(arg.startswith("--print_config") for arg in split.rest):
        # Printing only: nothing runs, so the printed config can mask its secrets.
        from enhtrain.secrets import mask_secrets, secret_values

        data = mask_secrets(data, secret_values(environ))
    text = dump_yaml(data)
    head = [*split.head, split.subcommand] if split.subcommand else list(split.head)
    return PreparedArgs([*head, "--config", text, *split.rest], composed, experiment, split, list(argv), policy,
                        switches)


def _component_names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _trainer_notes(
    experiment: ExperimentConfig, values: Mapping[str, str], given: GivenParts | None = None
) -> dict[str, str]:
    """What enhtrain builds for each of Lightning's trainer settings it shares with ``experiment``.

    The notes follow :data:`enhtrain.config.reconcile.TRAINER_PARTS_RULE`, as the Trainer is built.
    """
    from enhtrain.config.reconcile import GivenParts, plan

    switches = {"false": False, "true": True, "null": None}
    given = given or GivenParts()
    logger = values.get("logger", "")
    given = GivenParts(
        progress_bar=given.progress_bar,
        checkpoint=given.checkpoint,
        logger=switches.get(logger, logger or "given"),  # a block of loggers has no value on its line
        enable_progress_bar=switches.get(values.get("enable_progress_bar", "")),
        enable_checkpointing=switches.get(values.get("enable_checkpointing", "")),
    )
    parts = plan(given, checkpoint_configured=experiment.checkpoint is not None)
    run = f"{experiment.root_dir}/{experiment.name}/{experiment.version or '<version>'}"
    loggers = _component_names(list(experiment.active_loggers()))
    notes: dict[str, str] = {}
    if not parts.loggers:
        notes["logger"] = "Lightning's switch: no loggers at all (experiment.loggers is not used)"
    elif given.logger in (None, True):
        notes["logger"] = f"enhtrain adds experiment.loggers: {loggers}, each writing into {run}/logs/<name>/"
    else:
        notes["logger"] = f"these first, then experiment.loggers: {loggers}"
    if given.enable_checkpointing is False:
        notes["enable_checkpointing"] = "Lightning's switch: no checkpoints (experiment.checkpoint is not used)"
    elif parts.user_checkpoint_into_run:
        notes["enable_checkpointing"] = (
            f"a ModelCheckpoint is given, so experiment.checkpoint is not used; without a dirpath of its own it saves "
            f"into {run}/checkpoints/, listed in manifest.json"
        )
    elif parts.checkpoints_off:
        notes["enable_checkpointing"] = "experiment.checkpoint: null, so no checkpoints"
    else:
        notes["enable_checkpointing"] = (
            f"enhtrain saves experiment.checkpoint's checkpoints into {run}/checkpoints/ with manifest.json"
        )
    added = list(experiment.active_callbacks())
    if parts.checkpoint:
        added.append("RunCheckpoint (experiment.checkpoint; a ModelCheckpoint given to the Trainer replaces it)")
    if parts.progress_bar:
        added.append("a progress display")
    kept = [what for what, on in (("progress bar", given.progress_bar), ("ModelCheckpoint", given.checkpoint)) if on]
    notes["callbacks"] = f"enhtrain adds experiment.callbacks: {_component_names(added)}" + (
        f"; the given {' and '.join(kept)} {'win' if len(kept) > 1 else 'wins'}" if kept else ""
    )
    notes["default_root_dir"] = (
        f"enhtrain sets it to the run directory, {run}; a value given here is the runs root "
        "(experiment.root_dir) unless experiment.root_dir is set"
    )
    spec = experiment.profiler_spec()
    if spec is not None and values.get("profiler", "") == "null":
        notes["profiler"] = f"enhtrain adds experiment.profiler: {spec[0]}, reporting into {run}/profiler/"
    return notes


def annotate_printed_config(text: str, experiment: ExperimentConfig, given: GivenParts | None = None) -> str:
    """Add a comment to the ``trainer`` settings that enhtrain fills in, in a config printed by ``--print_config``.

    The values stay as they are, so the printed config loads back to the same run; the comments say what
    enhtrain builds for them: the loggers, callbacks, checkpoints, profiler and run directory of the
    ``experiment`` section, by the rule the Trainer is built with
    (:data:`enhtrain.config.reconcile.TRAINER_PARTS_RULE`).

    Args:
        text: The YAML that jsonargparse printed.
        experiment: The validated experiment section.
        given: The progress bar and ``ModelCheckpoint`` that reach the Trainer without enhtrain, from the config
            and from the script (its ``trainer_defaults`` and callback arguments).

    Returns:
        The same YAML, with comments.
    """
    lines = text.splitlines(keepends=True)
    block: list[tuple[int, str, str]] = []
    inside_trainer = False
    for index, line in enumerate(lines):
        if line.rstrip("\n") == "trainer:":
            inside_trainer = True
            continue
        if inside_trainer and line.strip() and not line.startswith(" "):
            break
        if inside_trainer and line.startswith("  ") and not line.startswith("   "):
            key, sep, value = line.strip().partition(":")
            if sep:
                block.append((index, key, value.split(" #")[0].strip()))
    values = {key: value for _, key, value in block}
    notes = _trainer_notes(experiment, values, given)
    for index, key, _ in block:
        if key in notes:
            line = lines[index]
            ending = "\n" if line.endswith("\n") else ""
            lines[index] = f"{line.rstrip()}  # {notes[key]}{ending}"
    return "".join(lines)
