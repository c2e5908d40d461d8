"""``enhtrain config validate``: every check of ``fit`` on a config, without training or writing anything.

The config is composed as ``fit`` composes it, the ``experiment`` section and the component names and options
are checked, jsonargparse checks the ``trainer``, ``model``, ``data`` and other sections against their classes'
signatures, and the plugins' config checks run; then the model, the data module and the Trainer are built (with
their run directory in a throwaway folder), so that their own checks run too. Nothing is trained and no run
directory is made, so it suits pre-commit hooks and CI. The exit status is 0 for a good config and 2, with the
message ``fit`` would print, for a bad one.
"""

from __future__ import annotations

import os
import sys

from enhtrain.errors import ConfigError

__all__ = ["run"]

_USAGE = "usage: enhtrain config validate [--config FILE ...] [--env NAME] [flags]"
_HELP = f"""{_USAGE}

Check a config as `enhtrain fit` would, without training and without making a run directory: the layers are
composed, the experiment section, the trainer/model/data arguments and the plugins' config checks are validated,
and the model, the data module and the Trainer are built so that their own checks run. Exit status 0 for a good
config, 2 with fit's message for a bad one. Checkpoints (ckpt_path, experiment.resume) are read only when a run starts.

  -c, --config FILE   a YAML config or an inline YAML mapping; repeatable
  --env NAME|FILE     environment overlay
  flags               any flag of `enhtrain fit` (--trainer.max_epochs 3, --experiment.name x, ...)
"""


def run(args: list[str]) -> int:
    """Run ``enhtrain config validate ...``; returns 0 when the config is good.

    Raises:
        ConfigError: For a bad config, with the message ``fit`` gives (exit status 2).
    """
    if {"-h", "--help"} & set(args):
        sys.stdout.write(_HELP)
        return 0
    if any(arg.startswith("--print_config") for arg in args):
        raise ConfigError("config validate: --print_config is not an option here; use `enhtrain fit "
                          "--config FILE --print_config` to print the composed config")
    from enhtrain.commands._shared import check_launcher_variables, warn_about_plugins
    from enhtrain.config.arguments import prepare_arguments

    check_launcher_variables(os.environ)
    warn_about_plugins()
    # Checked as for `fit`: the subcommand only chooses which Trainer method's arguments are accepted.
    prepared = prepare_arguments(["fit", *args], force=True)
    assert prepared is not None  # a subcommand is given, so composing is never skipped

    from jsonargparse import ArgumentError

    from enhtrain.cli import check_arguments
    from enhtrain.config.errors import describe_parser_error

    try:
        check_arguments(prepared)
    except ArgumentError as err:
        raise ConfigError(describe_parser_error(str(err), prepared.composed, prepared.split.rest)) from err
    files = [*prepared.composed.files, *prepared.composed.overlay_files] or ["no config file"]
    env = f" (env {prepared.composed.env})" if prepared.composed.env else ""
    sys.stdout.write(f"config OK: {', '.join(files)}{env}\n")
    return 0
