"""Variant 3: a bare ``LightningCLI`` script, what a Lightning user runs today.

``python -m benchmarks.lightning_cli fit --config CONFIG.yaml`` (or ``fit --help``): every class comes from
the config's ``class_path`` entries and every setting is ``LightningCLI``'s default.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI


def main() -> None:
    """Run ``LightningCLI`` on the command line's arguments."""
    LightningCLI()


if __name__ == "__main__":
    main()
