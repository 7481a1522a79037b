"""The shop's one endpoint: place an order, whose pipeline is stored with it (``jobs.py``).

``POST /orders/`` with ``email``, ``sku``, ``total`` and ``card``. Run the site with
``SHOP_EMBEDDED=1`` and the pipeline runs inside the web processes; without it, run
``manage.py jobs work`` beside the site.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .jobs import WAREHOUSE_SKUS, place_order


# A machine-to-machine endpoint of the demo, called without a session: a page with a
# form would keep Django's CSRF protection.
@csrf_exempt
@require_POST
def orders(request: HttpRequest) -> JsonResponse:
    data = request.POST
    try:
        total = Decimal(data.get("total", ""))
    except InvalidOperation:
        return JsonResponse({"error": "total must be a decimal number"}, status=400)
    missing = [field for field in ("email", "sku", "card") if not data.get(field)]
    if missing:
        return JsonResponse({"error": f"missing: {', '.join(missing)}"}, status=400)
    if data["sku"] not in WAREHOUSE_SKUS:
        return JsonResponse({"error": f"unknown sku {data['sku']!r}"}, status=400)
    order = place_order(data["email"], data["sku"], total, data["card"])
    return JsonResponse({"order": order.pk}, status=201)
