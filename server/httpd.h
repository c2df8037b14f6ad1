/*
 * httpd: the libmicrohttpd glue. It owns the daemon, the per-request state (struct request) and
 * the response helpers; routes/ decides what to answer (routes/routes.h).
 *
 * Per request: the first MHD callback allocates a struct request and asks the dispatcher to
 * match a route (which may answer at once, or once the body is in: 404, 405, 413); later
 * callbacks append upload chunks into a buffer capped at the route's max_body; the last callback
 * hands the request to route_dispatch(). The request is freed only in MHD's
 * NOTIFY_COMPLETED callback, which also writes the request's one log line (method, path,
 * status, ms, request_id, the API token's name; never bodies, tokens or headers such as
 * Authorization).
 *
 * Edge limits (settings in server/config.h): HTTPS through server/tls.h; a pool of
 * cfg->http_threads threads polls the connections (0: a thread per connection); at most
 * max_connections at once (more wait in the kernel's listen queue with the pool, are closed at
 * once with a thread per connection) and max_connections_per_ip from one address (more are
 * closed at once); a connection idle for connection_timeout_s is
 * closed by MHD, and a reaper thread closes any connection whose request (headers and body) has
 * not fully arrived request_timeout_s after the connection opened or the previous answer went
 * out, which MHD's idle timeout alone cannot do against a client trickling a byte at a time.
 *
 * Every reply_* function queues exactly one response on the request's connection and returns
 * MHD's verdict (MHD_NO means the connection must be dropped); a handler returns that value.
 */
#ifndef HCPIPE_HTTPD_H
#define HCPIPE_HTTPD_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/buf.h"

struct app;
struct route;

#define HTTPD_MAX_PARAMS 2   /* path parameters such as {id} in one route */
#define HTTPD_PARAM_MAX  128 /* longest path parameter, bytes with the NUL */
#define HTTPD_DISCARD_LIMIT                                                                        \
    (64ULL << 20) /* body bytes read and dropped past the cap before                               \
                    the connection is cut */

/* Result of a helper named *_or_reply(): OK to go on, or it already queued a response (REPLIED:
 * the handler returns MHD_YES; FATAL: queuing failed, the handler returns MHD_NO). */
enum reply_result { REPLY_OK = 0, REPLY_REPLIED = 1, REPLY_FATAL = -1 };

struct request {
    struct MHD_Connection *conn;                    /* borrowed from MHD for the request */
    struct app *app;                                /* borrowed */
    char method[16];                                /* as received, e.g. "HEAD" */
    char *path;                                     /* URL path without the query (owned) */
    char request_id[65];                            /* X-Request-Id, echoed or generated */
    int64_t start_ms;                               /* monotonic clock at the first callback */
    int64_t start_us;                               /* real monotonic clock, us (metrics) */
    const struct route *route;                      /* the matched route, or NULL */
    char params[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX]; /* path parameters in pattern order */
    size_t n_params;                                /* used slots of params */
    struct buf body;                                /* request body, capped at the route's cap */
    uint64_t body_seen;                             /* body bytes received, stored or not */
    int body_too_big;                               /* 1 once the body passed the cap */
    json_t *json;                                   /* parsed body (owned), or NULL */
    json_t *pending;        /* an answer deferred until the body is in (owned), or NULL */
    char pending_hname[32]; /* a header of the pending answer (Allow, WWW-Authenticate), or "" */
    char pending_hval[96];  /* its value */
    char principal[65];     /* name of the API token that authenticated the request, or "" */
    unsigned status;        /* status of the queued response, 0 if none */
};

struct httpd;

/* Starts the daemon on app->cfg's listen address (threads of its own), HTTPS when app->tls is
 * set. The app is borrowed and must outlive the daemon. Returns HC_OK and *out, or HC_EIO (the
 * reason is logged). */
int httpd_start(struct app *app, struct httpd **out);

/* The TCP port the daemon listens on (the real one when port 0 was asked for). */
int httpd_port(const struct httpd *h);

/* Finishes the requests in flight, stops the daemon and frees it. NULL is a no-op. */
void httpd_stop(struct httpd *h);

/* A JSON document with `status` (steals doc). A 200 answer to GET/HEAD carries an ETag of the
 * body and becomes 304 when If-None-Match matches. `hname`/`hval` (both or neither NULL) add a
 * header such as Location. */
enum MHD_Result reply_json(struct request *req, unsigned status, json_t *doc, const char *hname,
                           const char *hval);

/* An application/problem+json answer for the error-table entry `err` (detail may be NULL). */
enum MHD_Result reply_problem(struct request *req, int err, const char *detail);

/* The same with a problem document built by the caller (steals it; its "status" member is the
 * HTTP status) and an optional extra header such as Allow. */
enum MHD_Result reply_problem_doc(struct request *req, json_t *problem, const char *hname,
                                  const char *hval);

/* A file from disk with Content-Length, an ETag made of its size and mtime, If-None-Match -> 304,
 * and HEAD. A missing file is answered with `missing_err` (an hc_err). */
enum MHD_Result reply_file(struct request *req, const char *path, const char *content_type,
                           int missing_err);

/* Static bytes (borrowed, must outlive the response, e.g. an embedded file) with an ETag. */
enum MHD_Result reply_static(struct request *req, const void *data, size_t len,
                             const char *content_type);

/* The same with a Cache-Control header (NULL: none), e.g. "no-cache" for files that change with
 * the binary. */
enum MHD_Result reply_static_cached(struct request *req, const void *data, size_t len,
                                    const char *content_type, const char *cache_control);

/* A 200 answer of malloc()ed bytes (taken, freed even on failure), no ETag, Cache-Control:
 * no-store (e.g. the /metrics exposition). */
enum MHD_Result reply_owned(struct request *req, char *data, size_t len, const char *content_type);

#endif
