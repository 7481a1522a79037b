"""Settings of a small shop that sends receipts and charges cards in background jobs."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development key: this project is an example and must never be deployed as is.
SECRET_KEY = "django-insecure-example-project-only"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rangefilter",
    "django_jobs",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # SHOP_DB: another file (tests run the site on one of their own).
        "NAME": os.environ.get("SHOP_DB") or BASE_DIR / "db.sqlite3",
        # Web requests and workers write the same file: taking the write lock when a
        # transaction begins avoids "database is locked" on lock upgrades.
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"

# Receipts are written as files instead of being sent, so the demo needs no mail server.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("SHOP_OUTBOX") or BASE_DIR / "outbox"
DEFAULT_FROM_EMAIL = "shop@example.com"

JOBS = {
    "QUEUES": ["default", "email"],
    "WORKERS": [
        {
            "QUEUE": "*",
            "COUNT": 2,
            "MAX_ATTEMPTS": 5,
            "SLEEP_DELAY": 1,
            # Kept so that the admin and the demo can show what ran.
            "DELETE_SUCCESSFUL_JOBS": False,
        }
    ],
}
# `SHOP_EMBEDDED=1 python manage.py runserver`: the jobs run inside the web process
# (docs/howto/embedded.md), with no `jobs work` beside it.
if os.environ.get("SHOP_EMBEDDED"):
    JOBS["EMBEDDED"] = {"ENABLED": True, "THREADS": 2}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "WARNING"}},
}
