import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.processes.embedded.settings")
application = get_asgi_application()

from django_jobs.runtime.embedded import lifespan  # noqa: E402  (after the setup)

application = lifespan(application)
