# Adapted from Django 6.1.3, tests/tasks/test_custom_backend.py. Copyright (c) Django
# Software Foundation and individual contributors. All rights reserved. BSD 3-Clause
# license: see LICENSE-DJANGO in this folder. CustomBackendTestCase is upstream's, as
# is: Django's backend machinery, on which django_jobs' backend is built, with the tasks
# of this suite (made with our task_class). CustomTaskTestCase is adapted from
# upstream's CustomTask (fields foo and bar) to django_jobs' task_class, JobsTask
# (max_attempts and timeout); README.md lists each change.
import logging
from unittest import mock

from django.tasks import default_task_backend, task, task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask
from django.test import SimpleTestCase, override_settings

from django_jobs.tasks import JobsTask

from . import tasks as test_tasks
from .worker import BACKEND, jobs_settings


class CustomBackend(BaseTaskBackend):
    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.prefix = self.options.get("prefix", "")

    def enqueue(self, *args, **kwargs):
        logger = logging.getLogger(__name__)
        logger.info(f"{self.prefix}Task enqueued.")


class CustomBackendNoEnqueue(BaseTaskBackend):
    pass


# Dropped: CustomTask and CustomTaskBackend (see CustomTaskTestCase below).


@override_settings(
    TASKS={
        "default": {
            "BACKEND": f"{CustomBackend.__module__}.{CustomBackend.__qualname__}",
            "OPTIONS": {"prefix": "PREFIX: "},
        },
        "no_enqueue": {
            "BACKEND": f"{CustomBackendNoEnqueue.__module__}."
            f"{CustomBackendNoEnqueue.__qualname__}",
        },
    }
)
class CustomBackendTestCase(SimpleTestCase):
    def test_using_correct_backend(self):
        self.assertEqual(default_task_backend, task_backends["default"])
        self.assertIsInstance(task_backends["default"], CustomBackend)
        self.assertEqual(default_task_backend.alias, "default")
        self.assertEqual(default_task_backend.options, {"prefix": "PREFIX: "})

    @mock.patch.multiple(CustomBackend, supports_async_task=False)
    def test_enqueue_async_task_on_non_async_backend(self):
        with self.assertRaisesMessage(
            InvalidTask, "Backend does not support async Tasks."
        ):
            default_task_backend.validate_task(test_tasks.noop_task_async)

    def test_backend_does_not_support_priority(self):
        with self.assertRaisesMessage(
            InvalidTask, "Backend does not support setting priority of tasks."
        ):
            test_tasks.noop_task.using(priority=10)

    def test_options(self):
        with self.assertLogs(__name__, level="INFO") as captured_logs:
            test_tasks.noop_task.enqueue()
        self.assertEqual(len(captured_logs.output), 1)
        self.assertIn("PREFIX: Task enqueued", captured_logs.output[0])

    def test_no_enqueue(self):
        with self.assertRaisesMessage(
            TypeError,
            "Can't instantiate abstract class CustomBackendNoEnqueue "
            "without an implementation for abstract method 'enqueue'",
        ):
            test_tasks.noop_task.using(backend="no_enqueue")


# Adapted: django_jobs' backend, whose task_class is JobsTask (was CustomTaskBackend and
# its CustomTask with fields foo=3 and bar=300).
@override_settings(
    TASKS={
        "default": {
            "BACKEND": BACKEND,
            "QUEUES": ["default", "high"],
        },
    },
    JOBS=jobs_settings(),
)
class CustomTaskTestCase(SimpleTestCase):
    def test_custom_task_default_values(self):
        my_task = task()(test_tasks.noop_task.func)

        self.assertIsInstance(my_task, JobsTask)
        self.assertIsNone(my_task.max_attempts)
        self.assertIsNone(my_task.timeout)

    def test_custom_task_with_custom_values(self):
        my_task = task(max_attempts=5, timeout=600)(test_tasks.noop_task.func)

        self.assertIsInstance(my_task, JobsTask)
        self.assertEqual(my_task.max_attempts, 5)
        self.assertEqual(my_task.timeout, 600)

    def test_custom_task_with_standard_and_custom_values(self):
        my_task = task(priority=10, queue_name="high", max_attempts=10, timeout=1000)(
            test_tasks.noop_task.func
        )

        self.assertIsInstance(my_task, JobsTask)
        self.assertEqual(my_task.priority, 10)
        self.assertEqual(my_task.queue_name, "high")
        self.assertEqual(my_task.max_attempts, 10)
        self.assertEqual(my_task.timeout, 1000)
        self.assertFalse(my_task.takes_context)
        self.assertIsNone(my_task.run_after)

    def test_custom_task_invalid_kwarg(self):
        with self.assertRaises(TypeError):
            task(unknown_param=123)(test_tasks.noop_task.func)

    # Added: our fields are checked as Django checks its own.
    def test_custom_task_invalid_values(self):
        for options in ({"max_attempts": 0}, {"timeout": -1}, {"max_attempts": "3"}):
            with self.subTest(options), self.assertRaises(InvalidTask):
                task(**options)(test_tasks.noop_task.func)
