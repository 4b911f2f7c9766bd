"""Server-rendered SVG charts of a campaign's page: recipients by outcome, delivery by
carrier, delivery reports per hour.

Each chart is markup (a str) for a template to place as it is (`|safe`: the one place
the console's templates use it): an <svg role="img"> named by its <title>, every text
escaped here (carrier names and labels
come from the store and the catalogs), no `style` attribute anywhere (the CSP has no
'unsafe-inline'): sizes and places are SVG attributes, colours the `chart-*` classes of
app.css. Every part of a bar carries its number in `data-value` (a part of 0 is not
drawn) and each bar its total in `data-total`, so the figures can be read back; the page
shows the same numbers in a table beside the chart.

No store and no request here: the page gives the figures (workflow_web) and the words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape as _escape

from campaign.outcomes import ACCEPTED_OUTCOMES, RESULT_OUTCOMES, Outcome

WIDTH = 640  # of the drawing (the SVG scales to its box: viewBox)
ROW = 26  # height of one horizontal bar's row
LABEL_WIDTH = 150  # the labels' column left of the horizontal bars
NOTE_WIDTH = 150  # the numbers' column right of them
TOP = 8
HOURS_HEIGHT = 180  # of the per-hour chart's plot area
MAX_HOURS = 72  # hours drawn at most (the latest); the table has them all
HOUR_LABELS = 12  # hour labels on the axis at most
MAX_COLUMN = 40.0  # width of an hour's column at most (a few hours: not a wall)


def escape(value: object) -> str:
    """`value` as text safe in SVG content and in a double-quoted attribute."""
    return _escape(str(value), quote=True)


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: `label` left, `parts` (css kind, value) stacked, `note` right."""

    label: str
    parts: tuple[tuple[str, int], ...]
    note: str

    @property
    def total(self) -> int:
        return sum(value for _, value in self.parts)


def _int(value: object) -> int:
    """A count from figures given as JSON-ready values (a missing one: 0)."""
    return int(value) if isinstance(value, int | float) else 0


def _num(value: float) -> str:
    """A coordinate, short ("12", "12.5")."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _svg(key: str, title: str, height: float, body: list[str]) -> str:
    title_id = f"chart-{key}-title"
    head = (
        f'<svg class="chart chart-{escape(key)}" role="img" aria-labelledby="{title_id}" '
        f'viewBox="0 0 {WIDTH} {_num(height)}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{title_id}">{escape(title)}</title>'
    )
    return head + "".join(body) + "</svg>"


def _empty(key: str, title: str, text: str) -> str:
    body = [f'<text class="chart-empty" x="0" y="{ROW - 8}">{escape(text)}</text>']
    return _svg(key, title, ROW + TOP, body)


def bar_chart(key: str, title: str, bars: Sequence[Bar], empty: str) -> str:
    """Horizontal (stacked) bars on one scale: the largest total fills the plot width."""
    if not bars or not any(bar.total for bar in bars):
        return _empty(key, title, empty)
    plot = WIDTH - LABEL_WIDTH - NOTE_WIDTH
    most = max(bar.total for bar in bars)
    body: list[str] = []
    for index, bar in enumerate(bars):
        y = TOP + index * ROW
        body.append(
            f'<g class="chart-bar" data-label="{escape(bar.label)}" data-total="{bar.total}">'
            f'<text class="chart-label" x="{LABEL_WIDTH - 8}" y="{y + ROW - 9}" '
            f'text-anchor="end">{escape(bar.label)}</text>'
        )
        x = float(LABEL_WIDTH)
        for kind, value in bar.parts:
            if not value:
                continue  # nothing to draw
            width = plot * value / most
            body.append(
                f'<rect class="chart-{escape(kind)}" x="{_num(x)}" y="{y + 4}" '
                f'width="{_num(width)}" height="{ROW - 8}" data-kind="{escape(kind)}" '
                f'data-value="{value}"></rect>'
            )
            x += width
        body.append(
            f'<text class="chart-note" x="{_num(x + 6)}" y="{y + ROW - 9}">'
            f"{escape(bar.note)}</text></g>"
        )
    return _svg(key, title, TOP * 2 + len(bars) * ROW, body)


# --------------------------------------------------------------------------- the three charts


def outcome_chart(
    counts: Mapping[str, int], *, title: str, word: Callable[[str], str], empty: str
) -> str:
    """Recipients by outcome: one bar per outcome that has any (SPEC's order)."""
    known = [str(o) for o in RESULT_OUTCOMES]
    order = known + sorted(k for k in counts if k not in known)  # an unknown word: shown too
    bars = [
        Bar(word(outcome), ((outcome, int(counts[outcome])),), str(int(counts[outcome])))
        for outcome in order
        if int(counts.get(outcome, 0)) > 0
    ]
    return bar_chart("outcomes", title, bars, empty)


#: The parts of a carrier's bar: the accepted outcomes, then everything else as "other".
CARRIER_PARTS: tuple[str, ...] = (*map(str, ACCEPTED_OUTCOMES), "other")


def carrier_parts(row: Mapping[str, object]) -> tuple[tuple[str, int], ...]:
    """(kind, rows) of one carrier: delivered, failed, pending, other (the rest)."""
    total = _int(row.get("rows"))
    accepted = [(str(o), _int(row.get(str(o)))) for o in ACCEPTED_OUTCOMES]
    other = total - sum(value for _, value in accepted)
    return (*accepted, ("other", max(0, other)))


def rate_text(rate: object) -> str:
    """A delivery rate as a percentage with one decimal ("97.5%"), "–" for none."""
    if rate is None or not isinstance(rate, int | float) or math.isnan(rate):
        return "–"
    return f"{rate * 100:.1f}%"


def carrier_chart(
    carriers: Sequence[Mapping[str, object]],
    *,
    title: str,
    word: Callable[[str], str],
    empty: str,
) -> str:
    """Delivery by carrier: each carrier's recipients stacked delivered / failed / pending /
    other, with "delivered of rows (rate of the accepted)" at the end."""
    bars = []
    for row in carriers:
        parts = carrier_parts(row)
        delivered = dict(parts)[str(Outcome.DELIVERED)]
        rate = rate_text(row.get("delivery_rate"))
        note = f"{delivered} / {_int(row.get('rows'))} ({rate})"
        bars.append(Bar(word(str(row.get("carrier") or "")), parts, note))
    return bar_chart("carriers", title, bars, empty)


def hour_chart(
    hours: Sequence[Mapping[str, object]],
    *,
    title: str,
    empty: str,
) -> str:
    """Delivery reports per hour (China time): a column of reports per hour with its
    delivered part inside; the latest MAX_HOURS hours."""
    shown = list(hours)[-MAX_HOURS:]
    if not shown or not any(_int(h.get("reports")) for h in shown):
        return _empty("hours", title, empty)
    left, bottom = 44, 22
    plot_w, plot_h = WIDTH - left - 8, HOURS_HEIGHT
    most = max(_int(h.get("reports")) for h in shown)
    step = plot_w / len(shown)
    width = min(MAX_COLUMN, max(1.0, step * 0.8))
    every = max(1, math.ceil(len(shown) / HOUR_LABELS))
    base = TOP + plot_h
    body = [
        f'<line class="chart-axis" x1="{left}" y1="{base}" x2="{WIDTH - 8}" y2="{base}"></line>',
        f'<text class="chart-label" x="{left - 6}" y="{TOP + 10}" text-anchor="end">{most}</text>',
        f'<text class="chart-label" x="{left - 6}" y="{base}" text-anchor="end">0</text>',
    ]
    for index, hour in enumerate(shown):
        reports = _int(hour.get("reports"))
        delivered = _int(hour.get("delivered"))
        label = str(hour.get("hour", ""))
        x = left + index * step + (step - width) / 2
        tall = plot_h * reports / most
        short = plot_h * delivered / most
        body.append(
            f'<g class="chart-hour" data-label="{escape(label)}">'
            f'<rect class="chart-reports" x="{_num(x)}" y="{_num(base - tall)}" '
            f'width="{_num(width)}" height="{_num(tall)}" data-kind="reports" '
            f'data-value="{reports}"></rect>'
            f'<rect class="chart-delivered" x="{_num(x)}" y="{_num(base - short)}" '
            f'width="{_num(width)}" height="{_num(short)}" data-kind="delivered" '
            f'data-value="{delivered}"></rect>'
        )
        if index % every == 0:
            body.append(
                f'<text class="chart-label" x="{_num(x + width / 2)}" y="{base + bottom - 6}" '
                f'text-anchor="middle">{escape(label[11:16] or label)}</text>'
            )
        body.append("</g>")
    return _svg("hours", title, base + bottom, body)


__all__ = [
    "CARRIER_PARTS",
    "Bar",
    "bar_chart",
    "carrier_chart",
    "carrier_parts",
    "hour_chart",
    "outcome_chart",
    "rate_text",
]
