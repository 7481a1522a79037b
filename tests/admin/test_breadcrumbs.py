"""The jobs admin's own pages draw their breadcrumbs as Django's own pages do, per version.

Django 6.1 moved from ``<div class="breadcrumbs">`` (links separated by ›) to
``<ol class="breadcrumbs">`` of ``<li>``, and its CSS styles only the markup of its
version. The job list is Django's own template: its breadcrumbs are the reference.
"""

import re

import pytest

from .helpers import make_job

pytestmark = pytest.mark.django_db
LIST = "/admin/django_jobs/job/"


def crumbs(html: str) -> tuple[str, str]:
    """(tag, inner html) of the page's breadcrumbs element."""
    found = re.search(r'<(div|ol) class="breadcrumbs">(.*?)</\1>', html, re.S)
    assert found, "no breadcrumbs element"
    return found.group(1), found.group(2)


@pytest.mark.parametrize("page", ["dashboard/", "failed/", "schedules/", "{pk}/retry/"])
def test_same_markup_as_djangos_own_pages(admin_client, page):
    job = make_job("failed")
    reference_tag, reference = crumbs(admin_client.get(LIST).content.decode())
    response = admin_client.get(LIST + page.format(pk=job.pk))
    assert response.status_code == 200
    tag, inner = crumbs(response.content.decode())
    assert tag == reference_tag
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', inner)
    assert links == re.findall(r'<a href="([^"]+)">([^<]+)</a>', reference) + [(LIST, "Jobs")]
    if tag == "ol":
        assert re.search(r'<li aria-current="page">[^<]+</li>\s*$', inner)
        assert "&rsaquo;" not in inner
    else:
        assert inner.count("&rsaquo;") == 3
