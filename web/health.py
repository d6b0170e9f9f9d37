"""Learning health: how well closed incidents turn into postmortems and shared changes, per
team or repository/project over time, and the server-side SVG charts that show it.

Pure: the admin blueprint reads the store and hands over one `IncidentFacts` per closed
incident; everything here is arithmetic and markup. Nothing in these records names a
person — no authors, reviewers or action-item owners, only whether an item *has* an owner —
so no figure on the page can become a per-person count or ranking (the product must not
become a tool for blame). Groups are teams or projects, never people.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import Any

from markupsafe import Markup

WEEK = "week"
MONTH = "month"
BUCKETS = (WEEK, MONTH)
PERIODS = (90, 180)  # days the page offers
GROUP_BY = ("team", "project")
NO_TEAM = "(no team)"


# --- facts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemFacts:
    """One action item, reduced to what the figures need: never its owner's name."""

    has_owner: bool
    has_due: bool
    has_link: bool
    overdue: bool


@dataclass(frozen=True)
class IncidentFacts:
    """One closed incident that needed a postmortem, as the figures see it."""

    group: str  # a team or a project, never a person
    closed_at: datetime
    has_postmortem: bool  # a postmortem is linked
    first_postmortem_at: datetime | None = None  # first stored analysis of a postmortem
    postmortems: int = 0  # postmortems analysed
    flags: int = 0  # open flags over those postmortems' latest analyses
    items: tuple[ItemFacts, ...] = ()


def item_facts(raw: Mapping[str, Any], today: date) -> ItemFacts:
    """Reduce a stored action item (nlp.model.ActionItem.to_dict) to its facts.

    Overdue: a due date that could be read lies before `today` and the item is not ticked
    done. An unreadable due date counts as no due date rather than guessing.
    """
    due = _parse_date(raw.get("due"))
    owner = raw.get("owner")
    return ItemFacts(
        has_owner=bool(owner.strip()) if isinstance(owner, str) else bool(owner),
        has_due=due is not None,
        has_link=bool(raw.get("tracking")),
        overdue=due is not None and due < today and raw.get("done") is not True,
    )


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# --- buckets ----------------------------------------------------------------------------


def bucket_start(day: date, size: str) -> date:
    """The first day of the week (Monday) or month holding `day`."""
    if size == WEEK:
        return day - timedelta(days=day.weekday())
    if size == MONTH:
        return day.replace(day=1)
    raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")


def bucket_starts(today: date, days: int, size: str) -> list[date]:
    """Every bucket overlapping the `days` days up to and including `today`, oldest first.
    The first bucket may start before the window: it is counted from the window's start."""
    first = bucket_start(today - timedelta(days=days - 1), size)
    out = []
    current = first
    last = bucket_start(today, size)
    while current <= last:
        out.append(current)
        current = _next_bucket(current, size)
    return out


def _next_bucket(start: date, size: str) -> date:
    if size == WEEK:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_label(start: date, size: str) -> str:
    return f"{start.day} {start:%b}" if size == WEEK else f"{start:%b %Y}"


# --- figures ----------------------------------------------------------------------------


@dataclass
class Cell:
    """The figures of one group in one bucket (or over the whole window)."""

    closed: int = 0
    with_postmortem: int = 0
    days: list[float] = field(default_factory=list)  # close -> first postmortem analysis
    postmortems: int = 0
    flags: int = 0
    items: int = 0
    owned: int = 0
    dated: int = 0
    linked: int = 0
    overdue: int = 0

    def add(self, fact: IncidentFacts) -> None:
        self.closed += 1
        if fact.has_postmortem:
            self.with_postmortem += 1
        if fact.first_postmortem_at is not None:
            # An analysis stored before the close (a re-opened incident) counts as day 0.
            seconds = (fact.first_postmortem_at - fact.closed_at).total_seconds()
            self.days.append(max(0.0, seconds / 86400))
        self.postmortems += fact.postmortems
        self.flags += fact.flags
        for item in fact.items:
            self.items += 1
            self.owned += item.has_owner
            self.dated += item.has_due
            self.linked += item.has_link
            self.overdue += item.overdue

    @property
    def postmortem_share(self) -> float | None:
        return _share(self.with_postmortem, self.closed)

    @property
    def median_days(self) -> float | None:
        return statistics.median(self.days) if self.days else None

    @property
    def flags_per_postmortem(self) -> float | None:
        return self.flags / self.postmortems if self.postmortems else None

    @property
    def owner_share(self) -> float | None:
        return _share(self.owned, self.items)

    @property
    def due_share(self) -> float | None:
        return _share(self.dated, self.items)

    @property
    def link_share(self) -> float | None:
        return _share(self.linked, self.items)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Report:
    today: date
    days: int
    size: str
    since: date
    buckets: tuple[date, ...]
    labels: tuple[str, ...]
    groups: tuple[str, ...]  # most closed incidents first
    by_group: dict[str, tuple[Cell, ...]]  # group -> one cell per bucket
    overall: tuple[Cell, ...]
    totals: dict[str, Cell]  # group -> the whole window
    total: Cell


def compute(facts: Iterable[IncidentFacts], *, today: date, days: int, size: str) -> Report:
    """Bucket the incidents closed in the last `days` days (up to `today`) by close date."""
    if days < 1:
        raise ValueError("days must be positive")
    starts = bucket_starts(today, days, size)
    index = {start: i for i, start in enumerate(starts)}
    since = today - timedelta(days=days - 1)
    by_group: dict[str, list[Cell]] = {}
    overall = [Cell() for _ in starts]
    totals: dict[str, Cell] = {}
    total = Cell()
    for fact in facts:
        closed = fact.closed_at.date()
        if closed < since or closed > today:
            continue
        i = index[bucket_start(closed, size)]
        cells = by_group.setdefault(fact.group, [Cell() for _ in starts])
        cells[i].add(fact)
        overall[i].add(fact)
        totals.setdefault(fact.group, Cell()).add(fact)
        total.add(fact)
    groups = tuple(sorted(totals, key=lambda g: (-totals[g].closed, g.casefold())))
    return Report(
        today=today,
        days=days,
        size=size,
        since=since,
        buckets=tuple(starts),
        labels=tuple(bucket_label(s, size) for s in starts),
        groups=groups,
        by_group={g: tuple(by_group[g]) for g in groups},
        overall=tuple(overall),
        totals=totals,
        total=total,
    )


# --- formatting -------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# --- SVG charts -------------------------------------------------------------------------

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
WIDTH = 680
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 52, 170, 30, 42
MAX_X_LABELS = 9
LEGEND_CHARS = 24


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    dashed: bool = False


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value - 1e-9:
            return float(candidate)
    return float(10 ** (exponent + 1))


def _fmt_tick(value: float, is_percent: bool) -> str:
    if is_percent:
        return f"{value * 100:.0f}%"
    return f"{value:g}"  # 0.25, 2.5, 40: as many digits as the tick needs


def _short(name: str) -> str:
    return name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    is_percent: bool = False,
    unit: str = "",
) -> Markup:
    """A line chart as an inline SVG: one line per series, gaps where a value is None.

    Every text is escaped here (group names come from trackers); the result is Markup so
    a template includes it as is. Each point carries a <title> with its exact value.
    """
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = 1.0 if is_percent else _nice_ceiling(max(values, default=0.0))
    ticks = [top * i / 4 for i in range(5)]
    count = len(labels)

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if count == 1 else plot_w * i / (count - 1))

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * min(v, top) / top

    parts = [_svg_open(chart_id, title)]
    parts.append(f'<text class="chart-title" x="{LEFT}" y="18">{_e(title)}</text>')
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#d8dde2" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" '
            f'font-size="11">{_e(_fmt_tick(tick, is_percent))}</text>'
        )
    step = max(1, math.ceil(count / MAX_X_LABELS))
    for i, label in enumerate(labels):
        if i % step == 0 or i == count - 1:
            parts.append(
                f'<text class="tick" x="{x(i):.1f}" y="{TOP + plot_h + 16}" '
                f'text-anchor="middle" font-size="11">{_e(label)}</text>'
            )
    if not values:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" '
            'text-anchor="middle" font-size="13" fill="#5b6670">No data in this period</text>'
        )
    for n, s in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        for run in _runs(s.values):
            if len(run) > 1:
                points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} '
                    f'points="{points}"/>'
                )
        for i, v in enumerate(s.values):
            if v is None:
                continue
            shown = percent(v) if is_percent else f"{number(v)}{unit}"
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                f"<title>{_e(s.name)} · {_e(labels[i])}: {_e(shown)}</title></circle>"
            )
    parts.extend(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], *, unit: str = ""
) -> Markup:
    """Horizontal bars, one per label, the value written at the end of each bar."""
    row = 22
    height = TOP + row * max(1, len(labels)) + 12
    label_w = 180
    plot_w = WIDTH - label_w - 70
    top = _nice_ceiling(max(values, default=0.0))
    parts = [_svg_open(chart_id, title, height)]
    parts.append(f'<text class="chart-title" x="0" y="18">{_e(title)}</text>')
    if not labels:
        parts.append(
            f'<text class="empty" x="{label_w}" y="{TOP + 14}" font-size="13" fill="#5b6670">'
            "No data in this period</text>"
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        by = TOP + i * row
        width = plot_w * value / top if top else 0
        parts.append(
            f'<text class="tick" x="{label_w - 8}" y="{by + 15}" text-anchor="end" '
            f'font-size="12">{_e(_short(label))}<title>{_e(label)}</title></text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{by + 3}" width="{width:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[1]}"><title>{_e(label)}: {_e(f"{value:g}{unit}")}</title></rect>'
        )
        parts.append(
            f'<text class="value" x="{label_w + width + 6:.1f}" y="{by + 15}" '
            f'font-size="12">{_e(f"{value:g}")}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _svg_open(chart_id: str, title: str, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_e(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-labelledby="{_e(chart_id)}-title" font-family="system-ui, sans-serif">'
        f'<title id="{_e(chart_id)}-title">{_e(title)}</title>'
    )


def _legend(series: Sequence[Series]) -> list[str]:
    out = []
    x0 = WIDTH - RIGHT + 14
    for n, s in enumerate(series):
        ly = TOP + 6 + n * 18
        colour = PALETTE[n % len(PALETTE)]
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        out.append(
            f'<line x1="{x0}" x2="{x0 + 18}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="3"{dash}/>'
        )
        out.append(
            f'<text class="legend" x="{x0 + 24}" y="{ly + 4}" font-size="12">'
            f"{_e(_short(s.name))}<title>{_e(s.name)}</title></text>"
        )
    return out


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive non-None stretches, so a line breaks where a bucket has no data."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        if v is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, v))
    if current:
        runs.append(current)
    return runs


def _e(text: object) -> str:
    """XML escaping for text and attribute values (quotes included)."""
    return escape(str(text), quote=True)


# --- the page's charts ------------------------------------------------------------------

MAX_GROUP_LINES = 5  # more lines than this stop being readable at a glance


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    svg: Markup


def charts(report: Report) -> list[Chart]:
    """The learning-health charts: every group's figures over time (the busiest groups as
    lines, all groups together dashed), action-item quality overall, overdue items per
    group. The tables under them carry every group and every value."""
    shown = report.groups[:MAX_GROUP_LINES]

    def per_group(metric: Any) -> list[Series]:
        out = [Series("All groups", [metric(c) for c in report.overall], dashed=True)]
        out += [Series(g, [metric(c) for c in report.by_group[g]]) for g in shown]
        return out

    specs = [
        ("chart-postmortems", "Closed incidents with a linked postmortem",
         per_group(lambda c: c.postmortem_share), True, ""),
        ("chart-days", "Days from close to postmortem (median)",
         per_group(lambda c: c.median_days), False, " days"),
        ("chart-flags", "Flags per postmortem",
         per_group(lambda c: c.flags_per_postmortem), False, ""),
        ("chart-items", "Action items with an owner, a due date and a tracking link",
         [
             Series("with an owner", [c.owner_share for c in report.overall]),
             Series("with a due date", [c.due_share for c in report.overall]),
             Series("with a tracking link", [c.link_share for c in report.overall]),
         ], True, ""),
    ]
    out = [
        Chart(cid, title, line_chart(cid, title, report.labels, series, is_percent=pct, unit=unit))
        for cid, title, series, pct, unit in specs
    ]
    overdue_title = "Overdue action items (due date passed, not done)"
    out.append(
        Chart(
            "chart-overdue",
            overdue_title,
            bar_chart(
                "chart-overdue",
                overdue_title,
                list(report.groups),
                [report.totals[g].overdue for g in report.groups],
            ),
        )
    )
    return out
