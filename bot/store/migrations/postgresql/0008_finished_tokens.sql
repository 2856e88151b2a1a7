-- PostgreSQL's spelling of 0008_finished_tokens.sql (the same).
UPDATE jobs SET task_token = NULL, wiro_status = NULL
    WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
      AND (task_token IS NOT NULL OR wiro_status IS NOT NULL);
