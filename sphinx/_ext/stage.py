"""Stage the Markdown documentation and the API pages as Sphinx sources.

The documentation is written in ``docs/`` (and ``README.md``, ``CONTRIBUTING.md``, ``CHANGELOG.md``), where
GitHub renders it; Sphinx reads only its source directory, ``sphinx/``. Before Sphinx reads anything this
module copies those pages into ``sphinx/`` under the same relative paths, so that every relative link
resolves exactly as it does in the repository, and:

- ``docs/index.md`` becomes the root page ``index.md``: its links are rewritten to point into ``docs/``, and
  each of its ``##`` sections becomes a caption of the navigation, listing the pages that section links to;
- every other repository file a page links to is copied too: Markdown files become pages, others become
  downloads; a link to a folder with a ``README.md`` points to that README;
- ``api/`` receives one page per public module (see :mod:`apidoc`).

Everything staged is listed in ``sphinx/.staged`` and removed at the start of the next build.
"""

from __future__ import annotations

import posixpath
import re
import shutil
from pathlib import Path

from apidoc import api_pages

SPHINX_DIR = Path(__file__).resolve().parent.parent
REPO = SPHINX_DIR.parent
DOCS = REPO / "docs"
ROOT_PAGES = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")
MANIFEST = SPHINX_DIR / ".staged"

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _is_local(target: str) -> bool:
    return not (_SCHEME.match(target) or target.startswith(("#", "/")))


def _rewrite_links(text: str, rewrite) -> str:
    """Apply ``rewrite(target) -> target`` to every inline link outside code."""
    out = []
    in_fence = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            continue
        if in_fence:
            out.append(line)
            continue
        spans = [m.span() for m in _INLINE_CODE.finditer(line)]

        def replace(match: re.Match[str], spans: list[tuple[int, int]] = spans) -> str:
            if any(start <= match.start() < end for start, end in spans):
                return match.group(0)
            target = match.group("target")
            new = rewrite(target) if _is_local(target) else target
            return f"[{match.group('text')}]({new}{match.group('title') or ''})"

        out.append(_LINK.sub(replace, line))
    return "".join(out)


class Stager:
    """Copies pages and their linked files into the Sphinx source directory.

    Args:
        repo: The repository root.
        out: The Sphinx source directory.
    """

    def __init__(self, repo: Path = REPO, out: Path = SPHINX_DIR) -> None:
        self.repo = repo
        self.out = out
        self.written: set[str] = set()
        self.pages: list[str] = []
        self._queue: list[str] = []

    def _write(self, rel: str, data: bytes) -> None:
        target = self.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
        self.written.add(rel)

    def _resolve(self, page: str, target: str) -> str:
        """Map a link of ``page`` (a repository path) to the path it should have among the staged files."""
        path, sep, anchor = target.partition("#")
        if not path:
            return target
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if rel.startswith("../") or not (self.repo / rel).exists():
            return target
        if (self.repo / rel).is_dir():
            if not (self.repo / rel / "README.md").is_file():
                return target
            rel = posixpath.join(rel, "README.md")
            path = posixpath.relpath(rel, posixpath.dirname(page) or ".")
        if rel == "docs/index.md":
            path = posixpath.relpath("index.md", posixpath.dirname(page) or ".")
        elif rel not in self.written and rel not in self._queue:
            self._queue.append(rel)
        return path + sep + anchor

    def stage_page(self, rel: str) -> None:
        """Copy one repository file; Markdown pages get their links resolved and their targets queued."""
        source = self.repo / rel
        if not rel.endswith(".md"):
            self._write(rel, source.read_bytes())
            return
        text = _rewrite_links(source.read_text(encoding="utf-8"), lambda t: self._resolve(rel, t))
        self._write(rel, text.encode("utf-8"))
        self.pages.append(rel[: -len(".md")])

    def stage_index(self) -> None:
        """Write ``index.md`` from ``docs/index.md``, with one hidden toctree per section."""
        text = (DOCS / "index.md").read_text(encoding="utf-8")

        def into_docs(target: str) -> str:
            resolved = self._resolve("docs/index.md", target)
            path, sep, anchor = resolved.partition("#")
            if not path:
                return resolved
            return posixpath.normpath(posixpath.join("docs", path)) + sep + anchor

        text = _rewrite_links(text, into_docs)
        sections: list[tuple[str, list[str]]] = [("", [])]
        for line in text.splitlines():
            heading = re.match(r"^##\s+(.*)", line)
            if heading:
                sections.append((heading.group(1).strip(), []))
                continue
            for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
                target = match.group("target")
                path = target.partition("#")[0]
                # A link to a section of a page is a cross-reference, not the page's place in the navigation.
                if path.endswith(".md") and _is_local(path) and "#" not in target:
                    doc = path[: -len(".md")]
                    if all(doc not in docs for _, docs in sections):
                        sections[-1][1].append(doc)
        self._index_sections = sections
        self._index_text = text

    def finish_index(self) -> None:
        """Add the toctrees to ``index.md``: the sections, the API reference, and any page not yet listed."""
        text = self._index_text.rstrip() + "\n"
        listed = {doc for _, docs in self._index_sections for doc in docs}
        for caption, docs in self._index_sections:
            if docs:
                text += _toctree(docs, caption or "Contents")
        text += _toctree(["api/index"], "API")
        rest = [p for p in self.pages if p not in listed]
        if rest:
            text += _toctree(rest, "More")
        self._write("index.md", text.encode("utf-8"))

    def run(self) -> None:
        """Stage everything and remove what an earlier build staged but this one did not."""
        previous = MANIFEST.read_text(encoding="utf-8").split() if MANIFEST.is_file() else []
        self.stage_index()
        self._queue += [
            f"docs/{p.relative_to(DOCS).as_posix()}"
            for p in sorted(DOCS.rglob("*.md"))
            if p.name != "index.md" or p.parent != DOCS
        ]
        self._queue += [name for name in ROOT_PAGES if (self.repo / name).is_file()]
        while self._queue:
            rel = self._queue.pop(0)
            if rel not in self.written:
                self.stage_page(rel)
        for rel, text in api_pages().items():
            self._write(f"api/{rel}", text.encode("utf-8"))
        self.finish_index()
        for rel in set(previous) - self.written:
            stale = self.out / rel
            if stale.is_file():
                stale.unlink()
        _prune_empty_dirs(self.out)
        MANIFEST.write_text("\n".join(sorted(self.written)) + "\n", encoding="utf-8")


def _toctree(docs: list[str], caption: str) -> str:
    entries = "\n".join(docs)
    return f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n:maxdepth: 2\n\n{entries}\n```\n"


def _prune_empty_dirs(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if directory.name in ("_build", "_ext") or any(part == "_build" for part in directory.parts):
            continue
        if not any(directory.iterdir()):
            shutil.rmtree(directory)


def stage(app=None, config=None) -> None:
    """Stage the sources (connected to ``config-inited``)."""
    Stager().run()
