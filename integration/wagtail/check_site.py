"""Wagtail's tasks run on django_jobs: run by `make wagtail` (see README.md here).

On a new database (a SQLite file, or with WAGTAIL_DB=postgres a PostgreSQL database made
for the run and dropped after it): publish a page, check that Wagtail's tasks (search index and
reference index) are stored as rows of the jobs table and have not run, run
`manage.py jobs workoff` in another process, then check that every task is SUCCESSFUL
(read back through the django.tasks API), that Wagtail's search backend finds the page
and that Wagtail's reference index records its reference. Exits non-zero on the first
check that fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POSTGRES = os.environ.get("WAGTAIL_DB", "sqlite") == "postgres"
if POSTGRES:
    DB = os.environ.get("WAGTAIL_SITE_DB", f"django_jobs_wagtail_{os.getpid()}")
else:
    DB = str(os.environ.get("WAGTAIL_SITE_DB", HERE / "site.sqlite3"))
ENV = {**os.environ, "DJANGO_SETTINGS_MODULE": "wagtailsite.settings", "WAGTAIL_SITE_DB": DB}
TASK_PREFIX = "django.tasks:"
SEARCH_TASK = "modelsearch.tasks.insert_or_update_object_task"
REFERENCE_TASK = "wagtail.tasks.update_reference_index_task"
WORD = "zebracorn"  # in the article's body only: found by search once it is indexed

started = time.monotonic()
passed = 0


def check(condition: object, what: str, detail: object = "") -> None:
    global passed
    if not condition:
        print(f"FAIL: {what}\n  {detail}" if detail != "" else f"FAIL: {what}")
        elapsed = time.monotonic() - started
        print(f"wagtail: {passed} passed, 1 failed in {elapsed:.1f}s")
        sys.exit(1)
    passed += 1
    print(f"ok: {what}")


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=HERE, env=ENV, capture_output=True, text=True
    )


def postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname="postgres",
        autocommit=True,
    ) as connection:
        connection.execute(statement)


def new_database() -> None:
    if POSTGRES:
        postgres(f'DROP DATABASE IF EXISTS "{DB}"')
        postgres(f'CREATE DATABASE "{DB}"')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DB}{suffix}").unlink(missing_ok=True)


def main() -> None:
    new_database()
    try:
        check_site()
    finally:
        if POSTGRES:
            from django.apps import apps
            from django.db import connections

            if apps.ready:
                connections.close_all()
            postgres(f'DROP DATABASE IF EXISTS "{DB}"')


def check_site() -> None:
    migrate = manage("migrate", "--noinput", "-v", "0")
    check(migrate.returncode == 0, "manage.py migrate", migrate.stdout + migrate.stderr)

    os.environ.update(ENV)
    sys.path.insert(0, str(HERE))
    import django

    django.setup()
    import django_tasks
    from articles.models import ArticlePage
    from django.db import transaction
    from wagtail.models import Page, ReferenceIndex

    from django_jobs.models import Job

    engine = "PostgreSQL" if POSTGRES else "SQLite"
    print(f"Django {django.get_version()}, Wagtail {__import__('wagtail').__version__}, "
          f"django-tasks {django_tasks.__version__}, {engine}")  # fmt: skip
    backend = django_tasks.task_backends["default"]
    check(
        type(backend).__module__.startswith("django_jobs.tasks"),
        "Wagtail's django_tasks builds django_jobs' backend from TASKS",
        type(backend),
    )

    home = Page.objects.get(depth=2)
    try:
        with transaction.atomic():
            home.add_child(instance=ArticlePage(title="Draft", body="rolled back"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    check(
        not Job.objects.exists() and not ArticlePage.objects.exists(),
        "a page saved in a transaction that rolls back leaves no task row",
        list(Job.objects.values_list("name", flat=True)),
    )

    article = ArticlePage(title="Sightings", body=f"A {WORD} was seen.", related_page=home)
    home.add_child(instance=article)
    article.save_revision().publish()

    rows = list(Job.objects.filter(name__startswith=TASK_PREFIX).order_by("id"))
    names = {row.name for row in rows}
    ours = [row for row in rows if row.args[-1] == str(article.pk)]
    check(
        {TASK_PREFIX + SEARCH_TASK, TASK_PREFIX + REFERENCE_TASK} <= {r.name for r in ours},
        "publishing the page stored its search-index and reference-index tasks as jobs",
        sorted(names),
    )
    check(
        all(row.finished_at is None and row.failed_at is None for row in rows),
        f"none of the {len(rows)} task rows has run before a worker runs",
    )
    check(
        not ArticlePage.objects.live().search(WORD)
        and not ReferenceIndex.get_references_for_object(article).exists(),
        "before the worker: the page is in neither the search index nor the reference index",
    )

    work = manage("jobs", "workoff")
    check(work.returncode == 0, "manage.py jobs workoff", work.stdout + work.stderr)
    print("  " + (work.stdout + work.stderr).strip().replace("\n", "\n  "))

    results = [backend.get_result(str(row.pk)) for row in rows]
    statuses = {(r.task.module_path, r.status) for r in results}
    check(
        all(r.status == "SUCCESSFUL" for r in results),
        f"all {len(results)} tasks are SUCCESSFUL, read back with get_result()",
        [(r.task.module_path, r.status, [e.traceback for e in r.errors]) for r in results],
    )
    if django.VERSION >= (6, 0):
        from django.tasks import task_backends

        again = [task_backends["default"].get_result(r.id) for r in results]
        check(
            [(r.id, r.status, r.worker_ids) for r in again]
            == [(r.id, r.status, r.worker_ids) for r in results],
            "Django's own django.tasks API reads the same results",
            statuses,
        )
    found = list(ArticlePage.objects.live().search(WORD))
    check(found == [article.specific], f"Wagtail's search finds the page by {WORD!r}", found)
    references = ReferenceIndex.get_references_for_object(article)
    check(
        references.filter(to_object_id=str(home.pk)).exists(),
        "Wagtail's reference index records the page's reference to its parent page",
        list(references.values("to_content_type", "to_object_id", "model_path")),
    )
    elapsed = time.monotonic() - started
    print(f"wagtail: {passed} passed, 0 failed in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
