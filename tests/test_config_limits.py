"""Bounded config input and the messages of the config layers, beyond what the bad-input corpus can express.

Each input limit of :mod:`enhtrain.config.loading` must refuse its input with one line and exit status 2 in
well under two seconds (the loader is timed directly, and the command once its imports are warm); flag and
environment values, ``--config`` values, required arguments and unreadable checkpoints must be reported in
words that name what is wrong and where.
"""

from __future__ import annotations

import os
import pickle
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from enhtrain.checkpoints.safe_load import safe_load
from enhtrain.commands import main
from enhtrain.config.arguments import _looks_inline
from enhtrain.config.compose import ComposedConfig, compose, load_with_extends, parse_flag_value
from enhtrain.config.errors import describe_parser_error
from enhtrain.config.loading import (
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    YAMLSyntaxError,
    load_yaml_file,
    load_yaml_text,
    load_yaml_value,
    read_config_text,
)
from enhtrain.errors import CheckpointError, ConfigError
from enhtrain.plugins.builtin.checks import enhtrain_validate_config
from fakes import torch_bytes, zip_bytes
from refusals import assert_refused

BASE = Path(__file__).resolve().parent / "bad_inputs" / "base.yaml"
FAST = 2.0  # seconds: every refusal must come well within this


def alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes whose aliases expand to ``9 ** levels`` scalars."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def deep_flow(depth: int = 10_000) -> str:
    return "deep: " + "[" * depth + "]" * depth + "\n"


def deep_block(depth: int = 10_000) -> str:
    return "deep:\n  " + "- " * depth + "x\n"


def alias_chain(length: int = 150) -> str:
    """Aliases nested one in another: small when expanded, but ``length`` levels deep."""
    lines = ["l0: &l0 [x]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, length)]
    return "\n".join(lines) + "\n"


def many_nodes() -> str:
    return "values: [" + "1, " * (MAX_YAML_NODES + 10) + "1]\n"


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """Run ``call``; return the exception it raised (or ``None``) and the seconds it took."""
    start = time.perf_counter()
    try:
        call()
    except Exception as err:
        return err, time.perf_counter() - start
    return None, time.perf_counter() - start


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the bad-input corpus's valid ``base.yaml``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.read_text())
    return tmp_path / "base.yaml"


@pytest.fixture(scope="module")
def warm_cli() -> None:
    """Import what ``enhtrain fit`` imports (Lightning, torch) once, so that timings measure the refusal."""
    main(["fit", "--config", "no/such/config.yaml"])


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main(args)
    elapsed = time.perf_counter() - start
    return code, capsys.readouterr().err, elapsed


# --- each limit, refused fast ------------------------------------------------------------------------------

TEXT_LIMITS = {
    "alias_bomb": (alias_bomb(), f"YAML aliases expand to more than {MAX_YAML_NODES} nodes (limit)"),
    "deep_flow": (deep_flow(), f"YAML nested more than {MAX_YAML_DEPTH} levels deep (limit)"),
    "deep_block": (deep_block(), f"YAML nested more than {MAX_YAML_DEPTH} levels deep (limit)"),
    "alias_chain": (alias_chain(), "levels deep (limit) once alias"),
    "recursive_alias": ("a: &loop [x, *loop]\n", "(a recursive alias)"),
    "many_nodes": (many_nodes(), f"YAML document has more than {MAX_YAML_NODES} nodes (limit)"),
}


@pytest.mark.parametrize("kind", sorted(TEXT_LIMITS))
def test_each_yaml_limit_is_refused_fast_naming_the_file(kind: str, tmp_path: Path) -> None:
    text, fragment = TEXT_LIMITS[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)

    err, elapsed = timed(lambda: load_yaml_file(path))

    assert isinstance(err, ConfigError), err
    assert str(err).startswith(f"{path}:"), err
    assert fragment in str(err)
    assert "\n" not in str(err)
    if kind != "many_nodes" or yaml.__with_libyaml__:  # counting 100000 plain nodes is fast with libyaml only
        assert elapsed < FAST, f"{kind} took {elapsed:.2f}s"


@pytest.mark.parametrize("kind", sorted(TEXT_LIMITS))
def test_each_yaml_limit_applies_to_flag_values_too(kind: str) -> None:
    text, fragment = TEXT_LIMITS[kind]

    err, elapsed = timed(lambda: parse_flag_value(text, "flag --experiment.tags"))

    assert isinstance(err, ConfigError) and fragment in str(err), err
    assert str(err).startswith("flag --experiment.tags")
    if kind != "many_nodes" or yaml.__with_libyaml__:
        assert elapsed < FAST


def test_text_past_the_size_limit_is_refused_without_parsing() -> None:
    text = "a: " + "x" * MAX_CONFIG_BYTES

    err, elapsed = timed(lambda: load_yaml_text(text, "--config (inline)"))

    assert isinstance(err, ConfigError)
    assert "--config (inline): YAML text is larger than 4 MiB (limit)" in str(err)
    assert elapsed < FAST


def test_a_file_past_the_size_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_CONFIG_BYTES + "\n")
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as handle:  # sparse: 8 GiB on paper, nothing on disk
        handle.truncate(8 * 1024**3)

    for path in (big, huge):
        err, elapsed = timed(lambda path=path: read_config_text(path))
        assert isinstance(err, ConfigError)
        assert f"config file '{path}' is larger than 4 MiB (limit)" in str(err)
        assert elapsed < FAST


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    text = "a: " + "x" * (MAX_CONFIG_BYTES - 4) + "\n"
    path.write_text(text)
    assert len(text.encode()) == MAX_CONFIG_BYTES
    assert read_config_text(path) == text


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX devices")
def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening it to read would block, reading /dev/zero never ends

    for path, fragment in ((Path("/dev/zero"), "is not a regular file"), (fifo, "is not a regular file"),
                           (tmp_path, "is a directory")):
        err, elapsed = timed(lambda path=path: load_yaml_file(path))
        assert isinstance(err, ConfigError), err
        assert f"config file '{path}' {fragment}" in str(err)
        assert elapsed < FAST


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_extends_dev_zero_ends_with_one_line_fast(base: Path, warm_cli: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    Path("zero.yaml").write_text("trainer: {max_epochs: 1}\nextends: /dev/zero\n")

    code, err, elapsed = run_cli(["fit", "--config", "base.yaml", "--config", "zero.yaml"], capsys)

    assert_refused(code, err, "zero.yaml:2: extends: config file '/dev/zero' is not a regular file")
    assert elapsed < FAST
    assert not Path("runs").exists()


@pytest.mark.parametrize("kind", ["alias_bomb", "deep_flow", "deep_block"])
def test_the_command_refuses_each_limit_fast(kind: str, base: Path, warm_cli: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    text, fragment = TEXT_LIMITS[kind]
    Path("bad.yaml").write_text(text)

    code, err, elapsed = run_cli(["fit", "--config", "base.yaml", "--config", "bad.yaml"], capsys)

    assert_refused(code, err, "bad.yaml:", fragment)
    assert elapsed < FAST, f"{kind} took {elapsed:.2f}s"


def test_a_config_within_the_limits_still_loads() -> None:
    text = "a: &a {x: 1}\nb: *a\nc: " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1) + "\n"
    layer = load_yaml_text(text, "ok.yaml")
    assert layer.data["b"] == {"x": 1}
    assert layer.sources[("b", "x")] == "ok.yaml:1"


# --- load_yaml_value -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("true", True), ("abc", "abc"), ("", None), ("[a, b]", ["a", "b"]),
    ("{csv: {}, tensorboard: null}", {"csv": {}, "tensorboard": None}), ("- x\n- y\n", ["x", "y"]),
])
def test_load_yaml_value_reads_any_value(text: str, value: object) -> None:
    assert load_yaml_value(text, "flag --x") == value


def test_load_yaml_value_refuses_duplicates_tags_and_bad_syntax() -> None:
    with pytest.raises(ConfigError, match=r"^values\.yaml:2: duplicate key 'a' \(first at line 1\)"):
        load_yaml_value("a: 1\na: 2\n", "values.yaml")
    with pytest.raises(ConfigError, match=r"YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not"):
        load_yaml_value("!!python/object/apply:os.system [echo]", "flag --model")
    with pytest.raises(YAMLSyntaxError) as caught:
        load_yaml_value("[a,", "flag --x")
    assert isinstance(caught.value, ConfigError)
    assert caught.value.location == ":1:4"
    assert "expected the node content" in caught.value.problem


def test_load_yaml_text_still_requires_a_mapping() -> None:
    with pytest.raises(ConfigError, match="the top level must be a mapping of keys to values, not list"):
        load_yaml_text("[a, b]", "list.yaml")


# --- flag and environment values ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["[csv,", "{csv: {}", "  [a, b", "{a: [1, 2}"])
def test_malformed_flow_values_are_errors_naming_the_flag(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_flag_value(text, "flag --experiment.loggers")
    message = str(caught.value)
    assert message.startswith(f"flag --experiment.loggers: {text!r} is not a valid YAML list or mapping (")
    assert "at line 1, column" in message
    assert "quote the whole value to pass it as text" in message


@pytest.mark.parametrize(("text", "value"), [
    ("abc", "abc"), ("a: b c", {"a": "b c"}), ("a: b: c", "a: b: c"), ("*star", "*star"), ("3", 3),
    ("'[quoted'", "[quoted"), ("val/loss", "val/loss"),
])
def test_plain_text_that_is_not_yaml_stays_a_string(text: str, value: object) -> None:
    assert parse_flag_value(text, "flag --x") == value


def test_duplicate_keys_in_a_flag_mapping_are_refused(base: Path, warm_cli: None,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"^flag --experiment\.loggers:1: duplicate key 'csv'"):
        parse_flag_value("{csv: {}, csv: {}}", "flag --experiment.loggers")

    code, err, _ = run_cli(["fit", "--config", "base.yaml", "--experiment.callbacks",
                            "{throughput: {}, throughput: null}"], capsys)
    assert_refused(code, err, "flag --experiment.callbacks:1: duplicate key 'throughput'")

    code, err, _ = run_cli(["config", "explain", "--config", "base.yaml", "--trainer.plugins", "{a: 1, a: 2}"],
                           capsys)
    assert_refused(code, err, "flag --trainer.plugins:1: duplicate key 'a'")


def test_malformed_flag_yaml_through_the_command(base: Path, warm_cli: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_cli(["fit", "--config", "base.yaml", "--experiment.loggers", "[csv,"], capsys)

    line = assert_refused(code, err, "flag --experiment.loggers: '[csv,' is not a valid YAML list or mapping")
    assert "valid dictionary" not in line


def test_environment_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^environment variable ENHTRAIN_EXPERIMENT__TAGS: '\[a,' is not"):
        compose([], environ={"ENHTRAIN_EXPERIMENT__TAGS": "[a,"})
    with pytest.raises(ConfigError, match=r"^environment variable ENHTRAIN_EXPERIMENT__LOGGERS:1: duplicate key"):
        compose([], environ={"ENHTRAIN_EXPERIMENT__LOGGERS": "{csv: {}, csv: {}}"})


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("ENHTRAIN_TRAINER", "5", "environment variable ENHTRAIN_TRAINER: 'trainer' must be a mapping of options, "
                              "got 5; set a key below it, such as ENHTRAIN_TRAINER__MAX_EPOCHS=5"),
    ("ENHTRAIN_TRAINER", "[1, 2]", "'trainer' must be a mapping of options, got [1, 2]"),
    ("ENHTRAIN_TRAINER", "", "'trainer' must be a mapping of options, got null"),
    ("ENHTRAIN_MODEL", "5", "environment variable ENHTRAIN_MODEL: 'model' must be a class name or a mapping"),
    ("ENHTRAIN_DATA", "true", "such as ENHTRAIN_DATA__CLASS_PATH=enhtrain.data.DatasetDataModule"),
])
def test_a_section_set_to_a_single_value_names_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose([], environ={name: value})
    assert expected in str(caught.value)
    assert "plugin" not in str(caught.value)


def test_a_class_name_is_still_accepted_for_model_and_data() -> None:
    composed = compose([], environ={"ENHTRAIN_MODEL": "MLPClassifier", "ENHTRAIN_DATA": "DatasetDataModule"})
    assert composed.data["model"] == "MLPClassifier"


def test_the_builtin_checks_ignore_sections_that_are_not_mappings() -> None:
    enhtrain_validate_config({"trainer": 5, "model": "MLPClassifier", "data": [1]})


def test_trainer_scalar_through_the_command(base: Path, warm_cli: None, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENHTRAIN_TRAINER", "5")

    code, err, _ = run_cli(["fit", "--config", "base.yaml"], capsys)

    line = assert_refused(code, err, "environment variable ENHTRAIN_TRAINER: 'trainer' must be a mapping")
    assert "fix that plugin" not in line


# --- ENHTRAIN_ENV and --env ----------------------------------------------------------------------------------


def test_env_variable_with_a_newline_is_one_line_naming_it(base: Path, warm_cli: None,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENHTRAIN_ENV", "dev\nprod")

    code, err, _ = run_cli(["fit", "--config", "base.yaml"], capsys)

    assert_refused(code, err, "environment variable ENHTRAIN_ENV: 'dev\\nprod' contains a control character")
    assert len(err.strip().splitlines()) == 1, err


def test_env_flag_with_a_newline_is_one_line_naming_it(base: Path, warm_cli: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_cli(["fit", "--config", "base.yaml", "--env", "dev\nprod"], capsys)

    assert_refused(code, err, "--env: 'dev\\nprod' contains a control character")
    assert len(err.strip().splitlines()) == 1, err


# --- --config values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "inline"), [
    ("[a, b]", True), ("- x", True), ("{trainer: {max_epochs: 3}}", True), ("trainer: {max_epochs: 3}", True),
    ("trainer:\n  max_epochs: 3\n", True), ("configs/missing.yaml", False), ("base.yaml", False),
])
def test_looks_inline(value: str, inline: bool, base: Path) -> None:
    assert _looks_inline(value) is inline


@pytest.mark.parametrize("value", ["[a, b]", "- x", "- x\n- y\n"])
def test_an_inline_list_given_to_config_says_what_config_takes(value: str, base: Path, warm_cli: None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_cli(["fit", "--config", "base.yaml", "--config", value], capsys)

    line = assert_refused(code, err, "no such file, and as inline YAML it is a list",
                          "--config takes a YAML file or an inline YAML mapping")
    assert "not found" not in line


def test_an_inline_mapping_still_works() -> None:
    text = "{trainer: {max_epochs: 3}}"
    composed = compose([text], environ={}, inline_configs=[(0, text)])
    assert composed.data["trainer"] == {"max_epochs": 3}
    assert composed.sources[("trainer", "max_epochs")] == "--config (inline):1"


# --- extends -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "fragment"), [
    ("missing.yaml", "top.yaml:2: extends: config file '{dir}/missing.yaml' not found"),
    ("sub", "top.yaml:2: extends: config file '{dir}/sub' is a directory"),
    ("bad.yaml", "top.yaml:2: extends: {dir}/bad.yaml:2:1: expected ',' or ']'"),
    ("bomb.yaml", "top.yaml:2: extends: {dir}/bomb.yaml:"),
    ('""', "top.yaml:2: extends: an entry is empty; give the name of a YAML file"),
    ("top.yaml", "top.yaml: 'extends' cycle:"),
])
def test_every_extends_error_names_the_extending_file_and_line(entry: str, fragment: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    top = tmp_path / "top.yaml"
    top.write_text(f"trainer: {{max_epochs: 1}}\nextends: {entry}\n")

    with pytest.raises(ConfigError) as caught:
        load_with_extends(top)

    assert fragment.replace("{dir}", str(tmp_path)).replace("top.yaml", str(top), 1) in str(caught.value)
    assert "is a directory" not in str(caught.value) or entry == "sub"


def test_an_extends_cycle_names_the_entry_that_closes_it(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("x: 1\nextends: [a.yaml]\n")

    with pytest.raises(ConfigError) as caught:
        load_with_extends(tmp_path / "a.yaml")

    assert str(caught.value).startswith(f"{tmp_path / 'b.yaml'}: 'extends' cycle: ")
    assert f"remove the extends entry 'a.yaml' at {tmp_path / 'b.yaml'}:2" in str(caught.value)


# --- required arguments --------------------------------------------------------------------------------------

_REQUIRED_BY_CLASS = """Parser key "trainer.callbacks":
  Does not validate against any of the Union subtypes
  Subtypes: [list[lightning.pytorch.callbacks.callback.Callback], <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'lightning.pytorch.callbacks.EarlyStopping':
        the following arguments are required: monitor
    - Expected a <class 'NoneType'>
  Given value type: <class 'list'>
  Given value: [Namespace(class_path='lightning.pytorch.callbacks.EarlyStopping')]"""


def _composed(sources: dict[tuple[str, ...], str]) -> ComposedConfig:
    return ComposedConfig({}, sources)


def test_a_missing_init_arg_names_the_argument_and_where_the_class_was_chosen() -> None:
    composed = _composed({("trainer", "max_epochs"): "base.yaml:4", ("trainer", "callbacks"): "cb.yaml:3"})

    message = describe_parser_error(_REQUIRED_BY_CLASS, composed)

    assert message == (
        "cb.yaml:3: trainer.callbacks: lightning.pytorch.callbacks.EarlyStopping requires init_args 'monitor', "
        "which is not set; add it under trainer.callbacks.init_args"
    )


def test_a_missing_init_arg_does_not_blame_a_sibling_key() -> None:
    composed = _composed({("trainer", "max_epochs"): "base.yaml:4"})

    from_flag = describe_parser_error(_REQUIRED_BY_CLASS, composed, ["--trainer.callbacks+=EarlyStopping"])
    unset = describe_parser_error(_REQUIRED_BY_CLASS, composed)

    assert from_flag.startswith("flag --trainer.callbacks: trainer.callbacks: ")
    assert unset.startswith("config: trainer.callbacks: ")
    assert "base.yaml" not in from_flag + unset
    assert "give the full import path" not in from_flag + unset


def test_a_missing_section_says_it_is_required() -> None:
    composed = _composed({("trainer", "max_epochs"): "base.yaml:3", ("model",): "none.yaml:1"})

    message = describe_parser_error("the following arguments are required: fit.model", composed)

    assert message == (
        "none.yaml:1: model: required, but not set (it is missing or null); set it in a config or with --model"
    )


def test_a_null_required_value_is_not_an_invalid_value() -> None:
    text = """Parser key "model":
  Problem with given class_path 'my.Model':
    Parser key "dims":
      Expected a <class 'list'>. Got value: None"""
    composed = _composed({("trainer", "max_epochs"): "base.yaml:3", ("model", "init_args", "dims"): "m.yaml:4"})

    message = describe_parser_error(text, composed)

    assert message == "m.yaml:4: model.init_args.dims: required, but null: give a list for my.Model"


def test_a_missing_required_init_arg_through_the_command(base: Path, warm_cli: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    Path("sched.yaml").write_text("lr_scheduler:\n  class_path: torch.optim.lr_scheduler.StepLR\n")

    code, err, _ = run_cli(["fit", "--config", "base.yaml", "--config", "sched.yaml"], capsys)

    line = assert_refused(code, err, "sched.yaml:2: lr_scheduler: torch.optim.lr_scheduler.StepLR requires "
                                     "init_args 'step_size', which is not set")
    assert "Expected a" not in line and "base.yaml" not in line


# --- checkpoints that cannot be read -------------------------------------------------------------------------


_CHECKPOINT = {"state_dict": {"w": torch.zeros(8, 64)}, "pytorch-lightning_version": "2.6.0"}
UNREADABLE: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "the file is empty"),
    "random_bytes": (lambda: random.Random(2).randbytes(4096),
                     "not a PyTorch checkpoint: it is neither a zip archive nor a pickle"),
    "text": (lambda: b"hello world\n", "not a PyTorch checkpoint: it is neither a zip archive nor a pickle"),
    "truncated_zip": (lambda: torch_bytes(_CHECKPOINT)[:900],
                      "the file ends early: it stops before the last record of its zip archive"),
    "truncated_pickle": (lambda: pickle.dumps({"a": [1, 2, 3]})[:10],
                         "the file ends early: it stops in the middle of its pickle data"),
    "zip_not_a_checkpoint": (zip_bytes, "not a PyTorch checkpoint: a zip archive without the data.pkl record"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_an_unreadable_checkpoint_says_what_is_wrong_in_words(kind: str, tmp_path: Path) -> None:
    make, reason = UNREADABLE[kind]
    path = tmp_path / f"{kind}.ckpt"
    path.write_bytes(make())

    with pytest.raises(CheckpointError) as caught:
        safe_load(path)

    message = str(caught.value)
    assert message.startswith(f"checkpoint '{path}' is truncated or corrupt: {reason}")
    assert message.endswith("; use another checkpoint")
    for raw in ("pop from empty list", "(101)", "()", "miniz", "PytorchStreamReader", "weights_only"):
        assert raw not in message


def test_what_enhtrain_dumps_reads_back_the_same_here_and_in_jsonargparse() -> None:
    from jsonargparse._loaders_dumpers import yaml_load

    from enhtrain.documents import dump_yaml, parse_yaml

    data = {"exponent": "1e3", "signed": "-2E-5", "dot": ".5", "date": "2024-01-01", "digits": "007",
            "underscored": "1_000", "word": "yes", "floats": [1e-05, 1000.0, float("inf")], "int": 3, "none": None}
    text = dump_yaml(data)
    assert list(yaml.safe_load(text)) == list(data)  # the order is the data's
    assert parse_yaml(text, "dumped") == data
    assert yaml_load(text) == data
