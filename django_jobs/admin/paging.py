"""A changelist paginator that never counts millions of rows, and pages deep cheaply.

``COUNT(*)`` reads every row of the table on PostgreSQL and InnoDB. This paginator counts
at most ``EXACT_UP_TO + 1`` rows; beyond that the unfiltered list takes the storage's
estimate (PostgreSQL's planner statistics) and a filtered one says "more than".

A page that starts ``DEFER_FROM`` rows or more into the list is read in two queries: the
ids of its rows (``ORDER BY … OFFSET … LIMIT``, which an index in the list's order answers
from the index alone: ``django_jobs_order_idx`` on PostgreSQL for the default order), then
those rows by primary key. One query would fetch every skipped row from the table.
"""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.utils.functional import cached_property

from ..storage import get_storage

EXACT_UP_TO = 10_000
#: Rows skipped from which a page reads its ids first (see the module docstring).
DEFER_FROM = 1_000


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

    def page(self, number) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        queryset = self.object_list
        if bottom < DEFER_FROM or not hasattr(queryset, "values_list"):
            return super().page(number)
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(queryset.values_list("pk", flat=True)[bottom:top])
        # The same queryset narrowed to those ids keeps its ordering (and any
        # select_related), so the rows come back in the list's order.
        return self._get_page(queryset.filter(pk__in=ids), number, self)
