"""Two workers with the same host name and the same pid (containers with a fixed host name,
each in its own PID namespace) keep two identities: neither takes over, beats for or
recovers the other's jobs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.db.models import Count

from django_jobs import later_many
from django_jobs.models import Job, Worker
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import group
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

HOSTNAME = "django-jobs-box"


def unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


needs_namespaces = pytest.mark.skipif(
    not unshare_works(),
    reason="needs root and unshare(1) (new UTS and PID namespaces) to give two workers "
    "the same host name and pid",
)

#: Each worker runs as pid 1 of a PID namespace of its own, on host name HOSTNAME.
CONTAINER = [
    "unshare", "--uts", "--pid", "--fork", "--mount-proc",
    "sh", "-c", 'hostname "$0" && exec "$@"', HOSTNAME,
]  # fmt: skip


@needs_namespaces
def test_workers_with_the_same_host_name_and_pid_keep_apart(jobs_cmd):
    workers = [group(THREADS=1, BATCH_SIZE=5)]
    for _ in range(2):
        # The same group and --id too: everything the identity was built from is equal.
        jobs_cmd("jobs", "worker", "--index", "0", "--id", "0", workers=workers,
                 heartbeat=3, prefix=CONTAINER)  # fmt: skip
    rows = wait_until(
        lambda: (r := list(Worker.objects.values_list("identity", "host", "pid"))) and
        len(r) == 2 and r,
        timeout=30, what="two registered workers",
    )  # fmt: skip
    assert {(host, pid) for _, host, pid in rows} == {(HOSTNAME, 1)}
    first, second = sorted(identity for identity, _, _ in rows)
    assert first != second
    assert first.split("/")[0] == second.split("/")[0] == f"django-jobs-worker.*.0@{HOSTNAME}"

    keys = [f"k{i}" for i in range(60)]
    later_many(process_jobs.once, [[key, 0.05] for key in keys])
    wait_until(lambda: not Job.objects.exists(), timeout=60, what="every job to run")
    counts = dict(Execution.objects.values("key").annotate(n=Count("id")).values_list("key", "n"))
    assert counts == dict.fromkeys(keys, 1)
    # Both worked and both beat their own row all along: neither was taken over.
    wait_until(
        lambda: sorted(Worker.objects.values_list("identity", flat=True)) == [first, second]
        and all(done > 0 for done in Worker.objects.values_list("jobs_done", flat=True)),
        timeout=30, what="both workers' rows with their own jobs done",
    )  # fmt: skip
