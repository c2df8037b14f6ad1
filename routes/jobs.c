/*
 * jobs.c: the /jobs resource: submit (POST /jobs), list, read one (with live progress), cancel
 * and retry.
 *
 * Handlers validate what the dispatcher cannot (fields and values of the body, query
 * parameters), talk to the job store only (never to an engine or AWS), wake the worker after a
 * change it must see, and answer through server/httpd.h. A job is committed by the store before
 * its 201 is queued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes/routes.h"
#include "server/app.h"
#include "server/error.h"
#include "server/log.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX     1000

static enum MHD_Result reply_status(struct request *req, enum reply_result r)
{
    (void)req;
    return r == REPLY_FATAL ? MHD_NO : MHD_YES;
}

/* 422 naming the offending field or parameter, with RFC 9457 `invalid_params`. */
static enum reply_result invalid_or_reply(struct request *req, int err, const char *name,
                                          const char *reason)
{
    char detail[320];
    json_t *problem;

    snprintf(detail, sizeof detail, "%s: %s", name, reason);
    problem = hc_problem_new(err, detail);
    if (problem)
        json_object_set_new(problem, "invalid_params",
                            json_pack("[{s:s, s:s}]", "name", name, "reason", reason));
    return reply_problem_doc(req, problem, NULL, NULL) == MHD_YES ? REPLY_REPLIED : REPLY_FATAL;
}

/* A real calendar date YYYY-MM-DD (years 0001..9999). */
static int date_valid(const char *s)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d, leap;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

/* A string member, or NULL when absent or null; *bad set when it has another type. */
static const char *opt_string(json_t *obj, const char *key, int *bad)
{
    json_t *v = json_object_get(obj, key);

    *bad = 0;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = 1; /* holds a NUL */
        return NULL;
    }
    return json_string_value(v);
}

/* Checks a POST /jobs body and fills spec (strings borrowed from req->json). */
static enum reply_result spec_or_reply(struct request *req, struct job_spec *spec)
{
    static const char *const known[] = {"query",         "source",    "as_of", "scope",
                                        "on_bad_record", "timeout_s", NULL};
    const struct config *cfg = req->app->cfg;
    json_t *body = req->json, *timeout;
    const char *key, *scope, *policy, *why = NULL;
    json_t *val;
    int bad;
    char reason[128];

    memset(spec, 0, sizeof *spec);
    if (!json_is_object(body))
        return invalid_or_reply(req, HC_EVALIDATION, "body", "must be a JSON object");
    json_object_foreach(body, key, val)
    {
        int found = 0;
        for (size_t i = 0; known[i] && !found; i++)
            found = strcmp(key, known[i]) == 0;
        if (!found)
            return invalid_or_reply(req, HC_EVALIDATION, key,
                                    "unknown field; expected query, source, as_of, scope, "
                                    "on_bad_record or timeout_s");
    }

    spec->query = opt_string(body, "query", &bad);
    if (bad || !spec->query)
        return invalid_or_reply(req, HC_EVALIDATION, "query", "required, a string");
    if (!engine_query_known(spec->query))
        return invalid_or_reply(req, HC_EUNKNOWNQUERY, "query",
                                "not in the catalog (facility_metrics, accredited_by_state, "
                                "expiring_accreditations)");

    spec->source = opt_string(body, "source", &bad);
    if (bad)
        return invalid_or_reply(req, HC_EBADSOURCE, "source", "must be a string s3://bucket/key");
    if (spec->source && config_check_source(spec->source, &why) != 0)
        return invalid_or_reply(req, HC_EBADSOURCE, "source", why);

    spec->as_of = opt_string(body, "as_of", &bad);
    if (bad || (spec->as_of && !date_valid(spec->as_of)))
        return invalid_or_reply(req, HC_EVALIDATION, "as_of",
                                "must be a real calendar date YYYY-MM-DD");

    scope = opt_string(body, "scope", &bad);
    if (bad || (scope && strcmp(scope, "dataset") != 0 && strcmp(scope, "object") != 0))
        return invalid_or_reply(req, HC_EVALIDATION, "scope", "must be dataset or object");
    spec->scope = scope && strcmp(scope, "object") == 0 ? SCOPE_OBJECT : SCOPE_DATASET;
    if (spec->scope == SCOPE_OBJECT && !spec->source)
        return invalid_or_reply(req, HC_EBADSOURCE, "source", "required with scope object");

    policy = opt_string(body, "on_bad_record", &bad);
    if (bad || (policy && strcmp(policy, "fail") != 0 && strcmp(policy, "skip") != 0))
        return invalid_or_reply(req, HC_EVALIDATION, "on_bad_record", "must be fail or skip");
    spec->on_bad_record = policy && strcmp(policy, "skip") == 0 ? BAD_RECORD_SKIP : BAD_RECORD_FAIL;

    timeout = json_object_get(body, "timeout_s");
    if (timeout && !json_is_null(timeout)) {
        json_int_t t = json_is_integer(timeout) ? json_integer_value(timeout) : 0;
        if (t < 1 || t > cfg->job_timeout_s) {
            snprintf(reason, sizeof reason, "must be an integer 1..%d (the service's job timeout)",
                     cfg->job_timeout_s);
            return invalid_or_reply(req, HC_EVALIDATION, "timeout_s", reason);
        }
        spec->timeout_s = (int)t;
    }
    spec->engine = cfg->engine;
    return REPLY_OK;
}

enum MHD_Result jobs_create(struct request *req)
{
    struct app *app = req->app;
    struct job_spec spec;
    struct job *job = NULL;
    enum reply_result r = spec_or_reply(req, &spec);
    char location[64];
    enum MHD_Result ret;
    int err;

    if (r != REPLY_OK)
        return reply_status(req, r);
    err = jobstore_insert(app->jobs, &spec, &job);
    if (err != HC_OK)
        return reply_problem(req, err, "the job could not be stored");
    /* Committed: the job survives a crash from here on. */
    if (app->worker)
        worker_wake(app->worker);
    log_info("job submitted", "job_id", job->id, "query", job->query, "request_id", req->request_id,
             NULL);
    snprintf(location, sizeof location, "/jobs/%s", job->id);
    ret = reply_json(req, MHD_HTTP_CREATED, job_to_json(job), MHD_HTTP_HEADER_LOCATION, location);
    job_free(job);
    return ret;
}

static const char *arg(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

enum MHD_Result jobs_list(struct request *req)
{
    struct job_filter f = {.state = -1, .limit = LIST_LIMIT_DEFAULT};
    const char *state = arg(req, "state"), *limit = arg(req, "limit");
    struct job **jobs = NULL;
    size_t n = 0;
    char *next = NULL;
    json_t *doc = NULL, *list;
    enum MHD_Result ret;
    int err;

    if (state) {
        f.state = job_state_parse(state);
        if (f.state < 0)
            return reply_status(
                req, invalid_or_reply(req, HC_EVALIDATION, "state",
                                      "must be queued, running, retrying, succeeded, failed, "
                                      "dead or cancelled"));
    }
    f.query = arg(req, "query");
    if (f.query && !engine_query_known(f.query))
        return reply_status(req,
                            invalid_or_reply(req, HC_EUNKNOWNQUERY, "query", "not in the catalog"));
    if (limit) {
        char *end = NULL;
        long v = strtol(limit, &end, 10);
        if (!*limit || *end || v < 1 || v > LIST_LIMIT_MAX)
            return reply_status(
                req, invalid_or_reply(req, HC_EVALIDATION, "limit", "must be an integer 1..1000"));
        f.limit = (size_t)v;
    }
    f.cursor = arg(req, "cursor");
    if (f.cursor && !*f.cursor)
        f.cursor = NULL;
    err = jobstore_list(req->app->jobs, &f, &jobs, &n, &next);
    if (err == HC_EVALIDATION)
        return reply_status(req, invalid_or_reply(req, HC_EVALIDATION, "cursor",
                                                  "not a cursor from an earlier next_cursor"));
    if (err != HC_OK)
        return reply_problem(req, err, NULL);
    list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, job_to_json(jobs[i]));
        job_free(jobs[i]);
    }
    free(jobs);
    doc = json_pack("{s:o, s:o}", "jobs", list, "next_cursor",
                    next ? json_string(next) : json_null());
    free(next);
    ret = reply_json(req, MHD_HTTP_OK, doc, NULL, NULL);
    return ret;
}

enum MHD_Result jobs_get(struct request *req)
{
    struct app *app = req->app;
    struct job *job = NULL;
    json_t *doc;
    enum MHD_Result ret;
    int err = jobstore_get(app->jobs, req->params[0], &job);

    if (err != HC_OK)
        return reply_problem(req, err, NULL);
    doc = job_to_json(job);
    if (doc && job->state == JOB_RUNNING && app->worker) {
        json_t *progress = worker_progress(app->worker, job->id);
        if (progress)
            json_object_set_new(doc, "progress", progress);
    }
    job_free(job);
    ret = reply_json(req, MHD_HTTP_OK, doc, NULL, NULL);
    return ret;
}

/* 409 for an action the job's state does not allow, naming the state. */
static enum MHD_Result conflict(struct request *req, const char *action, const char *allowed)
{
    struct job *job = NULL;
    char detail[200];

    if (jobstore_get(req->app->jobs, req->params[0], &job) != HC_OK)
        return reply_problem(req, HC_ECONFLICT, NULL);
    snprintf(detail, sizeof detail, "the job is %s; only %s jobs can be %s",
             job_state_name(job->state), allowed, action);
    job_free(job);
    return reply_problem(req, HC_ECONFLICT, detail);
}

enum MHD_Result jobs_cancel(struct request *req)
{
    struct app *app = req->app;
    struct job *job = NULL;
    enum MHD_Result ret;
    int err = jobstore_cancel(app->jobs, req->params[0], &job);

    if (err == HC_ECONFLICT)
        return conflict(req, "cancelled", "queued, retrying or running");
    if (err != HC_OK)
        return reply_problem(req, err, NULL);
    if (app->worker)
        worker_wake(app->worker);
    log_info("job cancel requested", "job_id", job->id, "request_id", req->request_id, NULL);
    ret = reply_json(req, MHD_HTTP_OK, job_to_json(job), NULL, NULL);
    job_free(job);
    return ret;
}

enum MHD_Result jobs_retry(struct request *req)
{
    struct app *app = req->app;
    struct job *job = NULL;
    enum MHD_Result ret;
    int err = jobstore_retry(app->jobs, req->params[0], &job);

    if (err == HC_ECONFLICT)
        return conflict(req, "retried", "failed or dead");
    if (err != HC_OK)
        return reply_problem(req, err, NULL);
    if (app->worker)
        worker_wake(app->worker);
    log_info("job retried", "job_id", job->id, "request_id", req->request_id, NULL);
    ret = reply_json(req, MHD_HTTP_OK, job_to_json(job), NULL, NULL);
    job_free(job);
    return ret;
}

/* POST /jobs/retry?state=dead|failed&limit=N: replays every dead (default) or failed job, oldest
 * first, up to limit (default and most 1000) per call. */
enum MHD_Result jobs_retry_all(struct request *req)
{
    struct app *app = req->app;
    const char *state_arg = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "state");
    const char *limit_arg = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
    char(*ids)[37] = NULL;
    size_t n = 0;
    long limit = LIST_LIMIT_MAX;
    char *end = NULL;
    int state = state_arg ? job_state_parse(state_arg) : JOB_DEAD;
    json_t *list, *doc;
    int err;

    if (state != JOB_DEAD && state != JOB_FAILED)
        return reply_status(req, invalid_or_reply(req, HC_EVALIDATION, "state", "dead or failed"));
    if (limit_arg) {
        limit = strtol(limit_arg, &end, 10);
        if (!*limit_arg || *end || limit < 1 || limit > LIST_LIMIT_MAX)
            return reply_status(
                req, invalid_or_reply(req, HC_EVALIDATION, "limit", "an integer 1..1000"));
    }
    err = jobstore_retry_all(app->jobs, (enum job_state)state, (size_t)limit, &ids, &n);
    if (err != HC_OK)
        return reply_problem(req, err, NULL);
    list = json_array();
    for (size_t i = 0; list && i < n; i++)
        json_array_append_new(list, json_string(ids[i]));
    free(ids);
    if (n && app->worker)
        worker_wake(app->worker);
    log_info("jobs retried in bulk", "state", job_state_name((enum job_state)state), "request_id",
             req->request_id, NULL);
    doc = list ? json_pack("{s:I, s:o}", "retried", (json_int_t)n, "jobs", list) : NULL;
    if (!doc)
        return reply_problem(req, HC_ENOMEM, NULL);
    return reply_json(req, MHD_HTTP_OK, doc, NULL, NULL);
}
