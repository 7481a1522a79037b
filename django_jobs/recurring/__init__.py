"""Recurring jobs: schedules from ``JOBS["SCHEDULE"]`` and ``@job(cron=...)``, enqueued
exactly once per tick by the schedulers in every supervisor and ``jobs workoff``.

``schedule`` parses schedules and computes their ticks (no database); ``scheduler``
enqueues due ticks and holds the operations (run now, pause, resume, last run);
``report`` renders ``manage.py jobs schedule``.
"""
