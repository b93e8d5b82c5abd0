"""Numbers as the dashboard prints them. Exports carry no currency, so amounts have none either."""

from __future__ import annotations

import math

from titans_assets.lib.dashboard.periods import Change

DASH = "–"  # shown where there is no value (never 0, which would be a made-up number)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def money(value: float | None, signed: bool = False) -> str:
    """1234.5 -> '1,234.50'; signed: '+1,234.50' / '-1,234.50'."""
    if _missing(value):
        return DASH
    value = round(float(value), 2) + 0.0  # no '-0.00'
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def percent(value: float | None, digits: int = 1, signed: bool = False) -> str:
    """0.1234 -> '12.3%'."""
    if _missing(value):
        return DASH
    return f"{100 * float(value):+.{digits}f}%" if signed else f"{100 * float(value):.{digits}f}%"


def count(value: int | None) -> str:
    return DASH if value is None else f"{int(value):,}"


def metric_delta(change: Change) -> str | None:
    """The delta st.metric shows under a value: '+120.00 (+8.3%)', or None without a comparison."""
    if change.delta is None:
        return None
    pct = change.pct
    return money(change.delta, signed=True) + (f" ({percent(pct, signed=True)})" if pct is not None else "")


def delta_color(higher_is_better: bool) -> str:
    """st.metric's delta_color: more spending is shown red, more income green."""
    return "normal" if higher_is_better else "inverse"


def score(value: float | None) -> str:
    return DASH if _missing(value) else f"{float(value):.3f}"


def metric_value(value: float | None) -> str:
    """A model metric: 4 significant digits, percentages left to the caller."""
    if _missing(value):
        return DASH
    return f"{float(value):.4g}"


def reasons(items: list[str] | None) -> str:
    return "; ".join(items) if items else DASH


def interval(lower: float | None, upper: float | None, level: float | None = None) -> str:
    """'-61.20 .. -48.80 (90%)'."""
    text = f"{money(lower)} .. {money(upper)}"
    return text + (f" ({percent(level, 0)})" if not _missing(level) else "")
