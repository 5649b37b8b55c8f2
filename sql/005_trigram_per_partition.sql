-- Migration 5: the trigram index on message only on the partitions of
-- past days.
--
-- Maintaining a trigram GIN index costs COPY most of its throughput
-- (docs/querying.md, "Index cost": 7k to 11k rows/s with it, 85k to 115k
-- without; 60 s of CPU per million rows).  Rows arrive only in the
-- current day's partition (received_at is logsinkd's clock), so the index
-- is left off the table (and so off the current day's partition, the
-- future ones and the DEFAULT one) and is built once per day, by
-- @NAME@_maintain(), on each partition whose day has ended:
-- @NAME@_pYYYYMMDD_message_trgm.
--
-- 1. The partitions of past days keep the index they have: they are
--    detached, the table's index @NAME@_message_trgm (and with it the
--    partitions' copies) is dropped, and they are attached again.  A
--    detached partition's indexes become its own; attaching it again
--    adopts those that match the table's indexes and leaves the trigram
--    one to it, renamed.  A CHECK constraint of the day's range, added
--    before and dropped after, spares the attach a scan of the rows, so
--    that the table is locked (ACCESS EXCLUSIVE) only briefly.
-- 2. @NAME@_maintain() (see 003_maintain.sql) is redefined: it also
--    builds the missing indexes of past days (step 4 there).

DO $do$
DECLARE
	parent regclass := '@TABLE@'::regclass;
	idx    regclass := to_regclass('@TABLE@_message_trgm');
	today  timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC')
			     AT TIME ZONE 'UTC';
	p      record;
	keep   oid[] := '{}';
	lows   text[] := '{}';
	highs  text[] := '{}';
	k      integer;
	part   regclass;
	child  oid;
	newname text;
BEGIN
	IF idx IS NULL THEN
		RETURN;		-- dropped by hand: nothing to keep
	END IF;
	-- Past days' partitions with their copy of the table's index.
	FOR p IN
		SELECT c.oid, b[1] AS lo, b[2] AS hi
		FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
		CROSS JOIN LATERAL regexp_match(
		    pg_catalog.pg_get_expr(c.relpartbound, c.oid),
		    'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') b
		WHERE i.inhparent = parent AND c.relkind = 'r'
		    AND b[2]::timestamptz <= today
		    AND EXISTS (SELECT FROM pg_catalog.pg_index x
			JOIN pg_catalog.pg_inherits xi ON xi.inhrelid =
			    x.indexrelid
			WHERE x.indrelid = c.oid AND xi.inhparent = idx)
		ORDER BY c.oid
	LOOP
		keep := keep || p.oid;
		lows := lows || p.lo;
		highs := highs || p.hi;
		-- Scans the partition (locking it only).
		EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK '
		    '(received_at >= %L AND received_at < %L)',
		    p.oid::regclass, 'logsink_005_range', p.lo, p.hi);
	END LOOP;
	FOR k IN 1 .. cardinality(keep) LOOP
		EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent,
		    keep[k]::regclass);
	END LOOP;
	EXECUTE format('DROP INDEX %s', idx);
	FOR k IN 1 .. cardinality(keep) LOOP
		part := keep[k]::regclass;
		EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES '
		    'FROM (%L) TO (%L)', parent, part, lows[k], highs[k]);
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', part,
		    'logsink_005_range');
		-- The trigram index, now the partition's own.
		SELECT x.indexrelid INTO child
		    FROM pg_catalog.pg_index x
		    JOIN pg_catalog.pg_opclass o ON o.oid = x.indclass[0]
		    JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid
			AND a.attnum = x.indkey[0]
		    WHERE x.indrelid = part AND x.indnatts = 1
			AND a.attname = 'message' AND o.opcname = 'gin_trgm_ops'
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits xi
			    WHERE xi.inhrelid = x.indexrelid)
		    ORDER BY x.indexrelid LIMIT 1;
		SELECT c.relname || '_message_trgm' INTO newname
		    FROM pg_catalog.pg_class c WHERE c.oid = part;
		IF child IS NOT NULL AND NOT EXISTS (
		    SELECT FROM pg_catalog.pg_class c
		    WHERE c.relnamespace = (SELECT relnamespace
			FROM pg_catalog.pg_class WHERE oid = part)
			AND c.relname = newname) THEN
			EXECUTE format('ALTER INDEX %s RENAME TO %I',
			    child::regclass, newname);
		END IF;
	END LOOP;
END
$do$;

-- @NAME@_maintain(days_ahead, retention_days): as 003_maintain.sql made
-- it (see there for steps 1 to 3 and the locking), and
--  4. builds the trigram index (gin (message gin_trgm_ops)), named
--     <partition>_message_trgm, on partitions whose range ended before
--     today (UTC) and that have none: newest first, at most 3 per call and
--     at most 4 GB of table (pg_table_size) per call, so that a call ends
--     well within logsinkd's maintenance-timeout (1 h; a build takes
--     about 30 s of CPU per million rows of ~120 bytes, 220 MB of table).
--     A partition larger than 4 GB is left without one (said in the
--     summary): build it by hand,
--     CREATE INDEX CONCURRENTLY <partition>_message_trgm ON <partition>
--     USING gin (message gin_trgm_ops), and this function leaves it be.
--     Partitions past the retention are not indexed.
--     A build holds SHARE on its partition only (readers go on; nothing
--     writes to a past day) until the call ends.  It waits at most
--     lock_timeout (2 s), else it is postponed to the next call, as is a
--     build that fails (disk full...): the rest of the call stands.
--     A call that created or dropped partitions builds nothing: it holds
--     ACCESS EXCLUSIVE on the DEFAULT partition or the table until it
--     ends, which would stop readers and writers for the whole build.
--     The next call (hourly, in logsinkd) builds.
--     So today's, the future days' and the DEFAULT partition never get
--     one: rows arrive there, and COPY stays fast.
-- The summary says how many were built ("built N trigram index(es)").

CREATE OR REPLACE FUNCTION @SCHEMA@.@NAME@_maintain(days_ahead integer,
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
	nspoid   oid;
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
	-- Step 4.
	max_builds constant integer := 3;
	max_bytes  constant bigint := 4 * 1024 * 1024 * 1024::bigint;
	trgm     name;			-- pg_trgm's schema
	idx      text;
	indexed  text[] := '{}';
	tries    integer := 0;
	bytes    bigint := 0;
	waiting  integer := 0;		-- left for the next calls
	too_big  integer := 0;
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
	SELECT n.nspname, n.oid, c.relname INTO nsp, nspoid, base
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

	-- 4. Trigram indexes on the partitions of past days, newest first.
	SELECT n.nspname INTO trgm
	    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	    WHERE e.extname = 'pg_trgm';
	FOR p IN
		SELECT c.oid::regclass AS part, c.relname AS name,
		    pg_table_size(c.oid) AS size
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		CROSS JOIN LATERAL regexp_match(
		    pg_get_expr(c.relpartbound, c.oid),
		    'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') b
		WHERE i.inhparent = parent AND c.relkind = 'r'
		    AND b[2]::timestamptz <= today::timestamptz
		    AND (cutoff IS NULL OR b[2]::timestamptz > cutoff)
		    AND NOT EXISTS (SELECT FROM pg_index x
			JOIN pg_opclass o ON o.oid = x.indclass[0]
			JOIN pg_attribute a ON a.attrelid = x.indrelid
			    AND a.attnum = x.indkey[0]
			WHERE x.indrelid = c.oid AND x.indnatts = 1
			    AND a.attname = 'message'
			    AND o.opcname = 'gin_trgm_ops' AND x.indisvalid)
		ORDER BY b[1]::timestamptz DESC
	LOOP
		IF p.size > max_bytes THEN
			too_big := too_big + 1;
			CONTINUE;
		END IF;
		IF trgm IS NULL OR cardinality(created) > 0
		    OR cardinality(dropped) > 0 OR tries >= max_builds
		    OR bytes + p.size > max_bytes THEN
			waiting := waiting + 1;
			CONTINUE;
		END IF;
		tries := tries + 1;
		bytes := bytes + p.size;
		idx := p.name || '_message_trgm';
		IF EXISTS (SELECT FROM pg_class c WHERE c.relnamespace =
		    nspoid AND c.relname = idx::name) THEN
			problems := problems || format('cannot index %s: %I '
			    'exists (not a valid trigram index on it)', p.name,
			    idx);
			CONTINUE;
		END IF;
		BEGIN
			EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s '
			    'USING gin (message %I.gin_trgm_ops)', idx, p.part,
			    trgm);
			indexed := indexed || idx;
		EXCEPTION
		WHEN lock_not_available OR deadlock_detected THEN
			problems := problems || format('indexing %s postponed: '
			    '%s', p.name, SQLERRM);
		WHEN OTHERS THEN
			-- Disk full, out of memory: the partitions made
			-- above stay; the next call tries again.
			problems := problems || format('indexing %s failed: %s',
			    p.name, SQLERRM);
		END;
	END LOOP;
	IF trgm IS NULL AND waiting > 0 THEN
		problems := problems || 'no trigram indexes: the extension '
		    'pg_trgm is not installed'::text;
	END IF;

	IF cardinality(problems) > 0 THEN
		RAISE WARNING '%_maintain: %', parent,
		    array_to_string(problems, '; ');
	END IF;
	RETURN format('%s: created %s partition(s)%s, dropped %s%s, moved %s '
	    'row(s) out of the default partition, deleted %s expired row(s) '
	    'from it, built %s trigram index(es)%s%s%s%s', parent,
	    cardinality(created),
	    CASE WHEN cardinality(created) > 0
		THEN ' (' || array_to_string(created, ', ') || ')' END,
	    cardinality(dropped),
	    CASE WHEN cardinality(dropped) > 0
		THEN ' (' || array_to_string(dropped, ', ') || ')' END,
	    moved, expired, cardinality(indexed),
	    CASE WHEN cardinality(indexed) > 0
		THEN ' (' || array_to_string(indexed, ', ') || ')' END,
	    CASE WHEN waiting > 0
		THEN format(', %s past partition(s) left for the next call',
		    waiting) END,
	    CASE WHEN too_big > 0
		THEN format(', %s past partition(s) over 4 GB left without',
		    too_big) END,
	    CASE WHEN cardinality(problems) > 0
		THEN '; ' || array_to_string(problems, '; ') END);
END
$fn$;

-- CREATE OR REPLACE keeps the owner and the grants (003_maintain.sql,
-- always_roles.sql); said again for the reader.
REVOKE ALL ON FUNCTION @SCHEMA@.@NAME@_maintain(integer, integer)
    FROM PUBLIC;
