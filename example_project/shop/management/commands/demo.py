"""``manage.py demo``: place a few orders, run their jobs with django_jobs, show the outcome."""

from __future__ import annotations

import io
import logging
import time
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from django_jobs import later_many
from django_jobs.models import Job
from django_jobs.operations import clear_jobs
from django_jobs.runtime.workoff import workoff
from shop.jobs import charge_card, reserve_stock, send_newsletter, send_receipt
from shop.models import Order

#: The demo gives up (and fails) when jobs are still scheduled after this many seconds.
DEADLINE = 25.0

ORDERS = [
    ("ada@example.com", "MUG-01", Decimal("12.50")),
    ("grace@example.com", "TEE-M", Decimal("24.00")),
    # Not a SKU the warehouse stocks: reserving it fails on every attempt.
    ("linus@example.com", "HOVERBOARD", Decimal("499.00")),
]
SUBSCRIBERS = [f"reader{n}@example.com" for n in range(1, 21)]


class Command(BaseCommand):
    help = "Enqueue the shop's example jobs, run them with django_jobs' workoff, summarise."

    def handle(self, *args, **options) -> None:
        clear_jobs()
        Order.objects.all().delete()

        self.stdout.write("Placing orders and enqueueing their jobs")
        for email, sku, total in ORDERS:
            # The order and its jobs are stored together or not at all: the jobs table is
            # in this database, so the enqueued rows are part of the transaction.
            with transaction.atomic():
                order = Order.objects.create(email=email, sku=sku, total=total)
                charge_card.enqueue(order.id)
                reserve_stock.enqueue(order.id)
                send_receipt.enqueue(order.id)
        later_many(send_newsletter, [[email, 7] for email in SUBSCRIBERS])
        self.stdout.write(f"  {Job.objects.scheduled().count()} jobs scheduled\n")

        self.stdout.write("Running them with django_jobs.runtime.workoff.workoff()")
        # Each failure is logged as a warning; the summary below reports them once, in order.
        logging.getLogger("django_jobs").setLevel(logging.CRITICAL)
        self.run_until_done()

        self.summarise()
        orders = Order.objects.all()
        self.stdout.write(
            f"\nOrders: {orders.count()} placed, {orders.exclude(paid_at=None).count()} paid, "
            f"{orders.exclude(receipt_sent_at=None).count()} receipts sent "
            f"(emails are written to {settings.EMAIL_FILE_PATH})"
        )
        self.stdout.write(
            "Browse the jobs in the admin: manage.py createsuperuser, manage.py runserver, "
            "then http://127.0.0.1:8000/admin/django_jobs/job/"
        )

    def run_until_done(self) -> None:
        """Work off what is ready; when only retries remain, wait for the earliest one."""
        deadline = time.monotonic() + DEADLINE
        rounds = 0
        while Job.objects.scheduled().exists():
            if time.monotonic() > deadline:
                raise CommandError(f"jobs still scheduled after {DEADLINE:.0f} s")
            first_due = Job.objects.scheduled().order_by("run_at").values_list("run_at")[0][0]
            wait = (first_due - timezone.now()).total_seconds()
            if wait > 0:
                self.stdout.write(f"  waiting {wait:.1f} s for the retry back-off")
                time.sleep(min(wait, max(deadline - time.monotonic(), 0)) + 0.01)
                continue
            rounds += 1
            progress = workoff(stream=io.StringIO())
            self.stdout.write(
                f"  round {rounds}: {progress.done} jobs run, "
                f"{progress.retried} to retry later, {progress.failed} failed"
            )

    def summarise(self) -> None:
        jobs = Job.objects.order_by("id")
        first_try = [j for j in jobs.succeeded() if j.attempts == 1]
        retried = [j for j in jobs.succeeded() if j.attempts > 1]
        failed = list(jobs.failed())

        self.stdout.write(f"\nSucceeded on the first attempt: {len(first_try)}")
        counts: dict[str, int] = {}
        for j in first_try:
            counts[j.name] = counts.get(j.name, 0) + 1
        for name, count in counts.items():
            self.stdout.write(f"  {count:>3} x {name}")

        self.stdout.write(f"\nRetried, then succeeded: {len(retried)}")
        for j in retried:
            self.stdout.write(
                f"  #{j.pk} {j.name}{_call(j)}: {j.attempts} attempts, "
                f"earlier error: {j.error_summary}"
            )

        self.stdout.write(f"\nFailed for good: {len(failed)}")
        for j in failed:
            self.stdout.write(
                f"  #{j.pk} {j.name}{_call(j)}: {j.attempts} attempts, "
                f"last error: {j.error_summary}"
            )
        if len(failed) != 1 or not retried:
            raise CommandError("the demo expected retried jobs and exactly one failed job")


def _call(j: Job) -> str:
    args = [repr(a) for a in j.args] + [f"{k}={v!r}" for k, v in j.kwargs.items()]
    return f"({', '.join(args)})"
