from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


class JobsConfig(AppConfig):
    name = "django_jobs"
    verbose_name = _("Jobs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import batches, cancelling, checks  # noqa: F401  (Job.cancel, Batch.close; checks)
        from .conf import jobs_settings
        from .metrics import receivers
        from .registry import autodiscover, publishes_outcomes, use_task_definitions
        from .storage import configure_new_connection
        from .storage.outcomes import use_outcome_events

        connection_created.connect(configure_new_connection, dispatch_uid="django_jobs")
        use_task_definitions(_task_definition)
        use_outcome_events(publishes_outcomes)
        autodiscover()
        receivers.sync()  # counters, when JOBS["METRICS"] is set
        if jobs_settings().embedded.enabled:
            from .runtime.embedded import install

            install()  # starts on the first request or enqueue, not now


def _task_definition(claimed):
    """Workers run django.tasks rows with a definition from the tasks package, which is
    imported only when such a row is claimed."""
    from .tasks.running import definition_for

    return definition_for(claimed)
