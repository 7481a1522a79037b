"""``manage.py jobs new [app] <Name | category:action>``: write a job function and its test
into an app (with a typed parameter as an example when pydantic is installed).

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

from . import names, registry
from .conf import jobs_settings
from .exceptions import UnknownQueue
from .extras import installed

JOB_TEMPLATE = '''
@job({options})
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

#: With pydantic installed (the ``[pydantic]`` extra), a typed parameter too.
TYPED_JOB_TEMPLATE = '''
@job({options})
def {func}(object_id: int, requested_at: datetime) -> None:
    """{summary}.

    Runs in a worker once enqueued::

        {func}.enqueue(object_id, timezone.now())

    ``{func}.perform(object_id, timezone.now())`` runs it here and now instead.
    Arguments are stored as JSON: pass ids and plain values rather than model instances.
    An annotated parameter comes back as its type: ``requested_at`` is a ``datetime``
    again (``date``, ``Decimal``, ``UUID``, enums and dataclasses work too). Make the work
    safe to repeat: after an error or a crash the job runs again.
    """
    waited = (timezone.now() - requested_at).total_seconds()
    logger = logging.getLogger(__name__)
    logger.info("{func}(%r) ran %.1f s after it was asked for", object_id, waited)
'''

MODULE_HEADER = '''"""Background jobs of the {label} app: the @job functions that workers run."""

{imports}
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

TYPED_TEST_TEMPLATE = '''"""Tests of the {func} job."""

from django.test import TestCase
from django.utils import timezone

from django_jobs.testing import assert_enqueued, run_jobs
from {module} import {func}


class {cls}JobTests(TestCase):
    def test_perform_runs_the_job_here(self):
        with self.assertLogs("{module}", "INFO") as logs:
            {func}.perform(1, timezone.now())
        self.assertIn("{func}(1) ran", logs.output[0])

    def test_enqueued_job_runs(self):
        requested_at = timezone.now()
        {func}.enqueue(1, requested_at)
        assert_enqueued({func}, [1, requested_at], count=1)
        result = run_jobs()
        self.assertEqual(result.succeeded, 1, result)
'''

#: What a generated job needs imported: (module, name) for ``from module import name``,
#: (module, None) for ``import module``.
IMPORTS = [("logging", None), ("django_jobs", "job")]
TYPED_IMPORTS = [("datetime", "datetime"), ("django.utils", "timezone"), *IMPORTS]

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


def new_job(app_label: str | None, name: str, queue: str | None = None) -> list[str]:
    """Add job ``name`` to the app's ``jobs.py`` and write its test; the paths written.

    ``name`` is a function name (``SendWelcomeEmail``) or a stable job name in the form
    ``category:action`` (``emails:welcome``: the function is ``welcome``, declared with
    ``name="emails:welcome"``); without ``app_label`` the category names the app.
    """
    job_name, func, app_label = _names(app_label, name)
    app = _app(app_label)
    queue = _queue(queue)
    app_dir = Path(app.path)
    jobs_path = app_dir / "jobs.py"
    if (app_dir / "jobs").is_dir():
        raise ValueError(f"{app_dir / 'jobs'} is a package: add the job to it by hand")
    source = jobs_path.read_text(encoding="utf-8") if jobs_path.exists() else None
    tree = _parse(jobs_path, source)
    if func in _top_level_names(tree) or f"{app.name}.jobs.{func}" in registry.all_jobs():
        raise ValueError(f"{jobs_path} already defines {func}: choose another name")
    if job_name is not None and registry.find(job_name) is not None:
        raise ValueError(f"a job named {job_name!r} is already registered: choose another name")
    test_path = _test_path(app_dir, func)
    if test_path.exists():
        raise ValueError(f"{test_path} already exists: remove it or choose another name")

    typed = installed("pydantic")
    summary = func.replace("_", " ").strip().capitalize()
    options = f"queue={json.dumps(queue)}"
    if job_name is not None:
        options = f"name={json.dumps(job_name)}, {options}"
    template = TYPED_JOB_TEMPLATE if typed else JOB_TEMPLATE
    function = template.format(options=options, func=func, summary=summary)
    imports = TYPED_IMPORTS if typed else IMPORTS
    if source is None:
        text = (
            MODULE_HEADER.format(label=app.label, imports=_import_block(imports)) + "\n" + function
        )
    else:
        text = _with_imports(source, tree, imports).rstrip() + "\n\n" + function
    cls = "".join(part.capitalize() for part in func.split("_"))
    test = (TYPED_TEST_TEMPLATE if typed else TEST_TEMPLATE).format(
        module=f"{app.name}.jobs", func=func, cls=cls
    )
    jobs_path.write_text(text, encoding="utf-8")
    test_path.write_text(test, encoding="utf-8")
    return [str(jobs_path), str(test_path)]


def _names(app_label: str | None, name: str) -> tuple[str | None, str, str]:
    """(the job's stable name or None, the function's name, the app's label)."""
    if ":" not in name:
        if app_label is None:
            raise ValueError(
                f"name the app: jobs new APP {name}, or give a category:action name "
                "whose category is an app label (jobs new emails:welcome)"
            )
        return None, function_name(name), app_label
    job_name = names.checked(name)
    category, action = job_name.split(":")[0], job_name.split(":")[-1]
    func = function_name(re.sub(r"[^0-9A-Za-z_]", "_", action))
    if app_label is None:
        if category not in {app.label for app in apps.get_app_configs()}:
            raise ValueError(
                f"no installed app has the label {category!r} (the category of "
                f"{job_name!r}): name the app, jobs new APP {job_name}"
            )
        app_label = category
    return job_name, func, app_label


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


def _import_block(imports: list[tuple[str, str | None]]) -> str:
    plain = [f"import {module}" for module, name in imports if name is None]
    froms = [f"from {module} import {name}" for module, name in imports if name is not None]
    stdlib = [line for line in plain + froms if not line.startswith("from django")]
    django = [line for line in froms if line.startswith("from django")]
    return "\n\n".join("\n".join(group) for group in (stdlib, django) if group) + "\n"


def _with_imports(source: str, tree: ast.Module, imports: list[tuple[str, str | None]]) -> str:
    """``source`` with the ``imports`` it lacks, after its leading docstring and imports."""
    missing = []
    for module, name in imports:
        if name is None:
            present = _imports(tree, lambda n: isinstance(n, ast.Import), module)
        else:
            present = _imports(
                tree, lambda n, m=module: isinstance(n, ast.ImportFrom) and n.module == m, name
            )
        if not present:
            missing.append(f"import {module}" if name is None else f"from {module} import {name}")
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
