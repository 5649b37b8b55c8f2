/*
 * iptable: how many connections each peer address has open, for
 * max-connections-per-ip.  Leaf module.
 */
#ifndef LOGSINK_IPTABLE_H
#define LOGSINK_IPTABLE_H

#include <sys/socket.h>

struct iptable;

struct iptable *iptable_new(void);
void iptable_free(struct iptable *t);
/* Counts one more connection from sa; returns the new count, -1 on ENOMEM. */
int iptable_add(struct iptable *t, const struct sockaddr *sa);
/* Counts one connection less from sa. */
void iptable_del(struct iptable *t, const struct sockaddr *sa);

#endif
