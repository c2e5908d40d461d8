"""Sphinx configuration: the Markdown pages of ``docs/`` and an API reference generated from docstrings.

Build with ``sphinx-build -W -b html sphinx <output folder>``. The pages are staged from ``docs/`` into
this folder at the start of every build (see ``_ext/stage.py``); edit them in ``docs/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import enhtrain

project = "enhtrain"
author = "The enhtrain developers"
copyright = "the enhtrain developers"
release = enhtrain.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "enhtrain_sphinx",
]

root_doc = "index"
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext", ".staged", "Thumbs.db", ".DS_Store"]

myst_heading_anchors = 6
myst_enable_extensions = ["colon_fence", "deflist"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False
autodoc_default_options = {"show-inheritance": True}
autoclass_content = "class"

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False
napoleon_attr_annotations = True

html_theme = "furo"
html_title = f"enhtrain {release}"
html_static_path: list[str] = []
