"""Shared fixtures: real worker processes against the test database, and polling helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def analyze_jobs() -> None:
    """Fresh planner statistics for the job table on the default database."""
    from django.db import connection

    with connection.cursor() as cursor:
        statement = {
            "postgresql": "ANALYZE django_jobs_job",
            "mysql": "ANALYZE TABLE django_jobs_job",
        }
        cursor.execute(statement.get(connection.vendor, "ANALYZE"))
        if connection.vendor == "mysql":
            cursor.fetchall()  # MySQL's ANALYZE TABLE returns a result set


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = ""
):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a subprocess that uses the same (test) database as this test."""
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["DJANGO_JOBS_TEST_DB_NAME"] = str(settings.DATABASES["default"]["NAME"])
    env["DJANGO_JOBS_TEST_DB2_NAME"] = str(settings.DATABASES["jobs2"]["NAME"])
    env["PYTHONUNBUFFERED"] = "1"
    if connection.vendor == "sqlite":
        env["DJANGO_JOBS_SQLITE_NAME"] = str(settings.DATABASES["default"]["NAME"])
    env.update(extra or {})
    return env


class Process:
    """A ``python -m django …`` subprocess whose output goes to a file we can read.

    ``prefix`` runs it through another command (``ip netns exec``, ``unshare``).
    """

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        new_session: bool = True,
        prefix: Sequence[str] = (),
    ):
        self.log = tempfile.NamedTemporaryFile(
            prefix="django_jobs_proc_", suffix=".log", delete=False
        )
        self.args = args
        self.popen = subprocess.Popen(
            [*prefix, sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.args} still running after {timeout}s; output:\n{self.output()[-3000:]}"
            ) from None

    def kill_tree(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.popen.kill()
        self.popen.wait(10)
        self.log.close()


@pytest.fixture
def processes(transactional_db):
    """Start ``manage.py`` subprocesses; every one (and its children) is killed at teardown."""
    started: list[Process] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        new_session: bool = True,
        prefix: Sequence[str] = (),
    ) -> Process:
        from django.db import connections

        # Our own connection must not hold locks the subprocess needs (SQLite).
        connections.close_all()
        proc = Process(list(args), worker_env(env), new_session=new_session, prefix=prefix)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill_tree()


@pytest.fixture(autouse=True)
def _test_registry():
    """Jobs a test declares with @job are forgotten after it."""
    from django_jobs import registry

    before = set(registry.all_jobs())
    yield
    for name in set(registry.all_jobs()) - before:
        registry.unregister(name)


@pytest.fixture
def events_idle():
    """After the test, every events hub of this process has closed its connection."""
    yield
    from django_jobs.events.hub import wait_until_idle

    assert wait_until_idle(10), "an events subscription was left open"


@pytest.fixture
def pgbouncer_port(transactional_db):
    """The port of a PgBouncer (transaction pooling) in front of the test's PostgreSQL."""
    from django.db import connection

    from tests import pgbouncer

    if connection.vendor != "postgresql":
        pytest.skip("PgBouncer sits in front of PostgreSQL only")
    if not pgbouncer.available():
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed (.ci/run installs it)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            return cursor.fetchone()[0]

    before = sessions()
    settings = connection.settings_dict
    with pgbouncer.pgbouncer(
        settings["HOST"] or "127.0.0.1", str(settings["PORT"] or 5432)
    ) as port:
        yield port
    # Its server connections end a moment after it does; the test database cannot be
    # dropped at the end of the run while they last.
    wait_until(lambda: sessions() <= before, timeout=15, what="PgBouncer's sessions to end")
