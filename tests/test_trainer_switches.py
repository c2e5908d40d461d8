"""Lightning's own trainer switches under ``python -m enhtrain``, what ``--print_config`` shows, ``--help``, and
the options of loggers, callbacks and profilers checked when the config is composed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from enhtrain.cli import _EXPERIMENT_HELP
from enhtrain.config.arguments import KEYED_MERGE_RULE
from enhtrain.config.schema import ExperimentConfig
from enhtrain.testing import write_tiny_config
from in_process import run_main

REPO = Path(__file__).resolve().parent.parent
TINY = {"experiment": {"name": "tiny", "checkpoint": {"monitor": "val/loss", "save_top_k": 2}}}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_tiny_config(tmp_path / "tiny.yaml", TINY)
    return tmp_path


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- Lightning's switches ---------------------------------------------------------------------------------------


def test_logger_false_means_no_logger_at_all(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--trainer.logger", "false")
    assert code == 0, err
    run_dir = workdir / "runs/tiny/version_0"
    assert files(run_dir / "logs") == []
    assert (run_dir / "checkpoints/manifest.json").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["logger"] is False


def test_enable_checkpointing_false_means_no_checkpoint_and_no_manifest(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The config asks for checkpoints (experiment.checkpoint); Lightning's switch wins.
    code, _, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--trainer.enable_checkpointing", "false")
    assert code == 0, err
    run_dir = workdir / "runs/tiny/version_0"
    assert files(run_dir / "checkpoints") == []
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta.get("last_checkpoint") is None
    assert (run_dir / "logs/csv/metrics.csv").is_file()


def test_default_root_dir_is_the_runs_root(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--trainer.default_root_dir", "elsewhere")
    assert code == 0, err
    assert not (workdir / "runs").exists()
    run_dir = workdir / "elsewhere/tiny/version_0"
    assert (run_dir / "checkpoints/last.ckpt").is_file()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["experiment"]["root_dir"] == "elsewhere" and saved["trainer"]["default_root_dir"] == "elsewhere"
    assert "Run directory: elsewhere/tiny/version_0" in out
    # The saved config starts the same kind of run again.
    code, _, err = run_main(capsys, "fit", "--config", str(run_dir / "config.yaml"))
    assert code == 0, err
    assert (workdir / "elsewhere/tiny/version_1/metadata.json").is_file()


def test_default_root_dir_and_a_different_root_dir_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "rooted.yaml").write_text("experiment:\n  root_dir: mine\n")
    code, out, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--config", "rooted.yaml",
                         "--trainer.default_root_dir", "elsewhere")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "flag --trainer.default_root_dir: trainer.default_root_dir 'elsewhere' differs from experiment.root_dir" \
        in err and "rooted.yaml:2" in err and "set experiment.root_dir only" in err
    assert not any((workdir / name).exists() for name in ("runs", "mine", "elsewhere"))
    # The same folder both ways is no conflict.
    code, _, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--config", "rooted.yaml",
                       "--trainer.default_root_dir", "mine", "--trainer.logger", "false")
    assert code == 0, err
    assert (workdir / "mine/tiny/version_0").is_dir()


def test_config_explain_shows_where_the_root_came_from(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "config", "explain", "--config", "tiny.yaml", "--trainer.default_root_dir", "x",
                         "--json")
    assert code == 0, err
    rows = {row["key"]: row for row in json.loads(out)}
    assert rows["experiment.root_dir"]["value"] == "x"
    assert rows["experiment.root_dir"]["source"] == "flag --trainer.default_root_dir (trainer.default_root_dir)"


# --- --print_config shows what is built ---------------------------------------------------------------------------


def _trainer_lines(printed: str) -> dict[str, str]:
    lines = printed.split("\ntrainer:\n", 1)[1].split("\n")
    block = []
    for line in lines:
        if line and not line.startswith(" "):
            break
        block.append(line)
    return {line.split(":", 1)[0].strip(): line for line in block if line.startswith("  ") and line[2] != " "}


def test_print_config_says_what_enhtrain_adds_and_loads_back(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, printed, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--experiment.profiler", "simple",
                             "--print_config")
    assert code == 0, err
    lines = _trainer_lines(printed)
    assert lines["logger"].startswith("  logger: null  # enhtrain adds experiment.loggers: csv, tensorboard")
    assert "experiment.callbacks: throughput, run_summary, RunCheckpoint" in lines["callbacks"]
    assert "runs/tiny/<version>/checkpoints/" in lines["enable_checkpointing"]
    assert "enhtrain sets it to the run directory, runs/tiny/<version>" in lines["default_root_dir"]
    assert "experiment.profiler: simple" in lines["profiler"]
    data = yaml.safe_load(printed)
    assert data["trainer"]["logger"] is None and data["trainer"]["callbacks"] is None
    assert data["experiment"]["loggers"] == {"csv": {}, "tensorboard": {}}
    # The printed config is a config: loaded back, it prints the same, comments included.
    (workdir / "printed.yaml").write_text(printed)
    code, again, err = run_main(capsys, "fit", "--config", "printed.yaml", "--print_config")
    assert code == 0, err
    assert again == printed
    assert not (workdir / "runs").exists()


def test_print_config_follows_lightnings_switches(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, printed, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--trainer.logger", "false",
                             "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
                             "--print_config")
    assert code == 0, err
    lines = _trainer_lines(printed)
    assert lines["logger"] == (
        "  logger: false  # Lightning's switch: no loggers at all (experiment.loggers is not used)"
    )
    assert "no checkpoints" in lines["enable_checkpointing"]
    assert lines["callbacks"].endswith("enhtrain adds experiment.callbacks: throughput, run_summary")


# --- options checked when the config is composed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["fit"], ["validate"], ["test"], ["predict"], ["fit", "--print_config"], ["config", "explain"]],
    ids=" ".join,
)
@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--experiment.callbacks.memory", "{log_every: 3}",
         "flag --experiment.callbacks.memory: unknown option 'log_every'; accepted "
         "options: log_every_n_steps (did you mean 'log_every_n_steps'?)"),
        ("--experiment.loggers.csv", "{prefx: a}",
         "flag --experiment.loggers.csv: logger 'csv' has no option 'prefx' (did you mean "
         "'prefix'?); accepted: flush_logs_every_n_steps, prefix"),
        ("--experiment.profiler", "{name: simple, extend: true}",
         "flag --experiment.profiler: unknown option 'extend'; accepted options: extended"),
        ("--experiment.callbacks.early_stopping", "{patience: 2}",
         "experiment.callbacks.early_stopping: missing required option 'monitor'"),
    ],
    ids=["callback", "logger", "profiler", "required"],
)
def test_options_are_checked_by_every_command_that_composes(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: list[str], flag: str, value: str, message: str
) -> None:
    args = [*command[:1], "--config", "tiny.yaml", flag, value, *command[1:]]
    if command[0] == "config":
        args = ["config", "explain", "--config", "tiny.yaml", flag, value]
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("enhtrain: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not (workdir / "runs").exists()


def test_options_set_in_a_file_name_its_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "loggers.yaml").write_text("experiment:\n  loggers:\n    comet: {project_name: x, offline: true}\n")
    code, _, err = run_main(capsys, "config", "explain", "--config", "tiny.yaml", "--config", "loggers.yaml")
    assert code == 2
    assert err.startswith("enhtrain: error: loggers.yaml:3: experiment.loggers.comet: logger 'comet' has no option "
                          "'project_name' (did you mean 'project'?); accepted: ")


def test_the_csv_logger_offers_only_options_it_takes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "config", "explain", "--config", "tiny.yaml", "--experiment.loggers.csv",
                       "{bogus: 1}")
    assert code == 2
    accepted = err.rsplit("accepted: ", 1)[1].strip().split(", ")
    assert accepted == ["flush_logs_every_n_steps", "prefix"]
    for refused in ("name", "save_dir", "version"):
        code, _, err = run_main(capsys, "config", "explain", "--config", "tiny.yaml", "--experiment.loggers.csv",
                           f"{{{refused}: x}}")
        assert code == 2 and f"experiment.loggers.csv.{refused}: set by enhtrain" in err


CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(REPO / "configs").as_posix())
def test_every_shipped_config_composes(path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    data = yaml.safe_load(path.read_text())
    if "sweep" in data:
        # A sweep's spec, read by `enhtrain sweep`; the params it samples are keys of the quickstart config.
        from enhtrain.sweeps.spec import load_spec

        spec = load_spec(path)
        code, out, err = run_main(capsys, "config", "explain", "--config", "configs/quickstart.yaml", "--json")
        assert code == 0, err
        keys = {row["key"] for row in json.loads(out)}
        assert all(any(k == param or k.startswith(param + ".") for k in keys) for param in spec.params), spec.params
        return
    if path.parent.name == "env":
        args = ["--config", "configs/quickstart.yaml", "--env", str(path.relative_to(REPO))]
    elif ("model" in data and "data" in data) or "extends" in data:
        args = ["--config", str(path.relative_to(REPO))]
    else:  # a piece, used on top of a whole config
        args = ["--config", "configs/quickstart.yaml", "--config", str(path.relative_to(REPO))]
    code, out, err = run_main(capsys, "config", "explain", *args, "--json")
    assert code == 0, err
    keys = {row["key"] for row in json.loads(out)}
    assert {"experiment.name", "model.class_path", "data.class_path"} <= keys
    if data.get("experiment"):
        code, printed, err = run_main(capsys, "fit", *args, "--print_config")
        assert code == 0, err
        assert yaml.safe_load(printed)["experiment"]["name"]


def test_the_logging_pieces_train_with_the_quickstart(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "fit", "--config", "tiny.yaml", "--config", str(REPO / "configs/logging/all.yaml"))
    assert code == 0, err
    logs = workdir / "runs/tiny/version_0/logs"
    assert sorted(p.name for p in logs.iterdir()) == ["comet", "csv", "tensorboard", "wandb"]


# --- the keyed merge ----------------------------------------------------------------------------------------------


def _explained(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out, err = run_main(capsys, "config", "explain", "--config", "tiny.yaml", *args, "--json")
    assert code == 0, err
    return {row["key"]: row["value"] for row in json.loads(out)}


@pytest.mark.parametrize(("section", "default", "extra"),
                         [("loggers", ["csv", "tensorboard"], "wandb"), ("callbacks", ["throughput", "run_summary"],
                                                                         "memory")])
def test_keyed_sections_merge_name_by_name(workdir: Path, capsys: pytest.CaptureFixture[str], section: str,
                                           default: list[str], extra: str) -> None:
    def names(values: dict[str, object]) -> list[str]:
        prefix = f"experiment.{section}."
        return [k[len(prefix):] for k, v in values.items() if k.startswith(prefix) and v is not None]

    # A layer adds the names it gives and keeps the others, the defaults included.
    assert names(_explained(capsys, f"--experiment.{section}", f"{{{extra}: {{}}}}")) == [*default, extra]
    # NAME: null removes one.
    assert names(_explained(capsys, f"--experiment.{section}.{default[0]}", "null")) == default[1:]
    # An empty mapping, or a list of names, replaces them all.
    assert _explained(capsys, f"--experiment.{section}", "{}")[f"experiment.{section}"] == {}
    assert names(_explained(capsys, f"--experiment.{section}", f"[{extra}]")) == [extra]


# --- --help ---------------------------------------------------------------------------------------------------------


def test_fit_help_puts_enhtrains_options_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "fit", "--help")
    assert code == 0
    lines = out.splitlines()
    usage = " ".join(line.strip() for line in lines[:3])
    assert usage.startswith("usage: enhtrain fit ") and "--env NAME|FILE" in usage
    head = "\n".join(lines[:80])
    for option in ("--env", "--safe", "--trust_checkpoint", "--allow_module", "--experiment.name NAME",
                   "--experiment.loggers MAPPING", "--experiment.checkpoint.monitor", "--experiment.resume"):
        assert option in head, option
    assert " ".join(KEYED_MERGE_RULE.split()) in " ".join(head.split())
    experiment = out[out.index("  --experiment EXPERIMENT"):].split("\n  --", 1)[0]
    assert "dict" not in experiment and "null" not in experiment


def test_help_lists_the_schemas_keys_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    defaults = ExperimentConfig().model_dump(mode="json")
    shown = {key: default for key, _, default, _ in _EXPERIMENT_HELP}
    # Every field of the schema, the ones left out of a dump when unset (experiment.sweep) included.
    assert {k for k in shown if "." not in k} == set(ExperimentConfig.model_fields)
    for key, default in shown.items():
        section, _, sub = key.partition(".")
        if sub:
            assert defaults[section][sub] == default, key
        elif key != "checkpoint":
            assert defaults.get(key) == default, key
    assert {k.split(".", 1)[1] for k in shown if k.startswith("checkpoint.")} == set(defaults["checkpoint"])
    code, out, _ = run_main(capsys, "fit", "--help")
    assert code == 0
    assert "--experiment.callbacks MAPPING" in out and "{throughput: {}, run_summary: {}}" in " ".join(out.split())


# --- validate, test and predict say where their run went ----------------------------------------------------------


def test_evaluation_commands_print_their_run_directory(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "fit", "--config", "tiny.yaml")
    assert code == 0, err
    ckpt = "runs/tiny/version_0/checkpoints/last.ckpt"
    for version, subcommand in enumerate(("validate", "test", "predict"), start=1):
        code, out, err = run_main(capsys, subcommand, "--config", "tiny.yaml", "--ckpt_path", ckpt)
        assert code == 0, err
        assert out.splitlines()[-1] == f"Run directory: runs/tiny/version_{version}"
    code, out, _ = run_main(capsys, "runs", "list")
    assert [line.split()[3] for line in out.splitlines()[1:]] == ["fit", "validate", "test", "predict"]


@pytest.mark.parametrize("page", ["docs/guides/configuration.md", "docs/guides/loggers.md", "docs/guides/callbacks.md"])
def test_the_guides_state_the_merge_rule_as_the_code_does(page: str) -> None:
    text = (Path(__file__).resolve().parent.parent / page).read_text(encoding="utf-8")
    assert " ".join(KEYED_MERGE_RULE.split()) in " ".join(text.replace("**", "").split()), page
