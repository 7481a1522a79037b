"""A job in a module that no jobs.py imports: workers never know it (tests of
django_jobs.discovery import it after Django is set up, as a view or a service would)."""

from django_jobs import job


@job(name="late:declared")
def declared_late(key):
    pass
