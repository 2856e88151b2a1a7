-- PostgreSQL's history indexes (postgresql/0007_postgres_history.sql): SQLite has them
-- already (its indexes end in the rowid; FTS5, 0002, is its words index).
--
-- Both backends: a server's spend per day and model, kept by triggers beside guild_days
-- (0002, 0004), so the gallery's spend page adds up 30 days x a few models instead of
-- reading a month of a large server's jobs. Jobs of the command line count under guild 0.
CREATE TABLE guild_model_days (
    guild     INTEGER NOT NULL,
    day       INTEGER NOT NULL,                             -- created_at // 86400
    model     TEXT    NOT NULL,
    jobs      INTEGER NOT NULL,
    cost_pico INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild, day, model)
) WITHOUT ROWID;

INSERT INTO guild_model_days (guild, day, model, jobs, cost_pico)
    SELECT coalesce(guild_id, 0), CAST(created_at / 86400 AS INTEGER), model, COUNT(*),
           coalesce(SUM(cost_pico), 0)
    FROM jobs GROUP BY 1, 2, 3;

CREATE TRIGGER guild_model_days_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO guild_model_days (guild, day, model, jobs, cost_pico)
        VALUES (coalesce(new.guild_id, 0), CAST(new.created_at / 86400 AS INTEGER), new.model,
                1, coalesce(new.cost_pico, 0))
        ON CONFLICT (guild, day, model) DO UPDATE SET
            jobs = jobs + 1, cost_pico = cost_pico + excluded.cost_pico;
END;
CREATE TRIGGER guild_model_days_cost AFTER UPDATE OF cost_pico ON jobs
    WHEN new.cost_pico IS NOT old.cost_pico
BEGIN
    UPDATE guild_model_days SET cost_pico = cost_pico + coalesce(new.cost_pico, 0)
                                                      - coalesce(old.cost_pico, 0)
        WHERE guild = coalesce(new.guild_id, 0)
          AND day = CAST(new.created_at / 86400 AS INTEGER) AND model = new.model;
END;
CREATE TRIGGER guild_model_days_delete AFTER DELETE ON jobs BEGIN
    UPDATE guild_model_days SET jobs = jobs - 1,
                                cost_pico = cost_pico - coalesce(old.cost_pico, 0)
        WHERE guild = coalesce(old.guild_id, 0)
          AND day = CAST(old.created_at / 86400 AS INTEGER) AND model = old.model;
END;
