"""The installed version of enhtrain, in a module that imports nothing, so that any layer may read it."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
"""The installed version of enhtrain."""
