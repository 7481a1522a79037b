from django.contrib import admin
from django.urls import include, path

from django_jobs.metrics import metrics_view
from tests.testapp.views import progress_page

urlpatterns = [
    path("admin/", admin.site.urls),
    # A project mounts it behind its own authentication; the tests read it directly.
    path("jobs-metrics/", metrics_view),
    path("jobs/events/", include("django_jobs.events.urls")),
    path("progress/<int:job_id>/", progress_page),
]
