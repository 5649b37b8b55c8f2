/*
 * Unit tests for civil.h: day numbers <-> dates.  Round trips over every
 * day from 1000 BC (year -999) to 10000, a walk that checks each next day
 * is the calendar's next date, libc's gmtime_r() as an independent oracle,
 * and named anchors (1970, 2000, 2100, negative days, leap days).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "logsink/civil.h"

/* -999-01-01 and 10000-12-31, in days since 1970-01-01. */
#define FIRST_DAY INT64_C(-1084405)
#define LAST_DAY  INT64_C(2933262)

struct date {
	int64_t y;
	int m, d;
};

static struct date
from_days(int64_t z)
{
	struct date t;

	civil_from_days(z, &t.y, &t.m, &t.d);
	return t;
}

static void
assert_date(int64_t z, int64_t y, int m, int d)
{
	struct date t = from_days(z);

	if (t.y != y || t.m != m || t.d != d)
		fail_msg("day %lld: got %lld-%02d-%02d, want %lld-%02d-%02d",
		    (long long)z, (long long)t.y, t.m, t.d, (long long)y, m, d);
	assert_int_equal(civil_to_days(y, m, d), z);
}

static void
test_anchors(void **state)
{
	(void)state;
	assert_date(0, 1970, 1, 1);
	assert_date(-1, 1969, 12, 31);
	assert_date(365, 1971, 1, 1);
	assert_date(10957, 2000, 1, 1);
	assert_date(11016, 2000, 2, 29); /* 2000 is leap: divisible by 400 */
	assert_date(11017, 2000, 3, 1);
	assert_date(47540, 2100, 2, 28);
	assert_date(47541, 2100, 3, 1); /* 2100 is not: by 100, not 400 */
	assert_date(-25508, 1900, 3, 1);
	assert_date(-719162, 1, 1, 1);      /* the first day PostgreSQL's text
					       form takes without BC */
	assert_date(2932896, 9999, 12, 31); /* its last */
	assert_date(-719468, 0, 3, 1);      /* the era's start */
	assert_date(-719469, 0, 2, 29);     /* year 0 (1 BC) is leap */
	assert_date(-719528, 0, 1, 1);
	assert_date(-719529, -1, 12, 31);
	assert_date(FIRST_DAY, -999, 1, 1);
	assert_date(LAST_DAY, 10000, 12, 31);
}

static void
test_leap_years(void **state)
{
	(void)state;
	assert_true(civil_is_leap(2000));
	assert_true(civil_is_leap(2024));
	assert_true(civil_is_leap(0));
	assert_true(civil_is_leap(-4));
	assert_true(civil_is_leap(-400));
	assert_false(civil_is_leap(1900));
	assert_false(civil_is_leap(2100));
	assert_false(civil_is_leap(2023));
	assert_false(civil_is_leap(-100));
	assert_false(civil_is_leap(-1));
	assert_true(civil_valid(2000, 2, 29));
	assert_true(civil_valid(2024, 2, 29));
	assert_false(civil_valid(1900, 2, 29));
	assert_false(civil_valid(2100, 2, 29));
	assert_false(civil_valid(2023, 2, 29));
	assert_false(civil_valid(2024, 2, 30));
	assert_false(civil_valid(2024, 4, 31));
	assert_true(civil_valid(2024, 12, 31));
	assert_false(civil_valid(2024, 0, 1));
	assert_false(civil_valid(2024, 13, 1));
	assert_false(civil_valid(2024, 1, 0));
	assert_false(civil_valid(2024, 1, 32));
}

/*
 * Every day of the range: the date round-trips, is valid, and is the
 * day after the previous day's date (same month, next month or next
 * year, with month lengths from civil_valid()).
 */
static void
test_walk_every_day(void **state)
{
	struct date prev = from_days(FIRST_DAY - 1), t;
	int64_t z;
	bool next;

	(void)state;
	assert_int_equal(prev.y, -1000);
	for (z = FIRST_DAY; z <= LAST_DAY; z++) {
		t = from_days(z);
		if (civil_to_days(t.y, t.m, t.d) != z ||
		    !civil_valid(t.y, t.m, t.d))
			fail_msg("day %lld: %lld-%02d-%02d", (long long)z,
			    (long long)t.y, t.m, t.d);
		if (civil_valid(prev.y, prev.m, prev.d + 1))
			next =
			    t.y == prev.y && t.m == prev.m && t.d == prev.d + 1;
		else if (prev.m < 12)
			next = t.y == prev.y && t.m == prev.m + 1 && t.d == 1;
		else
			next = t.y == prev.y + 1 && t.m == 1 && t.d == 1;
		if (!next)
			fail_msg(
			    "day %lld: %lld-%02d-%02d after %lld-%02d-%02d",
			    (long long)z, (long long)t.y, t.m, t.d,
			    (long long)prev.y, prev.m, prev.d);
		prev = t;
	}
}

/* Against libc: gmtime_r() of midnight UTC, every day of 1000..3000. */
static void
test_against_gmtime(void **state)
{
	struct date t;
	struct tm tm;
	time_t secs;
	int64_t z;

	(void)state;
	for (z = -354285; z <= 376564; z++) {
		secs = (time_t)(z * 86400);
		assert_non_null(gmtime_r(&secs, &tm));
		t = from_days(z);
		if (t.y != tm.tm_year + 1900 || t.m != tm.tm_mon + 1 ||
		    t.d != tm.tm_mday)
			fail_msg("day %lld: got %lld-%02d-%02d, libc "
				 "%d-%02d-%02d",
			    (long long)z, (long long)t.y, t.m, t.d,
			    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anchors),
		cmocka_unit_test(test_leap_years),
		cmocka_unit_test(test_walk_every_day),
		cmocka_unit_test(test_against_gmtime),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
