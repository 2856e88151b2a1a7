-- Jobs: one row per /imagine (or CLI imagine), kept forever as history.
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    source            TEXT    NOT NULL DEFAULT 'discord',   -- 'discord' | 'cli'
    guild_id          INTEGER,
    channel_id        INTEGER,
    user_id           INTEGER,
    model             TEXT    NOT NULL,
    prompt            TEXT    NOT NULL,
    inputs            TEXT    NOT NULL,                     -- JSON: every resolved input, seed included
    seed              INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    wiro_status       TEXT,
    task_id           TEXT,
    task_token        TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        REAL    NOT NULL,
    submitted_at      REAL,
    started_at        REAL,
    finished_at       REAL,
    elapsed_seconds   REAL,
    cost              REAL,
    error             TEXT,
    error_kind        TEXT,
    -- Discord: the status message, the interaction it answers, the result message.
    status_message_id INTEGER,
    interaction_token TEXT,
    interaction_at    REAL,
    result_message_id INTEGER,
    posted_at         REAL
);
CREATE INDEX jobs_by_guild ON jobs (guild_id, created_at DESC);
CREATE INDEX jobs_by_user ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_by_time ON jobs (created_at DESC);
CREATE INDEX jobs_unfinished ON jobs (status)
    WHERE status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out');

-- Images a job produced, downloaded to disk (Wiro keeps its URLs only for a while).
CREATE TABLE outputs (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    url          TEXT    NOT NULL,
    path         TEXT,
    width        INTEGER,
    height       INTEGER,
    UNIQUE (job_id, position)
);

-- Per-server settings; NULL means "use the bot's configured value".
CREATE TABLE guild_settings (
    guild_id                 INTEGER PRIMARY KEY,
    default_model            TEXT,
    disabled_models          TEXT NOT NULL DEFAULT '[]',    -- JSON list of slugs
    max_samples              INTEGER,
    max_steps                INTEGER,
    max_concurrent_per_user  INTEGER,
    max_jobs_per_user_per_day INTEGER,
    nsfw_anywhere            INTEGER NOT NULL DEFAULT 0,
    updated_at               REAL
);

-- Per-server defaults for one input of one model (value stored as JSON).
CREATE TABLE model_defaults (
    guild_id INTEGER NOT NULL,
    model    TEXT    NOT NULL,
    option   TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (guild_id, model, option)
);

-- Tool/Detail answers for models added by slug in the config.
CREATE TABLE tool_details (
    slug       TEXT PRIMARY KEY,
    detail     TEXT NOT NULL,
    fetched_at REAL NOT NULL
);
