"""enhtrain: a LightningCLI with plugins, layered configs, one directory per run and resumable checkpoints.

``import enhtrain`` stays cheap: :class:`EnhancedCLI` (which needs torch and Lightning) is imported on first
access through the module ``__getattr__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enhtrain._version import __version__
from enhtrain.errors import ConfigError, EnhtrainError, PluginError
from enhtrain.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from enhtrain.cli import EnhancedCLI

__all__ = ["ConfigError", "EnhancedCLI", "EnhtrainError", "PluginError", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name == "EnhancedCLI":
        from enhtrain.cli import EnhancedCLI

        return EnhancedCLI
    raise AttributeError(f"module 'enhtrain' has no attribute {name!r}")
