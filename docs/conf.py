"""Sphinx configuration: Markdown pages (MyST) and the built-in alabaster theme."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django_jobs import __version__  # noqa: E402

project = "django_jobs"
author = "django_jobs developers"
copyright = "django_jobs developers"
release = version = __version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "alabaster"
html_title = f"django_jobs {release}"
html_theme_options = {"description": "Background jobs in the database you already have"}
