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


@pytest.fixture
def staff_client(db, client):
    """A client logged in as a staff user holding the given ``django_jobs`` permissions."""
    from django.contrib.auth.models import Permission, User

    def login(*codenames: str, staff: bool = True):
        user = User.objects.create_user(
            f"user{User.objects.count()}", password="pw", is_staff=staff
        )
        for codename in codenames:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="django_jobs", codename=codename)
            )
        client.force_login(user)
        return client

    return login
