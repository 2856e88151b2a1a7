-- PostgreSQL at a million jobs (bench/postgres_history_bench.py), where SQLite's implicit
-- rowid and FTS5 gave it what PostgreSQL lacked:
-- * "mine": a member's jobs newest first. (guild_id, user_id) ends where SQLite's index
--   carried the rowid on, so PostgreSQL read all of a member's jobs and sorted them; with the
--   id, the page and its capped count read their own rows.
-- * a model filter: SQLite reads FTS5's word for the server's model; here the server's jobs
--   of one model, in id order.
-- * prompt search: a words index like FTS5's jobs_search (0002): the prompt's words
--   ('english': stemmed, stop words dropped) and "g <guild>", "u <member>" (a space inside,
--   so no prompt can make one), so a search within a server intersects inside the index
--   (GIN's fast scan) instead of computing to_tsvector for every job of the server. The
--   query spells the same expression (bot/store/jobs.py, _PG_MATCH).
-- * the trigram index of 0002 served ILIKE searches, which now go through the words index:
--   it only slowed every write (and lured the planner into reading it beside the words).
DROP INDEX jobs_by_member;
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id, id);
CREATE INDEX jobs_by_model ON jobs (guild_id, model, id);
CREATE INDEX jobs_prompt_words ON jobs USING gin ((
    to_tsvector('english', prompt)
    || array_to_tsvector(ARRAY['g ' || coalesce(guild_id, 0), 'u ' || coalesce(user_id, 0)])
));
DROP INDEX IF EXISTS jobs_prompt_trigrams;
-- The planner weighs a words search by the new index's statistics: gather them now rather
-- than at autovacuum's next visit.
ANALYZE jobs;

-- A server's spend per day and model (as SQLite's 0007): the gallery's spend page adds up
-- 30 days x a few models instead of reading a month of a large server's jobs.
CREATE TABLE guild_model_days (
    guild     BIGINT NOT NULL,
    day       BIGINT NOT NULL,                              -- floor(created_at / 86400)
    model     TEXT   NOT NULL,
    jobs      BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (guild, day, model)
);

INSERT INTO guild_model_days (guild, day, model, jobs, cost_pico)
    SELECT coalesce(guild_id, 0), floor(created_at / 86400)::bigint, model, COUNT(*),
           coalesce(SUM(cost_pico), 0)
    FROM jobs GROUP BY 1, 2, 3;

CREATE FUNCTION guild_model_days_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO guild_model_days AS g (guild, day, model, jobs, cost_pico)
        VALUES (coalesce(NEW.guild_id, 0), floor(NEW.created_at / 86400)::bigint, NEW.model,
                1, coalesce(NEW.cost_pico, 0))
        ON CONFLICT (guild, day, model) DO UPDATE SET
            jobs = g.jobs + 1, cost_pico = g.cost_pico + excluded.cost_pico;
    RETURN NULL;
END
$$;

CREATE FUNCTION guild_model_days_cost() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE guild_model_days SET cost_pico = cost_pico + coalesce(NEW.cost_pico, 0)
                                                      - coalesce(OLD.cost_pico, 0)
        WHERE guild = coalesce(NEW.guild_id, 0)
          AND day = floor(NEW.created_at / 86400)::bigint AND model = NEW.model;
    RETURN NULL;
END
$$;

CREATE FUNCTION guild_model_days_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE guild_model_days SET jobs = jobs - 1,
                                cost_pico = cost_pico - coalesce(OLD.cost_pico, 0)
        WHERE guild = coalesce(OLD.guild_id, 0)
          AND day = floor(OLD.created_at / 86400)::bigint AND model = OLD.model;
    RETURN NULL;
END
$$;

CREATE TRIGGER guild_model_days_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION guild_model_days_insert();
CREATE TRIGGER guild_model_days_cost AFTER UPDATE OF cost_pico ON jobs
    FOR EACH ROW WHEN (NEW.cost_pico IS DISTINCT FROM OLD.cost_pico)
    EXECUTE FUNCTION guild_model_days_cost();
CREATE TRIGGER guild_model_days_delete AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION guild_model_days_delete();
