"""Configuration: the ``experiment`` schema, layer composition, overlays, provenance and templates."""

from enhtrain.config.schema import CheckpointConfig, ExperimentConfig, ProfilerConfig

__all__ = ["CheckpointConfig", "ExperimentConfig", "ProfilerConfig"]
