-- Migration 3: @NAME@_maintain(days_ahead, retention_days), the partition
-- keeper.  logsinkd calls it at start-up and hourly; --init-db calls it
-- once (always_partitions.sql); operators may call it by hand.
--
-- What it does, in this order:
--  1. retention_days > 0: drops the partitions whose whole range ends at
--     least retention_days days ago, and deletes such rows from the
--     DEFAULT partition.  0 keeps everything.
--  2. creates the partitions for the UTC days today .. today + days_ahead
--     that do not exist yet (idempotent), and partitions for past days
--     whose rows sit in the DEFAULT partition (logsinkd was down for
--     longer than days_ahead days, or nobody called this function).
--     Rows of the new day found in the DEFAULT partition are moved into
--     it: PostgreSQL refuses to attach a partition while the DEFAULT
--     partition holds rows of its range.
-- Returns a one-line summary.  Days are UTC; partition names are
-- <table>_pYYYYMMDD.
--
-- Locking, so that writers are not stalled: a new day is built as a
-- standalone table and then ATTACHed, which takes only SHARE UPDATE
-- EXCLUSIVE on the table (COPY and SELECT go on) and ACCESS EXCLUSIVE on
-- the DEFAULT partition (briefly: it is normally empty).  Dropping a
-- partition needs ACCESS EXCLUSIVE on the table, so drops come first and
-- wait at most lock_timeout (2 s); a step that cannot get its locks in
-- time, or is picked as a deadlock victim, is postponed to the next call
-- and reported in the summary (and as a WARNING).  Only one call per table
-- runs at a time; a concurrent call returns at once.
--
-- SECURITY DEFINER: it runs as the table owner, so the daemon's writer
-- role may call it without owning anything.  search_path is pinned and
-- every object it uses is schema-qualified.

CREATE FUNCTION @SCHEMA@.@NAME@_maintain(days_ahead integer,
    retention_days integer) RETURNS text
	LANGUAGE plpgsql
	SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET TimeZone = 'UTC'
	SET DateStyle = 'ISO, YMD'
	SET lock_timeout = '2s'
AS $fn$
DECLARE
	parent   regclass := '@TABLE@'::regclass;
	nsp      name;
	base     name;
	def      regclass;		-- the DEFAULT partition, or NULL
	today    date := now()::date;	-- TimeZone is UTC in here
	cutoff   timestamptz;
	p        record;
	d        date;
	days     date[];
	stranded date[];
	part     text;
	lo       timestamptz;
	hi       timestamptz;
	n        bigint;
	created  text[] := '{}';
	dropped  text[] := '{}';
	problems text[] := '{}';
	moved    bigint := 0;
	expired  bigint := 0;
BEGIN
	IF days_ahead IS NULL OR days_ahead NOT BETWEEN 0 AND 366 THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
		    MESSAGE = format('days_ahead must be 0..366, not %s',
			coalesce(days_ahead::text, 'NULL'));
	END IF;
	IF retention_days IS NULL OR retention_days < 0 THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
		    MESSAGE = format('retention_days must be >= 0 (0: keep '
			'forever), not %s', coalesce(retention_days::text,
			'NULL'));
	END IF;
	-- 0x6c6f6773 = 'logs': a class of advisory locks of our own.
	IF NOT pg_try_advisory_xact_lock(1819240307, parent::oid::integer)
	    THEN
		RETURN format('skipped: another %s_maintain() is running',
		    parent);
	END IF;
	SELECT n.nspname, c.relname INTO nsp, base
	    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	    WHERE c.oid = parent;
	SELECT nullif(t.partdefid, 0)::regclass INTO def
	    FROM pg_partitioned_table t WHERE t.partrelid = parent;

	-- 1. Retention.
	IF retention_days > 0 THEN
		cutoff := now() - make_interval(days => retention_days);
		FOR p IN
			SELECT s.part, s.name, s.hi
			FROM (SELECT c.oid::regclass AS part, c.relname AS name,
				(regexp_match(pg_get_expr(c.relpartbound, c.oid),
				    'TO \(''([^'']*)''\)'))[1]::timestamptz AS hi
			    FROM pg_inherits i
			    JOIN pg_class c ON c.oid = i.inhrelid
			    WHERE i.inhparent = parent) s
			WHERE s.hi <= cutoff
			ORDER BY s.hi
		LOOP
			BEGIN
				-- The table first, as DROP would: then
				-- nothing else can be waiting on us.
				EXECUTE format('LOCK TABLE %s IN ACCESS '
				    'EXCLUSIVE MODE', parent);
				EXECUTE format('DROP TABLE %s', p.part);
				dropped := dropped || p.name::text;
			EXCEPTION WHEN lock_not_available OR deadlock_detected
			    THEN
				problems := problems || format('dropping %s '
				    'postponed: %s', p.name, SQLERRM);
				EXIT;
			END;
		END LOOP;
		IF def IS NOT NULL THEN
			BEGIN
				EXECUTE format('DELETE FROM %s WHERE '
				    'received_at < $1', def) USING cutoff;
				GET DIAGNOSTICS expired = ROW_COUNT;
			EXCEPTION WHEN lock_not_available OR deadlock_detected
			    THEN
				problems := problems || format('deleting '
				    'expired rows from %s postponed: %s', def,
				    SQLERRM);
			END;
		END IF;
	END IF;

	-- 2. Days that need a partition: the coming ones, and past ones
	-- whose rows are stranded in the DEFAULT partition.
	days := ARRAY(SELECT g::date FROM generate_series(today::timestamp,
	    (today + days_ahead)::timestamp, interval '1 day') g);
	IF def IS NOT NULL THEN
		EXECUTE format('SELECT array_agg(DISTINCT received_at::date) '
		    'FROM %s WHERE received_at < $1', def)
		    INTO STRICT stranded USING today::timestamptz;
		days := coalesce(stranded, '{}') || days;
	END IF;

	-- 3. Create them.
	FOR d IN SELECT DISTINCT x FROM unnest(days) x ORDER BY x LOOP
		lo := d::timestamptz;
		hi := (d + 1)::timestamptz;
		CONTINUE WHEN EXISTS (
			SELECT FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			CROSS JOIN LATERAL regexp_match(
			    pg_get_expr(c.relpartbound, c.oid),
			    'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') b
			WHERE i.inhparent = parent
			    AND b[1]::timestamptz < hi AND b[2]::timestamptz > lo);
		part := base || '_p' || to_char(d, 'YYYYMMDD');
		BEGIN
			n := 0;
			IF def IS NOT NULL THEN
				-- ATTACH takes this lock anyway; taken now,
				-- no row of the day can slip in meanwhile.
				EXECUTE format('LOCK TABLE %s IN ACCESS '
				    'EXCLUSIVE MODE', def);
			END IF;
			EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING '
			    'ALL EXCLUDING INDEXES)', nsp, part, parent);
			-- Proves the range, so ATTACH need not scan the rows.
			EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I '
			    'CHECK (received_at >= %L AND received_at < %L)',
			    nsp, part, part || '_range', lo, hi);
			IF def IS NOT NULL THEN
				EXECUTE format('WITH m AS (DELETE FROM %s WHERE '
				    'received_at >= $1 AND received_at < $2 '
				    'RETURNING *) INSERT INTO %I.%I SELECT * '
				    'FROM m', def, nsp, part) USING lo, hi;
				GET DIAGNOSTICS n = ROW_COUNT;
			END IF;
			-- Creates the table's indexes on the partition.
			EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I '
			    'FOR VALUES FROM (%L) TO (%L)', parent, nsp, part, lo,
			    hi);
			EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I',
			    nsp, part, part || '_range');
			created := created || part;
			moved := moved + n;
		EXCEPTION
		WHEN lock_not_available OR deadlock_detected THEN
			problems := problems || format('creating %s postponed: '
			    '%s', part, SQLERRM);
			EXIT;
		WHEN duplicate_table OR invalid_object_definition THEN
			-- A table of that name that is not a partition, or
			-- a partition made by hand overlapping the day.
			problems := problems || format('cannot create %s: %s',
			    part, SQLERRM);
		END;
	END LOOP;

	IF cardinality(problems) > 0 THEN
		RAISE WARNING '%_maintain: %', parent,
		    array_to_string(problems, '; ');
	END IF;
	RETURN format('%s: created %s partition(s)%s, dropped %s%s, moved %s '
	    'row(s) out of the default partition, deleted %s expired row(s) '
	    'from it%s', parent, cardinality(created),
	    CASE WHEN cardinality(created) > 0
		THEN ' (' || array_to_string(created, ', ') || ')' END,
	    cardinality(dropped),
	    CASE WHEN cardinality(dropped) > 0
		THEN ' (' || array_to_string(dropped, ', ') || ')' END,
	    moved, expired,
	    CASE WHEN cardinality(problems) > 0
		THEN '; ' || array_to_string(problems, '; ') END);
END
$fn$;

-- Only the owner and those it grants (logsink_writer, always_roles.sql).
REVOKE ALL ON FUNCTION @SCHEMA@.@NAME@_maintain(integer, integer)
    FROM PUBLIC;
