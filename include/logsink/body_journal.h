/*
 * body_journal: the Journal Export Format decoder (body.h's body_journal,
 * src/body_journal.c), and what it counts beyond the common contract.
 *
 * Leaf module: no I/O, no logging, no globals.
 */
#ifndef LOGSINK_BODY_JOURNAL_H
#define LOGSINK_BODY_JOURNAL_H

#include <stdint.h>

/* Entries decoded so far from the body of st (a body_journal.new()). */
uint64_t body_journal_entries(const void *st);
/*
 * Of those, entries over max_entry_bytes, stored cut (fields has
 * "logsink_cut"): for the glue's metric and log line.
 */
uint64_t body_journal_entries_cut(const void *st);

#endif
