"""What every page shares: the database, the service client, cached queries, empty and error states.

Thin on purpose: the SQL, the period logic, the formatting and the service states live in
titans_assets/lib/dashboard and are unit-tested there.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard.periods import (
    DEFAULT_PRESET,
    PRESETS,
    Period,
    preset_period,
    previous_period,
)
from titans_assets.lib.dashboard.service import Outcome, ServiceClient
from titans_assets.lib.db import Database, DatabaseError, get_database
from titans_assets.lib.settings import Settings

TTL = 60  # seconds a query result is reused across reruns (new data shows within a minute, or on Refresh)
EMPTY = (
    "No data yet — drop CSVs into data/raw or run `titans demo` (then `titans materialize` builds the "
    "marts this dashboard reads)."
)


def settings() -> Settings:
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def _database(url: str | None, home: str) -> Database:
    return get_database(
        Settings.from_env({**os.environ, "TITANS_HOME": home, "TITANS_DATABASE_URL": url or ""})
    )


def database() -> Database:
    """The configured database, or an E001 line and the page stops."""
    s = settings()
    try:
        db = _database(s.database_url, str(s.home))
        db.ping()
        return db
    except DatabaseError as exc:
        st.error(str(exc))
        st.stop()


def client() -> ServiceClient:
    return ServiceClient.from_env(os.environ)


def show_outcome(outcome: Outcome, what: str) -> None:
    """A failed service call, as what it is (never a number in its place)."""
    text = f"**{what}: {outcome.headline}.** {outcome.line()}"
    if outcome.state in ("down", "error"):
        st.error(text)
    else:
        st.warning(text)


def require_data(db: Database) -> Q.DataBounds:
    """The data's bounds, or the empty state and the page stops."""
    bounds = cached(Q.data_bounds, db)
    if bounds is None:
        landing = settings().landing_dir
        st.info(EMPTY + f"\n\nLanding folder: `{_relative(landing)}`")
        st.stop()
    return bounds


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@st.cache_data(ttl=TTL, show_spinner=False)
def _cached(name: str, url: str, *args, **kwargs):
    fn = getattr(Q, name)
    return fn(Database(url), *args, **kwargs)


def cached(fn, db: Database, *args, **kwargs):
    """Q.fn(db, ...) through Streamlit's data cache (keyed by the function, the database and the args)."""
    return _cached(fn.__name__, db.url, *args, **kwargs)


def period_picker(bounds: Q.DataBounds, key: str, default: str = DEFAULT_PRESET) -> Period:
    """A preset (anchored on the latest transaction) or a custom range; shows what it is compared with."""
    choice = st.sidebar.selectbox(
        "Period", [*PRESETS, "Custom"], index=[*PRESETS, "Custom"].index(default), key=f"{key}_preset"
    )
    if choice == "Custom":
        picked = st.sidebar.date_input(
            "From / to",
            (max(bounds.first, bounds.last.replace(day=1)), bounds.last),
            min_value=bounds.first,
            max_value=bounds.last,
            key=f"{key}_range",
        )
        if not isinstance(picked, (tuple, list)) or len(picked) != 2:
            st.sidebar.caption("Pick the last day of the range.")
            st.stop()
        period = Period(picked[0], picked[1])
    else:
        period = preset_period(choice, bounds.last, bounds.first)
    st.sidebar.caption(f"{period.label()} ({period.days} days); data {bounds.first} .. {bounds.last}")
    return period


def comparison(period: Period, bounds: Q.DataBounds) -> Period | None:
    """The previous period, unless it lies entirely before the first transaction (nothing to compare)."""
    prev = previous_period(period)
    return None if prev.end < bounds.first else prev


def sidebar_service_status() -> None:
    """The service's public /health in the sidebar of every page (cached briefly)."""
    c = client()
    out = _health(c.base_url)
    with st.sidebar:
        if out.ok:
            models = out.body.get("models", {})
            ready = [k for k, v in models.items() if v == "ready"]
            st.caption(
                f"Service {c.base_url}: {out.body.get('status')} ({len(ready)}/{len(models)} models ready)"
            )
        else:
            st.caption(f"Service {c.base_url}: {out.headline}")
        if st.button("Refresh data", key="refresh"):
            st.cache_data.clear()
            st.rerun()


@st.cache_data(ttl=10, show_spinner=False)
def _health(base_url: str) -> Outcome:
    return ServiceClient(base_url).health()


@st.cache_data(ttl=TTL, show_spinner=False)
def _champions(url: str, home: str) -> dict:
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.status import champion_summary

    s = Settings.from_env({**os.environ, "TITANS_HOME": home})
    return champion_summary(Registry.from_settings(s, Database(url)))


def champions() -> dict | None:
    """champion_summary of the registry (as `titans status` lists it), or the E002 line and None."""
    try:
        return _champions(database().url, str(settings().home))
    except Exception as exc:  # noqa: BLE001 - the registry's failures are shown as one line
        st.error(one_line(exc, "E002"))
        return None


def one_line(exc: BaseException, code: str) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return text if text[:1] == "E" and text[1:4].isdigit() else f"{code} {type(exc).__name__}: {text}"
