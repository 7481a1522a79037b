"""``manage.py jobs new <app> <Name>``: write a job function and its test into an app.

Everything is checked before anything is written, so a refusal leaves the app as it was.
An existing ``jobs.py`` is appended to, never rewritten: only the two imports the new
function needs are inserted, after the module's leading imports.
"""

from __future__ import annotations

import ast
import difflib
import json
import keyword
import re
from pathlib import Path

from django.apps import AppConfig, apps

from . import registry
from .conf import jobs_settings
from .exceptions import UnknownQueue

JOB_TEMPLATE = '''
@job(queue={queue})
def {func}(object_id: int) -> None:
    """{summary}.

    Runs in a worker once enqueued::

        {func}.enqueue(object_id)

    ``{func}.perform(object_id)`` runs it here and now instead. Arguments are stored
    as JSON: pass ids and plain values rather than model instances. Make the work safe to
    repeat: after an error or a crash the job runs again.
    """
    logging.getLogger(__name__).info("{func}(%r) ran", object_id)
'''

MODULE_HEADER = '''"""Background jobs of the {label} app: the @job functions that workers run."""

import logging

from django_jobs import job
'''

TEST_TEMPLATE = '''"""Tests of the {func} job."""

from django.test import TestCase

from django_jobs.testing import assert_enqueued, run_jobs
from {module} import {func}


class {cls}JobTests(TestCase):
    def test_perform_runs_the_job_here(self):
        with self.assertLogs("{module}", "INFO") as logs:
            {func}.perform(1)
        self.assertIn("{func}(1) ran", logs.output[0])

    def test_enqueued_job_runs(self):
        {func}.enqueue(1)
        assert_enqueued({func}, [1], count=1)
        result = run_jobs()
        self.assertEqual(result.succeeded, 1, result)
'''

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def function_name(name: str) -> str:
    """The function name for a job name: ``SendWelcomeEmail`` → ``send_welcome_email``."""
    if not name.isidentifier():
        raise ValueError(
            f"{name!r} is not a valid Python name: use letters, digits and underscores, "
            "e.g. SendWelcomeEmail or send_welcome_email"
        )
    func = _WORD_BOUNDARY.sub("_", name).lower()
    if keyword.iskeyword(func):
        raise ValueError(f"{func!r} is a Python keyword and cannot name a function")
    return func


def new_job(app_label: str, name: str, queue: str | None = None) -> list[str]:
    """Add job ``name`` to the app's ``jobs.py`` and write its test; the paths written."""
    app = _app(app_label)
    func = function_name(name)
    queue = _queue(queue)
    app_dir = Path(app.path)
    jobs_path = app_dir / "jobs.py"
    if (app_dir / "jobs").is_dir():
        raise ValueError(f"{app_dir / 'jobs'} is a package: add the job to it by hand")
    source = jobs_path.read_text(encoding="utf-8") if jobs_path.exists() else None
    tree = _parse(jobs_path, source)
    if func in _top_level_names(tree) or f"{app.name}.jobs.{func}" in registry.all_jobs():
        raise ValueError(f"{jobs_path} already defines {func}: choose another name")
    test_path = _test_path(app_dir, func)
    if test_path.exists():
        raise ValueError(f"{test_path} already exists: remove it or choose another name")

    summary = func.replace("_", " ").strip().capitalize()
    function = JOB_TEMPLATE.format(queue=json.dumps(queue), func=func, summary=summary)
    if source is None:
        text = MODULE_HEADER.format(label=app.label) + "\n" + function
    else:
        text = _with_imports(source, tree).rstrip() + "\n\n" + function
    cls = "".join(part.capitalize() for part in func.split("_"))
    test = TEST_TEMPLATE.format(module=f"{app.name}.jobs", func=func, cls=cls)
    jobs_path.write_text(text, encoding="utf-8")
    test_path.write_text(test, encoding="utf-8")
    return [str(jobs_path), str(test_path)]


def _app(label: str) -> AppConfig:
    try:
        return apps.get_app_config(label)
    except LookupError:
        labels = sorted(app.label for app in apps.get_app_configs())
        match = difflib.get_close_matches(label, labels, n=1)
        suggestion = f" Did you mean {match[0]!r}?" if match else ""
        raise ValueError(
            f"No installed app has the label {label!r}.{suggestion} Installed: {', '.join(labels)}"
        ) from None


def _queue(queue: str | None) -> str:
    known = jobs_settings().queues
    if queue is None:
        return registry.DEFAULT_QUEUE if registry.DEFAULT_QUEUE in known else known[0]
    if queue not in known:
        raise UnknownQueue(queue, known)
    return queue


def _parse(path: Path, source: str | None) -> ast.Module:
    try:
        return ast.parse(source or "", filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"{path} does not parse ({exc}): fix it first") from None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _with_imports(source: str, tree: ast.Module) -> str:
    """``source`` with ``import logging`` and ``from django_jobs import job`` if missing."""
    missing = []
    if not _imports(tree, lambda n: isinstance(n, ast.Import), "logging"):
        missing.append("import logging")
    if not _imports(
        tree, lambda n: isinstance(n, ast.ImportFrom) and n.module == "django_jobs", "job"
    ):
        missing.append("from django_jobs import job")
    if not missing:
        return source
    # After the docstring and the imports the module starts with, where imports belong.
    line, after_docstring = 0, False
    for index, node in enumerate(tree.body):
        docstring = index == 0 and isinstance(node, ast.Expr)
        if not (docstring or isinstance(node, ast.Import | ast.ImportFrom)):
            break
        line, after_docstring = node.end_lineno or line, docstring
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    block = "\n" * after_docstring + "".join(f"{statement}\n" for statement in missing)
    if line == 0:
        return block + "\n" + "".join(lines)
    return "".join(lines[:line]) + block + "".join(lines[line:])


def _imports(tree: ast.Module, kind, name: str) -> bool:
    return any(
        kind(node) and any(a.name == name and a.asname is None for a in node.names)
        for node in tree.body
    )


def _test_path(app_dir: Path, func: str) -> Path:
    tests = app_dir / "tests"
    if (tests / "__init__.py").exists():
        return tests / f"test_{func}_job.py"
    return app_dir / f"test_jobs_{func}.py"
