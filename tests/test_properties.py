"""Property-based tests: whatever a config looks like, ``enhtrain`` answers with a result or a clear error.

Hypothesis mutates a valid config: it drops and renames keys, changes the type of values, inserts random
scalars and strings, writes random ``class_path`` strings, or replaces the whole file by random text. Each
mutant runs in-process through :func:`enhtrain.commands.main`. The outcome must be exit status 0, or exit
status 2 with one ``enhtrain: error:`` line; never an exception, never a traceback, and no run directory
left by a failure. Most mutants run with ``--print_config`` (nothing trains); a few really train, with tiny
limits. Runs are derandomized, so every run tries the same examples.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhtrain.commands import main
from enhtrain.testing import tiny_config

pytestmark = pytest.mark.timeout(240)

BASE = tiny_config(
    {
        "seed_everything": 1,
        "model": {"init_args": {"lr": 0.01, "micro_batch_size": 16}},
        "experiment": {
            "name": "prop",
            "tags": ["a"],
            "loggers": {"csv": {}, "tensorboard": None},
            "callbacks": {"throughput": {}, "run_summary": None},
            "checkpoint": {"monitor": "val/loss", "save_top_k": 1},
        },
    }
)

# Flags that keep a mutant that trains small, whatever the mutation did to the trainer section.
LIMITS = ["--trainer.max_steps", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.max_time", "00:00:01:00"]

CLASS_PATHS = [
    "enhtrain.models.MLPClassifier",
    "enhtrain.data.DatasetDataModule",
    "lightning.pytorch.callbacks.EarlyStopping",
    "torch.optim.SGD",
    "torch.nn.Linear",
    "os.system",
    "subprocess.Popen",
    "builtins.eval",
    "importlib.import_module",
    "enhtrain.models.NoSuchModel",
    "enhtrain_fuzz_missing.Model",
    "enhtrain.models",
    "enhtrain",
    "",
    ".",
    "..Model",
    "enhtrain.models:MLPClassifier",
    "__main__.X",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
    st.sampled_from(["auto", "cpu", "ddp", "null", "~", "${experiment.name}", "${oc.env:HOME}", "${nope}", "1e3"]),
)
values = st.one_of(
    scalars,
    st.lists(st.integers(min_value=-4, max_value=32), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=6), scalars, max_size=2),
)
class_paths = st.one_of(
    st.sampled_from(CLASS_PATHS),
    st.from_regex(r"enhtrain_fuzz_[a-z]{1,6}(\.[A-Za-z_]{1,8}){0,3}", fullmatch=True),
    st.text(max_size=24),
)


def key_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every key and list item in a config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from key_paths(value, (*prefix, index))


def parent_of(config: dict[str, Any], path: tuple[Any, ...]) -> Any:
    """Return the mapping or list that holds the last element of ``path``."""
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutants(draw: st.DrawFn) -> str:
    """Draw the text of a config file: a mutated ``BASE``, or random text."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(st.one_of(st.text(max_size=120), st.sampled_from(["{", "a: [", "- 1\n- 2", "a: b: c", "\t"])))
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(key_paths(config))
        action = draw(st.sampled_from(["drop", "rename", "retype", "insert", "class_path"]))
        path = draw(st.sampled_from(paths)) if paths else ()
        if not path:
            config[draw(st.text(min_size=1, max_size=8))] = draw(values)
            continue
        holder = parent_of(config, path)
        if action == "drop":
            del holder[path[-1]]
        elif action == "rename" and isinstance(holder, dict):
            holder[str(path[-1]) + draw(st.sampled_from(["_", "s", "X", "."]))] = holder.pop(path[-1])
        elif action == "retype":
            holder[path[-1]] = draw(values)
        elif action == "insert" and isinstance(holder, dict):
            holder[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif action == "class_path":
            section = draw(st.sampled_from(["model", "data", "optimizer", "trainer.callbacks", "trainer.logger"]))
            target: Any = config
            *parents, leaf = section.split(".")
            for part in parents:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            entry = {"class_path": draw(class_paths)}
            target[leaf] = [entry] if leaf == "callbacks" else entry
        else:
            holder[path[-1]] = draw(values)
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


plausible = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=40),
    st.floats(min_value=-1.0, max_value=2.0),
    st.sampled_from(["auto", "cpu", "max", "min", "val/loss", "train/loss", "", "digits", "diabetes", "adam"]),
    st.lists(st.integers(min_value=-1, max_value=16), max_size=2),
)


@st.composite
def small_mutants(draw: st.DrawFn) -> str:
    """Draw a config with one or two leaves of ``BASE`` set to plausible values, so that most of them train."""
    config = copy.deepcopy(BASE)
    leaves = [p for p in key_paths(BASE) if not isinstance(parent_of(BASE, p)[p[-1]], (dict, list))]
    for path in draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=2, unique=True)):
        parent_of(config, path)[path[-1]] = draw(plausible)
    return yaml.safe_dump(config, sort_keys=False)


def run_in(folder: Path, text: str, args: list[str]) -> tuple[int, str, str]:
    """Write ``text`` to ``folder/mutant.yaml`` and run ``enhtrain fit`` on it there, in-process."""
    (folder / "mutant.yaml").write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["fit", "--config", "mutant.yaml", *args])
    finally:
        os.chdir(previous)
        os.environ.pop("ENHTRAIN_RUN_DIR", None)
    return code, out.getvalue(), err.getvalue()


def check_outcome(code: int, err: str, folder: Path) -> None:
    """Exit 0, or exit 2 with exactly one error line and no run directory; never a traceback."""
    assert code in (0, 2), (code, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("enhtrain: error: ")]
        assert len(errors) == 1, err[-3000:]
        assert len(errors[0]) > len("enhtrain: error: ") + 5, errors
        assert not (folder / "runs").exists(), "a failed command left a run directory"


def test_base_config_is_valid(tmp_path: Path) -> None:
    code, out, err = run_in(tmp_path, yaml.safe_dump(BASE), ["--print_config"])
    assert code == 0, err
    assert yaml.safe_load(out)["model"]["init_args"]["hidden_dims"] == [8]


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutants())
def test_any_config_is_printed_or_refused_clearly(text: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        code, out, err = run_in(folder, text, ["--print_config"])
        check_outcome(code, err, folder)
        if code == 0:
            assert isinstance(yaml.safe_load(out), dict)
        assert not (folder / "runs").exists()


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.one_of(small_mutants(), mutants()))
def test_any_config_trains_or_is_refused_clearly(text: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        code, _, err = run_in(folder, text, LIMITS)
        check_outcome(code, err, folder)
        if code == 0:
            runs = [p for p in (folder / "runs").glob("*/*") if p.is_dir()]
            assert len(runs) == 1, runs
            assert (runs[0] / "metadata.json").read_text().count('"status": "completed"') == 1
