"""Alias of :mod:`enhtrain.plugins.hookspecs`, where every hook and the ``hookimpl`` marker live."""

from enhtrain.plugins import hookspecs as _hookspecs
from enhtrain.plugins.hookspecs import *  # noqa: F403

__all__ = [*_hookspecs.__all__]
