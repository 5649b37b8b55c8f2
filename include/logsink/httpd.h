/*
 * httpd: the metrics endpoint (evhttp): GET /metrics (Prometheus text) and
 * GET /healthz (200 when a database connection can take writes, else 503).
 */
#ifndef LOGSINK_HTTPD_H
#define LOGSINK_HTTPD_H

#include <stddef.h>

#include <event2/event.h>

#include "logsink/metrics.h"

/* Fills the gauges other modules own; called for every request. */
typedef void (*httpd_gauges_cb)(void *arg, struct metrics_gauges *g);

struct httpd;

struct httpd *httpd_new(struct event_base *base, const char *hostport,
    httpd_gauges_cb cb, void *arg, char *err, size_t errlen);
void httpd_free(struct httpd *h);

#endif
