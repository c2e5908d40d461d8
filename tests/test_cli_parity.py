"""EnhancedCLI used as a library class, with no enhtrain settings, behaves exactly like LightningCLI."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel

from enhtrain import EnhancedCLI

TINY = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false", "--seed_everything=7"]


def _run(cls: type[LightningCLI], args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch,
         **kwargs: Any) -> tuple[int, str, str, LightningCLI | None]:
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    cli = None
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli = cls(BoringModel, BoringDataModule, args=args, **kwargs)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, out.getvalue(), err.getvalue(), cli


@pytest.fixture
def both(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "light").mkdir()
    (tmp_path / "enh").mkdir()
    return tmp_path / "light", tmp_path / "enh"


def test_same_arguments(both: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    light = _run(LightningCLI, ["fit", *TINY], both[0], monkeypatch)[3]
    enh = _run(EnhancedCLI, ["fit", *TINY], both[1], monkeypatch)[3]
    assert light is not None and enh is not None
    assert not enh.enhanced

    def options(cli: LightningCLI) -> set[str]:
        parser = cli._parser("fit")
        return {opt for action in parser._actions for opt in action.option_strings}

    assert options(light) == options(enh)
    assert set(light.parser._subcommands_action.choices) == set(enh.parser._subcommands_action.choices)


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_print_config_identical(subcommand: str, both: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    args = [subcommand, *TINY, "--print_config"]
    code_l, out_l, _, _ = _run(LightningCLI, args, both[0], monkeypatch)
    code_e, out_e, _, _ = _run(EnhancedCLI, args, both[1], monkeypatch)
    assert code_l == code_e == 0
    assert out_l == out_e
    assert "experiment" not in yaml.safe_load(out_e)


def test_fit_saves_same_config_and_trains_same(both: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["fit", *TINY]
    code_l, _, _, light = _run(LightningCLI, args, both[0], monkeypatch)
    code_e, _, _, enh = _run(EnhancedCLI, args, both[1], monkeypatch)
    assert code_l == code_e == 0
    assert light is not None and enh is not None
    saved_l = Path(light.trainer.log_dir) / "config.yaml"
    saved_e = Path(enh.trainer.log_dir) / "config.yaml"
    assert saved_l.relative_to(both[0]) == saved_e.relative_to(both[1])
    assert saved_l.read_text() == saved_e.read_text()
    assert light.trainer.global_step == enh.trainer.global_step == 3
    assert light.trainer.state.status == enh.trainer.state.status
    assert set(light.trainer.callback_metrics) == set(enh.trainer.callback_metrics)
    for (name_l, p_l), (name_e, p_e) in zip(light.model.named_parameters(), enh.model.named_parameters(),
                                            strict=True):
        assert name_l == name_e
        assert torch.equal(p_l, p_e)
    assert not (both[1] / "runs").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "--trainer.maxx_epochs=1"],
        ["fit", "--trainer.max_epochs=abc"],
        ["fit", "--model.nope=1"],
        ["fit", "--config", "missing.yaml"],
        ["fly"],
    ],
)
def test_same_errors(args: list[str], both: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    code_l, out_l, err_l, _ = _run(LightningCLI, args, both[0], monkeypatch)
    code_e, out_e, err_e, _ = _run(EnhancedCLI, args, both[1], monkeypatch)
    assert code_l == code_e == 2
    assert err_l.replace(str(both[0]), "<cwd>") == err_e.replace(str(both[1]), "<cwd>")
    assert "error" in err_e
    assert out_l == out_e


def test_yaml_error_same(both: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for where in both:
        (where / "bad.yaml").write_text("trainer:\n  max_epochs: [1\n")
    code_l, _, err_l, _ = _run(LightningCLI, ["fit", "--config", "bad.yaml"], both[0], monkeypatch)
    code_e, _, err_e, _ = _run(EnhancedCLI, ["fit", "--config", "bad.yaml"], both[1], monkeypatch)
    assert code_l == code_e == 2
    assert err_l == err_e


def test_config_file_without_experiment_is_plain_lightning(both: tuple[Path, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for where in both:
        (where / "c.yaml").write_text("trainer:\n  max_epochs: 1\n  limit_train_batches: 2\n  limit_val_batches: 1\n")
    _, _, _, light = _run(LightningCLI, ["fit", "--config", "c.yaml"], both[0], monkeypatch)
    _, _, _, enh = _run(EnhancedCLI, ["fit", "--config", "c.yaml"], both[1], monkeypatch)
    assert light is not None and enh is not None and not enh.enhanced
    assert (Path(light.trainer.log_dir) / "config.yaml").read_text() == (
        Path(enh.trainer.log_dir) / "config.yaml"
    ).read_text()


def test_experiment_section_switches_enhancements_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.yaml").write_text(
        "trainer: {max_epochs: 1, limit_train_batches: 2, limit_val_batches: 1, enable_progress_bar: false}\n"
        "experiment: {name: lib, loggers: {csv: {}}}\n"
    )
    code, _, err, cli = _run(EnhancedCLI, ["fit", "--config", "c.yaml"], tmp_path, monkeypatch)
    assert code == 0, err
    assert cli is not None and cli.enhanced
    run = tmp_path / "runs" / "lib" / "version_0"
    assert (run / "config.yaml").is_file()
    assert (run / "logs" / "csv" / "hparams.yaml").is_file()
    assert (run / "metadata.json").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["experiment"]["name"] == "lib"


def _record_parser_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, record each subcommand parser that LightningCLI builds."""
    built: list[str] = []
    prepare = LightningCLI._prepare_subcommand_parser

    def recording(self: LightningCLI, klass: type, subcommand: str, **kwargs: Any) -> Any:
        built.append(subcommand)
        return prepare(self, klass, subcommand, **kwargs)

    monkeypatch.setattr(LightningCLI, "_prepare_subcommand_parser", recording)
    return built


def test_a_command_line_that_names_its_subcommand_builds_only_that_parser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from enhtrain.testing import write_tiny_config
    from in_process import run_main

    built = _record_parser_builds(monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = write_tiny_config(tmp_path / "tiny.yaml")
    for subcommand in ("fit", "validate"):
        built.clear()
        code, out, _ = run_main(capsys, subcommand, "--config", str(config), "--print_config")
        assert code == 0 and "model:" in out
        assert built == [subcommand]
    # Without a subcommand (a script's --help), every subcommand is listed.
    built.clear()
    code = _run(EnhancedCLI, ["--help"], tmp_path, monkeypatch, experiment_defaults=True)[0]
    assert code == 0 and built == ["fit", "validate", "test", "predict"]


class _VariedModel(BoringModel):
    """A model whose hyper-parameters a YAML round trip could change: int keys, small floats, number-like text."""

    def __init__(self, weights: dict[int, float] | None = None, lr: float = 1e-5, code: str = "007",
                 sizes: tuple[int, ...] = (1, 2), note: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()


_VARIED = ("model: {weights: {3: 0.5, 10: 2.0}, lr: 3.0e-06, code: '1e3', sizes: [4, 5, 6]}\n"
           "trainer: {max_epochs: 1, limit_train_batches: 1, limit_val_batches: 0, enable_progress_bar: false}\n")


@pytest.mark.parametrize("run", [False, True])
def test_the_config_is_dumped_without_validating_it_again_to_the_same_values(
        run: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain.yaml").write_text(_VARIED)
    (tmp_path / "c.yaml").write_text(_VARIED + "experiment: {name: dumps, loggers: {}, callbacks: {}}\n")
    monkeypatch.chdir(tmp_path)

    def cli(cls: type[LightningCLI], config: str) -> LightningCLI:
        args = ["--config", config]
        return cls(_VariedModel, BoringDataModule, args=["fit", *args] if run else args, run=run)

    light, enh = cli(LightningCLI, "plain.yaml"), cli(EnhancedCLI, "c.yaml")
    assert isinstance(enh, EnhancedCLI) and enh.enhanced
    # The hyper-parameters are LightningCLI's, '1e3' still text after enhtrain composed the config.
    assert dict(enh.model.hparams) == dict(light.model.hparams)
    assert enh.model.hparams["code"] == "1e3" and enh.model.hparams["lr"] == 3.0e-06
    subcommand = enh.config.get("subcommand")
    validated = yaml.safe_load(enh.parser.dump(enh.config, skip_link_targets=False, skip_none=False))
    assert enh.config_dump == (validated[subcommand] if subcommand else validated)
    config = enh.config[subcommand] if subcommand else enh.config
    assert enh._dumped_config() == yaml.safe_load(enh._parser(subcommand).dump(config, skip_none=False))


def test_a_prebuilt_parser_is_taken_once_by_the_run_it_was_built_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from enhtrain import cli
    from enhtrain.testing import write_tiny_config
    from in_process import run_main

    monkeypatch.chdir(tmp_path)
    config = str(write_tiny_config(tmp_path / "tiny.yaml"))
    code, expected, _ = run_main(capsys, "fit", "--config", config, "--print_config")
    assert code == 0
    try:
        cli.prebuild_parser("fit")
        parser = cli._prebuilt[0][1]
        built = _record_parser_builds(monkeypatch)
        # Another subcommand builds its own and leaves the prebuilt parser.
        assert run_main(capsys, "validate", "--config", config, "--print_config")[0] == 0
        assert built == ["validate"] and cli._prebuilt[0][1] is parser
        seen: list[Any] = []
        parse = cli.EnhancedCLI._parse_or_print

        def parsing(self: cli.EnhancedCLI, parser: Any, args: Any) -> Any:
            seen.append(parser)
            return parse(self, parser, args)

        monkeypatch.setattr(cli.EnhancedCLI, "_parse_or_print", parsing)
        code, out, _ = run_main(capsys, "fit", "--config", config, "--print_config")
        assert code == 0 and out == expected  # the same config printed
        assert seen == [parser] and built == ["validate"] and cli._prebuilt == []  # taken, nothing built
    finally:
        cli._prebuilt.clear()
