"""URLs of the event streams: ``path("jobs/events/", include("django_jobs.events.urls"))``."""

from django.urls import path

from .views import job_events

app_name = "django_jobs_events"

urlpatterns = [
    path("job/<str:token>/", job_events, name="job"),
]
