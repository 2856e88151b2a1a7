-- PostgreSQL's spelling of 0004_spend.sql: 64-bit picodollars, JSON read with ::jsonb.
ALTER TABLE jobs ADD COLUMN cost_pico BIGINT;
ALTER TABLE jobs ADD COLUMN estimate_pico BIGINT;
ALTER TABLE jobs ADD COLUMN pixels BIGINT;
UPDATE jobs SET cost_pico = ROUND(cost::numeric * 1e12)::bigint WHERE cost IS NOT NULL;
UPDATE jobs SET pixels = COALESCE((inputs::jsonb ->> 'width')::bigint, 1024)
        * COALESCE((inputs::jsonb ->> 'height')::bigint, 1024)
        * COALESCE((inputs::jsonb ->> 'samples')::bigint, 1)
    WHERE inputs LIKE '{%';
CREATE INDEX jobs_spend_by_guild ON jobs (guild_id, created_at);
CREATE INDEX jobs_spend_by_member ON jobs (guild_id, user_id, created_at);
CREATE INDEX jobs_priced ON jobs (model, id) WHERE status = 'succeeded' AND cost_pico > 0;

CREATE TABLE model_pricing (
    slug         TEXT PRIMARY KEY,
    dynamicprice TEXT NOT NULL,
    approximate  TEXT,
    fetched_at   DOUBLE PRECISION NOT NULL
);

CREATE TABLE guild_budgets (
    guild_id             BIGINT PRIMARY KEY,
    server_monthly_pico  BIGINT,
    member_daily_pico    BIGINT,
    member_monthly_pico  BIGINT,
    alerts_channel_id    BIGINT
);

CREATE TABLE budget_alerts (
    guild_id  BIGINT  NOT NULL,
    month     TEXT    NOT NULL,
    threshold INTEGER NOT NULL,
    sent_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, month, threshold)
);
