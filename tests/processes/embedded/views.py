import json
import time

from django.db import transaction
from django.http import HttpResponse, JsonResponse

from django_jobs import registry


def enqueue(request, name):
    """Enqueue ``count`` calls of job ``name`` (of this app's jobs module, unless dotted)
    with keys ``<prefix>-<i>``, in one transaction (the embedded worker is woken once it
    commits)."""
    definition = registry.resolve(name if "." in name else f"{__package__}.jobs.{name}")
    count = int(request.GET.get("count", 1))
    start = int(request.GET.get("start", 0))
    prefix = request.GET.get("prefix", name)
    options = json.loads(request.GET.get("kwargs", "{}"))
    if request.GET.get("queue"):
        definition = definition.using(queue=request.GET["queue"])
    with transaction.atomic():
        ids = [
            definition.enqueue(f"{prefix}-{i}", **options).pk for i in range(start, start + count)
        ]
        committing = time.time()  # what bench/embedded_latency.py counts from
    return JsonResponse({"ids": ids, "committing": committing})


def ping(request):
    return HttpResponse("pong")
