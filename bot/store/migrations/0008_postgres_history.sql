-- PostgreSQL's history indexes (see postgresql/0008_postgres_history.sql). SQLite already has
-- them: its indexes end in the rowid, and FTS5 (0002) is its words index.
SELECT 1;
