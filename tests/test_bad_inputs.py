"""The bad-input corpus of ``tests/bad_inputs/``: broken configs, broken plugins and broken checkpoints.

Every case runs in-process through :func:`enhtrain.commands.main` and must end with exit status 2, exactly
one ``enhtrain: error:`` line containing each expected fragment, no traceback, and no new run directory
(existing runs stay byte for byte as they were). ``tests/bad_inputs/README.md`` describes the case files.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import random
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from enhtrain import plugins
from enhtrain.commands import main
from fakes import torch_bytes, zip_bytes
from refusals import assert_refused

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CONFIG_CASES = sorted((CORPUS / "configs").glob("[0-9]*_*.yaml"), key=lambda p: int(p.name.split("_", 1)[0]))
PLUGIN_CASES = sorted((CORPUS / "plugins").glob("[0-9]*_*.py.txt"), key=lambda p: int(p.name.split("_", 1)[0]))


@dataclass(frozen=True)
class Case:
    """A corpus file and what its header asks for.

    Attributes:
        path: The case file.
        expect: Fragments the error message must contain (``{file}`` not yet replaced).
        flags: More command-line arguments.
        env: Environment variables to set.
        fields: Every other header field (``distribution``, ``module``).
    """

    path: Path
    expect: tuple[str, ...]
    flags: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    fields: dict[str, str]


def read_case(path: Path) -> Case:
    """Parse the comment header of a corpus file."""
    expect: list[str] = []
    flags: list[str] = []
    env: list[tuple[str, str]] = []
    fields: dict[str, str] = {}
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(":")
        value = value.strip()
        if key == "expect":
            expect.append(value)
        elif key == "flags":
            flags += shlex.split(value)
        elif key == "env":
            name, _, setting = value.partition("=")
            env.append((name, setting))
        else:
            fields[key] = value
    return Case(path, tuple(expect), tuple(flags), tuple(env), fields)


def snapshot(root: Path) -> dict[str, bytes]:
    """Return the content of every file under ``root`` by relative path (empty if ``root`` is missing)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``enhtrain`` in-process; return its exit status and stderr."""
    code = main(args)
    _, err = capsys.readouterr()
    return code, err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``base.yaml`` and a copy of ``configs/``."""
    shutil.copy(CORPUS / "base.yaml", tmp_path / "base.yaml")
    shutil.copytree(CORPUS / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_corpus_is_complete() -> None:
    assert len(CONFIG_CASES) >= 40
    numbers = [p.name.split("_", 1)[0] for p in CONFIG_CASES]
    assert len(set(numbers)) == len(CONFIG_CASES), numbers
    for path in [*CONFIG_CASES, *PLUGIN_CASES]:
        case = read_case(path)
        assert case.expect, f"{path.name} has no '# expect:' line"
        assert all(case.expect), f"{path.name} has an empty '# expect:' line"
    texts = [p.read_bytes().split(b"\n", 1)[-1] for p in CONFIG_CASES]
    assert len(set(texts)) == len(texts), "two config cases are the same config"


@pytest.mark.parametrize("path", CONFIG_CASES, ids=lambda p: p.stem)
def test_broken_config(path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    case = read_case(path)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    given = f"configs/{path.name}"

    code, err = run_cli(["fit", "--config", "base.yaml", "--config", given, *case.flags], capsys)

    assert_refused(code, err, *(fragment.replace("{file}", given) for fragment in case.expect))
    assert not (workdir / "runs").exists()
    assert not (workdir / "pwned").exists()


# --- broken plugins ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ``sys.path`` folder for fake distributions; the plugin manager is rebuilt before and after."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)
    plugins.reset()
    yield site
    plugins.reset()
    for module in set(sys.modules) - before:
        if module.startswith("enhtrain_corpus_"):
            del sys.modules[module]
    importlib.invalidate_caches()


def install_plugin(site: Path, case: Case) -> str:
    """Install a corpus plugin as a distribution with one ``enhtrain`` entry point; return the entry point."""
    entry_point = case.path.name.removesuffix(".py.txt").split("_", 1)[1]
    module = f"enhtrain_corpus_{entry_point}"
    distribution, version = case.fields["distribution"].split()
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[enhtrain]\n{entry_point} = {module}\n")
    if case.fields.get("module") != "absent":
        shutil.copy(case.path, site / f"{module}.py")
    importlib.invalidate_caches()
    return entry_point


@pytest.mark.parametrize("path", PLUGIN_CASES, ids=lambda p: p.name.removesuffix(".py.txt"))
def test_broken_plugin_used_by_a_config(path: Path, workdir: Path, fake_site: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    case = read_case(path)
    install_plugin(fake_site, case)

    code, err = run_cli(["fit", "--config", "base.yaml", *case.flags], capsys)

    assert_refused(code, err, *case.expect)
    assert not (workdir / "runs").exists()


def test_broken_plugins_do_not_stop_configs_that_do_not_use_them(
    workdir: Path, fake_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in PLUGIN_CASES:
        case = read_case(path)
        if "validate" not in path.name:
            install_plugin(fake_site, case)

    code = main(["fit", "--config", "base.yaml"])

    assert code == 0, capsys.readouterr().err[-3000:]
    meta = json.loads((workdir / "runs" / "corpus" / "version_0" / "metadata.json").read_text())
    assert meta["status"] == "completed"


# --- broken checkpoints ------------------------------------------------------------------------------------


class _RunsCode:
    """Pickles to a call of ``os.system`` that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def lightning_like_checkpoint() -> dict[str, object]:
    """A small dict shaped like a Lightning checkpoint."""
    return {
        "epoch": 0,
        "global_step": 2,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": {"net.0.weight": torch.zeros(8, 64), "net.0.bias": torch.zeros(8)},
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
    }


# kind -> (content given the marker path, fragments the message must contain, fragments it must not contain)
CHECKPOINTS: dict[str, tuple[Callable[[Path], bytes], list[str], list[str]]] = {
    "truncated": (lambda m: torch_bytes(lightning_like_checkpoint())[:900],
                  ["truncated or corrupt", "the file ends early"], []),
    "random_bytes": (lambda m: random.Random(0).randbytes(4096),
                     ["corrupt", "not a PyTorch checkpoint: it is neither a zip archive nor a pickle"], ["pickled"]),
    "random_bytes_2": (lambda m: random.Random(2).randbytes(4096),
                       ["corrupt", "not a PyTorch checkpoint: it is neither a zip archive nor a pickle"], ["pickled"]),
    "empty": (lambda m: b"", ["truncated or corrupt", "the file is empty"], []),
    "pickle_payload": (lambda m: pickle.dumps({"state_dict": _RunsCode(m)}),
                       ["needs pickled Python objects", "--trust_checkpoint"], []),
    "torch_payload": (lambda m: torch_bytes({**lightning_like_checkpoint(), "extra": _RunsCode(m)}),
                      ["needs pickled Python objects", "--trust_checkpoint"], []),
    "zip_not_a_checkpoint": (lambda m: zip_bytes(), ["truncated or corrupt", "not a PyTorch checkpoint"], []),
    "not_lightning": (lambda m: torch_bytes({"weights": torch.zeros(3)}), ["not a Lightning checkpoint"], []),
    "differs_from_manifest": (lambda m: torch_bytes(lightning_like_checkpoint()), ["sha256 differs"], []),
}


@pytest.fixture
def existing_run(workdir: Path) -> Path:
    """A finished run of the ``corpus`` experiment, with a manifest, that broken checkpoints are put into."""
    run = workdir / "runs" / "corpus" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    config = yaml.safe_load((workdir / "base.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run / "metadata.json").write_text(json.dumps({"name": "corpus", "version": "version_0",
                                                   "status": "completed"}))
    (run / "checkpoints" / "manifest.json").write_text(json.dumps({"checkpoints": [], "best": None, "last": None}))
    return run


@pytest.mark.parametrize("how", ["ckpt_path", "resume"])
@pytest.mark.parametrize("kind", sorted(CHECKPOINTS))
def test_broken_checkpoint(kind: str, how: str, workdir: Path, existing_run: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    make, fragments, absent = CHECKPOINTS[kind]
    marker = workdir / "pwned"
    target = existing_run / "checkpoints" / f"{kind}.ckpt"
    target.write_bytes(make(marker))
    if kind == "differs_from_manifest":
        manifest = json.loads((existing_run / "checkpoints" / "manifest.json").read_text())
        manifest["checkpoints"].append({"file": target.name, "sha256": "0" * 64, "size": target.stat().st_size,
                                        "step": 2, "epoch": 0, "metrics": {}, "time": "2026-01-01T00:00:00+00:00"})
        (existing_run / "checkpoints" / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(workdir / "runs")
    given = f"runs/corpus/version_0/checkpoints/{target.name}"
    flag = "--ckpt_path" if how == "ckpt_path" else "--experiment.resume"

    code, err = run_cli(["fit", "--config", "base.yaml", flag, given], capsys)

    assert_refused(code, err, target.name, *fragments)
    for fragment in absent:
        assert fragment not in err
    assert not marker.exists(), "loading the checkpoint ran code"
    assert snapshot(workdir / "runs") == before, "a refused checkpoint changed the runs folder"
