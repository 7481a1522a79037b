"""Imported by a running job (tests.processes.app.jobs.declares_a_job), never at start:
a worker must refuse the job this module declares."""

from django_jobs import job


@job(name="lazy:declared")
def declared_in_a_worker():
    pass
