"""`titans rules list | check | accept RULE_ID | reject RULE_ID | correct TRANSACTION_ID CATEGORY`:
the category rules (rules.yaml and the learned ones) with their origin and hit count, and the user's
corrections from the command line (lib/categories). Thin click wrapper: a conflict or bad input ends
the command with one E003 line (cli.py)."""

from __future__ import annotations

import click


@click.group("rules")
def rules() -> None:
    """Category rules: yours (rules.yaml) and those learned from your corrections."""


def _context():
    from titans_assets.lib.db import get_database
    from titans_assets.lib.settings import Settings

    settings = Settings.from_env()
    return settings, get_database(settings)


@rules.command("list")
def list_rules() -> None:
    """Every rule: id, origin, status, category, conditions, evidence and hits (transactions matched
    at the last materialization)."""
    from titans_assets.lib.categories import rules as lib

    settings, db = _context()
    user = lib.load_user_rules(settings.rules_file)
    hits = lib.stored_hits(db)
    shown = [*user, *lib.stored_rules(db, lib.LEARNED)]
    for r in shown:
        evidence = f"{r.evidence} corrections" if r.origin == lib.LEARNED else "-"
        click.echo(
            f"{r.rule_id:<32} {r.origin:<8} {r.status:<9} {hits.get(r.rule_id, 0):>6} hits  "
            f"{r.category:<24} {evidence:<15} {r.describe()}"
        )
    if not shown:
        click.echo(f"(no rules: write {settings.rules_file}, or correct a merchant's category three times)")


@rules.command("check")
def check() -> None:
    """Read rules.yaml and match the applying rules on the loaded transactions: a conflict is one
    E003 line naming both rules."""
    from titans_assets.lib.categories import rules as lib

    settings, db = _context()
    user = lib.load_user_rules(settings.rules_file)
    applying = lib.applying_rules(db, user)
    lib.check_conflicts(applying)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('marts.fct_transactions') IS NOT NULL")
        loaded = cur.fetchone()[0]
    matched = lib.match_rules(applying, lib.categorisable(db)) if loaded else None
    where = "" if matched is None else f"; {matched['row'].nunique()} loaded transactions matched"
    click.echo(
        f"ok: {len(user)} rules in {settings.rules_file}, {len(applying) - len(user)} accepted learned "
        f"rules, no conflict{where}"
    )


def _decide(rule_id: str, accept: bool) -> None:
    from titans_assets.lib.categories import rules as lib

    settings, db = _context()
    rule = lib.decide_rule(db, rule_id, accept, user_rules=lib.load_user_rules(settings.rules_file))
    click.echo(
        f"{rule.rule_id}: {rule.status} ({rule.describe()} -> {rule.category}); "
        "applied by the next `titans materialize`"
    )


@rules.command("accept")
@click.argument("rule_id")
def accept(rule_id: str) -> None:
    """Accept a proposed learned rule (it then categorises that payee's transactions)."""
    _decide(rule_id, True)


@rules.command("reject")
@click.argument("rule_id")
def reject(rule_id: str) -> None:
    """Reject a learned rule (it is not proposed again for the same category)."""
    _decide(rule_id, False)


@rules.command("correct")
@click.argument("transaction_id")
@click.argument("category")
def correct(transaction_id: str, category: str) -> None:
    """Set a transaction's category (it wins over the export's label and teaches the next training)."""
    from titans_assets.lib.categories import corrections
    from titans_assets.lib.categories import rules as lib

    _, db = _context()
    done = corrections.record_correction(db, transaction_id, category, "cli")
    click.echo(f"{done.transaction_id}: {done.old or '(none)'} -> {done.new}")
    for r in lib.propose_rules(db):
        click.echo(
            f"proposed {r.rule_id}: {r.describe()} -> {r.category} ({r.evidence} corrections); "
            f"`titans rules accept {r.rule_id}` to apply it"
        )
