-- The token of a job's last claim, new at every claim: the lease check of
-- every write to a running job compares it (DESIGN invariant 8).
ALTER TABLE job ADD COLUMN lease_id INTEGER;
