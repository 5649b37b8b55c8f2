-- Migration 4: the dead-letter table.  When PostgreSQL refuses rows of a
-- COPY because of their data (SQLSTATE classes 22, 23, P0, 54: a bad
-- value, a CHECK or other constraint, a trigger that raises, a value too
-- large for an index), logsinkd bisects the batch, commits every other
-- row, and stores each refused row here with the reason.
--   received_at, peer  as logsinkd tried to store them
--   raw                the message bytes as received (after the U+FFFD
--                      replacement of NUL and invalid UTF-8 bytes)
--   copy_row           the whole row, in COPY text format (as logsinkd encoded it)
--   sqlstate, error    why PostgreSQL refused it

CREATE TABLE IF NOT EXISTS @TABLE@_rejected (
	rejected_at timestamptz NOT NULL DEFAULT now(),
	received_at timestamptz,
	peer        text,
	raw         bytea NOT NULL,
	copy_row    text NOT NULL,
	sqlstate    text NOT NULL,
	error       text NOT NULL
);

CREATE INDEX IF NOT EXISTS @NAME@_rejected_time
	ON @TABLE@_rejected (rejected_at);
