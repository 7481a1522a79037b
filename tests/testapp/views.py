"""The minimal progress page of docs/howto/events.md, for the browser test."""

from django.shortcuts import render

from django_jobs.models import Job


def progress_page(request, job_id):
    # A real project checks that the job is the user's before handing out its URL.
    job = Job.objects.get(pk=job_id)
    return render(request, "testapp/progress.html", {"events_url": job.events_url})
