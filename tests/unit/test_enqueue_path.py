"""The enqueue path's shortcuts keep what the long way gave: the statements (and round
trips) one enqueue costs, the returned instance, and the arguments' JSON."""

from __future__ import annotations

import itertools
import os
import tempfile
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext

from django_jobs import clock, later, later_many
from django_jobs.calls import _instance
from django_jobs.models import Job
from django_jobs.storage import NewJob, get_storage
from tests.testapp import jobs
from tests.testapp.limit_jobs import per_customer

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def round_trips():
    """Requests the client sends, counted at the driver: every statement, Django's or
    django_jobs' own psycopg cursor, and a PostgreSQL prepare. ``seen`` maps the
    message kind (``Query``, ``Parse``, ``Sync``...) to its count; ``seen["trips"]`` is
    the round trips."""
    seen: dict[str, int] = {}
    if connection.vendor != "postgresql":
        with CaptureQueriesContext(connection) as queries:
            yield seen
        seen["trips"] = len(queries.captured_queries)
        return
    from psycopg import pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield seen
        finally:
            pgconn.untrace()
        trace.seek(0)
        for line in trace:
            parts = line.split()
            if len(parts) > 2 and parts[0] == "F":  # sent by the client
                seen[parts[2]] = seen.get(parts[2], 0) + 1
    # A simple query, or an extended-protocol exchange ended by Sync.
    seen["trips"] = seen.get("Query", 0) + seen.get("Sync", 0)


def warm() -> None:
    """The first enqueue of a connection may ask once whether a pooler is in the way,
    and prepares its statement: what every later call is spared."""
    later(jobs.record, ["warm"])


def test_one_enqueue_is_one_round_trip():
    warm()
    with round_trips() as seen:
        for n in range(5):
            later(jobs.record, [f"k{n}"])
    assert seen["trips"] == 5, seen
    assert seen.get("Parse", 0) == 0, "the prepared INSERT is parsed once per connection"


def test_one_enqueue_in_a_transaction_is_one_statement_and_commits_with_it():
    warm()
    with transaction.atomic():
        Job.objects.exists()  # the caller's own work opened the transaction
        with round_trips() as seen:
            job = later(jobs.record, ["in"])
        assert seen["trips"] == 1, seen
    assert Job.objects.filter(pk=job.pk).exists()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        gone = later(jobs.record, ["gone"])
        1 / 0  # noqa: B018
    assert not Job.objects.filter(pk=gone.pk).exists()


def test_later_many_is_one_statement_per_1000_rows():
    warm()
    with round_trips() as seen:
        later_many(jobs.record, [[f"k{n}"] for n in range(1000)])
    assert seen["trips"] == 1, seen


@pytest.mark.skipif(
    os.environ.get("DJANGO_JOBS_DB", "sqlite") != "postgres", reason="PostgreSQL's prepare"
)
def test_the_prepared_insert_is_prepared_again_after_a_rollback():
    warm()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        later(jobs.record, ["rolled back"])
        1 / 0  # noqa: B018
    with round_trips() as seen:
        job = later(jobs.record, ["after"])
    assert seen["trips"] == 2 and seen["Parse"] == 1, seen
    assert list(Job.objects.values_list("args", flat=True).filter(pk=job.pk)) == [["after"]]
    assert not Job.objects.filter(args=["rolled back"]).exists()


def fields(job: Job) -> dict:
    return {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields}


def test_the_instance_is_what_model_init_makes_and_signals_are_honoured():
    from django_jobs.calls import _template

    now = clock.now()
    row = NewJob(
        "n", "[1]", "{}", "q", 3, now, [1], {}, tag="t", concurrency_key="c",
        concurrency_limit=2, rate_key="r", rate_limit="1/s",
    )  # fmt: skip
    quick = _instance(row, "default", now, _template())
    slow = _instance(row, "default", now)
    assert list(vars(quick)) == list(vars(slow))
    assert {k: v for k, v in vars(quick).items() if k != "_state"} == {
        k: v for k, v in vars(slow).items() if k != "_state"
    }
    assert (quick._state.db, quick._state.adding) == (slow._state.db, slow._state.adding)
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=Job)
    try:
        job = later(jobs.record, ["signalled"])
    finally:
        post_init.disconnect(receiver, sender=Job)
    assert seen == [job]


def test_later_many_stores_rows_whose_columns_differ_or_not():
    """The PostgreSQL bulk insert sends a column as one value when every row has it."""
    storage = get_storage()
    now = clock.now()
    later_at = now + timedelta(hours=1)
    rows = [
        NewJob(jobs.record.name, '["a"]', "{}", "default", 5, now),
        NewJob(jobs.record.name, '["b"]', '{"sleep":0}', "email", 6, later_at, tag="x"),
        NewJob(jobs.send_email.name, '["c"]', "{}", "default", 5, now, meta='{"m":1}'),
    ]
    ids = storage.insert(rows, now)
    stored = {job.pk: job for job in Job.objects.filter(pk__in=ids)}
    got = [stored[i] for i in ids]
    assert [j.args for j in got] == [["a"], ["b"], ["c"]]
    assert [j.kwargs for j in got] == [{}, {"sleep": 0}, {}]
    assert [j.queue for j in got] == ["default", "email", "default"]
    assert [j.priority for j in got] == [5, 6, 5]
    assert [j.run_at for j in got] == [now, later_at, now]
    assert [j.tag for j in got] == [None, "x", None]
    assert [j.meta for j in got] == [None, None, {"m": 1}]
    assert [j.name for j in got] == [jobs.record.name, jobs.record.name, jobs.send_email.name]
    same = storage.insert([NewJob(jobs.noop.name, "[]", "{}", "default", 5, now)] * 3, now)
    assert Job.objects.filter(pk__in=same, name=jobs.noop.name).count() == 3


def test_a_traced_call_keeps_its_tag_and_limits():
    from opentelemetry import trace

    from tests.spans import memory_exporter

    memory_exporter()
    with trace.get_tracer("tests").start_as_current_span("request"):
        tagged = later(jobs.record, ["t"], tag="invoice")
        limited = later(per_customer, ["acme"])
    tagged.refresh_from_db()
    limited.refresh_from_db()
    assert tagged.tag == "invoice" and "trace" in tagged.meta
    assert limited.concurrency_key is not None and limited.concurrency_limit == 1


# -- arguments ---------------------------------------------------------------------------


def test_arguments_that_do_not_fit_still_raise_the_named_error():
    with pytest.raises(TypeError, match="arguments do not fit job .*record.*missing"):
        later(jobs.record, [])
    with pytest.raises(TypeError, match="too many positional"):
        later(jobs.record, ["a", 0, 1])
    with pytest.raises(TypeError, match="did you mean 'sleep'"):
        later(jobs.record, ["a"], {"slep": 1})
    assert not Job.objects.exists()


def test_the_argument_encoder_writes_what_json_dumps_writes():
    import json

    from django_jobs.arguments import dumps, to_json

    values = [[], {}, [1, 2.5, 'é"\n', None, True, False], {"a": [{"b": -1e300}], "ü": "x"}]
    for value in values:
        assert to_json("j", value, "argument", value) == dumps(value)
        assert json.loads(to_json("j", value, "argument", value)) == value
    for bad in ([float("nan")], [object()], {"k": {1, 2}}):
        with pytest.raises(Exception, match="not JSON-serialisable"):
            to_json("j", bad, "argument", bad)


def test_every_shape_of_one_row_insert_is_stored():
    """Each shape of the one-row INSERT (due or not, tag, limits, meta) stores its row."""
    for tag, wait, job in itertools.product([None, "t"], [None, 60], [jobs.record, per_customer]):
        stored = later(job, ["acme"], tag=tag, wait=wait)
        stored.refresh_from_db()
        assert stored.tag == tag
        assert (stored.concurrency_key is not None) == (job is per_customer)


def test_no_prepared_statement_with_djangos_connection_pool():
    """psycopg_pool may reset a pooled connection's session (a ``reset`` callback) without
    psycopg's statement cache knowing: the enqueue does not prepare there."""
    from types import SimpleNamespace

    from django_jobs.storage.pooler import may_prepare

    pooled = SimpleNamespace(settings_dict={"OPTIONS": {"pool": {"min_size": 1}}})
    assert may_prepare(pooled) is False
