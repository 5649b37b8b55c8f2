-- Applied on every --init-db, after the migrations (schema.c: files whose
-- name does not start with a version number).  Must be idempotent.
--
-- Today's and the next three days' partitions, so that the first rows do
-- not wait in the DEFAULT partition.  Never drops anything (retention 0):
-- the daemon applies its own retention when it calls this hourly.
SELECT @SCHEMA@.@NAME@_maintain(3, 0);
