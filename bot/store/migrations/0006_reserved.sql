-- Placeholder for the number another branch uses (0006 posting). Delete when merging.
SELECT 1;
