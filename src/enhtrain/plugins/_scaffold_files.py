"""The files ``enhtrain plugins new`` writes, as text with ``@@TOKEN@@`` placeholders.

Placeholders: ``@@NAME@@`` (the plugin's entry-point name), ``@@ID@@`` (the same with ``_`` for ``-``, the prefix
of every component name), ``@@DIST@@`` (the distribution), ``@@PACKAGE@@`` (the import package),
``@@VERSIONS@@`` (the enhtrain versions to depend on). Parts that belong to one kind of component are
joined by :mod:`enhtrain.plugins.scaffold` for the kinds chosen.
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "@@DIST@@"
version = "0.1.0"
description = "An enhtrain plugin: @@SUMMARY@@."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["@@VERSIONS@@"]

[project.entry-points.enhtrain]
@@NAME@@ = "@@PACKAGE@@.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
@@PACKAGE@@ = [@@PACKAGE_DATA@@]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]

[tool.ruff]
line-length = 120
src = ["src", "tests"]

[tool.ruff.lint]
select = ["E", "F", "W", "I", "UP", "B", "SIM", "RUF"]
"""

PACKAGE_INIT = '''\
"""@@DIST@@: an enhtrain plugin.

It registers, through :mod:`@@PACKAGE@@.plugin`:

@@BULLETS@@

Importing this package (as ``enhtrain plugins`` does) imports neither torch nor Lightning: the components
live in their own modules, imported only when a config uses them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
'''

PLUGIN_HEAD = '''\
"""The hook implementations of the ``@@NAME@@`` plugin (entry point ``@@PACKAGE@@.plugin``).

Components are registered by import path, so loading this module (``enhtrain plugins``) stays cheap.
"""

from __future__ import annotations

'''

PLUGIN_CALLBACK = '''

@hookimpl
def enhtrain_register_callbacks(registry: KindRegistry) -> None:
    """Register ``@@ID@@_batch_counter``."""
    registry.register("@@PACKAGE@@.callbacks:BatchCounter", name="@@ID@@_batch_counter")
'''

PLUGIN_LOGGER = '''

@hookimpl
def enhtrain_register_loggers(registry: KindRegistry) -> None:
    """Register ``@@ID@@_jsonl``."""
    registry.register("@@PACKAGE@@.loggers:JsonlLogger", name="@@ID@@_jsonl")
'''

PLUGIN_PROFILER = '''

@hookimpl
def enhtrain_register_profilers(registry: KindRegistry) -> None:
    """Register ``@@ID@@_wall_clock``."""
    registry.register("@@PACKAGE@@.profilers:WallClockProfiler", name="@@ID@@_wall_clock")
'''

PLUGIN_TEMPLATE = '''

@hookimpl
def enhtrain_register_templates(registry: KindRegistry) -> None:
    """Register every template shipped in ``templates/`` under its file stem (``@@ID@@``)."""
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        registry.register(path, name=path.stem)
'''

PLUGIN_ENV = '''

@hookimpl
def enhtrain_env_overlays(env: str) -> list[str] | None:
    """Contribute ``envs/<env>.yaml`` when this plugin ships one (it ships ``@@ID@@``)."""
    path = ENV_DIR / f"{env}.yaml"
    return [str(path)] if path.is_file() else None
'''

PLUGIN_CHECK = '''

@hookimpl
def enhtrain_validate_config(config: dict[str, Any]) -> None:
    """Reject runs of more than :data:`MAX_EPOCHS` epochs.

    ``config`` is the composed config with every default filled in: ``trainer.max_epochs`` is ``None`` unless a
    layer sets it.

    Raises:
        ConfigError: If ``trainer.max_epochs`` is above :data:`MAX_EPOCHS`; enhtrain adds where the key was set
            and this plugin's name.
    """
    max_epochs = (config.get("trainer") or {}).get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs > MAX_EPOCHS:
        raise ConfigError(
            f"at most {MAX_EPOCHS} epochs with the @@NAME@@ plugin, got {max_epochs}; lower trainer.max_epochs",
            key="trainer.max_epochs",
        )
'''

CALLBACKS = '''\
"""The ``@@ID@@_batch_counter`` callback."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

__all__ = ["BatchCounter"]


class BatchCounter(Callback):
    """Count training batches and log the count as ``train/batches`` at the end of every epoch.

    The count is saved in checkpoints, so a resumed run goes on counting.

    Args:
        metric_name: The name the count is logged under.

    Example::

        experiment:
          callbacks:
            @@ID@@_batch_counter: {}
    """

    def __init__(self, metric_name: str = "train/batches") -> None:
        self.metric_name = metric_name
        self.batches = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count one batch."""
        self.batches += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Send the count to every logger of the trainer."""
        for logger in trainer.loggers:
            logger.log_metrics({self.metric_name: self.batches}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        """Return the count, for checkpoints."""
        return {"batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the count of a resumed run."""
        self.batches = int(state_dict.get("batches", 0))
'''

LOGGERS = '''\
"""The ``@@ID@@_jsonl`` logger: metrics as JSON lines, hyper-parameters as JSON."""

from __future__ import annotations

import json
import os
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger

__all__ = ["JsonlLogger"]


class JsonlLogger(Logger):
    """Append one JSON object per :meth:`log_metrics` call to ``<log_dir>/metrics.jsonl``.

    Each line holds ``step`` and the metrics; hyper-parameters go to ``<log_dir>/hparams.json``. enhtrain passes
    ``log_dir`` (the run's ``logs/@@ID@@_jsonl/``), ``name`` and ``version`` (the run's).

    Args:
        log_dir: The folder the files are written to; created when missing.
        name: The run's name.
        version: The run's version.
    """

    def __init__(self, log_dir: str, name: str, version: str) -> None:
        super().__init__()
        self._log_dir = str(log_dir)
        self._name = name
        self._version = version
        self._hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """The run's name."""
        return self._name

    @property
    def version(self) -> str:
        """The run's version."""
        return self._version

    @property
    def log_dir(self) -> str:
        """The folder holding ``metrics.jsonl`` and ``hparams.json``."""
        return self._log_dir

    @property
    def save_dir(self) -> str:
        """Same as :attr:`log_dir`."""
        return self._log_dir

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append one line with ``step`` and the metrics."""
        row: dict[str, Any] = {"step": step}
        row.update({key: value.item() if hasattr(value, "item") else value for key, value in metrics.items()})
        os.makedirs(self._log_dir, exist_ok=True)
        with open(Path(self._log_dir) / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\\n")

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Add ``params`` to ``hparams.json`` (enhtrain logs the run's whole config as ``config``)."""
        self._hparams.update(vars(params) if isinstance(params, Namespace) else dict(params))
        os.makedirs(self._log_dir, exist_ok=True)
        path = Path(self._log_dir) / "hparams.json"
        path.write_text(json.dumps(self._hparams, indent=2, default=str) + "\\n", encoding="utf-8")
'''

PROFILERS = '''\
"""The ``@@ID@@_wall_clock`` profiler: total wall time per action."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from lightning.pytorch.profilers import Profiler

__all__ = ["WallClockProfiler"]


class WallClockProfiler(Profiler):
    """Record the total wall time and the number of calls of every profiled action.

    When a stage ends, Lightning writes the report of :meth:`summary` to ``<dirpath>/<stage>-<filename>.txt``:
    ``profiler/fit-@@ID@@_wall_clock.txt`` in a run, since enhtrain passes ``dirpath`` and ``filename``.

    Args:
        dirpath: The folder the report is written to.
        filename: The report's base name; the stage and ``.txt`` are added.
    """

    def __init__(self, dirpath: str | Path | None = None, filename: str | None = None) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._started: dict[str, float] = {}

    def start(self, action_name: str) -> None:
        """Start timing ``action_name``."""
        self._started[action_name] = time.perf_counter()

    def stop(self, action_name: str) -> None:
        """Stop timing ``action_name`` and add the time to its total."""
        started = self._started.pop(action_name, None)
        if started is not None:
            self.totals[action_name] += time.perf_counter() - started
            self.calls[action_name] += 1

    def summary(self) -> str:
        """Return the report: total seconds, calls and action, longest first."""
        stage = f"{self._stage.upper()} " if self._stage else ""
        lines = [f"{stage}wall-clock profile", f"{'total_s':>12}  {'calls':>7}  action"]
        for action, total in sorted(self.totals.items(), key=lambda item: item[1], reverse=True):
            lines.append(f"{total:12.6f}  {self.calls[action]:7d}  {action}")
        return os.linesep.join(lines) + os.linesep
'''

TEMPLATE = """\
# @@ID@@: an MLP on scikit-learn's digits for 2 epochs@@TEMPLATE_WITH@@.
trainer:
  max_epochs: 2
model:
  class_path: enhtrain.models.MLPClassifier
  init_args: {hidden_dims: [64]}
data:
  class_path: enhtrain.data.DatasetDataModule
  init_args: {dataset: digits, batch_size: 64}
experiment:
  name: @@ID@@
@@TEMPLATE_EXPERIMENT@@"""

ENV = """\
# @@ID@@: short runs (one epoch of five batches), contributed by the @@NAME@@ plugin: --env @@ID@@.
trainer:
  max_epochs: 1
  limit_train_batches: 5
"""

TESTS_HEAD = '''\
"""Tests of the @@NAME@@ plugin, with enhtrain's pytest fixtures (``enhtrain.testing``).

``enhtrain_plugin`` registers the plugin on a plugin manager of the test's own, so every test but
``test_installed_plugin_is_listed``, which checks the installed entry point, passes whether or not the
distribution is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enhtrain import plugins
@@TESTING_IMPORT@@
from @@PACKAGE@@ import plugin

DISTRIBUTION = "@@DIST@@"


def test_installed_plugin_is_listed(enhtrain_plugins: Any, enhtrain_cli: Any) -> None:
    enhtrain_plugins(autoload=True)

    result = enhtrain_cli("plugins", "--json")

    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    row = rows["@@NAME@@"]
    assert row["distribution"] == DISTRIBUTION
    assert row["error"] is None
    assert row["registered"] == @@REGISTERED@@


def test_plugin_registers_its_components(enhtrain_plugin: Any) -> None:
    enhtrain_plugin(plugin, name="@@NAME@@")

    registered = plugins.get_registry().by_plugin()["@@NAME@@"]

    assert registered == @@REGISTERED@@
'''

TESTS_FIT = '''

def test_fit_with_the_plugin_components(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="@@NAME@@")
    experiment = {
@@FIT_EXPERIMENT@@    }
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": experiment})

    result = enhtrain_cli("fit", "--config", "tiny.yaml")

    assert result.exit_code == 0, result.stderr
    [run] = result.run_dirs()
    assert json.loads((run / "metadata.json").read_text(encoding="utf-8"))["status"] == "completed"
@@FIT_CHECKS@@'''

TESTS_FIT_CALLBACK = '''\
    metrics = (run / "logs" / "csv" / "metrics.csv").read_text(encoding="utf-8").splitlines()
    column = metrics[0].split(",").index("train/batches")
    assert [float(line.split(",")[column]) for line in metrics[1:] if line.split(",")[column]] == [2.0]
'''

TESTS_FIT_LOGGER = '''\
    lines = (run / "logs" / "@@ID@@_jsonl" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert any("val/loss" in json.loads(line) for line in lines)
    hparams = json.loads((run / "logs" / "@@ID@@_jsonl" / "hparams.json").read_text(encoding="utf-8"))
    assert hparams["config"]["experiment"]["name"] == "@@ID@@-test"
'''

TESTS_FIT_PROFILER = '''\
    report = (run / "profiler" / "fit-@@ID@@_wall_clock.txt").read_text(encoding="utf-8")
    assert report.startswith("FIT wall-clock profile")
    assert "run_training_epoch" in report
'''

TESTS_CALLBACK = '''

def test_unknown_option_is_refused(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="@@NAME@@")
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "@@ID@@-test"}})

    result = enhtrain_cli(
        "fit", "--config", "tiny.yaml", "--experiment.callbacks.@@ID@@_batch_counter", "{every: 2}"
    )

    assert result.exit_code == 2
    assert "experiment.callbacks.@@ID@@_batch_counter: unknown option 'every'" in result.stderr
    assert result.run_dirs() == []
'''

TESTS_TEMPLATE = '''

def test_template_is_shown_and_composes(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="@@NAME@@")

    shown = enhtrain_cli("templates", "show", "@@ID@@")
    (tmp_path / "from_template.yaml").write_text(shown.stdout, encoding="utf-8")
    explained = enhtrain_cli("config", "explain", "--json", "--config", "from_template.yaml")

    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == (plugin.TEMPLATE_DIR / "@@ID@@.yaml").read_text(encoding="utf-8")
    assert explained.exit_code == 0, explained.stderr
    values = {row["key"]: row["value"] for row in json.loads(explained.stdout)}
    assert values["experiment.name"] == "@@ID@@"
    assert values["experiment.loggers.csv"] == {}  # the default loggers stay unless the template removes them
'''

TESTS_ENV = '''

def test_env_overlay_applies(enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path) -> None:
    enhtrain_plugin(plugin, name="@@NAME@@")
    write_tiny_config(tmp_path / "tiny.yaml")

    result = enhtrain_cli("config", "explain", "--json", "--config", "tiny.yaml", "--env", "@@ID@@")

    assert result.exit_code == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["trainer.limit_train_batches"]["value"] == 5
    assert "env overlay '@@ID@@'" in rows["trainer.limit_train_batches"]["source"]
'''

TESTS_CHECK = '''

def test_check_accepts_defaults_and_refuses_too_many_epochs(
    enhtrain_plugin: Any, enhtrain_cli: Any, tmp_path: Path
) -> None:
    plugin.enhtrain_validate_config({"trainer": {"max_epochs": None}})
    enhtrain_plugin(plugin, name="@@NAME@@")
    write_tiny_config(tmp_path / "tiny.yaml", {"experiment": {"name": "@@ID@@-test"}})

    result = enhtrain_cli("fit", "--config", "tiny.yaml", "--trainer.max_epochs", "5000")

    assert result.exit_code == 2
    assert "flag --trainer.max_epochs: at most 1000 epochs" in result.stderr
    assert "(from plugin @@NAME@@)" in result.stderr
    assert result.run_dirs() == []
'''

README = """\
# @@DIST@@

An [enhtrain](https://pypi.org/project/enhtrain/) plugin. It registers:

| Kind | Name | What it is |
|------|------|------------|
@@README_ROWS@@

## Install and test

```bash
pip install -e .
python -m enhtrain plugins
python -m pytest
```

`enhtrain plugins` then lists `@@NAME@@ (@@DIST@@ 0.1.0)` with the names above. The tests use enhtrain's pytest
fixtures (`enhtrain_plugin`, `enhtrain_plugins`, `enhtrain_cli`): each test gets a plugin manager of its own, so
all but `test_installed_plugin_is_listed`, which checks the installed entry point, pass before `pip install`
too.

@@README_USE@@## Layout

```text
@@README_LAYOUT@@
```
"""
