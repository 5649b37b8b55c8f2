/*
 * civil: proleptic Gregorian dates <-> days since 1970-01-01, by pure
 * arithmetic (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms":
 * days_from_civil and civil_from_days; exact for any year, no tables, no
 * libc, no time zone).  The parser turns timestamps into days with it,
 * copyenc formats days back into dates.
 *
 * Leaf module, header only: static inline, because the parser calls it
 * for every timestamped line.
 */
#ifndef LOGSINK_CIVIL_H
#define LOGSINK_CIVIL_H

#include <stdbool.h>
#include <stdint.h>

/* Days from 0000-03-01 (the era's start) to 1970-01-01. */
#define CIVIL_EPOCH_SHIFT 719468
/* Days in a 400-year era. */
#define CIVIL_ERA_DAYS    146097

/* Days since 1970-01-01 of the date y-m-d (m 1..12, d 1..31; d is not
 * checked against the month: civil_valid()). */
static inline int64_t
civil_to_days(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * CIVIL_ERA_DAYS + doe - CIVIL_EPOCH_SHIFT;
}

/* The date of day z since 1970-01-01 (the inverse of civil_to_days()). */
static inline void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += CIVIL_EPOCH_SHIFT;
	era = (z >= 0 ? z : z - (CIVIL_ERA_DAYS - 1)) / CIVIL_ERA_DAYS;
	doe = z - era * CIVIL_ERA_DAYS;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static inline bool
civil_is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* True if y-m-d exists in the Gregorian calendar (no Feb 30). */
static inline bool
civil_valid(int64_t y, int m, int d)
{
	static const signed char mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31,
		30, 31, 30, 31 };

	if (m < 1 || m > 12 || d < 1)
		return false;
	if (m == 2 && d == 29)
		return civil_is_leap(y);
	return d <= mdays[m - 1];
}

#endif
