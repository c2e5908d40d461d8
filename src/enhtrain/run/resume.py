"""Finding where to resume a run, and refusing a resume whose config changed."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enhtrain.checkpoints.manifest import Manifest, ManifestError
from enhtrain.errors import CheckpointError, ConfigError, quote
from enhtrain.run.directory import list_versions

if TYPE_CHECKING:
    from enhtrain.config.schema import ExperimentConfig

__all__ = [
    "IGNORED_ON_RESUME",
    "ResumePoint",
    "check_config_change",
    "find_resume_point",
    "finished_run",
    "newest_verified",
    "read_saved_config",
]

IGNORED_ON_RESUME = ("resume", "allow_config_change", "version", "trust_checkpoint")
"""Keys of ``experiment`` that may differ between a run and its resumption."""


@dataclass(frozen=True)
class ResumePoint:
    """A run directory and the checkpoint to continue it from."""

    run_dir: Path
    checkpoint: str


def newest_verified(checkpoints_dir: Path) -> tuple[str | None, list[str]]:
    """Return the newest checkpoint that verifies against the manifest, and a warning for each one skipped.

    Raises:
        ManifestError: If the manifest exists but is malformed.
    """
    manifest = Manifest(checkpoints_dir, strict=True)
    skipped: list[str] = []
    entries = sorted(
        manifest.entries, key=lambda e: (e.get("step") or 0, e["file"] == manifest.data.get("last")), reverse=True
    )
    for entry in entries:
        problem = manifest.verify(entry["file"])
        if problem is None:
            return str(checkpoints_dir / entry["file"]), skipped
        skipped.append(f"skipping checkpoint {checkpoints_dir / entry['file']}: {problem}")
    return None, skipped


def _ordered_runs(name_dir: Path) -> list[Path]:
    runs = [name_dir / v for v in list_versions(name_dir)]
    return sorted(
        runs,
        key=lambda p: (p / "metadata.json").stat().st_mtime if (p / "metadata.json").exists() else p.stat().st_mtime,
        reverse=True,
    )


def find_resume_point(experiment: ExperimentConfig, *, trust: bool = False) -> ResumePoint | None:
    """Resolve ``experiment.resume``.

    ``auto`` takes the newest run of this name with a checkpoint that verifies against the manifest, skipping
    truncated or corrupt files with a warning (``None`` if there is none, so a first run simply starts); a
    ``.ckpt`` path in a run's ``checkpoints/`` resumes that run from that file, which must match the manifest
    or, when the manifest does not list it, load safely; anything else names a version of this experiment.
    A malformed ``manifest.json`` in a run it looks at is never passed over: it is refused.

    Args:
        experiment: The experiment section.
        trust: Whether a checkpoint may need pickled Python objects.

    Raises:
        CheckpointError: If a named checkpoint or version has nothing valid to resume from, or the manifest of
            a run it looks at is malformed (the message names the file, the field and the fix).
    """
    resume = experiment.resume
    if resume is None:
        return None
    name_dir = Path(experiment.root_dir) / experiment.name
    if resume == "auto":
        for run_dir in _ordered_runs(name_dir):
            found = _newest_of(run_dir, resume)
            if found is not None:
                return ResumePoint(run_dir, found)
        return None
    path = Path(resume)
    if path.suffix == ".ckpt" or path.is_file():
        return ResumePoint(_run_of_checkpoint(path), _checked(path, trust))
    run_dir = name_dir / resume
    if not run_dir.is_dir():
        known = ", ".join(list_versions(name_dir)) or "none"
        raise CheckpointError(
            f"experiment.resume: run version '{resume}' not found under '{name_dir}' (versions: {known})"
        )
    found = _newest_of(run_dir, resume)
    if found is None:
        raise CheckpointError(f"experiment.resume: run '{run_dir}' has no checkpoint that verifies")
    return ResumePoint(run_dir, found)


def _newest_of(run_dir: Path, resume: str) -> str | None:
    """The newest checkpoint of a run that verifies, warning about each one skipped; a bad manifest is refused."""
    try:
        found, skipped = newest_verified(run_dir / "checkpoints")
    except ManifestError as err:
        raise CheckpointError(
            f"experiment.resume {resume}: {err.detail}; repair it and resume again, or remove it and resume "
            "from one of its checkpoints with --experiment.resume PATH"
        ) from None
    for message in skipped:
        warnings.warn(message, stacklevel=3)
    return found


def _run_of_checkpoint(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"experiment.resume: checkpoint '{path}' not found")
    run_dir = path.parent.parent
    if path.parent.name != "checkpoints" or not (
        (run_dir / "metadata.json").is_file() or (run_dir / "config.yaml").is_file()
    ):
        raise CheckpointError(
            f"experiment.resume: '{path}' is not in the checkpoints/ folder of a run; to start a new run from it, "
            f"use --ckpt_path {path}"
        )
    return run_dir


def _checked(path: Path, trust: bool) -> str:
    """Verify a named checkpoint against its manifest, or, if it is not listed, check that it loads safely."""
    try:
        manifest = Manifest(path.parent, strict=True)
    except ManifestError as err:
        raise CheckpointError(
            f"experiment.resume: {err.detail}; repair it, or remove it (the checkpoint is then only checked to "
            "load safely) and resume again"
        ) from None
    if manifest.entry(path.name) is not None:
        problem = manifest.verify(path.name)
        if problem is not None:
            raise CheckpointError(f"experiment.resume: checkpoint '{path}' is not usable: {problem}")
        return str(path)
    from enhtrain.checkpoints.safe_load import require_lightning, safe_load

    try:
        require_lightning(safe_load(path, trust=trust, verify=False, mmap=True), path)
    except CheckpointError as err:
        raise CheckpointError(f"experiment.resume: {err}") from err
    return str(path)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    config = dict(config)
    experiment = dict(config.get("experiment") or {})
    for key in IGNORED_ON_RESUME:
        experiment.pop(key, None)
    config["experiment"] = experiment
    config.pop("ckpt_path", None)
    return config


def read_saved_config(path: Path) -> dict[str, Any]:
    """Read a run's ``config.yaml`` with the limits of every config.

    Raises:
        ConfigError: If it cannot be read, is not YAML within the limits, or is not a mapping.
    """
    from enhtrain.config.loading import load_yaml_value, read_config_text

    saved = load_yaml_value(read_config_text(path), str(path))
    if saved is None:
        return {}
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: the run's saved config is a {type(saved).__name__}, not a mapping")
    return saved


def check_config_change(saved_path: Path, config: dict[str, Any], *, allow: bool) -> None:
    """Refuse to resume when the config differs from the saved one, unless ``allow``.

    Raises:
        ConfigError: Showing the difference and how to allow it.
    """
    if not saved_path.is_file():
        return
    try:
        saved = read_saved_config(saved_path)
    except ConfigError as err:
        if allow:
            warnings.warn(f"resuming without comparing configs: {err}", stacklevel=2)
            return
        raise ConfigError(f"{err}; cannot compare it with the config now: repair it, or pass "
                          "--experiment.allow_config_change true") from err
    changes = _changed_keys(_comparable(saved), _comparable(config))
    if not changes:
        return
    shown = "; ".join(changes[:_SHOWN_CHANGES])
    if len(changes) > _SHOWN_CHANGES:
        shown += f"; and {len(changes) - _SHOWN_CHANGES} more"
    if allow:
        warnings.warn(f"resuming with a changed config: {shown}", stacklevel=2)
        return
    raise ConfigError(
        f"the config differs from the resumed run's {saved_path}: {shown}; resume with the same config, or pass "
        "--experiment.allow_config_change true"
    )


_SHOWN_CHANGES = 8
_ABSENT = object()


def _changed_keys(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs (mappings compared key by key, lists as a whole)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in sorted({*saved, *now}, key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            out += _changed_keys(saved.get(key, _ABSENT), now.get(key, _ABSENT), path)
        return out
    if saved == now:
        return []

    def show(value: Any) -> str:
        return "(not set)" if value is _ABSENT else quote(value, 40)

    return [f"{prefix or 'config'}: {show(saved)} -> {show(now)}"]


def _limit(value: Any) -> float:
    """A training limit (``max_epochs``, ``max_steps``) as a number; unset or ``-1`` is no limit."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return math.inf
    return float(value)


def finished_run(run_dir: Path, checkpoint_step: int, config: dict[str, Any]) -> str | None:
    """Say why resuming ``run_dir`` would train nothing, or return ``None`` when there is more to train.

    A run is finished when its ``metadata.json`` says ``completed``, the checkpoint to resume from holds the
    step at which it completed (``last.ckpt`` is saved at the end of training), and ``config`` raises neither
    ``trainer.max_epochs`` nor ``trainer.max_steps`` above the run's saved config.

    Args:
        run_dir: The run to resume.
        checkpoint_step: The global step of the checkpoint to resume from.
        config: The config of the command that resumes it.

    Returns:
        A one-line message for the user, or ``None``.
    """
    from enhtrain.run.metadata import MetadataError, read_metadata

    try:
        meta = read_metadata(run_dir / "metadata.json")
        saved = read_saved_config(run_dir / "config.yaml")
    except (MetadataError, ConfigError):
        return None
    if meta.get("status") != "completed" or meta.get("global_step") != checkpoint_step:
        return None
    old = saved.get("trainer") if isinstance(saved.get("trainer"), dict) else {}
    new = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    for key in ("max_epochs", "max_steps"):
        if _limit(new.get(key)) > _limit(old.get(key)):
            return None
    return (
        f"run '{run_dir}' is finished (completed after {meta.get('epoch')} epoch(s), at step {checkpoint_step}); "
        "nothing to resume. To train it further, raise --trainer.max_epochs or --trainer.max_steps with "
        "--experiment.allow_config_change true; to start a new run, leave out experiment.resume"
    )
