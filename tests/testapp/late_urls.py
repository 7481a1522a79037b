"""A URLconf whose views module declares a job, as a project's views.py might."""

from tests.testapp import late_jobs  # noqa: F401  (declares late:declared)
from tests.urls import urlpatterns

__all__ = ["urlpatterns"]
