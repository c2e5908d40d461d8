"""Every command and subcommand of ``enhtrain`` against hostile arguments and files.

The commands are discovered from the command line's own help, recursively: each usage line names the
subcommands (``{a,b}``, a word, or argparse's list under its ``ACTION`` metavar) and the options of a command,
so a command is fuzzed the day it appears in ``enhtrain --help``. Each invocation must end with exit status 0 or
2, at most one ``enhtrain: error:`` line, no traceback, within a time bound; a refused command changes no file
(a finished run, a folder outside the working directory and the hostile files themselves stay byte-identical),
and a command that succeeds changes nothing outside the working directory that it was not pointed at.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from enhtrain.checkpoints.manifest import Manifest, sha256_file
from enhtrain.commands import main
from enhtrain.testing import tiny_config
from fakes import CHECKPOINTS

# --- discovery -------------------------------------------------------------------------------------------------


def _run_in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _split_group(group: str) -> list[str]:
    """The items of ``{a X,b [c,d]}`` split at the commas outside brackets."""
    items, depth, current = [], 0, ""
    for char in group[1:-1]:
        depth += 1 if char in "[{(" else -1 if char in "]})" else 0
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


def _group_at(text: str) -> str:
    depth = 0
    for i, char in enumerate(text):
        depth += 1 if char == "{" else -1 if char == "}" else 0
        if depth == 0:
            return text[: i + 1]
    return text


_WORD = re.compile(r"[a-z][a-z0-9_-]*$")
_OPTION = re.compile(r"(?<!\S)(-{1,2}[A-Za-z][\w.-]*)(?:[ =]([^\s,|-]\S*))?")


@dataclass
class Command:
    """A command path and the options its usage and help name: ``(flag, takes a value)``."""

    path: tuple[str, ...]
    options: dict[str, bool] = field(default_factory=dict)
    positionals: list[bool] = field(default_factory=list)
    """One entry per positional argument of the usage: whether it is required."""


def _usage_lines(text: str) -> list[str]:
    lines = []
    for line in text.split("\n\n", 1)[0].splitlines():
        line = line.strip().removeprefix("usage:").strip()
        lines += re.split(r"\s\|\s(?=enhtrain\b)", line)
    # argparse and jsonargparse wrap long usage lines: a line that does not start with `enhtrain` continues one.
    joined: list[str] = []
    for line in lines:
        if line.startswith("enhtrain") or not joined:
            joined.append(line)
        else:
            joined[-1] += " " + line
    return joined


def _argparse_actions(text: str) -> list[str]:
    """The subcommands argparse lists under a metavar, four spaces in: ``    list      list every run``."""
    return re.findall(r"^    ([a-z][a-z0-9_-]*)(?:\s|$)", text, flags=re.MULTILINE)


def _options(text: str, usage: list[str]) -> dict[str, bool]:
    # A command that names its own options apart ("enhtrain options ...") is fuzzed on those only.
    own = re.search(r"^enhtrain options.*?\n\n", text, flags=re.MULTILINE | re.DOTALL)
    body = own.group(0) if own else text.split("\n\n", 1)[-1] if "\n\n" in text else ""
    found: dict[str, bool] = {}
    for line in [*usage, *body.splitlines()]:
        for flag, metavar in _OPTION.findall(line.replace("[", " ").replace("]", " ")):
            # --KEY, --experiment.KEY: placeholders for many options, not options.
            if flag not in ("-h", "--help") and not re.search(r"[A-Z]{2,}$", flag):
                found[flag] = found.get(flag, False) or bool(metavar)
    return found


def _positionals(line: str, path: tuple[str, ...]) -> list[bool]:
    """The positional arguments of a usage line: words that are neither options nor an option's value."""
    words = line.split()[len(path) + 1:]
    found: list[bool] = []
    after_option = False
    for word in words:
        bare = word.strip("[]")
        if bare.startswith("-") or bare in ("|", "...", "") or bare.endswith("..."):
            after_option = bare.startswith("-") and not word.endswith("]") and bare not in ("-", "--")
            continue
        if not after_option and not bare.startswith(("{", "flags")):
            found.append(not word.startswith("["))
        after_option = False
    return found


def discover() -> dict[tuple[str, ...], Command]:
    """Every command of ``enhtrain`` that runs something, from ``--help`` of the command and of each below it."""
    commands: dict[tuple[str, ...], Command] = {}
    todo: list[tuple[str, ...]] = [()]
    seen: set[tuple[str, ...]] = set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        code, text, err = _run_in_process([*path, "--help"])
        assert code == 0 and err == "", (path, err)
        usage = _usage_lines(text)
        subs: list[str] = []
        leaf_lines = []
        for line in usage:
            words = line.split()
            if words[: len(path) + 1] != ["enhtrain", *path]:
                continue
            rest = line.split(None, len(path) + 1)[len(path) + 1:]
            following = rest[0] if rest else ""
            if following.startswith("{"):
                subs += [item.split()[0] for item in _split_group(_group_at(" ".join(rest))) if item.split()]
            elif _WORD.match(following.split()[0] if following else "-"):
                subs.append(following.split()[0])
            elif re.search(r"\b[A-Z]+ \.\.\.$", line) and (actions := _argparse_actions(text)):
                subs += actions
            else:
                leaf_lines.append(line)
        todo += [(*path, sub) for sub in dict.fromkeys(subs)]
        if path and (leaf_lines or not subs):
            positionals = max((_positionals(line, path) for line in leaf_lines), key=len, default=[])
            commands[path] = Command(path, _options(text, leaf_lines or usage), positionals)
    return commands


COMMANDS = discover()
TRAINING = {path for path in COMMANDS if len(path) == 1 and "--trust_checkpoint" in COMMANDS[path].options}

# Commands that start other processes (workers, trials): run in a process group of their own that the bound kills.
IN_SUBPROCESS = {("sweep", "run"), ("sweep", "worker")}

# Exit status 1 where a command documents it, and what it prints then.
EXIT_1 = {
    ("ckpt", "verify"): "failed verification",  # a checkpoint differs from its manifest entry
    ("plugins",): "FAILED",  # a plugin failed to load, as `pip check` does for broken requirements
}

BOUND_S = 30.0
"""The longest one invocation may take on a loaded two-core machine; a hang blocks for ever."""


def test_discovery_finds_every_command() -> None:
    # A floor, not the list: the walk must at least reach what the top-level usage names, at every depth.
    for path in [("fit",), ("validate",), ("test",), ("predict",), ("plugins",), ("plugins", "new"),
                 ("templates", "list"), ("templates", "show"), ("config", "explain"), ("config", "validate"),
                 ("config", "schema"), ("config", "migrate"), ("runs", "list"), ("runs", "show"), ("runs", "set"),
                 ("runs", "stop"), ("runs", "checkpoint"), ("ckpt", "list"), ("ckpt", "verify"), ("ckpt", "prune"),
                 ("sweep", "run"), ("sweep", "worker"), ("sweep", "show"), ("sweep", "best"), ("sweep", "plots")]:
        assert path in COMMANDS, path
    assert {("fit",), ("validate",), ("test",), ("predict",)} == TRAINING
    assert COMMANDS[("ckpt", "prune")].options == {"--keep-last": True, "--keep-best": True, "--dry-run": False}
    assert {"--config", "--experiment.name", "--safe"} <= set(COMMANDS[("fit",)].options)
    assert COMMANDS[("config", "schema")].options == {"-o": True, "--output": True}


# --- the world each invocation meets ----------------------------------------------------------------------------

OUTSIDE_NAME = "outside"
MISSING_ROOT = "/proc/enhtrain-fuzz-missing"  # nothing, not even root, can create anything in /proc

_CONFIG_KEYS = ["trainer", "model", "data", "experiment", "extends", "schema_version", "name", "root_dir",
                "resume", "class_path", "init_args", "max_epochs", "loggers", "callbacks", "checkpoint",
                "trust_checkpoint", "ckpt_path", "status", "pid", "entries", "file", "best", "last", "monitor",
                "sha256", "size", "metrics", "version", "0"]

_HOSTILE_DOCUMENTS = [
    b"[" * 30000,
    b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 150)) + b"  " * 150 + b"c: 1\n",
    b'a0: &a0 ["x","x","x","x","x","x","x","x","x"]\n'
    + b"".join(b"a%d: &a%d [%s]\n" % (i, i, b",".join([b"*a%d" % (i - 1)] * 9)) for i in range(1, 9)),
    b"!!python/object/apply:os.system ['touch pwned']\n",
    b"model: !!python/name:os.system\n",
    b"a: !custom 1\n",
    b"schema_version: " + b"9" * 5000 + b"\n",
    b"trainer: {max_epochs: " + b"9" * 400 + b"}\n",
    b"experiment: {name: x, checkpoint: {save_top_k: " + b"1" * 4400 + b"}}\n",
    b'{"a": NaN, "b": Infinity, "entries": [{"file": "x.ckpt", "size": -Infinity}]}',
    b"trainer: {max_epochs: .nan, gradient_clip_val: .inf}\n",
    b'experiment: {name: "a\\nb\\x1b[31mc\\u0085d"}\n',
    b"name: \x1b[2J\x07\r\n",
    b"\xff\xfe\x00a: \xe9\xff\n",
    b"\xef\xbb\xbfexperiment: {name: bom}\n",
    b"",
    b"null\n",
    b"- 1\n- [2, 3]\n",
    b"just a string\n",
    b"a: 1\n---\nb: 2\n",
    b"a: 1\na: 2\n",
    b"experiment: {trust_checkpoint: true}\nckpt_path: evil.ckpt\n",
    b"model: {class_path: os.system, init_args: {command: touch pwned}}\n",
    b"extends: [/proc/self/environ]\n",
    b"extends: [fifo]\n",
    b"extends: [a.yaml]\n",
    b"extends: [link_out]\n",
    b"experiment: {root_dir: " + MISSING_ROOT.encode() + b", name: ../../escape}\n",
    b"experiment: {name: done, resume: auto}\n",
    b'{"entries": [{"file": "../../../outside/secret.yaml", "sha256": "0", "size": 1}], "best": "x", "last": [1]}',
    b'{"status": "running", "pid": 1e400, "host": null, "start_time": [], "duration_s": "x", "resumes": [{}]}',
    b'{"entries": {"file": 1}, "monitor": {"a": 1}}',
    b"x" * 70000,
]


def _scalars() -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.just(10**200),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
        st.sampled_from(["../../outside/secret.yaml", "fifo", "a.yaml", "os.system", "runs", "\x1b[31m", "\n"]),
    )


def _structures() -> st.SearchStrategy[object]:
    return st.recursive(
        _scalars(),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.sampled_from(_CONFIG_KEYS), inner, max_size=3)),
        max_leaves=8,
    )


def _dumped(value: object) -> bytes:
    with contextlib.suppress(Exception):
        return yaml.safe_dump(value, allow_unicode=True).encode()
    return repr(value).encode()


DOCUMENTS = st.one_of(
    st.sampled_from(_HOSTILE_DOCUMENTS),
    _structures().map(_dumped),
    st.binary(max_size=40),
)

_FILE_NAMES = st.one_of(st.sampled_from(["last.ckpt", "epoch=0-step=2.ckpt", "../../../outside/secret.yaml",
                                         "/proc/self/status", "", ".", "a/../last.ckpt", "x.ckpt", "\n.ckpt"]),
                        _scalars())


def _run_files() -> dict[str, st.SearchStrategy[object]]:
    """Strategies for a run's JSON files: the right keys, with values of any type and size."""
    entry = st.fixed_dictionaries({}, optional={
        "file": _FILE_NAMES, "sha256": st.one_of(st.just("0" * 64), _scalars()), "size": _scalars(),
        "step": _scalars(), "epoch": _scalars(), "metrics": st.one_of(st.dictionaries(
            st.sampled_from(["val/loss", "train/loss"]), _scalars(), max_size=2), _scalars()),
        "time": st.one_of(st.just("2025-01-01T00:00:00+00:00"), _scalars()),
        # A sharded checkpoint's listing: each file's size and one digest.
        "files": st.one_of(st.dictionaries(
            st.one_of(st.sampled_from(["__0_0.distcp", ".metadata", "checkpoint/x.pt", "../x", "a//b"]), _scalars()),
            st.fixed_dictionaries({}, optional={
                "size": _scalars(), "xxh3_128": st.one_of(st.just("0" * 32), _scalars()),
                "sha256": st.one_of(st.just("0" * 64), _scalars())}), max_size=2), _scalars()),
        "world_size": _scalars(), "strategy": _scalars()})
    manifest = st.fixed_dictionaries({"checkpoints": st.one_of(st.lists(entry, max_size=3), _scalars())}, optional={
        "best": _FILE_NAMES, "last": _FILE_NAMES, "newest": _FILE_NAMES,
        "monitor": st.one_of(st.just("val/loss"), _scalars()), "mode": st.sampled_from(["min", "max", "x", None])})
    times = st.one_of(st.sampled_from(["2025-01-01T00:00:00", "2025-01-01T00:00:00+00:00", "9999-99-99"]),
                      _scalars())
    metadata = st.fixed_dictionaries({}, optional={
        "name": _scalars(), "version": _scalars(), "status": st.sampled_from(["completed", "running", "failed", None]),
        "pid": st.one_of(st.just(os.getpid()), st.just(1), _scalars()),
        "host": st.one_of(st.just(socket.gethostname()), _scalars()), "start_time": times, "end_time": times,
        "first_start_time": times, "duration_s": _scalars(), "metrics": _structures(), "command": _structures(),
        "git": _structures(), "versions": _structures(), "resumes": _structures(), "tags": _structures(),
        "error": _scalars(), "subcommand": _scalars(), "config_hash": _scalars()})
    lock = st.fixed_dictionaries({}, optional={"pid": st.one_of(st.just(os.getpid()), _scalars()),
                                               "host": st.one_of(st.just(socket.gethostname()), _scalars())})
    return {"manifest": manifest, "metadata": metadata, "lock": lock}


def _json(value: object) -> bytes:
    with contextlib.suppress(ValueError, TypeError):
        return json.dumps(value).encode()  # NaN and Infinity as JavaScript writes them
    return b"{}"


_RUN = _run_files()
FILES = {
    "a.yaml": DOCUMENTS,
    "b.json": DOCUMENTS,
    "spec.yaml": DOCUMENTS,
    "runs/bad/version_0/config.yaml": DOCUMENTS,
    "runs/bad/version_0/metadata.json": st.one_of(_RUN["metadata"].map(_json), DOCUMENTS),
    "runs/bad/version_0/checkpoints/manifest.json": st.one_of(_RUN["manifest"].map(_json), DOCUMENTS),
    "runs/bad/version_0/.lock": st.one_of(_RUN["lock"].map(_json), DOCUMENTS),
}
"""The files whose contents hypothesis writes: hostile documents, and a run's files with hostile values."""

PATHS = [
    "a.yaml", "b.json", "spec.yaml", "fifo", "dir_as_file", "link_out", "dangling", "missing.yaml", ".", "",
    "runs", "done", "done/version_0", "runs/done/version_0", "runs/done/version_0/checkpoints",
    "runs/done/version_0/checkpoints/last.ckpt", "bad", "runs/bad/version_0", "runs/bad",
    f"../{OUTSIDE_NAME}/secret.yaml", f"../{OUTSIDE_NAME}", "/proc/self/status", f"{MISSING_ROOT}/x.yaml",
    "new_out.json", "new_dir",
]
"""Paths inside the working directory and outside it; hostile files, a FIFO, a folder and links among them."""

WRONG_VALUES = [
    "0", "-1", "1" * 5000, "9" * 400, "nan", "inf", "-inf", "1e308", "1e-400", "true", "null", "~", "{}", "[]",
    "{a: 1}", "[1, 2]", "!!python/object/apply:os.system [touch pwned]", "*x", "&a [*a]", "[" * 200,
    "a\nb", "\x1b[31mred", "x" * 300, "-", "--", "=", "two", "sqlite:///fuzz.db", "postgresql://u:PASS@127.0.0.1:1/x",
    "bogus://", "os.system", "../escape", "experiment.name=x", "trainer.max_epochs=" + "9" * 400,
    "optimizer.lr_scale=1e308",
]
"""Option values of the wrong type, size or shape."""

RUNS = ["bad", "runs/bad/version_0", "bad/version_0", "runs/bad/version_0/checkpoints", "done", "a.yaml", "b.json"]
"""The arguments most likely to reach a command's reading of files: the hostile run and files, the finished run."""

VALUES = st.one_of(st.sampled_from(RUNS), st.sampled_from(PATHS), st.sampled_from(WRONG_VALUES),
                   st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8))


@st.composite
def _argv(draw: st.DrawFn, command: Command) -> list[str]:
    # Mostly well-formed (each positional given, options with values), so that most cases get past argparse
    # into the command's own reading of paths, files and values; now and then a malformed one.
    tokens = [draw(VALUES) for required in command.positionals if required or draw(st.booleans())]
    flags = sorted(command.options)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["option", "option", "option=", "positional", "junk"] if flags
                                    else ["positional", "junk"]))
        if kind == "option":
            flag = draw(st.sampled_from(flags))
            tokens += [flag, draw(VALUES)] if command.options[flag] else [flag]
        elif kind == "option=":
            tokens.append(f"{draw(st.sampled_from(flags))}={draw(VALUES)}")
        elif kind == "positional":
            tokens.append(draw(VALUES))
        else:
            tokens.append(draw(st.sampled_from(["--bogus", "-x", "--", "-", "--config", "--help=1"])))
    return [*command.path, *tokens]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the finished run ``runs/done/version_0``: its files as ``fit`` leaves them, written
    directly (no training: the commands read them, and every refusal must leave them as they are)."""
    folder = tmp_path_factory.mktemp("finished")
    run = folder / "runs/done/version_0"
    checkpoints = run / "checkpoints"
    checkpoints.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(tiny_config({"experiment": {"name": "done"}})))
    manifest = Manifest(checkpoints)
    for file, step, loss in CHECKPOINTS:
        (checkpoints / file).write_bytes(f"{file}:{step}".encode() * 50)
        size = (checkpoints / file).stat().st_size
        manifest.add({"file": file, "sha256": sha256_file(checkpoints / file), "size": size, "step": step,
                      "epoch": step // 10 - 1, "metrics": {"val/loss": loss},
                      "time": f"2025-01-01T00:00:{step:02d}+00:00"})
    manifest.data.update({"best": "epoch=1-step=20.ckpt", "last": "last.ckpt", "monitor": "val/loss", "mode": "min"})
    manifest.save()
    (run / "metadata.json").write_text(json.dumps({
        "name": "done", "version": "version_0", "status": "completed", "subcommand": "fit",
        "host": socket.gethostname(), "pid": os.getpid(), "start_time": "2025-01-01T00:00:00+00:00",
        "end_time": "2025-01-01T00:01:00+00:00", "duration_s": 60.0, "metrics": {"val/loss": 0.5},
        "command": ["enhtrain", "fit"]}))
    (run / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    return folder


def _make_world(base: Path, finished: Path, contents: dict[str, bytes]) -> Path:
    root = Path(tempfile.mkdtemp(dir=base))
    work, outside = root / "work", root / OUTSIDE_NAME
    shutil.copytree(finished / "runs", work / "runs", symlinks=True)
    for name, data in contents.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    outside.mkdir()
    (outside / "secret.yaml").write_text("experiment: {name: outside}\n")
    os.mkfifo(work / "fifo")
    (work / "dir_as_file").mkdir()
    (work / "link_out").symlink_to(outside / "secret.yaml")
    (work / "dangling").symlink_to(root / "nowhere")
    (work / "runs/bad/version_0/checkpoints/last.ckpt").write_bytes(b"PK\x03\x04 not a checkpoint")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """What every entry under ``root`` is: a file's sha256 and mode, a link's target, a folder, a FIFO."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = "link " + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                found[rel] = f"file {oct(info.st_mode)} " + hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[rel] = f"{stat.S_IFMT(info.st_mode)} {oct(info.st_mode)}"
    return found


class _Hang(BaseException):
    """Raised by the alarm; a BaseException, so that no ``except Exception`` of the command hides it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Hang


@contextlib.contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _invoke(argv: list[str], work: Path, *, subprocess_: bool) -> tuple[int, str, str]:
    if subprocess_:
        proc = subprocess.Popen([sys.executable, "-m", "enhtrain", *argv], cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace",
                                start_new_session=True, env={**os.environ, "ENHTRAIN_PLAIN_PROGRESS": "1"})
        try:
            out, err = proc.communicate(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"enhtrain {argv!r} did not end within {BOUND_S:g} s")
        return proc.returncode, out, err
    with contextlib.chdir(work):
        try:
            with _bounded(BOUND_S):
                return _run_in_process(argv)
        except _Hang:
            pytest.fail(f"enhtrain {argv!r} did not end within {BOUND_S:g} s")


def _named(argv: list[str], work: Path) -> list[Path]:
    """The paths a command was pointed at, as given and as run names under ``runs/``."""
    named = []
    for token in argv:
        for text in {token, token.partition("=")[2]} - {""}:
            for candidate in (work / text, work / "runs" / text):
                named.append(Path(os.path.normpath(candidate)))
    return named


def check_invocation(argv: list[str], root: Path, *, subprocess_: bool = False) -> None:
    """Run ``enhtrain ARGV`` in ``root/work`` and check how it ends and what it changed."""
    work = root / "work"
    before = _snapshot(root)
    code, out, err = _invoke(argv, work, subprocess_=subprocess_)
    shown = f"enhtrain {argv!r} -> exit {code}\nstderr: {err[-2000:]}\nstdout: {out[-500:]}"
    assert "Traceback" not in err and "Traceback" not in out, shown
    errors = [line for line in err.splitlines() if line.startswith("enhtrain: error:")]
    assert len(errors) <= 1, shown
    expected_1 = next((text for prefix, text in EXIT_1.items() if tuple(argv[: len(prefix)]) == prefix), None)
    if code == 1 and expected_1 is not None:
        assert expected_1 in out and not errors, shown
    else:
        assert code in (0, 2), shown
    if code == 2:
        # One line: the message and nothing after it (a newline from an argument would start a second line).
        others = [line for line in err.splitlines() if not line.startswith("enhtrain: warning:")]
        assert others == errors, shown
    after = _snapshot(root)
    changed = sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))
    if code != 0:
        assert not changed, f"{shown}\na refused command changed {changed}"
        return
    named = _named(argv, work)
    for rel in changed:
        path = Path(os.path.normpath(root / rel))
        if rel.startswith(("work/runs/done/", OUTSIDE_NAME)):
            assert any(path == n or n in path.parents for n in named), f"{shown}\nchanged {rel} unasked"


def _settings(max_examples: int) -> settings:
    # No shrinking: a failure is reported as found, within the time the suite allows; the fixed cases below keep
    # each one found so far, shortened by hand.
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
"""A longer search on request (``FUZZ_SCALE=20``); the suite runs the bounded one."""


def _examples(path: tuple[str, ...]) -> int:
    if path in IN_SUBPROCESS:
        return 2 * SCALE
    if path in TRAINING or path in (("config", "explain"), ("config", "validate")):
        return 4 * SCALE
    return 12 * SCALE


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_hostile_arguments_and_files(path: tuple[str, ...], finished: Path,
                                     tmp_path: Path) -> None:
    command = COMMANDS[path]

    @_settings(_examples(path))
    @given(argv=_argv(command), contents=st.fixed_dictionaries(FILES))
    def fuzz(argv: list[str], contents: dict[str, bytes]) -> None:
        if path in TRAINING:
            # Refused before training, or one step if hypothesis ever finds a config that trains.
            argv = [*argv, "--trainer.max_steps=1", "--trainer.limit_val_batches=0"]
        root = _make_world(tmp_path, finished, contents)
        try:
            check_invocation(argv, root, subprocess_=path in IN_SUBPROCESS)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    fuzz()


# Cases the search found and the hostile review's reproducers, run every time as fixed cases.
FOUND = [
    ["runs", "show", "x" * 300],
    ["runs", "list", "x" * 300],
    ["ckpt", "list", "x" * 300],
    ["runs", "stop", "x" * 300],
    ["config", "schema", "--output=--"],
    ["config", "schema", "-o="],
    ["plugins", "new", "p" * 300],
    ["plugins", "new", "ok", "--dir", "dangling"],
    ["plugins", "new", "ok", "--dir", "a.yaml"],
    ["sweep", "show", "x", "--storage", "sqlite:///new.db"],
    ["sweep", "plots", "x", "--out", "a.yaml"],
    ["sweep", "plots", "x", "--out", "/proc/self/status"],
    ["config", "migrate", "a.yaml"],
    ["config", "explain", "--config", "a.yaml"],
    ["config", "validate", "--config", "b.json"],
    ["fit", "--config", "fifo"],
    ["fit", "--config", "link_out", "--trainer.max_steps=1"],
    ["fit", "--experiment", "{trust_checkpoint: true}", "--config", "b.json"],
    ["runs", "show", "bad"],
    ["ckpt", "verify", "bad"],
    ["ckpt", "prune", "bad", "--keep-last", "0"],
    ["templates", "show", "../../outside/secret"],
    ["config", "explain", "--env", "e" * 300],
    ["plugins", "new", "ok", "--dir", "d" * 300 + "/y"],
    ["sweep", "show", "s" * 300],
    ["sweep", "plots", "s" * 300],
    ["sweep", "worker", "s" * 300],
    ["sweep", "run", "--sweep", "s" * 300],
]
FOUND_FILES = {
    "a.yaml": b"schema_version: " + b"9" * 5000 + b"\n",
    "b.json": b'{"trainer": {"max_epochs": NaN}}',
    "spec.yaml": b"[" * 30000,
    "runs/bad/version_0/config.yaml": b"!!python/object/apply:os.system ['touch pwned']\n",
    "runs/bad/version_0/metadata.json": b'{"status": "running", "pid": 1e400, "start_time": []}',
    "runs/bad/version_0/checkpoints/manifest.json":
        b'{"checkpoints": [{"file": "../../../outside/secret.yaml", "sha256": "0", "size": 1}], "last": [1]}',
    "runs/bad/version_0/.lock": b'{"pid": "x"}',
}


@pytest.mark.parametrize("argv", FOUND, ids=lambda argv: " ".join(argv)[:60])
def test_found_cases(argv: list[str], finished: Path, tmp_path: Path) -> None:
    assert tuple(argv[:2]) in COMMANDS or tuple(argv[:1]) in COMMANDS
    check_invocation(argv, _make_world(tmp_path, finished, FOUND_FILES),
                     subprocess_=tuple(argv[:2]) in IN_SUBPROCESS)
