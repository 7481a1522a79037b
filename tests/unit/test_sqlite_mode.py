"""SQLite: the worker's own write transactions leave the connection's transaction_mode as
the project (or use_worker_connections) set it, for the job code that shares it."""

import threading

import pytest
from django.db import connection, connections

from django_jobs.storage import get_storage

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite only"),
]


def test_a_write_transaction_on_a_connection_never_opened_keeps_the_transaction_mode():
    # A worker process's first statement is register()'s write_transaction, on a
    # connection that never connected (a new thread's stands for it): the mode put back
    # afterwards must be the one the connection opened with, not "none yet".
    seen = []

    def first_use():
        try:
            with get_storage().write_transaction():
                pass
            seen.append(connection.transaction_mode)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_use)
    thread.start()
    thread.join(10)
    assert seen == ["IMMEDIATE"]  # tests.settings OPTIONS
