"""A PgBouncer of the test's own, in transaction pooling mode, in front of the test server.

Debian's ``pgbouncer`` package (installed by ``.ci/run``). It refuses to run as root, so
as root it is started with ``-u postgres``, and its files live in a directory that user
can read.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/users.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def pgbouncer(host: str = "127.0.0.1", port: str = "5432") -> Iterator[int]:
    """Run PgBouncer for the duration of the block; yields the port it listens on."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    directory = Path(tempfile.mkdtemp(prefix="django_jobs_pgbouncer_"))
    directory.chmod(0o755)
    listen = free_port()
    config = directory / "pgbouncer.ini"
    config.write_text(CONFIG.format(host=host, port=port, listen=listen, directory=directory))
    (directory / "users.txt").write_text('"postgres" ""\n')
    for path in directory.iterdir():
        path.chmod(0o644)
    user = ["-u", "postgres"] if os.geteuid() == 0 else []
    with open(directory / "pgbouncer.log", "wb") as log:
        proc = subprocess.Popen([binary, *user, str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not _answers(listen):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "pgbouncer did not start:\n" + (directory / "pgbouncer.log").read_text()
                )
            time.sleep(0.05)
        yield listen
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def available() -> bool:
    return bool(shutil.which("pgbouncer") or os.path.exists("/usr/sbin/pgbouncer"))
