"""``manage.py demo``: place orders, run their pipelines in real worker processes, report.

Each order's pipeline (``shop.jobs``): charge the card, then reserve the stock and send the
receipt in parallel, then mark the order done (a batch callback). The demo starts
``manage.py jobs work`` as a subprocess, as you would in production, waits until every job
has ended, stops the workers and prints what happened, with timings.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from django_jobs.models import Batch, Job, RateGrant
from django_jobs.operations import clear_jobs
from django_jobs.rates import parse
from shop.jobs import GATEWAY_RATE, place_order
from shop.models import Order

#: The demo gives up (and fails) when jobs have not ended after this many seconds.
DEADLINE = 40.0
MANAGE = Path(__file__).resolve().parents[3] / "manage.py"

ORDERS = [
    ("ada@example.com", "MUG-01", Decimal("12.50"), "4242-4242-4242-4242"),
    ("grace@example.com", "TEE-M", Decimal("24.00"), "5555-5555-5555-4444"),
    # The gateway declines this card: the charge fails for good, nothing after it runs.
    ("linus@example.com", "CAP-02", Decimal("18.00"), "4000-0000-0000-0002"),
    ("ada@example.com", "CAP-02", Decimal("18.00"), "4242-4242-4242-4242"),
    ("margaret@example.com", "MUG-01", Decimal("12.50"), "4242-4242-4242-4242"),
]


class Command(BaseCommand):
    help = "Run the order-processing pipeline in real worker processes and report."

    def handle(self, *args, **options) -> None:
        clear_jobs()
        Order.objects.all().delete()

        began = time.time()
        self.stdout.write(f"Placing {len(ORDERS)} orders; each stores its pipeline with it")
        orders = [place_order(*order) for order in ORDERS]
        self.stdout.write(
            f"  {Job.objects.count()} jobs stored: {Job.objects.ready().count()} ready, "
            f"{Job.objects.waiting().count()} waiting for others\n"
        )

        with tempfile.TemporaryFile("w+") as log:
            self.stdout.write("Starting the workers: manage.py jobs work (a subprocess)")
            workers = subprocess.Popen(
                [sys.executable, str(MANAGE), "jobs", "work"],
                stdout=log, stderr=subprocess.STDOUT, cwd=MANAGE.parent,
            )  # fmt: skip
            try:
                self.wait_until_done(workers, log)
            finally:
                workers.send_signal(signal.SIGTERM)
                try:
                    workers.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    workers.kill()
                    workers.wait()
        took = time.time() - began
        first = Job.objects.exclude(started_at=None).order_by("started_at")[0].started_at
        self.stdout.write(
            f"  the first job started {first.timestamp() - began:.1f} s after the orders "
            f"(the workers' start-up); every job ended and the workers stopped after "
            f"{took:.1f} s\n"
        )
        self.stdout.write("Times below are seconds since the first job started.")
        self.report(orders, first.timestamp())

    def wait_until_done(self, workers: subprocess.Popen, log) -> None:
        deadline = time.monotonic() + DEADLINE
        unfinished = Job.objects.filter(failed_at__isnull=True, finished_at__isnull=True)
        while unfinished.exists():
            if workers.poll() is not None:
                log.seek(0)
                raise CommandError(f"the workers exited ({workers.returncode}):\n{log.read()}")
            if time.monotonic() > deadline:
                raise CommandError(f"jobs still unfinished after {DEADLINE:.0f} s")
            time.sleep(0.1)

    def report(self, orders: list[Order], began: float) -> None:
        retried = failed = never_run = done = 0
        for order in orders:
            order.refresh_from_db()
            batch = Batch.objects.get(description=f"order #{order.pk}")
            jobs = [
                *Job.objects.filter(name__endswith=".charge_card", args=[order.pk]),
                *Job.objects.filter(pk__in=batch.member_ids()).order_by("id"),
                *Job.objects.filter(pk=batch.on_success_id),
            ]
            state = "done" if order.done_at else "not done"
            self.stdout.write(f"Order #{order.pk} {order.email} {order.sku}: {state}")
            for job in jobs:
                self.stdout.write("  " + _line(job, began))
                retried += job.status == "succeeded" and job.attempts > 1
                failed += job.status == "failed"
                never_run += job.last_error.startswith("Never run")
            done += bool(order.done_at)
        self.stdout.write(_charges_line(began))
        reservations = _overlap_line(began)
        self.stdout.write(reservations)
        if "OVERLAP" in reservations:
            raise CommandError("two reservations of one customer ran at once")
        self.stdout.write(
            f"\n{done} of {len(orders)} orders done; {retried} job(s) retried then succeeded; "
            f"{failed} failed for good; {never_run} never run because of it "
            f"(receipts are written to {settings.EMAIL_FILE_PATH})"
        )
        self.stdout.write(
            "Browse the jobs, their flow and the batches in the admin: manage.py "
            "createsuperuser, manage.py runserver, then http://127.0.0.1:8000/admin/django_jobs/"
        )
        if (done, failed, never_run) != (len(orders) - 1, 1, 3) or not retried:
            raise CommandError(
                "the demo expected one failed charge with its three dependants never run, "
                "a retried job, and every other order done"
            )


def _line(job: Job, began: float) -> str:
    name = job.name.rsplit(".", 1)[-1]
    head = f"#{job.pk:<3} {name:<14}"
    if job.started_at and job.finished_at:
        start = job.started_at.timestamp() - began
        end = job.finished_at.timestamp() - began
        tries = f", attempt {job.attempts}" if job.attempts > 1 else ""
        return f"{head} ran {start:5.2f} s -> {end:5.2f} s{tries}"
    if job.status == "failed":
        return f"{head} failed for good: {job.error_summary}"
    if job.status == "cancelled":
        return f"{head} {job.last_error.splitlines()[0]}"
    return f"{head} {job.status}"


def _charges_line(began: float) -> str:
    """When the charges were let through by their rate limit, and that it held."""
    rate = parse(GATEWAY_RATE)
    grants = sorted(
        at.timestamp() - began
        for at in RateGrant.objects.filter(key__endswith=".charge_card").values_list(
            "at", flat=True
        )
    )
    # Any rate.count + 1 consecutive starts span more than the period.
    held = all(b - a > rate.period for a, b in zip(grants, grants[rate.count :], strict=False))
    if not held:
        raise CommandError(f"more than {GATEWAY_RATE} charges started within a second")
    text = ", ".join(f"{t:.2f}" for t in grants)
    return (
        f"\nCharges let through by the gateway's rate limit {GATEWAY_RATE} (retries "
        f"included), s: {text}\n  never more than {rate.count} in any {rate.period:g} s window"
    )


def _overlap_line(began: float) -> str:
    """Whether one customer's reservations ever ran at once (their limit is 1)."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for job in Job.objects.filter(name__endswith=".reserve_stock").exclude(finished_at=None):
        span = (job.started_at.timestamp() - began, job.finished_at.timestamp() - began)
        runs.setdefault(job.args[1], []).append(span)
    lines = ["\nReservations per customer (concurrency limit 1 per customer):"]
    for customer, spans in sorted(runs.items()):
        spans.sort()
        overlap = any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))
        text = ", ".join(f"{s:.2f}-{e:.2f} s" for s, e in spans)
        lines.append(f"  {customer}: {text}" + (" OVERLAP" if overlap else ""))
    return "\n".join(lines)
