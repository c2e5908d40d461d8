"""One composition path: what ``config explain`` reports is what a run uses, for any stack of layers.

Hypothesis builds random stacks of layers (a second config file, an environment overlay, ``ENHTRAIN_*``
variables and command-line flags, each in every flag form jsonargparse reads) whose values interpolate one
another across layers. For each stack, ``enhtrain config explain --json`` and a tiny ``enhtrain fit`` run in
this process; every value that explain reports for the sections the run saves must equal the value in the
run's ``config.yaml``.
"""

from __future__ import annotations

import contextlib
import io
import json
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

pytestmark = pytest.mark.timeout(300)

# The keys a stack may set, each with a strategy for a plain value. Every one can also be an interpolation
# of an integer key (the integer keys never interpolate each other, so no stack is circular).
INT_KEYS = {
    "trainer.max_steps": st.integers(1, 3),
    "trainer.log_every_n_steps": st.integers(1, 9),
    "seed_everything": st.integers(0, 99),
    "data.init_args.batch_size": st.sampled_from([8, 16, 32]),
}
OTHER_KEYS = {
    "model.init_args.lr": st.sampled_from([0.001, 0.01, 1e-3, 0.05]),
    "experiment.name": st.text("abcxyz-", max_size=6).map(lambda text: "n" + text),
    "experiment.tags": st.lists(st.text("abc", min_size=1, max_size=3), max_size=2),
}
LAYERS = ("file", "overlay", "variable", "flag")


@st.composite
def _values(draw: st.DrawFn) -> dict[str, Any]:
    """A value or an interpolation for each chosen key, interpolations only of integer keys."""
    chosen = draw(st.lists(st.sampled_from(sorted({*INT_KEYS, *OTHER_KEYS})), unique=True, min_size=1, max_size=6))
    values: dict[str, Any] = {}
    for key in chosen:
        if key in INT_KEYS:
            values[key] = draw(INT_KEYS[key])
            continue
        source = draw(st.sampled_from(sorted(INT_KEYS)))
        kind = draw(st.sampled_from(["plain", "interpolated"]))
        if kind == "plain" or key == "model.init_args.lr":
            values[key] = draw(OTHER_KEYS[key])
        elif key == "experiment.tags":
            values[key] = [f"t${{{source}}}", "x"]
        else:
            values[key] = f"r${{{source}}}"
    # An integer key set from another one, across layers: e.g. log_every_n_steps: ${trainer.max_steps}.
    if draw(st.booleans()):
        target, source = draw(st.permutations(sorted(INT_KEYS)))[:2]
        if source in values:
            values[target] = f"${{{source}}}"
    return values


@st.composite
def _stacks(draw: st.DrawFn) -> list[tuple[str, str, Any, str]]:
    """``(layer, key, value, flag form)`` for each value: which layer sets it, and how a flag is written."""
    values = draw(_values())
    stack = []
    for key, value in values.items():
        layer = draw(st.sampled_from(LAYERS))
        if isinstance(value, str) and "${" in value and layer == "variable":
            layer = "flag"  # a variable's value is read as YAML text like a flag's; both forms are covered
        form = draw(st.sampled_from(["space", "equals", "shorthand"]))
        stack.append((layer, key, value, form))
    return stack


def _nested(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in pairs:
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _flag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _arguments(stack: list[tuple[str, str, Any, str]], folder: Path) -> tuple[list[str], dict[str, str]]:
    """Write the stack's files into ``folder``; return the command line's arguments and variables."""
    base = tiny_config({"seed_everything": 1, "trainer": {"max_steps": 2, "log_every_n_steps": 5},
                        "data": {"init_args": {"batch_size": 16}},
                        "experiment": {"name": "prop", "checkpoint": None,
                                       "loggers": {"csv": {}, "tensorboard": None}}})
    (folder / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    files = [(k, v) for layer, k, v, _ in stack if layer == "file"]
    overlay = [(k, v) for layer, k, v, _ in stack if layer == "overlay"]
    (folder / "more.yaml").write_text(yaml.safe_dump(_nested(files), sort_keys=False))
    (folder / "overlay.yaml").write_text(yaml.safe_dump(_nested(overlay), sort_keys=False))
    args = ["--config", "base.yaml", "--config", "more.yaml", "--env", str(folder / "overlay.yaml")]
    variables = {}
    for layer, key, value, form in stack:
        if layer == "variable":
            variables["ENHTRAIN_" + key.upper().replace(".", "__")] = _flag_value(value)
        elif layer == "flag":
            name = key.replace("model.init_args.", "model.") if form == "shorthand" else key
            args += [f"--{name}={_flag_value(value)}"] if form == "equals" else [f"--{name}", _flag_value(value)]
    return args, variables


@contextlib.contextmanager
def _inside(folder: Path, variables: dict[str, str]) -> Iterator[None]:
    """Run in ``folder`` with ``variables`` set (and no other ``ENHTRAIN_*`` variable), then restore both."""
    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    for name in [n for n in os.environ if n.startswith("ENHTRAIN_")]:
        del os.environ[name]
    os.environ.update(variables, ENHTRAIN_PLAIN_PROGRESS="1")
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)
    return status, out.getvalue(), err.getvalue()


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stack=_stacks())
def test_explain_reports_every_value_the_run_uses(stack: list[tuple[str, str, Any, str]]) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        args, variables = _arguments(stack, folder)
        limits = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
        with _inside(folder, variables):
            status, out, err = _run(["config", "explain", *args, *limits, "--json"])
            assert status == 0, err
            explained = {row["key"]: row["value"] for row in json.loads(out)}
            status, _, err = _run(["fit", *args, *limits])
            assert status == 0, err
        runs = list(folder.glob("runs/*/*/config.yaml"))
        assert len(runs) == 1, runs
        saved = _leaves(yaml.safe_load(runs[0].read_text()))
    for _, key, _, _ in stack:  # every value the stack set is in both, and resolved
        assert key in explained and key in saved, key
    compared = [k for k in explained if k.split(".")[0] in ("trainer", "model", "data", "seed_everything")
                or k in ("experiment.name", "experiment.tags")]
    assert compared
    for key in compared:
        assert saved.get(key) == explained[key], (key, saved.get(key), explained[key], stack)
    assert "${" not in json.dumps(saved)
    assert runs[0].parent.parent.name == explained["experiment.name"]
