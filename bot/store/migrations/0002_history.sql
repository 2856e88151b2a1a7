-- History at a million jobs: smaller rows, indexes for every hot query, prompt search.
-- The jobs table is changed in place (no rebuild): its columns, their order and every
-- job stay as they are, and later migrations may add columns freely.

-- When a job's images were removed from disk by retention (NULL: still there, or none).
ALTER TABLE jobs ADD COLUMN outputs_expired_at REAL;

-- Inputs were most of a row: the prompt a second time, and the same options over and over.
-- A job now points to its set of inputs, stored once for every job that shares it; in the
-- set, the prompt and the seed (each in its own column already) are null placeholders that
-- keep the options' order. `inputs` is left empty ('') for such jobs.
CREATE TABLE input_sets (
    id     INTEGER PRIMARY KEY,
    inputs TEXT NOT NULL UNIQUE                                -- JSON
);
ALTER TABLE jobs ADD COLUMN inputs_set INTEGER REFERENCES input_sets (id);

-- (Every SET expression below reads the row as it was before the UPDATE.)
INSERT OR IGNORE INTO input_sets (inputs)
    SELECT CASE WHEN json_type(inputs, '$.seed') = 'integer'
                      AND json_extract(inputs, '$.seed') = seed
                THEN json_set(placed, '$.seed', json('null')) ELSE placed END
    FROM (SELECT id, inputs, seed,
                 CASE WHEN json_type(inputs, '$.prompt') = 'text'
                           AND json_extract(inputs, '$.prompt') = prompt
                      THEN json_set(inputs, '$.prompt', json('null')) ELSE json(inputs) END
                 AS placed
          FROM jobs)
    ORDER BY id;
UPDATE jobs SET
    inputs = '',
    inputs_set = (
        SELECT input_sets.id FROM input_sets WHERE input_sets.inputs =
            CASE WHEN json_type(jobs.inputs, '$.seed') = 'integer'
                      AND json_extract(jobs.inputs, '$.seed') = jobs.seed
                 THEN json_set(
                     CASE WHEN json_type(jobs.inputs, '$.prompt') = 'text'
                               AND json_extract(jobs.inputs, '$.prompt') = jobs.prompt
                          THEN json_set(jobs.inputs, '$.prompt', json('null'))
                          ELSE json(jobs.inputs) END,
                     '$.seed', json('null'))
                 ELSE CASE WHEN json_type(jobs.inputs, '$.prompt') = 'text'
                               AND json_extract(jobs.inputs, '$.prompt') = jobs.prompt
                           THEN json_set(jobs.inputs, '$.prompt', json('null'))
                           ELSE json(jobs.inputs) END
            END);

-- Interaction tokens live 15 minutes at Discord; older ones are dead weight (and secrets).
UPDATE jobs SET interaction_token = NULL, interaction_at = NULL
    WHERE interaction_token IS NOT NULL
      AND (interaction_at IS NULL
           OR interaction_at < (julianday('now') - 2440587.5) * 86400.0 - 900);

-- History pages walk ids newest first (keyset, not OFFSET). The server scope filters on
-- channel_id, and the recent spend sums cost, from the index alone, without reading rows.
DROP INDEX jobs_by_guild;
DROP INDEX jobs_by_user;
DROP INDEX jobs_by_time;
CREATE INDEX jobs_by_guild ON jobs (guild_id, id, channel_id, created_at, cost);
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id);

-- Spend per server and day (UTC), kept by triggers, so /settings show adds up a few hundred
-- days instead of every job of a large server; `first_id` (the day's smallest job id) lets
-- the part of a day that a "since" cuts through be read from jobs_by_guild by id range.
-- Jobs of the command line count under guild 0.
CREATE TABLE guild_days (
    guild    INTEGER NOT NULL,
    day      INTEGER NOT NULL,                              -- created_at // 86400
    jobs     INTEGER NOT NULL,
    cost     REAL    NOT NULL,
    first_id INTEGER NOT NULL,
    PRIMARY KEY (guild, day)
) WITHOUT ROWID;

INSERT INTO guild_days (guild, day, jobs, cost, first_id)
    SELECT coalesce(guild_id, 0), CAST(created_at / 86400 AS INTEGER), COUNT(*),
           coalesce(SUM(cost), 0), MIN(id)
    FROM jobs GROUP BY 1, 2;

CREATE TRIGGER guild_days_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO guild_days (guild, day, jobs, cost, first_id)
        VALUES (coalesce(new.guild_id, 0), CAST(new.created_at / 86400 AS INTEGER), 1,
                coalesce(new.cost, 0), new.id)
        ON CONFLICT (guild, day) DO UPDATE SET
            jobs = jobs + 1, cost = cost + excluded.cost, first_id = min(first_id, new.id);
END;

CREATE TRIGGER guild_days_cost AFTER UPDATE OF cost ON jobs WHEN new.cost IS NOT old.cost
BEGIN
    UPDATE guild_days SET cost = cost + coalesce(new.cost, 0) - coalesce(old.cost, 0)
        WHERE guild = coalesce(new.guild_id, 0)
          AND day = CAST(new.created_at / 86400 AS INTEGER);
END;

CREATE TRIGGER guild_days_delete AFTER DELETE ON jobs BEGIN
    UPDATE guild_days SET jobs = jobs - 1, cost = cost - coalesce(old.cost, 0)
        WHERE guild = coalesce(old.guild_id, 0)
          AND day = CAST(old.created_at / 86400 AS INTEGER);
END;

-- Start-up reads only these small sets, in id order (the store spells their conditions
-- literally, which is how SQLite recognises a partial index).
DROP INDEX jobs_unfinished;
CREATE INDEX jobs_unfinished ON jobs (id)
    WHERE status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out');
CREATE INDEX jobs_unposted ON jobs (id) WHERE posted_at IS NULL AND source = 'discord';
CREATE INDEX jobs_with_token ON jobs (interaction_at) WHERE interaction_token IS NOT NULL;

-- Outputs: keyed by (job, position) in the table itself, one B-tree instead of a table and
-- its UNIQUE index (nothing refers to the old `id`).
CREATE TABLE outputs_new (
    job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    url          TEXT    NOT NULL,
    path         TEXT,                                      -- NULL: removed by retention
    width        INTEGER,
    height       INTEGER,
    PRIMARY KEY (job_id, position)
) WITHOUT ROWID;
INSERT INTO outputs_new (job_id, position, name, content_type, size, url, path, width, height)
    SELECT job_id, position, name, content_type, size, url, path, width, height FROM outputs;
DROP TABLE outputs;
ALTER TABLE outputs_new RENAME TO outputs;

-- Outputs still on disk, oldest job first: what retention walks and sums.
CREATE INDEX outputs_on_disk ON outputs (job_id, size) WHERE path IS NOT NULL;

-- Prompt search. Contentless (the text stays in jobs only) and positions-free (detail=none:
-- whole-word search needs neither); words are stemmed (porter), so "cats" finds "cat".
-- Each job's text is its prompt then "g<guild> u<user> g<guild>m<model's letters and
-- digits>", so a search within a server or a member intersects inside the index, and a
-- model filter reads one word's list, instead of reading every job of the server. Such a word in a prompt only adds candidates: the
-- store's SQL conditions decide.
CREATE VIRTUAL TABLE jobs_search USING fts5 (
    text,
    content = '', detail = 'none', columnsize = 0,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, text) VALUES (
        new.id,
        new.prompt || ' g' || coalesce(new.guild_id, 0) || ' u' || coalesce(new.user_id, 0)
            || ' g' || coalesce(new.guild_id, 0) || 'm'
            || replace(replace(replace(replace(lower(new.model), '/', ''), '-', ''), '_', ''), '.', ''));
END;

CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs BEGIN
    INSERT INTO jobs_search (jobs_search, rowid, text) VALUES (
        'delete', old.id,
        old.prompt || ' g' || coalesce(old.guild_id, 0) || ' u' || coalesce(old.user_id, 0)
            || ' g' || coalesce(old.guild_id, 0) || 'm'
            || replace(replace(replace(replace(lower(old.model), '/', ''), '-', ''), '_', ''), '.', ''));
END;

CREATE TRIGGER jobs_search_update AFTER UPDATE OF prompt, guild_id, user_id, model ON jobs
BEGIN
    INSERT INTO jobs_search (jobs_search, rowid, text) VALUES (
        'delete', old.id,
        old.prompt || ' g' || coalesce(old.guild_id, 0) || ' u' || coalesce(old.user_id, 0)
            || ' g' || coalesce(old.guild_id, 0) || 'm'
            || replace(replace(replace(replace(lower(old.model), '/', ''), '-', ''), '_', ''), '.', ''));
    INSERT INTO jobs_search (rowid, text) VALUES (
        new.id,
        new.prompt || ' g' || coalesce(new.guild_id, 0) || ' u' || coalesce(new.user_id, 0)
            || ' g' || coalesce(new.guild_id, 0) || 'm'
            || replace(replace(replace(replace(lower(new.model), '/', ''), '-', ''), '_', ''), '.', ''));
END;

INSERT INTO jobs_search (rowid, text)
    SELECT jobs.id,
        jobs.prompt || ' g' || coalesce(jobs.guild_id, 0) || ' u' || coalesce(jobs.user_id, 0)
            || ' g' || coalesce(jobs.guild_id, 0) || 'm'
            || replace(replace(replace(replace(lower(jobs.model), '/', ''), '-', ''), '_', ''), '.', '')
    FROM jobs;
