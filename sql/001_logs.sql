-- The log table.  logsinkd --init-db applies this file with @SCHEMA@,
-- @NAME@ and @TABLE@ (= @SCHEMA@.@NAME@) replaced by the configured table.
-- Every statement is idempotent.

CREATE SCHEMA IF NOT EXISTS @SCHEMA@;

CREATE TABLE IF NOT EXISTS @TABLE@ (
	received_at timestamptz NOT NULL,
	peer        inet,
	host        text,
	app         text,
	procid      text,
	msgid       text,
	facility    smallint,
	severity    smallint,
	event_time  timestamptz,
	message     text NOT NULL,
	fields      jsonb
);

-- Tables made by an older logsinkd get the columns added since.
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS peer inet;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS host text;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS app text;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS procid text;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS msgid text;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS facility smallint;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS severity smallint;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS event_time timestamptz;
ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS fields jsonb;

-- Time ranges: a BRIN index is tiny and suits append-mostly time order.
CREATE INDEX IF NOT EXISTS @NAME@_received_at_brin
	ON @TABLE@ USING brin (received_at);
