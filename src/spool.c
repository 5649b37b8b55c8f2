/*
 * spool: segment files on disk (see include/logsink/spool.h for the
 * format and the rules).
 */
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logsink/log.h"
#include "logsink/spool.h"

#define RECORD_MAGIC     0x4c53524bu
/* A record larger than this is not believed (a batch is at most
 * batch-bytes, itself at most 4 GiB; records are far smaller in practice). */
#define RECORD_MAX_BYTES (1u << 31)

static const char header_magic[8] = "LSSPOOL";

/* Header flags (offset 24). */
#define SEG_FLAG_CORRUPT 1u

struct segment {
	struct segment *next;
	uint64_t seq;
	uint64_t size;     /* end of the last complete record */
	uint64_t read_off; /* next record to hand out */
	uint64_t saved;    /* replay progress stored in the header */
	bool active;       /* the one being written */
	bool corrupt;      /* bytes were skipped: keep it as .corrupt */
};

/*
 * One request to the sync thread: fdatasync() fd (fsync() for the
 * directory).  Made and freed by the loop; between sync_submit() and
 * reap_done() it belongs to the syncer's lists, and the thread writes only
 * err.  Jobs run and finish in submission order, so a job's pos is
 * durable once it is reaped without error: everything before it (earlier
 * segments, their directory entries) was synced by earlier jobs.
 */
struct sync_job {
	struct sync_job *next;
	int fd;
	bool dir;      /* fsync() of the spool directory (a new segment) */
	bool sync;     /* false: nothing to sync, only close_fd in order */
	bool close_fd; /* a rotated segment: the loop closes fd when reaped */
	bool data;     /* the periodic sync of the active segment */
	bool has_pos;  /* pos is durable once this job is done */
	bool heap;     /* freed when reaped (else on the caller's stack) */
	struct spool_pos pos;
	uint64_t seq; /* the segment, for the log */
	int err;      /* errno of the failed call; 0: done */
};

/*
 * The hand-off between the loop and the sync thread.  mu guards todo,
 * done, submitted, completed and quit; the thread waits on wake for
 * todo, takes one job, syncs with mu released, appends it to done,
 * signals idle and adds 1 to the eventfd efd, which the owner watches on
 * the loop (spool_sync_fd) and answers with spool_sync_reap().  Nothing
 * else is shared: the thread never touches the spool, logs or metrics.
 */
struct syncer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake, idle;
	struct sync_job *todo, **todo_tail;
	struct sync_job *done, **done_tail;
	uint64_t submitted, completed;
	bool quit;
	bool running; /* the thread was started (spool_close joins it) */
	int efd;
};

/* Owned by main; freed by spool_close(). */
struct spool {
	struct spool_settings set;
	char *dir;
	int dirfd, lockfd;
	struct segment *segs; /* oldest first; the active one is last */
	struct segment *active;
	int wfd; /* the active segment's */
	int rfd; /* the segment being read */
	uint64_t rfd_seq;
	uint64_t next_seq;
	bool dirty;       /* written since the last sync was requested */
	bool sync_broken; /* an fdatasync failed: nothing is durable */
	struct syncer sy;
	uint64_t njobs;     /* submitted, not yet reaped */
	unsigned data_jobs; /* data jobs submitted, not yet reaped */
	bool sync_wanted;   /* asked while one was in flight: another next */
	struct spool_pos durable;   /* of the last job reaped with a pos */
	bool durable_new;           /* durable moved since it was reported */
	struct spool_pos *inflight; /* handed out, not yet done */
	size_t ninflight, capinflight;
	struct spool_stats st;
};

static uint32_t crc_table[256];

uint32_t
spool_crc32c(uint32_t crc, const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t c;
	int i, k;

	if (crc_table[1] == 0) {
		for (i = 0; i < 256; i++) {
			c = (uint32_t)i;
			for (k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
			crc_table[i] = c;
		}
	}
	crc = ~crc;
	while (len-- > 0)
		crc = crc_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t
get64(const unsigned char *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void
seg_name(char *out, size_t outlen, uint64_t seq, const char *suffix)
{
	snprintf(out, outlen, "%016" PRIx64 ".seg%s", seq, suffix);
}

/* The CRC of a record: its length and line count, then the payload. */
static uint32_t
record_crc(const unsigned char *hdr, const void *payload, size_t len)
{
	return spool_crc32c(spool_crc32c(0, hdr + 4, 8), payload, len);
}

static ssize_t
pread_full(int fd, void *p, size_t len, uint64_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, (char *)p + got, len - got, (off_t)(off + got));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static bool
has_inflight(const struct spool *sp, uint64_t seq)
{
	size_t i;

	for (i = 0; i < sp->ninflight; i++)
		if (sp->inflight[i].seg == seq)
			return true;
	return false;
}

/* Replay progress: records before this offset are all stored. */
static uint64_t
seg_progress(const struct spool *sp, const struct segment *s)
{
	uint64_t p = s->read_off;
	size_t i;

	for (i = 0; i < sp->ninflight; i++)
		if (sp->inflight[i].seg == s->seq && sp->inflight[i].off < p)
			p = sp->inflight[i].off;
	return p;
}

static void
seg_save_progress(struct spool *sp, struct segment *s)
{
	unsigned char v[8];
	char name[64];
	uint64_t p = seg_progress(sp, s);
	int fd;

	if (p == s->saved)
		return;
	put64(v, p);
	if (s->active) {
		fd = sp->wfd;
	} else {
		seg_name(name, sizeof(name), s->seq, "");
		if ((fd = openat(sp->dirfd, name, O_WRONLY | O_CLOEXEC)) ==
		    -1) {
			log_warn("spool: %s/%s: open", sp->dir, name);
			return;
		}
	}
	if (pwrite(fd, v, sizeof(v), 16) != (ssize_t)sizeof(v))
		log_warn("spool: segment %016" PRIx64
			 ": saving replay progress",
		    s->seq);
	else
		s->saved = p;
	if (!s->active)
		close(fd);
}

/* Remembers in the header that bytes were skipped (survives restarts). */
static void
seg_mark_corrupt(struct spool *sp, struct segment *s)
{
	unsigned char v[4];
	char name[64];
	int fd;

	if (s->corrupt)
		return;
	s->corrupt = true;
	put32(v, SEG_FLAG_CORRUPT);
	seg_name(name, sizeof(name), s->seq, "");
	if ((fd = openat(sp->dirfd, name, O_WRONLY | O_CLOEXEC)) == -1)
		return;
	if (pwrite(fd, v, sizeof(v), 24) != (ssize_t)sizeof(v))
		log_warn("spool: %s/%s: marking it corrupt", sp->dir, name);
	close(fd);
}

void
spool_save_progress(struct spool *sp)
{
	struct segment *s;

	for (s = sp->segs; s != NULL; s = s->next)
		seg_save_progress(sp, s);
}

static void
unlink_seg(struct spool *sp, struct segment *s)
{
	struct segment **pp;

	for (pp = &sp->segs; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	if (sp->rfd != -1 && sp->rfd_seq == s->seq) {
		close(sp->rfd);
		sp->rfd = -1;
	}
	sp->st.bytes -= s->size;
	sp->st.segments--;
	free(s);
}

/*
 * A segment no longer written, read to its end and with nothing in flight
 * is finished: deleted, or renamed to .corrupt if bytes were skipped.
 */
static void
seg_maybe_finish(struct spool *sp, struct segment *s)
{
	char name[64], bad[64];

	if (s->active || s->read_off < s->size || has_inflight(sp, s->seq))
		return;
	seg_name(name, sizeof(name), s->seq, "");
	if (s->corrupt) {
		seg_name(bad, sizeof(bad), s->seq, ".corrupt");
		if (renameat(sp->dirfd, name, sp->dirfd, bad) == -1)
			log_warn("spool: rename %s/%s", sp->dir, name);
		else
			log_warnx("spool: %s/%s: its good records are stored; "
				  "the segment is kept as %s for inspection "
				  "(delete it when done)",
			    sp->dir, name, bad);
	} else if (unlinkat(sp->dirfd, name, 0) == -1) {
		log_warn("spool: unlink %s/%s", sp->dir, name);
	}
	unlink_seg(sp, s);
}

/* On the sync thread: the one blocking call of a job. */
static void
run_job(struct sync_job *j)
{
	int r = 0;

	if (j->sync)
		r = j->dir ? fsync(j->fd) : fdatasync(j->fd);
	j->err = r == -1 ? (errno != 0 ? errno : EIO) : 0;
}

/* The sync thread: runs jobs in order until told to quit with none left. */
static void *
sync_main(void *arg)
{
	struct syncer *sy = arg;
	struct sync_job *j;
	uint64_t one = 1;

	pthread_mutex_lock(&sy->mu);
	for (;;) {
		while (sy->todo == NULL && !sy->quit)
			pthread_cond_wait(&sy->wake, &sy->mu);
		if ((j = sy->todo) == NULL)
			break; /* quit, and nothing left */
		if ((sy->todo = j->next) == NULL)
			sy->todo_tail = &sy->todo;
		pthread_mutex_unlock(&sy->mu);
		run_job(j);
		pthread_mutex_lock(&sy->mu);
		j->next = NULL;
		*sy->done_tail = j;
		sy->done_tail = &j->next;
		sy->completed++;
		pthread_cond_broadcast(&sy->idle);
		/* Cannot fail short of 2^64 - 1 unread completions. */
		while (
		    write(sy->efd, &one, sizeof(one)) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

/*
 * Starts the sync thread, with every signal blocked in it (they belong to
 * the loop).  -1 with errno if the eventfd or the thread cannot be made.
 */
static int
syncer_start(struct syncer *sy)
{
	sigset_t all, old;
	int e;

	sy->todo_tail = &sy->todo;
	sy->done_tail = &sy->done;
	if ((sy->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	pthread_mutex_init(&sy->mu, NULL);
	pthread_cond_init(&sy->wake, NULL);
	pthread_cond_init(&sy->idle, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&sy->thread, NULL, sync_main, sy);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		pthread_cond_destroy(&sy->idle);
		pthread_cond_destroy(&sy->wake);
		pthread_mutex_destroy(&sy->mu);
		close(sy->efd);
		errno = e;
		return -1;
	}
	sy->running = true;
	return 0;
}

/* Lets the thread finish the jobs it has, then joins it. */
static void
syncer_stop(struct syncer *sy)
{
	if (!sy->running)
		return;
	pthread_mutex_lock(&sy->mu);
	sy->quit = true;
	pthread_cond_signal(&sy->wake);
	pthread_mutex_unlock(&sy->mu);
	pthread_join(sy->thread, NULL);
	pthread_cond_destroy(&sy->idle);
	pthread_cond_destroy(&sy->wake);
	pthread_mutex_destroy(&sy->mu);
	close(sy->efd);
	sy->running = false;
}

/* Blocks until every submitted job is done (shutdown, spool_sync()). */
static void
sync_wait_idle(struct spool *sp)
{
	struct syncer *sy = &sp->sy;

	pthread_mutex_lock(&sy->mu);
	while (sy->completed != sy->submitted)
		pthread_cond_wait(&sy->idle, &sy->mu);
	pthread_mutex_unlock(&sy->mu);
}

/*
 * On the loop: the outcome of a finished job.  A failed sync is logged
 * and counted, and from then on nothing is claimed durable (after a
 * failed fdatasync the kernel may have dropped the dirty pages).
 */
static void
finish_job(struct spool *sp, struct sync_job *j)
{
	if (j->err != 0) {
		errno = j->err;
		if (j->dir)
			log_warn("spool: fsync %s (the directory, for segment "
				 "%016" PRIx64 "); ack=spooled lines are "
				 "acknowledged only once committed from now on",
			    sp->dir, j->seq);
		else
			log_warn("spool: fdatasync %s/%016" PRIx64 ".seg; "
				 "ack=spooled lines are acknowledged only once "
				 "committed from now on",
			    sp->dir, j->seq);
		sp->st.sync_errors++;
		sp->sync_broken = true;
	} else if (j->sync && !j->dir) {
		sp->st.syncs++;
	}
	if (j->has_pos && j->err == 0) {
		sp->durable = j->pos;
		sp->durable_new = true;
	}
	if (j->close_fd)
		close(j->fd);
	if (j->data)
		sp->data_jobs--;
	if (j->heap) {
		sp->njobs--;
		free(j);
	}
}

/* On the loop: every job the thread finished, in order. */
static void
reap_done(struct spool *sp)
{
	struct syncer *sy = &sp->sy;
	struct sync_job *j, *next;

	pthread_mutex_lock(&sy->mu);
	j = sy->done;
	sy->done = NULL;
	sy->done_tail = &sy->done;
	pthread_mutex_unlock(&sy->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		finish_job(sp, j);
	}
}

/*
 * Hands a copy of tmpl to the sync thread.  Out of memory: the job runs
 * here instead, once the earlier ones are done (order is what makes a
 * position durable), blocking the loop this once.
 */
static void
sync_submit(struct spool *sp, const struct sync_job *tmpl)
{
	struct syncer *sy = &sp->sy;
	struct sync_job *j, local;

	if (tmpl->data)
		sp->data_jobs++;
	if ((j = malloc(sizeof(*j))) == NULL) {
		sync_wait_idle(sp);
		reap_done(sp);
		local = *tmpl;
		local.heap = false;
		run_job(&local);
		finish_job(sp, &local);
		return;
	}
	*j = *tmpl;
	j->heap = true;
	j->next = NULL;
	sp->njobs++;
	pthread_mutex_lock(&sy->mu);
	*sy->todo_tail = j;
	sy->todo_tail = &j->next;
	sy->submitted++;
	pthread_cond_signal(&sy->wake);
	pthread_mutex_unlock(&sy->mu);
}

/* The end of what was written: every record lies before it. */
static void
end_pos(const struct spool *sp, struct spool_pos *p)
{
	if (sp->active != NULL) {
		p->seg = sp->active->seq;
		p->off = sp->active->size;
	} else {
		p->seg = sp->next_seq;
		p->off = 0;
	}
}

/* Asks for an fdatasync of the records written so far, if any. */
static void
submit_data(struct spool *sp)
{
	struct sync_job t = { 0 };

	if (!sp->dirty || sp->active == NULL)
		return;
	t.fd = sp->wfd;
	t.sync = t.data = t.has_pos = true;
	end_pos(sp, &t.pos);
	t.seq = sp->active->seq;
	sp->dirty = false;
	sync_submit(sp, &t);
}

/* Closes the active segment: synced (in order, by the thread, which
 * then lets the loop close the fd), no longer written. */
static void
close_active(struct spool *sp)
{
	struct segment *s = sp->active;
	struct sync_job t = { 0 };

	if (s == NULL)
		return;
	seg_save_progress(sp, s);
	t.fd = sp->wfd;
	t.sync = sp->dirty;
	t.close_fd = t.has_pos = true;
	end_pos(sp, &t.pos);
	t.seq = s->seq;
	sp->dirty = false;
	sync_submit(sp, &t);
	sp->wfd = -1;
	s->active = false;
	sp->active = NULL;
	seg_maybe_finish(sp, s);
}

static struct segment *
seg_add(struct spool *sp, uint64_t seq, uint64_t size, uint64_t read_off)
{
	struct segment *s, **pp;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->seq = seq;
	s->size = size;
	s->read_off = s->saved = read_off;
	for (pp = &sp->segs; *pp != NULL && (*pp)->seq < seq; pp = &(*pp)->next)
		;
	s->next = *pp;
	*pp = s;
	sp->st.bytes += size;
	sp->st.segments++;
	return s;
}

/* Starts a new active segment: header written, the directory's fsync
 * handed to the sync thread. */
static int
open_active(struct spool *sp)
{
	unsigned char h[SPOOL_HEADER_BYTES] = { 0 };
	struct sync_job dj = { 0 };
	char name[64];
	int fd, saved;

	seg_name(name, sizeof(name), sp->next_seq, "");
	fd = openat(
	    sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	memcpy(h, header_magic, sizeof(header_magic));
	put32(h + 8, SPOOL_VERSION);
	put32(h + 12, sp->set.format);
	put64(h + 16, SPOOL_HEADER_BYTES);
	if (pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		saved = errno != 0 ? errno : EIO;
		close(fd);
		unlinkat(sp->dirfd, name, 0);
		errno = saved;
		return -1;
	}
	if ((sp->active = seg_add(sp, sp->next_seq, SPOOL_HEADER_BYTES,
		 SPOOL_HEADER_BYTES)) == NULL) {
		close(fd);
		unlinkat(sp->dirfd, name, 0);
		errno = ENOMEM;
		return -1;
	}
	sp->active->active = true;
	sp->next_seq++;
	sp->wfd = fd;
	/* The new directory entry, synced before any of its records. */
	dj.fd = sp->dirfd;
	dj.dir = dj.sync = true;
	dj.seq = sp->active->seq;
	sync_submit(sp, &dj);
	return 0;
}

int
spool_append(struct spool *sp, const void *payload, size_t len, uint32_t lines,
    struct spool_pos *pos)
{
	unsigned char h[SPOOL_RECORD_HEADER];
	struct iovec iov[2];
	struct segment *s = sp->active;
	size_t total = SPOOL_RECORD_HEADER + len, done = 0;
	ssize_t n;
	int saved;

	if (len > RECORD_MAX_BYTES) {
		errno = EFBIG;
		return -1;
	}
	if (s != NULL &&
	    (s->size >= sp->set.segment_bytes ||
		(s->size > SPOOL_HEADER_BYTES && s->read_off == s->size &&
		    !has_inflight(sp, s->seq)))) {
		close_active(sp); /* full, or replayed: start afresh */
		s = NULL;
	}
	if (sp->st.bytes + total + (s == NULL ? SPOOL_HEADER_BYTES : 0) >
	    sp->set.max_bytes) {
		errno = ENOSPC;
		return -1;
	}
	if (s == NULL) {
		if (open_active(sp) == -1) {
			sp->st.write_errors++;
			return -1;
		}
		s = sp->active;
	}
	put32(h, RECORD_MAGIC);
	put32(h + 4, (uint32_t)len);
	put32(h + 8, lines);
	put32(h + 12, record_crc(h, payload, len));
	while (done < total) {
		iov[0].iov_base = h + (done < sizeof(h) ? done : sizeof(h));
		iov[0].iov_len = done < sizeof(h) ? sizeof(h) - done : 0;
		iov[1].iov_base = (char *)(uintptr_t)payload +
		    (done > sizeof(h) ? done - sizeof(h) : 0);
		iov[1].iov_len =
		    len - (done > sizeof(h) ? done - sizeof(h) : 0);
		n = pwritev(sp->wfd, iov, 2, (off_t)(s->size + done));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n == 0 ? ENOSPC : errno;
			sp->st.write_errors++;
			/* Cut the partial record off again; if even that
			 * fails, readers stop at s->size anyway and a new
			 * segment takes the next records. */
			if (ftruncate(sp->wfd, (off_t)s->size) == -1)
				close_active(sp);
			errno = saved;
			return -1;
		}
		done += (size_t)n;
	}
	pos->seg = s->seq;
	pos->off = s->size;
	s->size += total;
	sp->st.bytes += total;
	sp->st.records_written++;
	sp->st.lines_written += lines;
	sp->dirty = true;
	return 0;
}

/* What is known durable: the end of the spool when nothing is pending,
 * else the position of the last job done, once. */
static int
durable_pos(struct spool *sp, struct spool_pos *synced)
{
	if (sp->sync_broken)
		return -1;
	if (sp->njobs == 0 && !sp->dirty) {
		end_pos(sp, synced);
		sp->durable_new = false;
		return 1;
	}
	if (!sp->durable_new)
		return 0;
	*synced = sp->durable;
	sp->durable_new = false;
	return 1;
}

int
spool_sync_start(struct spool *sp, struct spool_pos *synced)
{
	if (sp->sync_broken)
		return -1;
	if (sp->dirty) {
		if (sp->data_jobs > 0)
			sp->sync_wanted = true;
		else
			submit_data(sp);
	}
	return durable_pos(sp, synced);
}

int
spool_sync_reap(struct spool *sp, struct spool_pos *synced)
{
	uint64_t n;

	while (read(sp->sy.efd, &n, sizeof(n)) == -1 && errno == EINTR)
		;
	reap_done(sp);
	if (sp->sync_wanted && sp->data_jobs == 0 && !sp->sync_broken) {
		sp->sync_wanted = false;
		submit_data(sp);
	}
	return durable_pos(sp, synced);
}

int
spool_sync_fd(const struct spool *sp)
{
	return sp->sy.efd;
}

void
spool_sync_wait(struct spool *sp)
{
	sync_wait_idle(sp);
}

int
spool_sync(struct spool *sp, struct spool_pos *synced)
{
	/* After a failed fdatasync the kernel may have dropped the pages:
	 * never claim durability again (acks then wait for the commit). */
	if (sp->sync_broken)
		return -1;
	submit_data(sp);
	sync_wait_idle(sp);
	reap_done(sp);
	if (sp->sync_broken)
		return -1;
	end_pos(sp, synced);
	sp->durable_new = false;
	return 0;
}

static void
skip_bytes(struct spool *sp, struct segment *s, uint64_t from, uint64_t n,
    const char *why)
{
	log_warnx("spool: %s/%016" PRIx64 ".seg: skipped %" PRIu64
		  " bytes at offset %" PRIu64 " (%s)",
	    sp->dir, s->seq, n, from, why);
	sp->st.records_corrupt++;
	sp->st.bytes_corrupt += n;
	s->read_off = from + n;
}

/* Whether a valid record starts at off (header sane, checksum right): 1
 * yes, 0 no, -1 out of memory. */
static int
record_valid_at(int fd, const struct segment *s, uint64_t off, struct buf *tmp)
{
	unsigned char h[SPOOL_RECORD_HEADER];
	uint32_t len;

	if (s->size - off < SPOOL_RECORD_HEADER ||
	    pread_full(fd, h, sizeof(h), off) != (ssize_t)sizeof(h) ||
	    get32(h) != RECORD_MAGIC)
		return 0;
	len = get32(h + 4);
	if (len > s->size - off - SPOOL_RECORD_HEADER || get32(h + 8) == 0)
		return 0;
	tmp->len = 0;
	if (buf_reserve(tmp, len) == -1)
		return -1;
	if (pread_full(fd, tmp->data, len, off + SPOOL_RECORD_HEADER) !=
	    (ssize_t)len)
		return 0;
	return record_crc(h, tmp->data, len) == get32(h + 12);
}

/* The next offset after off where a valid record starts, or s->size. */
static uint64_t
resync(int fd, const struct segment *s, uint64_t off, struct buf *tmp)
{
	unsigned char m[4], chunk[65536];
	uint64_t base, o;
	ssize_t n;
	size_t i;

	put32(m, RECORD_MAGIC);
	for (base = off + 1; base + SPOOL_RECORD_HEADER <= s->size;
	     base += (uint64_t)n - 3) {
		if ((n = pread_full(fd, chunk, sizeof(chunk), base)) < 4)
			break;
		for (i = 0; i + 4 <= (size_t)n; i++) {
			o = base + i;
			if (memcmp(chunk + i, m, 4) == 0 &&
			    record_valid_at(fd, s, o, tmp) != 0)
				return o;
		}
	}
	return s->size;
}

static int
open_reader(struct spool *sp, struct segment *s)
{
	char name[64];

	if (sp->rfd != -1 && sp->rfd_seq == s->seq)
		return sp->rfd;
	if (sp->rfd != -1)
		close(sp->rfd);
	seg_name(name, sizeof(name), s->seq, "");
	sp->rfd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
	sp->rfd_seq = s->seq;
	return sp->rfd;
}

static int
add_inflight(struct spool *sp, const struct spool_pos *pos)
{
	struct spool_pos *p;
	size_t cap;

	if (sp->ninflight == sp->capinflight) {
		cap = sp->capinflight ? sp->capinflight * 2 : 16;
		if ((p = reallocarray(sp->inflight, cap, sizeof(*p))) == NULL)
			return -1;
		sp->inflight = p;
		sp->capinflight = cap;
	}
	sp->inflight[sp->ninflight++] = *pos;
	return 0;
}

int
spool_read(
    struct spool *sp, struct buf *out, uint32_t *lines, struct spool_pos *pos)
{
	unsigned char h[SPOOL_RECORD_HEADER];
	struct segment *s, *next;
	uint64_t left, at;
	uint32_t len;
	int fd, valid;

	for (s = sp->segs; s != NULL; s = next) {
		next = s->next;
		if (s->read_off >= s->size)
			continue;
		if ((fd = open_reader(sp, s)) == -1) {
			log_warn("spool: %s/%016" PRIx64 ".seg: open", sp->dir,
			    s->seq);
			s->corrupt = true; /* cannot be marked: not writable */
			skip_bytes(sp, s, s->read_off, s->size - s->read_off,
			    "unreadable");
			seg_maybe_finish(sp, s);
			continue;
		}
		at = s->read_off;
		left = s->size - at;
		if (left < SPOOL_RECORD_HEADER ||
		    pread_full(fd, h, sizeof(h), at) != (ssize_t)sizeof(h)) {
			skip_bytes(sp, s, at, left,
			    "torn tail: an unfinished write, from a crash or "
			    "a full disk");
			seg_maybe_finish(sp, s);
			continue;
		}
		len = get32(h + 4);
		if (get32(h) == RECORD_MAGIC &&
		    len > left - SPOOL_RECORD_HEADER &&
		    resync(fd, s, at, out) == s->size) {
			skip_bytes(sp, s, at, left,
			    "torn tail: an unfinished write, from a crash or "
			    "a full disk");
			seg_maybe_finish(sp, s);
			continue;
		}
		if ((valid = record_valid_at(fd, s, at, out)) == -1)
			return -1;
		if (valid == 0) {
			seg_mark_corrupt(sp, s);
			skip_bytes(sp, s, at, resync(fd, s, at, out) - at,
			    "corrupt record: bad header or checksum");
			seg_maybe_finish(sp, s);
			next = sp->segs; /* s may be gone: start over */
			continue;
		}
		/* record_valid_at() left the payload in out. */
		pos->seg = s->seq;
		pos->off = at;
		if (add_inflight(sp, pos) == -1)
			return -1;
		out->len = len;
		*lines = get32(h + 8);
		s->read_off = at + SPOOL_RECORD_HEADER + len;
		sp->st.records_replayed++;
		sp->st.lines_replayed += *lines;
		return 1;
	}
	return 0;
}

bool
spool_has_unread(const struct spool *sp)
{
	const struct segment *s;

	for (s = sp->segs; s != NULL; s = s->next)
		if (s->read_off < s->size)
			return true;
	return false;
}

void
spool_done(struct spool *sp, const struct spool_pos *pos)
{
	struct segment *s;
	size_t i;

	for (i = 0; i < sp->ninflight; i++) {
		if (sp->inflight[i].seg == pos->seg &&
		    sp->inflight[i].off == pos->off) {
			sp->inflight[i] = sp->inflight[--sp->ninflight];
			break;
		}
	}
	for (s = sp->segs; s != NULL; s = s->next) {
		if (s->seq == pos->seg) {
			seg_maybe_finish(sp, s);
			break;
		}
	}
}

/*
 * Adds a segment left by an earlier run: header checked, replay resumes
 * where it stopped.  Segments of another version or row format are left
 * alone, with a message.
 */
static void
adopt_segment(struct spool *sp, const char *name, uint64_t seq)
{
	unsigned char h[SPOOL_HEADER_BYTES];
	struct segment *s;
	struct stat st;
	uint64_t replayed;
	int fd;

	if ((fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		log_warn(
		    "spool: %s/%s: cannot open; left alone", sp->dir, name);
		if (fd != -1)
			close(fd);
		return;
	}
	if (pread_full(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h, header_magic, sizeof(header_magic)) != 0) {
		close(fd);
		if (st.st_size < SPOOL_HEADER_BYTES) {
			/* Created, then a crash before the header was
			 * written: nothing in it. */
			log_warnx("spool: %s/%s: empty segment (%lld bytes) "
				  "removed",
			    sp->dir, name, (long long)st.st_size);
			unlinkat(sp->dirfd, name, 0);
		} else {
			log_errx("spool: %s/%s: not a spool segment (bad "
				 "header); left alone",
			    sp->dir, name);
		}
		return;
	}
	close(fd);
	if (get32(h + 8) != SPOOL_VERSION || get32(h + 12) != sp->set.format) {
		log_errx("spool: %s/%s: written by a logsinkd with another "
			 "spool version (%u) or row format (%08x; this one "
			 "writes %08x); left alone, not replayed",
		    sp->dir, name, get32(h + 8), get32(h + 12), sp->set.format);
		return;
	}
	replayed = get64(h + 16);
	if (replayed < SPOOL_HEADER_BYTES || replayed > (uint64_t)st.st_size)
		replayed = SPOOL_HEADER_BYTES;
	if ((s = seg_add(sp, seq, (uint64_t)st.st_size, replayed)) == NULL)
		fatalx("spool: out of memory");
	s->corrupt = (get32(h + 24) & SEG_FLAG_CORRUPT) != 0;
}

static int
scan_dir(struct spool *sp, char *err, size_t errlen)
{
	struct dirent *de;
	DIR *d;
	char *end;
	uint64_t seq;
	int fd;

	if ((fd = dup(sp->dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(
		    err, errlen, "spool-dir %s: %s", sp->dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		errno = 0;
		seq = strtoull(de->d_name, &end, 16);
		if (errno != 0 || end != de->d_name + 16 ||
		    strncmp(end, ".seg", 4) != 0)
			continue;
		/* New segments never reuse a name, whatever is left here
		 * (segments of another format, kept .corrupt ones). */
		if (seq >= sp->next_seq)
			sp->next_seq = seq + 1;
		if (strcmp(end, ".seg") == 0)
			adopt_segment(sp, de->d_name, seq);
	}
	closedir(d);
	return 0;
}

struct spool *
spool_open(const struct spool_settings *set, char *err, size_t errlen)
{
	struct spool *sp;
	struct segment *s, *next;
	uint64_t pending = 0;

	if ((sp = calloc(1, sizeof(*sp))) == NULL ||
	    (sp->dir = strdup(set->dir)) == NULL) {
		free(sp);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sp->set = *set;
	sp->set.dir = sp->dir;
	sp->dirfd = sp->lockfd = sp->wfd = sp->rfd = -1;
	sp->next_seq = 1;
	if (mkdir(sp->dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen,
		    "spool-dir %s: cannot create it: %s (create it, owned by "
		    "the daemon's user, or point spool-dir elsewhere)",
		    sp->dir, strerror(errno));
		goto fail;
	}
	if ((sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		snprintf(
		    err, errlen, "spool-dir %s: %s", sp->dir, strerror(errno));
		goto fail;
	}
	if ((sp->lockfd = openat(sp->dirfd, "lock",
		 O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen,
		    "spool-dir %s is not writable by this user (uid %d): %s; "
		    "chown it to the daemon's user",
		    sp->dir, (int)geteuid(), strerror(errno));
		goto fail;
	}
	if (flock(sp->lockfd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen,
		    "spool-dir %s is in use by another logsinkd (%s/lock is "
		    "locked); give each instance its own spool-dir",
		    sp->dir, sp->dir);
		goto fail;
	}
	if (syncer_start(&sp->sy) == -1) {
		snprintf(err, errlen, "spool: cannot start the sync thread: %s",
		    strerror(errno));
		goto fail;
	}
	if (scan_dir(sp, err, errlen) == -1)
		goto fail;
	for (s = sp->segs; s != NULL; s = next) {
		next = s->next;
		seg_maybe_finish(sp, s); /* replayed before a crash */
	}
	for (s = sp->segs; s != NULL; s = s->next)
		pending += s->size - s->read_off;
	if (sp->segs != NULL)
		log_notice("spool: %s holds %" PRIu64 " segments, %" PRIu64
			   " bytes to replay; they are stored first",
		    sp->dir, sp->st.segments, pending);
	return sp;
fail:
	syncer_stop(&sp->sy);
	if (sp->lockfd != -1)
		close(sp->lockfd);
	if (sp->dirfd != -1)
		close(sp->dirfd);
	free(sp->dir);
	free(sp);
	return NULL;
}

void
spool_close(struct spool *sp)
{
	struct segment *s, *next;

	if (sp == NULL)
		return;
	close_active(sp);
	sync_wait_idle(sp); /* the last sync, and any still in flight */
	reap_done(sp);
	syncer_stop(&sp->sy);
	spool_save_progress(sp);
	for (s = sp->segs; s != NULL; s = next) {
		next = s->next;
		seg_maybe_finish(sp, s);
	}
	while ((s = sp->segs) != NULL) {
		sp->segs = s->next;
		free(s);
	}
	if (sp->rfd != -1)
		close(sp->rfd);
	close(sp->lockfd); /* releases the lock */
	close(sp->dirfd);
	free(sp->inflight);
	free(sp->dir);
	free(sp);
}

void
spool_get_stats(const struct spool *sp, struct spool_stats *st)
{
	const struct segment *s;

	*st = sp->st;
	st->unread_bytes = 0;
	for (s = sp->segs; s != NULL; s = s->next)
		st->unread_bytes += s->size - s->read_off;
}

const char *
spool_dir(const struct spool *sp)
{
	return sp->dir;
}
