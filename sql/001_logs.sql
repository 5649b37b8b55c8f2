-- Migration 1: the log table, partitioned by day, and its version function.
--
-- logsinkd --init-db applies each sql/NNN_*.sql file once, in order, in its
-- own transaction, and records it in @TABLE@_schema_version (created by
-- schema.c before the first migration).  @SCHEMA@, @NAME@ and @TABLE@
-- (= @SCHEMA@.@NAME@) are replaced by the configured table.  Migrations are
-- never edited once released: later changes go into a new file.

-- One row per received line.  The daemon writes the columns listed in
-- COPYENC_COLUMNS (include/logsink/copyenc.h) with COPY.
CREATE TABLE @TABLE@ (
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
) PARTITION BY RANGE (received_at);

COMMENT ON TABLE @TABLE@ IS
	'Lines received by logsinkd; one partition per UTC day, made by @NAME@_maintain()';

-- Rows for which no day partition exists yet land here instead of being
-- rejected; @NAME@_maintain() moves them into day partitions.
CREATE TABLE @TABLE@_default PARTITION OF @TABLE@ DEFAULT;

-- The schema version, readable by every role (the daemon's connection
-- check runs as the writer, which may not SELECT from the version table).
CREATE FUNCTION @SCHEMA@.@NAME@_schema_version() RETURNS integer
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT max(version) FROM @TABLE@_schema_version
$fn$;

GRANT EXECUTE ON FUNCTION @SCHEMA@.@NAME@_schema_version() TO PUBLIC;
