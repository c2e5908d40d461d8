"""``save_config_kwargs``, ``parser_kwargs`` with ``default_config_files`` and ``auto_configure_optimizers=False``.

The default config file is ``defaults.yaml`` in the working directory.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return cli_class(
        TinyModel,
        TinyData,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={name: {"default_config_files": ["defaults.yaml"]} for name in ("fit", "validate", "test")},
        auto_configure_optimizers=False,
        args=args,
    )
