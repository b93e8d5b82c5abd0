"""Category rules (lib/categories/rules.py): the rules.yaml format, conflicts as one E003 naming both
rules, vectorised matching with hit counts, and rules learned from consistent corrections."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest
from conftest import scratch_database
from test_corrections import make_marts

from titans_assets.lib import errors
from titans_assets.lib.categories import corrections, rules
from titans_assets.lib.categories.rules import Rule, RuleConflictError, RulesError


def write(tmp_path, text: str):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return path


FRAME = pd.DataFrame(
    {
        "transaction_id": ["a", "b", "c", "d", "e"],
        "description": ["STARBUCKS #12 Seattle", "Shell Oil 55", "RENT JAN", None, "Starbucks reserve"],
        "reference": ["", "Shell", "ACME Properties", "", ""],
        "amount": [-4.5, -60.0, -1500.0, -20.0, -30.0],
    }
)


def test_a_rules_file_reads_every_condition(tmp_path):
    path = write(
        tmp_path,
        """
        rules:
          - name: coffee
            description: starbucks
            amount_max: 10
            category: Meals & Entertainment
          - {name: fuel, payee: "  SHELL ", category: fuel}
          - name: rent
            description_regex: "^rent (jan|feb)$"
            amount_min: "1,000"
            category: rent
    """,
    )
    got = rules.load_user_rules(path)
    assert [r.rule_id for r in got] == ["user:coffee", "user:fuel", "user:rent"]
    assert got[1].payee == "shell" and got[2].amount_min == 1000 and got[2].description_regex
    assert rules.apply_rules(got, FRAME).tolist() == ["Meals & Entertainment", "fuel", "rent", None, None]
    assert rules.hit_counts(got, FRAME) == {"user:coffee": 1, "user:fuel": 1, "user:rent": 1}
    assert rules.load_user_rules(tmp_path / "missing.yaml") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules:\n  - {name: x, category: fuel}\n", "no condition"),
        ("rules:\n  - {name: x, description: a}\n", "category is empty"),
        ("rules:\n  - {category: fuel, description: a}\n", "name is missing"),
        ("rules:\n  - {name: x, category: fuel, descr: a}\n", "unknown field 'descr'"),
        ("rules:\n  - {name: x, category: fuel, description_regex: '(('}\n", "not a regular expression"),
        (
            "rules:\n  - {name: x, category: fuel, amount_min: 5, amount_max: 1}\n",
            "amount_min 5 is above amount_max 1",
        ),
        ("rules:\n  - {name: x, category: fuel, amount_min: lots}\n", "amount_min 'lots' is not a number"),
        (
            "rules:\n  - {name: x, category: f, payee: a}\n  - {name: x, category: g, payee: b}\n",
            "both named 'x'",
        ),
        ("rules: {name: x}\n", "expected `rules:`"),
        ("rules: [\n", "not YAML"),
    ],
)
def test_a_bad_rules_file_is_one_e003_line_naming_the_rule(tmp_path, body, message):
    with pytest.raises(RulesError, match=message) as info:
        rules.load_user_rules(write(tmp_path, body))
    failure = errors.from_exception(info.value)
    assert failure.code == "E003" and "\n" not in failure.line()


def test_rules_that_imply_each_other_with_different_categories_conflict(tmp_path):
    path = write(
        tmp_path,
        """
        rules:
          - {name: amazon, description: amazon, category: shopping}
          - {name: prime, description: Amazon Prime, category: software}
    """,
    )
    with pytest.raises(
        RuleConflictError, match="'user:amazon' \\(shopping\\) and 'user:prime' \\(software\\)"
    ):
        rules.load_user_rules(path)
    # same category in another spelling: no conflict; disjoint amounts: no conflict
    write(
        tmp_path,
        """
        rules:
          - {name: amazon, description: amazon, category: Office Supplies}
          - {name: prime, description: amazon prime, category: office_supplies}
          - {name: small, payee: shell, amount_max: 20, category: food}
          - {name: big, payee: shell, amount_min: 20.01, category: fuel}
    """,
    )
    assert len(rules.load_user_rules(path)) == 4


def test_rules_that_meet_on_a_transaction_conflict_when_matched():
    coffee = Rule("user:coffee", "meals", description="starbucks")
    cheap = Rule("user:cheap", "other", amount_max=5)
    rules.check_conflicts([coffee, cheap])  # neither implies the other
    with pytest.raises(RuleConflictError, match="on transaction a$|on transaction a:") as info:
        rules.match_rules([coffee, cheap], FRAME)
    assert {r.rule_id for r in info.value.rules} == {"user:coffee", "user:cheap"}
    # agreeing overlaps are fine and both count their hits
    agree = Rule("user:cheap", "Meals", amount_max=5)
    hits = rules.match_rules([coffee, agree], FRAME)
    assert sorted(hits["rule_id"]) == ["user:cheap", "user:coffee", "user:coffee"]
    assert rules.hit_counts([coffee, agree], FRAME) == {"user:coffee": 2, "user:cheap": 1}


def test_only_applying_rules_match():
    proposed = Rule("learned:shell", "fuel", origin=rules.LEARNED, payee="shell", status=rules.PROPOSED)
    assert rules.apply_rules([proposed], FRAME).isna().all()
    accepted = Rule("learned:shell", "fuel", origin=rules.LEARNED, payee="shell", status=rules.ACCEPTED)
    assert rules.apply_rules([accepted], FRAME).tolist() == [None, "fuel", None, None, None]


@pytest.fixture
def db(embedded_db):
    with scratch_database(embedded_db) as scratch:
        make_marts(
            scratch,
            [(f"s{i}", "starbucks", None) for i in range(4)] + [("x1", "shell", None), ("x2", "shell", None)],
        )
        yield scratch


@pytest.mark.integration
def test_a_learned_rule_is_proposed_after_three_corrections(db):
    corrections.record_correction(db, "s0", "Meals", "cli")
    corrections.record_correction(db, "s1", "meals", "cli")
    assert rules.propose_rules(db) == []  # two are not enough
    corrections.record_correction(db, "s2", "Meals", "cli")
    corrections.record_correction(db, "x1", "fuel", "cli")
    [rule] = rules.propose_rules(db)
    assert (rule.rule_id, rule.payee, rule.category, rule.status, rule.evidence) == (
        "learned:starbucks",
        "starbucks",
        "Meals",
        "proposed",
        3,
    )
    assert rules.propose_rules(db) == []  # nothing new to say
    assert [r.rule_id for r in rules.stored_rules(db, rules.LEARNED)] == ["learned:starbucks"]
    # not applied until accepted
    assert rules.applying_rules(db, []) == []
    accepted = rules.decide_rule(db, "learned:starbucks", accept=True)
    assert accepted.status == "accepted"
    assert [r.rule_id for r in rules.applying_rules(db, [])] == ["learned:starbucks"]
    # an accepted rule is not proposed again, even with more evidence
    corrections.record_correction(db, "s3", "Meals", "cli")
    assert rules.propose_rules(db) == []


@pytest.mark.integration
def test_inconsistent_corrections_propose_nothing_and_rejection_sticks(db):
    for t, c in (("s0", "meals"), ("s1", "meals"), ("s2", "travel"), ("s3", "meals")):
        corrections.record_correction(db, t, c, "cli")
    assert rules.propose_rules(db) == []  # 3 of 4 agree: not consistent
    corrections.record_correction(db, "s2", "meals", "cli")  # the latest correction wins
    [rule] = rules.propose_rules(db)
    assert rule.evidence == 4
    rules.decide_rule(db, rule.rule_id, accept=False)
    assert rules.propose_rules(db) == []
    with pytest.raises(RulesError, match="not a stored rule"):
        rules.decide_rule(db, "learned:nobody", accept=True)


@pytest.mark.integration
def test_accepting_a_rule_that_conflicts_with_a_user_rule_is_refused(db, tmp_path):
    user = rules.load_user_rules(
        write(tmp_path, "rules:\n  - {name: sb, payee: starbucks, category: coffee}\n")
    )
    rules.sync_user_rules(db, user)
    with pytest.raises(RulesError, match="is a user rule"):
        rules.decide_rule(db, "user:sb", accept=True)
    # a user rule covering the merchant already: no proposal
    for t in ("s0", "s1", "s2"):
        corrections.record_correction(db, t, "meals", "cli")
    assert rules.propose_rules(db) == []
    rules.sync_user_rules(db, [])
    [rule] = rules.propose_rules(db)
    rules.sync_user_rules(db, user)
    with pytest.raises(RuleConflictError, match="'user:sb' \\(coffee\\) and 'learned:starbucks' \\(meals\\)"):
        rules.decide_rule(db, rule.rule_id, accept=True)
    assert rules.stored_rules(db, rules.LEARNED)[0].status == "proposed"
    rules.write_matches(
        db, pd.DataFrame({"transaction_id": ["s0", "s1"], "rule_id": "user:sb", "category": "coffee"})
    )
    assert rules.stored_hits(db) == {"user:sb": 2}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT rule_id, origin, status, hits FROM rules.category_rule_hits ORDER BY rule_id")
        assert cur.fetchall() == [
            ("learned:starbucks", "learned", "proposed", 0),
            ("user:sb", "user", "active", 2),
        ]


def test_a_conflict_raised_inside_a_dagster_step_is_one_e003_line():
    # what check_records.error_with_causes makes of a RuleConflictError raised in rules/category_rules
    text = (
        'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "x":\n\n'
        "RuleConflictError: titans_assets.lib.categories.rules.RuleConflictError: E003 invalid input: rules "
        "'user:a' (x) and 'user:b' (y) conflict\n"
    )
    failure = errors.from_text("DagsterExecutionStepExecutionError", text)
    assert failure.line().startswith("E003 invalid input: rules 'user:a' (x) and 'user:b' (y) conflict")


@pytest.mark.integration
def test_the_rules_command_lists_hits_and_shows_a_conflict_once(db, tmp_path):
    from conftest import cli_env, run_titans

    landing = tmp_path / "raw"
    landing.mkdir()
    env = cli_env(tmp_path / "home", landing, db.url)
    (landing / "rules.yaml").write_text("rules:\n  - {name: fuel, payee: Shell, category: fuel}\n")
    for t in ("s0", "s1", "s0", "s2"):
        done = run_titans("rules", "correct", t, "Coffee", env=env)
        assert done.returncode == 0, done.stderr
    assert "proposed learned:starbucks" in done.stdout and "s2: (none) -> Coffee" in done.stdout
    assert "ok: 1 rules" in run_titans("rules", "check", env=env).stdout
    done = run_titans("rules", "accept", "learned:starbucks", env=env)
    assert done.returncode == 0 and "accepted" in done.stdout, done.stderr
    rules.write_matches(
        db, pd.DataFrame({"transaction_id": ["x1", "x2"], "rule_id": "user:fuel", "category": "fuel"})
    )
    listed = run_titans("rules", "list", env=env).stdout.splitlines()
    assert any(ln.startswith("user:fuel") and " 2 hits" in ln for ln in listed), listed
    assert any(
        ln.startswith("learned:starbucks") and "accepted" in ln and "3 corrections" in ln for ln in listed
    ), listed
    # a conflict: one coded line, exit 1
    (landing / "rules.yaml").write_text("rules:\n  - {name: sb, payee: starbucks, category: food}\n")
    done = run_titans("rules", "check", env=env)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: E003 invalid input: rules 'user:sb' (food) and 'learned:starbucks' (Coffee)"
    )
    done = run_titans("rules", "correct", "nope", "Fuel", env=env)
    assert done.returncode == 1 and "error: E003" in done.stderr and "'nope' is not a known" in done.stderr
