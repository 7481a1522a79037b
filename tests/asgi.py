"""The test project under an ASGI server (uvicorn), for the event streams' browser tests.

Static files are served too (as ``runserver`` does), so the admin's scripts load.
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
application = ASGIStaticFilesHandler(get_asgi_application())
