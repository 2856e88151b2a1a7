-- Past costs (a price for a model Wiro gives none for) are read from the last few thousand
-- jobs by rowid: the index of every priced job cost 35 bytes a job at a million jobs.
DROP INDEX IF EXISTS jobs_priced;
