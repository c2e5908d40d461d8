"""Configuration: the ``experiment`` schema, layer composition, overlays, provenance and templates.

The schema classes are imported on first access: pydantic is only loaded when a config is validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enhtrain.config.schema import CheckpointConfig, ExperimentConfig, ProfilerConfig

__all__ = ["CheckpointConfig", "ExperimentConfig", "ProfilerConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from enhtrain.config import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'enhtrain.config' has no attribute {name!r}")
