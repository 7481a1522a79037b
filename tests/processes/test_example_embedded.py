"""The example shop under gunicorn (2 workers) with embedded mode on (``SHOP_EMBEDDED=1``):
orders placed over HTTP run their whole pipeline inside the web processes, with no
``jobs work`` beside them, and the server stops cleanly.

The example project runs on SQLite (a file of the test's own): the test runs with the
SQLite suite only. The shop's own rules (the declined card, the retried charge, the rate
limit and the per-customer concurrency limit) are those of ``make example``.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.skipif(
    os.environ.get("DJANGO_JOBS_DB", "sqlite") != "sqlite",
    reason="the example project runs on SQLite: checked once, with the SQLite suite",
)

EXAMPLE = ROOT / "example_project"
ORDERS = [
    ("ada@example.com", "MUG-01", "12.50", "4242-4242-4242-4242"),
    ("grace@example.com", "TEE-M", "24.00", "5555-5555-5555-4444"),  # times out once
    ("linus@example.com", "CAP-02", "18.00", "4000-0000-0000-0002"),  # declined
    ("ada@example.com", "CAP-02", "18.00", "4242-4242-4242-4242"),
    ("margaret@example.com", "MUG-01", "12.50", "4242-4242-4242-4242"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port: int, path: str, data: dict[str, str]) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def rows(db: str, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def test_orders_placed_over_http_run_their_pipelines_in_the_web_processes(tmp_path):
    db = str(tmp_path / "shop.sqlite3")
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        SHOP_DB=db, SHOP_EMBEDDED="1", SHOP_OUTBOX=str(tmp_path / "outbox"), PYTHONUNBUFFERED="1"
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=EXAMPLE, env=env, check=True)
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "example_project.wsgi", "-w", "2",
         "-b", f"127.0.0.1:{port}"],
        cwd=EXAMPLE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:

        def answers() -> bool:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                return post(port, "/orders/", {})[0] == 400
            except OSError:
                return False

        wait_until(answers, timeout=30, what="gunicorn answering")
        for email, sku, total, card in ORDERS:
            status, _ = post(port, "/orders/", {"email": email, "sku": sku, "total": total,
                                                "card": card})  # fmt: skip
            assert status == 201
        assert post(port, "/orders/", {"email": "x@example.com", "sku": "NOPE", "total": "1",
                                       "card": "1"})[0] == 400  # fmt: skip
        # 5 orders, 4 jobs each; nothing but the two web processes runs them.
        wait_until(
            lambda: rows(db, "SELECT count(*) FROM django_jobs_job"
                             " WHERE finished_at IS NULL AND failed_at IS NULL") == [(0,)],
            timeout=90, what="every pipeline to end",
        )  # fmt: skip
        done = rows(db, "SELECT email, done_at IS NOT NULL FROM shop_order ORDER BY id")
        assert [d for _, d in done] == [1, 1, 0, 1, 1]
        workers = rows(db, "SELECT DISTINCT locked_by FROM django_jobs_job")
        assert workers == [(None,)]  # every claim ended
        # The jobs ran in the web processes: their embedded workers registered there.
        names = [name for (name,) in rows(db, "SELECT identity FROM django_jobs_worker")]
        assert names and all(name.startswith("django-jobs-embedded.") for name in names)
        charges = rows(
            db, "SELECT attempts, failed_at IS NULL FROM django_jobs_job"
                " WHERE name = 'shop.jobs.charge_card' ORDER BY id",
        )  # fmt: skip
        assert charges == [(1, 1), (2, 1), (1, 0), (1, 1), (1, 1)]
        grants = sorted(
            at for (at,) in rows(db, "SELECT at FROM django_jobs_rategrant"
                                     " WHERE rate_key = 'shop.jobs.charge_card'")
        )  # fmt: skip
        assert len(grants) >= 6  # five charges and a retry, two a second
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            code = server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            code = server.wait(10)
        log.close()
    assert code == 0, (tmp_path / "gunicorn.log").read_text()[-3000:]
