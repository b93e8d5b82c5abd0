"""Reporting periods (inclusive date ranges) and the period each is compared with.

Presets are anchored on the latest transaction in the data, not on today: an export that ends last
Tuesday still has a meaningful "last 30 days". The comparison period follows the period's shape:

- whole calendar months (e.g. last month, Jan-Mar) -> the same number of months just before;
- month to date (the 1st .. day d) -> the 1st .. day d of the previous month (clamped to its length);
- year to date (Jan 1 .. d) -> Jan 1 .. the same day of the previous year;
- anything else (last 30 days, a custom range) -> the same number of days just before.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

PRESETS = (
    "Last 30 days",
    "Last 90 days",
    "Month to date",
    "Last month",
    "Year to date",
    "Last 12 months",
    "All time",
)
DEFAULT_PRESET = "Last 30 days"


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive

    def __post_init__(self):
        if self.end < self.start:
            raise ValueError(f"E003 invalid input: period end {self.end} is before its start {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()} .. {self.end.isoformat()}"

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by `months`, clamped to the target month's length (Mar 31 - 1 month = Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def preset_period(name: str, anchor: dt.date, first: dt.date | None = None) -> Period:
    """The period a preset means when the latest data is `anchor` (`first`: the earliest, for All time)."""
    if name == "Last 30 days":
        return Period(anchor - dt.timedelta(days=29), anchor)
    if name == "Last 90 days":
        return Period(anchor - dt.timedelta(days=89), anchor)
    if name == "Month to date":
        return Period(anchor.replace(day=1), anchor)
    if name == "Last month":
        last = anchor.replace(day=1) - dt.timedelta(days=1)
        return Period(last.replace(day=1), last)
    if name == "Year to date":
        return Period(anchor.replace(month=1, day=1), anchor)
    if name == "Last 12 months":
        return Period(add_months(anchor, -12) + dt.timedelta(days=1), anchor)
    if name == "All time":
        return Period(min(first or anchor, anchor), anchor)
    raise ValueError(f"E003 invalid input: unknown period {name!r} (known: {', '.join(PRESETS)})")


def previous_period(period: Period) -> Period:
    """The period `period` is compared with (see the module docstring)."""
    s, e = period.start, period.end
    if s.day == 1 and e == month_end(e):  # whole calendar months
        months = (e.year - s.year) * 12 + e.month - s.month + 1
        start = add_months(s, -months)
        return Period(start, month_end(add_months(start, months - 1)))
    if s.day == 1 and (s.year, s.month) == (e.year, e.month):  # month to date
        start = add_months(s, -1)
        return Period(start, start.replace(day=min(e.day, month_end(start).day)))
    if (s.month, s.day) == (1, 1) and s.year == e.year:  # year to date
        return Period(s.replace(year=s.year - 1), add_months(e, -12))
    return Period(s - dt.timedelta(days=period.days), s - dt.timedelta(days=1))


@dataclass(frozen=True)
class Change:
    """A value beside the value it is compared with."""

    current: float
    previous: float | None

    @property
    def delta(self) -> float | None:
        return None if self.previous is None else self.current - self.previous

    @property
    def pct(self) -> float | None:
        """Relative change; None when there is nothing to compare with or the previous value is 0."""
        if self.previous is None or self.previous == 0:
            return None
        return (self.current - self.previous) / abs(self.previous)


def compare(current: dict[str, float], previous: dict[str, float] | None) -> dict[str, Change]:
    """Per key: the current value beside the previous one (None when there is no previous period)."""
    return {
        k: Change(float(v), None if previous is None else float(previous.get(k, 0.0)))
        for k, v in current.items()
    }
