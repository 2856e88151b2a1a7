-- PostgreSQL at a million jobs (bench/postgres_history_bench.py), where SQLite's implicit
-- rowid gave its indexes an order PostgreSQL's lack:
-- * "mine": a member's jobs newest first. (guild_id, user_id) ends where SQLite's index
--   carried the rowid on, so PostgreSQL read all of a member's jobs and sorted them; with the
--   id the page and its capped count read their own rows.
-- * prompt search: the words index SQLite has in FTS5. Without it, text search computed
--   to_tsvector for every job of the server until 11 matched (a rare word: the whole server).
DROP INDEX jobs_by_member;
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id, id);
CREATE INDEX jobs_prompt_words ON jobs USING gin (to_tsvector('english', prompt));
