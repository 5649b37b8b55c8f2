/*
 * fault: fault injection for tests (see include/logsink/fault.h).
 */
#include <stdlib.h>
#include <string.h>

#include "logsink/fault.h"

#define FAULT_MAX      8
#define FAULT_NAME_MAX 32

/* One point named in LOGSINKD_FAULTS. */
struct fault {
	char name[FAULT_NAME_MAX];
	long left; /* hits that still fail; -1: every one */
};

static struct fault faults[FAULT_MAX];
static int nfaults = -1; /* -1: LOGSINKD_FAULTS not read yet */

/* Parses one "NAME" or "NAME:N" of len bytes at s into faults[]. */
static void
fault_add(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t namelen = colon != NULL ? (size_t)(colon - s) : len;
	struct fault *f;
	char *end;
	long n = -1;

	if (namelen == 0 || namelen >= FAULT_NAME_MAX || nfaults >= FAULT_MAX)
		return;
	if (colon != NULL) {
		n = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || end != s + len || n < 0)
			return; /* not a count: the entry is ignored */
	}
	f = &faults[nfaults++];
	memcpy(f->name, s, namelen);
	f->name[namelen] = '\0';
	f->left = n;
}

static void
fault_load(void)
{
	const char *s = getenv("LOGSINKD_FAULTS");
	size_t len;

	nfaults = 0;
	while (s != NULL && *s != '\0') {
		len = strcspn(s, ",");
		fault_add(s, len);
		s += len;
		if (*s == ',')
			s++;
	}
}

bool
fault_hit(const char *point)
{
	int i;

	if (nfaults == 0)
		return false;
	if (nfaults < 0) {
		fault_load();
		if (nfaults == 0)
			return false;
	}
	for (i = 0; i < nfaults; i++) {
		if (strcmp(faults[i].name, point) != 0)
			continue;
		if (faults[i].left == 0)
			return false;
		if (faults[i].left > 0)
			faults[i].left--;
		return true;
	}
	return false;
}
