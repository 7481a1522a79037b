"""The worker runtime: supervisor, worker processes and what keeps them honest.

``manage.py jobs`` is a thin shell over these modules: ``supervisor`` (``jobs work``),
``worker`` with its ``ledger``, ``flusher``, ``runners``, ``heartbeat``, ``watchdog`` and
``lifeline`` (recovery), ``daemon`` (``start``/``stop``/``restart``), ``status``,
``workoff``, ``recycling``, ``resilience`` (database outages) and ``proctitle``.
"""
