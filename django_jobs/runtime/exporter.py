"""The supervisor's metrics endpoint (``JOBS["METRICS"]["PORT"]``).

Counters are kept with prometheus-client's multiprocess mode: the supervisor makes a
directory of its own, ``<PID_DIR>/metrics-<supervisor pid>``, empty at start, and passes
it to every worker it starts as ``PROMETHEUS_MULTIPROC_DIR``; each worker writes its
counts to files there, and a scrape adds up every file, those of workers that have
exited (crashed, recycled, replaced) included, so totals never go back while the
supervisor runs. A scrape also reads the table's gauges (:mod:`django_jobs.metrics.collector`).

One endpoint per supervisor, not one per worker: Prometheus scrapes each host's
supervisor and sums over hosts. Its counters start from zero when the supervisor
starts (Prometheus' ``rate()`` and ``increase()`` treat that as a counter reset).
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from ..conf import jobs_settings
from ..metrics.exposition import MULTIPROC_ENV
from ..metrics.installed import AVAILABLE, INSTALL_HINT

logger = logging.getLogger("django_jobs.supervisor")

DIRECTORY_PREFIX = "metrics-"


class Exporter:
    """Serves the metrics of one supervisor and its workers over HTTP."""

    def __init__(self, port: int, address: str, pid_dir: str) -> None:
        self.port = port
        self.address = address
        self.directory = os.path.join(pid_dir, f"{DIRECTORY_PREFIX}{os.getpid()}")
        self.server: Any = None

    def start(self, env: dict[str, str]) -> bool:
        """Prepare the directory, point this process and ``env`` (the workers') at it,
        and listen; False (logged) when the port cannot be had: jobs still run."""
        from prometheus_client import start_http_server, values

        from ..metrics.exposition import scrape_registry

        _remove_stale(os.path.dirname(self.directory))
        shutil.rmtree(self.directory, ignore_errors=True)
        os.makedirs(self.directory, exist_ok=True)
        env[MULTIPROC_ENV] = self.directory
        # This process counts too (its scheduler enqueues recurring jobs): into the
        # directory, like the workers. prometheus-client picks its value class from the
        # variable when it is imported, which may have happened already.
        os.environ[MULTIPROC_ENV] = self.directory
        values.ValueClass = values.get_value_class()
        registry = scrape_registry(self.directory, close_connections=True)
        try:
            self.server, _thread = start_http_server(self.port, self.address, registry)
        except OSError as exc:
            logger.error(
                "[jobs] cannot serve metrics on %s:%s: %s (jobs run; metrics are counted "
                "but not served)",
                self.address, self.port, exc,
            )  # fmt: skip
            return False
        logger.info("[jobs] metrics on http://%s:%s/metrics", self.address, self.port)
        return True

    def worker_exited(self, pid: int) -> None:
        """Bookkeeping for a worker that is gone; its counts stay in the totals."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.directory)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _remove_stale(pid_dir: str) -> None:
    """Directories of supervisors that are gone (killed before they could clean up)."""
    try:
        names = os.listdir(pid_dir)
    except OSError:
        return
    for name in names:
        pid = name[len(DIRECTORY_PREFIX) :]
        if not name.startswith(DIRECTORY_PREFIX) or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(pid_dir, name), ignore_errors=True)
        except PermissionError:
            continue  # alive, someone else's


def exporter_for_supervisor() -> Exporter | None:
    """The exporter ``JOBS["METRICS"]`` asks for, or None (no port, or no package)."""
    settings = jobs_settings()
    metrics = settings.metrics
    if metrics is None or metrics.port is None:
        return None
    if not AVAILABLE:
        logger.error("[jobs] JOBS['METRICS'] has a PORT but metrics need %s", INSTALL_HINT)
        return None
    return Exporter(metrics.port, metrics.address, settings.pid_dir)
