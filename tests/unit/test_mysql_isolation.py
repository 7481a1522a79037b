"""MySQL/MariaDB: claims run at READ COMMITTED whatever the project's isolation level, and
that level never leaks into job code sharing the connection, also after a reconnect.

A claim at REPEATABLE READ would take gap locks that block enqueues. The project's level
comes from ``DATABASES[…]["OPTIONS"]["isolation_level"]``; the test runs a process whose
settings set it (``DJANGO_JOBS_MYSQL_ISOLATION``), against this test's database.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.db import connection

from django_jobs import later_many
from tests.conftest import ROOT, worker_env
from tests.testapp import jobs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'mysql'", reason="isolation levels: MySQL/MariaDB"),
]

# Claims twice, closing the connection in between. Which level a transaction runs at is
# seen from what it reads: it reads a probe row, another connection changes the row and
# commits, and it reads again. READ COMMITTED sees the change; REPEATABLE READ does not.
# (information_schema.INNODB_TRX would name the level, but InnoDB refreshes that view at
# most every 100 ms: a read just after a new transaction began shows the previous one.)
SCRIPT = """
import json
import django
django.setup()
import MySQLdb
from django.db import connection, transaction
from django_jobs import clock
from django_jobs.storage import get_storage
from tests.testapp.models import Execution

other = MySQLdb.connect(**connection.get_connection_params())
other.autocommit(True)
probe = Execution.objects.create(key="probe", pid=0).pk
changes = 0


def level():
    \"\"\"The level of the transaction open on this connection, told by what it reads.\"\"\"
    global changes
    read = "SELECT pid FROM testapp_execution WHERE id = %s"
    with connection.cursor() as cursor:
        cursor.execute(read, [probe])
        before = cursor.fetchone()[0]
        changes += 1
        other.cursor().execute(
            "UPDATE testapp_execution SET pid = %s WHERE id = %s", [changes, probe]
        )
        cursor.execute(read, [probe])
        after = cursor.fetchone()[0]
    return "READ COMMITTED" if after != before else "REPEATABLE READ"


def claim_level():
    seen = []

    def inside(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "SKIP LOCKED" in sql:  # the claim's SELECT: its transaction has begun
            seen.append(level())
        return result

    with connection.execute_wrapper(inside):
        claimed = get_storage().claim("w", None, 1, clock.now())
    assert len(claimed) == 1, claimed
    return seen[0]


def job_code_level():
    with transaction.atomic():
        in_atomic = level()
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@tx_isolation")
        session = cursor.fetchone()[0]
    return [in_atomic, session]


report = []
for _ in range(2):
    report.append({"claim": claim_level(), "job": job_code_level()})
    connection.close()  # the next round runs on a new connection
print(json.dumps(report))
"""


@pytest.mark.parametrize("configured", ["repeatable read", "none", "read committed"])
def test_claims_run_read_committed_and_job_code_keeps_the_projects_level(configured):
    later_many(jobs.record, [["a"], ["b"]])
    connection.close()
    env = worker_env({"DJANGO_JOBS_MYSQL_ISOLATION": configured})
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # "none": Django sets no level and the server's default applies (REPEATABLE READ).
    project = {"none": "REPEATABLE READ"}.get(configured, configured.upper())
    assert (
        report
        == [
            {"claim": "READ COMMITTED", "job": [project, project.replace(" ", "-")]},
        ]
        * 2
    ), report
