"""Unique jobs under concurrent enqueues from many processes: the database decides.

Eight forked processes meet at a barrier and enqueue the same unique call at the same
moment, round after round; exactly one row is stored each round, and all eight are handed
that row. Some rounds one of them enqueues inside a transaction it then rolls back: the
others wait for it (PostgreSQL, MariaDB) or for the write lock (SQLite), and the key it
held is left to them. With ``unique_for``, the test ages the holder between rounds, and
the eight race to replace it: again exactly one new row.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from datetime import timedelta

import pytest
from django.db import connections, transaction

from django_jobs.models import Job
from tests.testapp import control_jobs

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

PROCESSES = 8
ROUNDS = 100
#: Rounds in which one process enqueues inside a transaction it rolls back.
ROLLBACK_EVERY = 5


class RolledBack(Exception):
    pass


def _enqueue_rounds(index: int, barrier, results, rounds: int, job_name: str, aged: bool):
    connections.close_all()  # never share the parent's connection (it was closed first)
    job_obj = getattr(control_jobs, job_name)
    out = []
    try:
        for r in range(rounds):
            barrier.wait(timeout=60)
            key = "same" if aged else f"round-{r}"
            if not aged and r % ROLLBACK_EVERY == 0 and index == r % PROCESSES:
                try:
                    with transaction.atomic():
                        held = job_obj.enqueue(key)
                        time.sleep(0.02)  # hold the key while the others collide with it
                        raise RolledBack
                except RolledBack:
                    out.append((r, held.pk, held.created, True))
                continue
            stored = job_obj.enqueue(key)
            out.append((r, stored.pk, stored.created, False))
            if aged:
                barrier.wait(timeout=60)  # all done: the parent ages the holder
        results.put((index, out, None))
    except BaseException:
        barrier.abort()  # the others stop waiting for us; the parent reports this
        results.put((index, out, traceback.format_exc()))
    finally:
        connections.close_all()


def _race(rounds: int, job_name: str, aged: bool, between=None) -> dict[int, list]:
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    parties = PROCESSES + (1 if aged else 0)
    barrier = ctx.Barrier(parties)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_enqueue_rounds, args=(i, barrier, results, rounds, job_name, aged))
        for i in range(PROCESSES)
    ]
    for child in children:
        child.start()
    try:
        if aged:
            try:
                for r in range(rounds):
                    between(r)
                    connections.close_all()
                    barrier.wait(timeout=60)
                    barrier.wait(timeout=60)
            except threading.BrokenBarrierError:
                pass  # a process failed: its report follows
        collected, errors = {}, []
        for _ in children:
            index, out, error = results.get(timeout=120)
            if error is not None:
                errors.append(f"process {index} failed:\n{error}")
            collected[index] = out
        assert not errors, "\n".join(errors)
        return collected
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join(10)


def test_eight_processes_store_each_unique_call_exactly_once():
    started = time.monotonic()
    collected = _race(ROUNDS, "unique_record", aged=False)
    elapsed = time.monotonic() - started
    by_round: dict[int, list] = {}
    for out in collected.values():
        for r, pk, created, rolled_back in out:
            by_round.setdefault(r, []).append((pk, created, rolled_back))
    stored = {
        args[0]: pk
        for args, pk in Job.objects.filter(name=control_jobs.unique_record.name).values_list(
            "args", "id"
        )
    }
    assert len(stored) == ROUNDS
    assert len(by_round) == ROUNDS
    for r, calls in by_round.items():
        kept = [(pk, created) for pk, created, rolled_back in calls if not rolled_back]
        row_id = stored[f"round-{r}"]
        assert len(calls) == PROCESSES
        # Every process that committed was handed the stored row; exactly one created it.
        assert {pk for pk, _ in kept} == {row_id}, (r, calls)
        assert sum(created for _, created in kept) == 1, (r, calls)
        for pk, created, rolled_back in calls:
            if rolled_back and not created:  # it found the holder first
                assert pk == row_id, (r, calls)
            # (A rolled-back row's id may come back: SQLite reuses it.)
    assert Job.objects.filter(unique_key__isnull=False).count() == ROUNDS
    print(f"{ROUNDS} rounds x {PROCESSES} processes in {elapsed:.1f} s")


def test_after_unique_for_the_racers_replace_the_holder_once():
    rounds = 20
    name = control_jobs.unique_for_ten_minutes.name
    first = control_jobs.unique_for_ten_minutes.enqueue("same")

    def age_the_holder(r: int) -> None:
        holder = Job.objects.get(name=name, unique_key__isnull=False)
        holder.created_at -= timedelta(minutes=11)
        holder.save(update_fields=["created_at"])

    collected = _race(rounds, "unique_for_ten_minutes", aged=True, between=age_the_holder)
    created_ids = sorted(pk for out in collected.values() for _, pk, created, _ in out if created)
    # One new row per round, whoever won it; the others got that row.
    assert len(created_ids) == rounds
    rows = Job.objects.filter(name=name)
    assert rows.count() == rounds + 1
    assert rows.filter(unique_key__isnull=False).count() == 1
    assert rows.get(unique_key__isnull=False).pk == created_ids[-1]
    assert first.pk not in created_ids
    for r in range(rounds):
        pks = {pk for out in collected.values() for rr, pk, _, _ in out if rr == r}
        assert len(pks) == 1, (r, pks)
