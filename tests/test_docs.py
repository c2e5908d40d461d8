"""The documentation stays true: code blocks, links, generated reference pages and the error catalogue.

Every fenced block of every Markdown page names its language and is at least parsed: ``yaml`` with
``yaml.safe_load`` (an ``experiment`` section is validated by :class:`~enhtrain.config.schema.ExperimentConfig`),
``python`` compiled, ``toml`` and ``json`` loaded, ``bash``/``console``/``shell`` checked by ``bash -n``.
An HTML comment on the line before a block says what else to do with it (CONTRIBUTING.md explains it):

- ``<!-- test: run -->``: run the block. Each page runs its blocks in order in a scratch folder holding a copy
  of ``configs/`` and ``examples/``. In a ``console`` block the lines after a ``$ command`` are its expected
  output: each must match a line of the real output, in order (``...`` matches anything).
- ``<!-- test: run exit=2 -->``: every command of the block must exit with that status.
- ``<!-- test: skip-run -->``: parse only (a command that installs packages, needs a GPU or runs for long).
- ``<!-- test: file=NAME -->``: write the block to ``NAME`` in the scratch folder, for later blocks to use.
- ``<!-- test: invalid -->``: a ``yaml`` example of a mistake: its ``experiment`` section must fail validation.
- ``<!-- test: same-as=PATH -->``: the block shows a file of the repository; for YAML the data must be equal.

Shell blocks must carry ``run`` or ``skip-run``, except on the few pages of ``MARKER_OPTIONAL``.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ValidationError

from enhtrain import plugins
from enhtrain.commands import main
from enhtrain.config.schema import ExperimentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "enhtrain"
NOTEBOOKS = ROOT / "notebooks"
PAGES = sorted(DOCS.rglob("*.md")) + [
    p for p in (ROOT / n for n in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")) if p.is_file()
]
# Shell blocks of these pages may go without a marker: they are parsed, and run where marked.
MARKER_OPTIONAL = {DOCS / "plugins.md", DOCS / "performance.md", DOCS / "distributed.md", ROOT / "README.md"}

SHELL = {"bash", "console", "shell"}
LANGUAGES = SHELL | {"yaml", "python", "toml", "json", "text"}
MARKER = re.compile(r"^\s*<!--\s*test:\s*(?P<words>.*?)\s*-->\s*$")
SANDBOX_DIRS = ("configs", "examples")

_markdown = MarkdownIt("commonmark").enable("table")


def rel(path: Path) -> str:
    """The path relative to the repository, for messages and test ids."""
    return path.relative_to(ROOT).as_posix()


@dataclass
class Block:
    """A fenced code block and the marker before it."""

    page: Path
    line: int
    lang: str
    body: str
    words: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"

    def option(self, name: str) -> str | None:
        return next((w.split("=", 1)[1] for w in self.words if w.startswith(name + "=")), None)


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, with the words of its ``<!-- test: ... -->`` marker."""
    tokens = _markdown.parse(page.read_text(encoding="utf-8"))
    out = []
    for index, token in enumerate(tokens):
        if token.type != "fence":
            continue
        words: list[str] = []
        previous = tokens[index - 1] if index else None
        if previous is not None and previous.type == "html_block":
            match = MARKER.match(previous.content.strip().splitlines()[-1])
            if match:
                words = match.group("words").split()
        assert token.map is not None
        out.append(Block(page, token.map[0] + 1, token.info.strip().split(" ")[0], token.content, words))
    return out


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def block_id(block: Block) -> str:
    return block.where


def shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` pairs: console blocks use ``$ ``, other shells one command a line."""
    lines = block.body.splitlines()
    commands: list[tuple[str, list[str]]] = []
    pending = ""
    for line in lines:
        if block.lang == "console":
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands and commands[-1][0].endswith("\\"):
                commands[-1] = (commands[-1][0][:-1] + " " + line.strip(), [])
            elif commands:
                commands[-1][1].append(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        commands.append((pending + stripped, []))
        pending = ""
    return commands


# --- every block parses --------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_blocks_name_their_language_and_markers_are_known(page: Path) -> None:
    for block in blocks(page):
        assert block.lang in LANGUAGES, f"{block.where}: code block language {block.lang!r}; use one of {LANGUAGES}"
        for word in block.words:
            assert word in ("run", "skip-run", "invalid") or word.startswith(("exit=", "file=", "same-as=")), (
                f"{block.where}: unknown marker word {word!r}"
            )
        if page not in MARKER_OPTIONAL and block.lang in SHELL:
            assert {"run", "skip-run"} & set(block.words), (
                f"{block.where}: mark the shell block with <!-- test: run --> or <!-- test: skip-run -->"
            )


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "yaml"], ids=block_id)
def test_yaml_blocks_parse_and_validate(block: Block) -> None:
    data = yaml.safe_load(block.body)
    assert isinstance(data, (dict, list)), f"{block.where}: not a YAML mapping or list"
    if isinstance(data, dict):
        with contextlib.suppress(OmegaConfBaseException):  # an interpolation into another file stays as written
            data = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    section = data.get("experiment") if isinstance(data, dict) else None
    if isinstance(section, dict) and "${" in json.dumps(section):
        return
    if "invalid" in block.words:
        with pytest.raises(ValidationError):
            ExperimentConfig.model_validate(section or {})
    elif isinstance(section, dict):
        ExperimentConfig.model_validate(section)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "python"], ids=block_id)
def test_python_blocks_compile(block: Block) -> None:
    compile(block.body, block.where, "exec")


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang in ("toml", "json")], ids=block_id)
def test_toml_and_json_blocks_load(block: Block) -> None:
    if block.lang == "toml":
        tomllib.loads(block.body)
    else:
        json.loads(block.body)


def test_shell_blocks_parse() -> None:
    shell_blocks = [b for b in ALL_BLOCKS if b.lang in SHELL]
    assert shell_blocks
    # One bash process checks every block, each as the body of a function of its own.
    script = "".join(
        f"check_{i} () {{\n:\n{chr(10).join(cmd for cmd, _ in shell_commands(b))}\n}}\n"
        for i, b in enumerate(shell_blocks)
    )
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.option("same-as")], ids=block_id)
def test_blocks_that_show_a_file_match_it(block: Block) -> None:
    path = ROOT / str(block.option("same-as"))
    assert path.is_file(), f"{block.where}: {path} does not exist"
    text = path.read_text(encoding="utf-8")
    if block.lang == "yaml":
        assert yaml.safe_load(block.body) == yaml.safe_load(text), f"{block.where}: differs from {rel(path)}"
    else:
        assert block.body.strip() == text.strip(), f"{block.where}: differs from {rel(path)}"


# --- marked blocks run ---------------------------------------------------------------------------------------


def _expected_matches(expected: list[str], actual: str) -> str | None:
    """Return the first expected line that does not match, in order, a line of ``actual``."""
    lines = [" ".join(line.split()) for line in actual.splitlines()]
    position = 0
    for want in expected:
        want = " ".join(want.split())
        if not want or want == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part.strip()) for part in want.split("...")))
        while position < len(lines) and not pattern.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return want
        position += 1
    return None


@contextlib.contextmanager
def _environment(assignments: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in assignments}
    os.environ.update(assignments)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _in_process(target: Callable[[], int | None], cwd: Path, assignments: dict[str, str]) -> tuple[int, str, str]:
    """Call ``target`` in ``cwd`` with extra environment variables; return its status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    plugins.reset()
    try:
        with _environment(assignments), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = target() or 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(previous)
        os.environ.pop("ENHTRAIN_RUN_DIR", None)
        plugins.reset()
    return code, out.getvalue(), err.getvalue()


def _run_script(path: Path, args: list[str]) -> Callable[[], int | None]:
    def target() -> None:
        saved = sys.argv
        sys.argv = [str(path), *args]
        try:
            runpy.run_path(str(path), run_name="__main__")
        finally:
            sys.argv = saved

    return target


def run_command(command: str, cwd: Path) -> tuple[int, str]:
    """Run one documented command in ``cwd``; returns its status and output.

    ``enhtrain``, ``python -m enhtrain`` and ``python SCRIPT.py`` run in this process (a simple command with at
    most an output redirection); anything else runs in ``bash``.
    """
    words = shlex.split(command)
    assignments = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    redirect = None
    if len(words) >= 2 and words[-2] == ">":
        redirect, words = words[-1], words[:-2]
    simple = not re.search(r"[|;&<`]|\$\(", command) and ">" not in words
    target = None
    if simple and (words[:1] == ["enhtrain"] or words[:3] == ["python", "-m", "enhtrain"]):
        args = words[1:] if words[0] == "enhtrain" else words[3:]
        target = functools.partial(main, args)
    elif simple and words[:1] == ["python"] and len(words) > 1 and words[1].endswith(".py"):
        target = _run_script(cwd / words[1], words[2:])
    if target is not None:
        code, out, err = _in_process(target, cwd, assignments)
        if redirect is not None:
            (cwd / redirect).write_text(out, encoding="utf-8")
            return code, err
        return code, out + err
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def run_page(page: Path, sandbox: Path) -> None:
    """Run the marked blocks of a page, in order, in ``sandbox`` (given copies of ``configs/`` and ``examples/``
    unless it has them, as when the pages run one after another in one folder)."""
    for name in SANDBOX_DIRS:
        if not (sandbox / name).exists():
            shutil.copytree(ROOT / name, sandbox / name, ignore=shutil.ignore_patterns("__pycache__"))
    for block in blocks(page):
        target = block.option("file")
        if target is not None:
            (sandbox / target).parent.mkdir(parents=True, exist_ok=True)
            (sandbox / target).write_text(block.body, encoding="utf-8")
        if "run" not in block.words:
            continue
        if block.lang == "python":
            out = io.StringIO()
            previous = Path.cwd()
            os.chdir(sandbox)
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(block.body, block.where, "exec"), {"__name__": "__main__"})
            finally:
                os.chdir(previous)
            continue
        assert block.lang in SHELL, f"{block.where}: only shell and python blocks run"
        status = int(block.option("exit") or 0)
        for command, expected in shell_commands(block):
            code, output = run_command(command, sandbox)
            assert code == status, f"{block.where}: `{command}` exited {code}, not {status}:\n{output[-3000:]}"
            missing = _expected_matches(expected, output)
            assert missing is None, f"{block.where}: `{command}` did not print {missing!r}; it printed:\n{output}"


RUN_PAGES = [p for p in PAGES if any("run" in b.words for b in blocks(p))]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one thread: the documented runs are tiny, and on a busy machine threads only wait for each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("page", RUN_PAGES, ids=rel)
def test_marked_blocks_run(page: Path, tmp_path: Path, one_thread: None) -> None:
    run_page(page, tmp_path)


def reading_order() -> list[Path]:
    """The pages of ``docs/`` as a reader meets them: ``docs/index.md``, then the pages it links to, in the order
    of its links, then any other page of ``docs/`` (reached through those pages), by path."""
    index = DOCS / "index.md"
    order = [index]
    for target in links(index.read_text(encoding="utf-8")):
        path = target.partition("#")[0]
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path):
            continue
        page = (index.parent / path).resolve()
        if page.suffix == ".md" and page.is_relative_to(DOCS) and page.is_file() and page not in order:
            order.append(page)
    return order + [p for p in sorted(DOCS.rglob("*.md")) if p.resolve() not in order]


def test_reading_order_covers_every_page_that_runs() -> None:
    order = reading_order()
    assert order[:4] == [DOCS / "index.md", *(DOCS / "getting-started" / n for n in
                                               ("installation.md", "first-run.md", "run-directory.md"))]
    assert {p for p in RUN_PAGES if p.is_relative_to(DOCS)} <= set(order)
    assert len(order) == len(set(order))


WHERE_TO_RUN = "index.md#where-to-run-the-examples"
# Pages whose shell commands are meant for the checkout itself: installing it, and benchmarking it.
RUN_IN_CHECKOUT = {DOCS / "index.md", DOCS / "getting-started" / "installation.md", DOCS / "performance.md"}


def says_where_to_run(page: Path) -> bool:
    """Whether the page links to the "Where to run the examples" paragraph before its first shell or file block."""
    text = page.read_text(encoding="utf-8")
    first = min((b.line for b in blocks(page) if b.lang in SHELL or b.option("file")), default=None)
    before = "\n".join(text.splitlines()[: first - 1]) if first else text
    for target in links(before):
        path, _, anchor = target.partition("#")
        if path and anchor == WHERE_TO_RUN.partition("#")[2] and (page.parent / path).resolve() == DOCS / "index.md":
            return True
    return False


def test_pages_with_commands_say_where_to_run_them() -> None:
    assert "## Where to run the examples" in (DOCS / "index.md").read_text(encoding="utf-8")
    silent = [
        rel(page)
        for page in sorted(DOCS.rglob("*.md"))
        if page not in RUN_IN_CHECKOUT
        and any(b.lang in SHELL or b.option("file") for b in blocks(page))
        and not says_where_to_run(page)
    ]
    assert not silent, f"pages whose commands do not link to ../{WHERE_TO_RUN} near the top: {silent}"


# Version numbers a block may name because the block itself decides them (a logger built at a given directory).
PINNED_VERSIONS = {
    ("docs/plugins.md", 'ListLogger("runs/demo/version_0/logs/list", "demo", "version_0")'),
    ("docs/plugins.md", 'run = Path("runs/factories/version_0")'),
    ("docs/plugins.md", '"name": "factories", "version": "version_0"'),
}


def test_no_block_depends_on_a_version_number() -> None:
    # A reader's runs/ may hold earlier runs: a command or an output naming version_0 of a run it did not create
    # under a fresh name or root is true only in an empty folder. `runs/NAME` alone means the latest version.
    found = []
    for block in ALL_BLOCKS:
        if block.lang not in SHELL | {"text", "python"}:
            continue
        for number, line in enumerate(block.body.splitlines(), start=block.line + 1):
            if re.search(r"version_[0-9]", line) and not any(
                page == rel(block.page) and pinned in line for page, pinned in PINNED_VERSIONS
            ):
                found.append(f"{rel(block.page)}:{number}: {line.strip()}")
    assert not found, "blocks that name a version number (use `runs/NAME`, `version_N` or a fresh name):\n" + "\n".join(
        found
    )


def _untracked_in_checkout() -> set[str]:
    """Untracked and ignored entries of the repository's working tree, caches left out."""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    caches = ("__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache")
    return {
        line[3:]
        for line in proc.stdout.splitlines()
        if line[:2] in ("??", "!!") and not any(part in caches for part in Path(line[3:]).parts)
    }


def _scratch_copy(target: Path) -> Path:
    """Copy the repository's tracked files to ``target``, as a reader's ``cp -r`` of a fresh clone would."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.slow
def test_pages_run_one_after_another_in_one_folder(tmp_path: Path, one_thread: None) -> None:
    # A reader follows the pages in order in one scratch copy of the repository: each page meets the runs, files
    # and versions the earlier pages left, so a block that assumes a fresh folder (a hard-coded version_0 of a
    # name used before) fails. The checkout itself gains nothing, and every page that writes says where to run it.
    before = _untracked_in_checkout()
    scratch = _scratch_copy(tmp_path / "enhtrain-scratch")
    for page in reading_order():
        if page in RUN_PAGES:
            files = _files(scratch)
            run_page(page, scratch)
            if _files(scratch) != files:
                assert says_where_to_run(page), f"{rel(page)} writes files: link to ../{WHERE_TO_RUN} near its top"
    gained = _untracked_in_checkout() - before
    assert not gained, f"the documented commands wrote into the repository's own folder: {sorted(gained)}"


# --- links ---------------------------------------------------------------------------------------------------


def _heading_text(inline: object) -> str:
    parts = []
    for child in getattr(inline, "children", None) or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
    return "".join(parts)


def anchors(page: Path) -> set[str]:
    """The anchors of a page: GitHub's heading slugs (which MyST's match) and explicit ``id``/``name`` targets."""
    text = page.read_text(encoding="utf-8")
    tokens = _markdown.parse(text)
    seen: dict[str, int] = {}
    out = set()
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        slug = re.sub(r"[^\w\- ]", "", _heading_text(tokens[index + 1]).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    out |= set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    return out


def links(text: str) -> list[str]:
    """The targets of every Markdown link and image in ``text``, code excluded."""
    found = []

    def walk(tokens: list) -> None:
        for token in tokens:
            if token.type == "link_open":
                found.append(str(token.attrGet("href")))
            elif token.type == "image":
                found.append(str(token.attrGet("src")))
            if token.children:
                walk(token.children)

    walk(_markdown.parse(text))
    return found


def notebook_markdown(path: Path) -> str:
    """The Markdown cells of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


LINKED = PAGES + sorted(NOTEBOOKS.glob("*.ipynb")) + [ROOT / "plugins" / "enhtrain-example" / "README.md"]


@pytest.mark.parametrize("page", LINKED, ids=rel)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    text = notebook_markdown(page) if page.suffix == ".ipynb" else page.read_text(encoding="utf-8")
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: {resolved} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {rel(resolved)}")
    assert not broken, f"{rel(page)}: broken links:\n" + "\n".join(broken)


def test_every_page_is_reachable_from_the_index() -> None:
    reached, queue = set(), [DOCS / "index.md"]
    while queue:
        page = queue.pop()
        if page in reached or page.suffix != ".md" or not page.is_file():
            continue
        reached.add(page)
        for target in links(page.read_text(encoding="utf-8")):
            path = target.partition("#")[0]
            if path and not re.match(r"^[a-z][a-z0-9+.-]*:", path):
                queue.append((page.parent / path).resolve())
    unreached = [rel(p) for p in sorted(DOCS.rglob("*.md")) if p.resolve() not in reached]
    assert not unreached, f"pages no link from docs/index.md leads to: {unreached}"


# --- generated and checked reference pages --------------------------------------------------------------------


def test_config_schema_page_is_generated_from_the_model() -> None:
    sys.path.insert(0, str(ROOT / "sphinx" / "_ext"))
    try:
        from config_schema import render
    finally:
        sys.path.remove(str(ROOT / "sphinx" / "_ext"))
    committed = (DOCS / "reference" / "config-schema.md").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/reference/config-schema.md is stale: run `python sphinx/_ext/config_schema.py --write`"
    )


def _string_constants(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def test_every_environment_variable_is_documented() -> None:
    page = (DOCS / "reference" / "environment-variables.md").read_text(encoding="utf-8")
    used = set()
    for path in SRC.rglob("*.py"):
        for text in _string_constants(path):
            used |= set(re.findall(r"\bENHTRAIN_[A-Z0-9_]*[A-Z0-9]\b", text))
    # ENHTRAIN_<SECTION>__<KEY> variables set config values; the page documents the pattern.
    used = {name for name in used if "__" not in name}
    assert used, "no ENHTRAIN_* variable found in the source"
    variable = r"`(ENHTRAIN_[A-Z0-9_]*[A-Z0-9])[`=]"
    documented = set(re.findall(variable, page))
    assert not used - documented, f"undocumented environment variables: {sorted(used - documented)}"
    # The first section lists enhtrain's own settings; the later ones give examples of config values.
    own = set(re.findall(variable, page.split("\n## ")[1]))
    assert not own - used, f"documented but no longer read by enhtrain: {sorted(own - used)}"
    assert "ENHTRAIN_TRAINER__MAX_EPOCHS" in page


# --- the error catalogue --------------------------------------------------------------------------------------

ERRORS = {"ConfigError", "PluginError", "CheckpointError", "RunDirError", "EnhtrainError"}
# Messages built outside a `raise` (jsonargparse errors, plugin failures, warnings) and the fragments the error
# tests assert.
EXTRA_FRAGMENTS = [
    "unknown key; check the spelling",
    "invalid value",
    "give the full import path of an installed class",
    "cannot build the run",
    "Lightning rejected the configuration",
    "failed at import",
    "skipping checkpoint",
    "resuming with a changed config",
    "registered by",
    "stopped by SIGTERM; the run was saved and marked interrupted",
]


def _literal_parts(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += str(value.value)
            else:
                parts.append(current)
                current = ""
        return [*parts, current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_parts(node.left) + _literal_parts(node.right)
    return []


def error_fragments() -> list[tuple[str, str]]:
    """``(where, fragment)``: the longest literal part of every error message a user can meet.

    Those are the enhtrain errors raised anywhere, and the ``ValueError`` of the config schema's validators,
    which become messages about the ``experiment`` section.
    """
    out = []
    for path in sorted(SRC.rglob("*.py")):
        wanted = ERRORS | ({"ValueError"} if path.name == "schema.py" else set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            func = node.exc.func
            if getattr(func, "id", getattr(func, "attr", None)) not in wanted:
                continue
            parts = [p.strip(" '\"`;:,.()") for p in _literal_parts(node.exc.args[0])]
            fragment = max(parts, key=len, default="")
            if len(fragment) >= 12:
                out.append((f"{path.relative_to(ROOT)}:{node.lineno}", fragment))
    return out


def test_troubleshooting_lists_every_error_message() -> None:
    page = " ".join((DOCS / "troubleshooting.md").read_text(encoding="utf-8").split())
    fragments = error_fragments() + [("tests/test_docs.py", f) for f in EXTRA_FRAGMENTS]
    assert len(fragments) > 40
    missing = [f"{where}: {fragment!r}" for where, fragment in fragments if " ".join(fragment.split()) not in page]
    assert not missing, "docs/troubleshooting.md does not mention these error messages:\n" + "\n".join(missing)
