"""Models: per model, every training's promotion decision over time (the challenger beside its best
baseline and the then-champion on the same holdout, with the reason), the latest challenger against
the champion metric by metric, feature importance, and calibration or interval coverage.
Everything is read from the MLflow registry and runs (lib/dashboard/models.py)."""

import os

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from titans_assets.dashboard.common import champions, database, one_line, settings
from titans_assets.lib.dashboard import models as M
from titans_assets.lib.ml.catalog import SPECS

TTL = 60


def _registry(url: str, home: str):
    from titans_assets.lib.db import Database
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.settings import Settings

    return Registry.from_settings(Settings.from_env({**os.environ, "TITANS_HOME": home}), Database(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def _trainings(url: str, home: str, name: str) -> list[M.Training]:
    return M.read_trainings(_registry(url, home), name)


@st.cache_data(ttl=TTL, show_spinner=False)
def _importance(url: str, home: str, run_id: str) -> dict | None:
    return M.read_importance(_registry(url, home), run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def _plot(url: str, home: str, run_id: str, path: str) -> bytes | None:
    return M.read_artifact_bytes(_registry(url, home), run_id, path)


def _num(v) -> str:
    return "—" if v is None else f"{v:,.4f}"


st.title("Models")
db = database()
home = str(settings().home)
labels = {f"{s.key} ({s.name})": s for s in SPECS}
spec = labels[st.sidebar.selectbox("Model", list(labels), key="models_model")]
models = champions()
if models is None:
    st.stop()
entry = models.get(spec.key) or {}
try:
    trainings = _trainings(db.url, home, spec.name)
except Exception as exc:  # noqa: BLE001 - the registry's failures are one line
    st.error(one_line(exc, "E002"))
    st.stop()
if not trainings:
    st.info(f"No training of {spec.name} yet: `titans materialize` trains the four models.")
    st.stop()

primary, higher = spec.primary_metric, spec.higher_is_better
champion_version = entry.get("champion")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Champion", f"v{champion_version} ({entry.get('model_kind')})" if champion_version else "none")
c2.metric(f"Champion {primary}", _num(entry.get("value")))
c3.metric("Best baseline", f"{entry.get('best_baseline') or '—'}: {_num(entry.get('best_baseline_value'))}")
c4.metric("Trainings", str(sum(t.stage == "challenger" for t in trainings)))
st.caption(
    f"{primary}: {'higher' if higher else 'lower'} is better. "
    + (f"Champion since: {entry.get('promotion_reason')}" if entry.get("promotion_reason") else "")
)

# ---- every decision over time
st.subheader("Promotion decisions over time")
history = pd.DataFrame(M.history_rows(trainings, primary, higher, champion_version))
if history.empty:
    st.info("No challenger training recorded yet.")
else:
    x = pd.to_datetime(history["started"])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=history["challenger"],
            mode="lines+markers",
            name="challenger",
            marker=dict(
                size=[14 if p else 8 for p in history["promoted"].fillna(False)],
                symbol=["star" if p else "circle" for p in history["promoted"].fillna(False)],
            ),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=history["best_baseline_value"],
            mode="lines+markers",
            name="best baseline",
            line=dict(dash="dash"),
        )
    )
    if history["champion_same_holdout"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=history["champion_same_holdout"],
                mode="markers",
                name="champion on the same holdout",
                marker=dict(symbol="diamond", size=10),
            )
        )
    fig.update_layout(
        height=360, margin=dict(l=0, r=0, t=10, b=0), yaxis_title=primary, legend=dict(orientation="h")
    )
    st.plotly_chart(fig, width="stretch")
    shown = history.rename(
        columns={
            "challenger": f"challenger {primary}",
            "best_baseline_value": f"baseline {primary}",
            "champion_same_holdout": f"champion {primary} (same holdout)",
        }
    )
    st.dataframe(shown.drop(columns=["run_id"]).iloc[::-1], hide_index=True, width="stretch")
served = M.served_rows(trainings, primary)
if served:
    st.markdown("**What served, and why** (the reason recorded when the `champion` alias moved)")
    st.dataframe(pd.DataFrame(served).iloc[::-1], hide_index=True, width="stretch")

# ---- the latest challenger against the champion, same holdout
challengers = [t for t in trainings if t.stage == "challenger"]
latest = challengers[-1] if challengers else None
st.subheader("Challenger vs champion, same holdout")
if latest is None:
    st.info("No challenger yet.")
else:
    st.caption(
        f"Latest training {latest.started} (v{latest.version}): {latest.decision or 'no decision recorded'}"
    )
    comparison = pd.DataFrame(M.holdout_comparison(latest.metrics, primary))
    st.dataframe(comparison, hide_index=True, width="stretch")

# ---- feature importance
st.subheader("Feature importance (permutation, on the holdout)")
champion_run = entry.get("run_id")
runs = [(f"champion v{champion_version}", champion_run)] if champion_run else []
if latest is not None and latest.run_id != champion_run:
    runs.append((f"latest challenger v{latest.version}", latest.run_id))
cols = st.columns(max(1, len(runs)))
for col, (label, run_id) in zip(cols, runs, strict=False):
    artifact = _importance(db.url, home, run_id)
    rows = M.importance_rows(artifact)
    with col:
        st.markdown(f"**{label}**")
        if rows:
            frame = pd.DataFrame(rows)
            bar = go.Figure(
                go.Bar(
                    x=frame["importance"],
                    y=frame["feature"],
                    orientation="h",
                    error_x=dict(type="data", array=frame["std"].fillna(0)),
                )
            )
            bar.update_layout(
                height=60 + 40 * len(frame),
                margin=dict(l=0, r=0, t=10, b=0),
                xaxis_title=f"{primary} worse when shuffled",
                yaxis=dict(autorange="reversed"),
            )
            st.plotly_chart(bar, width="stretch")
            st.caption(f"{artifact['rows']} holdout rows, {artifact['repeats']} shuffles per column.")
        else:
            st.info(
                (artifact or {}).get("reason")
                or "No feature importance logged with this run (trained "
                "before it was computed, or a served baseline)."
            )

# ---- calibration / interval coverage
quality = M.QUALITY.get(spec.key, {})
if quality.get("metric"):
    st.subheader("Calibration" if spec.key == "category" else "Interval coverage")
    series = pd.DataFrame(M.quality_series(trainings, spec.key))
    if series.empty:
        st.info(f"No training logged {quality['metric']}.")
    else:
        line = go.Figure(
            go.Scatter(
                x=pd.to_datetime(series["started"]),
                y=series["value"],
                mode="lines+markers",
                name=quality["metric"],
            )
        )
        if series["nominal"].notna().any():
            line.add_trace(
                go.Scatter(
                    x=pd.to_datetime(series["started"]),
                    y=series["nominal"],
                    mode="lines",
                    name="nominal level",
                    line=dict(dash="dot"),
                )
            )
        line.update_layout(height=300, margin=dict(l=0, r=0, t=10, b=0), yaxis_title=quality["label"])
        st.plotly_chart(line, width="stretch")
        last = series.iloc[-1]
        st.caption(
            f"Latest: {quality['metric']} {last['value']:.3f}"
            + (f" at a nominal {last['nominal']:.0%}" if pd.notna(last["nominal"]) else "")
        )
# The champion's plot; a served baseline logs none, then the latest challenger's (named as such).
for label, run_id in runs:
    image = _plot(db.url, home, run_id, quality["plot"]) if quality.get("plot") else None
    if image:
        st.image(image, caption=f"{quality['plot']} of the {label} (from its training run)")
        break
