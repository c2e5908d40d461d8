"""Lightning scripts as users write them (``tests/scripts/``), each run three ways.

1. with ``LightningCLI``;
2. with ``EnhancedCLI`` and no experiment: the same metrics and the same saved config as 1;
3. with ``EnhancedCLI`` and an ``experiment`` section: fit, a re-run with ``resume: auto`` that trains one more
   epoch, then ``validate`` and ``test`` from the run's checkpoint (a ``run=False`` script tests by itself),
   each leaving a complete run directory whose manifest lists every checkpoint in it.

Every script trains two steps of a BoringModel-sized model in this process; the runs of one script are made once,
for the one test that checks them (so that no two workers train the same script).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI

from enhtrain import EnhancedCLI
from enhtrain.checkpoints.manifest import Manifest
from enhtrain.checkpoints.run_checkpoint import RunCheckpoint

TRAINER = {
    "max_epochs": 1,
    "limit_train_batches": 2,
    "limit_val_batches": 1,
    "limit_test_batches": 1,
    "num_sanity_val_steps": 0,
    "accelerator": "cpu",
    "devices": 1,
    "log_every_n_steps": 1,
    "enable_model_summary": False,
}
# The progress bar is switched off except where the script brings its own.
QUIET = {"enable_progress_bar": False}
EXPERIMENT = {"loggers": ["csv"], "callbacks": ["run_summary"], "runtime_updates": False}
RESUME = {"resume": "auto", "allow_config_change": True}

# script -> (runs with subcommands, takes args as a dict, its own progress bar)
SCRIPTS = {
    "trainer_defaults": (True, False, True),
    "run_false": (False, False, False),
    "subclass_no_super": (True, False, False),
    "subclass_super": (True, False, False),
    "checkpoint_argument": (True, False, False),
    "options": (True, False, False),
    "args_dict": (True, True, False),
    "configure_model": (True, False, False),
}


@dataclass
class Outcome:
    """One run of a script."""

    cli: Any
    code: int
    output: str
    cwd: Path


@dataclass
class Runs:
    """The runs of one script, three ways."""

    lightning: Outcome
    plain: Outcome
    fit: Outcome
    resumed: Outcome
    script: str
    evaluated: dict[str, Outcome] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)


def _args(script: str, config: dict[str, Any], subcommand: str = "fit") -> Any:
    with_subcommands, as_dict, _ = SCRIPTS[script]
    if as_dict:
        return {subcommand: config}
    text = yaml.safe_dump(config, sort_keys=False)
    return [subcommand, "--config", text] if with_subcommands else ["--config", text]


def _call(script: str, args: Any, cli_class: type[LightningCLI], cwd: Path) -> Outcome:
    module = importlib.import_module(f"scripts.{script}")
    out = io.StringIO()
    cli, code = None, 0
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [f"{script}.py"])
        patch.setenv("ENHTRAIN_PLAIN_PROGRESS", "1")
        for name in ("ENHTRAIN_RUN_DIR", "ENHTRAIN_ENV", "ENHTRAIN_DEBUG"):
            patch.delenv(name, raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                cli = module.main(args, cli_class)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    return Outcome(cli, code, out.getvalue(), cwd)


def _base(script: str) -> dict[str, Any]:
    own_bar = SCRIPTS[script][2]
    config: dict[str, Any] = {"seed_everything": 7, "trainer": {**TRAINER, **({} if own_bar else QUIET)}}
    if script.startswith("subclass"):
        config["data"] = {"size": 16}  # linked to model.in_features
    return config


@pytest.fixture(params=list(SCRIPTS))
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    script: str = request.param
    folders = {way: tmp_path_factory.mktemp(f"{script}-{way}") for way in ("lightning", "plain", "experiment")}
    for folder in folders.values():
        (folder / "defaults.yaml").write_text("model:\n  lr: 0.05\n")  # read by scripts/options.py only
    base = _base(script)
    experiment = {**base, "experiment": {"name": script, **EXPERIMENT}}
    resumed = {**experiment, "trainer": {**experiment["trainer"], "max_epochs": 2},
               "experiment": {**experiment["experiment"], **RESUME}}
    outcome = Runs(
        lightning=_call(script, _args(script, base), LightningCLI, folders["lightning"]),
        plain=_call(script, _args(script, base), EnhancedCLI, folders["plain"]),
        fit=_call(script, _args(script, experiment), EnhancedCLI, folders["experiment"]),
        resumed=_call(script, _args(script, resumed), EnhancedCLI, folders["experiment"]),
        script=script,
        folders=folders,
    )
    if SCRIPTS[script][0]:
        last = str(_run_dir(outcome.resumed) / "checkpoints" / "last.ckpt")
        for subcommand in ("validate", "test"):
            config = {**experiment, "ckpt_path": last}
            outcome.evaluated[subcommand] = _call(
                script, _args(script, config, subcommand), EnhancedCLI, folders["experiment"]
            )
    yield outcome


def _run_dir(outcome: Outcome) -> Path:
    assert outcome.code == 0, outcome.output[-3000:]
    assert outcome.cli is not None and outcome.cli.session is not None
    return (outcome.cwd / outcome.cli.session.run.path).resolve()


def _metrics(cli: Any) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in cli.trainer.callback_metrics.items()}


def _saved_config(cli: Any) -> str:
    return (Path(cli.trainer.log_dir) / "config.yaml").read_text()


def _check_complete(run: Path, *, status: str = "completed", checkpoints: bool = True) -> dict[str, Any]:
    """A run directory with its config, metadata and, when it saved any, every checkpoint in its manifest."""
    assert (run / "config.yaml").is_file()
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["status"] == status, metadata
    saved = sorted(p for p in run.rglob("*.ckpt"))
    assert all(p.parent == run / "checkpoints" for p in saved), saved
    if checkpoints:
        assert saved, f"no checkpoint in {run}"
    if saved:
        manifest = Manifest(run / "checkpoints", strict=True)
        assert sorted(e["file"] for e in manifest.entries) == [p.name for p in saved]
        assert all(manifest.verify(p.name) is None for p in saved)
    return metadata


def test_script_runs_alike_and_completes_its_run(runs: Runs) -> None:
    """Drop-in parity with LightningCLI, a complete run directory, and the one rule for what the script gives."""
    light, plain = runs.lightning, runs.plain
    assert light.code == plain.code == 0, plain.output[-3000:]
    assert not plain.cli.enhanced
    # Drop-in: the same training, metrics and saved config as LightningCLI.
    assert light.cli.trainer.global_step == plain.cli.trainer.global_step == 2
    assert _metrics(light.cli) == _metrics(plain.cli) and _metrics(plain.cli)
    assert _saved_config(light.cli) == _saved_config(plain.cli)
    assert Path(light.cli.trainer.log_dir).relative_to(runs.folders["lightning"]) == Path(
        plain.cli.trainer.log_dir
    ).relative_to(runs.folders["plain"])

    # With the experiment: a complete run, resumed in place for one more epoch.
    run = _run_dir(runs.fit)
    assert runs.fit.cli.enhanced
    _check_complete(run)
    assert (run / "logs" / "csv" / "metrics.csv").is_file() or runs.fit.cli.trainer.loggers == []
    assert _run_dir(runs.resumed) == run
    metadata = _check_complete(run)
    assert metadata["global_step"] == 4 and len(metadata["resumes"]) == 1
    for subcommand, outcome in runs.evaluated.items():
        evaluated = _run_dir(outcome)
        assert evaluated != run
        metadata = _check_complete(evaluated, checkpoints=False)
        assert f"{'val' if subcommand == 'validate' else 'test'}_loss" in metadata["metrics"]


    _check_what_the_script_gives_wins(runs)


def _check_what_the_script_gives_wins(runs: Runs) -> None:
    script = runs.script
    trainer = runs.fit.cli.trainer
    run = _run_dir(runs.fit)
    bars = [c for c in trainer.callbacks if isinstance(c, ProgressBar)]
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    if script == "trainer_defaults":
        # trainer_defaults: the script's progress bar, ModelCheckpoint and logger=False win.
        assert [type(c) for c in bars] == [TQDMProgressBar]
        assert trainer.loggers == [] and not (run / "logs").exists()
    else:
        assert bars == []  # enable_progress_bar: false
    if script in ("trainer_defaults", "checkpoint_argument"):
        assert len(checkpoints) == 1 and not isinstance(checkpoints[0], RunCheckpoint)
        assert Path(checkpoints[0].dirpath) == run / "checkpoints"
        assert len(Manifest(run / "checkpoints").entries) >= 2  # the best or newest, and last.ckpt
    else:
        assert len(checkpoints) == 1 and isinstance(checkpoints[0], RunCheckpoint)
    if script.startswith("subclass"):
        # add_arguments_to_parser, with or without super(): the link and the callback's arguments apply.
        for outcome in (runs.lightning, runs.plain, runs.fit):
            assert outcome.cli.model.hparams.in_features == 16
            stopping = [c for c in outcome.cli.trainer.callbacks if isinstance(c, EarlyStopping)]
            assert [c.monitor for c in stopping] == ["val_loss"]
    if script == "options":
        # default_config_files are read with the experiment on, too.
        for outcome in (runs.lightning, runs.plain, runs.fit):
            assert outcome.cli.model.hparams.lr == 0.05
    if script == "run_false":
        # The script's own test call ran after the fit, in the same run, and says where the run is.
        assert runs.resumed.cli.test_results and "test_loss" in runs.resumed.cli.test_results[0]
        assert f"Run directory: {runs.resumed.cli.session.run.path}\n" in runs.resumed.output


def test_print_config_says_what_is_built(tmp_path: Path) -> None:
    config = {**_base("trainer_defaults"), "experiment": {"name": "printed"}}
    outcome = _call("trainer_defaults", [*_args("trainer_defaults", config), "--print_config"], EnhancedCLI, tmp_path)
    assert outcome.code == 0, outcome.output
    lines = {line.split(":")[0].strip(): line for line in outcome.output.splitlines() if "  # " in line}
    assert "no loggers at all" in lines["logger"]
    assert "the given progress bar and ModelCheckpoint win" in lines["callbacks"]
    assert "RunCheckpoint" not in lines["callbacks"] and "a progress display" not in lines["callbacks"]
    assert "a ModelCheckpoint is given" in lines["enable_checkpointing"]
    assert not (tmp_path / "runs").exists()


def test_subclass_without_super_lists_the_experiment_in_help(tmp_path: Path) -> None:
    outcome = _call("subclass_no_super", ["fit", "--experiment.name", "x", "--help"], EnhancedCLI, tmp_path)
    assert outcome.code == 0, outcome.output
    assert "--experiment" in outcome.output and "--early_stopping.monitor" in outcome.output


def test_args_as_a_dict_with_an_unknown_section_is_lightnings_to_refuse(tmp_path: Path) -> None:
    # No experiment section: the mapping goes to LightningCLI untouched, as without enhtrain.
    outcome = _call("args_dict", {"fit": {"trainer": {"max_epochs": 0}, "nope": 1}}, EnhancedCLI, tmp_path)
    assert outcome.code != 0 and "nope" in outcome.output
    assert not (tmp_path / "runs").exists()


def test_env_overlay_switches_a_run_false_script_on(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(_base("run_false")))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"experiment": {"name": "overlaid", **EXPERIMENT}}))
    outcome = _call("run_false", ["--config", "base.yaml", "--env", str(overlay)], EnhancedCLI, tmp_path)
    run = _run_dir(outcome)
    assert run.parent.name == "overlaid"
    _check_complete(run)
    assert os.environ.get("ENHTRAIN_RUN_DIR") is None


def test_the_rule_is_stated_as_the_code_applies_it(repo: Path) -> None:
    from enhtrain.cli import _enhtrain_help
    from enhtrain.config.reconcile import TRAINER_PARTS_RULE

    rule = " ".join(TRAINER_PARTS_RULE.split())
    assert rule in " ".join((repo / "docs" / "guides" / "callbacks.md").read_text(encoding="utf-8").split())
    assert rule in " ".join(_enhtrain_help().split())


@pytest.mark.parametrize(
    ("given", "configured", "expected"),
    [
        ({}, True, (True, True, True, False, False)),
        ({"progress_bar": True, "checkpoint": True, "logger": False}, True, (False, False, False, False, True)),
        ({"enable_progress_bar": False, "enable_checkpointing": False}, True, (False, False, True, False, False)),
        ({}, False, (True, False, True, True, False)),
        ({"checkpoint": True}, False, (True, False, True, False, True)),
        ({"checkpoint": True, "enable_checkpointing": False}, True, (True, False, True, False, False)),
    ],
)
def test_the_rule(given: dict[str, Any], configured: bool, expected: tuple[bool, ...]) -> None:
    from enhtrain.config.reconcile import GivenParts, plan

    parts = plan(GivenParts(**given), checkpoint_configured=configured)
    assert (parts.progress_bar, parts.checkpoint, parts.loggers, parts.checkpoints_off,
            parts.user_checkpoint_into_run) == expected


def test_every_checkpoint_saved_into_the_run_is_in_its_manifest(tmp_path: Path) -> None:
    from enhtrain.checkpoints.atomic_io import AtomicCheckpointIO

    folder = tmp_path / "run" / "checkpoints"
    io_ = AtomicCheckpointIO(root=tmp_path / "run", manifest_dir=folder)
    saved = {"global_step": 3, "epoch": 1, "state_dict": {}, "enhtrain": {"metrics": {"val_loss": 0.5}}}
    io_.save_checkpoint(saved, folder / "manual.ckpt")
    io_.save_checkpoint(saved, folder / "last.ckpt")
    AtomicCheckpointIO().save_checkpoint(saved, tmp_path / "outside.ckpt")  # no manifest_dir: not listed
    manifest = Manifest(folder, strict=True)
    entry = manifest.entry("manual.ckpt")
    assert entry is not None and (entry["step"], entry["epoch"], entry["metrics"]) == (3, 1, {"val_loss": 0.5})
    assert manifest.verify("manual.ckpt") is None and manifest.data["last"] == "last.ckpt"
    io_.remove_checkpoint(folder / "manual.ckpt")
    assert [e["file"] for e in Manifest(folder, strict=True).entries] == ["last.ckpt"]


def test_a_checkpoint_object_shared_by_two_runs_saves_into_each(tmp_path: Path) -> None:
    SCRIPTS.setdefault("shared_callback", (True, False, False))
    config = {**_base("shared_callback"), "experiment": {"name": "shared", **EXPERIMENT}}
    runs = [_run_dir(_call("shared_callback", _args("shared_callback", config), EnhancedCLI, tmp_path))
            for _ in range(2)]
    assert runs[0] != runs[1]
    _check_complete(runs[0])
    # The object's folder follows the run (what it saves is Lightning's: a reused ModelCheckpoint skips the steps
    # it saved before); whatever it saved is in the second run's manifest.
    from scripts.shared_callback import CHECKPOINT

    assert Path(CHECKPOINT.dirpath) == runs[1] / "checkpoints"
    _check_complete(runs[1], checkpoints=False)


def test_a_trainer_class_default_is_what_reaches_the_trainer(tmp_path: Path) -> None:
    SCRIPTS.setdefault("trainer_class", (True, False, True))
    config = {**_base("trainer_class"), "experiment": {"name": "quiet", **EXPERIMENT}}
    config["trainer"].pop("enable_progress_bar", None)
    outcome = _call("trainer_class", _args("trainer_class", config), EnhancedCLI, tmp_path)
    _check_complete(_run_dir(outcome))
    assert not any(isinstance(c, ProgressBar) for c in outcome.cli.trainer.callbacks)
    printed = _call("trainer_class", [*_args("trainer_class", config), "--print_config"], EnhancedCLI, tmp_path)
    callbacks = next(line for line in printed.output.splitlines() if line.startswith("  callbacks:"))
    assert "a progress display" not in callbacks


def test_print_config_sees_a_checkpoint_argument(tmp_path: Path) -> None:
    config = {**_base("checkpoint_argument"), "experiment": {"name": "printed"}}
    outcome = _call("checkpoint_argument", [*_args("checkpoint_argument", config), "--print_config"], EnhancedCLI,
                    tmp_path)
    assert outcome.code == 0, outcome.output
    callbacks = next(line for line in outcome.output.splitlines() if line.startswith("  callbacks:"))
    assert "the given ModelCheckpoint wins" in callbacks and "RunCheckpoint" not in callbacks
