"""A server-rendered SVG chart: volume (bars) and on-time rate (lines) per period, per township.

No script, no fonts or files fetched from anywhere: the SVG is text in the page. Every
number drawn is also in the table under the chart, so nothing is only in the picture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from sanji.office.stats import Series

PALETTE = ("#9b1c1c", "#1f5fa8", "#1a7f37", "#b35900", "#6b3fa0", "#0f7b7b", "#8a6d00", "#555555")
LEGEND_CHARS = 10  # a longer name is cut with "…" so it stays in its slot (~11 CJK characters fit a slot)


@dataclass(frozen=True)
class Layout:
    """One drawing of the chart. An SVG scales its text with its box, so a 900-wide drawing squeezed into a
    phone's 360 px draws 11-unit type at 4 px: a phone gets its own narrow drawing whose type stays ≥ 11 px."""

    name: str  # the svg's class: the page shows ``desk`` or ``phone`` by the window's width
    width: int
    plot_h: int
    left: int
    right: int
    font: int
    legend_left: int
    legend_columns: int
    legend_step: int  # a legend entry's slot: its swatch and LEGEND_CHARS of text at ~1 em each
    legend_line: int
    legend_offset: int  # from the plot's bottom to the first legend line
    caption_gap: int  # from the second legend line to the caption
    caption_lines: tuple[str, ...]


TOP = 20
CAPTION = ("柱: 办件量 bars: volume", "线: 按时办结率 lines: on-time rate")
DESK = Layout(
    name="desk", width=900, plot_h=230, left=50, right=50, font=11, legend_left=50, legend_columns=6,
    legend_step=140, legend_line=14, legend_offset=40, caption_gap=12, caption_lines=(" · ".join(CAPTION),),
)  # fmt: skip
# 360 units drawn ~340-365 px wide on a 390 px phone: 13-unit type reads at 12-13 px
PHONE = Layout(
    name="phone", width=360, plot_h=180, left=40, right=40, font=13, legend_left=8, legend_columns=2,
    legend_step=175, legend_line=17, legend_offset=40, caption_gap=22, caption_lines=CAPTION,
)  # fmt: skip


def _short(name: str) -> str:
    return name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"


def volume_ticks(peak: int) -> list[int]:
    """The volume axis's labels: 0, the peak and a whole midpoint, none twice (a peak of 1 reads 0 and 1,
    not 0, 0 and 1)."""
    return sorted({0, peak // 2, peak})


def label_every(periods: list[str], slot: float, font: int) -> int:
    """Draw every n-th period's label so that none overlaps the next (a label's width: ~0.6 em a character)."""
    widest = max((len(p) for p in periods), default=0) * font * 0.6 + font / 2
    return max(1, math.ceil(widest / slot)) if slot > 0 else 1


def svg_chart(
    data: Series,
    *,
    title: str = "办件量与按时办结率 Volume and on-time rate",
    names: Mapping[str, str] | None = None,
    layout: Layout = DESK,
) -> str:
    """``names``: each node's display name by id (``sanji.web.documents.node_name``), drawn in the legend and the
    bars' tooltips as the table under the chart names them; an id without one is drawn as it is. ``layout``:
    the desk's wide drawing or a phone's narrow one (``PHONE``)."""
    periods = data.periods
    at = layout
    left, font = at.left, at.font
    plot_w = at.width - at.left - at.right
    plot_h = at.plot_h
    bottom = TOP + plot_h
    # Two legend lines fit the bottom margin; a county with more townships grows the picture downwards.
    legend_lines = -(-len(data.townships) // at.legend_columns)
    caption_y = bottom + at.legend_offset + (max(2, legend_lines) - 1) * at.legend_line + at.caption_gap
    height = caption_y + (len(at.caption_lines) - 1) * at.legend_line + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {at.width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="chart {at.name}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>',
    ]
    if not periods:
        parts.append(
            f'<text x="{at.width // 2}" y="{height // 2}" text-anchor="middle" font-size="{font}">无数据 No data</text>'
            "</svg>"
        )
        return "".join(parts)
    peak = max((v for vs in data.volume.values() for v in vs), default=0) or 1
    slot = plot_w / len(periods)
    n = max(1, len(data.townships))
    bar_w = min(48.0, max(1.0, slot * 0.8 / n))
    group_left = (slot - bar_w * n) / 2  # bars of one period centred in its slot
    lift = round(font * 0.35)  # a label's baseline below its value's line, so the line runs through its middle
    # axes: volume on the left (whole counts, each drawn once), rate on the right
    for value in volume_ticks(peak):
        y = TOP + plot_h * (1 - value / peak)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + lift:.1f}" text-anchor="end" font-size="{font}">{value}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<text x="{left + plot_w + 6}" y="{y + lift:.1f}" font-size="{font}">{round(100 * frac)}%</text>')
    every = label_every(periods, slot, font)
    for i, period in enumerate(periods):
        if i % every:
            continue  # its bars are drawn; its label would run into its neighbours' (each is in the table)
        x = left + slot * i + slot / 2
        parts.append(
            f'<text class="period" x="{x:.1f}" y="{bottom + font + 5}" text-anchor="middle" font-size="{font}">'
            f"{escape(period)}</text>"
        )
    for t_index, township in enumerate(data.townships):
        colour = PALETTE[t_index % len(PALETTE)]
        name = (names or {}).get(township) or township
        for i, value in enumerate(data.volume[township]):
            if not value:
                continue
            h = plot_h * value / peak
            x = left + slot * i + group_left + bar_w * t_index
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{bottom - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}" fill-opacity="0.45"><title>{escape(name)} {escape(periods[i])}: '
                f"{value} 件</title></rect>"
            )
        points = [
            (left + slot * i + slot / 2, TOP + plot_h * (1 - rate))
            for i, rate in enumerate(data.on_time_rate[township])
            if rate is not None
        ]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline class="rate" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x, y in points:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        lx = at.legend_left + (t_index % at.legend_columns) * at.legend_step
        ly = bottom + at.legend_offset + (t_index // at.legend_columns) * at.legend_line
        parts.append(f'<rect x="{lx}" y="{ly - font + 2}" width="{font - 1}" height="{font - 1}" fill="{colour}"/>')
        # the whole name and the id in the entry's tooltip; the table under the chart has both too
        said = name if name == township else f"{name} {township}"
        parts.append(
            f'<text class="legend" x="{lx + font + 3}" y="{ly}" font-size="{font}" data-node="{escape(township)}">'
            f"<title>{escape(said)}</title>{escape(_short(name))}</text>"
        )
    for line, caption in enumerate(at.caption_lines):
        parts.append(
            f'<text x="{at.legend_left}" y="{caption_y + line * at.legend_line}" font-size="{font}" fill="#555">'
            f"{caption}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
