-- History at a million jobs: smaller rows, indexes for every hot query, prompt search.
-- The jobs table is changed in place (no rebuild): its columns, their order and every
-- job stay as they are, and later migrations may add columns freely.

-- When a job's images were removed from disk by retention (NULL: still there, or none).
ALTER TABLE jobs ADD COLUMN outputs_expired_at REAL;

-- The prompt was stored twice: in `prompt` and inside `inputs`. `inputs` keeps the rest;
-- the store puts the prompt back when it reads a job.
UPDATE jobs SET inputs = json_remove(inputs, '$.prompt')
    WHERE json_extract(inputs, '$.prompt') IS prompt;

-- Interaction tokens live 15 minutes at Discord; older ones are dead weight (and secrets).
UPDATE jobs SET interaction_token = NULL
    WHERE interaction_token IS NOT NULL
      AND (interaction_at IS NULL
           OR interaction_at < (julianday('now') - 2440587.5) * 86400.0 - 900);

-- History pages walk ids newest first (keyset, not OFFSET). The server scope filters on
-- channel_id and /settings show sums cost from the index alone, without reading rows.
DROP INDEX jobs_by_guild;
DROP INDEX jobs_by_user;
DROP INDEX jobs_by_time;
CREATE INDEX jobs_by_guild ON jobs (guild_id, id, channel_id, created_at, cost);
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id);

-- Start-up reads only these small sets. (jobs_unfinished from 0001 stays: the store now
-- spells its condition literally, so SQLite can use it.)
CREATE INDEX jobs_unposted ON jobs (status) WHERE posted_at IS NULL AND source = 'discord';
CREATE INDEX jobs_with_token ON jobs (interaction_at) WHERE interaction_token IS NOT NULL;

-- Outputs still on disk, oldest job first: what retention walks and sums.
CREATE INDEX outputs_on_disk ON outputs (job_id, size) WHERE path IS NOT NULL;

-- Prompt search. Contentless (the text stays in jobs only); `scope` holds "g<guild>
-- u<user>" so a search within a server or a member intersects inside the index instead of
-- reading every job of the server.
CREATE VIRTUAL TABLE jobs_search USING fts5 (
    prompt, scope,
    content = '', detail = 'column', columnsize = 0,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, prompt, scope) VALUES (
        new.id, new.prompt,
        'g' || coalesce(new.guild_id, 0) || ' u' || coalesce(new.user_id, 0));
END;

CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs BEGIN
    INSERT INTO jobs_search (jobs_search, rowid, prompt, scope) VALUES (
        'delete', old.id, old.prompt,
        'g' || coalesce(old.guild_id, 0) || ' u' || coalesce(old.user_id, 0));
END;

CREATE TRIGGER jobs_search_update AFTER UPDATE OF prompt, guild_id, user_id ON jobs BEGIN
    INSERT INTO jobs_search (jobs_search, rowid, prompt, scope) VALUES (
        'delete', old.id, old.prompt,
        'g' || coalesce(old.guild_id, 0) || ' u' || coalesce(old.user_id, 0));
    INSERT INTO jobs_search (rowid, prompt, scope) VALUES (
        new.id, new.prompt,
        'g' || coalesce(new.guild_id, 0) || ' u' || coalesce(new.user_id, 0));
END;

INSERT INTO jobs_search (rowid, prompt, scope)
    SELECT id, prompt, 'g' || coalesce(guild_id, 0) || ' u' || coalesce(user_id, 0) FROM jobs;
