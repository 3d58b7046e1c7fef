"""Sphinx configuration of the cs_fast documentation.

Build (from the repository root, with the ``docs`` extra installed):

    sphinx-build -W --keep-going -b html docs docs/_build/html

The build needs no network: no intersphinx inventories are fetched, the
theme ships its assets, and the API stubs, the CLI reference and the
performance tables are generated from this checkout at every build.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Document this checkout, not whatever cs_fast is installed elsewhere.
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "_ext"))

import cs_fast  # noqa: E402

project = "cs_fast"
author = "the cs_fast developers"
copyright = "the cs_fast developers"
release = cs_fast.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "cs_fast_api",
    "cs_fast_cli",
    "cs_fast_results",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_screenshots", "Thumbs.db", ".DS_Store"]
root_doc = "index"
smartquotes = False  # options such as --seed stay two hyphens, quotes stay straight
default_role = "literal"  # `text` in the pages is code, as in the docstrings' double backquotes

# API reference: one page per public name, generated at every build (docs/api/ is not committed).
autosummary_generate = True
autosummary_generate_overwrite = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc Parameters sections say the types
numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# No cross-project links: the build must not fetch inventories (intersphinx is off).

html_theme = "pydata_sphinx_theme"
html_title = f"cs_fast {release}"
html_static_path = ["_static"]
html_css_files = ["cs_fast.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 4,
    "navbar_align": "left",
    "navbar_persistent": ["search-button"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
# The left sidebar navigates within a section: only the API reference has one. The guide pages get
# the width for their tables and reports (named one by one: two wildcard patterns would conflict).
GUIDE_PAGES = ["index", "getting-started", "choosing-parameters", "certificate", "distances", "distributed",
               "coming-from-authors", "reproducing-paper", "cli", "performance", "gpu-design", "contributing",
               "changelog"]
html_sidebars = {page: [] for page in GUIDE_PAGES}
html_context = {"default_mode": "light"}
