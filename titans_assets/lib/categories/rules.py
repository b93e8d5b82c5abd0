"""Category rules: written by the user (rules.yaml) or learned from corrections, matched in Python
(one implementation: the rules/category_rules asset writes the matches the enriched mart joins).

`load_user_rules` reads rules.yaml (TITANS_RULES_FILE), `match_rules` / `apply_rules` match them,
`propose_rules` learns payee rules from corrections, `refresh` does it all for the asset. A rule
needs a condition; two rules that would set different categories on one transaction are an error
naming both, never resolved by order.

Design notes (the rules.yaml format, conflicts, learned rules): docs/design-notes.md#titans_assetslibcategoriesrulespy
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from titans_assets.lib.db import Database

USER = "user"
LEARNED = "learned"
ACTIVE = "active"  # a user rule (its file is the decision)
PROPOSED, ACCEPTED, REJECTED = "proposed", "accepted", "rejected"
_KEYS = {"name", "category", "description", "description_regex", "payee", "amount_min", "amount_max"}
MIN_CONSISTENT = 3


class RulesError(ValueError):
    """E003: a rules file or rule decision that cannot be used. One line."""

    code = "E003"


class RuleConflictError(RulesError):
    """Two rules that would set different categories on the same transaction."""

    def __init__(self, a: Rule, b: Rule, detail: str = ""):
        self.rules = (a, b)
        super().__init__(
            f"E003 invalid input: rules {a.rule_id!r} ({a.category}) and {b.rule_id!r} "
            f"({b.category}) conflict{detail}: change one so they cannot match the same "
            "transaction, or give them the same category"
        )


@dataclass(frozen=True)
class Rule:
    rule_id: str
    category: str
    origin: str = USER
    description: str | None = None
    description_regex: bool = False
    payee: str | None = None  # cleaned like marts.fct_transactions.merchant
    amount_min: float | None = None
    amount_max: float | None = None
    status: str = ACTIVE
    evidence: int = 0

    @property
    def applies(self) -> bool:
        return self.status in (ACTIVE, ACCEPTED)

    def describe(self) -> str:
        parts = []
        if self.description is not None:
            parts.append(f"description {'~' if self.description_regex else 'contains'} {self.description!r}")
        if self.payee is not None:
            parts.append(f"payee = {self.payee!r}")
        if self.amount_min is not None or self.amount_max is not None:
            lo = "" if self.amount_min is None else f"{self.amount_min:g}"
            hi = "" if self.amount_max is None else f"{self.amount_max:g}"
            parts.append(f"|amount| in [{lo}, {hi}]")
        return " and ".join(parts)


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    from titans_assets.lib.ml.features import Vocabulary

    return Vocabulary.from_seeds().categories


def category_key(category: str | None) -> str | None:
    """A category for comparison (as dbt normalizes labels): 'Meals & Entertainment' -> 'meals_entertainment'."""
    from titans_assets.lib.ml.features import normalize_label_text

    if category is None:
        return None
    key = normalize_label_text(category)
    return _aliases().get(key, key) if key else None


def payee_key(payee: str) -> str | None:
    from titans_assets.lib.ml.features import clean_name_text

    return clean_name_text(payee)


# ------------------------------------------------------------------------------------ the rules file
def _amount(value: object, where: str, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RulesError(f"E003 invalid input: {where}: {field} must be a number")
    try:
        number = float(str(value).replace(",", "").lstrip("$€£"))
    except ValueError:
        raise RulesError(f"E003 invalid input: {where}: {field} {value!r} is not a number") from None
    if not np.isfinite(number) or number < 0:
        raise RulesError(
            f"E003 invalid input: {where}: {field} must be a finite amount >= 0 (|amount| is matched)"
        )
    return number


def _text(value: object, where: str, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
        raise RulesError(f"E003 invalid input: {where}: {field} must be non-empty text")
    return str(value).strip()


def parse_rule(entry: object, where: str) -> Rule:
    """One rules.yaml entry -> Rule (E003 naming `where` and the field when it is not one)."""
    from titans_assets.lib.categories.corrections import CorrectionError, clean_category

    if not isinstance(entry, dict):
        raise RulesError(f"E003 invalid input: {where}: a rule is a mapping (name, category, conditions)")
    unknown = sorted(set(map(str, entry)) - _KEYS)
    if unknown:
        raise RulesError(
            f"E003 invalid input: {where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})"
        )
    name = _text(entry.get("name"), where, "name")
    if name is None:
        raise RulesError(f"E003 invalid input: {where}: name is missing")
    where = f"{where} ({name})"
    try:
        category = clean_category(entry.get("category") if entry.get("category") is not None else "")
    except CorrectionError as exc:
        raise RulesError(
            f"E003 invalid input: {where}: {str(exc).removeprefix('E003 invalid input: ')}"
        ) from None
    if entry.get("description") is not None and entry.get("description_regex") is not None:
        raise RulesError(f"E003 invalid input: {where}: give description or description_regex, not both")
    regex = entry.get("description_regex") is not None
    description = _text(
        entry.get("description_regex" if regex else "description"),
        where,
        "description_regex" if regex else "description",
    )
    if regex:
        try:
            re.compile(description)
        except re.error as exc:
            raise RulesError(
                f"E003 invalid input: {where}: description_regex is not a regular expression: {exc}"
            ) from None
    payee = _text(entry.get("payee"), where, "payee")
    lo = _amount(entry.get("amount_min"), where, "amount_min")
    hi = _amount(entry.get("amount_max"), where, "amount_max")
    if lo is not None and hi is not None and lo > hi:
        raise RulesError(f"E003 invalid input: {where}: amount_min {lo:g} is above amount_max {hi:g}")
    if description is None and payee is None and lo is None and hi is None:
        raise RulesError(
            f"E003 invalid input: {where}: no condition (description, description_regex, payee "
            "or an amount range)"
        )
    return Rule(
        rule_id=f"user:{name}",
        category=category,
        origin=USER,
        description=description,
        description_regex=regex,
        payee=payee_key(payee) if payee else None,
        amount_min=lo,
        amount_max=hi,
    )


def load_user_rules(path: Path) -> list[Rule]:
    """The rules of a rules.yaml ([] when there is no file); E003 for a bad entry, RuleConflictError
    for two rules where one's conditions imply the other's and their categories differ."""
    import yaml

    path = Path(path)
    if not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RulesError(f"E003 invalid input: {path.name} is not YAML: {first}") from None
    entries = doc.get("rules") if isinstance(doc, dict) else doc
    if doc is None or entries is None:
        return []
    if not isinstance(entries, list) or (isinstance(doc, dict) and set(doc) - {"rules"}):
        raise RulesError(f"E003 invalid input: {path.name}: expected `rules:` followed by a list of rules")
    rules = [parse_rule(entry, f"{path.name} rule {i + 1}") for i, entry in enumerate(entries)]
    seen: dict[str, int] = {}
    for i, r in enumerate(rules):
        if r.rule_id in seen:
            raise RulesError(
                f"E003 invalid input: {path.name}: rules {seen[r.rule_id] + 1} and {i + 1} are both "
                f"named {r.rule_id.removeprefix('user:')!r}"
            )
        seen[r.rule_id] = i
    check_conflicts(rules)
    return rules


# ------------------------------------------------------------------------------------ conflicts
def _implies(a: Rule, b: Rule) -> bool:
    """Every transaction `a` matches, `b` matches too (judged on the conditions alone)."""
    if b.description is not None:
        if a.description is None or a.description_regex != b.description_regex:
            return False
        if b.description_regex:
            if a.description != b.description:
                return False
        elif b.description.lower() not in a.description.lower():
            return False
    if b.payee is not None and a.payee != b.payee:
        return False
    if b.amount_min is not None and (a.amount_min is None or a.amount_min < b.amount_min):
        return False
    return not (b.amount_max is not None and (a.amount_max is None or a.amount_max > b.amount_max))


def check_conflicts(rules: Iterable[Rule]) -> None:
    """RuleConflictError for the first pair of applying rules where one implies the other and the
    categories differ."""
    live = [r for r in rules if r.applies]
    for i, a in enumerate(live):
        for b in live[i + 1 :]:
            if category_key(a.category) != category_key(b.category) and (_implies(a, b) or _implies(b, a)):
                raise RuleConflictError(a, b)


# ------------------------------------------------------------------------------------ matching
def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return frame[name]
    if name == "merchant":
        from titans_assets.lib.ml.features import merchant_of

        ref = frame["reference"] if "reference" in frame else pd.Series("", index=frame.index, dtype=object)
        return merchant_of(ref.fillna(""), frame["description"].fillna(""))
    raise KeyError(name)


def rule_masks(rules: Iterable[Rule], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """rule_id -> boolean array over `frame` (columns description, amount, and merchant or reference)
    for every applying rule."""
    live = [r for r in rules if r.applies]
    if not live or frame.empty:
        return {r.rule_id: np.zeros(len(frame), bool) for r in live}
    desc = frame["description"].astype(object).where(frame["description"].notna(), "").astype(str)
    lowered = desc.str.lower()
    merchant = _column(frame, "merchant")
    amount = pd.to_numeric(frame["amount"], errors="coerce").abs().to_numpy(dtype=float)
    masks = {}
    for r in live:
        m = np.ones(len(frame), bool)
        if r.description is not None:
            if r.description_regex:
                with warnings.catch_warnings():  # "has match groups": only whether it matches counts here
                    warnings.simplefilter("ignore", UserWarning)
                    m &= desc.str.contains(
                        r.description, flags=re.IGNORECASE, regex=True, na=False
                    ).to_numpy()
            else:
                m &= lowered.str.contains(r.description.lower(), regex=False, na=False).to_numpy()
        if r.payee is not None:
            m &= (merchant == r.payee).fillna(False).to_numpy(dtype=bool)
        if r.amount_min is not None:
            m &= amount >= r.amount_min - 1e-9
        if r.amount_max is not None:
            m &= amount <= r.amount_max + 1e-9
        masks[r.rule_id] = m
    return masks


def match_rules(rules: Iterable[Rule], frame: pd.DataFrame) -> pd.DataFrame:
    """Every (row, rule) match: columns row (position in `frame`), rule_id, category. A row matched
    by rules with different categories is a RuleConflictError naming both (and how many rows)."""
    rules = [r for r in rules if r.applies]
    by_id = {r.rule_id: r for r in rules}
    masks = rule_masks(rules, frame)
    parts = [
        pd.DataFrame({"row": np.flatnonzero(m), "rule_id": rid, "category": by_id[rid].category})
        for rid, m in masks.items()
        if m.any()
    ]
    if not parts:
        return pd.DataFrame(
            {
                "row": pd.Series(dtype="int64"),
                "rule_id": pd.Series(dtype=object),
                "category": pd.Series(dtype=object),
            }
        )
    hits = pd.concat(parts, ignore_index=True).sort_values(["row", "rule_id"], kind="stable")
    keys = hits["category"].map(category_key)
    per_row = keys.groupby(hits["row"]).nunique()
    bad = per_row.index[per_row > 1]
    if len(bad):
        first = hits[hits["row"] == bad[0]]
        a = by_id[first["rule_id"].iloc[0]]
        b = next(
            by_id[rid] for rid, k in zip(first["rule_id"], keys[first.index]) if k != category_key(a.category)
        )
        ident = frame["transaction_id"].iloc[bad[0]] if "transaction_id" in frame else f"row {bad[0]}"
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise RuleConflictError(a, b, f" on transaction {ident}{more}")
    return hits.reset_index(drop=True)


def apply_rules(rules: Iterable[Rule], frame: pd.DataFrame) -> pd.Series:
    """The category the rules set on each row of `frame` (None where no rule matches)."""
    hits = match_rules(rules, frame)
    out = np.full(len(frame), None, dtype=object)
    if len(hits):
        first = hits.drop_duplicates("row")
        out[first["row"].to_numpy()] = first["category"].to_numpy()
    return pd.Series(out, index=frame.index, dtype=object)


def hit_counts(rules: Iterable[Rule], frame: pd.DataFrame) -> dict[str, int]:
    """rule_id -> number of rows of `frame` the rule matches (0 for a rule that matches none)."""
    return {rid: int(m.sum()) for rid, m in rule_masks(rules, frame).items()}


# ------------------------------------------------------------------------------------ stored rules
_COLUMNS = (
    "rule_id",
    "origin",
    "match_description",
    "description_regex",
    "match_payee",
    "amount_min",
    "amount_max",
    "category",
    "status",
    "evidence",
)


def _rule_of(row) -> Rule:
    rid, origin, desc, regex, payee, lo, hi, category, status, evidence = row
    return Rule(
        rule_id=rid,
        category=category,
        origin=origin,
        description=desc,
        description_regex=bool(regex),
        payee=payee,
        amount_min=None if lo is None else float(lo),
        amount_max=None if hi is None else float(hi),
        status=status,
        evidence=int(evidence),
    )


def stored_rules(db: Database, origin: str | None = None) -> list[Rule]:
    from titans_assets.lib.categories.corrections import ensure_tables

    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM app.category_rules"  # noqa: S608 (constant columns)
            " WHERE %s::text IS NULL OR origin = %s ORDER BY rule_id",
            (origin, origin),
        )
        return [_rule_of(r) for r in cur.fetchall()]


def _upsert(cur, r: Rule) -> None:
    cur.execute(
        """INSERT INTO app.category_rules (rule_id, origin, match_description, description_regex, match_payee,
               amount_min, amount_max, category, status, evidence)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (rule_id) DO UPDATE SET origin = EXCLUDED.origin,
               match_description = EXCLUDED.match_description, description_regex = EXCLUDED.description_regex,
               match_payee = EXCLUDED.match_payee, amount_min = EXCLUDED.amount_min,
               amount_max = EXCLUDED.amount_max, category = EXCLUDED.category, status = EXCLUDED.status,
               evidence = EXCLUDED.evidence""",
        (
            r.rule_id,
            r.origin,
            r.description,
            r.description_regex,
            r.payee,
            r.amount_min,
            r.amount_max,
            r.category,
            r.status,
            r.evidence,
        ),
    )


def sync_user_rules(db: Database, rules: list[Rule]) -> None:
    """app.category_rules' user rows := `rules` (the file is the user's decision)."""
    from titans_assets.lib.categories.corrections import ensure_tables

    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM app.category_rules WHERE origin = %s AND NOT (rule_id = ANY(%s))",
            (USER, [r.rule_id for r in rules]),
        )
        for r in rules:
            _upsert(cur, replace(r, origin=USER, status=ACTIVE))


def applying_rules(db: Database, user_rules: list[Rule]) -> list[Rule]:
    """What categorises transactions: the user's rules and the accepted learned rules."""
    return [*user_rules, *(r for r in stored_rules(db, LEARNED) if r.status == ACCEPTED)]


def write_matches(db: Database, matches: pd.DataFrame) -> int:
    """rules.category_rule_matches := `matches` (columns transaction_id, rule_id, category)."""
    from titans_assets.lib.categories.corrections import ensure_tables

    ensure_tables(db)
    rows = list(matches[["transaction_id", "rule_id", "category"]].itertuples(index=False, name=None))
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE rules.category_rule_matches")
        if rows:
            from psycopg2.extras import execute_values

            execute_values(
                cur,
                "INSERT INTO rules.category_rule_matches (transaction_id, rule_id, category) VALUES %s",
                rows,
                page_size=5000,
            )
    return len(rows)


def stored_hits(db: Database) -> dict[str, int]:
    """rule_id -> transactions it matched at the last rules/category_rules materialization."""
    from titans_assets.lib.categories.corrections import ensure_tables

    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT rule_id, count(*) FROM rules.category_rule_matches GROUP BY rule_id")
        return {rid: int(n) for rid, n in cur.fetchall()}


# ------------------------------------------------------------------------------------ learned rules
def learned_rule_id(merchant: str) -> str:
    return f"learned:{merchant}"


def propose_rules(db: Database, min_consistent: int = MIN_CONSISTENT) -> list[Rule]:
    """Propose a payee rule for each merchant with at least `min_consistent` corrected transactions,
    all corrected to one category, that no applying rule already covers. Returns the rules proposed
    (new, or a proposal updated with more evidence or another category); accepted rules stay as they
    are, and a rejected one stays rejected unless the corrections now name another category."""
    from titans_assets.lib.categories.corrections import ensure_tables

    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('marts.fct_transactions') IS NOT NULL")
        if not cur.fetchone()[0]:
            return []
        cur.execute("""SELECT t.merchant, c.category, c.corrected_at FROM app.category_corrections c
                       JOIN marts.fct_transactions t ON t.transaction_id = c.transaction_id
                       WHERE t.merchant IS NOT NULL ORDER BY t.merchant, c.corrected_at""")
        rows = cur.fetchall()
    existing = {r.rule_id: r for r in stored_rules(db)}
    covering = [r for r in existing.values() if r.applies and r.origin == USER]
    proposed: list[Rule] = []
    by_merchant: dict[str, list[str]] = {}
    for merchant, category, _ in rows:
        by_merchant.setdefault(merchant, []).append(category)
    for merchant, categories in by_merchant.items():
        keys = {category_key(c) for c in categories}
        if len(categories) < min_consistent or len(keys) != 1:
            continue
        rule = Rule(
            rule_id=learned_rule_id(merchant),
            category=categories[-1],
            origin=LEARNED,
            payee=merchant,
            status=PROPOSED,
            evidence=len(categories),
        )
        old = existing.get(rule.rule_id)
        if old is not None and (
            old.status == ACCEPTED
            or (old.status == REJECTED and category_key(old.category) == category_key(rule.category))
        ):
            continue
        if (
            old is not None
            and old.status == PROPOSED
            and old.category == rule.category
            and old.evidence == rule.evidence
        ):
            continue
        if any(_implies(rule, u) for u in covering):  # a user rule already decides this merchant
            continue
        proposed.append(rule)
    if proposed:
        with db.connect() as conn, conn.cursor() as cur:
            for r in proposed:
                _upsert(cur, r)
                cur.execute(
                    "UPDATE app.category_rules SET decided_at = NULL WHERE rule_id = %s", (r.rule_id,)
                )
    return proposed


def decide_rule(db: Database, rule_id: str, accept: bool, user_rules: list[Rule] | None = None) -> Rule:
    """Accept or reject a learned rule. Accepting one that conflicts with an applying rule (the user
    rules given, else those stored at the last sync, and the accepted learned rules) is a
    RuleConflictError; an unknown or user rule is E003."""
    existing = {r.rule_id: r for r in stored_rules(db)}
    rule = existing.get(rule_id)
    if rule is None:
        raise RulesError(
            f"E003 invalid input: rule_id {rule_id!r} is not a stored rule (`titans rules list`)"
        )
    if rule.origin != LEARNED:
        raise RulesError(f"E003 invalid input: rule {rule_id!r} is a user rule: edit rules.yaml instead")
    decided = replace(rule, status=ACCEPTED if accept else REJECTED)
    if accept:
        users = user_rules if user_rules is not None else [r for r in existing.values() if r.origin == USER]
        others = [
            r
            for r in existing.values()
            if r.origin == LEARNED and r.status == ACCEPTED and r.rule_id != rule_id
        ]
        for other in [*users, *others]:
            check_conflicts([other, decided])
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE app.category_rules SET status = %s, decided_at = now() WHERE rule_id = %s",
            (decided.status, rule_id),
        )
    return decided


# ------------------------------------------------------------------------------------ the asset's work
@dataclass(frozen=True)
class Refreshed:
    user_rules: int
    accepted_learned: int
    proposed: list[Rule]  # learned rules proposed (or updated) by this refresh
    hits: dict[str, int]  # rule_id -> transactions matched
    matched_transactions: int


def categorisable(db: Database) -> pd.DataFrame:
    """The transactions rules may categorise: every row of marts.fct_transactions except the moves
    between the user's own accounts (transaction_id, description, merchant, amount)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT transaction_id, description, merchant, amount::float8 FROM marts.fct_transactions"
            " WHERE NOT coalesce(is_transfer, false) ORDER BY transaction_id"
        )
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=["transaction_id", "description", "merchant", "amount"])


def refresh(db: Database, rules_file: Path, min_consistent: int = MIN_CONSISTENT) -> Refreshed:
    """What rules/category_rules does: read rules.yaml (a conflict stops here), store its rules,
    propose learned rules from the corrections, and match the applying rules on the transactions
    (a transaction two rules disagree on stops here) into rules.category_rule_matches."""
    user = load_user_rules(rules_file)
    applying = applying_rules(db, user)
    check_conflicts(applying)
    sync_user_rules(db, user)
    proposed = propose_rules(db, min_consistent)
    frame = categorisable(db)
    hits = match_rules(applying, frame)
    matches = pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"].to_numpy()[hits["row"].to_numpy()],
            "rule_id": hits["rule_id"].to_numpy(),
            "category": hits["category"].to_numpy(),
        }
    )
    write_matches(db, matches)
    counts = {r.rule_id: 0 for r in applying} | matches.groupby("rule_id").size().astype(int).to_dict()
    return Refreshed(
        user_rules=len(user),
        accepted_learned=len(applying) - len(user),
        proposed=proposed,
        hits={k: int(v) for k, v in counts.items()},
        matched_transactions=int(matches["transaction_id"].nunique()),
    )
