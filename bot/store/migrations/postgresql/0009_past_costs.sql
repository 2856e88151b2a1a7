-- PostgreSQL's spelling of 0009_past_costs.sql (the same).
DROP INDEX IF EXISTS jobs_priced;
