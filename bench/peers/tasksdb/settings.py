"""django-tasks-db harness project (peers venv, Django 6.x): same databases as ours.

CONN_MAX_AGE=None keeps the worker's connection between tasks (its best case: with the
default 0 it opens a new connection per task); SQLite runs in WAL with a busy timeout,
as ours does.
"""

import os

from bench.lib import MY, PG, sqlite_path

SECRET_KEY = "django_jobs-bench-peers"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django_tasks_db", "bench.peers.tasksdb"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

ENGINE = os.environ.get("BENCH_ENGINE", "sqlite")
NAME = os.environ.get("BENCH_DB", "bench_jobs")
if ENGINE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": NAME, "USER": PG["user"], "HOST": PG["host"], "PORT": PG["port"],
            "CONN_MAX_AGE": None,
        }
    }  # fmt: skip
elif ENGINE == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": NAME, "USER": MY["user"], "PASSWORD": MY["password"], "HOST": MY["host"],
            "PORT": MY["port"], "OPTIONS": {"charset": "utf8mb4"}, "CONN_MAX_AGE": None,
        }
    }  # fmt: skip
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path(NAME),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            "CONN_MAX_AGE": None,
        }
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING"},
}
