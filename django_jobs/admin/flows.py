"""The job page's "Flow" block: what a job waits for, what waits for it, its batches.

Every value goes through ``format_html``: names and descriptions come from users.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from ..chaining import batch_of_callback, neighbours, waiting_reason
from ..models import Batch, Job
from .display import EMPTY, display_status


def has_flow(job: Job) -> bool:
    return job.waiting_for is not None or bool(job.follow_up)


def flow_block(job: Job) -> SafeString | str:
    edges = neighbours(job)
    rows = []
    reason = waiting_reason(job)
    if reason:
        rows.append(format_html("<li><strong>{}</strong></li>", reason))
    batch = batch_of_callback(job)
    if batch is not None:
        rows.append(format_html("<li>{} {}</li>", _("Callback of"), _batch_text(batch)))
    if edges["before"]:
        rows.append(format_html("<li>{} {}</li>", _("Runs after:"), _jobs(job, edges["before"])))
    if edges["after"]:
        rows.append(format_html("<li>{} {}</li>", _("Then runs:"), _jobs(job, edges["after"])))
    for batch_id, _outcome in edges["batches"]:
        member_of = Batch.objects.using(job._state.db).filter(pk=batch_id).first()
        if member_of is not None:
            rows.append(format_html("<li>{} {}</li>", _("Member of"), _batch_text(member_of)))
    if not rows:
        return EMPTY
    return format_html(
        '<ul class="djj-flow">{}</ul>', format_html_join("", "{}", ((r,) for r in rows))
    )


def _jobs(job: Job, edges: list[tuple[int, str | None]]) -> SafeString:
    return _jobs_in(job._state.db, edges)


def _jobs_in(alias: str | None, edges: list[tuple[int, str | None]]) -> SafeString:
    """Each job id linked to its page, with its status (or the outcome its edge kept, for
    a row that is gone: successes are deleted)."""
    rows = {row.pk: row for row in Job.objects.using(alias).filter(pk__in=[i for i, _o in edges])}
    parts = []
    for job_id, outcome in edges:
        row = rows.get(job_id)
        if row is not None:
            css, label = display_status(row)
            url = reverse("admin:django_jobs_job_change", args=[job_id])
            parts.append(
                format_html(
                    '<a href="{}">#{} {}</a> <span class="djj-badge djj-{}">{}</span>',
                    url,
                    job_id,
                    row.name.rsplit(".", 1)[-1],
                    css,
                    label,
                )  # fmt: skip
            )
        else:
            parts.append(format_html("#{} ({})", job_id, outcome or _("deleted")))
    return format_html_join(", ", "{}", ((p,) for p in parts))


def _batch_text(batch: Batch) -> SafeString:
    url = reverse("admin:django_jobs_batch_change", args=[batch.pk])
    return format_html(
        '<a href="{}">{} {}</a>{}: {}', url, _("batch"), batch.pk,
        format_html(" ({})", batch.description) if batch.description else "",
        batch_progress(batch),
    )  # fmt: skip


def batch_progress(batch: Batch) -> str:
    progress = batch.progress()
    text = _("%(ended)s of %(total)s ended, %(failed)s failed") % {
        "ended": progress["total"] - progress["pending"],
        "total": progress["total"],
        "failed": progress["failed"],
    }
    return text if batch.closed_at else text + " " + _("(open)")


def batch_block(batch: Batch) -> SafeString:
    """The batch page: its progress, its callbacks and its members."""
    alias = batch._state.db
    rows = [format_html("<li>{}</li>", batch_progress(batch))]
    for label, callback_id in ((_("on success"), batch.on_success_id),
                               (_("on finish"), batch.on_finish_id)):  # fmt: skip
        if callback_id is not None:
            callback = Job.objects.using(alias).filter(pk=callback_id).first()
            outcome = None if callback is not None else "deleted"
            rows.append(
                format_html("<li>{}: {}</li>", label, _jobs_in(alias, [(callback_id, outcome)]))
            )
    members = [(i, None) for i in batch.member_ids()[:200]]
    if members:
        rows.append(format_html("<li>{}: {}</li>", _("members"), _jobs_in(alias, members)))
    return format_html(
        '<ul class="djj-flow">{}</ul>', format_html_join("", "{}", ((r,) for r in rows))
    )
