"""``enhtrain config schema [-o FILE]``: the JSON Schema of a config file, for editors and CI.

Editors that speak the YAML language server use it through a first line such as
``# yaml-language-server: $schema=enhtrain.schema.json``. The registered logger, callback and profiler names
are those of the plugins installed when the schema is written.
"""

from __future__ import annotations

import json
import sys

from enhtrain.errors import ConfigError

__all__ = ["run"]

_USAGE = "usage: enhtrain config schema [-o FILE]"


def run(args: list[str]) -> int:
    """Print the schema, or write it to ``-o FILE`` atomically; returns 0.

    Raises:
        ConfigError: On an unknown argument, or a file that cannot be written.
    """
    if {"-h", "--help"} & set(args):
        sys.stdout.write(
            f"{_USAGE}\n\nPrint the JSON Schema (draft 2020-12) of an enhtrain config file: the experiment section "
            "with the\nregistered logger, callback and profiler names, Lightning's trainer arguments, and the "
            "model, data,\noptimizer and lr_scheduler class sections.\n\n"
            "  -o, --output FILE  write it to FILE instead of stdout\n"
        )
        return 0
    from enhtrain.commands._shared import ArgParser

    parser = ArgParser(prog="enhtrain config schema", add_help=False)
    parser.add_argument("-o", "--output", default=None)
    options = parser.parse_args(args)
    if options.output is not None and (not isinstance(options.output, str) or not options.output):
        # argparse turns `--output=--` into an empty list.
        raise ConfigError(f"config schema: -o/--output needs a file name; {_USAGE}")

    from enhtrain.config.json_schema import config_schema

    text = json.dumps(config_schema(), indent=2) + "\n"
    if options.output is None:
        sys.stdout.write(text)
        return 0
    from enhtrain._io import atomic_write_text

    try:
        atomic_write_text(options.output, text)
    except OSError as err:
        raise ConfigError(
            f"config schema: cannot write '{options.output}' ({err.strerror or err}); check that its folder exists "
            "and is writable"
        ) from err
    sys.stdout.write(f"wrote {options.output}\n")
    return 0
