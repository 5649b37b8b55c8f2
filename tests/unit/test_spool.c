/*
 * Unit tests for the disk spool (spool.c) and for the queue's use of it
 * (queue.c with queue_set_spool()).
 *
 * Every test runs in a fresh directory made by mkdtemp() under $TMPDIR
 * (or /tmp); the spool lives in its "spool" subdirectory, which
 * spool_open() creates.  Teardown frees the queue, closes the spool and
 * removes the whole tree.
 *
 * Segment files are manipulated directly (truncated, patched) to check
 * how the spool deals with torn and corrupt data; offsets follow the
 * format documented in include/logsink/spool.h.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "logsink/buf.h"
#include "logsink/copyenc.h"
#include "logsink/queue.h"
#include "logsink/record.h"
#include "logsink/spool.h"
#include "../../src/batch_int.h" /* the acks of replayed batches */

#define BIG         ((size_t)1 << 40)
#define MAXTAKEN    64
#define MAXLINES    4096
#define MAXRECS     64
#define MAXSEGS     64
#define FORMAT_A    0x11112222u
#define FORMAT_B    0x33334444u
#define REC_MAGIC_0 0x4b /* first byte on disk of the magic 0x4c53524b */

/* An acknowledgement handle: what the queue did with each of its lines. */
struct sender {
	uint64_t takes;                /* runs started */
	uint64_t credited, dropped;    /* lines */
	uint64_t double_acks;          /* a line credited or dropped twice */
	unsigned char state[MAXLINES]; /* 0 pending, 1 credited, 2 dropped */
};

/* One appended spool record, as the test remembers it. */
struct rec {
	size_t len;
	uint32_t lines;
	uint32_t id; /* seeds the payload bytes */
	struct spool_pos pos;
};

/* Heap fixture: teardown frees the queue and spool and removes tmp. */
struct fx {
	char tmp[PATH_MAX / 2]; /* mkdtemp() */
	char dir[PATH_MAX];     /* tmp/spool */
	struct spool *sp;
	struct queue *q;
	struct batch *taken[MAXTAKEN]; /* taken, not yet done */
	size_t ntaken;
	struct buf pay, out;  /* payload scratch, spool_read() target */
	struct buf msg;       /* message bytes for records */
	struct buf got, want; /* rows taken, rows expected */
	struct buf copy;      /* a file's bytes */
	struct rec recs[MAXRECS];
	struct sender snd[2];
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");
	struct fx *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	if (t == NULL || *t == '\0')
		t = "/tmp";
	snprintf(x->tmp, sizeof(x->tmp), "%s/test_spool.XXXXXX", t);
	if (mkdtemp(x->tmp) == NULL) {
		free(x);
		return -1;
	}
	snprintf(x->dir, sizeof(x->dir), "%s/spool", x->tmp);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;

	if (x->q != NULL) {
		while (x->ntaken > 0)
			queue_return(x->q, x->taken[--x->ntaken]);
		queue_free(x->q);
	}
	spool_close(x->sp);
	nftw(x->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	buf_free(&x->pay);
	buf_free(&x->out);
	buf_free(&x->msg);
	buf_free(&x->got);
	buf_free(&x->want);
	buf_free(&x->copy);
	free(x);
	return 0;
}

/* --- files ------------------------------------------------------------- */

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * The names in x->dir ending exactly in suffix (".seg" does not match
 * ".seg.corrupt"), sorted; returns how many.
 */
static size_t
list_files(struct fx *x, const char *suffix, char names[][64], size_t max)
{
	struct dirent *de;
	size_t n = 0, sl = strlen(suffix), l;
	DIR *d;

	if ((d = opendir(x->dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		l = strlen(de->d_name);
		if (l <= sl || strcmp(de->d_name + l - sl, suffix) != 0)
			continue;
		assert_true(n < max && l < 64);
		memcpy(names[n++], de->d_name, l + 1);
	}
	closedir(d);
	qsort(names, n, 64, name_cmp);
	return n;
}

static size_t
count_files(struct fx *x, const char *suffix)
{
	char names[MAXSEGS][64];

	return list_files(x, suffix, names, MAXSEGS);
}

/* The path of the only (or, with several, the newest) .seg file. */
static void
last_seg_path(struct fx *x, char *path, size_t len)
{
	char names[MAXSEGS][64];
	size_t n = list_files(x, ".seg", names, MAXSEGS);

	assert_true(n > 0);
	assert_true(
	    (size_t)snprintf(path, len, "%s/%s", x->dir, names[n - 1]) < len);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void
patch_file(const char *path, off_t off, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
	close(fd);
}

static void
append_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	assert_true(fd != -1);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* The whole file into b. */
static void
slurp(const char *path, struct buf *b)
{
	off_t size = file_size(path);
	int fd = open(path, O_RDONLY);

	assert_true(fd != -1);
	buf_reset(b);
	assert_int_equal(buf_reserve(b, (size_t)size + 1), 0);
	assert_int_equal(read(fd, b->data, (size_t)size), (ssize_t)size);
	b->len = (size_t)size;
	close(fd);
}

static void
write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd != -1);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* --- spool helpers ----------------------------------------------------- */

static void
open_spool(
    struct fx *x, uint64_t max_bytes, uint64_t segment_bytes, uint32_t format)
{
	struct spool_settings set = { x->dir, max_bytes, segment_bytes,
		format };
	char err[512] = "";

	assert_null(x->sp);
	x->sp = spool_open(&set, err, sizeof(err));
	if (x->sp == NULL)
		fail_msg("spool_open: %s", err);
}

static void
close_spool(struct fx *x)
{
	spool_close(x->sp);
	x->sp = NULL;
}

/*
 * Payload bytes of record id: lower-case letters only, so that no
 * payload contains the record magic "KRSL" by accident.
 */
static void
fill(struct buf *b, uint32_t id, size_t len)
{
	size_t k;

	buf_reset(b);
	assert_int_equal(buf_reserve(b, len + 1), 0);
	for (k = 0; k < len; k++)
		b->data[k] = (char)('a' + (id * 7 + k * 3 + k / 26) % 26);
	b->len = len;
}

/* Appends record i of x->recs (len, lines, id already set). */
static void
append_rec(struct fx *x, size_t i)
{
	struct rec *r = &x->recs[i];

	fill(&x->pay, r->id, r->len);
	assert_int_equal(
	    spool_append(x->sp, x->pay.data, r->len, r->lines, &r->pos), 0);
}

/* Sets up and appends n records of the given payload lengths. */
static void
append_recs(struct fx *x, size_t first, size_t n, const size_t *lens)
{
	size_t i;

	assert_true(first + n <= MAXRECS);
	for (i = 0; i < n; i++) {
		x->recs[first + i].len = lens[i];
		x->recs[first + i].lines = (uint32_t)(first + i) % 7 + 1;
		x->recs[first + i].id = (uint32_t)(first + i);
		append_rec(x, first + i);
	}
}

/* Reads the next record and checks that it is record i, byte for byte. */
static void
expect_rec(struct fx *x, size_t i, struct spool_pos *pos)
{
	struct rec *r = &x->recs[i];
	uint32_t lines = 0;

	assert_int_equal(spool_read(x->sp, &x->out, &lines, pos), 1);
	assert_int_equal(x->out.len, r->len);
	assert_int_equal(lines, r->lines);
	fill(&x->pay, r->id, r->len);
	if (r->len > 0)
		assert_memory_equal(x->out.data, x->pay.data, r->len);
}

/*
 * Nothing more to read.  Damaged bytes at the end count as unread until
 * a spool_read() has skipped them, so spool_has_unread() is checked
 * after it.
 */
static void
expect_end(struct fx *x)
{
	struct spool_pos pos;
	uint32_t lines;

	assert_int_equal(spool_read(x->sp, &x->out, &lines, &pos), 0);
	assert_false(spool_has_unread(x->sp));
}

/* Nothing more to read, and nothing (not even damage) left unread. */
static void
expect_end_clean(struct fx *x)
{
	assert_false(spool_has_unread(x->sp));
	expect_end(x);
}

static bool
pos_before(const struct spool_pos *a, const struct spool_pos *b)
{
	return a->seg < b->seg || (a->seg == b->seg && a->off < b->off);
}

/* Where record i's payload starts in a one-segment file. */
static off_t
payload_off(const struct fx *x, size_t i)
{
	return (off_t)(x->recs[i].pos.off + SPOOL_RECORD_HEADER);
}

/* --- 1. append, sync, read, done --------------------------------------- */

/*
 * Records of varied sizes (the empty payload included) come back in order
 * with identical bytes, line counts and the positions spool_append()
 * reported; finished segments are deleted at rotation and at close.
 */
static void
test_append_read_roundtrip(void **state)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 100, 4095, 4096, 70000,
		3 };
	struct fx *x = *state;
	size_t n = sizeof(lens) / sizeof(lens[0]), i;
	uint64_t bytes = SPOOL_HEADER_BYTES, lines = 0;
	struct spool_pos pos, prev = { 0, 0 }, synced;
	struct spool_stats st;
	char before[MAXSEGS][64], after[MAXSEGS][64];

	open_spool(x, BIG, BIG, FORMAT_A);
	assert_false(spool_has_unread(x->sp));
	append_recs(x, 0, n, lens);
	for (i = 0; i < n; i++) {
		bytes += SPOOL_RECORD_HEADER + lens[i];
		lines += x->recs[i].lines;
	}
	assert_int_equal(spool_sync(x->sp, &synced), 0);
	/* Everything appended lies before the synced position. */
	assert_true(pos_before(&x->recs[n - 1].pos, &synced));
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_written, n);
	assert_int_equal(st.lines_written, lines);
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.unread_bytes, bytes - SPOOL_HEADER_BYTES);
	assert_int_equal(st.syncs, 1);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(count_files(x, ".seg"), 1);
	assert_true(spool_has_unread(x->sp));

	for (i = 0; i < n; i++) {
		expect_rec(x, i, &pos);
		assert_int_equal(pos.seg, x->recs[i].pos.seg);
		assert_int_equal(pos.off, x->recs[i].pos.off);
		if (i > 0)
			assert_true(pos_before(&prev, &pos));
		prev = pos;
	}
	expect_end_clean(x);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_replayed, n);
	assert_int_equal(st.lines_replayed, lines);
	assert_int_equal(st.unread_bytes, 0);
	assert_int_equal(st.records_corrupt, 0);

	for (i = 0; i < n; i++)
		spool_done(x->sp, &x->recs[i].pos);
	/* The active segment stays until it is rotated or closed. */
	assert_int_equal(list_files(x, ".seg", before, MAXSEGS), 1);
	/* A new record starts a fresh segment; the finished one goes. */
	x->recs[n].len = 10;
	x->recs[n].lines = 1;
	x->recs[n].id = 99;
	append_rec(x, n);
	assert_int_equal(list_files(x, ".seg", after, MAXSEGS), 1);
	assert_string_not_equal(before[0], after[0]);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(
	    st.bytes, SPOOL_HEADER_BYTES + SPOOL_RECORD_HEADER + 10);
	expect_rec(x, n, &pos);
	expect_end_clean(x);
	spool_done(x->sp, &pos);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
	assert_int_equal(count_files(x, ".corrupt"), 0);
}

/*
 * The asynchronous sync covers exactly the records written before it was
 * requested: a record appended while it runs waits for the next one; a
 * request while one is in flight is not lost (it follows when the first
 * is reaped); with nothing pending the end of the spool is durable at
 * once.
 */
static void
test_sync_async_covers_earlier_records(void **state)
{
	static const size_t lens[] = { 100, 200, 300, 400 };
	struct fx *x = *state;
	struct spool_pos synced;
	struct spool_stats st;

	open_spool(x, BIG, BIG, FORMAT_A);
	assert_int_equal(spool_sync_start(x->sp, &synced), 1); /* empty */
	append_recs(x, 0, 2, lens);
	assert_int_equal(spool_sync_start(x->sp, &synced), 0);
	append_recs(x, 2, 1, lens + 2); /* while the sync runs */
	/* Asked again while in flight: remembered, not a second job. */
	assert_int_equal(spool_sync_start(x->sp, &synced), 0);
	spool_sync_wait(x->sp);
	assert_int_equal(spool_sync_reap(x->sp, &synced), 1);
	assert_true(pos_before(&x->recs[1].pos, &synced));
	assert_false(pos_before(&x->recs[2].pos, &synced));
	/* The remembered request went out when the first was reaped. */
	spool_sync_wait(x->sp);
	assert_int_equal(spool_sync_reap(x->sp, &synced), 1);
	assert_true(pos_before(&x->recs[2].pos, &synced));
	/* Nothing new: no job, the end is durable. */
	assert_int_equal(spool_sync_reap(x->sp, &synced), 1);
	assert_int_equal(spool_sync_start(x->sp, &synced), 1);
	assert_true(pos_before(&x->recs[2].pos, &synced));
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.syncs, 2);
	assert_int_equal(st.sync_errors, 0);
	/* spool_sync(): blocking, covers everything. */
	append_recs(x, 3, 1, lens + 3);
	assert_int_equal(spool_sync(x->sp, &synced), 0);
	assert_true(pos_before(&x->recs[3].pos, &synced));
}

/* Open descriptors of this process. */
static int
count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * Rotation hands each full segment to the sync thread, which syncs and
 * the loop then closes it: the position is durable only after all of
 * them, and no descriptor is left open once they are reaped and the
 * spool is closed.
 */
static void
test_sync_async_rotation(void **state)
{
	static const size_t lens[] = { 500, 500, 500, 500, 500, 500 };
	struct fx *x = *state;
	struct spool_pos synced;
	struct spool_stats st;
	int fds = count_fds();

	open_spool(x, BIG, 100, FORMAT_A); /* one record per segment */
	append_recs(x, 0, 6, lens);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.segments, 6);
	assert_int_equal(spool_sync_start(x->sp, &synced), 0);
	spool_sync_wait(x->sp);
	assert_int_equal(spool_sync_reap(x->sp, &synced), 1);
	assert_true(pos_before(&x->recs[5].pos, &synced));
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.syncs, 6); /* 5 rotated, then the active one */
	/* The rotated segments' descriptors are closed: the active one,
	 * the directory, the lock and the eventfd remain. */
	assert_int_equal(count_fds(), fds + 4);
	spool_close(x->sp);
	x->sp = NULL;
	assert_int_equal(count_fds(), fds);
}

/* --- 2. restart ------------------------------------------------------- */

/*
 * Records survive a close and reopen; replay progress saved at close
 * means records marked done are not replayed again.
 */
static void
test_restart_progress(void **state)
{
	static const size_t lens[] = { 10, 200, 30, 4000, 50, 60, 0, 80, 90,
		100 };
	struct fx *x = *state;
	struct spool_pos pos[10];
	size_t i;

	open_spool(x, BIG, BIG, FORMAT_A);
	append_recs(x, 0, 10, lens);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 1);

	/* Everything is replayed after a restart. */
	open_spool(x, BIG, BIG, FORMAT_A);
	assert_true(spool_has_unread(x->sp));
	for (i = 0; i < 10; i++)
		expect_rec(x, i, &pos[i]);
	expect_end_clean(x);
	/* The first half is stored; the rest is in flight at close. */
	for (i = 0; i < 5; i++)
		spool_done(x->sp, &pos[i]);
	close_spool(x);

	/* Only the rest is replayed, in order, once. */
	open_spool(x, BIG, BIG, FORMAT_A);
	for (i = 5; i < 8; i++)
		expect_rec(x, i, &pos[i]);
	assert_true(spool_has_unread(x->sp));
	/* 5..7 stored, 8 and 9 never read: they come back next time. */
	for (i = 5; i < 8; i++)
		spool_done(x->sp, &pos[i]);
	close_spool(x);

	open_spool(x, BIG, BIG, FORMAT_A);
	expect_rec(x, 8, &pos[8]);
	expect_rec(x, 9, &pos[9]);
	expect_end_clean(x);
	/* Done out of order: the segment goes with the last one. */
	spool_done(x->sp, &pos[9]);
	assert_int_equal(count_files(x, ".seg"), 1);
	spool_done(x->sp, &pos[8]);
	assert_int_equal(count_files(x, ".seg"), 0);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
}

/* --- 3. rotation ------------------------------------------------------ */

/*
 * A small segment_bytes gives several segments; replay goes through them
 * oldest first, before and after a restart, and each is deleted as soon
 * as all of its records are done.
 */
static void
test_rotation(void **state)
{
	struct fx *x = *state;
	size_t lens[9], i, n = 9;
	struct spool_pos pos[9], prev;
	struct spool_stats st;
	char names[MAXSEGS][64];

	/* 32 + 116 < 200 <= 32 + 2 * 116: two records per segment. */
	for (i = 0; i < n; i++)
		lens[i] = 100;
	open_spool(x, BIG, 200, FORMAT_A);
	append_recs(x, 0, n, lens);
	assert_int_equal(list_files(x, ".seg", names, MAXSEGS), 5);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.segments, 5);
	assert_int_equal(st.bytes, 5 * SPOOL_HEADER_BYTES + n * 116);
	for (i = 1; i < n; i++)
		assert_true(pos_before(&x->recs[i - 1].pos, &x->recs[i].pos));
	assert_true(x->recs[0].pos.seg < x->recs[n - 1].pos.seg);

	/* Read in order across segments in this run. */
	for (i = 0; i < n; i++) {
		expect_rec(x, i, &pos[i]);
		assert_int_equal(pos[i].seg, x->recs[i].pos.seg);
		assert_int_equal(pos[i].off, x->recs[i].pos.off);
	}
	expect_end_clean(x);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 5);

	/* And after a restart (segments listed in whatever order). */
	open_spool(x, BIG, 200, FORMAT_A);
	for (i = 0; i < n; i++) {
		expect_rec(x, i, &pos[i]);
		if (i > 0)
			assert_true(pos_before(&prev, &pos[i]));
		prev = pos[i];
	}
	expect_end_clean(x);
	/* A segment is kept while one of its records is in flight. */
	spool_done(x->sp, &pos[1]);
	assert_int_equal(count_files(x, ".seg"), 5);
	spool_done(x->sp, &pos[0]);
	assert_int_equal(count_files(x, ".seg"), 4);
	for (i = 2; i < n; i++)
		spool_done(x->sp, &pos[i]);
	/* None is active in this run: all are gone before the close. */
	assert_int_equal(count_files(x, ".seg"), 0);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.segments, 0);
	assert_int_equal(st.bytes, 0);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
}

/* --- 4. max_bytes ----------------------------------------------------- */

/*
 * Appends fail with ENOSPC once max_bytes would be passed (headers of new
 * segments included), and succeed again once old records are done.
 */
static void
test_max_bytes(void **state)
{
	static const size_t lens[] = { 100, 100, 100, 100 };
	struct fx *x = *state;
	struct spool_pos pos[6];
	struct spool_stats st;
	size_t i;

	/* Two segments of two 116-byte records each: 2 * (32 + 232). */
	open_spool(x, 528, 200, FORMAT_A);
	append_recs(x, 0, 4, lens);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.bytes, 528);
	/* A fifth would need a third segment: 528 + 148 > 528. */
	x->recs[4].len = 100;
	x->recs[4].lines = 1;
	x->recs[4].id = 4;
	fill(&x->pay, 4, 100);
	errno = 0;
	assert_int_equal(
	    spool_append(x->sp, x->pay.data, 100, 1, &x->recs[4].pos), -1);
	assert_int_equal(errno, ENOSPC);
	/* Even one byte does not fit. */
	errno = 0;
	assert_int_equal(spool_append(x->sp, "z", 1, 1, &pos[5]), -1);
	assert_int_equal(errno, ENOSPC);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_written, 4);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.bytes, 528);

	/* Replaying the first segment frees its space. */
	for (i = 0; i < 4; i++)
		expect_rec(x, i, &pos[i]);
	spool_done(x->sp, &pos[0]);
	spool_done(x->sp, &pos[1]);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.bytes, 264);
	append_rec(x, 4);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.bytes, 264 + 148);
	expect_rec(x, 4, &pos[4]);
	expect_end_clean(x);
	for (i = 2; i < 5; i++)
		spool_done(x->sp, &pos[i]);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);

	/* One segment only: done records of the active one are enough. */
	open_spool(x, SPOOL_HEADER_BYTES + 3 * 116, BIG, FORMAT_A);
	append_recs(x, 0, 3, lens);
	errno = 0;
	assert_int_equal(spool_append(x->sp, "z", 1, 1, &pos[5]), -1);
	assert_int_equal(errno, ENOSPC);
	for (i = 0; i < 3; i++) {
		expect_rec(x, i, &pos[i]);
		spool_done(x->sp, &pos[i]);
	}
	append_recs(x, 3, 1, lens);
	expect_rec(x, 3, &pos[3]);
	expect_end_clean(x);
	spool_done(x->sp, &pos[3]);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
}

/* --- 5. torn tails ---------------------------------------------------- */

enum torn { TORN_PAYLOAD, TORN_HEADER, TORN_GARBAGE };

/*
 * Five records, then the last cut in its payload, or in its header, or a
 * few stray bytes (shorter than a record header) after the last one: the
 * complete records are replayed, the tail is counted and skipped, and the
 * segment is deleted (not kept as .corrupt) once they are done.
 */
static void
check_torn(struct fx *x, enum torn how)
{
	static const size_t lens[] = { 50, 300, 0, 77, 120 };
	struct spool_pos pos[5];
	struct spool_stats st;
	char path[PATH_MAX];
	size_t good = how == TORN_GARBAGE ? 5 : 4, i;
	off_t size, cut;
	uint64_t lost;

	open_spool(x, BIG, BIG, FORMAT_A);
	append_recs(x, 0, 5, lens);
	close_spool(x);
	last_seg_path(x, path, sizeof(path));
	size = file_size(path);
	switch (how) {
	case TORN_PAYLOAD:
		cut = payload_off(x, 4) + 60;
		assert_int_equal(truncate(path, cut), 0);
		lost = (uint64_t)(cut - (off_t)x->recs[4].pos.off);
		break;
	case TORN_HEADER:
		cut = (off_t)x->recs[4].pos.off + 9;
		assert_int_equal(truncate(path, cut), 0);
		lost = 9;
		break;
	case TORN_GARBAGE:
	default:
		append_file(path, "\x4bRS\x01\x02\x03\x04", 7);
		assert_int_equal(file_size(path), size + 7);
		lost = 7;
		break;
	}

	open_spool(x, BIG, BIG, FORMAT_A);
	for (i = 0; i < good; i++)
		expect_rec(x, i, &pos[i]);
	expect_end(x);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_replayed, good);
	assert_true(st.records_corrupt > 0);
	assert_int_equal(st.bytes_corrupt, lost);
	for (i = 0; i < good; i++)
		spool_done(x->sp, &pos[i]);
	/* A torn tail is not corruption: no .corrupt file. */
	assert_int_equal(count_files(x, ".seg"), 0);
	assert_int_equal(count_files(x, ".corrupt"), 0);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
	assert_int_equal(count_files(x, ".corrupt"), 0);
}

static void
test_torn_tail_payload(void **state)
{
	check_torn(*state, TORN_PAYLOAD);
}

static void
test_torn_tail_header(void **state)
{
	check_torn(*state, TORN_HEADER);
}

static void
test_torn_tail_garbage(void **state)
{
	check_torn(*state, TORN_GARBAGE);
}

/* --- 6. corruption in the middle -------------------------------------- */

enum damage {
	DMG_PAYLOAD,   /* one payload byte flipped */
	DMG_LEN_PLUS,  /* length one larger */
	DMG_LEN_ZERO,  /* length 0 */
	DMG_LEN_HUGE,  /* length past the end of the file */
	DMG_MAGIC,     /* magic byte changed */
	DMG_LINES_ZERO /* line count 0 (checksum fixed up) */
};

/*
 * Five records in one segment; record k damaged.  The others are
 * replayed with their bytes, k is skipped and counted (its header and
 * payload exactly), and the segment is kept as .seg.corrupt once the
 * others are done.  Each case in its own spool directory.
 */
static void
check_corrupt(struct fx *x, enum damage how, size_t k, const char *sub)
{
	static const size_t lens[] = { 40, 1000, 5, 300, 64 };
	struct spool_pos pos[5];
	struct spool_stats st;
	char path[PATH_MAX];
	unsigned char b[SPOOL_RECORD_HEADER];
	off_t hdr;
	size_t i;
	uint32_t v, crc;

	snprintf(x->dir, sizeof(x->dir), "%s/%s", x->tmp, sub);
	open_spool(x, BIG, BIG, FORMAT_A);
	append_recs(x, 0, 5, lens);
	close_spool(x);
	last_seg_path(x, path, sizeof(path));
	hdr = (off_t)x->recs[k].pos.off;
	switch (how) {
	case DMG_PAYLOAD:
		b[0] = '#';
		patch_file(path, payload_off(x, k) + (off_t)lens[k] / 2, b, 1);
		break;
	case DMG_LEN_PLUS:
	case DMG_LEN_ZERO:
	case DMG_LEN_HUGE:
		v = how == DMG_LEN_PLUS   ? (uint32_t)lens[k] + 1
		    : how == DMG_LEN_ZERO ? 0
					  : 0x7ffffff0u;
		b[0] = (unsigned char)v;
		b[1] = (unsigned char)(v >> 8);
		b[2] = (unsigned char)(v >> 16);
		b[3] = (unsigned char)(v >> 24);
		patch_file(path, hdr + 4, b, 4);
		break;
	case DMG_MAGIC:
		b[0] = REC_MAGIC_0 ^ 0x20;
		patch_file(path, hdr, b, 1);
		break;
	case DMG_LINES_ZERO:
	default:
		/* A valid checksum over a zero line count. */
		memset(b, 0, sizeof(b));
		b[0] = (unsigned char)lens[k];
		b[1] = (unsigned char)(lens[k] >> 8);
		fill(&x->pay, x->recs[k].id, lens[k]);
		crc = spool_crc32c(spool_crc32c(0, b, 8), x->pay.data, lens[k]);
		b[8] = (unsigned char)crc;
		b[9] = (unsigned char)(crc >> 8);
		b[10] = (unsigned char)(crc >> 16);
		b[11] = (unsigned char)(crc >> 24);
		patch_file(path, hdr + 4, b, 12);
		break;
	}

	open_spool(x, BIG, BIG, FORMAT_A);
	for (i = 0; i < 5; i++) {
		if (i == k)
			continue;
		expect_rec(x, i, &pos[i]);
		assert_int_equal(pos[i].off, x->recs[i].pos.off);
	}
	expect_end(x);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_replayed, 4);
	assert_int_equal(st.records_corrupt, 1);
	assert_int_equal(st.bytes_corrupt, SPOOL_RECORD_HEADER + lens[k]);
	assert_int_equal(count_files(x, ".seg"), 1);
	for (i = 0; i < 5; i++)
		if (i != k)
			spool_done(x->sp, &pos[i]);
	assert_int_equal(count_files(x, ".seg"), 0);
	assert_int_equal(count_files(x, ".seg.corrupt"), 1);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
	assert_int_equal(count_files(x, ".seg.corrupt"), 1);
}

static void
test_corrupt_payload(void **state)
{
	struct fx *x = *state;
	char sub[32];
	size_t k;

	for (k = 0; k < 5; k++) {
		snprintf(sub, sizeof(sub), "payload%zu", k);
		check_corrupt(x, DMG_PAYLOAD, k, sub);
	}
}

static void
test_corrupt_header(void **state)
{
	struct fx *x = *state;

	check_corrupt(x, DMG_LEN_PLUS, 2, "lenplus");
	check_corrupt(x, DMG_LEN_ZERO, 2, "lenzero");
	check_corrupt(x, DMG_LEN_HUGE, 2, "lenhuge");
	check_corrupt(x, DMG_LEN_HUGE, 0, "lenhuge0");
	check_corrupt(x, DMG_MAGIC, 2, "magic");
	check_corrupt(x, DMG_LINES_ZERO, 1, "lineszero");
}

/*
 * The corrupt record is found in one run, the segment's other records
 * are done in the next: it is still kept as .seg.corrupt (the header says
 * a segment with skipped bytes is kept once its good records are stored).
 */
static void
test_corrupt_kept_across_restart(void **state)
{
	static const size_t lens[] = { 40, 1000, 5, 300, 64 };
	struct fx *x = *state;
	struct spool_pos pos[5];
	char path[PATH_MAX];
	unsigned char b = '#';

	open_spool(x, BIG, BIG, FORMAT_A);
	append_recs(x, 0, 5, lens);
	close_spool(x);
	last_seg_path(x, path, sizeof(path));
	patch_file(path, payload_off(x, 1) + 10, &b, 1);

	/* Run 2 skips record 1 and stores 0 and 2. */
	open_spool(x, BIG, BIG, FORMAT_A);
	expect_rec(x, 0, &pos[0]);
	expect_rec(x, 2, &pos[2]);
	spool_done(x->sp, &pos[0]);
	spool_done(x->sp, &pos[2]);
	close_spool(x);
	/* Run 3 stores the rest. */
	open_spool(x, BIG, BIG, FORMAT_A);
	expect_rec(x, 3, &pos[3]);
	expect_rec(x, 4, &pos[4]);
	expect_end_clean(x);
	spool_done(x->sp, &pos[3]);
	spool_done(x->sp, &pos[4]);
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
	assert_int_equal(count_files(x, ".seg.corrupt"), 1);
}

/*
 * A second corrupt segment in a later run must not replace the .corrupt
 * file kept from an earlier one (segment numbers start again at 1 once
 * the directory holds no .seg file).
 */
static void
test_corrupt_files_not_overwritten(void **state)
{
	static const size_t lens[] = { 40, 50, 60 };
	struct fx *x = *state;
	struct spool_pos pos[3];
	char path[PATH_MAX];
	unsigned char b = '#';
	int run;

	for (run = 0; run < 2; run++) {
		open_spool(x, BIG, BIG, FORMAT_A);
		append_recs(x, 0, 3, lens);
		close_spool(x);
		last_seg_path(x, path, sizeof(path));
		patch_file(path, payload_off(x, 1) + 3, &b, 1);
		open_spool(x, BIG, BIG, FORMAT_A);
		expect_rec(x, 0, &pos[0]);
		expect_rec(x, 2, &pos[2]);
		expect_end_clean(x);
		spool_done(x->sp, &pos[0]);
		spool_done(x->sp, &pos[2]);
		close_spool(x);
		assert_int_equal(count_files(x, ".seg"), 0);
	}
	assert_int_equal(count_files(x, ".seg.corrupt"), 2);
}

/*
 * A segment whose saved progress says everything was stored (a crash
 * after queue_tick() saved it, before the segment was rotated away) is
 * finished: it must not linger and count against max_bytes.
 */
static void
test_finished_segment_at_open(void **state)
{
	static const size_t lens[] = { 100, 100 };
	struct fx *x = *state;
	struct spool_pos pos[3];
	struct spool_stats st;
	char path[PATH_MAX];

	open_spool(x, BIG, BIG, FORMAT_A);
	append_recs(x, 0, 2, lens);
	expect_rec(x, 0, &pos[0]);
	expect_rec(x, 1, &pos[1]);
	spool_done(x->sp, &pos[0]);
	spool_done(x->sp, &pos[1]);
	spool_save_progress(x->sp);
	last_seg_path(x, path, sizeof(path));
	slurp(path, &x->copy);
	close_spool(x); /* deletes it; the crash would have left it */
	assert_int_equal(count_files(x, ".seg"), 0);
	write_file(path, x->copy.data, x->copy.len);

	/* Room for one segment of two records: nothing is waiting. */
	open_spool(x, SPOOL_HEADER_BYTES + 2 * 116, BIG, FORMAT_A);
	expect_end_clean(x);
	fill(&x->pay, 7, 100);
	errno = 0;
	if (spool_append(x->sp, x->pay.data, 100, 1, &pos[2]) != 0)
		fail_msg("spool_append with only a finished segment in the "
			 "dir: %s",
		    strerror(errno));
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.bytes, SPOOL_HEADER_BYTES + 116);
	close_spool(x);
}

/*
 * Files in the spool directory that are not this spool's segments:
 * a .seg shorter than a header (crash right after creating it) is
 * removed; one with a bad header is left alone and not replayed; other
 * names are ignored.  None of them stops the spool from writing.
 */
static void
test_foreign_files(void **state)
{
	static const size_t lens[] = { 100, 100, 100, 100, 100 };
	struct fx *x = *state;
	char path[PATH_MAX + 64], bad[64];
	struct spool_pos pos[5];
	size_t i;

	assert_int_equal(mkdir(x->dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/0000000000000001.seg", x->dir);
	write_file(path, "LSSPOOL", 8);
	memset(bad, 'x', sizeof(bad));
	snprintf(path, sizeof(path), "%s/0000000000000002.seg", x->dir);
	write_file(path, bad, sizeof(bad));
	snprintf(path, sizeof(path), "%s/notes.txt", x->dir);
	write_file(path, bad, sizeof(bad));

	/* Two records per segment: the third and fifth start new ones. */
	open_spool(x, BIG, 200, FORMAT_A);
	expect_end_clean(x);
	assert_int_equal(count_files(x, ".seg"), 1); /* the bad-header one */
	for (i = 0; i < 5; i++) {
		x->recs[i].len = lens[i];
		x->recs[i].lines = 1;
		x->recs[i].id = (uint32_t)i;
		fill(&x->pay, (uint32_t)i, lens[i]);
		errno = 0;
		if (spool_append(
			x->sp, x->pay.data, lens[i], 1, &x->recs[i].pos) != 0)
			fail_msg("spool_append of record %zu with a foreign "
				 ".seg file in the dir: %s",
			    i, strerror(errno));
	}
	for (i = 0; i < 5; i++)
		expect_rec(x, i, &pos[i]);
	expect_end_clean(x);
	close_spool(x);
	snprintf(path, sizeof(path), "%s/0000000000000002.seg", x->dir);
	assert_int_equal(file_size(path), sizeof(bad));
	snprintf(path, sizeof(path), "%s/notes.txt", x->dir);
	assert_int_equal(file_size(path), sizeof(bad));
}

/* --- 7. format ---------------------------------------------------------- */

/*
 * Segments of another row format are not replayed and are left in place;
 * the spool still works for its own format, and the other format's
 * records are there for a daemon that speaks it.
 */
static void
test_format_mismatch(void **state)
{
	static const size_t lens[] = { 10, 20, 30 };
	struct fx *x = *state;
	char names[MAXSEGS][64], now[MAXSEGS][64];
	struct spool_pos pos[4];
	struct spool_stats st;
	size_t i;

	open_spool(x, BIG, BIG, FORMAT_A);
	append_recs(x, 0, 3, lens);
	close_spool(x);
	assert_int_equal(list_files(x, ".seg", names, MAXSEGS), 1);

	open_spool(x, BIG, BIG, FORMAT_B);
	expect_end_clean(x);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_corrupt, 0);
	assert_int_equal(list_files(x, ".seg", now, MAXSEGS), 1);
	assert_string_equal(names[0], now[0]);
	/* Format B records can still be spooled next to it. */
	x->recs[3].len = 40;
	x->recs[3].lines = 2;
	x->recs[3].id = 3;
	fill(&x->pay, 3, 40);
	errno = 0;
	if (spool_append(x->sp, x->pay.data, 40, 2, &x->recs[3].pos) != 0)
		fail_msg("spool_append with a format-A segment in the dir: "
			 "%s",
		    strerror(errno));
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 2);

	/* Each format replays only its own records. */
	open_spool(x, BIG, BIG, FORMAT_A);
	for (i = 0; i < 3; i++)
		expect_rec(x, i, &pos[i]);
	expect_end_clean(x);
	close_spool(x);
	open_spool(x, BIG, BIG, FORMAT_B);
	expect_rec(x, 3, &pos[3]);
	expect_end_clean(x);
	close_spool(x);
}

/* --- 8. lock ------------------------------------------------------------ */

/* A second spool_open() on a directory in use fails and says why. */
static void
test_lock(void **state)
{
	struct fx *x = *state;
	struct spool_settings set = { x->dir, BIG, BIG, FORMAT_A };
	struct spool *sp2;
	char err[512] = "";

	open_spool(x, BIG, BIG, FORMAT_A);
	sp2 = spool_open(&set, err, sizeof(err));
	if (sp2 != NULL)
		spool_close(sp2);
	assert_null(sp2);
	assert_non_null(strstr(err, "lock"));
	assert_non_null(strstr(err, "another logsinkd"));
	/* Released at close. */
	close_spool(x);
	sp2 = spool_open(&set, err, sizeof(err));
	assert_non_null(sp2);
	spool_close(sp2);
}

/* --- 9. CRC-32C ----------------------------------------------------------- */

static void
test_crc32c(void **state)
{
	(void)state;
	assert_int_equal(spool_crc32c(0, "123456789", 9), 0xe3069283u);
	/* Incremental use gives the same value. */
	assert_int_equal(
	    spool_crc32c(spool_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
	assert_int_equal(spool_crc32c(0, "", 0), 0);
	/* RFC 3720 B.4: 32 bytes of zeros. */
	assert_int_equal(spool_crc32c(0,
			     "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			     "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
			     32),
	    0x8a9136aau);
}

/* --- queue + spool ------------------------------------------------------- */

static void
ack_mark(void *ref, uint64_t first, uint32_t n, unsigned char how)
{
	struct sender *s = ref;
	uint64_t i;

	for (i = first; i < first + n; i++) {
		if (i >= MAXLINES || s->state[i] != 0) {
			s->double_acks++;
			continue;
		}
		s->state[i] = how;
	}
	if (how == 1)
		s->credited += n;
	else
		s->dropped += n;
}

static void
ack_take(void *ref, uint64_t first, uint32_t n)
{
	(void)first;
	(void)n;
	((struct sender *)ref)->takes++;
}

static void
ack_credit(void *ref, uint64_t first, uint32_t n)
{
	ack_mark(ref, first, n, 1);
}

static void
ack_drop(void *ref, uint64_t first, uint32_t n)
{
	ack_mark(ref, first, n, 2);
}

static void
make_queue(struct fx *x, size_t limit, int resume_percent, uint32_t batch_lines)
{
	x->q = queue_new(limit, resume_percent, batch_lines, BIG);
	assert_non_null(x->q);
	queue_set_ack_callbacks(x->q, ack_take, ack_credit, ack_drop);
	if (x->sp != NULL)
		queue_set_spool(x->q, x->sp);
}

/* Record i: a numbered message of a length that varies with i. */
static void
make_record(struct fx *x, uint32_t i, struct record *r)
{
	size_t len = 20 + (i * 37) % 180, k;

	buf_reset(&x->msg);
	assert_int_equal(buf_reserve(&x->msg, len + 1), 0);
	k = (size_t)snprintf(x->msg.data, len + 1, "line-%06u-", i);
	for (; k < len; k++)
		x->msg.data[k] = (char)('a' + (i + k) % 26);
	x->msg.data[len] = '\0';
	memset(r, 0, sizeof(*r));
	record_clear_parsed(r);
	r->received_us = INT64_C(1700000000000000) + i;
	r->message.ptr = x->msg.data;
	r->message.len = len;
}

/* Appends record i, acknowledged to ref (NULL: none) as line seq. */
static void
qpush(struct fx *x, uint32_t i, struct sender *ref, uint64_t seq, bool at_spool)
{
	struct record r;
	size_t replaced;

	make_record(x, i, &r);
	assert_int_equal(
	    queue_append_acked(x->q, &r, &replaced, ref, seq, at_spool), 0);
	assert_int_equal(replaced, 0);
}

/* The rows of records from..to-1, as the queue would encode them. */
static void
expected_rows(struct fx *x, uint32_t from, uint32_t to, struct buf *out)
{
	struct record r;
	size_t replaced;
	uint32_t i;

	buf_reset(out);
	for (i = from; i < to; i++) {
		make_record(x, i, &r);
		assert_int_equal(copyenc_row(out, &r, &replaced), 0);
	}
}

/* Rows in a batch (copyenc binary rows, back to back). */
static uint32_t
count_rows(const struct batch *b)
{
	uint32_t n = 0;
	size_t off = 0, len;

	while (off < b->rows.len) {
		len = copyenc_row_size(b->rows.data + off, b->rows.len - off);
		assert_true(len > 0);
		off += len;
		n++;
	}
	return n;
}

static struct batch *
take(struct fx *x, bool flush)
{
	struct batch *b = queue_take(x->q, flush);

	if (b != NULL) {
		assert_true(x->ntaken < MAXTAKEN);
		x->taken[x->ntaken++] = b;
		assert_int_equal(count_rows(b), b->lines);
	}
	return b;
}

static void
untrack(struct fx *x, struct batch *b)
{
	size_t i;

	for (i = 0; i < x->ntaken; i++)
		if (x->taken[i] == b)
			break;
	assert_true(i < x->ntaken);
	x->taken[i] = x->taken[--x->ntaken];
}

static void
done(struct fx *x, struct batch *b)
{
	untrack(x, b);
	queue_done(x->q, b);
}

static void
give_back(struct fx *x, struct batch *b)
{
	untrack(x, b);
	queue_return(x->q, b);
}

/*
 * Takes (with flush) and commits every batch; their rows are appended to
 * out.  Returns the number of lines; *spooled gets how many came from
 * the spool, and replayed batches must all come before memory ones.
 */
static uint64_t
drain(struct fx *x, struct buf *out, uint64_t *spooled)
{
	struct batch *b;
	uint64_t lines = 0;
	bool memory_seen = false;

	*spooled = 0;
	while ((b = take(x, true)) != NULL) {
		assert_int_equal(buf_append(out, b->rows.data, b->rows.len), 0);
		lines += b->lines;
		if (b->from_spool) {
			assert_false(memory_seen);
			*spooled += b->lines;
		} else {
			memory_seen = true;
		}
		done(x, b);
	}
	return lines;
}

/* What one batch holding one short line is charged (probe queue). */
static size_t
one_batch_charge(struct fx *x)
{
	size_t c;

	make_queue(x, BIG, 75, 1);
	qpush(x, 0, NULL, 0, false);
	c = queue_bytes(x->q);
	assert_true(c > sizeof(struct batch));
	queue_free(x->q);
	x->q = NULL;
	return c;
}

static void
assert_rows_equal(const struct buf *got, const struct buf *want)
{
	assert_int_equal(got->len, want->len);
	assert_memory_equal(got->data, want->data, want->len);
}

/* --- 10. spilling instead of filling up --------------------------------- */

/*
 * With a spool, a queue past its limit spills its oldest batches instead
 * of reporting full; its memory stays bounded and every line comes back
 * once, spooled ones first, in the order appended.
 */
static void
test_queue_spills_when_full(void **state)
{
	struct fx *x = *state;
	size_t c = one_batch_charge(x), limit = 8 * c, max_bytes = 0;
	struct spool_stats st;
	uint64_t lines, spooled;
	uint32_t i, n = 1000;

	open_spool(x, BIG, 64 * 1024, FORMAT_A);
	make_queue(x, limit, 75, 10);
	for (i = 0; i < n; i++) {
		qpush(x, i, NULL, 0, false);
		assert_false(queue_full(x->q));
		assert_true(queue_bytes(x->q) < limit);
		if (queue_bytes(x->q) > max_bytes)
			max_bytes = queue_bytes(x->q);
	}
	assert_true(queue_lines(x->q) < n);
	spool_get_stats(x->sp, &st);
	assert_true(st.records_written > 0);
	assert_int_equal(st.lines_written + queue_lines(x->q), n);
	assert_true(queue_has_sealed(x->q));

	lines = drain(x, &x->got, &spooled);
	assert_int_equal(lines, n);
	assert_int_equal(spooled, st.lines_written);
	expected_rows(x, 0, n, &x->want);
	assert_rows_equal(&x->got, &x->want);
	assert_int_equal(queue_bytes(x->q), 0);
	assert_int_equal(queue_lines(x->q), 0);
	assert_false(spool_has_unread(x->sp));
}

/* --- 11. spool full: back-pressure --------------------------------------- */

/*
 * When the spool cannot take more, the queue reports full (the owner
 * stops reading) and loses nothing: every line is taken once, in order.
 */
static void
test_queue_full_when_spool_full(void **state)
{
	struct fx *x = *state;
	size_t c = one_batch_charge(x);
	struct spool_stats st;
	uint64_t lines, spooled;
	uint32_t n = 0;

	open_spool(x, 8192, BIG, FORMAT_A);
	make_queue(x, 4 * c, 50, 10);
	while (!queue_full(x->q)) {
		assert_true(n < 2000);
		qpush(x, n++, NULL, 0, false);
	}
	spool_get_stats(x->sp, &st);
	assert_true(st.records_written > 0); /* some did fit */
	assert_true(st.bytes <= 8192);
	assert_int_equal(st.lines_written + queue_lines(x->q), n);
	/* A full queue still accepts what was already read. */
	qpush(x, n++, NULL, 0, false);
	qpush(x, n++, NULL, 0, false);
	assert_true(queue_full(x->q));

	lines = drain(x, &x->got, &spooled);
	assert_int_equal(lines, n);
	assert_int_equal(spooled, st.lines_written);
	expected_rows(x, 0, n, &x->want);
	assert_rows_equal(&x->got, &x->want);
	assert_false(queue_full(x->q));
	assert_int_equal(queue_bytes(x->q), 0);
}

/* --- 12. acknowledgements ------------------------------------------------ */

/* queue_tick(), then what the loop does when the sync thread is done. */
static void
tick_synced(struct fx *x)
{
	queue_tick(x->q);
	spool_sync_wait(x->sp);
	queue_sync_done(x->q);
}

static void
assert_all_credited(const struct sender *s, uint64_t n)
{
	uint64_t i;

	assert_int_equal(s->double_acks, 0);
	assert_int_equal(s->dropped, 0);
	assert_int_equal(s->credited, n);
	for (i = 0; i < n; i++)
		assert_int_equal(s->state[i], 1);
}

/*
 * ack=spooled lines (S) and ack=commit lines (C) share batches.  Sealing
 * spools such a batch; queue_tick() has it synced (on the sync thread),
 * and queue_sync_done() credits S without any commit; C is credited only when
 * its replayed batch is done; a returned replayed batch comes back with its
 * acknowledgements.
 */
static void
test_queue_ack_spooled(void **state)
{
	struct fx *x = *state;
	struct sender *s = &x->snd[0], *cm = &x->snd[1];
	struct spool_stats st;
	struct batch *b, *b2;
	uint64_t before;
	uint32_t i;
	size_t k;

	open_spool(x, BIG, BIG, FORMAT_A);
	make_queue(x, BIG, 75, 4);
	for (i = 0; i < 10; i++)
		qpush(x, i, i % 2 == 0 ? s : cm, i / 2, i % 2 == 0);
	/* Two full batches went to the spool as they were sealed. */
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_written, 2);
	assert_int_equal(queue_lines(x->q), 2);
	assert_int_equal(queue_open_lines(x->q), 2);
	/* Not yet synced: nobody credited. */
	assert_int_equal(s->credited + cm->credited, 0);
	assert_int_equal(s->takes, 5);

	queue_tick(x->q);
	/* The fdatasync runs on the sync thread: no credit before it is
	 * done and reaped. */
	assert_int_equal(s->credited, 0);
	spool_sync_wait(x->sp);
	assert_int_equal(s->credited, 0);
	queue_sync_done(x->q);
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.records_written, 3); /* the open batch too */
	assert_true(st.syncs >= 1);
	assert_int_equal(queue_lines(x->q), 0);
	assert_int_equal(queue_open_lines(x->q), 0);
	assert_all_credited(s, 5);
	assert_int_equal(cm->credited, 0);
	assert_int_equal(cm->dropped, 0);
	/* A second tick credits nothing more. */
	tick_synced(x);
	assert_int_equal(s->credited, 5);
	assert_int_equal(cm->credited, 0);

	/* Replay: the first batch carries C's two runs only. */
	b = take(x, false);
	assert_non_null(b);
	assert_true(b->from_spool);
	assert_int_equal(b->lines, 4);
	assert_int_equal(b->nacks, 2);
	for (k = 0; k < b->nacks; k++) {
		assert_ptr_equal(b->acks[k].ref, cm);
		assert_false(b->acks[k].at_spool);
	}
	/* Returned, it is the next one taken, acks intact. */
	give_back(x, b);
	assert_true(queue_has_sealed(x->q));
	b2 = take(x, false);
	assert_ptr_equal(b2, b);
	assert_int_equal(b2->nacks, 2);
	assert_int_equal(b2->acks[0].first, 0);
	assert_int_equal(b2->acks[1].first, 1);
	assert_int_equal(cm->credited, 0);
	done(x, b2);
	assert_int_equal(cm->credited, 2);
	assert_int_equal(cm->state[0] + cm->state[1], 2);

	while ((b = take(x, true)) != NULL) {
		assert_true(b->from_spool);
		before = cm->credited;
		done(x, b);
		assert_true(cm->credited > before);
	}
	assert_all_credited(s, 5);
	assert_all_credited(cm, 5);
	assert_int_equal(queue_bytes(x->q), 0);
	assert_int_equal(queue_lines(x->q), 0);
}

/*
 * A spooled batch replayed before queue_tick() synced it: its ack=spooled
 * run travels with the batch and is credited once, at commit.
 */
static void
test_queue_ack_spooled_replayed_before_sync(void **state)
{
	struct fx *x = *state;
	struct sender *s = &x->snd[0];
	struct batch *b;

	open_spool(x, BIG, BIG, FORMAT_A);
	make_queue(x, BIG, 75, 3);
	qpush(x, 0, s, 0, true);
	qpush(x, 1, s, 1, true);
	qpush(x, 2, s, 2, true); /* sealed: spooled */
	assert_int_equal(s->credited, 0);
	b = take(x, false);
	assert_non_null(b);
	assert_true(b->from_spool);
	tick_synced(x);
	/* Credited at sync or at commit, but exactly once. */
	done(x, b);
	tick_synced(x);
	assert_all_credited(s, 3);
	assert_null(take(x, true));
	assert_int_equal(queue_bytes(x->q), 0);
}

/*
 * ack=commit lines spilled because the queue was full are not credited
 * by queue_tick(), only when their replayed batch is done.
 */
static void
test_queue_commit_acks_spilled(void **state)
{
	struct fx *x = *state;
	struct sender *cm = &x->snd[1];
	size_t c = one_batch_charge(x);
	struct spool_stats st;
	struct batch *b;
	uint32_t i, n = 200, before, blines;

	open_spool(x, BIG, BIG, FORMAT_A);
	make_queue(x, 4 * c, 50, 5);
	for (i = 0; i < n; i++)
		qpush(x, i, cm, i, false);
	spool_get_stats(x->sp, &st);
	assert_true(st.lines_written > 0);
	tick_synced(x);
	tick_synced(x);
	assert_int_equal(cm->credited, 0);
	assert_int_equal(cm->dropped, 0);

	while ((b = take(x, true)) != NULL) {
		/* One run: the batch's own lines, in order. */
		before = (uint32_t)cm->credited;
		assert_int_equal(b->nacks, 1);
		assert_int_equal(b->acks[0].first, before);
		assert_int_equal(b->acks[0].n, b->lines);
		blines = b->lines;
		done(x, b);
		assert_int_equal(cm->credited, before + blines);
	}
	assert_all_credited(cm, n);
	assert_int_equal(queue_bytes(x->q), 0);
	assert_int_equal(queue_lines(x->q), 0);
}

/*
 * ack=spooled lines whose batch the spool refused (full) are not credited
 * by queue_tick(): they are not on disk.  They are credited once, when
 * the batch commits.
 */
static void
test_queue_ack_spooled_spool_refused(void **state)
{
	struct fx *x = *state;
	struct sender *s = &x->snd[0];
	struct batch *b;
	uint32_t i;

	/* Not even a segment header fits. */
	open_spool(x, 16, BIG, FORMAT_A);
	make_queue(x, BIG, 75, 2);
	for (i = 0; i < 5; i++)
		qpush(x, i, s, i, true);
	tick_synced(x);
	tick_synced(x);
	assert_int_equal(s->credited, 0);
	assert_int_equal(s->dropped, 0);
	assert_int_equal(queue_lines(x->q), 5);
	while ((b = take(x, true)) != NULL) {
		assert_false(b->from_spool);
		done(x, b);
	}
	assert_all_credited(s, 5);
	tick_synced(x);
	assert_all_credited(s, 5);
}

/* --- 13. shutdown -------------------------------------------------------- */

/*
 * queue_spill_all() moves every untaken line to the spool (the one a
 * writer holds stays with it); a new spool and queue on the directory
 * replay them all, in order.
 */
static void
test_queue_spill_all(void **state)
{
	struct fx *x = *state;
	struct sender *cm = &x->snd[1];
	struct spool_stats st;
	struct batch *held;
	uint64_t lines, spooled;
	uint32_t i, n = 23;

	open_spool(x, BIG, BIG, FORMAT_A);
	make_queue(x, BIG, 75, 5);
	for (i = 0; i < n; i++)
		qpush(x, i, cm, i, false);
	held = take(x, false);
	assert_non_null(held);
	assert_int_equal(held->lines, 5);
	assert_int_equal(queue_spill_all(x->q), 0);
	assert_int_equal(queue_lines(x->q), 5); /* only the held one */
	assert_int_equal(queue_open_lines(x->q), 0);
	assert_true(spool_has_unread(x->sp));
	spool_get_stats(x->sp, &st);
	assert_int_equal(st.lines_written, n - 5);
	done(x, held);
	assert_int_equal(cm->credited, 5);
	/* Shutdown: the spooled lines are not acknowledged. */
	queue_stop_replay(x->q);
	assert_null(take(x, true));
	queue_free(x->q);
	x->q = NULL;
	assert_int_equal(cm->credited, 5);
	assert_int_equal(cm->dropped, n - 5);
	assert_int_equal(cm->double_acks, 0);
	close_spool(x);

	/* The next run. */
	open_spool(x, BIG, BIG, FORMAT_A);
	make_queue(x, BIG, 75, 5);
	lines = drain(x, &x->got, &spooled);
	assert_int_equal(lines, n - 5);
	assert_int_equal(spooled, n - 5);
	expected_rows(x, 5, n, &x->want);
	assert_rows_equal(&x->got, &x->want);
	queue_free(x->q);
	x->q = NULL;
	close_spool(x);
	assert_int_equal(count_files(x, ".seg"), 0);
}

/*
 * queue_spill_all() with a spool that fills up: it reports the lines
 * left in memory, and those plus the spooled ones are every line.
 */
static void
test_queue_spill_all_spool_full(void **state)
{
	struct fx *x = *state;
	struct spool_stats st;
	uint64_t left, lines, spooled;
	uint32_t i, n = 300;

	open_spool(x, 8192, BIG, FORMAT_A);
	make_queue(x, BIG, 75, 10);
	for (i = 0; i < n; i++)
		qpush(x, i, NULL, 0, false);
	left = queue_spill_all(x->q);
	spool_get_stats(x->sp, &st);
	assert_true(st.lines_written > 0);
	assert_true(left > 0);
	assert_int_equal(st.lines_written + left, n);
	assert_int_equal(queue_lines(x->q), left);
	lines = drain(x, &x->got, &spooled);
	assert_int_equal(lines, n);
	assert_int_equal(spooled, st.lines_written);
	expected_rows(x, 0, n, &x->want);
	assert_rows_equal(&x->got, &x->want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_append_read_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_restart_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sync_async_covers_earlier_records, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sync_async_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_max_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_torn_tail_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_torn_tail_header, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_torn_tail_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_header, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_kept_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_files_not_overwritten, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_finished_segment_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_foreign_files, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_format_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crc32c, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_spills_when_full, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_full_when_spool_full, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_ack_spooled, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_ack_spooled_replayed_before_sync, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_commit_acks_spilled, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_ack_spooled_spool_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_spill_all, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_queue_spill_all_spool_full, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
