"""DELETE_SUCCESSFUL_JOBS is on by default, so the "succeeded" list is empty unless a
worker group keeps them: the list says so, per queue, instead of just showing nothing."""

import pytest

from .helpers import make_job

pytestmark = pytest.mark.django_db
URL = "/admin/django_jobs/job/"
NOTE = 'id="djj-succeeded-not-kept"'


def note(client, **params) -> str | None:
    content = client.get(URL, {"status": "succeeded", **params}).content.decode()
    if NOTE not in content:
        return None
    return content.split(NOTE)[1].split("</p>")[0]


def test_default_settings_explain_the_empty_list(admin_client):
    text = note(admin_client)
    assert text is not None
    assert "Succeeded jobs of default, email, slow are not listed" in text
    assert "DELETE_SUCCESSFUL_JOBS is on (the default)" in text
    assert "are kept" not in text
    # Only on the succeeded list.
    assert NOTE not in admin_client.get(URL).content.decode()
    assert NOTE not in admin_client.get(URL, {"status": "failed"}).content.decode()


def test_per_queue_when_some_groups_keep_them(admin_client, settings):
    settings.JOBS = {
        **settings.JOBS,
        "WORKERS": [
            {"QUEUE": ["email"], "DELETE_SUCCESSFUL_JOBS": False},
            {"QUEUE": "*"},
        ],
    }
    kept = make_job("succeeded", queue="email")
    text = note(admin_client)
    assert "Succeeded jobs of default, slow are not listed" in text
    assert "Succeeded jobs of email are kept." in text
    assert note(admin_client, queue="email") is None
    assert "Succeeded jobs of default are not listed" in note(admin_client, queue="default")
    content = admin_client.get(URL, {"status": "succeeded"}).content.decode()
    assert f"#{kept.pk}</span>" in content


def test_no_note_when_every_group_keeps_them(admin_client, settings):
    settings.JOBS = {**settings.JOBS, "WORKERS": [{"QUEUE": "*", "DELETE_SUCCESSFUL_JOBS": False}]}
    assert note(admin_client) is None


def test_queue_names_are_escaped(admin_client, settings):
    settings.JOBS = {**settings.JOBS, "QUEUES": ["<b>q</b>"], "WORKERS": [{"QUEUE": "*"}]}
    text = note(admin_client)
    assert "&lt;b&gt;q&lt;/b&gt;" in text and "<b>" not in text
