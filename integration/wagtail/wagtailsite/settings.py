"""A minimal Wagtail site whose tasks (search index, reference index) run on django_jobs.

Wagtail enqueues them through the django-tasks backport (``django_tasks``); on Django 6
the backport builds the backend that ``TASKS`` names, on Django 5.2 too (there
``JobsBackend`` is built on the backport itself).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "wagtail-integration-check"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "articles",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rangefilter",
    "django_jobs",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]
ROOT_URLCONF = "wagtailsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# WAGTAIL_DB: "sqlite" (a file, as the worker, `manage.py jobs workoff`, is another
# process) or "postgres" (the database WAGTAIL_SITE_DB names, on 127.0.0.1:5432).
if os.environ.get("WAGTAIL_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("WAGTAIL_SITE_DB", "wagtail_site"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
    # Wagtail's search index on PostgreSQL uses its full-text fields.
    INSTALLED_APPS.append("django.contrib.postgres")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("WAGTAIL_SITE_DB", str(BASE_DIR / "site.sqlite3")),
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    }

WAGTAIL_SITE_NAME = "django_jobs integration"
WAGTAILADMIN_BASE_URL = "http://example.com"
# Wagtail's database search backend (FTS5 on SQLite, full-text search on PostgreSQL).
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}

# Every django.tasks task of the site (Wagtail's included) is a row of django_jobs' table.
TASKS = {"default": {"BACKEND": "django_jobs.tasks.JobsBackend"}}

JOBS = {
    "QUEUES": ["default"],
    "WORKERS": [{"QUEUE": "*", "COUNT": 1}],
    # Wagtail's search-index task lives in `modelsearch.tasks`; the installed app is
    # `wagtail.search` (whose AppConfig extends modelsearch's), so the module is allowed
    # explicitly: workers import task modules of installed apps and of this list only.
    "TASK_MODULES": ["modelsearch"],
}
