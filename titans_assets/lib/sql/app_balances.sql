-- The user's own tables beside the warehouse (schema app: no dbt run or loader rebuilds them).
-- dbt's fct_daily_balances and int_transfer_pairs create the same tables in their pre-hooks when
-- missing, so a build never depends on a command having run first. Keep the three in step.
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.account_balances (
    account      text          NOT NULL,
    balance_date date          NOT NULL,
    balance      numeric(16,2) NOT NULL,
    note         text,
    set_at       timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (account, balance_date)
);
CREATE TABLE IF NOT EXISTS app.transfer_overrides (
    transaction_id       text        NOT NULL,
    other_transaction_id text        NOT NULL DEFAULT '',
    action               text        NOT NULL CHECK (action IN ('pair', 'break')),
    note                 text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transaction_id, other_transaction_id)
);
