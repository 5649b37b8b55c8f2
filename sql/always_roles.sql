-- Applied on every --init-db, after the migrations.  Must be idempotent.
--
-- Two group roles (NOLOGIN), shared by every logsink table of the cluster:
--   logsink_writer  what logsinkd needs: USAGE on the schema, INSERT on the
--                   table, EXECUTE on @NAME@_maintain().  No SELECT,
--                   UPDATE, DELETE or TRUNCATE.
--   logsink_reader  USAGE on the schema, SELECT on the table.
-- Login roles are made members by a DBA (docs/querying.md, "Roles").
-- Creating roles needs CREATEROLE (or superuser): without it the roles are
-- skipped with a NOTICE, and granted to once they exist (a DBA may create
-- them and run --init-db again).  Every role may run
-- @NAME@_schema_version(); the daemon's connection check needs it.

SET LOCAL client_min_messages TO notice;

DO $do$
DECLARE
	may_create boolean;
	nsp        oid := (SELECT c.relnamespace FROM pg_catalog.pg_class c
			   WHERE c.oid = '@TABLE@'::regclass);
	r          text;
BEGIN
	SELECT rolsuper OR rolcreaterole INTO may_create
	    FROM pg_catalog.pg_roles WHERE rolname = current_user;
	FOREACH r IN ARRAY ARRAY['logsink_writer', 'logsink_reader'] LOOP
		CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles
		    WHERE rolname = r);
		IF may_create THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		ELSE
			RAISE NOTICE 'role % not created: % may not create '
			    'roles (needs CREATEROLE); grants to it skipped. '
			    'Have a DBA run: CREATE ROLE % NOLOGIN; then run '
			    'logsinkd --init-db again', r, current_user, r;
		END IF;
	END LOOP;

	IF EXISTS (SELECT FROM pg_catalog.pg_roles
	    WHERE rolname = 'logsink_writer') THEN
		-- Not when it has USAGE already (public schema): a GRANT by
		-- a non-owner would only warn.
		IF NOT pg_catalog.has_schema_privilege('logsink_writer', nsp,
		    'USAGE') THEN
			GRANT USAGE ON SCHEMA @SCHEMA@ TO logsink_writer;
		END IF;
		GRANT INSERT ON TABLE @TABLE@ TO logsink_writer;
		GRANT EXECUTE ON FUNCTION
		    @SCHEMA@.@NAME@_maintain(integer, integer)
		    TO logsink_writer;
	END IF;
	IF EXISTS (SELECT FROM pg_catalog.pg_roles
	    WHERE rolname = 'logsink_reader') THEN
		IF NOT pg_catalog.has_schema_privilege('logsink_reader', nsp,
		    'USAGE') THEN
			GRANT USAGE ON SCHEMA @SCHEMA@ TO logsink_reader;
		END IF;
		GRANT SELECT ON TABLE @TABLE@ TO logsink_reader;
	END IF;
END
$do$;
