"""A sweep's store is untrusted input: a damaged or hostile study is refused in one line and runs nothing.

Each case starts from a real embedded store made by enhtrain's own code (a study with one complete trial, no
training) and damages it through Optuna's API or SQLite, as whoever can write a shared study could. Then
``sweep show``, ``sweep best``, ``sweep plots`` and ``sweep worker`` must each end with exit status 2, one
``enhtrain: error:`` line, no traceback, and no file created or changed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from enhtrain.commands import main
from enhtrain.testing import write_tiny_config
from refusals import assert_refused
from test_bad_inputs import snapshot

NAME = "store"


def _make_store(project: Path) -> None:
    """A sweep's embedded store as ``sweep run`` leaves it, with one complete trial, made without training."""
    from enhtrain.config.arguments import prepare_arguments
    from enhtrain.sweeps.spec import check_spec
    from enhtrain.sweeps.study import create_or_continue, embedded_url, sweep_dir

    write_tiny_config(project / "tiny.yaml")
    prepared = prepare_arguments(["fit", "--config", str(project / "tiny.yaml")], force=True)
    assert prepared is not None
    base = prepared.composed.data
    spec = check_spec({"name": NAME, "metric": "val/acc", "trials": 3, "sampler": {"name": "random", "seed": 0},
                       "params": {"model.init_args.lr": {"float": [1.0e-4, 1.0e-1], "log": True},
                                  "model.init_args.hidden_dims": {"choice": [[8], [16]]}}}, lambda keys: "spec")
    directory = sweep_dir(project / "runs", NAME)
    directory.mkdir(parents=True)
    sweep = create_or_continue(spec, base, [], embedded_url(directory), directory,
                               command=["enhtrain", "sweep", "run"], spec_file="spec.yaml")
    trial = sweep.study.ask({p.key: p.distribution() for p in sweep.params})
    trial.report(0.5, 0)
    sweep.study.tell(trial, 0.6)
    sweep.storage.engine.dispose()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("store-project")
    with contextlib.chdir(project):
        _make_store(project)
    return project


def _record(study: Any) -> dict[str, Any]:
    return dict(study.user_attrs["enhtrain"])


def _set_record(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def damage(database: Path) -> None:
        storage = optuna.storages.RDBStorage(f"sqlite:///{database}")
        study = optuna.load_study(study_name=NAME, storage=storage)
        study.set_user_attr("enhtrain", change(_record(study)))
        storage.engine.dispose()

    return damage


def _spec(**changes: Any) -> Callable[[Path], None]:
    return _set_record(lambda r: {**r, "spec": {**r["spec"], **changes}})


def _base(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(record: dict[str, Any]) -> dict[str, Any]:
        base = yaml.safe_load(record["base"])
        change(base)
        return {**record, "base": yaml.safe_dump(base)}

    return _set_record(edit)


def _sql(statement: str, *args: Any) -> Callable[[Path], None]:
    def damage(database: Path) -> None:
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute(statement, args)
            connection.commit()

    return damage


def _without_metric(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "spec": {k: v for k, v in record["spec"].items() if k != "metric"}}


_RECORD = "UPDATE study_user_attributes SET value_json = ? WHERE key = 'enhtrain'"

CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "record_missing": (_sql("DELETE FROM study_user_attributes WHERE key = 'enhtrain'"),
                       "was not made by `enhtrain sweep run`"),
    "record_scalar": (_set_record(lambda r: 5), "the sweep's record has no 'spec' mapping"),
    "spec_scalar": (_set_record(lambda r: {**r, "spec": "lr"}), "the sweep's record has no 'spec' mapping"),
    "field_missing": (_set_record(_without_metric), "sweep.metric: 'metric' is missing"),
    "deep_nesting": (_sql(_RECORD, "[" * 5000 + "]" * 5000), "nested more than 100 levels deep"),
    "record_too_large": (_sql(_RECORD, json.dumps({"pad": "x" * (5 * 1024 * 1024)})), "bytes (limit)"),
    "yaml_tag": (_set_record(lambda r: {**r, "base": "!!python/object/apply:os.system ['touch pwned']"}),
                 "base config"),
    "base_scalar": (_set_record(lambda r: {**r, "base": "5"}), "base config: not a mapping"),
    "empty_range": (_spec(params={"model.init_args.lr": {"float": [0.1, 0.01]}}), "empty range [0.1, 0.01]"),
    "huge_range": (_spec(params={"model.init_args.lr": {"float": [-1.0e308, 1.0e308]}}), "too wide to sample"),
    "huge_grid": (_spec(sampler="grid", params={"data.init_args.batch_size": {"int": [1, 10**12]}}),
                  "the grid has over 100000 points"),
    "trials_huge": (_spec(trials=10**30), "sweep.trials: Input should be less than or equal to 100000"),
    "heartbeat_huge": (_spec(heartbeat_interval=10**20), "sweep.heartbeat_interval"),
    "reserved_section": (_spec(params={"experiment": {"choice": [{"root_dir": "/elsewhere"}]}}),
                         "it holds 'experiment.name', which the sweep sets on every trial"),
    "stored_trust_flag": (_set_record(lambda r: {**r, "trial_flags": ["--trust_checkpoint"]}), "--trust_checkpoint"),
    "stored_allow_module": (_set_record(lambda r: {**r, "trial_flags": ["--allow_module", "os"]}),
                            "--allow_module"),
    "stored_unknown_flag": (_set_record(lambda r: {**r, "trial_flags": ["--ckpt_path=evil.ckpt"]}),
                            "the store sets the trial flag '--ckpt_path'"),
    "base_trusts_checkpoints": (_base(lambda b: b["experiment"].update(trust_checkpoint=True)),
                                "experiment.trust_checkpoint"),
    "base_imports_os": (_base(lambda b: b.update(model={"class_path": "os.system"})),
                        "model.class_path: 'os.system' would import the module 'os'"),
    "distribution_broken": (_sql("UPDATE trial_params SET distribution_json = '{'"), "cannot read its trials"),
}
CASES = {"deep_nesting": CASES.pop("deep_nesting"), "base_imports_os": CASES.pop("base_imports_os"), **CASES}


COMMANDS = {"show": ["sweep", "show", NAME], "best": ["sweep", "best", NAME, "--print_config"],
            "plots": ["sweep", "plots", NAME], "worker": ["sweep", "worker", NAME]}
# Every command meets every kind of damage through the same checks; each case runs one command in turn (the
# first cases run all four), so that the module stays fast.
RUNS = [(case, action) for index, case in enumerate(CASES)
        for action in (list(COMMANDS) if index < 2 else [list(COMMANDS)[index % len(COMMANDS)]])]
RUNS += [("distribution_broken", action) for action in ("show", "best", "plots")
         if ("distribution_broken", action) not in RUNS]


@pytest.mark.parametrize(("case", "action"), RUNS, ids=[f"{c}-{a}" for c, a in RUNS])
def test_a_damaged_store_is_one_line_in_every_command(case: str, action: str, pristine: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    damage, fragment = CASES[case]
    damage(project / "runs" / NAME / "study.db")
    monkeypatch.chdir(project)
    before = snapshot(project)

    code = main(COMMANDS[action])

    line = assert_refused(code, capsys.readouterr().err, fragment)
    assert snapshot(project) == before, f"sweep {action} changed a file: {line}"
    assert not (project / "pwned").exists()


def test_the_pristine_store_is_read(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    monkeypatch.chdir(project)
    assert main(["sweep", "show", NAME]) == 0
    out = capsys.readouterr().out
    assert f"sweep {NAME} (sqlite:///" in out and "1 complete" in out
    assert main(["sweep", "best", NAME, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 0.6


def test_a_worker_refuses_a_store_that_sends_trials_elsewhere(pristine: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    elsewhere = tmp_path / "elsewhere"
    _base(lambda b: b["experiment"].update(root_dir=str(elsewhere)))(project / "runs" / NAME / "study.db")
    monkeypatch.chdir(project)
    before = snapshot(project)
    code = main(["sweep", "worker", NAME])
    assert_refused(code, capsys.readouterr().err, f"its trials run in '{elsewhere}'", f"give --root {elsewhere}")
    assert snapshot(project) == before and not elsewhere.exists()


def test_a_secret_in_the_stored_spec_is_refused(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    token = "tok_store_8d1e55aa"
    _spec(params={"model.init_args.lr": {"float": [1.0e-4, 1.0e-1]},
                  "data.init_args.dataset": {"choice": ["digits", token]}})(project / "runs" / NAME / "study.db")
    monkeypatch.chdir(project)
    monkeypatch.setenv("MY_SERVICE_TOKEN", token)
    for action in ("show", "worker"):
        code = main(["sweep", action, NAME])
        out, err = capsys.readouterr()
        assert_refused(code, err, "holds a secret")
        assert token not in out + err


def test_show_with_a_newline_in_the_name_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for action in ("show", "best", "plots", "worker"):
        code = main(["sweep", action, "two\nlines"])
        assert_refused(code, capsys.readouterr().err, "sweep name 'two\\nlines'")
    assert list(tmp_path.iterdir()) == []


def test_storage_urls_are_masked_in_both_forms() -> None:
    from enhtrain.sweeps.study import mask_text, mask_url

    assert mask_url("postgresql://me:pa:ss@db/x") == "postgresql://me:***@db/x"
    assert mask_url("postgresql://me@db/x?sslmode=require&password=pa55") == \
        "postgresql://me@db/x?sslmode=require&password=***"
    assert mask_url("--storage=mysql://u:p%40w@h/d") == "--storage=mysql://u:***@h/d"
    url = "postgresql://me:s3cr%21t@db/x"
    assert "s3cr" not in mask_text("password 's3cr!t' refused for postgresql://me:s3cr%21t@db/x", url)


def test_the_stored_command_and_flags_hold_no_password_and_no_loosening_switch(pristine: Path,
                                                                             tmp_path: Path) -> None:
    from enhtrain.sweeps.study import create_or_continue, open_sweep

    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    url = f"sqlite:///{project / 'runs' / NAME / 'study.db'}"
    with contextlib.chdir(project):
        sweep = open_sweep(NAME, url, for_work=False, root=str(project / "runs"))
        sweep.storage.engine.dispose()
        other = sweep.spec.model_copy(update={"name": "masked"})
        created = create_or_continue(other, sweep.base, ["--safe", "--allow_module", "mine"], url,
                                     project / "runs" / "masked", spec_file="spec.yaml",
                                     command=["enhtrain", "sweep", "run", "--storage",
                                              "postgresql://u:hunter2x@h/d?password=hunter2x"])
    record = created.study.user_attrs["enhtrain"]
    created.storage.engine.dispose()
    assert "hunter2x" not in json.dumps(record)
    assert record["trial_flags"] == ["--safe"]


def test_a_spec_is_bounded_without_building_its_grid() -> None:
    from enhtrain.sweeps.spec import MAX_GRID_POINTS, grid_size, parse_param

    huge = parse_param("data.init_args.batch_size", {"int": [1, 10**12]})
    tiny_step = parse_param("model.init_args.lr", {"float": [0, 1], "step": 1.0e-300})
    assert huge.grid_count() == 10**12 and grid_size([huge]) == MAX_GRID_POINTS + 1
    assert tiny_step.grid_count() == MAX_GRID_POINTS + 1
    with pytest.raises(ValueError, match="over the limit"):
        tiny_step.grid()
    with pytest.raises(ValueError, match="choice lists 10001 values, over the limit of 10000"):
        parse_param("seed_everything", {"choice": list(range(10001))})


def test_a_worker_takes_its_trial_flags_from_its_own_command_line_only() -> None:
    from enhtrain.sweeps.stored import stored_flags, worker_flags

    flags, rest = worker_flags(["lr", "--safe", "--allow_module", "mine", "--workers", "2", "--allow_module=theirs"])
    assert flags == ["--safe", "--allow_module", "mine", "--allow_module=theirs"]
    assert rest == ["lr", "--workers", "2"]
    assert stored_flags(["--safe", "--allow_module", "mine", "--trust_checkpoint"]) == ["--safe"]


def test_a_sampled_section_is_checked_as_fit_checks_a_config_before_its_trial_starts(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    evil = {"class_path": "os.system", "init_args": {"command": "touch pwned"}}
    database = project / "runs" / NAME / "study.db"
    _spec(params={"model": {"choice": [evil]}})(database)
    _sql("UPDATE trials SET state = 'FAIL'")(database)  # no finished trial: a joining worker still keeps the study
    monkeypatch.chdir(project)

    code = main(["sweep", "worker", NAME])

    out, err = capsys.readouterr()
    line = assert_refused(code, err, "its config was refused: ",
                          "model.class_path: 'os.system' would import the module 'os'")
    assert "sweep trial 1: " in line and " started:" not in out
    assert not (project / "pwned").exists() and not list((project / "runs" / NAME).glob("trial_*"))
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT study_name FROM studies").fetchall() == [(NAME,)]
