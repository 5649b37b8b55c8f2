-- Applied on every --init-db after always_roles.sql (which creates the
-- roles): the writer may add to the dead-letter table, the reader read it.

DO $do$
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_roles
	    WHERE rolname = 'logsink_writer') THEN
		GRANT INSERT ON TABLE @TABLE@_rejected TO logsink_writer;
	END IF;
	IF EXISTS (SELECT FROM pg_catalog.pg_roles
	    WHERE rolname = 'logsink_reader') THEN
		GRANT SELECT ON TABLE @TABLE@_rejected TO logsink_reader;
	END IF;
END
$do$;
