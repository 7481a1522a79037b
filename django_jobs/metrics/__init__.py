"""Prometheus metrics: counters fed by django_jobs' signals, and queue gauges read from
the table at scrape time.

Only with ``prometheus-client`` installed (``pip install django-dbjobs[prometheus]``);
importing this package imports nothing of it. The rooms:

* :mod:`.counters`: jobs enqueued, succeeded, retried, failed and cancelled per job name
  and queue, and a duration histogram, counted in the process where each happens (the
  enqueuing one, the worker) once ``JOBS["METRICS"]`` is set; :mod:`.receivers`
  connects them to the signals;
* :mod:`.collector`: ready jobs, the age of the oldest, running jobs, paused queues and
  live workers, read from the jobs table when scraped, so they are right whichever
  process or host serves them;
* :mod:`.exposition`: one scrape's text from both, and :func:`metrics_view`, the Django
  view a project mounts behind its own authentication;
* ``runtime/exporter.py``: the supervisor's HTTP endpoint (``JOBS["METRICS"]["PORT"]``),
  which adds up the counters of all its worker processes through prometheus-client's
  multiprocess mode.
"""

from __future__ import annotations

from .exposition import metrics_view
from .installed import AVAILABLE, INSTALL_HINT

__all__ = ["AVAILABLE", "INSTALL_HINT", "metrics_view"]
