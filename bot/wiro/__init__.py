"""A small async client for Wiro's HTTP API; knows nothing of Discord or SQLite."""
