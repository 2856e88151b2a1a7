-- A job in under 600 bytes at a million jobs (both backends run this file).
--
-- A member's time windows (daily limit, member budgets, usage) now bound the job id from
-- below by guild_days.first_id and walk jobs_by_member: the (server, member, created_at)
-- index is no longer needed (35 bytes a job).
DROP INDEX jobs_spend_by_member;
-- Nothing reads the REAL `cost` any more: every sum and every job reads cost_pico (0004).
-- jobs_by_guild carried it, and created_at, for a spend read that now goes through
-- jobs_spend_by_guild; /history needs only the server, the id order and the channel.
DROP INDEX jobs_by_guild;
ALTER TABLE jobs DROP COLUMN cost;
CREATE INDEX jobs_by_guild ON jobs (guild_id, id, channel_id);
