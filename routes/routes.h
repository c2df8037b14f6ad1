/*
 * routes: the route table (data) and the one dispatcher, plus the handlers of each resource
 * (one file per resource: jobs.c, results.c, health.c).
 *
 * The dispatcher alone matches method and path (404 vs 405 with Allow, HEAD served as GET),
 * extracts path parameters ({id}), enforces the route's body cap (413), checks auth (bearer
 * tokens on the headers: 401/403; the webhook credential once the body is in), and parses a JSON
 * body (400 invalid-json with line and column). A handler gets a request whose route, params and
 * json are set, and answers with a reply_* function of server/httpd.h.
 */
#ifndef HCPIPE_ROUTES_H
#define HCPIPE_ROUTES_H

#include <stddef.h>

#include "server/httpd.h"

/* Who may call a route. AUTH_READ/AUTH_WRITE need a bearer API token of that scope (a write
 * token also reads) when tokens are configured; AUTH_METRICS needs a read token only with
 * --metrics-auth; AUTH_WEBHOOK_KEY is POST /events' own credential (events_auth_or_reply(), called
 * by route_dispatch). */
enum route_auth { AUTH_NONE, AUTH_READ, AUTH_WRITE, AUTH_METRICS, AUTH_WEBHOOK_KEY };

/* max_body value meaning "the service's --max-body". */
#define ROUTE_BODY_DEFAULT ((size_t)-1)

typedef enum MHD_Result (*route_handler)(struct request *req);

struct route {
    const char *method;    /* "GET" or "POST"; a GET route also answers HEAD */
    const char *path;      /* pattern, e.g. "/jobs/{id}/cancel"; {name} matches one segment */
    route_handler handler; /* answers the request */
    size_t max_body;       /* body cap in bytes, or ROUTE_BODY_DEFAULT */
    int json_body;         /* 1: the body must be a JSON document, parsed into req->json */
    enum route_auth auth;  /* who may call it */
};

/* The table (borrowed, static) and its length. */
const struct route *routes_table(size_t *n_out);

/* Matches method (HEAD as GET) and path (no query) against the table. 1: *route_out and the
 * path parameters (params, *n_params_out) are set. 0: no route; allow (allow_size bytes, may be
 * 0) lists the methods the path takes, "" when the path is unknown (404). */
int routes_match(const char *method, const char *path, const struct route **route_out,
                 char params[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX], size_t *n_params_out, char *allow,
                 size_t allow_size);

/* First callback of a request: matches the route and checks Content-Length against its cap.
 * REPLY_OK: the body may be read (req->route, params and the body cap are set, or an error
 * answer waits in req->pending until the body is in); otherwise a response (404, 405, 413) was
 * queued at once. */
enum reply_result route_begin_or_reply(struct request *req);

/* The body is complete: a pending answer, body cap, auth, JSON parse, then the handler. */
enum MHD_Result route_dispatch(struct request *req);

/* jobs.c */
enum MHD_Result jobs_create(struct request *req);
enum MHD_Result jobs_list(struct request *req);
enum MHD_Result jobs_get(struct request *req);
enum MHD_Result jobs_cancel(struct request *req);
enum MHD_Result jobs_retry(struct request *req);
enum MHD_Result jobs_retry_all(struct request *req);

/* results.c */
enum MHD_Result results_json(struct request *req);
enum MHD_Result results_csv(struct request *req);

/* events.c */
enum MHD_Result events_post(struct request *req);
enum MHD_Result events_get(struct request *req);
/* Checks the webhook credential (API key header and/or Basic, per the settings) for
 * AUTH_WEBHOOK_KEY routes; answers 401 problem+json itself when it does not match. */
enum reply_result events_auth_or_reply(struct request *req);

/* health.c */
enum MHD_Result health_healthz(struct request *req);
enum MHD_Result health_readyz(struct request *req);
enum MHD_Result health_openapi(struct request *req);
enum MHD_Result health_metrics(struct request *req);

/* ui.c */
enum MHD_Result ui_index(struct request *req);
enum MHD_Result ui_file(struct request *req);
enum MHD_Result ui_vendor_file(struct request *req);

#endif
