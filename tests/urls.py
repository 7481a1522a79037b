from django.contrib import admin
from django.urls import path

from django_jobs.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    # A project mounts it behind its own authentication; the tests read it directly.
    path("jobs-metrics/", metrics_view),
]
