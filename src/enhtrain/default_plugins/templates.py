"""Registers the config templates that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from enhtrain import hookimpl
from enhtrain.registry import KindRegistry

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


@hookimpl
def enhtrain_register_templates(registry: KindRegistry) -> None:
    """Register every ``templates/*.yaml`` file under its stem."""
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        registry.register(path, name=path.stem)
