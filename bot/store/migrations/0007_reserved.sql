-- Placeholder for the number another branch uses (0007 shared claims). Delete when merging.
SELECT 1;
