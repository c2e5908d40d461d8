"""Sweeps on the embedded store: the spec's checks, trials as ordinary runs, pruning, results and plots.

The fault and two-worker tests, on the embedded store and on a real PostgreSQL server, are in
``tests/test_sweeps_storage.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from enhtrain.testing import CliResult, write_tiny_config


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENHTRAIN_")}
    env.update(ENHTRAIN_PLAIN_PROGRESS="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def enhtrain(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a process of its own, as a user would."""
    return subprocess.run([sys.executable, "-m", "enhtrain", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_spec(path: Path, **sweep: Any) -> Path:
    path.write_text(yaml.safe_dump({"sweep": sweep}, sort_keys=False, default_flow_style=None), encoding="utf-8")
    return path


LR = {"float": [1.0e-6, 1.0], "log": True}
WIDTH = {"choice": [[8], [16]]}


# --- the spec: every mistake is one line, exit 2, and nothing written -----------------------------------------

SPEC_ERRORS = [
    ({"params": {"model.init_args.lr": {"float": [0.1, 0.01]}}}, "bad.yaml:9: sweep.params.model.init_args.lr: empty "
     "range [0.1, 0.01]: the first number must be below the second"),
    ({"params": {"model.init_args.lr": {"uniform": [0.1, 1]}}}, "sweep.params.model.init_args.lr: bad distribution "
     "(unknown key 'uniform')"),
    ({"params": {"model.init_args.lr": {"float": [0, 1], "log": True}}}, "a log range must be above 0"),
    ({"params": {"data.init_args.batch_size": {"int": [16.5, 64]}}}, "an int range takes whole numbers"),
    ({"params": {"data.init_args.batch_size": {"choice": []}}}, "empty choice"),
    ({"params": {"model.init_args.lr": [0.1, 0.2]}}, "bad distribution [0.1, 0.2]"),
    ({"params": {}}, "bad.yaml:7: sweep.params: no params"),
    ({"sampler": "bayes"}, "bad.yaml:5: sweep.sampler: unknown sampler 'bayes'; use one of tpe, random, grid"),
    ({"sampler": {"name": "tpe", "n_startup": 3}}, "sweep.sampler: tpe has no option 'n_startup'; its options:"),
    ({"sampler": "grid"}, "sweep.sampler: model.init_args.lr: the grid sampler needs a step for a float range"),
    ({"pruner": "early"}, "sweep.pruner: unknown pruner 'early'"),
    ({"metric": "val/score"}, "cannot tell whether 'val/score' should be minimised or maximised: set mode"),
    ({"colour": "red"}, "sweep.colour: unknown key 'colour'; allowed keys: name, metric, mode"),
    ({"params": {"experiment.version": {"choice": ["a", "b"]}}}, "'experiment.version' is set by the sweep"),
    ({"enqueue": [{"model.init_args.lr": 5.0}]}, "sweep.enqueue[0].model.init_args.lr: 5.0 is outside [1e-06, 1.0]"),
    ({"trials": 0}, "sweep.trials: Input should be greater than or equal to 1"),
    ({"enqueue": [{"model.init_args.lr": 0.1}] * 3}, "sweep.enqueue: 3 entries, but trials is 2"),
]


@pytest.mark.parametrize(("change", "message"), SPEC_ERRORS, ids=[m[:40] for _, m in SPEC_ERRORS])
def test_spec_mistakes_are_one_line_and_start_nothing(
    enhtrain_cli: Callable[..., CliResult], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    write_tiny_config(tmp_path / "tiny.yaml")
    spec: dict[str, Any] = {"name": "bad", "metric": "val/acc", "trials": 2, "sampler": "tpe", "pruner": "median",
                            "params": {"model.init_args.lr": LR}}
    spec.update(change)
    write_spec(tmp_path / "bad.yaml", **spec)
    result = enhtrain_cli("sweep", "run", "--config", "tiny.yaml", "--sweep", "bad.yaml")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("enhtrain: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "runs").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_storage_is_reported_before_anything_runs(
    enhtrain_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    write_tiny_config(tmp_path / "tiny.yaml")
    write_spec(tmp_path / "spec.yaml", name="far", metric="val/acc", params={"model.init_args.lr": LR},
               storage=f"postgresql://someone:hunter22@127.0.0.1:{_free_port()}/sweeps")
    result = enhtrain_cli("sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.count("\n") == 0 and "spec.yaml: sweep.storage: cannot reach the storage" in line, line
    assert "postgresql://someone:***@127.0.0.1" in line and "hunter22" not in line
    assert not (tmp_path / "runs").exists()


def test_sweep_usage_and_unknown_sweep(enhtrain_cli: Callable[..., CliResult]) -> None:
    help_ = enhtrain_cli("sweep", "--help")
    assert help_.exit_code == 0 and "enhtrain sweep run --sweep SPEC" in help_.stdout
    result = enhtrain_cli("sweep", "show", "nothing-here")
    assert result.exit_code == 2
    assert "sweep 'nothing-here' not found: no runs/nothing-here/study.db" in result.stderr
    wrong = enhtrain_cli("sweep", "fly")
    assert wrong.exit_code == 2 and "unknown action 'fly'" in wrong.stderr
    missing = enhtrain_cli("sweep", "run", "--config", "x.yaml")
    assert missing.exit_code == 2 and "--sweep SPEC is required" in missing.stderr


# --- the parameters -------------------------------------------------------------------------------------------


def test_params_encode_decode_and_grid() -> None:
    from enhtrain.sweeps.spec import parse_param

    widths = parse_param("model.init_args.hidden_dims", {"choice": [[64], [128, 64]]})
    assert widths.encoded and widths.optuna_choices() == ["[64]", "[128, 64]"]
    assert widths.decode(widths.encode([128, 64])) == [128, 64]
    with pytest.raises(ValueError, match="not one of the choices"):
        widths.encode([32])
    batch = parse_param("data.init_args.batch_size", {"int": [16, 64], "step": 16})
    assert batch.grid() == [16, 32, 48, 64]
    assert batch.distribution() == optuna.distributions.IntDistribution(16, 64, step=16)
    lr = parse_param("model.init_args.lr", {"float": [0.001, 0.1], "log": True})
    assert lr.distribution() == optuna.distributions.FloatDistribution(0.001, 0.1, log=True)
    with pytest.raises(ValueError, match="grid sampler needs a step"):
        lr.grid()
    scalars = parse_param("k", {"choice": [1, "a", None]})
    assert not scalars.encoded and scalars.optuna_choices() == [1, "a", None]


def test_counted_trials_leave_out_retried_failures_and_surplus() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from enhtrain.sweeps.runner import SURPLUS_ATTR, counted_trials

    study = optuna.create_study()
    dist = {"x": FloatDistribution(0, 1)}
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.5}, distributions=dist))  # retried as 3
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=1.0, params={"x": 0.1}, distributions=dist))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.2}, distributions=dist,
                                 user_attrs={SURPLUS_ATTR: True}))
    study.add_trial(create_trial(state=TrialState.WAITING, params={"x": 0.5}, distributions=dist,
                                 system_attrs={"failed_trial": 0, "retry_history": [0]}))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.7}, distributions=dist))  # failed by itself
    assert [t.number for t in counted_trials(study.get_trials())] == [1, 3, 4]


def test_trial_environment_drops_what_the_base_config_holds() -> None:
    from enhtrain.sweeps.base import trial_environment

    env = trial_environment({"ENHTRAIN_ENV": "dev", "ENHTRAIN_MODEL__INIT_ARGS__LR": "0.5", "ENHTRAIN_DEBUG": "1",
                             "ENHTRAIN_SAFE_CONFIG": "1", "ENHTRAIN_RUN_DIR": "x", "PATH": "/bin"})
    assert env == {"ENHTRAIN_DEBUG": "1", "ENHTRAIN_SAFE_CONFIG": "1", "PATH": "/bin"}


def test_each_worker_gets_its_own_gpu(tmp_path: Path) -> None:
    from enhtrain.sweeps.runner import WorkerPool
    from enhtrain.sweeps.spec import SweepSpec
    from enhtrain.sweeps.study import Sweep

    spec = SweepSpec(name="g", metric="val/acc", params={"model.init_args.lr": LR})

    def pool(trainer: dict[str, Any], devices: list[str]) -> WorkerPool:
        sweep = Sweep(spec, {"trainer": trainer}, [], "sqlite://", None, None, tmp_path)  # type: ignore[arg-type]
        return WorkerPool(sweep, workers=3, devices=devices)

    gpus = pool({"accelerator": "gpu", "devices": 1}, ["0", "1"])
    assert [gpus._environment(i)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["0", "1", "0"]
    pairs = pool({"accelerator": "auto", "devices": 2}, ["0", "1", "2", "3"])
    assert [pairs._environment(i)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0,1", "2,3"]
    cpu = pool({"accelerator": "cpu"}, ["0", "1"])
    assert "CUDA_VISIBLE_DEVICES" not in cpu._environment(0)
    assert cpu._environment(0)["OMP_NUM_THREADS"].isdigit()


# --- a finished sweep: trials are ordinary runs ---------------------------------------------------------------

SWEEP_CONFIG = {"trainer": {"max_epochs": 3, "limit_train_batches": 5}, "experiment": {"name": "base"}}


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Any]:
    """A 3-trial sweep, one trial at a time: a bad learning rate, a good one (complete), then a bad one (pruned).

    It runs once for the whole test session, whichever pytest-xdist worker asks first; the tests only read it, or
    write files beside it that no other test reads.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base  # one folder for every worker of this session
    cwd = shared / "sweep-finished"
    with FileLock(str(shared / "sweep-finished.lock")):
        record = cwd / "proc.json"
        if not record.is_file():
            cwd.mkdir()
            write_tiny_config(cwd / "tiny.yaml", SWEEP_CONFIG)
            write_spec(cwd / "spec.yaml", name="lrs", metric="val/acc", trials=3,
                       sampler={"name": "random", "seed": 0}, pruner={"name": "median", "n_startup_trials": 1},
                       enqueue=[{"model.init_args.lr": 1.0e-6, "model.init_args.hidden_dims": [8]},
                                {"model.init_args.lr": 0.1, "model.init_args.hidden_dims": [16]},
                                {"model.init_args.lr": 1.0e-5, "model.init_args.hidden_dims": [8]}],
                       params={"model.init_args.lr": LR, "model.init_args.hidden_dims": WIDTH})
            proc = enhtrain("sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml", cwd=cwd)
            record.write_text(json.dumps([proc.returncode, proc.stdout, proc.stderr]))
    code, out, err = json.loads(record.read_text())
    return {"cwd": cwd, "proc": subprocess.CompletedProcess([], code, out, err), "dir": cwd / "runs" / "lrs"}


@pytest.mark.slow
def test_each_trial_is_an_ordinary_run_with_its_sweep_record(finished: dict[str, Any]) -> None:
    proc, directory = finished["proc"], finished["dir"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trial 1 complete" in proc.stdout and "trial 2 pruned" in proc.stdout, proc.stdout
    assert sorted(p.name for p in directory.iterdir() if p.is_dir()) == ["trial_0", "trial_1", "trial_2"]
    for number, (lr, status) in enumerate([(1e-6, "completed"), (0.1, "completed"), (1e-5, "pruned")]):
        run = directory / f"trial_{number}"
        meta = json.loads((run / "metadata.json").read_text())
        assert meta["status"] == status
        assert meta["sweep"]["study"] == "lrs" and meta["sweep"]["trial"] == number
        assert meta["sweep"]["params"]["model.init_args.lr"] == pytest.approx(lr)
        assert meta["sweep"]["state"] == {"completed": "COMPLETE", "pruned": "PRUNED"}[status]
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["experiment"]["sweep"]["params"]["model.init_args.lr"] == pytest.approx(lr)
        assert config["model"]["init_args"]["lr"] == pytest.approx(lr)
        assert list((run / "checkpoints").glob("*.ckpt")) and (run / "logs" / "csv").is_dir()
    pruned = json.loads((directory / "trial_2" / "metadata.json").read_text())
    assert pruned["epoch"] < SWEEP_CONFIG["trainer"]["max_epochs"] - 1  # stopped before its last epoch


def _succeeds(finished: dict[str, Any], enhtrain_cli: Callable[..., CliResult], *args: str) -> CliResult:
    """Run ``enhtrain ARGS`` in the finished sweep's folder and check that it exits with 0."""
    result = enhtrain_cli(*args, cwd=finished["cwd"])
    assert result.exit_code == 0, result.stderr
    return result


@pytest.mark.slow
def test_config_explain_shows_the_sweep_trial_layer(finished: dict[str, Any],
                                                    enhtrain_cli: Callable[..., CliResult]) -> None:
    cwd = finished["cwd"]
    result = _succeeds(finished, enhtrain_cli, "config", "explain", "--config", "runs/lrs/sweep-base.yaml", "--config",
                       "runs/lrs/sweep-trial-1.yaml", "--json")
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["model.init_args.lr"]["value"] == 0.1
    assert rows["model.init_args.lr"]["source"].startswith("runs/lrs/sweep-trial-1.yaml:")
    assert rows["experiment.version"]["value"] == "trial_1"
    assert rows["trainer.max_epochs"]["source"].startswith("runs/lrs/sweep-base.yaml:")
    assert "sweep trial 1 of lrs" in (cwd / "runs/lrs/sweep-trial-1.yaml").read_text().splitlines()[0]


@pytest.mark.slow
def test_show_lists_every_trial_as_a_table_and_as_json(finished: dict[str, Any],
                                                       enhtrain_cli: Callable[..., CliResult]) -> None:
    cwd = finished["cwd"]
    data = json.loads(_succeeds(finished, enhtrain_cli, "sweep", "show", "lrs", "--json").stdout)
    trials = data["trials"]
    assert [(t["trial"], t["state"]) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "PRUNED")]
    assert data["sweep"]["best"]["trial"] == 1 and data["sweep"]["states"] == {"COMPLETE": 2, "PRUNED": 1}
    assert trials[1]["value"] > trials[0]["value"]
    assert trials[1]["params"] == {"model.init_args.lr": 0.1, "model.init_args.hidden_dims": [16]}
    assert trials[2]["run_dir"] == "runs/lrs/trial_2"
    table = enhtrain_cli("sweep", "show", "lrs", cwd=cwd).stdout.splitlines()
    header = next(line for line in table if line.startswith("TRIAL"))
    assert header.split() == ["TRIAL", "STATE", "LR", "HIDDEN_DIMS", "VAL/ACC", "RUN"]
    assert any(line.startswith("1 *") and "complete" in line and "[16]" in line for line in table), table
    runs = enhtrain_cli("runs", "list", cwd=cwd).stdout
    assert any("trial_2" in line and "pruned" in line for line in runs.splitlines()), runs


@pytest.mark.slow
def test_best_prints_a_config_ready_to_train(finished: dict[str, Any],
                                             enhtrain_cli: Callable[..., CliResult]) -> None:
    cwd = finished["cwd"]
    result = _succeeds(finished, enhtrain_cli, "sweep", "best", "lrs", "--print_config")
    config = yaml.safe_load(result.stdout)
    assert config["model"]["init_args"]["lr"] == 0.1 and config["model"]["init_args"]["hidden_dims"] == [16]
    assert config["experiment"]["name"] == "base" and config["experiment"]["version"] is None
    assert "SweepPruning" not in result.stdout and "sweep" not in config["experiment"]
    (cwd / "best.yaml").write_text(result.stdout)
    explained = enhtrain_cli("config", "explain", "--config", "best.yaml", "--json", cwd=cwd)
    assert explained.exit_code == 0, explained.stderr
    short = enhtrain_cli("sweep", "best", "lrs", cwd=cwd)
    assert short.stdout.startswith("trial 1: val/acc=") and "run: runs/lrs/trial_1" in short.stdout


@pytest.mark.slow
def test_plots_are_written_as_html_and_png(finished: dict[str, Any], enhtrain_cli: Callable[..., CliResult]) -> None:
    result = _succeeds(finished, enhtrain_cli, "sweep", "plots", "lrs")
    directory = finished["dir"]
    titles = {"optimization_history": "Optimization History Plot", "parallel_coordinate": "Parallel Coordinate Plot",
              "param_importances": "Hyperparameter Importances", "intermediate_values": "Intermediate Values Plot"}
    for name, title in titles.items():
        html = (directory / f"{name}.html").read_text()
        assert 'src="plotly.min.js"' in html and f'"text":"{title}' in html, name
        assert (directory / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (directory / "plotly.min.js").stat().st_size > 100_000
    assert "skipped" not in result.stdout


# Runs in the page once plotly has drawn it; writes what the page shows into the DOM that --dump-dom prints.
_PAGE_CHECK = """<script>
(function report() {
  var gd = document.querySelector('.plotly-graph-div');
  if (!gd || !gd._fullLayout || !gd.querySelector('.main-svg') || !gd._fullData.length) {
    setTimeout(report, 50); return;
  }
  var box = gd.getBoundingClientRect();
  var texts = Array.from(gd.querySelectorAll('svg text')).filter(function (t) { return t.textContent; })
    .map(function (t) {
      var r = t.getBoundingClientRect();
      return {text: t.textContent, cls: t.getAttribute('class') || '', inside: r.width > 0 && r.left >= box.left - 1
              && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1};
    });
  var data = gd._fullData.map(function (d) {
    return {type: d.type, name: d.name, x: d.x || null, colorscale: (d.line || {}).colorscale || null,
            dimensions: (d.dimensions || []).map(function (x) { return {label: x.label, n: x.values.length}; })};
  });
  var out = document.createElement('pre');
  out.id = 'enhtrain-check';
  out.textContent = JSON.stringify({data: data, points: gd.querySelectorAll('.scatterlayer .point').length,
                                    texts: texts});
  document.body.appendChild(out);
})();
</script>"""


def _rendered(page: Path, profile: Path) -> dict[str, Any]:
    """Open a copy of the page, with the check above, in headless Chromium without network; what it shows."""
    import html
    import re

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser is not None, "the plot tests need Chromium: apt-get install chromium (.ci/run installs it)"
    text = page.read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", text), page  # nothing from the net
    probe = page.with_name(f"check-{page.name}")
    probe.write_text(text.replace("</body>", _PAGE_CHECK + "</body>"))
    proc = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           "--proxy-server=127.0.0.1:9", "--window-size=1000,600", f"--user-data-dir={profile}",
                           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r'<pre id="enhtrain-check">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert found is not None, f"{page.name} did not render: {proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
def test_plot_pages_show_every_trial_offline_with_whole_labels(finished: dict[str, Any],
                                                               enhtrain_cli: Callable[..., CliResult],
                                                               tmp_path: Path) -> None:
    out = tmp_path / "plots"
    _succeeds(finished, enhtrain_cli, "sweep", "plots", "lrs", "--out", str(out))
    history = _rendered(out / "optimization_history.html", tmp_path / "profile-1")
    by_name = {trace["name"]: trace for trace in history["data"]}
    assert by_name["complete"]["x"] == [0, 1] and by_name["pruned (last reported value)"]["x"] == [2]
    assert history["points"] == 3  # every trial drawn, the pruned one too
    titles = {t["text"] for t in history["texts"] if "title" in t["cls"]}
    assert {"trial", "val/acc"} <= titles
    parallel = _rendered(out / "parallel_coordinate.html", tmp_path / "profile-2")
    (trace,) = parallel["data"]
    dimensions = trace["dimensions"]
    assert [d["label"] for d in dimensions] == ["val/acc", "lr", "hidden_dims", "state"]
    assert {d["n"] for d in dimensions} == {3}  # one line per trial, the pruned one at its last value
    assert trace["colorscale"][0][1] == "#d62728"  # the worst end is a strong colour, not white
    labels = [t for t in parallel["texts"] if "axis-title" in t["cls"]]
    assert sorted(t["text"] for t in labels) == ["hidden_dims", "lr", "state", "val/acc"]
    for shown in (history, parallel):  # no text shortened by the plot, nor drawn beyond the page's edge
        cut = [t["text"] for t in shown["texts"] if not t["inside"] or t["text"].endswith(("...", "\u2026"))]
        assert not cut, cut
    assert any("lr = model.init_args.lr" in t["text"] for t in parallel["texts"])  # the full names


@pytest.mark.slow
def test_results_commands_import_no_torch(finished: dict[str, Any]) -> None:
    probe = ("import contextlib, io, json, sys\nfrom enhtrain.commands import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    assert main(['sweep', 'show', 'lrs']) == 0\n"
             "    assert main(['sweep', 'best', 'lrs', '--print_config']) == 0\n"
             "print(json.dumps([m for m in ('torch', 'lightning') if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=finished["cwd"], env=_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_a_sweep_continues_with_more_trials_but_not_with_another_spec(finished: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    cwd = tmp_path / "copy"  # a copy: the other tests read the finished sweep as it is
    shutil.copytree(finished["cwd"], cwd, ignore=shutil.ignore_patterns("*.html", "*.png", "*.js", "proc.json"))
    spec = yaml.safe_load((cwd / "spec.yaml").read_text())
    spec["sweep"]["metric"] = "val/loss"
    (cwd / "other.yaml").write_text(yaml.safe_dump(spec))
    refused = enhtrain("sweep", "run", "--config", "tiny.yaml", "--sweep", "other.yaml", cwd=cwd)
    assert refused.returncode == 2
    assert "other.yaml: sweep.metric: differs from the spec sweep 'lrs' started with" in refused.stderr
    more = enhtrain("sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml", "--trials", "4", cwd=cwd)
    assert more.returncode == 0, more.stdout + more.stderr
    assert "trial 3 " in more.stdout and "trial 0 " not in more.stdout
    trials = json.loads(enhtrain("sweep", "show", "lrs", "--json", cwd=cwd).stdout)["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 2, 3]
    # Trial 3 is the first the seeded sampler drew (0-2 were enqueued): from the seed made of the spec's seed and
    # the 3 trials the study held, not from the spec's seed, which would draw what a fresh sweep's first trial drew.
    from enhtrain.sweeps.spec import build_sampler, load_spec

    spec = load_spec(cwd / "spec.yaml")
    space = {p.key: p.distribution() for p in spec.parsed_params()}

    def first_draw(done: int) -> float:
        return optuna.create_study(sampler=build_sampler(spec, done=done)).ask(space).params["model.init_args.lr"]

    assert trials[3]["params"]["model.init_args.lr"] == first_draw(3) != first_draw(0)


def _continue(directory: Path, trials: int, sampler: dict[str, Any]) -> list[dict[str, Any]]:
    """Open (or continue) a sweep's study as ``sweep run`` does, and let it ask for trials up to ``trials``, each
    told a value at once: the sampler's draws without any training."""
    from enhtrain.sweeps.spec import load_spec
    from enhtrain.sweeps.study import create_or_continue, embedded_url

    spec_file = write_spec(directory / "spec.yaml", name="seeded", metric="val/loss", trials=trials, sampler=sampler,
                           params={"model.init_args.lr": LR, "model.init_args.dropout": {"float": [0.0, 0.5]}})
    spec = load_spec(spec_file)
    sweep = create_or_continue(spec, {"trainer": {"max_epochs": 1}}, [], embedded_url(directory), directory,
                               command=["enhtrain", "sweep", "run"], spec_file=str(spec_file))
    try:
        while len(sweep.study.trials) < trials:
            trial = sweep.study.ask({p.key: p.distribution() for p in sweep.params})
            sweep.study.tell(trial, trial.params["model.init_args.dropout"])
        return [t.params for t in sweep.study.get_trials(deepcopy=False)]
    finally:
        sweep.close()


@pytest.mark.parametrize("sampler", [{"name": "tpe", "seed": 0}, {"name": "random", "seed": 7}],
                         ids=["tpe", "random"])
def test_a_continued_seeded_sweep_draws_new_values_repeatably(tmp_path: Path, sampler: dict[str, Any]) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    first.mkdir()
    started = _continue(first, 4, sampler)
    shutil.copytree(first, again)
    continued = _continue(first, 8, sampler)
    assert continued[:4] == started
    values = [tuple(sorted(params.items())) for params in continued]
    assert len(set(values)) == 8, values  # no continued trial repeats an earlier one
    assert _continue(again, 8, sampler) == continued  # the same continuation draws the same values
    assert _continue(first, 10, sampler)[:8] == continued  # and a second continuation continues again


# --- bad input found by composing the config or by the first trial ---------------------------------------------


@pytest.mark.slow
def test_unknown_param_key_suggests_the_closest_key(tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "tiny.yaml")
    write_spec(tmp_path / "spec.yaml", name="typo", metric="val/acc",
               params={"model.init_args.lr": LR, "model.init_args.hiden_dims": WIDTH})
    proc = enhtrain("sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "enhtrain: error: spec.yaml:10: sweep.params: unknown key 'model.init_args.hiden_dims': the composed config "
        "has no such key; did you mean 'model.init_args.hidden_dims'?"
    )
    assert not (tmp_path / "runs").exists() and "trial" not in proc.stdout


@pytest.mark.slow
def test_a_metric_never_logged_is_reported_after_the_first_trial(tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "tiny.yaml")
    write_spec(tmp_path / "spec.yaml", name="nometric", metric="val/accuracy", trials=3,
               params={"model.init_args.lr": LR})
    # Trials as fresh processes (the fallback of warm trial processes): said once, and they run as before.
    proc = enhtrain("sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml", "--no-fork", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.count("trials start as fresh processes (--no-fork)") == 1
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "sweep.metric: 'val/accuracy' was never logged by trial 0 (runs/nometric/trial_0); it logged: " in line
    assert "train/loss, val/acc, val/loss; set sweep.metric to one of them" in line
    assert proc.stdout.count(" started:") == 1
    # Nothing is left: the fixed spec starts afresh under the same name.
    assert not (tmp_path / "runs").exists()


def test_every_sampler_and_pruner_of_a_spec_builds() -> None:
    from enhtrain.sweeps.spec import PRUNERS, SAMPLERS, SweepSpec, build_pruner, build_sampler

    params = {"model.init_args.dropout": {"float": [0.0, 0.5], "step": 0.25}, "model.init_args.hidden_dims": WIDTH}
    for name, cls in SAMPLERS.items():
        spec = SweepSpec(name="s", metric="val/loss", sampler={"name": name, "seed": 3}, params=params)
        assert type(build_sampler(spec)).__name__ == cls
    grid = build_sampler(SweepSpec(name="s", metric="val/loss", sampler="grid", params=params))
    assert grid._search_space == {"model.init_args.dropout": [0.0, 0.25, 0.5],
                                  "model.init_args.hidden_dims": ["[8]", "[16]"]}
    for name, cls in PRUNERS.items():
        spec = SweepSpec(name="s", metric="val/loss", pruner=name, params=params)
        assert type(build_pruner(spec)).__name__ == cls
    assert SweepSpec(name="s", metric="val/loss", params=params).mode == "min"


def test_storage_benchmark_smoke(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    from benchmarks.sweep_storage import STORES, measure

    result = measure(workers=2, trials=6, reps=1, kill=False)
    assert set(result["summary"]) == set(STORES)
    for row in result["runs"]:
        assert row["errors"] == 0 and row["told_once"] and row["states"] == {"COMPLETE": 6}, row
        assert row["ms_per_trial"] > 0


@pytest.mark.slow
def test_a_base_config_with_a_secret_is_refused(tmp_path: Path) -> None:
    write_tiny_config(tmp_path / "tiny.yaml")
    (tmp_path / "secret.yaml").write_text("experiment:\n  description: run by token-holder\n")
    write_spec(tmp_path / "spec.yaml", name="secret", metric="val/acc", params={"model.init_args.lr": LR})
    env_secret = {"MY_API_KEY": "token-holder"}
    proc = subprocess.run([sys.executable, "-m", "enhtrain", "sweep", "run", "--config", "tiny.yaml", "--config",
                           "secret.yaml", "--sweep", "spec.yaml"], cwd=tmp_path, env={**_env(), **env_secret},
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "enhtrain: error: experiment.description: the base config holds a secret, and a sweep stores its base "
        "config in the study for every worker to read; remove the key and let the logger read its own environment "
        "variable (such as WANDB_API_KEY)"
    )
    assert "token-holder" not in proc.stderr and not (tmp_path / "runs").exists()


SNEAKY = '''
import inspect, threading, time
from lightning.pytorch import Callback

# A thread in the preloaded process only: when imported there for the next trials (not in a trial, not in the
# throwaway copy that tries the import first).
_callers = {frame.function for frame in inspect.stack()}
if "_learn" in _callers and "_import_harmless" not in _callers:
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()


class Noop(Callback):
    pass
'''


def test_a_preloaded_process_that_may_no_longer_fork_leaves_its_trials_to_fresh_processes(tmp_path: Path) -> None:
    (tmp_path / "sneaky.py").write_text(SNEAKY, encoding="utf-8")
    write_tiny_config(tmp_path / "tiny.yaml", {"trainer": {"callbacks": [{"class_path": "sneaky.Noop"}]}})
    write_spec(tmp_path / "spec.yaml", name="tainted", metric="val/acc", trials=2, params={"model.init_args.lr": LR})
    proc = enhtrain("sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("warm trial processes are unavailable (a module a trial imported started a thread in "
                             "the preloaded process): its trials start as fresh processes") == 1
    assert proc.stdout.count(" complete: val/acc=") == 2
    pids = [json.loads((tmp_path / "runs" / "tainted" / f"trial_{n}" / "metadata.json").read_text())["pid"]
            for n in (0, 1)]
    assert pids[0] != pids[1]


@pytest.mark.slow
def test_on_a_platform_without_fork_trials_start_as_fresh_processes_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from enhtrain.commands import main
    from enhtrain.sweeps import forkserver

    monkeypatch.setattr(forkserver, "fork_available", lambda: False)
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    write_tiny_config(tmp_path / "tiny.yaml")
    write_spec(tmp_path / "spec.yaml", name="nofork", metric="val/acc", trials=2, params={"model.init_args.lr": LR})
    assert main(["sweep", "run", "--config", "tiny.yaml", "--sweep", "spec.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.count("this platform has no fork: each trial starts a fresh process") == 1
    assert out.count(" complete: val/acc=") == 2
    pids = {json.loads((tmp_path / "runs" / "nofork" / f"trial_{n}" / "metadata.json").read_text())["pid"]
            for n in (0, 1)}
    assert len(pids) == 2 and os.getpid() not in pids  # each trial its own fresh process
