-- Money, exact: whole picodollars (1e-12 USD, Wiro's 12 decimals) instead of a REAL.
-- Only ADDs: the lead applies the history rebuild of `jobs` before this one.
ALTER TABLE jobs ADD COLUMN cost_pico INTEGER;      -- totalcost Wiro charged (NULL: never reached Wiro)
ALTER TABLE jobs ADD COLUMN estimate_pico INTEGER;  -- the price foreseen at submission (NULL: unknown)
UPDATE jobs SET cost_pico = CAST(ROUND(cost * 1e12) AS INTEGER) WHERE cost IS NOT NULL;
CREATE INDEX jobs_by_guild_user ON jobs (guild_id, user_id, created_at);

-- Tool/Detail's prices per model, seed models too; read again daily, the kept one serves
-- while Wiro cannot be reached.
CREATE TABLE model_pricing (
    slug         TEXT PRIMARY KEY,        -- lower case
    dynamicprice TEXT NOT NULL,           -- JSON: Wiro's entries, amounts as strings
    approximate  TEXT,                    -- approximatelycost, a decimal string
    fetched_at   REAL NOT NULL
);

-- A server's budgets (picodollars; NULL: none) and where its alerts go.
CREATE TABLE guild_budgets (
    guild_id             INTEGER PRIMARY KEY,
    server_monthly_pico  INTEGER,
    member_daily_pico    INTEGER,
    member_monthly_pico  INTEGER,
    alerts_channel_id    INTEGER
);

-- One alert per threshold per month: (server, 'YYYY-MM', 50 | 80 | 100).
CREATE TABLE budget_alerts (
    guild_id  INTEGER NOT NULL,
    month     TEXT    NOT NULL,
    threshold INTEGER NOT NULL,
    sent_at   REAL    NOT NULL,
    PRIMARY KEY (guild_id, month, threshold)
);
