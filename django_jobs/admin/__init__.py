"""The jobs admin: the job list and page, actions, filters and the queue dashboard.

Django's admin autodiscovery imports ``django_jobs.admin``; importing the model admins
here registers them.
"""

from .modeladmins import JobAdmin, WorkerAdmin

__all__ = ["JobAdmin", "WorkerAdmin"]
