-- The user's category decisions beside the warehouse (schema app: no dbt run or loader rebuilds them).
-- Created by lib/categories/corrections.ensure_tables, which the warehouse resource runs (with
-- app_balances.sql) before any dbt command, so dbt models may read these tables as they are.
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.category_corrections (      -- the latest correction per transaction wins
    transaction_id    text        PRIMARY KEY,
    category          text        NOT NULL,                -- as the user wrote it (display spelling)
    previous_category text,
    corrected_by      text        NOT NULL,                -- API key id, or 'dashboard', or 'cli'
    corrected_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS app.category_correction_log (   -- audit: every correction ever made, append only
    id             bigserial   PRIMARY KEY,
    transaction_id text        NOT NULL,
    old_category   text,
    new_category   text        NOT NULL,
    corrected_by   text        NOT NULL,
    corrected_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS category_correction_log_txn ON app.category_correction_log (transaction_id);
-- Rules: origin 'user' (rules.yaml, written by the rules/category_rules asset, status 'active') or
-- 'learned' (proposed after consistent corrections of one merchant; 'proposed' -> 'accepted' | 'rejected').
-- description_regex: match_description is a regular expression (else a case-insensitive substring).
CREATE TABLE IF NOT EXISTS app.category_rules (
    rule_id           text          PRIMARY KEY,
    origin            text          NOT NULL,
    match_description text,
    match_payee       text,
    amount_min        numeric(16,2),
    amount_max        numeric(16,2),
    category          text          NOT NULL,
    status            text          NOT NULL,
    evidence          integer       NOT NULL DEFAULT 0,
    created_at        timestamptz   NOT NULL DEFAULT now(),
    decided_at        timestamptz
);
ALTER TABLE app.category_rules ADD COLUMN IF NOT EXISTS description_regex boolean NOT NULL DEFAULT false;
-- Derived, not the user's: which active rule categorises which transaction, rewritten by the
-- rules/category_rules asset from marts.fct_transactions; the enriched mart joins it, so precedence
-- stays SQL in one model. Created here so the mart builds (with no rule hits) before that asset ran.
CREATE SCHEMA IF NOT EXISTS rules;
-- Every (transaction, rule) match; the rules of one transaction agree on its category (a conflict
-- fails that asset), so hits per rule = count(*) per rule_id.
CREATE TABLE IF NOT EXISTS rules.category_rule_matches (
    transaction_id text NOT NULL,
    rule_id        text NOT NULL,
    category       text NOT NULL,
    PRIMARY KEY (transaction_id, rule_id)
);
-- Every stored rule with its origin, status and hit count (transactions matched at the last refresh).
CREATE OR REPLACE VIEW rules.category_rule_hits AS
SELECT r.rule_id, r.origin, r.status, r.category, r.evidence, count(m.transaction_id)::integer AS hits
FROM app.category_rules r
LEFT JOIN rules.category_rule_matches m ON m.rule_id = r.rule_id
GROUP BY r.rule_id, r.origin, r.status, r.category, r.evidence;
