-- A finished job no longer needs its task's socket token (it opens Wiro's socket for that task:
-- a secret kept for nothing) nor Wiro's finer status (it picks Cancel or Kill while the task
-- runs). Both go when a job finishes, as expired interaction tokens do; here, for the jobs
-- that finished before: about 50 bytes a job.
UPDATE jobs SET task_token = NULL, wiro_status = NULL
    WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
      AND (task_token IS NOT NULL OR wiro_status IS NOT NULL);
