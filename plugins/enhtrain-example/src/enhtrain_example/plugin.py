"""The hook implementations of the ``example`` plugin (entry point ``enhtrain_example.plugin``).

Components are registered by import path, so loading this module (``enhtrain plugins``) stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enhtrain import ConfigError, hookimpl
from enhtrain.plugins.registry import KindRegistry

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
ENV_DIR = PACKAGE_DIR / "envs"
FORBIDDEN_TAG = "forbidden"


@hookimpl
def enhtrain_register_callbacks(registry: KindRegistry) -> None:
    """Register ``epoch_timer``."""
    registry.register("enhtrain_example.callbacks:EpochTimer", name="epoch_timer")


@hookimpl
def enhtrain_register_loggers(registry: KindRegistry) -> None:
    """Register ``jsonl``."""
    registry.register("enhtrain_example.loggers:JsonlLogger", name="jsonl")


@hookimpl
def enhtrain_register_profilers(registry: KindRegistry) -> None:
    """Register ``wall_clock``."""
    registry.register("enhtrain_example.profilers:WallClockProfiler", name="wall_clock")


@hookimpl
def enhtrain_register_templates(registry: KindRegistry) -> None:
    """Register every template shipped in ``templates/`` under its file stem (``example``)."""
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        registry.register(path, name=path.stem)


@hookimpl
def enhtrain_env_overlays(env: str) -> list[str] | None:
    """Contribute ``envs/<env>.yaml`` when this plugin ships one (it ships ``example``)."""
    path = ENV_DIR / f"{env}.yaml"
    return [str(path)] if path.is_file() else None


@hookimpl
def enhtrain_validate_config(config: dict[str, Any]) -> None:
    """Reject runs tagged ``forbidden``.

    Raises:
        ConfigError: If ``experiment.tags`` contains ``forbidden``; enhtrain adds where the tags were set and
            this plugin's name.
    """
    experiment = config.get("experiment") or {}
    tags = experiment.get("tags") or []
    if FORBIDDEN_TAG in tags:
        raise ConfigError(
            f"the tag '{FORBIDDEN_TAG}' is reserved by the enhtrain-example plugin; remove it from experiment.tags "
            f"(now {list(tags)})",
            key="experiment.tags",
        )
