"""Registers the config templates that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from enhtrain.plugins.hookspecs import hookimpl
from enhtrain.plugins.registry import KindRegistry

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"


@hookimpl
def enhtrain_register_templates(registry: KindRegistry) -> None:
    """Register every ``templates/*.yaml`` file under its stem."""
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        registry.register(path, name=path.stem)
