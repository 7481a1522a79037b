"""A module outside every installed app: workers must not import it for a task row
unless JOBS["TASK_MODULES"] names it. Importing it leaves a mark."""

import os

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

os.environ["DJANGO_JOBS_OUTSIDE_IMPORTED"] = "1"


@task
def shout(word):
    return word.upper()
