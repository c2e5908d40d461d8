"""``args=`` given as a dictionary, as from a notebook."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI; ``args`` is a dictionary ``{"fit": {...}}`` (or a list, passed as it is)."""
    return cli_class(TinyModel, TinyData, args=args)
