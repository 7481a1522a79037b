"""Machine facts, the Markdown tables (ours beside each peer, with ratios) and targets."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from bench import lib, plan
from bench.plan import FLOOR, METRICS, OURS, PGQUEUER, PROCRASTINATE, TASKSDB

FLOOR_STEPS = {
    "insert_one": "INSERT, one per transaction",
    "insert_1000": "INSERT, 1,000 per transaction (one statement)",
    "claim_1": "claim 1 per transaction (FOR UPDATE SKIP LOCKED)",
    "claim_100": "claim 100 per transaction",
    "loop_1_p1": "worker loop claim 1 + delete 1, one process",
    "loop_1_p2": "worker loop claim 1 + delete 1, two processes",
    "loop_10_p1": "worker loop claim 10 + delete 10, one process",
    "loop_10_p2": "worker loop claim 10 + delete 10, two processes",
    "loop_100_p1": "worker loop claim 100 + delete 100, one process",
    "loop_100_p2": "worker loop claim 100 + delete 100, two processes",
}
SYSTEMS = (OURS, TASKSDB, PROCRASTINATE, PGQUEUER)
ENGINE_NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mysql": "MariaDB"}


def _out(cmd: list[str]) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, cwd=lib.REPO, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _versions(python: str, packages: list[str]) -> dict:
    if not Path(python).exists():
        return {}
    code = (
        "import importlib.metadata as m, platform, sqlite3, json\n"
        "out = {'python': platform.python_version(), 'sqlite': sqlite3.sqlite_version}\n"
        f"for p in {packages!r}:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    import json

    text = _out([python, "-c", code])
    return json.loads(text) if text else {}


def commit() -> str:
    """The checked-out commit (django_jobs may change while a long run goes on)."""
    return _out(["git", "rev-parse", "--short", "HEAD"])


def machine_facts(args) -> dict:
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    facts = {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(int(meminfo[1]) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg_at_end": os.getloadavg(),
        "commit": commit(),
        "django_jobs_dirty": bool(_out(["git", "status", "--porcelain", "django_jobs"])),
        "ours": _versions(args.ours_python, ["django", "psycopg", "mysqlclient"]),
        "peers": _versions(
            args.peers_python,
            [
                "django",
                "django-tasks-db",
                "procrastinate",
                "pgqueuer",
                "asyncpg",
                "psycopg",
                "mysqlclient",
                "oban",
            ],
        ),  # fmt: skip
    }
    if "postgres" in args.engines:
        conn = lib.connect("postgres", "postgres")
        facts["postgresql"] = lib.scalar(conn, "SHOW server_version")
        conn.close()
    if "mysql" in args.engines:
        import MySQLdb

        conn = MySQLdb.connect(host=lib.MY["host"], port=lib.MY["port"], user=lib.MY["user"])
        facts["mariadb"] = lib.scalar(conn, "SELECT version()")
        conn.close()
    return facts


def configuration(args) -> dict:
    return {
        "jobs": args.jobs,
        "repeat": args.repeat,
        "smoke": args.smoke,
        "engines": args.engines,
        "peers": args.peer_systems,
        "tasksdb_jobs": min(args.jobs, args.slow_jobs),
        "memory_jobs": args.memory_jobs,
        "ours_sync": plan.OURS_SYNC,
        "ours_async": plan.OURS_ASYNC,
        "tasksdb_sync_procs": plan.TASKSDB_SYNC_PROCS,
        "procrastinate_sync": plan.PROCRASTINATE_SYNC,
        "pgqueuer_sync": plan.PGQUEUER_SYNC,
        "pgqueuer_async": plan.PGQUEUER_ASYNC,
    }


def _n(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(ours: float | None, other: float | None) -> str:
    if not ours or not other:
        return ""
    return f" (×{ours / other:.2f})"


def engine_table(engine: str, summary: dict, floor: dict | None, systems: list[str]) -> str:
    data = summary.get(engine, {})
    cols = [s for s in SYSTEMS if s == OURS or s in systems]
    cols = [s for s in cols if any(s in data.get(m, {}) for m in METRICS)]
    show_floor = engine == "postgres" and floor is not None
    head = ["measurement", *cols] + ([FLOOR] if show_floor else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for metric, (label, unit, floor_key) in METRICS.items():
        row = data.get(metric, {})
        if not row:
            continue
        ours = row.get(OURS, {})
        cells = [f"{label} ({unit})"]
        for system in cols:
            cells.append(_cell(metric, system, row.get(system), ours, data))
        if show_floor:
            value = floor.get(floor_key) if floor_key else None
            rate = ours.get("rate")
            share = f" (ours {100 * rate / value:.0f} %)" if value and rate else ""
            cells.append(_n(value) + share if value else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(metric: str, system: str, result: dict | None, ours: dict, data: dict) -> str:
    if not result:
        return "—" if metric != "pickup" else "—"
    if metric == "pickup":
        return f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f}"
    if metric == "memory":
        start, end = result.get("rss_1k_mb"), result.get("rss_end_mb")
        growth = f" ({100 * (end - start) / start:+.1f} %)" if start and end else ""
        return f"{_n(start)} / {_n(end)}{growth}"
    if metric == "scale" and system == OURS:
        base = data.get("drain_1", {}).get(OURS, {}).get("rate")
        rate = result["rate"]
        return _n(rate) + (f" ({100 * rate / base:.0f} % of empty)" if base else "")
    if system == OURS:
        return f"**{_n(result['rate'])}**"
    return _n(result["rate"]) + _ratio(ours.get("rate"), result["rate"])


def _get(summary, engine, metric, system, field="rate"):
    return summary.get(engine, {}).get(metric, {}).get(system, {}).get(field)


def targets(summary: dict, floor: dict | None) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every target that the run has data for."""
    out = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "**not met**")
        out.append((name, measured, verdict))

    def ratio(a, b):
        return a / b if a and b else None

    for m in ("drain_1", "drain_2"):
        ours = _get(summary, "postgres", m, OURS)
        r = ratio(ours, _get(summary, "postgres", m, PGQUEUER))
        if r is not None:
            add(f"PostgreSQL {METRICS[m][0]}: ≥ 3× pgqueuer", f"×{r:.2f}", r >= 3.0)
        floor_key = METRICS[m][2]
        r = ratio(ours, (floor or {}).get(floor_key))
        if r is not None:
            # The floor's loop is timed once connected; the drain counts start-up too.
            steady = ratio(_get(summary, "postgres", m, OURS, "steady_rate"), floor[floor_key])
            extra = f" (steady rate {100 * steady:.0f} %)" if steady else ""
            add(f"PostgreSQL {METRICS[m][0]}: ≥ 80 % of the floor ({FLOOR_STEPS[floor_key]})",
                f"{100 * r:.0f} %{extra}", r >= 0.8)  # fmt: skip
        for engine in ("sqlite", "mysql"):
            r = ratio(_get(summary, engine, m, OURS), _get(summary, engine, m, TASKSDB))
            if r is not None:
                add(f"{ENGINE_NAMES[engine]} {METRICS[m][0]}: ≥ 10× django-tasks-db",
                    f"×{r:.1f}", r >= 10)  # fmt: skip
    one = _get(summary, "postgres", "enqueue_one", OURS)
    if one and floor and floor.get("insert_one"):
        share = one / floor["insert_one"]
        add("PostgreSQL enqueue one call: ≥ 70 % of the single-INSERT floor",
            f"{100 * share:.0f} %", share >= 0.7)  # fmt: skip
    for engine in summary:
        ours = _get(summary, engine, "enqueue_one", OURS)
        peers = {s: _get(summary, engine, "enqueue_one", s) for s in plan.PEERS}
        peers = {s: v for s, v in peers.items() if v}
        if ours and peers:
            worst = min(ours / v for v in peers.values())
            add(f"{ENGINE_NAMES[engine]} enqueue one call: ahead of every peer",
                f"×{worst:.2f} vs the fastest peer", worst >= 1.0)  # fmt: skip
    r = ratio(one, _get(summary, "postgres", "enqueue_one", PGQUEUER))
    if r is not None:
        add("PostgreSQL enqueue one call: ≥ 1.3× pgqueuer", f"×{r:.2f}", r >= 1.3)
    r = ratio(_get(summary, "postgres", "enqueue_bulk", OURS),
              _get(summary, "postgres", "enqueue_bulk", PGQUEUER))  # fmt: skip
    if r is not None:
        add("PostgreSQL bulk enqueue: ≥ 1.3× pgqueuer's bulk", f"×{r:.2f}", r >= 1.3)
    r = ratio(_get(summary, "postgres", "sleep_sync", OURS),
              _get(summary, "postgres", "sleep_sync", PROCRASTINATE))  # fmt: skip
    if r is not None:
        add("PostgreSQL 10 ms sync jobs: ≥ 2× procrastinate's best", f"×{r:.2f}", r >= 2.0)
    r = ratio(_get(summary, "postgres", "sleep_async", OURS),
              _get(summary, "postgres", "sleep_async", PGQUEUER))  # fmt: skip
    if r is not None:
        add("PostgreSQL 10 ms async jobs: ≥ 1.3× pgqueuer's best", f"×{r:.2f}", r >= 1.3)
    for engine in summary:
        p50 = _get(summary, engine, "pickup", OURS, "p50_ms")
        p99 = _get(summary, engine, "pickup", OURS, "p99_ms")
        if p50 is None:
            continue
        if engine == "postgres":
            add("PostgreSQL idle pickup: p50 ≤ 2 ms, p99 ≤ 4 ms", f"{p50:.1f} / {p99:.1f} ms",
                p50 <= 2 and p99 <= 4)  # fmt: skip
        else:
            add(f"{ENGINE_NAMES[engine]} idle pickup: p99 ≤ 100 ms", f"{p99:.1f} ms", p99 <= 100)
    for engine in summary:
        r = ratio(_get(summary, engine, "scale", OURS), _get(summary, engine, "drain_1", OURS))
        if r is not None:
            add(f"{ENGINE_NAMES[engine]} drain with 1,000,000 extra rows: ≥ 90 % of empty",
                f"{100 * r:.0f} % of empty", r >= 0.9)  # fmt: skip
        start = _get(summary, engine, "memory", OURS, "rss_1k_mb")
        end = _get(summary, engine, "memory", OURS, "rss_end_mb")
        if start and end:
            add(f"{ENGINE_NAMES[engine]} worker RSS 1,000 → 100,000 jobs: within 10 %",
                f"{start:.1f} → {end:.1f} MB", end <= start * 1.1)  # fmt: skip
    return out


def markdown(payload: dict, args) -> str:
    summary, facts, config = payload["summary"], payload["facts"], payload["config"]
    floor = summary.get("postgres", {}).get("floor", {}).get(FLOOR)
    parts = [
        "# django_jobs benchmark results" + (" (smoke: ours + floor only)" if args.smoke else ""),
        "",
        f"{config['jobs']:,} jobs per measurement, median of {config['repeat']} interleaved"
        f" repetition(s); django-tasks-db drains use {config['tasksdb_jobs']:,} jobs."
        " Rates in jobs/s (higher is better); (×r) = django_jobs ÷ that peer;"
        " pickup latency in ms (lower is better).",
        "",
    ]
    for engine in args.engines:
        if engine not in summary:
            continue
        parts += [f"## {ENGINE_NAMES[engine]}", ""]
        parts += [engine_table(engine, summary, floor, args.peer_systems), ""]
    if floor:
        parts += ["## Plain-SQL floor (PostgreSQL, psycopg, minimal table)", ""]
        parts += ["| step | rows/s |", "|---|---:|"]
        for key, label in FLOOR_STEPS.items():
            if key in floor:
                parts.append(f"| {label} | {_n(floor[key])} |")
        parts.append("")
    goals = targets(summary, floor)
    if goals:
        parts += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
        parts += [f"| {a} | {b} | {c} |" for a, b, c in goals]
        parts.append("")
    parts += ["## Configurations", ""]
    for engine in args.engines:
        for metric, systems in summary.get(engine, {}).items():
            for system, result in systems.items():
                if "config" in result and metric in ("sleep_sync", "sleep_async"):
                    parts.append(f"- {ENGINE_NAMES[engine]}, {metric}, {system}: "
                                 f"{result['config']}")  # fmt: skip
    parts += ["", "## Machine", ""]
    for key, value in facts.items():
        parts.append(f"- {key}: {value}")
    return "\n".join(parts) + "\n"
