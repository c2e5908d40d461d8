"""Many workers on one study, and a worker killed with SIGKILL, on the embedded store and on a real PostgreSQL.

The PostgreSQL server is a throwaway instance from Debian's packages (``.ci/run`` installs them), started in a
temporary directory on a free localhost port and stopped when the module's tests end. PostgreSQL refuses to run
as root, so under root the server runs as the unprivileged user ``nobody``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from enhtrain.sweeps.runner import SURPLUS_ATTR
from enhtrain.testing import write_tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of its own, for this module's tests: yields its SQLAlchemy URL."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    assert initdb and pg_ctl, ("PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
                               "apt-get install postgresql, as .ci/run does")
    folder = Path(tempfile.mkdtemp(prefix="enhtrain-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data, log, port = folder / "data", folder / "server.log", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
                   cwd=folder, check=True, capture_output=True, timeout=120)
    options = f"-p {port} -h 127.0.0.1 -k {folder} -F"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
                   cwd=folder, check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], cwd=folder,
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENHTRAIN_")}
    env.update(ENHTRAIN_PLAIN_PROGRESS="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "enhtrain", *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def _wait_for(check: Any, timeout: float, what: str, process: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            status, output = _finish(process)
            raise AssertionError(f"the worker ended (status {status}) before {what}:\n{output}")
        with contextlib.suppress(Exception):  # not there yet: a missing file, study or table
            value = check()
            if value:
                return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _study(url: str, name: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url)


def _setup(tmp_path: Path, store: str, request: pytest.FixtureRequest, name: str, **spec: Any) -> tuple[Path, str]:
    """A project folder with a tiny config and a spec; returns it and the storage URL the workers share."""
    project = tmp_path / "machine-a"
    project.mkdir()
    write_tiny_config(project / "tiny.yaml", {"experiment": {"name": "base", "checkpoint": None},
                                              "trainer": spec.pop("trainer", {})})
    url = request.getfixturevalue("postgres") if store == "postgres" else \
        f"sqlite:///{project / 'runs' / name / 'study.db'}"
    sweep = {"name": name, "metric": "val/acc", "sampler": {"name": "random", "seed": 1},
             "params": {"model.init_args.lr": {"float": [1.0e-3, 1.0e-1], "log": True},
                        "model.init_args.hidden_dims": {"choice": [[8], [16]]}}, **spec}
    if store == "postgres":
        sweep["storage"] = url
    (project / "spec.yaml").write_text(yaml.safe_dump({"sweep": sweep}, sort_keys=False))
    return project, url


STORES = ["embedded", "postgres"]

HOLD = """
import time
from pathlib import Path
from lightning.pytorch import Callback


class Hold(Callback):
    def __init__(self, marker: str) -> None:
        self.marker = Path(marker)

    def on_train_start(self, trainer, pl_module) -> None:
        deadline = time.monotonic() + 240
        while not self.marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
"""


@pytest.mark.parametrize("store", STORES)
def test_two_worker_processes_share_one_study(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    name = f"two-{store}"
    # Every trial waits at its start until both processes hold one, so that each process runs at least one.
    marker = tmp_path / "both-running"
    hold = {"class_path": "hold.Hold", "init_args": {"marker": str(marker)}}
    project, url = _setup(tmp_path, store, request, name, trials=3,
                          trainer={"max_epochs": 2, "callbacks": [hold]})
    other = tmp_path / "machine-b"  # a second machine: another folder, nothing but the code and the storage URL
    for home in (project, other):
        home.mkdir(exist_ok=True)
        (home / "hold.py").write_text(HOLD, encoding="utf-8")
    first = _start(["sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml"], project)
    database = project / "runs" / name / "study.db"
    _wait_for(lambda: (store == "postgres" or database.is_file()) and _study(url, name).user_attrs, 120, "the study",
              first)
    second = _start(["sweep", "worker", "--storage", url, "--study", name], other)
    _wait_for(lambda: len({t.user_attrs.get("enhtrain_worker") for t in _study(url, name).get_trials()
                           if t.state.name == "RUNNING"}) == 2, 240, "a trial running in each process", second)
    marker.touch()
    status_a, out_a = _finish(first)
    status_b, out_b = _finish(second)
    assert status_a == 0, out_a
    assert status_b == 0, out_b
    study = _study(url, name)
    # Both processes may ask for a trial at the same moment at the end: the one beyond the target gives way.
    surplus = [t for t in study.get_trials() if t.user_attrs.get(SURPLUS_ATTR)]
    assert all(t.state.name == "FAIL" and t.number >= 3 for t in surplus)
    trials = [t for t in study.get_trials() if not t.user_attrs.get(SURPLUS_ATTR)]
    assert sorted(t.number for t in trials) == [0, 1, 2]
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state.name) for t in trials]
    workers = {t.user_attrs["enhtrain_worker"].rsplit(":", 1)[0] for t in trials}
    assert len(workers) == 2, workers  # both processes ran trials
    by_b = [t.number for t in trials if f"trial {t.number} complete" in out_b]
    assert by_b and all(f"trial {n} complete" not in out_a for n in by_b)
    for trial in trials:
        home = other if trial.number in by_b else project
        meta = json.loads((home / "runs" / name / f"trial_{trial.number}" / "metadata.json").read_text())
        assert meta["status"] == "completed" and meta["sweep"]["trial"] == trial.number
        assert meta["metrics"]["val/acc"] == pytest.approx(trial.value)
    assert (other / "runs" / name / "sweep-base.yaml").read_text() == \
        (project / "runs" / name / "sweep-base.yaml").read_text()


@pytest.mark.parametrize("store", STORES)
def test_a_killed_worker_s_trial_is_failed_and_run_again(tmp_path: Path, store: str,
                                                        request: pytest.FixtureRequest) -> None:
    name = f"kill-{store}"
    project, url = _setup(tmp_path, store, request, name, trials=1, heartbeat_interval=1, grace_period=2,
                          trainer={"max_epochs": 40})
    worker = _start(["sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml"], project)
    run = project / "runs" / name / "trial_0"
    _wait_for(lambda: (run / "metadata.json").is_file(), 180, "trial 0 to start training", worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=60)
    # The trial's process notices that its worker is gone, and ends like any run stopped by SIGTERM.
    _wait_for(lambda: json.loads((run / "metadata.json").read_text())["status"] == "interrupted", 120,
              "the orphaned trial to stop")
    assert _study(url, name).get_trials()[0].state.name == "RUNNING"  # left running in the store
    # Continue: the same command on this machine, or a worker that joins from elsewhere.
    if store == "embedded":
        again = _start(["sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml"], project)
    else:
        again = _start(["sweep", "worker", "--storage", url, "--study", name], project)
    status, out = _finish(again)
    assert status == 0, out
    trials = {t.number: t for t in _study(url, name).get_trials()}
    assert sorted(trials) == [0, 1]
    assert trials[0].state.name == "FAIL" and trials[1].state.name == "COMPLETE"
    assert trials[1].system_attrs["retry_history"] == [0]
    assert trials[1].params == trials[0].params  # the same values, run to completion once
    assert "trial 0 " not in out and "trial 1 complete" in out
    shown = json.loads(subprocess.run([sys.executable, "-m", "enhtrain", "sweep", "show", name, "--json",
                                       *(["--storage", url] if store == "postgres" else [])],
                                      cwd=project, env=_env(), capture_output=True, text=True, timeout=120).stdout)
    rows = {row["trial"]: row for row in shown["trials"]}
    assert rows[0]["retried_as"] == 1 and rows[1]["retry_of"] == 0
    assert shown["sweep"]["states"] == {"COMPLETE": 1}
    meta = json.loads((project / "runs" / name / "trial_1" / "metadata.json").read_text())
    assert meta["status"] == "completed"


def _open_at_once(url: str, barrier: Any, results: Any) -> None:
    import optuna.storages  # noqa: F401  (imported before the start, so that the processes meet in the schema's creation)

    from enhtrain.sweeps.study import open_storage

    barrier.wait()
    try:
        storage = open_storage(url, heartbeat_interval=1, grace_period=2, create=True)  # as sweep run does
        results.put(("ok", len(storage.get_all_studies())))
    except Exception as err:  # reported to the test, which names it
        results.put(("error", repr(err)))


@pytest.mark.parametrize("store", STORES)
def test_workers_that_open_a_new_store_at_once_all_get_it(tmp_path: Path, store: str,
                                                          request: pytest.FixtureRequest) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    if store == "postgres":  # a new, empty database on the module's server
        import psycopg

        server = request.getfixturevalue("postgres")
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute("CREATE DATABASE at_once")
        url = server.rsplit("/", 1)[0] + "/at_once"
    barrier, results = context.Barrier(6), context.Queue()
    processes = [context.Process(target=_open_at_once, args=(url, barrier, results)) for _ in range(6)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert outcomes == [("ok", 0)] * 6
    if store == "postgres":
        return
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db"]  # no private file left behind
    with contextlib.closing(__import__("sqlite3").connect(tmp_path / "study.db")) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_trial_that_dies_fails_alone_and_the_sweep_goes_on(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A trial killed by the kernel (out of memory) or a crash ends as a failed trial; the next one still runs."""
    name = "crash"
    project, url = _setup(tmp_path, "embedded", request, name, trials=2,
                          params={"trainer.max_epochs": {"choice": [100000, 1]}},
                          enqueue=[{"trainer.max_epochs": 100000}, {"trainer.max_epochs": 1}])
    sweep = _start(["sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml"], project)
    run = project / "runs" / name / "trial_0"
    meta = _wait_for(lambda: json.loads((run / "metadata.json").read_text()), 180, "trial 0 to start training", sweep)
    _wait_for(lambda: (run / "logs" / "csv").is_dir(), 60, "trial 0 to log", sweep)
    os.kill(meta["pid"], signal.SIGKILL)  # what the out-of-memory killer does
    status, out = _finish(sweep)
    assert status == 0, out
    assert "trial 0 fail" in out and "killed by SIGKILL" in out and "trial 1 complete" in out, out
    trials = {t.number: t for t in _study(url, name).get_trials()}
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["enhtrain_error"] == "killed by SIGKILL"
    assert trials[1].state.name == "COMPLETE"


# --- a storage password never on the command line, and masked wherever a URL holds one --------------------------

PASSWORD = "pw-sweeper-5b7e1c"


@pytest.fixture(scope="module")
def password_server(postgres: str) -> str:
    """The module's server with a user that must give a password (``sweeper``, database ``sweeperdb``)."""
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE sweeper LOGIN PASSWORD '{PASSWORD}'")
        connection.execute("CREATE DATABASE sweeperdb OWNER sweeper")
        hba = Path(str(connection.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        hba.write_text("host all sweeper 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        connection.execute("SELECT pg_reload_conf()")
    return postgres.replace("postgres@", "sweeper@").rsplit("/", 1)[0] + "/sweeperdb"


def test_a_password_comes_from_pgpassword_or_pgpass_and_is_masked_everywhere(
    password_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from enhtrain.commands import main
    from enhtrain.config.arguments import prepare_arguments
    from enhtrain.sweeps.spec import check_spec
    from enhtrain.sweeps.study import create_or_continue

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    in_url = password_server.replace("sweeper@", f"sweeper:{PASSWORD}@")
    write_tiny_config(tmp_path / "tiny.yaml")
    prepared = prepare_arguments(["fit", "--config", "tiny.yaml"], force=True)
    spec = check_spec({"name": "pw", "metric": "val/acc", "params": {"model.init_args.lr": {"float": [0.001, 0.1]}}},
                      lambda keys: "spec")
    sweep = create_or_continue(spec, prepared.composed.data, [], in_url, tmp_path / "runs" / "pw",  # type: ignore[union-attr]
                               command=["enhtrain", "sweep", "run", "--storage", f"{in_url}?password={PASSWORD}"],
                               spec_file="spec.yaml")
    assert PASSWORD not in json.dumps(sweep.study.user_attrs)
    sweep.close()

    def show(url: str) -> tuple[int, str]:
        code = main(["sweep", "show", "pw", "--storage", url])
        out, err = capsys.readouterr()
        assert PASSWORD not in out + err
        return code, out + err

    code, output = show(password_server)
    assert code == 2 and output.count("\n") == 1 and "cannot reach the storage" in output, output
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert show(password_server)[0] == 0
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    host, port = password_server.split("@", 1)[1].split("/", 1)[0].split(":")
    passfile.write_text(f"{host}:{port}:sweeperdb:sweeper:{PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert show(password_server)[0] == 0
    monkeypatch.delenv("PGPASSFILE")
    code, output = show(in_url)
    assert code == 0 and f"sweep pw ({password_server.replace('sweeper@', 'sweeper:***@')})" in output, output
    code, output = show(f"{password_server}?password={PASSWORD}")
    assert code == 0 and "?password=***)" in output, output
