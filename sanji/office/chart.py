"""A server-rendered SVG chart: volume (bars) and on-time rate (lines) per period, per township.

No script, no fonts or files fetched from anywhere: the SVG is text in the page. Every
number drawn is also in the table under the chart, so nothing is only in the picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from sanji.office.stats import Series

PALETTE = ("#9b1c1c", "#1f5fa8", "#1a7f37", "#b35900", "#6b3fa0", "#0f7b7b", "#8a6d00", "#555555")
WIDTH, HEIGHT = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 50, 50, 20, 70
LEGEND_COLUMNS, LEGEND_STEP, LEGEND_LINE = 6, 140, 14  # a legend entry's slot: 14 px of swatch, 126 px of text
LEGEND_CHARS = 10  # a longer name is cut with "…" so it stays in its slot (11 px type: ~11 CJK characters fit)


def _short(name: str) -> str:
    return name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"


def volume_ticks(peak: int) -> list[int]:
    """The volume axis's labels: 0, the peak and a whole midpoint, none twice (a peak of 1 reads 0 and 1,
    not 0, 0 and 1)."""
    return sorted({0, peak // 2, peak})


def svg_chart(
    data: Series,
    *,
    title: str = "办件量与按时办结率 Volume and on-time rate",
    names: Mapping[str, str] | None = None,
) -> str:
    """``names``: each node's display name by id (``sanji.web.documents.node_name``), drawn in the legend and the
    bars' tooltips as the table under the chart names them; an id without one is drawn as it is."""
    periods = data.periods
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    # Two legend lines fit the bottom margin; a county of more than 12 townships grows the picture downwards.
    legend_lines = -(-len(data.townships) // LEGEND_COLUMNS)
    height = HEIGHT + max(0, legend_lines - 2) * LEGEND_LINE
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>',
    ]
    if not periods:
        parts.append(f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle">无数据 No data</text></svg>')
        return "".join(parts)
    peak = max((v for vs in data.volume.values() for v in vs), default=0) or 1
    slot = plot_w / len(periods)
    n = max(1, len(data.townships))
    bar_w = min(48.0, max(1.0, slot * 0.8 / n))
    group_left = (slot - bar_w * n) / 2  # bars of one period centred in its slot
    # axes: volume on the left (whole counts, each drawn once), rate on the right
    for value in volume_ticks(peak):
        y = TOP + plot_h * (1 - value / peak)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{value}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<text x="{LEFT + plot_w + 6}" y="{y + 4:.1f}" font-size="11">{round(100 * frac)}%</text>')
    for i, period in enumerate(periods):
        x = LEFT + slot * i + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11">{escape(period)}</text>'
        )
    for t_index, township in enumerate(data.townships):
        colour = PALETTE[t_index % len(PALETTE)]
        name = (names or {}).get(township) or township
        for i, value in enumerate(data.volume[township]):
            if not value:
                continue
            h = plot_h * value / peak
            x = LEFT + slot * i + group_left + bar_w * t_index
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}" fill-opacity="0.45"><title>{escape(name)} {escape(periods[i])}: '
                f"{value} 件</title></rect>"
            )
        points = [
            (LEFT + slot * i + slot / 2, TOP + plot_h * (1 - rate))
            for i, rate in enumerate(data.on_time_rate[township])
            if rate is not None
        ]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline class="rate" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x, y in points:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        lx = LEFT + (t_index % LEGEND_COLUMNS) * LEGEND_STEP
        ly = HEIGHT - 30 + (t_index // LEGEND_COLUMNS) * LEGEND_LINE
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
        # the whole name and the id in the entry's tooltip; the table under the chart has both too
        said = name if name == township else f"{name} {township}"
        parts.append(
            f'<text class="legend" x="{lx + 14}" y="{ly}" font-size="11" data-node="{escape(township)}">'
            f"<title>{escape(said)}</title>{escape(_short(name))}</text>"
        )
    parts.append(
        f'<text x="{LEFT}" y="{height - 4}" font-size="11" fill="#555">柱: 办件量 bars: volume · '
        "线: 按时办结率 lines: on-time rate</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
