"""The queue dashboard and failures page are listed with the jobs app wherever Django lists
apps: the admin's index page, the app's page and the navigation sidebar."""

import re

import pytest

pytestmark = pytest.mark.django_db
DASHBOARD = "/admin/django_jobs/job/dashboard/"
FAILURES = "/admin/django_jobs/job/failed/"


def jobs_app_block(html: str) -> str:
    found = re.search(r'<div class="app-django_jobs module[^"]*">(.*?)</div>', html, re.S)
    assert found, "no jobs app on the page"
    return found.group(1)


def row_names(block: str) -> list[str]:
    return re.findall(
        r'<th scope="row" id="django_jobs-[^"]+">\s*<a href="[^"]+"[^>]*>([^<]+)</a>', block
    )


def test_admin_index_links_the_dashboard(admin_client):
    block = jobs_app_block(admin_client.get("/admin/").content.decode())
    assert f'<a href="{DASHBOARD}"' in block and f'<a href="{FAILURES}"' in block
    assert row_names(block) == [
        "Batches",
        "Failed jobs by error",
        "Jobs",
        "Queue dashboard",
        "Schedules",
        "Workers",
    ]
    assert '<a href="/admin/django_jobs/job/schedules/"' in block
    assert admin_client.get(DASHBOARD).status_code == 200


def test_app_page_and_sidebar_link_it_too(admin_client):
    app_page = admin_client.get("/admin/django_jobs/").content.decode()
    assert app_page.count(f'href="{DASHBOARD}"') >= 1
    # Every admin page's navigation sidebar lists the apps the same way.
    sidebar = admin_client.get("/admin/django_jobs/job/").content.decode()
    sidebar = sidebar.split('id="nav-sidebar"')[1]
    assert f'href="{DASHBOARD}"' in sidebar


def test_only_for_users_who_may_view_jobs(staff_client):
    viewer = staff_client("view_job")
    assert f'href="{DASHBOARD}"' in viewer.get("/admin/").content.decode()
    # Someone who may see the workers but not the jobs gets the app without the pages.
    workers_only = staff_client("view_worker")
    block = jobs_app_block(workers_only.get("/admin/").content.decode())
    assert row_names(block) == ["Workers"]
    assert workers_only.get(DASHBOARD).status_code == 403
