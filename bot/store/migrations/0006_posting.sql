-- One result, one post: the process posting a job's result claims it first (compare-and-set)
-- with a short lease it renews while the post is under way; posted_at records it was sent.
-- A poster that died in between left its claim behind, so the next one checks what members
-- already see before posting again.
ALTER TABLE jobs ADD COLUMN poster TEXT;
ALTER TABLE jobs ADD COLUMN posting_until REAL;
