"""Flags that choose a section's class: the composed config is the one jsonargparse builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from enhtrain.commands import main
from enhtrain.testing import write_tiny_config

_MODELS = '''
import lightning.pytorch as pl
import torch


class Narrow(pl.LightningModule):
    """Accepts lr (float) and hidden_dims (a list), like MLPClassifier, and nothing else of it."""

    def __init__(self, lr: float = 0.5, hidden_dims: list[int] | None = None, depth: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(64, 10)


class Bare(pl.LightningModule):
    """Accepts none of MLPClassifier's arguments."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(64, 10)
'''


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "class_flag_models.py").write_text(_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    write_tiny_config(tmp_path / "tiny.yaml", {
        "model": {"init_args": {"lr": 0.01, "dropout": 0.1}},
        "experiment": {"name": "lr-${model.init_args.lr}"},
    })
    return tmp_path


def _printed(capsys: pytest.CaptureFixture[str], *flags: str) -> dict:
    assert main(["fit", "--config", "tiny.yaml", *flags, "--print_config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def _explained(capsys: pytest.CaptureFixture[str], *flags: str) -> list[dict]:
    assert main(["config", "explain", "--json", "--config", "tiny.yaml", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_interpolation_sees_the_flag_after_a_class_choice(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ("--model.class_path", "enhtrain.models.MLPClassifier", "--model.init_args.lr", "0.5")
    printed = _printed(capsys, *flags)
    assert printed["experiment"]["name"] == "lr-0.5" and printed["model"]["init_args"]["lr"] == 0.5
    rows = _explained(capsys, *flags)
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys))  # each key once, with its real source
    sources = {row["key"]: (row["value"], row["source"]) for row in rows}
    assert sources["model.init_args.lr"] == (0.5, "flag --model.init_args.lr")
    assert sources["model.class_path"] == ("enhtrain.models.MLPClassifier", "flag --model.class_path")
    assert sources["model.init_args.dropout"][0] == 0.1 and "tiny.yaml" in sources["model.init_args.dropout"][1]
    assert sources["experiment.name"][0] == "lr-0.5"


def test_switching_to_a_class_that_rejects_the_files_init_args(project: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # The file's name interpolates model.init_args.lr, which Bare does not have: the flag names the run instead.
    flags = ("--experiment.name", "bare", "--model=class_flag_models.Bare", "--model.scale", "2.5")
    printed = _printed(capsys, *flags)
    assert printed["model"] == {"class_path": "class_flag_models.Bare", "init_args": {"scale": 2.5}}
    rows = {row["key"]: (row["value"], row["source"]) for row in _explained(capsys, *flags)}
    assert rows["model.class_path"] == ("class_flag_models.Bare", "flag --model")
    assert rows["model.init_args.scale"] == (2.5, "flag --model.scale")
    assert not any(key.startswith("model.init_args.") and key != "model.init_args.scale" for key in rows)


def test_switching_to_a_class_that_accepts_some_keeps_those(project: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    flags = ("--model.class_path", "class_flag_models.Narrow", "--model.init_args.depth", "3")
    printed = _printed(capsys, *flags)
    # lr and hidden_dims are Narrow's too and carried over; dropout is not, and is dropped, as jsonargparse does.
    assert printed["model"]["class_path"] == "class_flag_models.Narrow"
    assert printed["model"]["init_args"] == {"lr": 0.01, "hidden_dims": [8], "depth": 3}
    assert printed["experiment"]["name"] == "lr-0.01"
    rows = {row["key"]: (row["value"], row["source"]) for row in _explained(capsys, *flags)}
    model = {key: value for key, (value, _) in rows.items() if key.startswith("model.")}
    assert model == {"model.class_path": "class_flag_models.Narrow", "model.init_args.lr": 0.01,
                     "model.init_args.hidden_dims": [8], "model.init_args.depth": 3}
    assert "tiny.yaml" in rows["model.init_args.lr"][1]
    assert rows["model.init_args.depth"][1] == "flag --model.init_args.depth"


def test_a_class_the_composition_cannot_resolve_stays_jsonargparses(project: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from enhtrain.config.arguments import compose_arguments, split_arguments

    split = split_arguments(["fit", "--config", "tiny.yaml", "--model", "Unknown", "--model.lr", "3"])
    assert split.class_flags == [("model", "Unknown"), ("model.lr", 3)]
    composed = compose_arguments(split, environ={})
    assert composed.data["model"]["class_path"] == "enhtrain.models.MLPClassifier"
    assert composed.data["model"]["init_args"]["lr"] == 0.01
    rows = _explained(capsys, "--model.class_path", "class_flag_models.Missing", "--model.lr", "3")
    passed = {row["key"]: row["source"] for row in rows if row["source"].endswith("(applied by jsonargparse)")}
    assert passed == {"model.class_path": "flag --model.class_path (applied by jsonargparse)",
                      "model.lr": "flag --model.lr (applied by jsonargparse)"}
