-- Landing tables written only by titans_assets.lib.loader. Idempotent: safe to run before every load.
CREATE SCHEMA IF NOT EXISTS raw;

-- One row per landed file (path relative to the landing folder). Same sha256 => the load is a no-op.
CREATE TABLE IF NOT EXISTS raw.files (
    source_file      text PRIMARY KEY,
    account          text        NOT NULL,  -- sub-folder name if the file sits in one, else the file stem
    size_bytes       bigint      NOT NULL,
    sha256           text        NOT NULL,
    rows_read        integer     NOT NULL,  -- data records (header excluded); every line of a rejected file
    rows_loaded      integer     NOT NULL,
    rows_quarantined integer     NOT NULL,
    header           text[]      NOT NULL,  -- the header as written
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    file_error       text,                  -- the one-line E003 reason of a file rejected whole, else NULL
    CHECK (rows_read = rows_loaded + rows_quarantined)
);
-- Warehouses created before file_error existed get it once (no ALTER, so no table lock, when present).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'raw' AND table_name = 'files' AND column_name = 'file_error') THEN
        ALTER TABLE raw.files ADD COLUMN file_error text;
    END IF;
END $$;

-- Rows that parsed: typed, values otherwise as written (typos such as `credit_car` are normalized in dbt).
-- No key, foreign key or index: the loader writes (source_file, line_number) unique by construction and
-- replaces a file's rows in the same transaction as its raw.files row. A primary key plus an FK trigger
-- made COPY 2.5x slower, an index on source_file alone 1.3x (benchmarks/pipeline.py); every reader
-- (dbt, the checks) scans the table anyway. The Great Expectations raw suite checks both properties
-- after every load.
CREATE TABLE IF NOT EXISTS raw.transactions (
    source_file    text          NOT NULL,
    line_number    integer       NOT NULL,  -- 1-based physical line where the record starts (header = 1)
    account        text          NOT NULL,
    txn_date       date          NOT NULL,
    txn_type       text          NOT NULL,  -- 'Income' or 'Expense'
    description    text          NOT NULL,
    amount         numeric(14,2) NOT NULL,  -- signed as written (expenses should be negative)
    category       text,
    payment_method text,
    status         text,
    reference      text,
    receipt_url    text,
    extra          jsonb,                   -- columns beyond the contract, by header name
    loaded_at      timestamptz   NOT NULL DEFAULT now(),
    bank_txn_id    text,                    -- the bank's own id (OFX FITID, CAMT AcctSvcrRef/NtryRef, MT940 ref)
    currency       text,                    -- ISO 4217 code the statement gives; NULL on CSV rows
    balance        numeric,                 -- the balance after this row, as the statement proves it
    institution    text                     -- the bank holding the account, as the file (or its profile) names it
);
-- Warehouses created before the statement columns existed get them once (as file_error above).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'raw' AND table_name = 'transactions' AND column_name = 'bank_txn_id') THEN
        ALTER TABLE raw.transactions ADD COLUMN bank_txn_id text, ADD COLUMN currency text, ADD COLUMN balance numeric;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'raw' AND table_name = 'transactions' AND column_name = 'institution') THEN
        ALTER TABLE raw.transactions ADD COLUMN institution text;
    END IF;
END $$;

-- Rows that did not parse, with the reason; nothing is ever dropped.
CREATE TABLE IF NOT EXISTS raw.quarantine (
    source_file    text        NOT NULL REFERENCES raw.files (source_file) ON DELETE CASCADE,
    line_number    integer     NOT NULL,
    raw_line       text        NOT NULL,
    reason         text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_file, line_number)
);
