"""``manage.py jobs <verb>``: a thin shell; every verb calls one function elsewhere."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

VERBS = {
    "work": "run every worker group in the foreground under a supervisor",
    "start": "start the supervisor and workers detached (daemon)",
    "stop": "stop detached workers gracefully",
    "restart": "stop, then start detached workers (picks up new code)",
    "status": "show workers and queues",
    "workoff": "run every job that is ready now, then exit",
    "worker": "run one worker process of one worker group",
    "clear": "delete every job",
    "new": "scaffold a job function and its test in an app",
    "schedule": "list recurring schedules: next runs, last run, paused or not",
    "prune": "delete old succeeded and failed jobs, dead worker rows and schedule history",
    "cancel": "cancel jobs by id: waiting ones never run, running ones are stopped",
    "pause": "pause a queue: no worker on any host claims its jobs until it is resumed",
    "resume": "resume a paused queue",
}


def _check_queue(queue: str | None) -> None:
    """Refuse a ``--queue`` that is not configured, or that no worker group serves.

    Without this a typo would select no worker group and the command would succeed having
    done nothing.
    """
    from django_jobs.conf import jobs_settings
    from django_jobs.exceptions import UnknownQueue

    if queue is None:
        return
    settings = jobs_settings()
    if queue not in settings.queues:
        raise UnknownQueue(queue, settings.queues)
    if settings.group_for_queue(queue) is None:
        raise CommandError(
            f"No worker group in settings.JOBS['WORKERS'] serves queue {queue!r}: "
            "add it to a group's QUEUE (or use QUEUE '*')"
        )


def _operator() -> str:
    """Who runs the command, for the record: the login name, where there is one."""
    import getpass

    try:
        return f"{getpass.getuser()} (manage.py jobs)"
    except Exception:  # no login name (some containers)
        return "manage.py jobs"


class Command(BaseCommand):
    help = "Run and manage django_jobs workers. Verbs: " + ", ".join(VERBS)

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", metavar="verb")
        for name, text in VERBS.items():
            sub = verbs.add_parser(name, help=text, description=text)
            getattr(self, f"args_{name}", lambda p: None)(sub)

    def args_workoff(self, p):
        p.add_argument("--queue", help="only this queue")

    def args_worker(self, p):
        p.add_argument("--index", type=int, default=0, help="worker group (JOBS['WORKERS'][N])")
        p.add_argument("--id", default="0", help="worker number within the group")
        p.add_argument("--workoff", action="store_true", help="exit when nothing is ready")
        p.add_argument("--clear", action="store_true", help="delete every job first")
        p.add_argument("--instance", default=None, help="identity token (set by `jobs work`)")

    def args_clear(self, p):
        p.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def args_new(self, p):
        p.add_argument("app", help="app label (or, alone, a category:action name)")
        p.add_argument(
            "name",
            nargs="?",
            help="job name: SendWelcomeEmail, or category:action (emails:welcome), the "
            "stable form; alone, its category is the app label",
        )
        p.add_argument("--queue", default=None)

    def args_prune(self, p):
        p.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def args_cancel(self, p):
        p.add_argument("ids", nargs="+", type=int, metavar="id", help="job id")
        p.add_argument("--reason", default="", help="kept with the job")

    def args_pause(self, p):
        p.add_argument("queue")
        p.add_argument("--reason", default="", help="shown in status and the admin")

    def args_resume(self, p):
        p.add_argument("queue")

    def args_work(self, p):
        p.add_argument("--pidfile", default=None, help=p.prog and "write the supervisor pid here")

    def args_stop(self, p):
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
        p.add_argument("--force", action="store_true", help="kill what is left after timeout")

    def args_restart(self, p):
        self.args_stop(p)

    def handle(self, *args, verb=None, **options):
        if verb is None:
            self.stdout.write("Usage: manage.py jobs <verb>\n")
            for name, text in VERBS.items():
                self.stdout.write(f"  {name:<8} {text}\n")
            return
        try:
            code = getattr(self, f"do_{verb}")(**options)
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        if code:
            sys.exit(code)

    def do_workoff(self, queue=None, **_):
        from django_jobs.runtime.workoff import workoff

        _check_queue(queue)
        progress = workoff(queue, stream=self.stderr._out)
        self.stdout.write(progress.summary())

    def do_worker(self, index=0, id="0", workoff=False, clear=False, instance=None, **_):
        from django_jobs.operations import clear_jobs
        from django_jobs.runtime.worker import run_worker

        if clear:
            clear_jobs()
        return run_worker(index, id, workoff=workoff, instance=instance)

    def do_clear(self, interactive=True, **_):
        from django_jobs.operations import clear_jobs

        if interactive:
            answer = input("This deletes every job, scheduled, running and failed. Type 'yes': ")
            if answer != "yes":
                self.stdout.write("Nothing deleted.")
                return
        self.stdout.write(f"Deleted {clear_jobs()} jobs.")

    def do_new(self, app, name=None, queue=None, **_):
        from django_jobs.scaffold import new_job

        if name is None:  # jobs new emails:welcome
            app, name = None, app
        for path in new_job(app, name, queue=queue):
            self.stdout.write(f"wrote {path}")

    def do_prune(self, dry_run=False, **_):
        from django_jobs.pruning import prune

        self.stdout.write(prune(dry_run=dry_run).summary(), ending="")

    def do_cancel(self, ids=(), reason="", **_):
        from django_jobs.cancelling import cancel
        from django_jobs.exceptions import JobNotFound

        missing = []
        for job_id in ids:
            try:
                self.stdout.write(str(cancel(job_id, by=_operator(), reason=reason)))
            except JobNotFound as exc:
                self.stderr.write(str(exc))
                missing.append(job_id)
        if missing:
            raise CommandError(f"no job with id {', '.join(map(str, missing))}")

    def do_pause(self, queue, reason="", **_):
        from django_jobs.pausing import pause

        row = pause(queue, by=_operator(), reason=reason)
        self.stdout.write(
            f"Queue {queue} is paused (since {row.paused_at:%Y-%m-%d %H:%M:%S}"
            f"{', by ' + row.paused_by if row.paused_by else ''}): no worker claims its jobs; "
            "running ones finish, enqueues are kept."
        )

    def do_resume(self, queue, **_):
        from django_jobs.pausing import resume

        if resume(queue):
            self.stdout.write(f"Queue {queue} is resumed: workers claim its jobs again.")
        else:
            self.stdout.write(f"Queue {queue} was not paused: nothing changed.")

    def do_schedule(self, **_):
        from django_jobs.recurring.report import render_schedules

        self.stdout.write(render_schedules(), ending="")

    def do_work(self, pidfile=None, **_):
        from django_jobs.runtime.supervisor import run_supervisor

        return run_supervisor(pidfile=pidfile)

    def do_start(self, **_):
        from django_jobs.recurring.scheduler import refuse_invalid_schedules
        from django_jobs.runtime.daemon import start

        refuse_invalid_schedules()  # here, not only in the detached log

        self.stdout.write(start())

    def do_stop(self, timeout=60.0, force=False, **_):
        from django_jobs.runtime.daemon import stop

        self.stdout.write(stop(timeout=timeout, force=force))

    def do_restart(self, timeout=60.0, force=False, **_):
        from django_jobs.runtime.daemon import restart

        self.stdout.write(restart(timeout=timeout, force=force))

    def do_status(self, **_):
        from django_jobs.runtime.status import render_status

        self.stdout.write(render_status())
