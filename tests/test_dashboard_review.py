"""The Review page and the category change on the Transactions page, for real: a generated ledger
whose personal card export has no categories -> the loader, dbt and the rules asset into a scratch
PostgreSQL database -> a category model trained on the other accounts' labels scores every expense
into predictions.transaction_categories (lib/ml/batch.py, as the prediction asset writes it) -> the
enriched mart. Streamlit's AppTest clicks the page; every click is held to the rows it wrote in
app.category_corrections (actor 'dashboard') and app.category_rules. One headless-Chromium test runs
`titans dashboard` and clicks Accept. The fixtures and helpers are test_dashboard_app.py's."""

# ruff: noqa: F811 - the fixtures imported from test_dashboard_app are named by the tests' arguments
from __future__ import annotations

import csv

import pytest
from conftest import TEST_TODAY, scratch_database, world_env
from support import free_port
from test_dashboard_app import _sql, app, dashboard_url, metrics, texts  # noqa: F401 - fixtures reused

from titans_assets import runner
from titans_assets.lib.dashboard import review as RV
from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate

pytestmark = pytest.mark.integration

UNLABELLED_FILE = "personal_card.csv"


def _strip_categories(path) -> int:
    """Blank the Category column of one export (a bank file without categories); returns the rows blanked."""
    with path.open(newline="") as f:
        records = list(csv.reader(f))
    i = [h.strip().lower() for h in records[0]].index("category")
    n = 0
    for rec in records[1:]:
        if len(rec) > i and rec[i]:
            rec[i], n = "", n + 1
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(records)
    return n


def _score_unlabelled(db: Database) -> int:
    """A category model trained on the labelled rows scores every expense into the predictions table."""
    from titans_assets.lib.ml import batch, category, data

    frame = data.load_transactions(db)
    model = category.train(frame).model
    return batch.write_categories(db, batch.score_categories(model, frame), "1")


@pytest.fixture(scope="module")
def world(embedded_db: Database, tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    root.chmod(0o755)
    landing = root / "data" / "raw"
    generate(landing, rows=900, seed=5, end_date=TEST_TODAY, labels_dir=root / "data" / "labels")
    assert _strip_categories(landing / UNLABELLED_FILE) > 50
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as mp:
        env = world_env(mp, root, landing, root / "data" / "labels", db)
        runner.prepare_environment()
        from titans_assets.lib.ml import batch

        batch.ensure_tables(db)  # the mart reads the predictions table; built last, once it holds rows
        summary = runner.materialize(
            "not group:ml and not group:predictions and not key:marts/fct_transactions_enriched",
            instance=runner.get_instance(),
        )
        assert summary.success, summary.error
        assert _score_unlabelled(db) > 0
        summary = runner.materialize("key:marts/fct_transactions_enriched", instance=runner.get_instance())
        assert summary.success, summary.error
        # no prediction service here: the page needs none (the sidebar says it is down)
        yield {"db": db, "env": env, "url": f"http://127.0.0.1:{free_port()}"}


def _corrections(db: Database) -> dict[str, tuple[str, str]]:
    return {
        t: (c, who)
        for t, c, who in _sql(
            db, "SELECT transaction_id, category, corrected_by FROM app.category_corrections"
        )
    }


def _open_ids(db: Database) -> list[str]:
    return RV.queue(db, limit=None)["transaction_id"].tolist()


def test_the_queue_is_the_ranking_and_one_click_accepts(world, app):
    db = world["db"]
    expected = RV.queue(db, limit=None)
    unlabelled = _sql(
        db,
        """SELECT count(*) FROM marts.fct_transactions_enriched e
                             LEFT JOIN app.category_corrections c USING (transaction_id)
                             WHERE e.txn_type = 'Expense' AND NOT e.is_transfer AND c.transaction_id IS NULL
                               AND e.category_source IN ('model', 'none')""",
    )[0][0]
    assert len(expected) == unlabelled > 20
    assert (expected["predicted"].notna()).all()  # every open expense was scored
    at = app("review")
    assert metrics(at)["To review"] == f"{len(expected):,}"
    shown = [b.key.removeprefix("rv_accept_") for b in at.button if b.key and b.key.startswith("rv_accept_")]
    assert shown == expected["transaction_id"].head(RV.PAGE_ROWS).tolist()
    # the page's rows are the most doubtful x largest: scores never rise down the page
    assert expected["review_score"].is_monotonic_decreasing
    top = expected.iloc[0]
    model_says = _sql(
        db,
        "SELECT category FROM predictions.transaction_categories WHERE transaction_id = %s",
        (top["transaction_id"],),
    )[0][0]
    assert top["predicted"] == model_says
    at.button(key=f"rv_accept_{top['transaction_id']}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _corrections(db)[top["transaction_id"]] == (model_says, "dashboard")
    log = _sql(
        db,
        "SELECT old_category, new_category, corrected_by FROM app.category_correction_log "
        "WHERE transaction_id = %s",
        (top["transaction_id"],),
    )
    assert log == [(model_says, model_says, "dashboard")]
    assert "Saved 1 correction(s)" in texts(at)
    assert top["transaction_id"] not in _open_ids(db)  # gone from the queue before any rebuild
    assert metrics(at)["To review"] == f"{len(expected) - 1:,}"


def test_two_clicks_change_a_category_and_three_propose_a_rule_to_accept(world, app):
    db = world["db"]
    rows = RV.queue(db, limit=None)
    at = app("review")
    first = rows.iloc[0]
    change = at.selectbox(key=f"rv_cat_{first['transaction_id']}")
    other = next(o for o in change.options if o != first["predicted"])  # the top-3 first, then every category
    change.set_value(other).run()
    at.button(key=f"rv_save_{first['transaction_id']}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _corrections(db)[first["transaction_id"]] == (other, "dashboard")
    assert first["transaction_id"] not in _open_ids(db)
    # three consistent corrections of one merchant nobody corrected yet -> a proposed rule, with its evidence
    touched = {
        m
        for (m,) in _sql(
            db,
            """SELECT DISTINCT t.merchant FROM app.category_corrections c
                                         JOIN marts.fct_transactions t USING (transaction_id)""",
        )
    }
    named = rows[rows["merchant"].notna() & ~rows["merchant"].isin(touched)]
    sizes = named.groupby("merchant_key")["transaction_id"].size()
    merchant = sizes[sizes >= 3].index[0]
    payee = rows.loc[rows["merchant_key"] == merchant, "merchant"].iloc[0]
    for tid in rows.loc[rows["merchant_key"] == merchant, "transaction_id"].head(3):
        RV.correct(
            db, {tid: "Client gifts"}
        )  # the same writer the buttons call (the clicks are tested above)
    assert _sql(
        db, "SELECT status, evidence, category FROM app.category_rules WHERE match_payee = %s", (payee,)
    ) == [("proposed", 3, "Client gifts")]
    at = app("review")
    assert f"{payee} → Client gifts" in texts(at)
    rule_id = _sql(db, "SELECT rule_id FROM app.category_rules WHERE match_payee = %s", (payee,))[0][0]
    evidence = next(d.value for d in at.dataframe if len(d.value) == 3)
    assert set(evidence["category"]) == {"Client gifts"} and set(evidence["corrected_by"]) == {"dashboard"}
    at.button(key=f"rv_rule_yes_{rule_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _sql(db, "SELECT status FROM app.category_rules WHERE rule_id = %s", (rule_id,)) == [("accepted",)]
    assert f"Rule {rule_id} accepted" in texts(at)


def test_bulk_accept_takes_every_open_row_of_one_merchant(world, app):
    db = world["db"]
    rows = RV.queue(db, limit=None)
    sizes = rows.groupby("merchant_key")["transaction_id"].size()
    merchant = sizes[sizes >= 2].index[0]
    theirs = rows[rows["merchant_key"] == merchant]
    at = app("review")
    at.selectbox(key="rv_merchant").set_value(merchant).run()
    at.button(key="rv_bulk").click().run()
    assert not at.exception, [e.value for e in at.exception]
    stored = _corrections(db)
    assert {t: stored[t] for t in theirs["transaction_id"]} == {
        t: (p, "dashboard") for t, p in zip(theirs["transaction_id"], theirs["predicted"])
    }
    assert not set(theirs["transaction_id"]) & set(_open_ids(db))


def test_the_transactions_page_changes_one_rows_category(world, app):
    db = world["db"]
    at = app("transactions")
    table = at.dataframe[0].value
    tid, shown = table["transaction_id"].iloc[0], table["category"].iloc[0]  # the first row of the table
    at.selectbox(key="tx_fix_row").set_value(tid).run()
    new = next(o for o in at.selectbox(key="tx_fix_cat").options if o != shown)
    at.selectbox(key="tx_fix_cat").set_value(new).run()
    at.button(key="tx_fix_save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _corrections(db)[tid] == (new, "dashboard")
    assert "Saved:" in texts(at) and f"→ **{new}**" in texts(at)


@pytest.mark.browser
def test_accept_in_headless_chromium_writes_a_correction(world, dashboard_url, page):
    db = world["db"]
    before = len(_corrections(db))
    top = RV.queue(db, limit=1).iloc[0]
    page.goto(dashboard_url)
    page.get_by_role("link", name="Review").click()
    page.get_by_text("To review").wait_for()
    # the top row's own button (Streamlit marks a keyed widget's container `st-key-<key>`): the rows
    # render one by one, and a click on "the first Accept" while they do can land on another row
    accept = page.locator(f".st-key-rv_accept_{top['transaction_id']} button")
    accept.wait_for()
    accept.click()
    page.get_by_text("Saved 1 correction(s)").wait_for()
    stored = _corrections(db)
    assert len(stored) == before + 1 and stored[top["transaction_id"]] == (top["predicted"], "dashboard")
