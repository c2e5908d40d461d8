"""The trust rule, the rank-join rule and the folders of user components.

A switch that loosens a check comes only from the person's own flag or shell variable; a process of another
rank joins only a run that a live rank 0 of its launch holds; a component given under ``trainer.*`` writes only
inside the run. The bad-input corpus (cases 300 and up) covers every layer a switch could be set in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enhtrain.commands import main
from enhtrain.config.arguments import prepare_arguments, split_arguments
from enhtrain.errors import ConfigError
from enhtrain.trust import LOOSENING_SWITCHES, check_config_switches, check_flag_switches
from refusals import assert_refused

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
REPO = Path(__file__).resolve().parent.parent
EVIL = CORPUS / "configs" / "_support" / "evil.ckpt"  # unpickled, it runs `touch pwned` in the working directory

CALLBACK = '''
from lightning.pytorch.callbacks import Callback


class Marker(Callback):
    """A callback from a package outside safe mode's own list."""
'''


def snapshot(root: Path) -> dict[str, bytes]:
    """The content of every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the corpus's tiny ``base.yaml`` and a config that tries to trust checkpoints."""
    shutil.copy(CORPUS / "base.yaml", tmp_path / "base.yaml")
    (tmp_path / "trusting.yaml").write_text("experiment:\n  trust_checkpoint: true\n")
    for name in ("ENHTRAIN_TRUST_CHECKPOINT", "ENHTRAIN_SAFE_CONFIG", "ENHTRAIN_ALLOWED_MODULES", "ENHTRAIN_RUN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", [["config", "validate"], ["config", "explain"], ["fit"]])
def test_a_config_cannot_trust_a_checkpoint(command: list[str], workdir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*command, "--config", "base.yaml", "--config", "trusting.yaml", "--ckpt_path", str(EVIL)])

    assert_refused(code, capsys.readouterr().err, "trusting.yaml:2: experiment.trust_checkpoint",
                   "--trust_checkpoint", "ENHTRAIN_TRUST_CHECKPOINT")
    assert not (workdir / "pwned").exists()
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("command", [["config", "validate"], ["config", "explain"]])
def test_checks_refuse_trust_in_safe_mode(command: list[str], workdir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*command, "--config", "base.yaml", "--safe", "--trust_checkpoint"])

    assert_refused(code, capsys.readouterr().err, "flag --trust_checkpoint and flag --safe")


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_the_persons_own_switch_trusts_a_checkpoint(how: str, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Untrusted, the same file is refused unread (tests/test_bad_inputs.py::test_broken_checkpoint).
    args = ["fit", "--config", "base.yaml", "--ckpt_path", str(EVIL)]
    if how == "flag":
        args.append("--trust_checkpoint")
    else:
        monkeypatch.setenv("ENHTRAIN_TRUST_CHECKPOINT", "1")
    code = main(args)

    # Trusted, the pickle is loaded (and runs its code): the person asked for it. Only then is it found not to be
    # a PyTorch checkpoint.
    assert (workdir / "pwned").exists()
    assert_refused(code, capsys.readouterr().err, "truncated or corrupt")
    assert not (workdir / "runs").exists()


def test_a_switch_set_off_in_a_saved_config_is_ignored(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "saved.yaml").write_text("experiment:\n  trust_checkpoint: false\n")

    assert main(["config", "explain", "--config", "base.yaml", "--config", "saved.yaml"]) == 0, capsys.readouterr()
    assert "trust_checkpoint" not in capsys.readouterr().out


def test_switches_in_arguments_from_a_store_are_refused() -> None:
    for switch in LOOSENING_SWITCHES:
        with pytest.raises(ConfigError, match=f"^study 's': {switch.flag}: .*{switch.variable}"):
            check_flag_switches(["--config", "x.yaml", f"{switch.flag}=x"], "study 's'")
    check_flag_switches(["--safe", "--experiment.name", "x"], "study 's'")
    data = {"experiment": {"trust_checkpoint": "yes"}}
    with pytest.raises(ConfigError, match=r"^store: experiment\.trust_checkpoint: a switch"):
        check_config_switches(data, lambda path: "store")


def test_every_switch_has_its_flag_and_is_documented() -> None:
    split = split_arguments(["fit", "--trust_checkpoint", "--allow_module", "a,b", "--allow_module=c"])
    assert (split.trust_checkpoint, split.allowed_modules, split.rest) == (True, ["a", "b", "c"], [])
    page = (REPO / "docs" / "guides" / "security.md").read_text(encoding="utf-8")
    variables = (REPO / "docs" / "reference" / "environment-variables.md").read_text(encoding="utf-8")
    rule = page.split("## The trust rule", 1)[1].split("\n## ", 1)[0]
    for switch in LOOSENING_SWITCHES:
        assert f"`{switch.flag}" in rule and f"`{switch.variable}=" in rule, switch
        assert f"`{switch.variable}=" in variables, switch


@pytest.fixture
def outside_package(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``trustpkg`` on ``sys.path`` with a callback, and a config that uses it."""
    package = workdir / "site" / "trustpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(CALLBACK)
    monkeypatch.syspath_prepend(str(workdir / "site"))
    (workdir / "uses.yaml").write_text("trainer:\n  callbacks:\n    - class_path: trustpkg.Marker\n")
    return package


def test_allowed_modules_variable_opens_safe_mode(workdir: Path, outside_package: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", "base.yaml", "--config", "uses.yaml", "--safe"]
    refused = r"uses\.yaml:3: .*not allowed in safe mode.*ENHTRAIN_ALLOWED_MODULES=trustpkg"
    with pytest.raises(ConfigError, match=refused):
        prepare_arguments(["fit", *args], force=True)

    monkeypatch.setenv("ENHTRAIN_ALLOWED_MODULES", "trustpkg")
    assert main(["config", "validate", *args]) == 0, capsys.readouterr().err
    assert main(["fit", *args]) == 0, capsys.readouterr().err[-3000:]
    assert (workdir / "runs" / "corpus" / "version_0" / "metadata.json").is_file()


@pytest.fixture
def finished_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A finished run of the ``corpus`` experiment."""
    assert main(["fit", "--config", "base.yaml"]) == 0, capsys.readouterr().err[-3000:]
    capsys.readouterr()
    return workdir / "runs" / "corpus" / "version_0"


def test_another_rank_cannot_join_a_finished_run(workdir: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(workdir / "runs")
    env = {**os.environ, "LOCAL_RANK": "1", "ENHTRAIN_RUN_DIR": str(finished_run)}
    proc = subprocess.run([sys.executable, "-m", "enhtrain", "fit", "--config", "base.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300, check=False)

    assert_refused(proc.returncode, proc.stderr, "rank 1 may join only a run directory that a live rank 0",
                   str(finished_run), "ENHTRAIN_RUN_DIR")
    assert snapshot(workdir / "runs") == before

    # A token that is not the one in the lock does not help either, and RANK says the same as LOCAL_RANK.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("ENHTRAIN_RUN_DIR", str(finished_run))
    monkeypatch.setenv("ENHTRAIN_RUN_TOKEN", "guessed")
    assert_refused(main(["fit", "--config", "base.yaml"]), capsys.readouterr().err, "rank 1 may join only")
    assert snapshot(workdir / "runs") == before


def test_user_component_folder_outside_the_run_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", "base.yaml", "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.dirpath=elsewhere"]
    assert_refused(main(["config", "validate", *args]), capsys.readouterr().err,
                   "flag --trainer.callbacks.dirpath: trainer.callbacks.0.init_args.dirpath: 'elsewhere' lies outside",
                   "leave dirpath out")

    inside = ["--experiment.version", "v1", "--trainer.callbacks.dirpath=runs/corpus/v1/mine"]
    assert main(["config", "validate", *args[:3], *inside]) == 0, capsys.readouterr().err
    assert not (workdir / "runs").exists()
