"""The shop's background jobs. Views enqueue them; a worker (``manage.py jobs work``) runs them.

Jobs take ids and plain values, never model instances: the arguments are stored as JSON
and the job reads the current row when it runs.
"""

from __future__ import annotations

from django.core.mail import send_mail
from django.utils import timezone

from django_jobs import job
from django_jobs.context import JobContext

from .models import Order

#: What the (pretend) warehouse stocks.
WAREHOUSE_SKUS = frozenset({"MUG-01", "TEE-M", "CAP-02"})


class PaymentGatewayTimeout(Exception):
    """The payment provider did not answer in time; trying again later usually works."""


class WarehouseRejected(Exception):
    """The warehouse refused the reservation; retrying cannot help."""


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


@job(takes_context=True)
def charge_card(context: JobContext, order_id: int) -> None:
    # This example's gateway times out on every first attempt, as real ones do now and
    # then, to show a retry: the worker stores the error and runs the job again after
    # the back-off (1 s after the first failure, then 16 s, 81 s, ...).
    if context.attempt == 1:
        raise PaymentGatewayTimeout(f"payment gateway timed out charging order #{order_id}")
    Order.objects.filter(pk=order_id, paid_at__isnull=True).update(paid_at=timezone.now())


@job(max_attempts=2)
def reserve_stock(order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    if order.sku not in WAREHOUSE_SKUS:
        raise WarehouseRejected(f"warehouse rejected order #{order_id}: unknown SKU {order.sku}")


@job(queue="email", priority=80)
def send_newsletter(email: str, issue: int) -> None:
    send_mail(f"Shop news, issue {issue}", "New mugs are in stock.", None, [email])
