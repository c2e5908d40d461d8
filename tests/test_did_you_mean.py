"""Every unknown key is reported with the closest accepted key, whatever section it is in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enhtrain.config.compose import ComposedConfig
from enhtrain.config.errors import describe_parser_error
from enhtrain.testing import CliResult, write_tiny_config

pytestmark = pytest.mark.timeout(120)

# (config text, flags, fragment of the message)
CASES = {
    "trainer": ("trainer:\n  max_epochz: 3\n", [], "bad.yaml:2: trainer.max_epochz: unknown key (did you mean "
                "'max_epochs'?); check the spelling"),
    "experiment": ("experiment:\n  nmae: x\n", [], "bad.yaml:2: experiment.nmae: unknown key 'nmae' (did you mean "
                   "'name'?); allowed keys: name,"),
    "checkpoint": ("experiment:\n  checkpoint: {save_lats: true}\n", [],
                   "experiment.checkpoint.save_lats: unknown key 'save_lats' (did you mean 'save_last'?)"),
    "model": ("model:\n  init_args:\n    hiden_dims: [8]\n", [],
              "bad.yaml:3: model.init_args.hiden_dims: unknown key (did you mean 'hidden_dims'?)"),
    "data": ("data:\n  init_args:\n    batchsize: 8\n", [],
             "bad.yaml:3: data.init_args.batchsize: unknown key (did you mean 'batch_size'?)"),
    "section": ("modle:\n  class_path: enhtrain.models.MLPClassifier\n", [], "(did you mean 'model'?)"),
    "callback": ("trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n"
                 "      init_args: {monitr: val/loss}\n", [],
                 "init_args.monitr: unknown key (did you mean 'monitor'?)"),
    "flag": ("{}\n", ["--trainer.gradient_clip_vall", "1"],
             "flag --trainer.gradient_clip_vall: trainer.gradient_clip_vall: unknown key (did you mean "
             "'gradient_clip_val'?)"),
    # Unknown component names, like keys.
    "logger": ("experiment:\n  loggers: {tensorbord: {}}\n", [],
               "bad.yaml:2: experiment.loggers.tensorbord: unknown logger 'tensorbord' (did you mean 'tensorboard'?)"
               ". Known loggers: "),
    "profiler": ("{}\n", ["--experiment.profiler", "simpel"],
                 "flag --experiment.profiler: unknown profiler 'simpel' (did you mean 'simple'?). Known profilers: "),
    "env": ("{}\n", ["--env", "prd"], "unknown environment 'prd' (did you mean 'prod'?). Known environments: "),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unknown_key_names_the_closest(case: str, tmp_path: Path, enhtrain_cli: Callable[..., CliResult]) -> None:
    text, flags, fragment = CASES[case]
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"checkpoint": None}})
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    result = enhtrain_cli("config", "validate", "--config", "tiny.yaml", "--config", "bad.yaml", *flags)
    assert result.exit_code == 2
    assert fragment in result.stderr, result.stderr


def test_no_suggestion_when_nothing_is_close() -> None:
    composed = ComposedConfig({}, {})
    text = "Subcommand 'fit' does not accept option 'trainer.zzzzqqq'"
    assert describe_parser_error(text, composed) == (
        "config: trainer.zzzzqqq: unknown key; check the spelling (`enhtrain fit --help` lists every option)"
    )
    nested = (
        'Parser key "model":\n  Problem with given class_path \'not.imported.Thing\':\n'
        "    Option 'hiden_dims' is not accepted\n"
    )
    # A class that was never imported is not imported to make a message.
    assert "did you mean" not in describe_parser_error(nested, composed)
