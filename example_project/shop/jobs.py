"""The shop's order-processing pipeline. The demo (``manage.py demo``) enqueues it; workers
(``manage.py jobs work``) run it.

For each order, stored in one transaction with the order (see ``place_order``)::

    charge_card ──┬──> reserve_stock ──┐
                  └──> send_receipt  ──┴──> mark_done (the batch's on_success callback)

``reserve_stock`` and ``send_receipt`` wait for the charge (``after=``) and run in
parallel; they are the members of a batch whose callback marks the order done once both
succeeded. A charge that fails for good records its dependants as never run. The payment
gateway accepts two charges a second: ``charge_card`` has a rate limit of ``2/s``, and
charges beyond it wait their turn. The warehouse takes one reservation per customer at a
time: ``reserve_stock`` has a concurrency limit of 1 per customer, across every worker.

Jobs take ids and plain values, never model instances: the arguments are stored as JSON
and the job reads the current row when it runs.
"""

from __future__ import annotations

import time

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from django_jobs import Discard, job, open_batch
from django_jobs.context import JobContext

from .models import Order

#: What the (pretend) warehouse stocks.
WAREHOUSE_SKUS = frozenset({"MUG-01", "TEE-M", "CAP-02"})
#: Test cards of the (pretend) payment gateway, as real gateways have them: one is
#: declined, one makes the gateway time out on the first try.
DECLINED_CARDS = frozenset({"4000-0000-0000-0002"})
TIMEOUT_ONCE_CARDS = frozenset({"5555-5555-5555-4444"})


class PaymentGatewayTimeout(Exception):
    """The payment provider did not answer in time; trying again later usually works."""


class WarehouseRejected(Exception):
    """The warehouse refused the reservation; retrying cannot help."""


def place_order(email: str, sku: str, total, card: str) -> Order:
    """Store an order and its pipeline together, or nothing at all."""
    with transaction.atomic():
        order = Order.objects.create(email=email, sku=sku, total=total, card=card)
        charge = charge_card.enqueue(order.id)
        with open_batch(on_success=(mark_done, [order.id]), description=f"order #{order.id}") as b:
            reserve_stock.using(after=charge, batch=b).enqueue(order.id, email)
            send_receipt.using(after=charge, batch=b).enqueue(order.id)
    return order


#: What the (pretend) payment gateway accepts: more calls would be refused.
GATEWAY_RATE = "2/s"


@job(takes_context=True, rate_limit=GATEWAY_RATE)
def charge_card(context: JobContext, order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    if order.card in DECLINED_CARDS:
        # Retrying cannot help: the job fails for good now, and what waits for it never runs.
        raise Discard(f"card declined for order #{order_id}")
    # Real gateways time out now and then: the worker stores the error and runs the job
    # again after the back-off (1 s after the first failure, then 16 s, 81 s, ...).
    if context.attempt == 1 and order.card in TIMEOUT_ONCE_CARDS:
        raise PaymentGatewayTimeout(f"payment gateway timed out charging order #{order_id}")
    Order.objects.filter(pk=order_id, paid_at__isnull=True).update(paid_at=timezone.now())


@job(max_attempts=2, concurrency=1, concurrency_key=lambda order_id, customer: customer)
def reserve_stock(order_id: int, customer: str) -> None:
    order = Order.objects.get(pk=order_id)
    time.sleep(0.3)  # the warehouse's API takes its time
    if order.sku not in WAREHOUSE_SKUS:
        raise WarehouseRejected(f"warehouse rejected order #{order_id}: unknown SKU {order.sku}")
    Order.objects.filter(pk=order_id).update(reserved_at=timezone.now())


@job(queue="email")
def send_receipt(order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    send_mail(
        f"Your receipt for order #{order.pk}",
        f"Thank you for your order of {order.sku}. Total: {order.total} EUR.",
        None,
        [order.email],
    )
    Order.objects.filter(pk=order_id).update(receipt_sent_at=timezone.now())


@job
def mark_done(order_id: int, batch: dict) -> None:
    """The batch's callback: runs once, after the stock was reserved and the receipt sent."""
    Order.objects.filter(pk=order_id).update(done_at=timezone.now())


@job(queue="email", priority=80)
def send_newsletter(email: str, issue: int) -> None:
    send_mail(f"Shop news, issue {issue}", "New mugs are in stock.", None, [email])
