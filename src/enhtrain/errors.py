"""Exceptions that end a command with a short message and exit status 2."""

from __future__ import annotations


class EnhtrainError(Exception):
    """Base class of every error caused by the user's input rather than a bug.

    The command line prints ``str(error)`` on one line of stderr and exits with status 2, with no traceback
    unless ``ENHTRAIN_DEBUG=1``.
    """

    exit_code = 2


class ConfigError(EnhtrainError):
    """A config is malformed or rejected. Plugins raise it from ``enhtrain_validate_config``."""


class PluginError(EnhtrainError):
    """A plugin failed to load, or a config uses a component of a plugin that failed."""


class CheckpointError(EnhtrainError):
    """A checkpoint is missing, truncated, corrupt or unsafe to load."""


class RunDirError(EnhtrainError):
    """A run directory cannot be created or written."""
