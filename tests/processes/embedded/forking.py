"""Run by tests/processes/test_embedded.py: start the embedded worker, fork, and show
that the child starts its own and both run jobs. Prints a JSON report."""

import json
import os
import sys
import time

import django

sys.path.insert(0, os.getcwd())
django.setup()

from django.db import connections  # noqa: E402

from django_jobs.runtime import embedded  # noqa: E402
from tests.processes.embedded.jobs import probe  # noqa: E402
from tests.testapp.models import Execution  # noqa: E402


def performed(key: str, deadline: float = 60.0) -> int:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        row = Execution.objects.filter(key=key).first()
        if row is not None:
            return row.pid
        time.sleep(0.05)
    raise SystemExit(f"{key} not performed in {deadline} s")


embedded.start()
# The worker has claimed, run and recorded a job (and imported what that takes) before the
# fork: a thread in the middle of an import would leave the child that module's lock.
probe.enqueue("fork-parent")
parent_first = performed("fork-parent")
connections.close_all()  # as a forking server does: no connection crosses the fork
to_child_r, to_child_w = os.pipe()
to_parent_r, to_parent_w = os.pipe()
child = os.fork()
if child == 0:
    os.close(to_child_w)
    os.close(to_parent_r)
    inherited = (embedded.workers() or [None])[0]
    os.read(to_child_r, 1)  # the parent's worker has run its job and stopped
    probe.enqueue("fork-child")  # the first enqueue starts the child's own worker
    worker = embedded.workers()[0]
    performed("fork-child")
    report = {"child_inherited": inherited and inherited.identity, "child_pid": os.getpid(),
              "child_identity": worker.identity}  # fmt: skip
    os.write(to_parent_w, json.dumps(report).encode())
    embedded.stop()
    os._exit(0)
os.close(to_child_r)
os.close(to_parent_w)
# Only the parent's worker runs now (the child waits): it performs this job too.
probe.enqueue("fork-parent-after")
performed("fork-parent-after")
embedded.stop()
os.write(to_child_w, b"x")
_, status = os.waitpid(child, 0)
report = json.loads(os.read(to_parent_r, 65536) or b"{}")
print(json.dumps({**report, "parent_pid": os.getpid(), "status": status}))
sys.exit(0 if status == 0 else 1)
