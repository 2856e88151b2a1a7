-- One job, one owner: the process handling a job claims it (compare-and-set) and renews a
-- lease; a dead process's jobs are picked up by another once the lease has passed.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until REAL;
