"""The Wagtail snippet of docs/howto/admin.md, run as written against stand-ins for the
parts of Wagtail it uses (Wagtail is not a dependency, so it is not installed here).

The stand-ins keep Wagtail's constructor signatures (``MenuItem(label, url, name=None,
classname="", icon_name="", attrs=None, order=1000)``, ``SubmenuMenuItem(label, menu,
**kwargs)``, ``Menu(register_hook_name=None, construct_hook_name=None, items=None)``) and
its rule that a submenu is shown when one of its items is, so a misspelt argument or a
wrong URL name in the snippet fails here.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from django.test import RequestFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "admin.md"

pytestmark = pytest.mark.django_db


def snippet() -> str:
    found = re.search(r"```python\n(# yourapp/wagtail_hooks\.py\n.*?)```", DOC.read_text(), re.S)
    assert found, "the Wagtail snippet is missing from docs/howto/admin.md"
    return found.group(1)


class MenuItem:
    def __init__(self, label, url, name=None, classname="", icon_name="", attrs=None, order=1000):
        self.label, self.url, self.name = label, url, name or str(label).lower()
        self.classname, self.icon_name, self.attrs, self.order = classname, icon_name, attrs, order

    def is_shown(self, request):
        return True


class Menu:
    def __init__(self, register_hook_name=None, construct_hook_name=None, items=None):
        self.items = list(items or [])

    def menu_items_for_request(self, request):
        return [item for item in self.items if item.is_shown(request)]


class SubmenuMenuItem(MenuItem):
    def __init__(self, label, menu, **kwargs):
        self.menu = menu
        super().__init__(label, "#", **kwargs)

    def is_shown(self, request):
        return bool(self.menu.menu_items_for_request(request))


@pytest.fixture
def wagtail_hooks(monkeypatch):
    """Run the snippet with stand-in ``wagtail`` modules; returns the registered hooks."""
    registered: dict[str, list] = {}

    def register(name, fn=None):
        def add(fn):
            registered.setdefault(name, []).append(fn)
            return fn

        return add(fn) if fn is not None else add

    wagtail = types.ModuleType("wagtail")
    hooks = types.ModuleType("wagtail.hooks")
    hooks.register = register
    admin = types.ModuleType("wagtail.admin")
    menu = types.ModuleType("wagtail.admin.menu")
    menu.Menu, menu.MenuItem, menu.SubmenuMenuItem = Menu, MenuItem, SubmenuMenuItem
    wagtail.hooks, wagtail.admin, admin.menu = hooks, admin, menu
    for name, module in {
        "wagtail": wagtail, "wagtail.hooks": hooks, "wagtail.admin": admin,
        "wagtail.admin.menu": menu,
    }.items():  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    exec(compile(snippet(), "wagtail_hooks.py", "exec"), {"__name__": "yourapp.wagtail_hooks"})
    return registered


def request_for(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_the_snippet_adds_a_jobs_submenu_linking_the_django_admin(wagtail_hooks, admin_user):
    (hook,) = wagtail_hooks["register_admin_menu_item"]
    item = hook()
    assert isinstance(item, SubmenuMenuItem)
    assert (str(item.label), item.name, item.icon_name) == ("Jobs", "jobs", "cogs")
    shown = item.menu.menu_items_for_request(request_for(admin_user))
    assert [(str(i.label), i.url) for i in shown] == [
        ("Queue dashboard", "/admin/django_jobs/job/dashboard/"),
        ("All jobs", "/admin/django_jobs/job/"),
        ("Failed jobs", "/admin/django_jobs/job/failed/"),
    ]
    assert item.is_shown(request_for(admin_user))


def test_the_links_open_for_someone_who_may_view_jobs(wagtail_hooks, staff_client):
    client = staff_client("view_job")
    (hook,) = wagtail_hooks["register_admin_menu_item"]
    user = client.get("/admin/").wsgi_request.user
    item = hook()
    assert item.is_shown(request_for(user))
    for entry in item.menu.items:
        assert client.get(entry.url).status_code == 200


def test_hidden_from_users_without_the_permission(wagtail_hooks, django_user_model):
    (hook,) = wagtail_hooks["register_admin_menu_item"]
    editor = django_user_model.objects.create_user("editor", is_staff=True)
    assert not hook().is_shown(request_for(editor))
