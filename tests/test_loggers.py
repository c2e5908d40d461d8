"""Tests of the built-in logger factories: each logger trains a tiny model and its files are read back.

Everything runs offline: the environment points wandb and comet_ml at offline mode and at a private home, and
a socket guard fails any test in which this process tries to reach the network.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from enhtrain.errors import ConfigError
from enhtrain.loggers.comet import CometOfflineLogger, CometOnlineLogger, comet_logger
from enhtrain.loggers.csv import csv_logger
from enhtrain.loggers.tensorboard import tensorboard_logger
from enhtrain.loggers.wandb import wandb_logger
from enhtrain.secrets import MASK

NAME = "digits-mlp"
VERSION = "version_3"
EPOCHS = 2
TRAIN_BATCHES = 4

FAKE_WANDB_KEY = "fakewandbkey0123456789abcdef0123456789abcd"
FAKE_COMET_ENV_KEY = "FakeCometEnvKey0123456789"
FAKE_COMET_OPTION_KEY = "FakeCometOptionKey0123456789"
FAKE_HPARAM_KEY = "fake-hparam-api-key-0123"


class _TinyModule(LightningModule):
    """A linear regression that records every value it logs."""

    def __init__(self, lr: float = 0.1, api_key: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []
        self._val_batch_losses: list[torch.Tensor] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        self.train_losses.append(loss.item())
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._val_batch_losses.append(nn.functional.mse_loss(self.layer(x), y))

    def on_validation_epoch_end(self) -> None:
        loss = torch.stack(self._val_batch_losses).mean()
        self._val_batch_losses.clear()
        self.log("val/loss", loss)
        self.val_losses.append(loss.item())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loaders() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=generator)
    y = torch.randn(24, 1, generator=generator)
    train = TensorDataset(x[:16], y[:16])
    val = TensorDataset(x[16:], y[16:])
    return DataLoader(train, batch_size=16 // TRAIN_BATCHES), DataLoader(val, batch_size=4)


def _fit(
    logger: Logger | list[Logger], root: Path, module: _TinyModule | None = None, **trainer_kwargs: Any
) -> tuple[_TinyModule, Trainer]:
    module = module or _TinyModule()
    options: dict[str, Any] = {
        "default_root_dir": root,
        "max_epochs": EPOCHS,
        "logger": logger,
        "log_every_n_steps": 1,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
    }
    options.update(trainer_kwargs)
    trainer = Trainer(**options)
    train, val = _loaders()
    trainer.fit(module, train, val)
    assert len(module.train_losses) == EPOCHS * TRAIN_BATCHES
    assert len(module.val_losses) == EPOCHS
    return module, trainer


def _run_dir(root: Path) -> Path:
    return root / "runs" / NAME / VERSION


def _log_dir(root: Path, key: str) -> Path:
    return _run_dir(root) / "logs" / key


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def sandbox_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One home for the module: wandb's service process outlives a test and keeps the environment it started
    # with.
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, sandbox_home: Path, tmp_path: Path) -> None:
    """Point wandb and comet_ml at offline mode and at a private home; forget any real API key."""
    for variable in ("WANDB_API_KEY", "COMET_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "COMET_WORKSPACE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(sandbox_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(sandbox_home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(sandbox_home / ".cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(variable, str(sandbox_home / variable.lower()))
    monkeypatch.setenv("COMET_CONFIG", str(sandbox_home / ".comet.config"))
    monkeypatch.setenv("COMET_DISABLE_AUTO_LOGGING", "1")
    monkeypatch.setenv("COMET_ERROR_TRACKING_ENABLE", "false")
    monkeypatch.setenv("COMET_DISABLE_ANNOUNCEMENT", "true")
    monkeypatch.chdir(tmp_path)


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # a Unix socket path
    host = address[0] if isinstance(address, tuple) and address else address
    return host in (None, "", "localhost", "127.0.0.1", "::1", b"localhost")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse, and record, every attempt of this process to reach another host."""
    attempts: list[Any] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: socket.socket, address: Any) -> Any:
            if self.family != socket.AF_UNIX and not _is_local(address):
                attempts.append(address)
                raise OSError(f"network access in a test: {address!r}")
            return original(self, address)

        return call

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local((host,)):
            attempts.append(host)
            raise socket.gaierror(f"network access in a test: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
    assert attempts == [], f"tried to reach the network: {attempts}"


# --- reading the loggers' files back ---------------------------------------------------------------------

def _read_wandb_records(path: Path) -> list[dict[str, Any]]:
    """Read a ``.wandb`` file with wandb's own reader, ``wandb leet inspect --json``: one record a line.

    Each record is the JSON form of a ``wandb_internal_pb2.Record``: ``{"num": ..., "type": "history",
    "history": {"item": {"train/loss": 0.5, ...}, ...}}``.
    """
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
        capture_output=True, text=True, timeout=60, check=False, env=os.environ,
    )
    assert result.returncode == 0, f"wandb cannot read {path}: {result.stderr[-2000:]}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _wandb_history(records: list[dict[str, Any]], key: str) -> list[float]:
    return [record["history"]["item"][key] for record in records
            if record["type"] == "history" and key in record["history"]["item"]]


def _comet_messages(archive: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with zipfile.ZipFile(archive) as zf:
        experiment = json.loads(zf.read("experiment.json"))
        messages = [json.loads(line) for line in zf.read("messages.json").decode().splitlines() if line.strip()]
    return experiment, messages


def _comet_metric(messages: list[dict[str, Any]], name: str) -> list[float]:
    return [
        m["payload"]["metric"]["metricValue"]
        for m in messages
        if m["type"] == "metric_msg" and m["payload"]["metric"]["metricName"] == name
    ]


def _comet_parameters(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        m["payload"]["param"]["paramName"]: m["payload"]["param"]["paramValue"]
        for m in messages
        if m["type"] == "parameter_msg" and m["payload"]["param"]["source"] == "manual"
    }


def _comet_others(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"}


# --- the loggers -----------------------------------------------------------------------------------------


def test_csv_logger_writes_in_log_dir(tmp_path: Path) -> None:
    log_dir = _log_dir(tmp_path, "csv")
    logger = csv_logger(str(log_dir), NAME, VERSION)
    assert (logger.name, str(logger.version)) == (NAME, VERSION)

    module, trainer = _fit(logger, tmp_path, enable_checkpointing=True)

    assert trainer.log_dir == str(log_dir)
    assert sorted(p.name for p in log_dir.iterdir()) == ["hparams.yaml", "metrics.csv"]
    with open(log_dir / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(r["train/loss"]) for r in rows if r["train/loss"]] == module.train_losses
    assert [float(r["val/loss"]) for r in rows if r["val/loss"]] == module.val_losses
    assert [int(r["step"]) for r in rows if r["train/loss"]] == list(range(EPOCHS * TRAIN_BATCHES))
    assert "lr: 0.1" in (log_dir / "hparams.yaml").read_text()
    # Lightning's default checkpoint directory is the run's own `checkpoints/`.
    assert [p.parent for p in _run_dir(tmp_path).rglob("*.ckpt")] == [_run_dir(tmp_path) / "checkpoints"]


def test_csv_logger_writes_hparams_once_at_save_and_at_finalize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from enhtrain.loggers import csv as csv_module

    writes: list[str] = []
    real_write = csv_module._write_hparams
    monkeypatch.setattr(csv_module, "_write_hparams", lambda path, *a, **k: (writes.append(path),
                                                                             real_write(path, *a, **k)))
    log_dir = _log_dir(tmp_path, "csv")
    logger = csv_logger(str(log_dir), NAME, VERSION)
    logger.log_hyperparams({"config": {"model": {"hidden_dims": [8]}}})
    logger.log_hyperparams({"lr": 0.1})
    logger.save()
    hparams = log_dir / "hparams.yaml"
    assert yaml.safe_load(hparams.read_text()) == {"config": {"model": {"hidden_dims": [8]}}, "lr": 0.1}
    written = hparams.stat().st_mtime_ns
    logger.save()  # nothing new logged: the file is left alone
    assert hparams.stat().st_mtime_ns == written
    assert writes == [str(hparams)]  # the config and the model's hyper-parameters in one write

    # A run that fails before any save still gets the file: Lightning finalizes its loggers.
    failed_dir = tmp_path / "failed"
    failed = csv_logger(str(failed_dir), NAME, VERSION)
    failed.log_hyperparams({"lr": 0.2})
    failed.finalize("failed")
    assert yaml.safe_load((failed_dir / "hparams.yaml").read_text()) == {"lr": 0.2}


def test_csv_hparams_are_what_lightning_writes(tmp_path: Path) -> None:
    import yaml
    from lightning.pytorch.core.saving import save_hparams_to_yaml

    from enhtrain.loggers._common import _write_hparams

    plain = {"config": {"trainer": {"callbacks": [{"class_path": "a.B", "init_args": {"y": None, "s": "ü ${x}"}}]},
                        "model": {"hidden_dims": [8, 4], "lr": 1e-3, "flag": True, "name": "123", "on": "yes"}}}
    other = {**plain, "pair": (1, 2)}  # a tuple is not plain YAML: Lightning's own writer takes it
    for index, hparams in enumerate((plain, other)):
        ours, theirs = tmp_path / f"ours{index}.yaml", tmp_path / f"theirs{index}.yaml"
        _write_hparams(str(ours), hparams)
        save_hparams_to_yaml(str(theirs), hparams)
        assert yaml.safe_load(ours.read_text(encoding="utf-8")) == yaml.safe_load(theirs.read_text(encoding="utf-8"))
    assert ours.read_text(encoding="utf-8") == theirs.read_text(encoding="utf-8")


def test_tensorboard_logger_writes_in_log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.core.saving import save_hparams_to_yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from enhtrain.loggers import tensorboard as tensorboard_module

    writes: list[str] = []
    real_write = tensorboard_module._write_hparams
    monkeypatch.setattr(tensorboard_module, "_write_hparams", lambda path, *a, **k: (writes.append(path),
                                                                                     real_write(path, *a, **k)))
    log_dir = _log_dir(tmp_path, "tensorboard")
    logger = tensorboard_logger(str(log_dir), NAME, VERSION)
    assert (logger.name, str(logger.version)) == (NAME, VERSION)

    module, trainer = _fit(logger, tmp_path)

    assert trainer.log_dir == str(log_dir)
    names = sorted(p.name for p in log_dir.iterdir())
    assert names[-1] == "hparams.yaml"
    assert names[:-1] and all(name.startswith("events.out.tfevents.") for name in names[:-1])
    events = EventAccumulator(str(log_dir))
    events.Reload()
    train = events.Scalars("train/loss")
    assert [e.value for e in train] == pytest.approx(module.train_losses, rel=1e-6)
    assert [e.step for e in train] == list(range(EPOCHS * TRAIN_BATCHES))
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx(module.val_losses, rel=1e-6)
    assert "lr: 0.1" in (log_dir / "hparams.yaml").read_text()
    # Written once, by enhtrain's writer, with what Lightning's own would have written.
    assert writes == [str(log_dir / "hparams.yaml")]
    save_hparams_to_yaml(str(tmp_path / "lightning.yaml"), dict(logger.hparams))
    assert (log_dir / "hparams.yaml").read_text() == (tmp_path / "lightning.yaml").read_text()


def test_wandb_logger_writes_offline_run_file(tmp_path: Path) -> None:
    import wandb

    log_dir = _log_dir(tmp_path, "wandb")
    logger = wandb_logger(str(log_dir), NAME, VERSION, project="enhtrain-tests")
    assert (logger.name, str(logger.version)) == (NAME, VERSION)

    module, _ = _fit(logger, tmp_path)

    # `finalize` finished the W&B run, so its file is complete when `fit` returns.
    assert wandb.run is None
    run_files = sorted(log_dir.glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    assert run_files[0].name == f"run-{logger.run_id}.wandb"
    records = _read_wandb_records(run_files[0])
    kinds = [record["type"] for record in records]
    assert kinds[0] == "header"
    assert "exit" in kinds
    run = next(record["run"] for record in records if record["type"] == "run")
    assert (run["run_id"], run["display_name"], run["project"]) == (logger.run_id, NAME, "enhtrain-tests")
    assert _wandb_history(records, "train/loss") == module.train_losses
    assert _wandb_history(records, "val/loss") == module.val_losses
    config = dict(run["config"]["update"])
    config.update(
        {
            key: value
            for record in records
            if record["type"] == "config"
            for key, value in record["config"]["update"].items()
        }
    )
    assert config["lr"] == 0.1


def test_wandb_run_file_is_complete_when_finalize_returns(tmp_path: Path) -> None:
    # wandb-core writes the end of a run's file after `run.finish()` returns (with wandb 0.31, in about half of
    # the runs, a fraction of a millisecond later), so `finalize` waits for the exit record. Each file is copied
    # the moment `finalize` returns and the copy is read back with wandb's reader.
    statuses = {"success": 0, "finished": 0, "failed": 1}
    snapshots = {}
    for index, status in enumerate(statuses):
        version = f"version_{index}"
        logger = wandb_logger(str(tmp_path / "runs" / NAME / version / "logs" / "wandb"), NAME, version)
        for step in range(5):
            logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        run_file = Path(logger.experiment.settings.sync_file)

        logger.finalize(status)

        snapshots[status] = tmp_path / f"{status}.wandb"
        shutil.copyfile(run_file, snapshots[status])
    for status, exit_code in statuses.items():
        records = _read_wandb_records(snapshots[status])
        assert records and records[-1]["type"] == "exit", f"{status}: the file ends with {records[-1:]}"
        assert records[-1]["exit"].get("exit_code", 0) == exit_code
        assert _wandb_history(records, "train/loss") == [1.0 / (step + 1) for step in range(5)]


def test_comet_logger_writes_offline_archive(tmp_path: Path) -> None:
    log_dir = _log_dir(tmp_path, "comet")
    logger = comet_logger(str(log_dir), NAME, VERSION, project="enhtrain-tests")
    assert (logger.name, str(logger.version)) == (NAME, VERSION)

    module, trainer = _fit(logger, tmp_path)

    archives = sorted(log_dir.glob("*.zip"))
    assert [a.name for a in archives] == [f"{logger.experiment_key}.zip"]
    experiment, messages = _comet_messages(archives[0])
    assert experiment["project_name"] == "enhtrain-tests"
    assert _comet_metric(messages, "train/loss") == module.train_losses
    assert _comet_metric(messages, "val/loss") == module.val_losses
    assert _comet_parameters(messages) == {"lr": 0.1, "api_key": None}
    others = _comet_others(messages)
    assert (others["Name"], others["run_version"]) == (NAME, VERSION)

    # A later stage continues the same experiment in a second archive.
    trainer.validate(module, _loaders()[1], verbose=False)
    second = sorted(set(log_dir.glob("*.zip")) - set(archives))
    assert len(second) == 1
    experiment, messages = _comet_messages(second[0])
    assert (experiment["offline_id"], experiment["resume_strategy"]) == (logger.experiment_key, "get")
    assert _comet_metric(messages, "val/loss") == module.val_losses[-1:]


def test_secrets_are_never_written(tmp_path: Path, sandbox_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_WANDB_KEY)
    monkeypatch.setenv("COMET_API_KEY", FAKE_COMET_ENV_KEY)
    run_loggers = [
        csv_logger(str(_log_dir(tmp_path, "csv")), NAME, VERSION),
        tensorboard_logger(str(_log_dir(tmp_path, "tensorboard")), NAME, VERSION),
        wandb_logger(str(_log_dir(tmp_path, "wandb")), NAME, VERSION, offline=True),
        comet_logger(
            str(_log_dir(tmp_path, "comet")), NAME, VERSION, offline=True, api_key=FAKE_COMET_OPTION_KEY
        ),
    ]

    _fit(run_loggers, tmp_path, module=_TinyModule(api_key=FAKE_HPARAM_KEY))

    written = _files(tmp_path) + _files(sandbox_home)
    assert any(path.suffix == ".wandb" for path in written)
    assert any(path.suffix == ".zip" for path in written)
    secrets = [FAKE_WANDB_KEY, FAKE_COMET_ENV_KEY, FAKE_COMET_OPTION_KEY, FAKE_HPARAM_KEY]
    for path in written:
        content = path.read_bytes()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                content += b"".join(zf.read(name) for name in zf.namelist())
        for secret in secrets:
            assert secret.encode() not in content, f"{secret!r} written to {path}"
    # The masked hyper-parameter is still recorded, as the mask.
    assert f"api_key: '{MASK}'" in (_log_dir(tmp_path, "csv") / "hparams.yaml").read_text()
    _, messages = _comet_messages(next(_log_dir(tmp_path, "comet").glob("*.zip")))
    assert _comet_parameters(messages)["api_key"] == MASK


# --- construction, options and errors --------------------------------------------------------------------

_FACTORIES = {
    "csv": csv_logger,
    "tensorboard": tensorboard_logger,
    "wandb": wandb_logger,
    "comet": comet_logger,
}


def test_factories_report_run_and_write_nothing_before_training(tmp_path: Path) -> None:
    for key, factory in _FACTORIES.items():
        logger = factory(str(_log_dir(tmp_path, key)), NAME, VERSION)
        assert (logger.name, str(logger.version)) == (NAME, VERSION), key
    # Bad input later in the command must leave no run directory behind.
    assert not (tmp_path / "runs").exists()


def test_run_root_outside_the_run_layout(tmp_path: Path) -> None:
    inside = csv_logger(str(_log_dir(tmp_path, "csv")), NAME, VERSION)
    assert inside.save_dir == str(tmp_path / "runs")
    assert inside.root_dir == str(tmp_path / "runs" / NAME)

    elsewhere = tmp_path / "somewhere"
    logger = csv_logger(str(elsewhere), NAME, VERSION)
    assert logger.save_dir == logger.root_dir == logger.log_dir == str(elsewhere)
    logger.log_metrics({"train/loss": 0.5}, step=0)
    logger.finalize("success")
    assert [p.name for p in elsewhere.iterdir()] == ["metrics.csv"]


def test_wandb_run_id_is_stable_for_the_run(tmp_path: Path) -> None:
    log_dir = str(_log_dir(tmp_path, "wandb"))
    first = wandb_logger(log_dir, NAME, VERSION)
    again = wandb_logger(log_dir, NAME, VERSION)
    other = wandb_logger(str(tmp_path / "runs" / NAME / "version_4" / "logs" / "wandb"), NAME, "version_4")
    assert re.fullmatch(r"[a-z0-9]+", first.run_id)
    assert first.run_id == again.run_id != other.run_id
    assert wandb_logger(log_dir, NAME, VERSION, id="chosen1").run_id == "chosen1"


def test_wandb_and_comet_go_online_only_with_an_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import comet_ml

    wandb_dir, comet_dir = str(_log_dir(tmp_path, "wandb")), str(_log_dir(tmp_path, "comet"))
    offline = wandb_logger(wandb_dir, NAME, VERSION)
    assert offline._offline and offline._wandb_init["mode"] == "offline"
    assert isinstance(comet_logger(comet_dir, NAME, VERSION), CometOfflineLogger)

    monkeypatch.setenv("WANDB_API_KEY", FAKE_WANDB_KEY)
    online = wandb_logger(wandb_dir, NAME, VERSION)
    assert not online._offline and "mode" not in online._wandb_init
    assert wandb_logger(wandb_dir, NAME, VERSION, offline=True)._offline

    started: list[dict[str, Any]] = []

    class _Experiment:
        project_name = "enhtrain-tests"

        def get_key(self) -> str:
            return "k" * 32

        def log_other(self, key: str, value: Any) -> None:
            pass

    def fake_start(**kwargs: Any) -> _Experiment:
        started.append(kwargs)
        return _Experiment()

    monkeypatch.setattr(comet_ml, "start", fake_start)
    comet = comet_logger(comet_dir, NAME, VERSION, offline=False, api_key=FAKE_COMET_OPTION_KEY)
    assert isinstance(comet, CometOnlineLogger)
    assert (comet.name, comet.version, comet.save_dir) == (NAME, VERSION, comet_dir)
    (kwargs,) = started
    assert kwargs["online"] is True
    assert kwargs["api_key"] == FAKE_COMET_OPTION_KEY
    config = kwargs["experiment_config"]
    assert (config.name, config.offline_directory, config.log_code, config.parse_args) == (
        NAME,
        comet_dir,
        False,
        False,
    )


@pytest.mark.parametrize(("logger", "module", "extra"), [("wandb", "wandb", "wandb"), ("comet", "comet_ml", "comet")])
def test_missing_package_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logger: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    message = f"logger '{logger}' needs the {module} package: pip install 'enhtrain[{extra}]'"
    with pytest.raises(ConfigError, match=re.escape(message)):
        _FACTORIES[logger](str(_log_dir(tmp_path, logger)), NAME, VERSION)


@pytest.mark.parametrize(
    ("logger", "options", "expected"),
    [
        (
            "csv",
            {"flush_every": 5},
            ["'csv'", "'flush_every'", "did you mean 'flush_logs_every_n_steps'", "prefix"],
        ),
        ("tensorboard", {"max_queue_size": 5}, ["'tensorboard'", "'max_queue_size'", "max_queue", "sub_dir"]),
        ("wandb", {"projct": "x"}, ["'wandb'", "'projct'", "did you mean 'project'", "entity", "log_model"]),
        (
            "comet",
            {"projet": "x"},
            ["'comet'", "'projet'", "did you mean 'project'", "workspace", "log_code"],
        ),
        ("csv", {"save_dir": "x"}, ["'csv'", "'save_dir'", "set by enhtrain"]),
        ("tensorboard", {"save_dir": "x"}, ["'tensorboard'", "'save_dir'", "run directory"]),
        ("wandb", {"dir": "x"}, ["'wandb'", "'dir'", "run directory"]),
        ("comet", {"experiment_name": "x"}, ["'comet'", "'experiment_name'", "experiment.name"]),
        ("wandb", {"mode": "online"}, ["'wandb'", "'mode'", "offline"]),
        ("comet", {"offline_directory": "x"}, ["'comet'", "'offline_directory'", "set by enhtrain"]),
        ("comet", {"offline": True, "online": True}, ["'comet'", "contradict"]),
        ("wandb", {"log_model": True}, ["'wandb'", "log_model", "offline: false"]),
    ],
)
def test_bad_options_are_config_errors(
    tmp_path: Path, logger: str, options: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        _FACTORIES[logger](str(_log_dir(tmp_path, logger)), NAME, VERSION, **options)
    for text in expected:
        assert text in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_options_reach_the_lightning_logger(tmp_path: Path) -> None:
    csv_logs = csv_logger(str(_log_dir(tmp_path, "csv")), NAME, VERSION, prefix="p", flush_logs_every_n_steps=7)
    assert (csv_logs._prefix, csv_logs._flush_logs_every_n_steps) == ("p", 7)
    tb_logger = tensorboard_logger(str(_log_dir(tmp_path, "tb")), NAME, VERSION, sub_dir="s", max_queue=3)
    assert tb_logger.log_dir == str(_log_dir(tmp_path, "tb") / "s")
    assert tb_logger._kwargs == {"max_queue": 3}
    wb_logger = wandb_logger(str(_log_dir(tmp_path, "wandb")), NAME, VERSION, tags=["a"], entity="me")
    assert (wb_logger._wandb_init["tags"], wb_logger._wandb_init["entity"]) == (["a"], "me")
    assert wb_logger._wandb_init["dir"] == str(_log_dir(tmp_path, "wandb").parent)


def test_logger_classes_pickle(tmp_path: Path) -> None:
    for key in ("csv", "tensorboard", "comet"):
        logger = _FACTORIES[key](str(_log_dir(tmp_path, key)), NAME, VERSION)
        copy = pickle.loads(pickle.dumps(logger))
        assert type(copy) is type(logger)
        assert (copy.name, copy.version, copy.log_dir) == (NAME, VERSION, logger.log_dir)


def test_importing_the_loggers_stays_light() -> None:
    # The package imports no logger module; a logger module imports Lightning, as Lightning's own loggers do,
    # but not its service's package, which only creating the logger imports.
    package = (
        "import sys, enhtrain.loggers, enhtrain.secrets;"
        "print(sorted(m for m in ('torch', 'lightning', 'wandb', 'comet_ml') if m in sys.modules))"
    )
    modules = (
        "import sys, enhtrain.loggers.csv, enhtrain.loggers.tensorboard;"
        "import enhtrain.loggers.wandb, enhtrain.loggers.comet;"
        "print(sorted(m for m in ('wandb', 'comet_ml', 'tensorboard', 'tensorboardX') if m in sys.modules))"
    )
    for code in (package, modules):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
        )
        assert result.stdout.strip() == "[]", code
