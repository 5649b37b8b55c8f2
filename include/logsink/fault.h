/*
 * fault: named fault-injection points, a test hook.
 *
 * LOGSINKD_FAULTS, read from the environment once (at the first
 * fault_hit()), lists the points that are to fail, separated by commas:
 * "NAME" fails every time the point is reached, "NAME:N" the first N
 * times only.  Unset, as in production, a call costs one compare.
 *
 * Points:
 *   maintain-sql-oom  pgpool: building the partition upkeep SQL fails as
 *                     if memory ran out (tests/integration/test_pgpool.py)
 *
 * Leaf module: never logs; not thread-safe (the daemon has one thread).
 */
#ifndef LOGSINK_FAULT_H
#define LOGSINK_FAULT_H

#include <stdbool.h>

/* True when the code at point is to fail this time. */
bool fault_hit(const char *point);

#endif
