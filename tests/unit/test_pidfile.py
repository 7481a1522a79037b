"""The supervisor's pid file is claimed atomically: of processes racing for it, one wins.

Real processes, released at the same instant: each one's command line reads like a
supervisor's (``… jobs work``), as ``daemon.supervisor_alive`` expects of a live owner.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from django_jobs.runtime import daemon
from tests.conftest import ROOT

RACERS = 6
ROUNDS = 5

# Waits for the starting gun (EOF on fd GUN), claims, says what it got, then stays alive
# (a live owner) until its stdin closes.
CLAIM = """
import os, sys
import django
django.setup()
from django_jobs.runtime.daemon import claim_pidfile
gun = int(sys.argv[2])
print("ready", flush=True)
os.read(gun, 1)
other = claim_pidfile(sys.argv[1])
print("won" if other is None else f"lost {other}", flush=True)
sys.stdin.read()
"""


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def race(path: str) -> dict[int, str]:
    """Start RACERS claimers, release them together; pid → what each one got."""
    gun_r, gun_w = os.pipe()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM, path, str(gun_r), "jobs", "work"],
            cwd=ROOT,
            env=env,
            pass_fds=[gun_r],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(RACERS)
    ]
    os.close(gun_r)
    try:
        for racer in racers:  # blocks until each one is set; its own timeout is pytest's
            assert racer.stdout.readline() == "ready\n", racer.stderr.read()
        os.close(gun_w)  # EOF for every racer at once
        gun_w = None
        said = {racer.pid: racer.stdout.readline().strip() for racer in racers}
    finally:
        if gun_w is not None:
            os.close(gun_w)
        for racer in racers:
            racer.stdin.close()
        for racer in racers:
            racer.wait(30)
            racer.stdout.close()
            racer.stderr.close()
    return said


@pytest.mark.parametrize("before", ["none", "stale"])
def test_of_processes_racing_for_the_pid_file_exactly_one_wins(tmp_path, before):
    for round_ in range(ROUNDS):
        path = str(tmp_path / f"round{round_}" / "tests.settings.pid")
        if before == "stale":
            # A supervisor that was killed: its pid file and worker list are left behind.
            os.makedirs(os.path.dirname(path))
            daemon.write_atomically(path, f"{dead_pid()}\n")
            daemon.write_worker_pids(path, {dead_pid(): "django-jobs-worker.*.0@host/0"})
        said = race(path)
        winners = [pid for pid, what in said.items() if what == "won"]
        assert len(winners) == 1, f"round {round_}: {said}"
        assert all(what == f"lost {winners[0]}" for pid, what in said.items() if pid != winners[0])
        assert daemon.read_pid(path) == winners[0]
        if before == "stale":
            assert daemon.read_worker_pids(path) == [], "the dead supervisor's worker list"
