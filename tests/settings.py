"""Test settings: the database comes from DJANGO_JOBS_DB (sqlite, postgres or mysql)."""

import json
import os
import tempfile
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "django_jobs-tests"
DEBUG = False
# DJANGO_JOBS_USE_TZ=0: worker processes of tests that run under USE_TZ = False.
USE_TZ = os.environ.get("DJANGO_JOBS_USE_TZ", "1") == "1"
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

ENGINE = os.environ.get("DJANGO_JOBS_DB", "sqlite")
# A file, not memory: tests start worker processes that must see the same database.
SQLITE_DIR = os.environ.get("DJANGO_JOBS_SQLITE_DIR", tempfile.gettempdir())

# Worker subprocesses started by tests use the test database of the test that started them.
_TEST_DB = os.environ.get("DJANGO_JOBS_TEST_DB_NAME")

if ENGINE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _TEST_DB or os.environ.get("PGDATABASE", "test"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": f"test_django_jobs_{os.getpid()}"},
        }
    }
    # DJANGO_JOBS_PGBOUNCER_PORT: this process reaches the database through the test's
    # PgBouncer (transaction pooling), with "direct" beside it for LISTEN_DATABASE.
    if os.environ.get("DJANGO_JOBS_PGBOUNCER_PORT"):
        DATABASES["direct"] = dict(DATABASES["default"])
        DATABASES["default"] = {
            **DATABASES["default"],
            "PORT": os.environ["DJANGO_JOBS_PGBOUNCER_PORT"],
            "DISABLE_SERVER_SIDE_CURSORS": True,
        }
elif ENGINE == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _TEST_DB or os.environ.get("MYSQL_DATABASE", "test"),
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"NAME": f"test_django_jobs_{os.getpid()}", "CHARSET": "utf8mb4"},
        }
    }
    # A project's own isolation level ("none": Django sets none, the server's default
    # applies), for tests of what claims do under a level stricter than READ COMMITTED.
    _isolation = os.environ.get("DJANGO_JOBS_MYSQL_ISOLATION")
    if _isolation is not None:
        DATABASES["default"]["OPTIONS"]["isolation_level"] = (
            None if _isolation == "none" else _isolation
        )
elif ENGINE == "sqlite":
    _name = os.path.join(SQLITE_DIR, f"django_jobs_test_{os.getpid()}.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_JOBS_SQLITE_NAME", _name),
            # DJANGO_JOBS_SQLITE_MODE="" drops transaction_mode, as a project that skipped
            # that README line (workers must not rely on it).
            "OPTIONS": (
                {"transaction_mode": _mode}
                if (_mode := os.environ.get("DJANGO_JOBS_SQLITE_MODE", "IMMEDIATE"))
                else {}
            ),
            "TEST": {"NAME": os.environ.get("DJANGO_JOBS_SQLITE_NAME", _name)},
        }
    }
else:
    raise RuntimeError(f"DJANGO_JOBS_DB must be sqlite, postgres or mysql, not {ENGINE!r}")

# A second jobs database on the same engine, for queues that live in a database of their
# own (tests/processes/test_queue_databases.py); worker subprocesses get its test name.
_jobs2 = dict(DATABASES.get("direct", DATABASES["default"]))
if ENGINE == "sqlite":
    _jobs2_name = os.path.join(SQLITE_DIR, f"django_jobs_jobs2_{os.getpid()}.sqlite3")
    _jobs2_name = os.environ.get("DJANGO_JOBS_TEST_DB2_NAME", _jobs2_name)
    _jobs2.update(NAME=_jobs2_name, TEST={"NAME": _jobs2_name})
else:
    _jobs2.update(
        NAME=os.environ.get("DJANGO_JOBS_TEST_DB2_NAME", "test2"),
        TEST={**_jobs2["TEST"], "NAME": f"test_django_jobs2_{os.getpid()}"},
    )
DATABASES["jobs2"] = _jobs2

# A second database, so tests can enqueue inside a transaction on another alias.
DATABASES["other"] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.path.join(SQLITE_DIR, f"django_jobs_other_{os.getpid()}.sqlite3"),
    "TEST": {"NAME": os.path.join(SQLITE_DIR, f"django_jobs_other_{os.getpid()}.sqlite3")},
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rangefilter",
    "django_jobs",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# DJANGO_JOBS_ROOT_URLCONF: a process test's URLconf (tests of django_jobs.discovery).
ROOT_URLCONF = os.environ.get("DJANGO_JOBS_ROOT_URLCONF", "tests.urls")
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

JOBS = {
    # Process tests of queue databases pass their own QUEUES as JSON.
    "QUEUES": json.loads(os.environ.get("DJANGO_JOBS_QUEUES", '["default", "email", "slow"]')),
    "HEARTBEAT_TIMEOUT": float(os.environ.get("DJANGO_JOBS_HEARTBEAT_TIMEOUT", "60")),
    # Process tests pass their own worker groups as JSON.
    "WORKERS": json.loads(
        os.environ.get(
            "DJANGO_JOBS_WORKERS",
            '[{"QUEUE": "*", "COUNT": 1, "MAX_ATTEMPTS": 3, "SLEEP_DELAY": 0.5}]',
        )
    ),
    # No built-in prune schedule: tests count the jobs they enqueue, and a tick at :17
    # would add one. The pruning tests turn it on with their own PRUNE.
    "PRUNE": None,
    # Recurring schedules of process tests, as JSON (none by default).
    "SCHEDULE": json.loads(os.environ.get("DJANGO_JOBS_SCHEDULE", "{}")),
    # Process tests of cancellation shorten the grace of a cancelled running job.
    "CANCEL_GRACE": float(os.environ.get("DJANGO_JOBS_CANCEL_GRACE", "5")),
    # PgBouncer tests name the alias workers LISTEN through ("direct").
    "LISTEN_DATABASE": os.environ.get("DJANGO_JOBS_LISTEN_DATABASE") or None,
}

# The django.tasks backend (Django 6, or the django-tasks backport on Django 5.2).
TASKS = {"default": {"BACKEND": "django_jobs.tasks.JobsBackend"}}
if django.VERSION[:2] == (6, 0):
    # Django 6.0's @task passes no options to the backend: the documented way there.
    TASKS["default"]["OPTIONS"] = {
        "TASKS": {
            "tests.testapp.tasks.crashes_once_only": {"MAX_ATTEMPTS": 1},
            "tests.testapp.tasks.overruns": {"MAX_ATTEMPTS": 1, "TIMEOUT": 1},
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "INFO"}},
}
