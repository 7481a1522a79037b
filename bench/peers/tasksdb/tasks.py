"""The benchmark's tasks for django-tasks-db (Django's ``@task``)."""

import time

from django.tasks import task

from bench.lib import record_pickup


@task
def noop(i):
    pass


@task
def sleep10(i):
    time.sleep(0.01)


@task
def pickup(key):
    record_pickup(key)
