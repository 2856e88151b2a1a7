-- PostgreSQL's spelling of 0006_posting.sql (a lease is a time: DOUBLE PRECISION).
ALTER TABLE jobs ADD COLUMN poster TEXT;
ALTER TABLE jobs ADD COLUMN posting_until DOUBLE PRECISION;
