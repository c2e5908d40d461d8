"""Config layers: extends, merging, overlays, environment variables, flags, interpolation, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enhtrain.commands import main
from enhtrain.config.arguments import prepare_arguments, split_arguments
from enhtrain.config.compose import compose, env_var_layer
from enhtrain.config.loading import Layer, load_yaml_text
from enhtrain.config.merging import merge_layers
from enhtrain.config.schema import ExperimentConfig
from enhtrain.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_mappings_merge_lists_replace_and_sources_follow() -> None:
    base = load_yaml_text("a: {x: 1, y: [1, 2]}\nb: 3\n", "base.yaml")
    top = load_yaml_text("a:\n  y: [9]\n  z: 2\n", "top.yaml")
    merged = merge_layers(base, top)
    assert merged.data == {"a": {"x": 1, "y": [9], "z": 2}, "b": 3}
    assert merged.sources[("a", "x")] == "base.yaml:1"
    assert merged.sources[("a", "y")] == "top.yaml:2"
    assert merged.sources[("a", "z")] == "top.yaml:3"


def test_extends_is_relative_and_detects_cycles(tmp_path: Path) -> None:
    write(tmp_path / "pieces" / "trainer.yaml", "trainer: {max_epochs: 3, accelerator: cpu}\n")
    top = write(tmp_path / "exp.yaml", "extends: [pieces/trainer.yaml]\ntrainer: {max_epochs: 5}\n")
    composed = compose([str(top)], environ={})
    assert composed.data["trainer"] == {"max_epochs": 5, "accelerator": "cpu"}
    assert composed.sources[("trainer", "accelerator")].endswith("trainer.yaml:1")
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        compose([str(tmp_path / "a.yaml")], environ={})


def test_keyed_loggers_merge_and_null_removes(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", "experiment:\n  loggers: {csv: {}, wandb: {project: p}}\n")
    top = write(tmp_path / "top.yaml", "experiment:\n  loggers: {wandb: null, tensorboard: {}}\n")
    composed = compose([str(base), str(top)], environ={})
    experiment = ExperimentConfig.model_validate(composed.data["experiment"])
    assert experiment.active_loggers() == {"csv": {}, "tensorboard": {}}


def test_interpolation_across_files(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", "model:\n  init_args: {hidden: 32}\nexperiment: {name: exp}\n")
    overlay = write(
        tmp_path / "overlay.yaml",
        "data:\n  init_args: {width: '${model.init_args.hidden}'}\n"
        "experiment: {description: 'run ${experiment.name}'}\n",
    )
    composed = compose([str(base), str(overlay)], environ={}, flags=[("experiment.name", "flagged")])
    assert composed.data["data"]["init_args"]["width"] == 32
    assert composed.data["experiment"]["description"] == "run flagged"


def test_interpolation_error_names_key_and_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer:\n  max_epochs: ${nothing.here}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2.*trainer\.max_epochs"):
        compose([str(cfg)], environ={})


def test_env_var_layer_and_precedence(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer: {max_epochs: 1, accelerator: cpu}\n")
    environ = {"ENHTRAIN_TRAINER__MAX_EPOCHS": "4", "ENHTRAIN_DEBUG": "1", "ENHTRAIN_TRAINER__ACCELERATOR": "cpu"}
    layer = env_var_layer(environ)
    assert layer.data == {"trainer": {"max_epochs": 4, "accelerator": "cpu"}}
    composed = compose([str(cfg)], environ=environ)
    assert composed.data["trainer"]["max_epochs"] == 4
    assert composed.sources[("trainer", "max_epochs")] == "environment variable ENHTRAIN_TRAINER__MAX_EPOCHS"
    composed = compose([str(cfg)], environ=environ, flags=[("trainer.max_epochs", 9)])
    assert composed.data["trainer"]["max_epochs"] == 9
    assert composed.sources[("trainer", "max_epochs")] == "flag --trainer.max_epochs"


def test_builtin_and_project_overlays(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer: {max_epochs: 50}\n")
    write(tmp_path / "env" / "dev.yaml", "trainer: {max_epochs: 3}\n")
    composed = compose([str(cfg)], environ={}, env="dev")
    # built-in dev sets limit_train_batches; the project overlay wins on max_epochs
    assert composed.data["trainer"]["limit_train_batches"] == 10
    assert composed.data["trainer"]["max_epochs"] == 3
    assert composed.overlay_files[-1].endswith("env/dev.yaml")
    assert "env overlay 'dev'" in composed.sources[("trainer", "max_epochs")]
    composed = compose([str(cfg)], environ={"ENHTRAIN_ENV": "test"})
    assert composed.data["trainer"]["deterministic"] is True


def test_overlay_path_and_unknown_env(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer: {max_epochs: 50}\n")
    overlay = write(tmp_path / "mine.yaml", "trainer: {max_epochs: 2}\n")
    assert compose([str(cfg)], environ={}, env=str(overlay)).data["trainer"]["max_epochs"] == 2
    with pytest.raises(ConfigError, match=r"unknown environment 'staging'.*dev, (example, )?prod, test"):
        compose([str(cfg)], environ={}, env="staging")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("trainer: [1\n", "c.yaml:2"),
        ("x: !!python/object/apply:os.system ['echo hi']\n", "not allowed"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("extends: 3\n", "'extends' must be"),
    ],
)
def test_broken_files(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=fragment):
        compose([str(cfg)], environ={})


def test_split_arguments_extracts_enhtrain_flags() -> None:
    split = split_arguments(
        ["fit", "-c", "a.yaml", "--config=b.yaml", "--env", "dev", "--experiment.name=x",
         "--experiment.loggers.csv", "null", "--trainer.max_epochs", "3", "--trust_checkpoint"]
    )
    assert split.subcommand == "fit"
    assert split.config_files == ["a.yaml", "b.yaml"]
    assert split.env == "dev"
    assert split.experiment_flags == [("name", "x"), ("loggers.csv", None)]
    assert split.trust_checkpoint
    assert split.rest == ["--trainer.max_epochs", "3"]


def test_prepare_without_experiment_passes_through(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer: {max_epochs: 1}\n")
    assert prepare_arguments(["fit", "--config", str(cfg)], force=False, environ={}) is None
    prepared = prepare_arguments(["fit", "--config", str(cfg)], force=True, environ={})
    assert prepared is not None
    assert prepared.experiment.name == "default"
    assert prepared.argv[:2] == ["fit", "--config"]


@pytest.mark.parametrize(
    ("experiment", "fragment"),
    [
        ("{nme: x}", "unknown key 'nme'"),
        ("{checkpoint: {mode: max}}", "'mode' is set but 'monitor' is not"),
        ("{checkpoint: {monitor: val/thing}}", "set mode: min or max"),
        ("{checkpoint: {monitr: val/loss}}", "experiment.checkpoint.monitr"),
        ("{name: 'a b'}", "not a valid run name"),
        ("{loggers: 3}", "experiment.loggers"),
        ("{checkpoint: {save_top_k: -5}}", "experiment.checkpoint.save_top_k"),
    ],
)
def test_experiment_validation_messages(tmp_path: Path, experiment: str, fragment: str) -> None:
    cfg = write(tmp_path / "c.yaml", f"experiment: {experiment}\n")
    with pytest.raises(ConfigError, match=fragment) as info:
        prepare_arguments(["fit", "--config", str(cfg)], force=True, environ={})
    assert "c.yaml:1" in str(info.value)


def test_monitor_mode_is_inferred() -> None:
    assert ExperimentConfig.model_validate({"checkpoint": {"monitor": "val/acc"}}).checkpoint.mode == "max"
    assert ExperimentConfig.model_validate({"checkpoint": {"monitor": "val/loss"}}).checkpoint.mode == "min"


def test_config_explain_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer:\n  gradient_clip_val: 1.0\nexperiment:\n  name: e\n")
    code = main(["config", "explain", "--config", str(cfg), "--env", "dev", "--trainer.devices", "1", "--json"])
    assert code == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["trainer.gradient_clip_val"]["source"].endswith("c.yaml:2")
    assert rows["experiment.name"]["source"].endswith("c.yaml:4")
    assert "dev.yaml" in rows["trainer.limit_train_batches"]["source"]
    assert rows["trainer.devices"]["source"] == "flag --trainer.devices"
    assert rows["experiment.root_dir"] == {"key": "experiment.root_dir", "value": "runs", "source": "default"}
    assert rows["experiment.loggers.tensorboard"]["value"] is None


def test_config_explain_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path / "c.yaml", "trainer:\n  max_epochs: 5\n")
    assert main(["config", "explain", "--config", str(cfg)]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("trainer.max_epochs"))
    assert "5" in line and "c.yaml:2" in line


def test_layer_defaults_are_lowest(tmp_path: Path) -> None:
    defaults = Layer({"trainer": {"max_epochs": 100, "devices": 1}}, {("trainer", "max_epochs"): "default"})
    cfg = write(tmp_path / "c.yaml", "trainer: {max_epochs: 2}\n")
    composed = compose([str(cfg)], defaults=defaults, environ={})
    assert composed.data["trainer"] == {"max_epochs": 2, "devices": 1}


def test_trainer_components_by_registry_or_class_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "c.yaml",
        "model: {class_path: enhtrain.models.MLPClassifier}\n"
        "trainer:\n  callbacks:\n    - {class_path: grad_norm, init_args: {every_n_steps: 5}}\n"
        "    - class_path: MemoryMonitor\n    - lr_monitor\n  profiler: simple\n",
    )
    assert main(["fit", "--config", "c.yaml", "--print_config"]) == 0
    import yaml

    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    paths = [c["class_path"] for c in trainer["callbacks"]]
    assert paths == [
        "enhtrain.callbacks.grad_norm.GradNormMonitor",
        "enhtrain.callbacks.memory.MemoryMonitor",
        "lightning.pytorch.callbacks.LearningRateMonitor",
    ]
    assert trainer["callbacks"][0]["init_args"]["every_n_steps"] == 5
    assert trainer["profiler"]["class_path"] == "lightning.pytorch.profilers.SimpleProfiler"


def test_printed_and_explained_configs_mask_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-9876543210")
    write(
        tmp_path / "c.yaml",
        "model: {class_path: enhtrain.models.MLPClassifier}\n"
        "experiment:\n  loggers: {comet: {api_key: abcdef123456}}\n  tags: ['${oc.env:MY_SERVICE_TOKEN}']\n",
    )
    assert main(["fit", "--config", "c.yaml", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "abcdef123456" not in printed and "tok-9876543210" not in printed
    assert "**********" in printed
    assert main(["config", "explain", "--config", "c.yaml"]) == 0
    explained = capsys.readouterr().out
    assert "abcdef123456" not in explained and "tok-9876543210" not in explained
    assert main(["config", "explain", "--help"]) == 0
    assert "usage: enhtrain config explain" in capsys.readouterr().out


def test_an_inline_config_is_read_like_a_file_schema_version_included() -> None:
    composed = compose(["{schema_version: 2, trainer: {max_epochs: 3}}"],
                       inline_configs=[(0, "{schema_version: 2, trainer: {max_epochs: 3}}")], environ={})
    assert composed.data == {"trainer": {"max_epochs": 3}}  # consumed, never handed to jsonargparse
    with pytest.raises(ConfigError, match=r"--config \(inline\):1: schema_version 9 is newer"):
        compose(["x"], inline_configs=[(0, "{schema_version: 9}")], environ={})


def test_every_config_flag_is_composed_and_jsonargparse_keeps_its_own() -> None:
    split = split_arguments(["fit", "--trainer.max_epochs", "2", "--model.lr=1e-3", "--model", "Other",
                             "--model.hidden", "3", "--trainer.callbacks+=EarlyStopping", "--print_config",
                             "--data.init_args.name", "${trainer.max_epochs}"])
    assert split.config_flags == [("trainer.max_epochs", 2), ("model.lr", 0.001), ("data.init_args.name",
                                                                                   "${trainer.max_epochs}")]
    # A flag stays for jsonargparse unless only the composition can resolve it; a chosen class keeps its flags.
    assert split.rest == ["--trainer.max_epochs", "2", "--model.lr=1e-3", "--model", "Other", "--model.hidden", "3",
                          "--trainer.callbacks+=EarlyStopping", "--print_config"]
    assert split.passed_flags == [("model", "Other"), ("model.hidden", "3"),
                                  ("trainer.callbacks+", "EarlyStopping")]
    composed = compose([], flags=[("model.lr", 0.5)], inline_configs=[], environ={},
                       defaults=Layer({"model": {"class_path": "a.B", "init_args": {}}}, {}))
    assert composed.data["model"] == {"class_path": "a.B", "init_args": {"lr": 0.5}}
    assert composed.sources[("model", "init_args", "lr")] == "flag --model.lr"


def test_jsonargparse_flag_forms_keep_working(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from enhtrain.testing import write_tiny_config

    monkeypatch.chdir(tmp_path)
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "run-e${trainer.max_epochs}"}})
    code = main(["fit", "--config", "tiny.yaml", "--trainer.max_epochs", "1", "--model=enhtrain.models.MLPClassifier",
                 "--model.init_args.lr", "0.25", "--model.micro_batch_size=4",
                 "--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping",
                 "--trainer.callbacks.monitor=val/loss", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert code == 0
    assert printed["experiment"]["name"] == "run-e1"
    assert printed["model"]["class_path"] == "enhtrain.models.MLPClassifier"
    assert printed["model"]["init_args"]["lr"] == 0.25 and printed["model"]["init_args"]["micro_batch_size"] == 4
    callback = printed["trainer"]["callbacks"][-1]
    assert callback["class_path"] == "lightning.pytorch.callbacks.EarlyStopping"
    assert callback["init_args"]["monitor"] == "val/loss"
