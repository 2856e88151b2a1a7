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

-- A server's spend per day (UTC) in picodollars, kept by triggers (SQLite's 0002 and 0004
-- build it in two steps; here it starts on the exact column). `first_id` is the day's
-- smallest job id; jobs of the command line count under guild 0.
CREATE TABLE guild_days (
    guild     BIGINT NOT NULL,
    day       BIGINT NOT NULL,                              -- floor(created_at / 86400)
    jobs      BIGINT NOT NULL,
    first_id  BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (guild, day)
);

INSERT INTO guild_days (guild, day, jobs, cost_pico, first_id)
    SELECT coalesce(guild_id, 0), floor(created_at / 86400)::bigint, COUNT(*),
           coalesce(SUM(cost_pico), 0), MIN(id)
    FROM jobs GROUP BY 1, 2;

CREATE FUNCTION guild_days_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO guild_days AS g (guild, day, jobs, cost_pico, first_id)
        VALUES (coalesce(NEW.guild_id, 0), floor(NEW.created_at / 86400)::bigint, 1,
                coalesce(NEW.cost_pico, 0), NEW.id)
        ON CONFLICT (guild, day) DO UPDATE SET
            jobs = g.jobs + 1, cost_pico = g.cost_pico + excluded.cost_pico,
            first_id = least(g.first_id, NEW.id);
    RETURN NULL;
END
$$;

CREATE FUNCTION guild_days_cost() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE guild_days SET cost_pico = cost_pico + coalesce(NEW.cost_pico, 0)
                                                - coalesce(OLD.cost_pico, 0)
        WHERE guild = coalesce(NEW.guild_id, 0)
          AND day = floor(NEW.created_at / 86400)::bigint;
    RETURN NULL;
END
$$;

CREATE FUNCTION guild_days_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE guild_days SET jobs = jobs - 1, cost_pico = cost_pico - coalesce(OLD.cost_pico, 0)
        WHERE guild = coalesce(OLD.guild_id, 0)
          AND day = floor(OLD.created_at / 86400)::bigint;
    RETURN NULL;
END
$$;

CREATE TRIGGER guild_days_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION guild_days_insert();
CREATE TRIGGER guild_days_cost AFTER UPDATE OF cost_pico ON jobs
    FOR EACH ROW WHEN (NEW.cost_pico IS DISTINCT FROM OLD.cost_pico)
    EXECUTE FUNCTION guild_days_cost();
CREATE TRIGGER guild_days_delete AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION guild_days_delete();
