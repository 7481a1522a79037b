"""A changelist paginator that never counts millions of rows.

``COUNT(*)`` reads every row of the table on PostgreSQL and InnoDB. This paginator counts
at most ``EXACT_UP_TO + 1`` rows; beyond that the unfiltered list takes the storage's
estimate (PostgreSQL's planner statistics) and a filtered one says "more than".
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

from ..storage import get_storage

EXACT_UP_TO = 10_000


class EstimatingPaginator(Paginator):
    #: "exact", "estimate" (about) or "lower bound" (more than)
    count_kind = "exact"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        capped = queryset.order_by()[: EXACT_UP_TO + 1].count()
        if capped <= EXACT_UP_TO:
            return capped
        if not queryset.query.has_filters():
            estimate = get_storage(queryset.db).estimated_count()
            if estimate is not None:
                self.count_kind = "estimate"
                return max(estimate, capped)
        self.count_kind = "lower bound"
        return EXACT_UP_TO
