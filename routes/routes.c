/*
 * routes.c: the route table and the dispatcher.
 *
 * The table is data: one row per operation, in the order of openapi/openapi.yaml. The dispatcher
 * runs in two steps for each request, both driven by server/httpd.c: route_begin_or_reply() on
 * the headers (match, 404/405, Content-Length cap) and route_dispatch() once the body is in
 * (body cap, auth, JSON parse, handler). Nothing else in routes/ decides those answers.
 */
#include "routes/routes.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/app.h"
#include "server/auth.h"
#include "server/error.h"

#define SMALL_BODY 4096        /* routes whose body is ignored still accept a little */
#define EVENT_BODY (256 << 10) /* EventBridge's largest event (a PutEvents entry is <= 256 KB) */

static const struct route routes[] = {
    {.method = "POST",
     .path = "/events",
     .handler = events_post,
     .max_body = EVENT_BODY,
     .auth = AUTH_WEBHOOK_KEY},
    /* The same intake at the path the sample API destination uses (a connection's endpoint URL is
     * the operator's choice; both are accepted). */
    {.method = "POST",
     .path = "/v1/events/s3",
     .handler = events_post,
     .max_body = EVENT_BODY,
     .auth = AUTH_WEBHOOK_KEY},
    {.method = "GET", .path = "/events/{id}", .handler = events_get, .auth = AUTH_READ},
    {.method = "POST",
     .path = "/jobs",
     .handler = jobs_create,
     .max_body = ROUTE_BODY_DEFAULT,
     .json_body = 1,
     .auth = AUTH_WRITE},
    {.method = "GET", .path = "/jobs", .handler = jobs_list, .auth = AUTH_READ},
    /* Before /jobs/{id}/...: a literal segment, matched first. */
    {.method = "POST",
     .path = "/jobs/retry",
     .handler = jobs_retry_all,
     .max_body = SMALL_BODY,
     .auth = AUTH_WRITE},
    {.method = "GET", .path = "/jobs/{id}", .handler = jobs_get, .auth = AUTH_READ},
    {.method = "GET", .path = "/jobs/{id}/result.json", .handler = results_json, .auth = AUTH_READ},
    {.method = "GET", .path = "/jobs/{id}/result.csv", .handler = results_csv, .auth = AUTH_READ},
    {.method = "POST",
     .path = "/jobs/{id}/cancel",
     .handler = jobs_cancel,
     .max_body = SMALL_BODY,
     .auth = AUTH_WRITE},
    {.method = "POST",
     .path = "/jobs/{id}/retry",
     .handler = jobs_retry,
     .max_body = SMALL_BODY,
     .auth = AUTH_WRITE},
    {.method = "GET", .path = "/healthz", .handler = health_healthz, .auth = AUTH_NONE},
    {.method = "GET", .path = "/readyz", .handler = health_readyz, .auth = AUTH_NONE},
    {.method = "GET", .path = "/openapi.json", .handler = health_openapi, .auth = AUTH_NONE},
    {.method = "GET", .path = "/metrics", .handler = health_metrics, .auth = AUTH_NONE},
    {.method = "GET", .path = "/", .handler = ui_index, .auth = AUTH_NONE},
    {.method = "GET", .path = "/ui/{file}", .handler = ui_file, .auth = AUTH_NONE},
    {.method = "GET", .path = "/ui/vendor/{file}", .handler = ui_vendor_file, .auth = AUTH_NONE},
};

const struct route *routes_table(size_t *n_out)
{
    *n_out = sizeof routes / sizeof routes[0];
    return routes;
}

/* Matches `path` against `pattern` segment by segment; {name} takes one non-empty segment,
 * copied into params. Returns 1 on a match. */
static int path_match(const char *pattern, const char *path,
                      char params[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX], size_t *n_params)
{
    const char *p = pattern, *u = path;

    *n_params = 0;
    while (*p && *u) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            size_t n = strcspn(u, "/");
            if (!pend || n == 0 || n >= HTTPD_PARAM_MAX || *n_params >= HTTPD_MAX_PARAMS)
                return 0;
            memcpy(params[*n_params], u, n);
            params[*n_params][n] = '\0';
            (*n_params)++;
            p = pend + 1;
            u += n;
        } else if (*p == *u) {
            p++;
            u++;
        } else {
            return 0;
        }
    }
    return *p == '\0' && *u == '\0';
}

/* 1 when the client waits for "100 Continue" before it sends its body. */
static int expects_continue(const struct request *req)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

    return v && strcasecmp(v, "100-continue") == 0;
}

/* The declared body length: Content-Length, ULLONG_MAX for a chunked body, 0 for none. */
static unsigned long long declared_body(const struct request *req)
{
    const char *clen =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return ULLONG_MAX;
    return clen ? strtoull(clen, NULL, 10) : 0;
}

/*
 * Answers an error found on the headers. When a body is on its way the answer is deferred
 * until it is in (read and dropped, route_dispatch() sends it): a server that answers and
 * closes while the client still sends makes the kernel reset the connection, and the client
 * may never read the answer. It goes out at once when there is no body, when the client waits
 * for "100 Continue" (it then sends no body), or when the body is too large even to drop.
 */
static enum reply_result early_or_reply(struct request *req, json_t *problem, const char *hname,
                                        const char *hval, size_t cap)
{
    unsigned long long declared = declared_body(req);

    if (declared == 0 || expects_continue(req) ||
        (declared != ULLONG_MAX && declared > cap + HTTPD_DISCARD_LIMIT)) {
        enum MHD_Result ret = reply_problem_doc(req, problem, hname, hval);
        return ret == MHD_YES ? REPLY_REPLIED : REPLY_FATAL;
    }
    req->pending = problem;
    if (hname) {
        snprintf(req->pending_hname, sizeof req->pending_hname, "%s", hname);
        snprintf(req->pending_hval, sizeof req->pending_hval, "%s", hval);
    }
    buf_init(&req->body, 0); /* drop the body */
    return REPLY_OK;
}

/*
 * Bearer tokens, checked on the headers so an unauthenticated client never gets its body
 * buffered: AUTH_READ routes take a read or write token, AUTH_WRITE routes a write token,
 * AUTH_METRICS routes a read token when --metrics-auth is on. With no token configured the API is
 * open. 401 (with WWW-Authenticate: Bearer) for a missing or unknown token, 403 for a read token
 * on a write route. AUTH_WEBHOOK_KEY is checked in route_dispatch().
 */
static enum reply_result token_or_reply(struct request *req)
{
    enum route_auth mode = req->route->auth;
    enum auth_scope need = mode == AUTH_WRITE ? AUTH_SCOPE_WRITE : AUTH_SCOPE_READ;
    const char *hdr;
    int err;

    if (mode == AUTH_NONE || mode == AUTH_WEBHOOK_KEY ||
        (mode == AUTH_METRICS && !req->app->cfg->metrics_auth) || auth_count(req->app->auth) == 0)
        return REPLY_OK;
    hdr = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    err = auth_check(req->app->auth, hdr, need, req->principal);
    if (err == HC_OK)
        return REPLY_OK;
    if (err == HC_EFORBIDDEN)
        return early_or_reply(req,
                              hc_problem_new(HC_EFORBIDDEN, "this token's scope is read; this "
                                                            "operation needs a write token"),
                              MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                              "Bearer realm=\"hcpipe\", error=\"insufficient_scope\"", 0);
    return early_or_reply(
        req,
        hc_problem_new(HC_EUNAUTHORIZED, hdr ? "unknown token; send Authorization: Bearer <token>"
                                             : "send Authorization: Bearer <token>"),
        MHD_HTTP_HEADER_WWW_AUTHENTICATE,
        hdr ? "Bearer realm=\"hcpipe\", error=\"invalid_token\"" : "Bearer realm=\"hcpipe\"", 0);
}

int routes_match(const char *method, const char *path, const struct route **route_out,
                 char params[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX], size_t *n_params_out, char *allow,
                 size_t allow_size)
{
    char found[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX];
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t n_found;

    *route_out = NULL;
    *n_params_out = 0;
    if (allow_size)
        allow[0] = '\0';
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_match(routes[i].path, path, found, &n_found))
            continue;
        if (strcmp(routes[i].method, m) == 0) {
            *route_out = &routes[i];
            memcpy(params, found, sizeof found);
            *n_params_out = n_found;
            return 1;
        }
        /* The same path with another method: collect it for Allow. */
        if (allow_size)
            snprintf(allow + strlen(allow), allow_size - strlen(allow), "%s%s%s",
                     allow[0] ? ", " : "", routes[i].method,
                     strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    return 0;
}

enum reply_result route_begin_or_reply(struct request *req)
{
    char allow[64] = "", detail[160];
    size_t cap;
    unsigned long long declared;
    enum reply_result r;

    routes_match(req->method, req->path, &req->route, req->params, &req->n_params, allow,
                 sizeof allow);
    if (!req->route && allow[0]) {
        snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s", req->method, allow);
        return early_or_reply(req, hc_problem_new(HC_EMETHOD, detail), MHD_HTTP_HEADER_ALLOW, allow,
                              0);
    }
    if (!req->route)
        return early_or_reply(req, hc_problem_new(HC_ENOTFOUND, "no such resource"), NULL, NULL, 0);
    r = token_or_reply(req);
    if (r != REPLY_OK || req->pending)
        return r;
    cap =
        req->route->max_body == ROUTE_BODY_DEFAULT ? req->app->cfg->max_body : req->route->max_body;
    buf_init(&req->body, cap);
    declared = declared_body(req);
    if (declared != ULLONG_MAX && declared > cap) {
        snprintf(detail, sizeof detail, "the body may hold at most %zu bytes", cap);
        return early_or_reply(req, hc_problem_new(HC_ETOOBIG, detail), NULL, NULL, cap);
    }
    return REPLY_OK;
}

/* Parses the body into req->json, or answers 400 invalid-json saying where it failed. */
static enum reply_result parse_json_or_reply(struct request *req)
{
    json_error_t jerr;
    json_t *problem;
    char detail[256];

    if (req->body.len == 0) {
        problem = hc_problem_new(HC_EJSON, "the request body is empty; a JSON object is expected");
    } else {
        req->json = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (req->json)
            return REPLY_OK;
        snprintf(detail, sizeof detail, "line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        problem = hc_problem_new(HC_EJSON, detail);
        if (problem) {
            json_object_set_new(problem, "line", json_integer(jerr.line));
            json_object_set_new(problem, "column", json_integer(jerr.column));
            json_object_set_new(problem, "position", json_integer(jerr.position));
        }
    }
    return reply_problem_doc(req, problem, NULL, NULL) == MHD_YES ? REPLY_REPLIED : REPLY_FATAL;
}

/* Auth on the complete request: only AUTH_WEBHOOK_KEY, POST /events' own credential, is
 * checked here (bearer tokens were checked on the headers by token_or_reply()). */
static enum reply_result auth_or_reply(struct request *req)
{
    if (req->route->auth != AUTH_WEBHOOK_KEY)
        return REPLY_OK;
    return events_auth_or_reply(req);
}

enum MHD_Result route_dispatch(struct request *req)
{
    enum reply_result r;

    if (req->pending || !req->route) {
        /* An answer found on the headers (NULL when building it ran out of memory, which
         * reply_problem_doc() answers with a fixed 500). */
        json_t *problem = req->pending;
        req->pending = NULL; /* reply_problem_doc() steals it */
        return reply_problem_doc(req, problem, req->pending_hname[0] ? req->pending_hname : NULL,
                                 req->pending_hval);
    }
    if (req->body_too_big) {
        char detail[96];
        snprintf(detail, sizeof detail, "the body may hold at most %zu bytes", req->body.max);
        return reply_problem(req, HC_ETOOBIG, detail);
    }
    r = auth_or_reply(req);
    if (r == REPLY_OK && req->route->json_body)
        r = parse_json_or_reply(req);
    if (r != REPLY_OK)
        return r == REPLY_REPLIED ? MHD_YES : MHD_NO;
    return req->route->handler(req);
}
