"""``jobs status`` while ``jobs work`` runs in the foreground: it leads with what runs."""

import pytest

from tests.processes.conftest import group, live_workers

pytestmark = pytest.mark.processes


def test_status_under_a_foreground_supervisor_leads_with_its_live_workers(jobs_cmd):
    workers = [group(2)]
    supervisor = jobs_cmd("jobs", "work", workers=workers)
    live_workers(2)
    status = jobs_cmd("jobs", "status", workers=workers)
    assert status.wait(60) == 0, status.output()
    text = status.output()
    first = text.splitlines()[0]
    assert first.startswith("Running: 2 live worker(s) on 1 host(s)"), text
    assert "Supervisor: no detached one on this host" in text
    assert f"the 2 live worker(s) on this host run under pid {supervisor.pid} " in text
    assert text.index("Running:") < text.index("Supervisor:")
