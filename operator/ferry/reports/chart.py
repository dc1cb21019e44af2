"""A horizontal bar chart as inline SVG, written by hand: no plotting dependency."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

_BAR, _GAP, _LABEL, _WIDTH = 18, 6, 180, 320    # pixels: bar height, gap, label, bars


def bar_chart(title: str, bars: Sequence[tuple[str, int]]) -> str:
    """An <svg> element: one labelled bar per (label, value), longest = the widest bar."""
    top = max((value for _, value in bars), default=0) or 1
    height = 24 + len(bars) * (_BAR + _GAP)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_LABEL + _WIDTH + 60}"'
             f' height="{height}" aria-label="{escape(title)}">',
             f'<title>{escape(title)}</title>',
             f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>']
    for row, (label, value) in enumerate(bars):
        y = 24 + row * (_BAR + _GAP)
        width = round(_WIDTH * value / top)
        parts += [f'<text x="{_LABEL - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>',
                  f'<rect x="{_LABEL}" y="{y}" width="{width}" height="{_BAR}" fill="#3b6ea8"/>',
                  f'<text x="{_LABEL + width + 4}" y="{y + 13}">{value}</text>']
    parts.append("</svg>")
    return "\n".join(parts)
