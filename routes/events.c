/*
 * events.c: the /events resource: S3 object events in (POST /events, as EventBridge API
 * destinations, S3 notification relays and MinIO send them), and what an event became
 * (GET /events/{id}).
 *
 * How it is organised:
 *   1. authentication (events_auth_or_reply(), called by the dispatcher for AUTH_WEBHOOK_KEY
 *      routes): an API key in a configurable header and/or HTTP Basic, both compared in constant
 *      time over SHA-256 digests of equal length, so neither the length nor a prefix of a secret
 *      leaks through timing;
 *   2. intake helpers: filters (bucket, prefix, suffixes), the choice between the decoded and the
 *      raw key, the as_of date of an event, the job specs of an event;
 *   3. the handlers.
 *
 * POST /events answers (EventBridge retries 429 and 5xx for up to 24 h, never other 4xx):
 *   202  at least one object event was recorded (new or a redelivery): its id and job ids;
 *   200  nothing to do: s3:TestEvent, a detail-type we do not handle, an object outside the
 *        filters, or an event older (by S3 sequencer) than one already applied to its object;
 *   400  malformed JSON or not an S3 event (never retried: it can never succeed);
 *   401  missing or wrong credential; 413 body over 256 KiB (the route's cap);
 *   503  the job store stayed busy past EVENTS_STORE_WAIT_MS, with Retry-After.
 * The event and its jobs are committed in one transaction (jobstore_event_record()) before the
 * answer is queued, so an acknowledged event is never lost and a redelivery makes no new job.
 *
 * Object Created queues one job per HCPIPE_EVENT_QUERIES query (scope HCPIPE_EVENT_SCOPE, as_of
 * the UTC date of the event's time, source s3://bucket/key). Object Deleted queues one
 * ENGINE_DELETE_QUERY job: the worker has the engine forget the object's rows (the local engine
 * deletes them from its warehouse; Athena has nothing to do). The handler itself never touches
 * the engine or AWS: a delete can wait for the warehouse's write lock behind a large load, far
 * longer than EventBridge's 5 s. Jobs are claimed oldest first, so an object's load normally runs
 * before a later delete of it; when two workers run them at once, the warehouse's write lock
 * serialises them, and a load that starts after the delete finds the object gone from the store
 * (source-not-found) as S3 would.
 *
 * Keys: the parser decodes keys (server/event.h). When the decoded key differs from the raw one,
 * the intake checks the folder store (<data-dir>/buckets, a local stat, no network) and uses the
 * raw key when only it exists there; otherwise the decoded key. With an S3 source store there is
 * no check here.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "routes/routes.h"
#include "server/app.h"
#include "server/error.h"
#include "server/metrics.h"
#include "server/event.h"
#include "server/log.h"
#include "server/objstore.h"

#define EVENTS_STORE_WAIT_MS 2000 /* longest wait for the job store before answering 503 */
#define EVENTS_RETRY_AFTER   "1"  /* seconds, on 503 */
#define EVENTS_MAX_QUERIES   16   /* jobs one Object Created event can queue */

/* ---- 1. authentication ------------------------------------------------------------------- */

/* 1 when the two byte strings are equal, in time independent of where they differ. */
static int secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
    unsigned int la = 0, lb = 0;

    if (!EVP_Digest(a, alen, da, &la, EVP_sha256(), NULL) ||
        !EVP_Digest(b, blen, db, &lb, EVP_sha256(), NULL) || la != lb)
        return 0;
    return CRYPTO_memcmp(da, db, la) == 0;
}

/* Checks "Basic <base64(user:password)>" against the configured "user:password". */
static int basic_ok(const char *header, const char *expected)
{
    unsigned char decoded[1100];
    const char *b64;
    size_t n;
    int len;

    if (!header || strncasecmp(header, "Basic ", 6) != 0)
        return 0;
    b64 = header + 6;
    while (*b64 == ' ')
        b64++;
    n = strlen(b64);
    while (n > 0 && b64[n - 1] == ' ')
        n--;
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof decoded)
        return 0;
    len = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return 0;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (b64[n - 1] == '=')
        len--;
    if (b64[n - 2] == '=')
        len--;
    return secret_equal(decoded, (size_t)len, expected, strlen(expected));
}

enum reply_result events_auth_or_reply(struct request *req)
{
    const struct config *cfg = req->app->cfg;
    const char *v, *why;
    json_t *problem;

    /* No credential: open only with --insecure-dev-events (serve refuses to start otherwise). */
    if (!cfg->webhook_api_key && !cfg->webhook_basic && cfg->insecure_dev_events)
        return REPLY_OK;
    if (cfg->webhook_api_key) {
        v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, cfg->webhook_header);
        if (v && secret_equal(v, strlen(v), cfg->webhook_api_key, strlen(cfg->webhook_api_key)))
            return REPLY_OK;
    }
    if (cfg->webhook_basic) {
        v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (basic_ok(v, cfg->webhook_basic))
            return REPLY_OK;
    }
    log_warn("events: request refused: missing or wrong credential", "request_id", req->request_id,
             NULL);
    if (cfg->webhook_api_key)
        why = "send the API key in the configured header (or Basic credentials)";
    else if (cfg->webhook_basic)
        why = "send Basic credentials";
    else
        why = "no webhook credential is configured";
    problem = hc_problem_new(HC_EUNAUTHORIZED, why);
    return reply_problem_doc(req, problem, cfg->webhook_basic ? "WWW-Authenticate" : NULL,
                             cfg->webhook_basic ? "Basic realm=\"hcpipe events\"" : NULL) == MHD_YES
               ? REPLY_REPLIED
               : REPLY_FATAL;
}

/* ---- 2. intake helpers ------------------------------------------------------------------- */

/* Why the configured filters reject this object (static or into buf), or NULL when it passes. */
static const char *filter_reason(const struct config *cfg, const struct object_event *ev, char *buf,
                                 size_t buflen)
{
    size_t klen = strlen(ev->key);
    int ok;

    if (cfg->n_event_buckets) {
        ok = 0;
        for (size_t i = 0; i < cfg->n_event_buckets && !ok; i++)
            ok = strcmp(cfg->event_buckets[i], ev->bucket) == 0;
        if (!ok)
            return "bucket not in HCPIPE_EVENT_BUCKETS";
    }
    if (cfg->event_prefix && strncmp(ev->key, cfg->event_prefix, strlen(cfg->event_prefix)) != 0)
        return "key outside HCPIPE_EVENT_PREFIX";
    if (cfg->n_event_suffixes) {
        ok = 0;
        for (size_t i = 0; i < cfg->n_event_suffixes && !ok; i++) {
            size_t slen = strlen(cfg->event_suffixes[i]);
            ok = slen <= klen && strcasecmp(ev->key + klen - slen, cfg->event_suffixes[i]) == 0;
        }
        if (!ok)
            return "key does not end with one of HCPIPE_EVENT_SUFFIXES";
    }
    if (!objstore_bucket_valid(ev->bucket) || !objstore_key_valid(ev->key, klen)) {
        snprintf(buf, buflen, "bucket or key cannot be read by this service");
        return buf;
    }
    return NULL;
}

/* The key the jobs read: the decoded one, unless only the raw one exists in the folder store. */
static const char *choose_key(struct app *app, const struct object_event *ev)
{
    struct objstore_info info;

    if (!app->objects || strcmp(ev->key, ev->raw_key) == 0)
        return ev->key;
    if (objstore_stat(app->objects, ev->bucket, ev->key, &info) == HC_OK)
        return ev->key;
    if (objstore_key_valid(ev->raw_key, strlen(ev->raw_key)) &&
        objstore_stat(app->objects, ev->bucket, ev->raw_key, &info) == HC_OK) {
        log_info("events: decoded key not found; the raw key is used", "bucket", ev->bucket, "key",
                 ev->raw_key, NULL);
        return ev->raw_key;
    }
    return ev->key;
}

static int digits(const char *s, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *out = *out * 10 + (s[i] - '0');
    }
    return 0;
}

/* The UTC date of an RFC 3339 time ("2024-06-03T09:15:42Z", fractions and +hh:mm offsets
 * allowed) into out. Returns 0, or -1 when the time is not of that form. */
static int utc_date(const char *t, char out[11])
{
    struct tm tm = {0};
    int y, mo, d, h, mi, s, oh = 0, om = 0, sign = 0;
    const char *p;
    time_t secs;
    struct tm utc;

    if (!t || strlen(t) < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
        t[13] != ':' || t[16] != ':')
        return -1;
    if (digits(t, 4, &y) || digits(t + 5, 2, &mo) || digits(t + 8, 2, &d) ||
        digits(t + 11, 2, &h) || digits(t + 14, 2, &mi) || digits(t + 17, 2, &s))
        return -1;
    p = t + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        sign = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        sign = *p == '+' ? 1 : -1;
        if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
    } else {
        return -1;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    secs = timegm(&tm) - (time_t)sign * (oh * 3600 + om * 60);
    if (!gmtime_r(&secs, &utc) || utc.tm_year + 1900 < 1 || utc.tm_year + 1900 > 9999)
        return -1;
    if (strftime(out, 11, "%Y-%m-%d", &utc) != 10)
        return -1;
    return 0;
}

/* ---- 3. handlers ------------------------------------------------------------------------- */

static json_t *ids_json(const struct event_outcome *o)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < o->n_jobs; i++)
        json_array_append_new(a, json_string(o->job_ids[i]));
    return a;
}

/* Records one object event. *doc_out (new ref) describes what happened; *recorded set when the
 * event is in the store (new or duplicate) with jobs or as a duplicate (202 material). */
static int intake_one(struct request *req, const struct event_batch *batch,
                      const struct object_event *ev, json_t **doc_out, int *accepted, int *new_jobs)
{
    const struct config *cfg = req->app->cfg;
    struct job_spec specs[EVENTS_MAX_QUERIES];
    struct event_record rec;
    struct event_outcome o;
    char uri[OBJSTORE_KEY_MAX + 128], as_of[11], buf[128], by[128];
    const char *why, *key;
    size_t n_specs = 0;
    int err;

    *doc_out = NULL;
    *accepted = 0;
    why = filter_reason(cfg, ev, buf, sizeof buf);
    if (why) {
        metrics_event_count(METRICS_EVENT_IGNORED);
        *doc_out = json_pack("{s:n, s:s, s:s, s:s, s:[], s:b, s:s}", "event_id", "kind",
                             ev->kind == EVENT_OBJECT_DELETED ? "deleted" : "created", "bucket",
                             ev->bucket, "key", ev->key, "jobs", "duplicate", 0, "ignored", why);
        return *doc_out ? HC_OK : HC_ENOMEM;
    }
    key = choose_key(req->app, ev);
    snprintf(uri, sizeof uri, "s3://%s/%s", ev->bucket, key);
    if (ev->kind == EVENT_OBJECT_DELETED) {
        specs[n_specs++] = (struct job_spec){.query = ENGINE_DELETE_QUERY, .source = uri};
    } else {
        for (size_t i = 0; i < cfg->n_event_queries && n_specs < EVENTS_MAX_QUERIES; i++)
            specs[n_specs++] = (struct job_spec){.query = cfg->event_queries[i], .source = uri};
    }
    for (size_t i = 0; i < n_specs; i++) {
        specs[i].as_of = utc_date(ev->time, as_of) == 0 ? as_of : NULL;
        specs[i].scope = (enum job_scope)cfg->event_scope;
        specs[i].on_bad_record = BAD_RECORD_FAIL;
        specs[i].engine = cfg->engine;
    }
    rec = (struct event_record){.dedup_id = ev->dedup_id,
                                .format = batch->format,
                                .deleted = ev->kind == EVENT_OBJECT_DELETED,
                                .bucket = ev->bucket,
                                .key = ev->key,
                                .raw_key = ev->raw_key,
                                .source = uri,
                                .sequencer = ev->sequencer,
                                .etag = ev->etag,
                                .version_id = ev->version_id,
                                .time = ev->time,
                                .size = ev->size};
    err = jobstore_event_record(req->app->jobs, &rec, specs, n_specs, EVENTS_STORE_WAIT_MS, &o);
    if (err)
        return err;
    if (o.superseded)
        snprintf(by, sizeof by, "older than event %s, already applied to this object",
                 o.superseded_by);
    *doc_out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:s?}", "event_id", o.event_id,
                         "kind", ev->kind == EVENT_OBJECT_DELETED ? "deleted" : "created", "bucket",
                         ev->bucket, "key", ev->key, "source", uri, "jobs", ids_json(&o),
                         "duplicate", o.duplicate, "ignored", o.superseded ? by : NULL);
    *accepted = !o.superseded;
    *new_jobs += o.duplicate ? 0 : (int)o.n_jobs;
    metrics_event_count(o.superseded  ? METRICS_EVENT_IGNORED
                        : o.duplicate ? METRICS_EVENT_DUPLICATE
                                      : METRICS_EVENT_ACCEPTED);
    log_info(o.duplicate ? "events: duplicate event" : "events: event recorded", "event_id",
             o.event_id, "source", uri, "status",
             o.superseded  ? "superseded"
             : o.duplicate ? "duplicate"
                           : "applied",
             NULL);
    free(o.job_ids);
    return *doc_out ? HC_OK : HC_ENOMEM;
}

enum MHD_Result events_post(struct request *req)
{
    struct event_batch batch = {0};
    json_t *events = NULL, *jobs = NULL, *doc = NULL, *first = NULL;
    char err_text[256] = "";
    const char *ignored = NULL;
    int err, any_accepted = 0, all_duplicate = 1, new_jobs = 0;
    enum MHD_Result ret;

    err = event_parse(req->body.data ? req->body.data : "", req->body.len, &batch, err_text,
                      sizeof err_text);
    if (err) {
        log_info("events: payload refused", "error", hc_err_slug(err), "detail", err_text, NULL);
        metrics_event_count(METRICS_EVENT_REJECTED);
        return reply_problem(req, err, err_text[0] ? err_text : NULL);
    }
    events = json_array();
    jobs = json_array();
    if (!events || !jobs) {
        err = HC_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < batch.n_events; i++) {
        json_t *one = NULL;
        int accepted = 0;

        err = intake_one(req, &batch, &batch.events[i], &one, &accepted, &new_jobs);
        if (err)
            goto out;
        json_array_append_new(events, one);
        json_array_extend(jobs, json_object_get(one, "jobs"));
        if (accepted) {
            if (!any_accepted)
                first = one;
            any_accepted = 1;
            all_duplicate &= json_is_true(json_object_get(one, "duplicate"));
        } else if (!ignored) {
            ignored = json_string_value(json_object_get(one, "ignored"));
        }
    }
    if (batch.n_events == 0) {
        metrics_event_count(METRICS_EVENT_IGNORED); /* a payload with no object event */
        ignored = batch.ignored ? batch.ignored : "no object event in the payload";
    }
    doc = json_pack("{s:O?, s:O, s:b, s:s, s:O}", "event_id",
                    first ? json_object_get(first, "event_id") : NULL, "jobs", jobs, "duplicate",
                    any_accepted && all_duplicate, "format", batch.format ? batch.format : "",
                    "events", events);
    if (!doc) {
        err = HC_ENOMEM;
        goto out;
    }
    if (!any_accepted)
        json_object_set_new(doc, "ignored", json_string(ignored ? ignored : "nothing to do"));
    if (new_jobs)
        worker_wake(req->app->worker);
out:
    json_decref(events);
    json_decref(jobs);
    event_batch_free(&batch);
    if (err == HC_EUNAVAILABLE) {
        json_decref(doc);
        return reply_problem_doc(req, hc_problem_new(err, "the job store is busy; retry the event"),
                                 "Retry-After", EVENTS_RETRY_AFTER);
    }
    if (err) {
        json_decref(doc);
        return reply_problem(req, err, NULL);
    }
    ret = reply_json(req, any_accepted ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK, doc, NULL, NULL);
    return ret;
}

/* "superseded", or the jobs' overall state: "succeeded" when all did, "failed" when one ended
 * badly, "pending" while one is still to run, "cancelled". "applied" for an event without jobs. */
static const char *overall_state(json_t *event, struct job **jobs, size_t n)
{
    int pending = 0, bad = 0, cancelled = 0;

    if (strcmp(json_string_value(json_object_get(event, "status")), "superseded") == 0)
        return "superseded";
    if (n == 0)
        return "applied";
    for (size_t i = 0; i < n; i++) {
        switch (jobs[i]->state) {
        case JOB_QUEUED:
        case JOB_RUNNING:
        case JOB_RETRYING:
            pending = 1;
            break;
        case JOB_FAILED:
        case JOB_DEAD:
            bad = 1;
            break;
        case JOB_CANCELLED:
            cancelled = 1;
            break;
        case JOB_SUCCEEDED:
            break;
        }
    }
    return bad ? "failed" : pending ? "pending" : cancelled ? "cancelled" : "succeeded";
}

enum MHD_Result events_get(struct request *req)
{
    json_t *doc = NULL, *list = NULL;
    struct job **jobs = NULL;
    size_t n = 0;
    int err;

    err = jobstore_event_get(req->app->jobs, req->params[0], &doc);
    if (err)
        return reply_problem(req, err, err == HC_ENOTFOUND ? "no such event" : NULL);
    err = jobstore_list_by_event(req->app->jobs, json_string_value(json_object_get(doc, "id")),
                                 &jobs, &n);
    list = err ? NULL : json_array();
    for (size_t i = 0; i < n; i++) {
        if (list && json_array_append_new(list, job_to_json(jobs[i])))
            err = HC_ENOMEM;
    }
    if (!err && list) {
        json_object_set_new(doc, "state", json_string(overall_state(doc, jobs, n)));
        json_object_set_new(doc, "jobs", list);
        list = NULL;
    } else if (!err) {
        err = HC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        job_free(jobs[i]);
    free(jobs);
    json_decref(list);
    if (err) {
        json_decref(doc);
        return reply_problem(req, err, NULL);
    }
    return reply_json(req, MHD_HTTP_OK, doc, NULL, NULL);
}
