"""Optional packages (the extras of pyproject.toml): whether one is installed, found
without importing it."""

from __future__ import annotations

import importlib.util


def installed(module: str) -> bool:
    """``module`` can be imported; False too when a test hides it (``sys.modules[name] =
    None``), which makes ``find_spec`` raise."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
