"""Admin test fixtures; browser tests run only when selected with ``-m browser``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests need Chromium and take seconds each: the default run leaves them out,
    # ``pytest -m browser`` (or any -m expression naming them) selects them.
    if "browser" in (config.getoption("markexpr") or ""):
        return
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("browser") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
