-- PostgreSQL's spelling of 0003_claims.sql (a lease is a time: DOUBLE PRECISION).
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
