-- Secrets the web server makes once and keeps (the gallery links' signing key).
CREATE TABLE web_secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at REAL NOT NULL
);

-- What a /gallery link grants: who asked, where, and which channels they could see then.
-- The signed link names a row; the row is the snapshot of the member's access at that time.
CREATE TABLE gallery_links (
    id           INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    channels     TEXT,                        -- JSON list of channel ids; NULL: every channel
    nsfw_channels TEXT   NOT NULL DEFAULT '[]', -- JSON: the age-restricted ones among them
    from_nsfw    INTEGER NOT NULL DEFAULT 0,  -- asked in an age-restricted channel
    admin        INTEGER NOT NULL DEFAULT 0,  -- Manage Server when asked
    roles        TEXT    NOT NULL DEFAULT '[]', -- JSON: the member's role ids when asked
    created_at   REAL    NOT NULL,
    expires_at   REAL    NOT NULL
);
CREATE INDEX gallery_links_by_expiry ON gallery_links (expires_at);

-- Display names of members, as last seen in an interaction (the bot has no members intent).
CREATE TABLE member_names (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    seen_at    REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
