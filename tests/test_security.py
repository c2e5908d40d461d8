"""Hostile configs: dangerous class paths are refused before their module is imported; safe mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from enhtrain.commands import main
from enhtrain.config.compose import ComposedConfig
from enhtrain.errors import ConfigError
from enhtrain.security import ImportPolicy, check_class_paths, iter_class_paths

BASE = """\
trainer: {max_epochs: 1, limit_train_batches: 2, limit_val_batches: 1, accelerator: cpu}
model:
  class_path: enhtrain.models.MLPClassifier
  init_args: {hidden_dims: [8]}
data:
  class_path: enhtrain.data.DatasetDataModule
  init_args: {dataset: digits, batch_size: 32}
"""

# Modules nothing else in an enhtrain run imports, so their absence from sys.modules is meaningful.
CASES = [
    ("model:\n  class_path: ftplib.FTP\n", [], "ftplib"),
    ("trainer:\n  callbacks:\n    - class_path: webbrowser.open\n", [], "webbrowser"),
    ("trainer:\n  logger: {class_path: smtplib.SMTP, init_args: {host: x}}\n", [], "smtplib"),
    ("{}\n", ["--trainer.callbacks+", "pty.spawn"], "pty"),
    ("{}\n", ["--model.class_path", "ftplib.FTP"], "ftplib"),
    ("{}\n", ["--data", "webbrowser.Chrome"], "webbrowser"),
    # Forms that used to slip past the flag check, and the reference data module's dataset.
    ("{}\n", ["--model.class_path", "this.Model"], "this"),
    ("{}\n", ["--model", "{class_path: ftplib.FTP}"], "ftplib"),
    ("{}\n", ["--trainer.callbacks", " [{class_path: imaplib.IMAP4}]"], "imaplib"),
    ("{}\n", ["--model", "evil_model.yaml"], "nntplib"),
    ("data:\n  init_args: {dataset: poplib.POP3}\n", ["--safe"], "poplib"),
    ("{}\n", ["--data.init_args.dataset", "mailbox.Maildir"], "mailbox"),
]

PROBE = """
import contextlib, io, json, sys
from enhtrain.commands import main
results = []
for index, (text, flags, module) in enumerate(json.loads(sys.argv[1])):
    path = f"evil{index}.yaml"
    open(path, "w").write(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["fit", "--config", "base.yaml", "--config", path, *flags])
    results.append({"code": code, "err": err.getvalue(), "loaded": module in sys.modules})
print(json.dumps(results))
"""


def test_dangerous_modules_are_never_imported(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "evil_model.yaml").write_text("class_path: nntplib.NNTP\ninit_args: {host: localhost}\n")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(CASES)], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (_, _, module), result in zip(CASES, results, strict=True):
        assert result["code"] == 2, result
        assert not result["loaded"], module
        assert f"would import the module '{module}'" in result["err"]
        assert "Traceback" not in result["err"]
    assert "Zen of Python" not in proc.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("module", ["os", "subprocess", "builtins", "importlib", "pickle", "shutil", "socket", "sys"])
def test_deny_list_covers_the_classics(module: str) -> None:
    composed = ComposedConfig({"model": {"class_path": f"{module}.anything"}}, {("model", "class_path"): "c.yaml:3"})
    with pytest.raises(ConfigError, match=rf"c\.yaml:3: model\.class_path: .*'{module}'"):
        check_class_paths(composed)


def test_nested_class_paths_are_found() -> None:
    config = {
        "model": {"class_path": "a.B", "init_args": {"encoder": {"class_path": "c.D"}}},
        "trainer": {"callbacks": ["e.F", {"class_path": "g.H"}], "logger": "i.J"},
        "optimizer": "torch.optim.Adam",
    }
    found = {v for _, v in iter_class_paths(config)}
    assert found == {"a.B", "c.D", "e.F", "g.H", "i.J", "torch.optim.Adam"}


def test_safe_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    code = main(["fit", "--config", "base.yaml", "--safe", "--trainer.callbacks+", "rich.progress.Progress"])
    assert code == 2
    assert "not allowed in safe mode" in capsys.readouterr().err
    # registered components, torch and lightning are allowed
    args = ["fit", "--config", "base.yaml", "--safe", "--optimizer", "torch.optim.SGD", "--optimizer.lr", "0.1",
            "--trainer.callbacks+", "lightning.pytorch.callbacks.LearningRateMonitor", "--print_config"]
    assert main(args) == 0
    capsys.readouterr()
    monkeypatch.setenv("ENHTRAIN_SAFE_CONFIG", "1")
    assert main(["fit", "--config", "base.yaml", "--model.class_path", "mypkg.Model"]) == 2
    assert "--allow_module mypkg" in capsys.readouterr().err
    monkeypatch.setenv("ENHTRAIN_ALLOWED_MODULES", "mypkg")
    code = main(["fit", "--config", "base.yaml", "--model.class_path", "mypkg.Model"])
    assert code == 2
    assert "not allowed in safe mode" not in capsys.readouterr().err  # it passed the check, then failed to import


def test_python_yaml_tags_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "base.yaml").write_text(BASE + f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["fit", "--config", "base.yaml"]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert not marker.exists()


def test_a_module_name_passes_the_gate_before_it_is_imported() -> None:
    from enhtrain.security import import_named_module

    module = import_named_module("enhtrain.errors", key="preloaded module", where="sweep worker")
    assert module.__name__ == "enhtrain.errors"
    for name in ("os", "subprocess", "json.decoder", "_thread"):
        with pytest.raises(ConfigError, match="sweep worker: preloaded module"):
            import_named_module(name, key="preloaded module", where="sweep worker")
    with pytest.raises(ConfigError):
        import_named_module("numpy", key="k", where="w", policy=ImportPolicy(safe=True))
