/*
 * httpd: /metrics and /healthz over libevent's evhttp
 * (see include/logsink/httpd.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "logsink/buf.h"
#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/httpd.h"
#include "logsink/pgpool.h"

/* Owned by main; freed by httpd_free(). */
struct httpd {
	struct evhttp *http;
	httpd_gauges_cb cb;
	void *arg;
	struct buf body;
};

static void
fill(struct httpd *h, struct metrics_gauges *g, int *counts)
{
	memset(g, 0, sizeof(*g));
	g->db_state_counts = counts;
	g->now_ms = clock_mono_ms();
	h->cb(h->arg, g);
}

static void
reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, const char *body, size_t len)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);

	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", type);
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, reason, NULL);
}

static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	int counts[PGPOOL_MAX_STATES];
	struct metrics_gauges g;

	fill(h, &g, counts);
	buf_reset(&h->body);
	if (metrics_render(&h->body, &g) == -1) {
		reply(req, 500, "Internal Server Error", "text/plain",
		    "out of memory\n", 14);
		return;
	}
	reply(req, 200, "OK", "text/plain; version=0.0.4", h->body.data,
	    h->body.len);
}

static void
healthz_cb(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	int counts[PGPOOL_MAX_STATES];
	struct metrics_gauges g;
	char text[160];
	int n;

	fill(h, &g, counts);
	if (g.db_writable) {
		n = snprintf(text, sizeof(text),
		    "ok: %d database connection(s) ready, %llu lines queued\n",
		    g.db_writable, (unsigned long long)g.queue_lines);
		reply(req, 200, "OK", "text/plain", text, (size_t)n);
	} else {
		n = snprintf(text, sizeof(text),
		    "unavailable: no database connection can write; %llu "
		    "lines queued\n",
		    (unsigned long long)g.queue_lines);
		reply(req, 503, "Service Unavailable", "text/plain", text,
		    (size_t)n);
	}
}

static void
notfound_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	reply(req, 404, "Not Found", "text/plain",
	    "not found: try /metrics or /healthz\n", 36);
}

struct httpd *
httpd_new(struct event_base *base, const char *hostport, httpd_gauges_cb cb,
    void *arg, char *err, size_t errlen)
{
	char host[256], port[8];
	struct httpd *h;

	if (config_split_hostport(
		hostport, host, sizeof(host), port, sizeof(port)) == -1) {
		snprintf(
		    err, errlen, "metrics-listen %s: not HOST:PORT", hostport);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->http = evhttp_new(base)) == NULL) {
		free(h);
		snprintf(err, errlen, "metrics-listen: out of memory");
		return NULL;
	}
	h->cb = cb;
	h->arg = arg;
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(h->http, 8192);
	evhttp_set_max_body_size(h->http, 0);
	evhttp_set_timeout(h->http, 10);
	evhttp_set_cb(h->http, "/metrics", metrics_cb, h);
	evhttp_set_cb(h->http, "/healthz", healthz_cb, h);
	evhttp_set_gencb(h->http, notfound_cb, h);
	if (evhttp_bind_socket(h->http, host, (unsigned short)atoi(port)) !=
	    0) {
		snprintf(err, errlen,
		    "metrics-listen %s: cannot bind (address in use or not "
		    "local?)",
		    hostport);
		httpd_free(h);
		return NULL;
	}
	return h;
}

void
httpd_free(struct httpd *h)
{
	if (h == NULL)
		return;
	evhttp_free(h->http);
	buf_free(&h->body);
	free(h);
}
