"""Settings of the benchmark project for django_jobs: env picks the engine and worker group.

BENCH_ENGINE (sqlite|postgres|mysql), BENCH_DB (database name, always bench_*),
BENCH_THREADS, BENCH_ASYNC, BENCH_BATCH, BENCH_SLEEP_DELAY configure the one worker group;
BENCH_COUNT, BENCH_DB_HOST, BENCH_DB_PORT and BENCH_HEARTBEAT_TIMEOUT serve bench/many_hosts.py;
BENCH_LIMITS and BENCH_TYPED declare the limited and the typed no-op jobs (benchapp/jobs.py).
DEBUG is off (query logging would grow memory) and django_jobs logs at WARNING: an INFO
line per job costs a few percent of no-op throughput (BENCH_LOG_LEVEL=INFO measures it).
"""

import os
import sys

from bench.lib import MY, PG, sqlite_path

SECRET_KEY = "django_jobs-bench"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS: list[str] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django_jobs", "bench.project.benchapp"]

ENGINE = os.environ.get("BENCH_ENGINE", "sqlite")
NAME = os.environ.get("BENCH_DB", "bench_jobs")

if ENGINE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": NAME,
            "USER": PG["user"],
            "HOST": os.environ.get("BENCH_DB_HOST", PG["host"]),
            "PORT": os.environ.get("BENCH_DB_PORT", PG["port"]),
            "CONN_MAX_AGE": None,
        }
    }
    # BENCH_PG_PORT: through a pooler listening there (the PgBouncer row of
    # docs/performance.md); BENCH_LISTEN_DIRECT=1 keeps LISTEN on a direct alias.
    if os.environ.get("BENCH_PG_PORT"):
        DATABASES["direct"] = dict(DATABASES["default"])
        DATABASES["default"]["PORT"] = int(os.environ["BENCH_PG_PORT"])
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
elif ENGINE == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": NAME,
            "USER": MY["user"],
            "PASSWORD": MY["password"],
            "HOST": os.environ.get("BENCH_DB_HOST", MY["host"]),
            "PORT": os.environ.get("BENCH_DB_PORT", MY["port"]),
            "OPTIONS": {"charset": "utf8mb4"},
            "CONN_MAX_AGE": None,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path(NAME),
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
            "CONN_MAX_AGE": None,
        }
    }

JOBS = {
    "QUEUES": ["default"],
    "HEARTBEAT_TIMEOUT": float(os.environ.get("BENCH_HEARTBEAT_TIMEOUT", "60")),
    "WORKERS": [
        {
            "QUEUE": "*",
            "COUNT": int(os.environ.get("BENCH_COUNT", "1")),
            "THREADS": int(os.environ.get("BENCH_THREADS", "1")),
            "ASYNC_CONCURRENCY": int(os.environ.get("BENCH_ASYNC", "10")),
            "BATCH_SIZE": int(os.environ.get("BENCH_BATCH", "100")),
            "SLEEP_DELAY": float(os.environ.get("BENCH_SLEEP_DELAY", "5")),
        }
    ],
}

if os.environ.get("BENCH_LISTEN_DIRECT"):
    JOBS["LISTEN_DATABASE"] = "direct"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_jobs": {
            "handlers": ["console"],
            "level": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    },
}

# BENCH_OBSERVE, for the cost of metrics and tracing (docs/performance.md): "" (default:
# the packages as installed, nothing configured), "hidden" (as if prometheus-client and
# opentelemetry were not installed), "traced" (an OpenTelemetry SDK provider whose spans
# are dropped; bench/ours.py enqueues inside a span), "metrics" (JOBS["METRICS"] = {}).
OBSERVE = os.environ.get("BENCH_OBSERVE", "")
if OBSERVE == "hidden":
    sys.modules["prometheus_client"] = None  # type: ignore[assignment]
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]
elif OBSERVE == "traced":
    from bench.lib import drop_spans

    drop_spans()
elif OBSERVE == "metrics":
    # Counted as under a supervisor: workers write to a multiprocess directory.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/bench_jobs_metrics")
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    JOBS["METRICS"] = {}
