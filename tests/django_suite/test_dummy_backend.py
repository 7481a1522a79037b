# Adapted from Django 6.1.3, tests/tasks/test_dummy_backend.py. Copyright (c) Django
# Software Foundation and individual contributors. All rights reserved. BSD 3-Clause
# license: see LICENSE-DJANGO in this folder. Upstream tests the dummy backend, which
# stores results and never runs them; here the same tests check django_jobs' backend
# between enqueue and the worker: results are rows of the jobs table, and where upstream
# edits a stored result by hand, a worker runs the task (README.md lists each change).
from typing import cast

from asgiref.sync import sync_to_async
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.base import Task
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.test import TestCase, TransactionTestCase, override_settings

from django_jobs.models import Job
from django_jobs.tasks import JobsBackend
from django_jobs.testing import run_jobs

from . import tasks as test_tasks
from .worker import BACKEND, QUEUES, jobs_backend, jobs_settings


# Adapted: django_jobs' backend (was the dummy backend) without "QUEUES": ours then
# takes JOBS["QUEUES"] (the dummy's [] accepts any queue; ours must know the queue).
@jobs_backend()
class DummyBackendTestCase(TestCase):  # Adapted: TestCase (was SimpleTestCase).
    # Dropped: setUp's default_task_backend.clear(): each test's transaction is
    # rolled back.

    def test_using_correct_backend(self):
        self.assertEqual(default_task_backend, task_backends["default"])
        self.assertIsInstance(task_backends["default"], JobsBackend)
        self.assertEqual(default_task_backend.alias, "default")
        self.assertEqual(default_task_backend.options, {})

    def test_enqueue_task(self):
        for task in [test_tasks.noop_task, test_tasks.noop_task_async]:
            with self.subTest(task):
                result = cast(Task, task).enqueue(1, two=3)

                self.assertEqual(result.status, TaskResultStatus.READY)
                self.assertIs(result.is_finished, False)
                self.assertIsNone(result.started_at)
                self.assertIsNone(result.last_attempted_at)
                self.assertIsNone(result.finished_at)
                with self.assertRaisesMessage(ValueError, "Task has not finished yet"):
                    result.return_value
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [1])
                self.assertEqual(result.kwargs, {"two": 3})
                self.assertEqual(result.attempts, 0)

                # Adapted: read back from its row (was: in the dummy's results list).
                self.assertEqual(default_task_backend.get_result(result.id), result)

    async def test_enqueue_task_async(self):
        for task in [test_tasks.noop_task, test_tasks.noop_task_async]:
            with self.subTest(task):
                result = await cast(Task, task).aenqueue()

                self.assertEqual(result.status, TaskResultStatus.READY)
                self.assertIs(result.is_finished, False)
                self.assertIsNone(result.started_at)
                self.assertIsNone(result.last_attempted_at)
                self.assertIsNone(result.finished_at)
                with self.assertRaisesMessage(ValueError, "Task has not finished yet"):
                    result.return_value
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [])
                self.assertEqual(result.kwargs, {})
                self.assertEqual(result.attempts, 0)

                # Adapted: as in test_enqueue_task.
                stored = await default_task_backend.aget_result(result.id)
                self.assertEqual(stored, result)

    def test_get_result(self):
        result = default_task_backend.enqueue(test_tasks.noop_task, (), {})

        new_result = default_task_backend.get_result(result.id)

        self.assertEqual(result, new_result)

    async def test_get_result_async(self):
        result = await default_task_backend.aenqueue(test_tasks.noop_task, (), {})

        new_result = await default_task_backend.aget_result(result.id)

        self.assertEqual(result, new_result)

    def test_refresh_result(self):
        result = default_task_backend.enqueue(
            test_tasks.calculate_meaning_of_life, (), {}
        )

        # Adapted: a worker runs the task (was: the stored result's status set by hand).
        run_jobs()

        self.assertEqual(result.status, TaskResultStatus.READY)
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 42)  # Added.

    async def test_refresh_result_async(self):
        result = await default_task_backend.aenqueue(
            test_tasks.calculate_meaning_of_life, (), {}
        )

        # Adapted: as in test_refresh_result.
        await sync_to_async(run_jobs)()

        self.assertEqual(result.status, TaskResultStatus.READY)
        await result.arefresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 42)  # Added.

    async def test_get_missing_result(self):
        # Adapted: get_result() reads the database: called through sync_to_async.
        with self.assertRaises(TaskResultDoesNotExist):
            await sync_to_async(default_task_backend.get_result)("123")

        with self.assertRaises(TaskResultDoesNotExist):
            await default_task_backend.aget_result("123")

    def test_enqueue_logs(self):
        with self.assertLogs("django.tasks", level="DEBUG") as captured_logs:
            result = test_tasks.noop_task.enqueue()

        self.assertEqual(len(captured_logs.output), 1)
        self.assertIn("enqueued", captured_logs.output[0])
        self.assertIn(result.id, captured_logs.output[0])

    def test_errors(self):
        result = test_tasks.noop_task.enqueue()
        self.assertEqual(result.errors, [])

    # Dropped: test_validate_disallowed_async_task: it patches supports_async_task=False
    # on the backend to reach BaseTaskBackend's check; django_jobs' backend runs async
    # tasks (test_immediate_backend runs them) and has its own validate_task.

    def test_check(self):
        errors = list(default_task_backend.check())
        self.assertEqual(len(errors), 0, errors)

    def test_takes_context(self):
        result = test_tasks.get_task_id.enqueue()
        self.assertEqual(result.status, TaskResultStatus.READY)

    def test_clear(self):
        result = test_tasks.noop_task.enqueue()

        default_task_backend.get_result(result.id)

        # Adapted: the row is deleted (the dummy backend's clear() empties its list).
        Job.objects.filter(pk=result.id).delete()

        with self.assertRaisesMessage(TaskResultDoesNotExist, result.id):
            default_task_backend.get_result(result.id)

    def test_validate_on_enqueue(self):
        # Adapted: the queue is valid when the task is made (the dummy's QUEUES [] took
        # any queue; ours takes those of JOBS["QUEUES"]).
        with override_settings(JOBS=jobs_settings(QUEUES=[*QUEUES, "unknown_queue"])):
            task_with_custom_queue_name = test_tasks.noop_task.using(
                queue_name="unknown_queue"
            )

        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": BACKEND,  # Adapted: was the dummy backend.
                    "QUEUES": ["queue-1"],
                }
            }
        ):
            with self.assertRaisesMessage(
                InvalidTask, "Queue 'unknown_queue' is not valid for backend"
            ):
                task_with_custom_queue_name.enqueue()
        self.assertFalse(Job.objects.exists())  # Added: nothing stored.

    async def test_validate_on_aenqueue(self):
        # Adapted: the queue is valid when the task is made (the dummy's QUEUES [] took
        # any queue; ours takes those of JOBS["QUEUES"]).
        with override_settings(JOBS=jobs_settings(QUEUES=[*QUEUES, "unknown_queue"])):
            task_with_custom_queue_name = test_tasks.noop_task.using(
                queue_name="unknown_queue"
            )

        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": BACKEND,  # Adapted: was the dummy backend.
                    "QUEUES": ["queue-1"],
                }
            }
        ):
            with self.assertRaisesMessage(
                InvalidTask, "Queue 'unknown_queue' is not valid for backend"
            ):
                await task_with_custom_queue_name.aenqueue()


class DummyBackendTransactionTestCase(TransactionTestCase):
    available_apps = ["django_jobs"]  # Adapted: [] (ours stores rows of django_jobs).

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": BACKEND,  # Adapted: was the dummy backend.
            }
        },
        JOBS=jobs_settings(),
    )
    def test_doesnt_wait_until_transaction_commit_by_default(self):
        with transaction.atomic():
            result = test_tasks.noop_task.enqueue()

            self.assertIsNotNone(result.enqueued_at)

            # Adapted: the row is in the jobs table (was: the dummy's results list).
            self.assertEqual(Job.objects.count(), 1)

        self.assertEqual(Job.objects.count(), 1)
