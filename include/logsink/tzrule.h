/*
 * tzrule: the UTC offsets of one time zone, for the year-less, zone-less
 * BSD timestamps of RFC 3164 (a listener's tz= option).
 *
 * A rule is a fixed offset ("UTC", "+02:00") or a tz database zone
 * ("Europe/Berlin"), whose transitions are read once, when the rule is
 * made, through the C library (TZ set for the time of the scan, then
 * restored; the daemon is single-threaded), from two years before to 30
 * years after the time given; outside that span the nearest edge's
 * offset applies.  Converting a timestamp then is a binary search over
 * those transitions: no localtime()/mktime() per message, no global state.
 *
 * A local time that occurs twice (the hour clocks go back) is taken at
 * its first occurrence (daylight time); one that does not exist (the hour
 * clocks skip) is read with the offset in force before the change, so
 * "02:30" on a spring-forward day in Europe/Berlin is 01:30 UTC.
 */
#ifndef LOGSINK_TZRULE_H
#define LOGSINK_TZRULE_H

#include <stddef.h>
#include <stdint.h>

struct tzrule;

/*
 * Parses spec ("UTC", "Z", "+HH:MM", "-HH:MM", "+HHMM", or a zone name of
 * the tz database under $TZDIR or /usr/share/zoneinfo) and builds its
 * rule around now_s (seconds since the epoch).  NULL with a message in err
 * if spec names no zone or memory is short.  Owned by the caller:
 * tzrule_free().
 */
struct tzrule *tzrule_new(const char *spec, int64_t now_s, char *err,
    size_t errlen) __attribute__((warn_unused_result));
void tzrule_free(struct tzrule *tz);

/* Seconds east of UTC in force at utc_s. */
int32_t tzrule_offset(const struct tzrule *tz, int64_t utc_s);

/*
 * The UTC seconds of a wall-clock time in the zone, given as seconds since
 * the epoch as if the wall clock were UTC (see the rule for repeated and
 * skipped times above).
 */
int64_t tzrule_to_utc(const struct tzrule *tz, int64_t local_s);

#endif
