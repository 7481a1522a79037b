# Adapted from Django 6.1.3, tests/tasks/test_immediate_backend.py. Copyright (c)
# Django Software Foundation and individual contributors. All rights reserved. BSD
# 3-Clause license: see LICENSE-DJANGO in this folder. Upstream tests the immediate
# backend, which runs a task inside enqueue(); here the same tests enqueue on
# django_jobs' backend, run the worker (`manage.py jobs workoff`, in this process, on
# committed rows) and refresh the result. One attempt per task, as the immediate
# backend makes (README.md lists each change).
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.test import TransactionTestCase, override_settings
from django.utils import timezone

from django_jobs.tasks import JobsBackend

from . import tasks as test_tasks
from .worker import (
    BACKEND,
    QUEUES,
    jobs_backend,
    jobs_settings,
    run_worker,
    run_worker_process,
)


# Adapted: django_jobs' backend (was the immediate backend, QUEUES []: any queue; ours
# takes those of JOBS["QUEUES"]); a TransactionTestCase (was SimpleTestCase), so that
# the worker, which has connections of its own, sees the rows.
@jobs_backend()
class ImmediateBackendTestCase(TransactionTestCase):
    available_apps = ["django_jobs"]

    def test_using_correct_backend(self):
        self.assertEqual(default_task_backend, task_backends["default"])
        self.assertIsInstance(task_backends["default"], JobsBackend)
        self.assertEqual(default_task_backend.alias, "default")
        self.assertEqual(default_task_backend.options, {})

    def test_enqueue_task(self):
        for task in [test_tasks.noop_task, test_tasks.noop_task_async]:
            with self.subTest(task):
                result = task.enqueue(1, two=3)
                # Adapted: run the worker, then refresh.
                self.assertEqual(result.status, TaskResultStatus.READY)
                run_worker()
                result.refresh()

                self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
                self.assertIs(result.is_finished, True)
                self.assertIsNotNone(result.started_at)
                self.assertIsNotNone(result.last_attempted_at)
                self.assertIsNotNone(result.finished_at)
                self.assertGreaterEqual(result.started_at, result.enqueued_at)
                self.assertGreaterEqual(result.finished_at, result.started_at)
                self.assertIsNone(result.return_value)
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [1])
                self.assertEqual(result.kwargs, {"two": 3})
                self.assertEqual(result.attempts, 1)
                # Added: the worker that ran the attempt is named.
                self.assertEqual(len(result.worker_ids), 1)
                self.assertTrue(result.worker_ids[0])

    async def test_enqueue_task_async(self):
        for task in [test_tasks.noop_task, test_tasks.noop_task_async]:
            with self.subTest(task):
                result = await task.aenqueue()
                # Adapted: run the worker, then refresh.
                await sync_to_async(run_worker)()
                await result.arefresh()

                self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
                self.assertIs(result.is_finished, True)
                self.assertIsNotNone(result.started_at)
                self.assertIsNotNone(result.last_attempted_at)
                self.assertIsNotNone(result.finished_at)
                self.assertGreaterEqual(result.started_at, result.enqueued_at)
                self.assertGreaterEqual(result.finished_at, result.started_at)
                self.assertIsNone(result.return_value)
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [])
                self.assertEqual(result.kwargs, {})
                self.assertEqual(result.attempts, 1)

    def test_catches_exception(self):
        test_data = [
            (
                test_tasks.failing_task_value_error,  # Task function.
                ValueError,  # Expected exception.
                "This Task failed due to ValueError",  # Expected message.
            ),
            (
                test_tasks.failing_task_system_exit,
                SystemExit,
                "This Task failed due to SystemExit",
            ),
        ]
        for task, exception, message in test_data:
            with (
                self.subTest(task),
                self.assertLogs("django.tasks", level="ERROR") as captured_logs,
            ):
                result = task.enqueue()
                run_worker()  # Adapted: run the worker, then refresh.
                result.refresh()

                self.assertEqual(len(captured_logs.output), 1)
                self.assertIn(message, captured_logs.output[0])

                self.assertEqual(result.status, TaskResultStatus.FAILED)
                with self.assertRaisesMessage(ValueError, "Task failed"):
                    result.return_value
                self.assertIs(result.is_finished, True)
                self.assertIsNotNone(result.started_at)
                self.assertIsNotNone(result.last_attempted_at)
                self.assertIsNotNone(result.finished_at)
                self.assertGreaterEqual(result.started_at, result.enqueued_at)
                self.assertGreaterEqual(result.finished_at, result.started_at)
                self.assertEqual(result.errors[0].exception_class, exception)
                traceback = result.errors[0].traceback
                self.assertIs(
                    traceback
                    and traceback.endswith(f"{exception.__name__}: {message}\n"),
                    True,
                    traceback,
                )
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [])
                self.assertEqual(result.kwargs, {})

    # Adapted: the immediate backend lets a task's KeyboardInterrupt out of enqueue();
    # a worker must not stop for one task (its stop signals do not raise
    # KeyboardInterrupt): the task is FAILED with it as its error, and the worker goes
    # on with the next task. Run by a worker process of its own, so that a worker that
    # did stop would not stop this test run.
    def test_throws_keyboard_interrupt(self):
        result = default_task_backend.enqueue(
            test_tasks.failing_task_keyboard_interrupt, [], {}
        )
        after = test_tasks.calculate_meaning_of_life.enqueue()

        worker = run_worker_process()

        self.assertEqual(worker.popen.returncode, 0, worker.output())
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertEqual(result.errors[0].exception_class, KeyboardInterrupt)
        self.assertIn(
            "KeyboardInterrupt: This Task failed due to KeyboardInterrupt",
            result.errors[0].traceback,
        )
        after.refresh()
        self.assertEqual(after.status, TaskResultStatus.SUCCESSFUL)

    def test_complex_exception(self):
        result = test_tasks.complex_exception.enqueue()
        with self.assertLogs("django.tasks", level="ERROR"):
            run_worker()  # Adapted: run the worker, then refresh.
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.FAILED)
        with self.assertRaisesMessage(ValueError, "Task failed"):
            result.return_value
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)
        self.assertGreaterEqual(result.started_at, result.enqueued_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)

        self.assertIsNone(result._return_value)
        self.assertEqual(result.errors[0].exception_class, ValueError)
        self.assertIn(
            'ValueError(ValueError("This task failed"))', result.errors[0].traceback
        )

        self.assertEqual(result.task, test_tasks.complex_exception)
        self.assertEqual(result.args, [])
        self.assertEqual(result.kwargs, {})

    def test_complex_return_value(self):
        result = test_tasks.complex_return_value.enqueue()
        with self.assertLogs("django.tasks", level="ERROR"):
            run_worker()  # Adapted: run the worker, then refresh.
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)
        self.assertGreaterEqual(result.started_at, result.enqueued_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)
        self.assertIsNone(result._return_value)
        # Adapted: ours is ResultNotSerializable, a TypeError that names the task and
        # the value's type (was TypeError itself).
        self.assertTrue(issubclass(result.errors[0].exception_class, TypeError))
        self.assertIn("Unsupported type", result.errors[0].traceback)

    def test_result(self):
        result = default_task_backend.enqueue(
            test_tasks.calculate_meaning_of_life, [], {}
        )
        run_worker()  # Adapted: run the worker, then refresh.
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 42)

    async def test_result_async(self):
        result = await default_task_backend.aenqueue(
            test_tasks.calculate_meaning_of_life, [], {}
        )
        await sync_to_async(run_worker)()  # Adapted: run the worker, then refresh.
        await result.arefresh()

        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 42)

    # Adapted, inverted: test_cannot_get_result. The immediate backend keeps no results;
    # ours reads them from the jobs table (an unknown id is TaskResultDoesNotExist).
    async def test_can_get_result(self):
        self.assertIs(default_task_backend.supports_get_result, True)
        with self.assertRaises(TaskResultDoesNotExist):
            await sync_to_async(default_task_backend.get_result)("123")
        with self.assertRaises(TaskResultDoesNotExist):
            await default_task_backend.aget_result(123)

    # Adapted, inverted: test_cannot_refresh_result (see test_can_get_result).
    async def test_can_refresh_result(self):
        result = await default_task_backend.aenqueue(
            test_tasks.calculate_meaning_of_life, (), {}
        )
        await sync_to_async(run_worker)()

        await result.arefresh()
        self.assertEqual(result.return_value, 42)
        await sync_to_async(result.refresh)()
        self.assertEqual(result.return_value, 42)

    # Adapted, inverted: test_cannot_pass_run_after. Ours defers: a task with run_after
    # in the future is valid and the worker leaves it until then.
    def test_can_pass_run_after(self):
        later = test_tasks.calculate_meaning_of_life.using(
            run_after=timezone.now() + timedelta(hours=1)
        )
        default_task_backend.validate_task(later)
        result = later.enqueue()
        run_worker()
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual(result.task.run_after, later.run_after)

    def test_enqueue_logs(self):
        with self.assertLogs("django.tasks", level="DEBUG") as captured_logs:
            result = test_tasks.noop_task.enqueue()
            run_worker()  # Adapted: run the worker.

        self.assertEqual(len(captured_logs.output), 3)

        self.assertIn("enqueued", captured_logs.output[0])
        self.assertIn(result.id, captured_logs.output[0])

        self.assertIn("state=RUNNING", captured_logs.output[1])
        self.assertIn(result.id, captured_logs.output[1])

        self.assertIn("state=SUCCESSFUL", captured_logs.output[2])
        self.assertIn(result.id, captured_logs.output[2])

    def test_failed_logs(self):
        with self.assertLogs("django.tasks", level="DEBUG") as captured_logs:
            result = test_tasks.failing_task_value_error.enqueue()
            run_worker()  # Adapted: run the worker.

        self.assertEqual(len(captured_logs.output), 3)
        self.assertIn("state=RUNNING", captured_logs.output[1])
        self.assertIn(result.id, captured_logs.output[1])

        self.assertIn("state=FAILED", captured_logs.output[2])
        self.assertIn(result.id, captured_logs.output[2])

    def test_successful_task_no_none_in_logs(self):
        with self.assertLogs("django.tasks", level="DEBUG") as captured_logs:
            result = test_tasks.noop_task.enqueue()
            run_worker()  # Adapted: run the worker, then refresh.
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

        for log_output in captured_logs.output:
            self.assertNotIn("None", log_output)

    def test_takes_context(self):
        result = test_tasks.get_task_id.enqueue()
        run_worker()  # Adapted: run the worker, then refresh.
        result.refresh()

        self.assertEqual(result.return_value, result.id)

    def test_context(self):
        result = test_tasks.test_context.enqueue(1)
        run_worker()  # Adapted: run the worker, then refresh.
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    def test_validate_on_enqueue(self):
        # Adapted: the queue is valid when the task is made (see the class comment).
        with override_settings(JOBS=jobs_settings(QUEUES=[*QUEUES, "unknown_queue"])):
            task_with_custom_queue_name = test_tasks.noop_task.using(
                queue_name="unknown_queue"
            )

        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": BACKEND,  # Adapted: was the immediate backend.
                    "QUEUES": ["queue-1"],
                }
            }
        ):
            with self.assertRaisesMessage(
                InvalidTask, "Queue 'unknown_queue' is not valid for backend"
            ):
                task_with_custom_queue_name.enqueue()

    async def test_validate_on_aenqueue(self):
        # Adapted: as in test_validate_on_enqueue.
        with override_settings(JOBS=jobs_settings(QUEUES=[*QUEUES, "unknown_queue"])):
            task_with_custom_queue_name = test_tasks.noop_task.using(
                queue_name="unknown_queue"
            )

        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": BACKEND,  # Adapted: was the immediate backend.
                    "QUEUES": ["queue-1"],
                }
            }
        ):
            with self.assertRaisesMessage(
                InvalidTask, "Queue 'unknown_queue' is not valid for backend"
            ):
                await task_with_custom_queue_name.aenqueue()


class ImmediateBackendTransactionTestCase(TransactionTestCase):
    available_apps = ["django_jobs"]  # Adapted: [] (ours stores rows of django_jobs).

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": BACKEND,  # Adapted: was the immediate backend.
            }
        },
        JOBS=jobs_settings(),
    )
    def test_doesnt_wait_until_transaction_commit_by_default(self):
        # Adapted: ours stores the task in the caller's transaction, where the worker
        # cannot see it yet; it runs once committed.
        with transaction.atomic():
            result = test_tasks.noop_task.enqueue()

            self.assertIsNotNone(result.enqueued_at)

            self.assertEqual(result.status, TaskResultStatus.READY)
            self.assertEqual(default_task_backend.get_result(result.id), result)

        run_worker()
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    # Added: a task enqueued in a transaction that rolls back leaves no row behind.
    @override_settings(TASKS={"default": {"BACKEND": BACKEND}}, JOBS=jobs_settings())
    def test_rolled_back_enqueue_leaves_nothing(self):
        with self.assertRaises(ZeroDivisionError), transaction.atomic():
            result = test_tasks.noop_task.enqueue()
            1 / 0
        with self.assertRaises(TaskResultDoesNotExist):
            default_task_backend.get_result(result.id)
