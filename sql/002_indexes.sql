-- Migration 2: indexes for the questions operators ask (docs/querying.md).
--
-- Each is created on the partitioned table, so every partition (present
-- and future) gets its own copy.  docs/querying.md, "Index cost", lists
-- them for measuring their cost on COPY throughput.

-- Time ranges: tiny, and suits rows arriving in time order.
CREATE INDEX @NAME@_time_brin ON @TABLE@ USING brin (received_at);

-- One host, app or severity over a time range.
CREATE INDEX @NAME@_host_time ON @TABLE@ (host, received_at);
CREATE INDEX @NAME@_app_time ON @TABLE@ (app, received_at);
CREATE INDEX @NAME@_severity_time ON @TABLE@ (severity, received_at);

-- JSON containment: fields @> '{"user": "alice"}'.
CREATE INDEX @NAME@_fields_gin ON @TABLE@ USING gin (fields jsonb_path_ops);

-- Substring and regular expression search on message (ILIKE, ~).
-- pg_trgm is a trusted extension: the owner of the database or anyone
-- with CREATE on it may install it.  It goes into the table's schema
-- unless the database already has it.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA @SCHEMA@;

DO $do$
DECLARE
	trgm_schema name;
BEGIN
	SELECT n.nspname INTO STRICT trgm_schema
	    FROM pg_catalog.pg_extension e
	    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	    WHERE e.extname = 'pg_trgm';
	EXECUTE format('CREATE INDEX @NAME@_message_trgm ON @TABLE@ '
	    'USING gin (message %I.gin_trgm_ops)', trgm_schema);
END
$do$;
