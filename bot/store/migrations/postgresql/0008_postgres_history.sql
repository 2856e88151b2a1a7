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
