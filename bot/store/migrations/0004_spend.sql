-- Money, exact: whole picodollars (1e-12 USD, Wiro's 12 decimals) instead of a REAL.
-- Only ADDs: the lead applies the history rebuild of `jobs` before this one.
ALTER TABLE jobs ADD COLUMN cost_pico INTEGER;      -- totalcost Wiro charged (NULL: never reached Wiro)
ALTER TABLE jobs ADD COLUMN estimate_pico INTEGER;  -- the price foreseen at submission (NULL: unknown)
-- A job's size for pricing by similar past jobs: output pixels, width x height x samples.
ALTER TABLE jobs ADD COLUMN pixels INTEGER;
UPDATE jobs SET cost_pico = CAST(ROUND(cost * 1e12) AS INTEGER) WHERE cost IS NOT NULL;
UPDATE jobs SET pixels = COALESCE(json_extract(inputs, '$.width'), 1024)
        * COALESCE(json_extract(inputs, '$.height'), 1024)
        * COALESCE(json_extract(inputs, '$.samples'), 1)
    WHERE json_valid(inputs);
-- Budgets sum a server's or a member's jobs of a day or a month.
CREATE INDEX jobs_spend_by_guild ON jobs (guild_id, created_at);
CREATE INDEX jobs_spend_by_member ON jobs (guild_id, user_id, created_at);
-- The median of a model's recent priced jobs (the store spells this condition literally).
CREATE INDEX jobs_priced ON jobs (model, id) WHERE status = 'succeeded' AND cost_pico > 0;

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
