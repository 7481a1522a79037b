"""Server-side SVG bar charts: no JavaScript library, nothing fetched from elsewhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .display import local

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]
    css: str  # class of its bars, coloured by the admin stylesheet


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10 × 10ⁿ that is at least ``value``: an axis top whose half
    is a whole number too."""
    if value <= 2:
        return 2
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def hourly_bars(starts: Sequence[datetime], series: Sequence[Series], title: str) -> SafeString:
    """Grouped bars, one group per hour in ``starts`` and one bar per series."""
    slots = len(starts)
    top = nice_ceiling(max([0, *(v for s in series for v in s.values)]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot_w = plot_w / max(slots, 1)
    bar_w = max((slot_w - 4) / max(len(series), 1), 1)
    parts: list[SafeString] = []
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        label = f"{top * fraction:g}"
        parts.append(
            format_html(
                '<line class="djj-grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="djj-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y + 4:.1f}",
                label,
            )  # fmt: skip
        )
    for i, start in enumerate(starts):
        x0 = LEFT + i * slot_w + 2
        hour = local(start).strftime("%H:00")
        for j, s in enumerate(series):
            value = s.values[i]
            h = plot_h * value / top
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{} {}: {}</title></rect>",
                    s.css,
                    f"{x0 + j * bar_w:.1f}",
                    f"{TOP + plot_h - h:.1f}",
                    f"{bar_w:.1f}",
                    f"{h:.1f}",
                    hour,
                    s.label,
                    value,
                )  # fmt: skip
            )
        if i % 3 == 0:
            parts.append(
                format_html(
                    '<text class="djj-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    f"{x0 + slot_w / 2 - 2:.1f}",
                    HEIGHT - 8,
                    hour,
                )  # fmt: skip
            )
    legend = format_html_join(
        "",
        '<tspan class="{}-text" dx="12">■</tspan><tspan dx="4">{}</tspan>',
        ((s.css, s.label) for s in series),
    )
    return format_html(
        '<svg class="djj-chart" viewBox="0 0 {} {}" role="img" aria-label="{}"'
        ' xmlns="http://www.w3.org/2000/svg"><text class="djj-axis" x="{}" y="{}">{}</text>'
        "{}</svg>",
        WIDTH, HEIGHT + 16, title, LEFT - 12, HEIGHT + 12, legend,
        format_html_join("", "{}", ((p,) for p in parts)),
    )  # fmt: skip
