"""Sphinx configuration of the trio_mesos documentation.

Built by ``make docs`` (``sphinx -W --keep-going``: every warning is an error).
The build needs no network: no intersphinx, no remote images. The state
diagrams are generated from the code's tables by ``_ext/trio_mesos_sphinx.py``
and rendered by Graphviz's ``dot``.
"""

from __future__ import annotations

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

import trio_mesos  # noqa: E402

project = "trio_mesos"
author = "trio_mesos developers"
copyright = "trio_mesos developers, Apache-2.0"
release = trio_mesos.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.graphviz",
    "sphinxcontrib_trio",
    "trio_mesos_sphinx",
]

root_doc = "index"
exclude_patterns = ["_build", "snippets", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
default_role = "py:obj"
primary_domain = "py"
highlight_language = "python3"
pygments_style = "sphinx"

# -- autodoc / napoleon -------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"
# Google-style docstrings only. "Attributes:" sections become
# ``.. attribute::`` entries, so they can be linked to (``AckPolicy.DELAYED``);
# a field described both there and by a ``#:`` comment would be a duplicate
# object description, which -W turns into an error.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = False
napoleon_use_rtype = False
napoleon_preprocess_types = False

# -- graphviz ------------------------------------------------------------------
graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=Helvetica", "-Nfontname=Helvetica", "-Efontname=Helvetica"]

# -- HTML ----------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"trio_mesos {release}"
html_static_path = ["_static"]
html_css_files = ["trio_mesos.css"]
html_theme_options = {
    "description": "A Trio-native Apache Mesos executor driver",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_show_sourcelink = False
