"""One scrape: the counters (this process's, or a multiprocess directory's) and the
table's gauges, as Prometheus text; and the Django view that serves it."""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .installed import AVAILABLE, INSTALL_HINT

#: prometheus-client's own variable: set, counters are written to files in it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def scrape_registry(directory: str | None = None, close_connections: bool = False) -> Any:
    """A registry with the counters and the table collector.

    ``directory``: the multiprocess directory whose files hold the counters (default:
    ``PROMETHEUS_MULTIPROC_DIR`` when set, else this process's own counters).
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from .collector import TableCollector
    from .counters import registry

    scrape = CollectorRegistry(auto_describe=False)
    directory = directory or os.environ.get(MULTIPROC_ENV)
    if directory:
        MultiProcessCollector(scrape, path=directory)
    else:
        scrape.register(registry())
    scrape.register(TableCollector(close_connections=close_connections))
    return scrape


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """django_jobs' metrics as Prometheus text (OpenMetrics when asked for)."""
    if not AVAILABLE:
        return HttpResponse(
            f"django_jobs metrics need prometheus-client: {INSTALL_HINT}\n",
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
