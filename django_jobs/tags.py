"""Tags: a short free-text label a call is enqueued with (``.using(tag="signup-42")``,
``later(..., tag=...)``), stored in ``Job.tag`` and shown in logs, the admin and
``jobs status``. This module holds the rule a tag must follow."""

from __future__ import annotations

#: The longest tag (the column's length).
MAX_LENGTH = 64


def checked(tag: object) -> str | None:
    """``tag`` when it follows the rule (None stays None); a clear error otherwise."""
    if tag is None:
        return None
    if not isinstance(tag, str):
        raise TypeError(f"a job's tag is a string, not {tag!r}")
    if not tag.strip():
        raise ValueError("a job's tag cannot be empty or blank: pass tag=None for no tag")
    if len(tag) > MAX_LENGTH:
        raise ValueError(
            f"a job's tag is at most {MAX_LENGTH} characters, and {tag[:20]!r}… has "
            f"{len(tag)}: tag with a short label (an id, a batch name) and keep data in "
            "the arguments"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in tag):
        raise ValueError(
            f"a job's tag cannot contain control characters (newlines, tabs), as {tag!r} "
            "does: it is written into one-line log records"
        )
    return tag
