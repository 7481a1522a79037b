"""Event latency from ``publish`` to the browser: ``python -m bench.events_latency``.

    python -m bench.events_latency --engine postgres --events 500

Serves the test project (its progress page, tests/testapp/templates/testapp/progress.html)
under uvicorn on a fresh ``bench_events`` database, opens the page in Debian's Chromium
(Playwright), and publishes ``--events`` events on the watched job's channel from this
process, one every ``--gap`` seconds, each carrying ``time.time()`` in ms. The page notes
``Date.now()`` when each arrives (same machine, same clock); the difference is the
latency: the database commit, NOTIFY or the subscriber's poll, the hub thread, the event
loop, the SSE response and the browser's parsing. Prints p50/p90/p99/max and one
``BENCH-RESULT`` line. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib  # noqa: E402

DB = "bench_events"
CHROMIUM = "/usr/bin/chromium"


def environment(engine: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DJANGO_JOBS_DB={"postgres": "postgres", "mysql": "mysql"}.get(engine, "sqlite"),
        DJANGO_JOBS_TEST_DB_NAME=DB,
        DJANGO_JOBS_SQLITE_NAME=lib.sqlite_path(DB),
        PYTHONPATH=str(lib.REPO),
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres", "mysql"])
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--gap", type=float, default=0.02, help="seconds between two publishes")
    args = p.parse_args(argv)

    lib.reset_database(args.engine, DB)
    env = environment(args.engine)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connections

    from django_jobs import events
    from tests.testapp import jobs

    job = jobs.noop.using(wait=3600).enqueue()  # waits: its stream stays open
    channel = events.job_channel(job.pk)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--port", str(port),
         "--log-level", "warning"],
        cwd=lib.REPO, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        from playwright.sync_api import sync_playwright

        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop in this thread
        connections.close_all()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/progress/{job.pk}/")
            page.wait_for_function("window.received && window.received.length >= 1")
            time.sleep(0.5)  # the stream is listening once the stored state has arrived
            for seq in range(args.events):
                events.publish(channel, {"seq": seq, "sent": time.time() * 1000})
                time.sleep(args.gap)
            arrived = "window.received.filter(([at, e]) => e.seq !== undefined).length"
            page.wait_for_function(f"{arrived} >= {args.events}", timeout=60_000)
            received = page.evaluate("window.received")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        connections.close_all()
        lib.drop_database(args.engine, DB)
    latencies = [at - event["sent"] for at, event in received if "sent" in event]
    seqs = [event["seq"] for _, event in received if "seq" in event]
    result = {
        "scenario": "events_latency",
        "engine": args.engine,
        "events": len(latencies),
        "in_order": seqs == sorted(seqs) and len(set(seqs)) == len(seqs),
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }
    print(
        f"{args.engine}: {result['events']} events, p50 {result['p50_ms']} ms, "
        f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
    )
    lib.emit(result)
    return result


if __name__ == "__main__":
    main()
