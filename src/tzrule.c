/*
 * tzrule: a time zone's UTC offsets as a table of transitions (see
 * include/logsink/tzrule.h).
 */
#include <sys/stat.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "logsink/tzrule.h"

#define DAY_S         INT64_C(86400)
#define SCAN_BEFORE_S (2 * 366 * DAY_S)
#define SCAN_AFTER_S  (30 * 366 * DAY_S)
#define ZONE_NAME_MAX 255

/* Owned by its creator; freed by tzrule_free(). */
struct tzrule {
	int32_t first_off; /* before at[0], or always when n == 0 */
	size_t n, cap;
	int64_t *at;  /* UTC seconds of each change, ascending */
	int32_t *off; /* the offset from at[i] on */
};

static bool
dig2(const char *p, int *v)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return false;
	*v = (p[0] - '0') * 10 + (p[1] - '0');
	return true;
}

/* "UTC", "GMT", "Z" or +HH, +HHMM, +HH:MM (or -): true with *off set. */
static bool
parse_fixed(const char *s, int32_t *off)
{
	size_t n = strlen(s);
	int h, m = 0;

	if (strcasecmp(s, "UTC") == 0 || strcasecmp(s, "GMT") == 0 ||
	    strcasecmp(s, "Z") == 0) {
		*off = 0;
		return true;
	}
	if ((s[0] != '+' && s[0] != '-') || (n != 3 && n != 5 && n != 6))
		return false;
	if (!dig2(s + 1, &h) || h > 14)
		return false;
	if (n == 5 && !dig2(s + 3, &m))
		return false;
	if (n == 6 && (s[3] != ':' || !dig2(s + 4, &m)))
		return false;
	if (m > 59)
		return false;
	*off = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
	return true;
}

/* A tz database name: Area/City characters, no "..", not absolute. */
static bool
zone_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ZONE_NAME_MAX || s[0] == '/' || s[0] == '.' ||
	    strstr(s, "..") != NULL)
		return false;
	return strspn(s,
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789/_+-.") == n;
}

/* glibc falls back to UTC for an unknown TZ: check the file first. */
static bool
zone_file_exists(const char *name)
{
	const char *dir = getenv("TZDIR");
	char path[512];
	struct stat st;

	if (dir == NULL || *dir == '\0')
		dir = "/usr/share/zoneinfo";
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int32_t
libc_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return (int32_t)tm.tm_gmtoff;
}

static int
add_change(struct tzrule *tz, int64_t at, int32_t off)
{
	int64_t *a;
	int32_t *o;
	size_t cap = tz->cap ? tz->cap * 2 : 64;

	if (tz->n == tz->cap) {
		if ((a = reallocarray(tz->at, cap, sizeof(*a))) == NULL)
			return -1;
		tz->at = a;
		if ((o = reallocarray(tz->off, cap, sizeof(*o))) == NULL)
			return -1;
		tz->off = o;
		tz->cap = cap;
	}
	tz->at[tz->n] = at;
	tz->off[tz->n++] = off;
	return 0;
}

/*
 * The changes of the C library's current zone in [from, to]: one step a
 * day (zones change at most a few times a year), then bisection to the
 * second.
 */
static int
scan_zone(struct tzrule *tz, int64_t from, int64_t to)
{
	int64_t t, lo, hi, mid;
	int32_t prev = libc_offset(from), o;

	tz->first_off = prev;
	for (t = from + DAY_S; t <= to; t += DAY_S) {
		if ((o = libc_offset(t)) == prev)
			continue;
		for (lo = t - DAY_S, hi = t; hi - lo > 1;) {
			mid = lo + (hi - lo) / 2;
			if (libc_offset(mid) == prev)
				lo = mid;
			else
				hi = mid;
		}
		if (add_change(tz, hi, o) == -1)
			return -1;
		prev = o;
	}
	return 0;
}

/* Scans zone name with TZ set to it, then restores TZ. */
static int
load_zone(struct tzrule *tz, const char *name, int64_t now_s)
{
	const char *old = getenv("TZ");
	char *saved = NULL;
	int rc;

	if (old != NULL && (saved = strdup(old)) == NULL)
		return -1;
	if (setenv("TZ", name, 1) == -1) {
		free(saved);
		return -1;
	}
	tzset();
	rc = scan_zone(tz, now_s - SCAN_BEFORE_S, now_s + SCAN_AFTER_S);
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	return rc;
}

struct tzrule *
tzrule_new(const char *spec, int64_t now_s, char *err, size_t errlen)
{
	struct tzrule *tz = calloc(1, sizeof(*tz));

	if (tz == NULL) {
		snprintf(err, errlen, "tz: out of memory");
		return NULL;
	}
	if (parse_fixed(spec, &tz->first_off))
		return tz;
	if (!zone_name_ok(spec) || !zone_file_exists(spec)) {
		snprintf(err, errlen,
		    "tz '%s' is not UTC, +HH:MM, -HH:MM or a time zone of the "
		    "tz database (e.g. Europe/Berlin; not found under $TZDIR "
		    "or /usr/share/zoneinfo)",
		    spec);
		tzrule_free(tz);
		return NULL;
	}
	if (load_zone(tz, spec, now_s) == -1) {
		snprintf(err, errlen, "tz '%s': out of memory", spec);
		tzrule_free(tz);
		return NULL;
	}
	return tz;
}

void
tzrule_free(struct tzrule *tz)
{
	if (tz == NULL)
		return;
	free(tz->at);
	free(tz->off);
	free(tz);
}

int32_t
tzrule_offset(const struct tzrule *tz, int64_t utc_s)
{
	size_t lo = 0, hi = tz->n, mid;

	if (tz->n == 0 || utc_s < tz->at[0])
		return tz->first_off;
	/* The last change at or before utc_s: at[lo] <= utc_s < at[hi]. */
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (tz->at[mid] <= utc_s)
			lo = mid;
		else
			hi = mid;
	}
	return tz->off[lo];
}

/*
 * The offsets a day before and after are the only ones a wall-clock time
 * can be in (changes are months apart); each is consistent if the UTC
 * time it gives has that offset.  Both: a repeated time, the earlier;
 * neither: a skipped time, the offset before the change.
 */
int64_t
tzrule_to_utc(const struct tzrule *tz, int64_t local_s)
{
	int32_t oa = tzrule_offset(tz, local_s - DAY_S);
	int32_t ob = tzrule_offset(tz, local_s + DAY_S);
	int64_t ta = local_s - oa, tb = local_s - ob;
	bool va, vb;

	if (oa == ob)
		return ta; /* no change within a day: the common case */
	va = tzrule_offset(tz, ta) == oa;
	vb = tzrule_offset(tz, tb) == ob;
	if (va && vb)
		return ta < tb ? ta : tb;
	if (vb)
		return tb;
	return ta;
}
