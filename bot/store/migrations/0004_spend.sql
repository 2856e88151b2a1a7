-- Money, exact: whole picodollars (1e-12 USD, Wiro's 12 decimals) instead of a REAL.
-- Only ADDs: the lead applies the history rebuild of `jobs` before this one.
ALTER TABLE jobs ADD COLUMN cost_pico INTEGER;      -- totalcost Wiro charged (NULL: never reached Wiro)
ALTER TABLE jobs ADD COLUMN estimate_pico INTEGER;  -- the price foreseen at submission (NULL: unknown)
-- A job's size for pricing by similar past jobs: output pixels, width x height x samples.
ALTER TABLE jobs ADD COLUMN pixels INTEGER;
UPDATE jobs SET cost_pico = CAST(ROUND(cost * 1e12) AS INTEGER) WHERE cost IS NOT NULL;

-- A server's spend per day (migration 0002) is kept in picodollars too, by the same triggers
-- now watching the exact column.
ALTER TABLE guild_days ADD COLUMN cost_pico INTEGER NOT NULL DEFAULT 0;
UPDATE guild_days SET cost_pico = CAST(ROUND(cost * 1e12) AS INTEGER);
DROP TRIGGER guild_days_insert;
DROP TRIGGER guild_days_cost;
DROP TRIGGER guild_days_delete;
ALTER TABLE guild_days DROP COLUMN cost;
CREATE TRIGGER guild_days_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO guild_days (guild, day, jobs, cost_pico, first_id)
        VALUES (coalesce(new.guild_id, 0), CAST(new.created_at / 86400 AS INTEGER), 1,
                coalesce(new.cost_pico, 0), new.id)
        ON CONFLICT (guild, day) DO UPDATE SET
            jobs = jobs + 1, cost_pico = cost_pico + excluded.cost_pico,
            first_id = min(first_id, new.id);
END;
CREATE TRIGGER guild_days_cost AFTER UPDATE OF cost_pico ON jobs
    WHEN new.cost_pico IS NOT old.cost_pico
BEGIN
    UPDATE guild_days SET cost_pico = cost_pico + coalesce(new.cost_pico, 0)
                                                - coalesce(old.cost_pico, 0)
        WHERE guild = coalesce(new.guild_id, 0)
          AND day = CAST(new.created_at / 86400 AS INTEGER);
END;
CREATE TRIGGER guild_days_delete AFTER DELETE ON jobs BEGIN
    UPDATE guild_days SET jobs = jobs - 1, cost_pico = cost_pico - coalesce(old.cost_pico, 0)
        WHERE guild = coalesce(old.guild_id, 0)
          AND day = CAST(old.created_at / 86400 AS INTEGER);
END;
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
