/*
 * parser_time: timestamps for the parser, by pure arithmetic.
 *
 * RFC 3339 timestamps (RFC 5424 section 6.2.3, JSON "time" strings) carry
 * their own offset.  BSD timestamps (RFC 3164 section 4.1.2) carry neither
 * a year nor a zone: they are local time of the daemon (TZ) in the year that
 * puts them closest to the time the message was received.  Converting them
 * must not call mktime()/localtime() per message (both take a lock and may
 * stat the zone file), so we use civil.h and a UTC offset that is
 * cached per thread and refreshed when received_us enters a new 15-minute
 * slot (every zone transition falls on such a boundary).  The offset used
 * is the one in force when the message was received, so a message stamped
 * just before a DST change and received after it is off by the DST delta.
 * A listener's tz= (logsink/tzrule.h) names the zone instead: its rule
 * gives the offset in force at the stamped time itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "logsink/civil.h"
#include "logsink/tzrule.h"
#include "parser_int.h"

#define US_PER_S    INT64_C(1000000)
#define S_PER_DAY   INT64_C(86400)
#define OFF_SLOT_US (INT64_C(900) * US_PER_S)

/*
 * Event times are kept within 0001-01-01 .. 9999-12-31 UTC, the years
 * PostgreSQL's timestamp text form takes without "BC" or a fifth digit;
 * RFC 3339 years 0000 and offsets could otherwise step outside.
 */
#define EVENT_MIN_US (INT64_C(-719162) * S_PER_DAY * US_PER_S)
#define EVENT_MAX_US (INT64_C(2932897) * S_PER_DAY * US_PER_S - 1)

/* The only state of the parser: a per-thread cache of the local offset. */
static _Thread_local struct {
	int64_t slot; /* received_us / OFF_SLOT_US */
	int32_t off_s;
	bool valid;
} off_cache;

/* True if us is a storable event time (see EVENT_MIN_US). */
bool
parser_event_in_range(int64_t us)
{
	return us >= EVENT_MIN_US && us <= EVENT_MAX_US;
}

/* Two ASCII digits at p as 0..99, or -1. */
static int
dig2(const char *p)
{
	unsigned a = (unsigned char)p[0] - '0', b = (unsigned char)p[1] - '0';

	if (a > 9 || b > 9)
		return -1;
	return (int)(a * 10 + b);
}

/*
 * Parses an optional ".digits" fraction at *pp (RFC 3339 time-secfrac),
 * keeping the first 6 digits as microseconds and ignoring the rest (RFC
 * 5424 allows 6; Go and others send 9).  Returns false on "." without
 * digits.
 */
static bool
parse_frac(const char **pp, const char *end, int64_t *us)
{
	const char *p = *pp;
	int64_t v = 0;
	int n = 0;

	*us = 0;
	if (p == end || *p != '.')
		return true;
	for (p++; p < end && (unsigned)(*p - '0') <= 9; p++, n++)
		if (n < 6)
			v = v * 10 + (*p - '0');
	if (n == 0)
		return false;
	for (; n < 6; n++)
		v *= 10;
	*pp = p;
	*us = v;
	return true;
}

/*
 * Parses a time-offset (RFC 3339 section 5.6: "Z" / ("+" / "-") hh:mm)
 * that must end exactly at end; *off_s is seconds east of UTC.
 */
static bool
parse_offset(const char *p, const char *end, int64_t *off_s)
{
	int h, m;

	if (end - p == 1 && (*p == 'Z' || *p == 'z')) {
		*off_s = 0;
		return true;
	}
	if (end - p != 6 || (*p != '+' && *p != '-') || p[3] != ':')
		return false;
	if ((h = dig2(p + 1)) < 0 || h > 23 || (m = dig2(p + 4)) < 0 || m > 59)
		return false;
	*off_s = (h * 3600 + m * 60) * (*p == '-' ? -1 : 1);
	return true;
}

/*
 * Parses exactly n bytes as an RFC 3339 date-time (RFC 5424 section
 * 6.2.3): YYYY-MM-DD"T"hh:mm:ss[.frac](Z|+hh:mm|-hh:mm).  "t", "z" and a
 * space instead of "T" (RFC 3339 section 5.6, NOTE) are accepted.  Field
 * ranges are checked (no Feb 30, no hour 24); second 60 (a leap second)
 * is accepted and lands on the next minute.  Stores microseconds since
 * the epoch, UTC; false if that is outside parser_event_in_range().
 */
bool
parser_rfc3339(const char *s, size_t n, int64_t *us)
{
	const char *p = s + 19, *end = s + n;
	int y1, y2, mo, d, h, mi, sec;
	int64_t frac, off_s, t;

	if (n < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' ||
	    s[16] != ':' || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return false;
	if ((y1 = dig2(s)) < 0 || (y2 = dig2(s + 2)) < 0 ||
	    (mo = dig2(s + 5)) < 0 || (d = dig2(s + 8)) < 0 ||
	    (h = dig2(s + 11)) < 0 || (mi = dig2(s + 14)) < 0 ||
	    (sec = dig2(s + 17)) < 0)
		return false;
	if (!civil_valid(y1 * 100 + y2, mo, d) || h > 23 || mi > 59 || sec > 60)
		return false;
	if (!parse_frac(&p, end, &frac) || !parse_offset(p, end, &off_s))
		return false;
	t = civil_to_days(y1 * 100 + y2, mo, d) * S_PER_DAY + h * 3600 +
	    mi * 60 + sec - off_s;
	*us = t * US_PER_S + frac;
	return parser_event_in_range(*us);
}

/*
 * Seconds east of UTC of the local zone at received_us, from the cache or
 * from localtime_r() once per 15-minute slot.  tm_gmtoff is a BSD/GNU
 * extension (we build with _GNU_SOURCE).
 */
static int64_t
local_offset(int64_t received_us)
{
	int64_t slot = received_us / OFF_SLOT_US;
	time_t t;
	struct tm tm;

	if (off_cache.valid && off_cache.slot == slot)
		return off_cache.off_s;
	t = (time_t)(received_us / US_PER_S);
	if (localtime_r(&t, &tm) == NULL)
		tm.tm_gmtoff = 0;
	off_cache.slot = slot;
	off_cache.off_s = (int32_t)tm.tm_gmtoff;
	off_cache.valid = true;
	return off_cache.off_s;
}

/* Forgets the cached offset (tests change TZ). */
void
parser_time_flush_cache(void)
{
	off_cache.valid = false;
}

/*
 * The year for a year-less date: of the years before, of and after y (the
 * year of the reference time ref_s, on the same clock as tod_s), the one
 * that puts mo-d plus tod_s seconds closest to ref_s; that time into
 * *best.  Feb 29 only exists in leap years.  False if no candidate date
 * exists.
 */
static inline bool
closest_year(
    int64_t y, int mo, int d, int64_t tod_s, int64_t ref_s, int64_t *best)
{
	int64_t cand, dist, best_dist = INT64_MAX;
	int i;

	for (i = -1; i <= 1; i++) {
		if (!civil_valid(y + i, mo, d))
			continue;
		cand = civil_to_days(y + i, mo, d) * S_PER_DAY + tod_s;
		dist = cand > ref_s ? cand - ref_s : ref_s - cand;
		if (dist < best_dist) {
			best_dist = dist;
			*best = cand;
		}
	}
	return best_dist != INT64_MAX;
}

/*
 * Converts a year-less local BSD timestamp (RFC 3164 section 4.1.2) to
 * microseconds since the epoch, UTC.  The year is the one putting the
 * timestamp closest to received_us (closest_year()): "Dec 31 23:59:59"
 * received on Jan 1 is last year's, "Jan 1 00:00:01" received on Dec 31
 * is next year's.  False if no candidate date exists or the time of day
 * is out of range.
 */
bool
parser_bsd_time(int64_t received_us, int mo, int d, int h, int mi, int s,
    int frac_us, int64_t *us)
{
	int64_t off_s, recv_s, y, best;
	int m, dd; /* the local date received_us falls on: y-m-dd */

	if (h > 23 || mi > 59 || s > 60)
		return false;
	off_s = local_offset(received_us);
	recv_s = received_us / US_PER_S;
	civil_from_days(
	    (recv_s + off_s) / S_PER_DAY - ((recv_s + off_s) % S_PER_DAY < 0),
	    &y, &m, &dd);
	if (!closest_year(
		y, mo, d, h * 3600 + mi * 60 + s - off_s, recv_s, &best))
		return false;
	*us = best * US_PER_S + frac_us;
	return true;
}

/*
 * parser_bsd_time() in the zone of rule tz (a listener's tz=): the year
 * is picked on the zone's wall clock (the receive time plus the offset
 * then in force), and the chosen wall-clock time converted with the
 * offset in force at it (tzrule_to_utc(): DST gaps and repeats), so a
 * message stamped before a DST change and received after it is right.
 */
bool
parser_bsd_time_tz(const struct tzrule *tz, int64_t received_us, int mo, int d,
    int h, int mi, int s, int frac_us, int64_t *us)
{
	int64_t recv_s, loc, y, best;
	int m, dd; /* the zone's date at receipt: y-m-dd */

	if (h > 23 || mi > 59 || s > 60)
		return false;
	recv_s = received_us / US_PER_S;
	loc = recv_s + tzrule_offset(tz, recv_s);
	civil_from_days(loc / S_PER_DAY - (loc % S_PER_DAY < 0), &y, &m, &dd);
	if (!closest_year(y, mo, d, h * 3600 + mi * 60 + s, loc, &best))
		return false;
	*us = tzrule_to_utc(tz, best) * US_PER_S + frac_us;
	return true;
}
