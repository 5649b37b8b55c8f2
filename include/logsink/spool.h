/*
 * spool: the disk spool, a directory of append-only segment files that
 * hold encoded batches while the database cannot take them.
 *
 * A segment is "SEQ.seg" (SEQ: 16 hex digits, increasing).  It starts with
 * a 32-byte header:
 *
 *   0  "LSSPOOL\0"   magic
 *   8  u32 version   SPOOL_VERSION
 *  12  u32 format    the row encoding (COPYENC_FORMAT) its records use
 *  16  u64 replayed  every record before this offset is stored in the
 *                    database (rewritten in place as replay progresses)
 *  24  u32 flags     bit 0 (SEG_FLAG_CORRUPT in spool.c): a record was
 *                    skipped as corrupt, so the segment is renamed to
 *                    SEQ.seg.corrupt, not deleted, once it is finished;
 *                    set in place when the first bad record is found
 *  28  u32 reserved  zero
 *
 * then records, each a 16-byte header and its payload:
 *
 *   0  u32 magic     0x4c53524b ("LSRK"; on disk the bytes "KRSL")
 *   4  u32 length    payload bytes
 *   8  u32 lines     rows in the payload
 *  12  u32 crc       CRC-32C of bytes 4..11 and the payload
 *
 * All integers little-endian.  Records are read back lazily and checked;
 * a record that fails its checks is skipped and logged (with its offset
 * and length), the scan looks for the next valid record after it, and the
 * segment is kept as SEQ.seg.corrupt once its good records are replayed.
 * A torn tail (the unfinished last write of a crash or a full disk) is
 * skipped and logged the same way but does not mark the segment corrupt.
 *
 * Only one segment is written at a time (the active one).  A segment is
 * deleted when it is no longer active and all of its records have been
 * read and marked done.
 *
 * Syncing never blocks the caller's event loop: every fdatasync() (of the
 * active segment on the owner's timer, and of a segment rotated out) and
 * every fsync() of the directory (a new segment) runs on one sync thread
 * that spool_open() starts.  Writes (pwritev) stay on the caller's thread.
 * The thread takes jobs in order from a mutex-protected list and, after
 * each, adds 1 to an eventfd (spool_sync_fd); the owner watches it and
 * calls spool_sync_reap(), which hands back the position up to which
 * records are now durable: exactly the records written before that
 * fdatasync was requested.  Jobs finish in order, so a position is
 * durable only once the directory entries and the earlier segments are
 * synced too.  All spool calls are made from one thread (the loop's); the
 * sync thread only runs fsync()/fdatasync() and never logs.
 */
#ifndef LOGSINK_SPOOL_H
#define LOGSINK_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/buf.h"

#define SPOOL_VERSION       1
#define SPOOL_HEADER_BYTES  32
#define SPOOL_RECORD_HEADER 16

struct spool_settings {
	const char *dir;
	uint64_t max_bytes;     /* all segments together */
	uint64_t segment_bytes; /* rotate the active segment past this */
	uint32_t format;        /* COPYENC_FORMAT of the records written */
};

/* Where a record is: its segment and offset. */
struct spool_pos {
	uint64_t seg;
	uint64_t off;
};

struct spool_stats {
	uint64_t bytes;        /* on disk, all segments */
	uint64_t segments;     /* .seg files (active one included) */
	uint64_t unread_bytes; /* not yet handed out for replay */
	uint64_t records_written, lines_written;
	uint64_t records_replayed, lines_replayed;
	uint64_t records_corrupt, bytes_corrupt;
	uint64_t write_errors;
	uint64_t syncs;       /* fdatasync()s of segments done */
	uint64_t sync_errors; /* failed fsync()/fdatasync() (then nothing is
				 durable until restart) */
};

struct spool;

/*
 * Creates the directory if needed (mode 0700), takes its lock file and
 * lists the segments left by earlier runs (they are replayed first).  NULL
 * with a message in err: not a directory, not writable, locked by another
 * process.
 */
struct spool *spool_open(
    const struct spool_settings *set, char *err, size_t errlen);
/* Syncs, saves replay progress, deletes finished segments, unlocks. */
void spool_close(struct spool *sp);

/*
 * Appends one record.  -1 with errno: ENOSPC (spool-max-bytes reached, or
 * the file system is full: the partial write is cut off again), or another
 * write error.  The record is durable after the next spool_sync().
 */
int spool_append(struct spool *sp, const void *payload, size_t len,
    uint32_t lines, struct spool_pos *pos) __attribute__((warn_unused_result));

/*
 * Blocking: requests an fdatasync() of what was written, waits for it and
 * for every sync in flight.  On success *synced is the position up to
 * which every record is durable (records before it in the same segment,
 * and all earlier segments).  -1 once a sync has failed (logged when it
 * did).  For shutdown and tests; the loop uses the two calls below.
 */
int spool_sync(struct spool *sp, struct spool_pos *synced)
    __attribute__((warn_unused_result));
/*
 * Non-blocking (the spool-sync-interval timer): hands an fdatasync() of
 * the records written so far to the sync thread (if one is in flight,
 * another follows when it is done).  1: *synced is durable now (nothing
 * was pending); 0: wait for spool_sync_reap(); -1: a sync failed before.
 */
int spool_sync_start(struct spool *sp, struct spool_pos *synced)
    __attribute__((warn_unused_result));
/*
 * When spool_sync_fd() is readable: finishes the jobs the sync thread
 * completed (failures logged and counted; rotated segments' fds closed).
 * 1: *synced moved (records before it are durable); 0: not yet; -1: a
 * sync failed.
 */
int spool_sync_reap(struct spool *sp, struct spool_pos *synced)
    __attribute__((warn_unused_result));
/* An eventfd, readable when the sync thread finished a job. */
int spool_sync_fd(const struct spool *sp);
/* Blocks until the sync thread finished every job handed to it (tests;
 * spool_sync_reap() then sees them). */
void spool_sync_wait(struct spool *sp);

/*
 * The next record to replay, oldest first: payload into out (replacing
 * its contents), its line count and position.  1: a record; 0: none
 * waiting; -1: out of memory.  Corrupt or torn data on the way is skipped
 * and logged.
 */
int spool_read(struct spool *sp, struct buf *out, uint32_t *lines,
    struct spool_pos *pos) __attribute__((warn_unused_result));
bool spool_has_unread(const struct spool *sp);

/* The record at pos (from spool_read) is stored in the database. */
void spool_done(struct spool *sp, const struct spool_pos *pos);

/* Rewrites each segment's replay progress in its header (no fsync). */
void spool_save_progress(struct spool *sp);

void spool_get_stats(const struct spool *sp, struct spool_stats *st);
const char *spool_dir(const struct spool *sp);

/* CRC-32C (Castagnoli), as stored in record headers. */
uint32_t spool_crc32c(uint32_t crc, const void *p, size_t len);

#endif
