/*
 * metrics.c: the Prometheus registry (see metrics.h).
 *
 * Organisation: the fixed label sets and their lookups, the histogram type, the static series
 * (HTTP, events, jobs, Athena), the recording functions, then the renderer: small writers for
 * HELP/TYPE lines, escaped label values and histograms, and metrics_render(), which also reads
 * the scrape-time gauges from the job store and the warehouse.
 *
 * Threads: every value is an atomic; HTTP route patterns are claimed into slots with a
 * compare-and-swap, so a recording thread never blocks and never allocates. A scrape reads
 * the atomics one by one, so it is a consistent snapshot per value, not across values.
 */
#include "server/metrics.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "server/engine.h"
#include "server/error.h"

/* ---- label sets --------------------------------------------------------------------------- */

#define METRICS_ROUTES_MAX 40 /* distinct route patterns (slot 0: unmatched, last: other) */

static const unsigned http_statuses[] = {200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403,
                                         404, 405, 406, 408, 409, 410, 411, 413, 414, 415, 416,
                                         422, 429, 431, 500, 501, 502, 503, 504, 507};
#define N_STATUS (sizeof http_statuses / sizeof http_statuses[0] + 1) /* + "other" */

static const char *const http_methods[] = {"GET",    "HEAD",  "POST",   "PUT",
                                           "DELETE", "PATCH", "OPTIONS"};
#define N_METHOD (sizeof http_methods / sizeof http_methods[0] + 1) /* + "other" */

static const char *const engines[] = {"local", "athena"};
#define N_ENGINE (sizeof engines / sizeof engines[0] + 1)

#define N_QUERY_MAX 8 /* catalog queries (+ "other") */
#define N_STATE     (JOB_CANCELLED + 1)

static const char *const event_outcomes[METRICS_EVENT_N] = {"accepted", "duplicate", "ignored",
                                                            "rejected"};

static const char *const athena_ops[] = {"StartQueryExecution", "GetQueryExecution",
                                         "BatchGetQueryExecution", "GetQueryResults",
                                         "StopQueryExecution"};
#define N_ATHENA_OP (sizeof athena_ops / sizeof athena_ops[0] + 1)

static const char *const athena_outcomes[] = {"ok", "throttled", "client_error", "server_error",
                                              "network_error"};
#define N_ATHENA_OUTCOME (sizeof athena_outcomes / sizeof athena_outcomes[0] + 1)

/* Index of `s` in `names` (n entries), or n ("other"). */
static size_t index_of(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return n;
}

static const char *name_or_other(const char *const *names, size_t n, size_t i)
{
    return i < n ? names[i] : "other";
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i < N_STATUS - 1; i++)
        if (http_statuses[i] == status)
            return i;
    return N_STATUS - 1;
}

static size_t n_queries(void)
{
    size_t n = 0;
    const char *const *q = engine_query_names();

    while (q[n] && n < N_QUERY_MAX - 1)
        n++;
    return n;
}

static size_t query_index(const char *query)
{
    return index_of(engine_query_names(), n_queries(), query);
}

/* ---- histograms --------------------------------------------------------------------------- */

#define HIST_MAX_BUCKETS 16

/* Upper bounds in microseconds, ascending; the +Inf bucket is implicit. */
static const uint64_t http_bounds_us[] = {1000,    2500,    5000,    10000,  25000,
                                          50000,   100000,  250000,  500000, 1000000,
                                          2500000, 5000000, 10000000};
#define N_HTTP_BOUNDS (sizeof http_bounds_us / sizeof http_bounds_us[0])

static const uint64_t job_bounds_us[] = {10000,    50000,     100000,    500000,
                                         1000000,  5000000,   10000000,  30000000,
                                         60000000, 300000000, 900000000, 3600000000ULL};
#define N_JOB_BOUNDS (sizeof job_bounds_us / sizeof job_bounds_us[0])

struct hist {
    _Atomic uint64_t buckets[HIST_MAX_BUCKETS + 1]; /* non-cumulative; last = above every bound */
    _Atomic uint64_t sum_us;                        /* sum of observations, microseconds */
};

static void hist_observe(struct hist *h, const uint64_t *bounds, size_t n, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    size_t i = 0;

    while (i < n && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, v, memory_order_relaxed);
}

/* ---- the series --------------------------------------------------------------------------- */

static _Atomic(const char *) route_patterns[METRICS_ROUTES_MAX]; /* slot 0 and last: fixed */
static _Atomic uint64_t http_requests[METRICS_ROUTES_MAX][N_METHOD][N_STATUS];
static struct hist http_latency[METRICS_ROUTES_MAX][N_METHOD];

static _Atomic uint64_t events[METRICS_EVENT_N];

static _Atomic uint64_t job_attempts[N_ENGINE];
static _Atomic uint64_t job_retries[N_ENGINE];
static _Atomic uint64_t job_retries_scheduled[N_ENGINE];
static _Atomic uint64_t jobs_finished[N_ENGINE][N_QUERY_MAX][N_STATE];
static struct hist job_duration[N_ENGINE];

static _Atomic uint64_t athena_calls[N_ATHENA_OP][N_ATHENA_OUTCOME];
static _Atomic uint64_t athena_throttles[N_ATHENA_OP];
static _Atomic uint64_t athena_scanned;

static _Atomic uint64_t scrape_errors;

#define ROUTE_UNMATCHED 0
#define ROUTE_OTHER     (METRICS_ROUTES_MAX - 1)

/* The slot of a route pattern, claimed on first use. */
static size_t route_slot(const char *pattern)
{
    if (!pattern)
        return ROUTE_UNMATCHED;
    for (size_t i = 1; i < ROUTE_OTHER; i++) {
        const char *p = atomic_load(&route_patterns[i]);

        if (!p) {
            const char *expected = NULL;
            if (atomic_compare_exchange_strong(&route_patterns[i], &expected, pattern))
                return i;
            p = expected; /* another thread claimed it first */
        }
        if (p == pattern || strcmp(p, pattern) == 0)
            return i;
    }
    return ROUTE_OTHER;
}

static void inc(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void metrics_http_observe(const char *method, const char *pattern, unsigned status, int64_t micros)
{
    size_t r = route_slot(pattern), m = index_of(http_methods, N_METHOD - 1, method);

    inc(&http_requests[r][m][status_index(status)]);
    hist_observe(&http_latency[r][m], http_bounds_us, N_HTTP_BOUNDS, micros);
}

void metrics_event_count(enum metrics_event outcome)
{
    if ((int)outcome >= 0 && outcome < METRICS_EVENT_N)
        inc(&events[outcome]);
}

void metrics_job_attempt(const char *engine, int attempt)
{
    size_t e = index_of(engines, N_ENGINE - 1, engine);

    inc(&job_attempts[e]);
    if (attempt > 1)
        inc(&job_retries[e]);
}

void metrics_job_retry_scheduled(const char *engine)
{
    inc(&job_retries_scheduled[index_of(engines, N_ENGINE - 1, engine)]);
}

void metrics_job_finished(const char *engine, const char *query, enum job_state state, int64_t ms)
{
    size_t e = index_of(engines, N_ENGINE - 1, engine);

    if ((int)state < 0 || state >= N_STATE)
        return;
    inc(&jobs_finished[e][query_index(query)][state]);
    hist_observe(&job_duration[e], job_bounds_us, N_JOB_BOUNDS, ms * 1000);
}

void metrics_athena_call(const char *operation, const char *outcome)
{
    size_t op = index_of(athena_ops, N_ATHENA_OP - 1, operation);
    size_t oc = index_of(athena_outcomes, N_ATHENA_OUTCOME - 1, outcome);

    inc(&athena_calls[op][oc]);
    if (oc == 1)
        inc(&athena_throttles[op]);
}

void metrics_athena_bytes_scanned(uint64_t bytes)
{
    atomic_fetch_add_explicit(&athena_scanned, bytes, memory_order_relaxed);
}

/* Stores 0 in n consecutive counters. */
static void zero(_Atomic uint64_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        atomic_store(&c[i], 0);
}

static void hist_zero(struct hist *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        zero(h[i].buckets, HIST_MAX_BUCKETS + 1);
        atomic_store(&h[i].sum_us, 0);
    }
}

#define ZERO(arr) zero((_Atomic uint64_t *)(arr), sizeof(arr) / sizeof(_Atomic uint64_t))

void metrics_reset(void)
{
    for (size_t i = 0; i < METRICS_ROUTES_MAX; i++)
        atomic_store(&route_patterns[i], NULL);
    ZERO(http_requests);
    ZERO(events);
    ZERO(job_attempts);
    ZERO(job_retries);
    ZERO(job_retries_scheduled);
    ZERO(jobs_finished);
    ZERO(athena_calls);
    ZERO(athena_throttles);
    hist_zero(&http_latency[0][0], METRICS_ROUTES_MAX * N_METHOD);
    hist_zero(job_duration, N_ENGINE);
    atomic_store(&athena_scanned, 0);
    atomic_store(&scrape_errors, 0);
}

/* ---- rendering ---------------------------------------------------------------------------- */

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped. */
static void label_value(struct buf *b, const char *v)
{
    buf_putc(b, '"');
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(b, "\\\\");
        else if (*v == '"')
            buf_puts(b, "\\\"");
        else if (*v == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *v);
    }
    buf_putc(b, '"');
}

/* name{k1="v1",k2="v2"...} from a NULL-terminated list of key, value pairs (no braces when
 * empty). `extra` is appended verbatim inside the braces (e.g. le="0.5"). */
static void series(struct buf *b, const char *name, const char *const *labels, const char *extra)
{
    int first = 1;

    buf_puts(b, name);
    if (!labels[0] && !extra) {
        buf_putc(b, ' ');
        return;
    }
    buf_putc(b, '{');
    for (size_t i = 0; labels[i]; i += 2) {
        buf_printf(b, "%s%s=", first ? "" : ",", labels[i]);
        label_value(b, labels[i + 1]);
        first = 0;
    }
    if (extra)
        buf_printf(b, "%s%s", first ? "" : ",", extra);
    buf_puts(b, "} ");
}

static void sample_u64(struct buf *b, const char *name, const char *const *labels, uint64_t v)
{
    series(b, name, labels, NULL);
    buf_printf(b, "%llu\n", (unsigned long long)v);
}

static void hist_render(struct buf *b, const char *name, const char *const *labels, struct hist *h,
                        const uint64_t *bounds, size_t n)
{
    char sub[128], le[48];
    uint64_t cum = 0, sum_us = load(&h->sum_us);

    snprintf(sub, sizeof sub, "%s_bucket", name);
    for (size_t i = 0; i <= n; i++) {
        cum += load(&h->buckets[i]);
        if (i < n)
            snprintf(le, sizeof le, "le=\"%g\"", (double)bounds[i] / 1e6);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        series(b, sub, labels, le);
        buf_printf(b, "%llu\n", (unsigned long long)cum);
    }
    snprintf(sub, sizeof sub, "%s_sum", name);
    series(b, sub, labels, NULL);
    buf_printf(b, "%.6f\n", (double)sum_us / 1e6);
    snprintf(sub, sizeof sub, "%s_count", name);
    series(b, sub, labels, NULL);
    buf_printf(b, "%llu\n", (unsigned long long)cum);
}

static uint64_t hist_total(struct hist *h)
{
    uint64_t n = 0;

    for (size_t i = 0; i <= HIST_MAX_BUCKETS; i++)
        n += load(&h->buckets[i]);
    return n;
}

static const char *route_name(size_t r)
{
    const char *p;

    if (r == ROUTE_UNMATCHED)
        return "unmatched";
    if (r == ROUTE_OTHER)
        return "other";
    p = atomic_load(&route_patterns[r]);
    return p;
}

static void render_http(struct buf *b)
{
    char status[16];

    header(b, "hcpipe_http_requests_total", "counter",
           "HTTP requests answered, by route pattern, method and status.");
    for (size_t r = 0; r < METRICS_ROUTES_MAX; r++) {
        const char *route = route_name(r);
        if (!route)
            continue;
        for (size_t m = 0; m < N_METHOD; m++)
            for (size_t s = 0; s < N_STATUS; s++) {
                uint64_t v = load(&http_requests[r][m][s]);
                if (!v)
                    continue;
                if (s < N_STATUS - 1)
                    snprintf(status, sizeof status, "%u", http_statuses[s]);
                else
                    snprintf(status, sizeof status, "other");
                sample_u64(b, "hcpipe_http_requests_total",
                           (const char *const[]){"route", route, "method",
                                                 name_or_other(http_methods, N_METHOD - 1, m),
                                                 "status", status, NULL},
                           v);
            }
    }
    header(b, "hcpipe_http_request_duration_seconds", "histogram",
           "Time from a request's first byte to its completion, by route pattern and method.");
    for (size_t r = 0; r < METRICS_ROUTES_MAX; r++) {
        const char *route = route_name(r);
        if (!route)
            continue;
        for (size_t m = 0; m < N_METHOD; m++) {
            if (hist_total(&http_latency[r][m]) == 0)
                continue;
            hist_render(b, "hcpipe_http_request_duration_seconds",
                        (const char *const[]){"route", route, "method",
                                              name_or_other(http_methods, N_METHOD - 1, m), NULL},
                        &http_latency[r][m], http_bounds_us, N_HTTP_BOUNDS);
        }
    }
}

static void render_events(struct buf *b)
{
    header(b, "hcpipe_events_total", "counter",
           "Delivered S3 events by outcome (accepted, duplicate, ignored, rejected).");
    for (size_t i = 0; i < METRICS_EVENT_N; i++)
        sample_u64(b, "hcpipe_events_total",
                   (const char *const[]){"outcome", event_outcomes[i], NULL}, load(&events[i]));
}

/* Jobs by state and query, read from the store. */
struct job_counts {
    uint64_t n[N_STATE][N_QUERY_MAX];
};

static void count_cb(void *ctx, const char *state, const char *query, uint64_t n)
{
    struct job_counts *c = ctx;
    int s = job_state_parse(state);

    if (s >= 0)
        c->n[s][query_index(query)] += n;
}

static void render_jobs(struct buf *b, struct jobstore *js)
{
    const char *const *qnames = engine_query_names();
    size_t nq = n_queries();
    struct job_counts counts;

    memset(&counts, 0, sizeof counts);
    if (js) {
        if (jobstore_count_by_state_query(js, count_cb, &counts) != HC_OK) {
            inc(&scrape_errors);
        } else {
            header(b, "hcpipe_jobs", "gauge", "Jobs in the job store, by state and query.");
            for (size_t s = 0; s < N_STATE; s++)
                for (size_t q = 0; q <= nq; q++) {
                    if (q == nq && !counts.n[s][q])
                        continue; /* "other" only when such jobs exist */
                    sample_u64(b, "hcpipe_jobs",
                               (const char *const[]){"state", job_state_name((enum job_state)s),
                                                     "query", name_or_other(qnames, nq, q), NULL},
                               counts.n[s][q]);
                }
        }
    }
    header(b, "hcpipe_job_attempts_total", "counter", "Job attempts started, by engine.");
    for (size_t e = 0; e < N_ENGINE - 1; e++)
        sample_u64(b, "hcpipe_job_attempts_total",
                   (const char *const[]){"engine", engines[e], NULL}, load(&job_attempts[e]));
    header(b, "hcpipe_job_retries_total", "counter",
           "Job attempts after the first (a retry or a replay), by engine.");
    for (size_t e = 0; e < N_ENGINE - 1; e++)
        sample_u64(b, "hcpipe_job_retries_total", (const char *const[]){"engine", engines[e], NULL},
                   load(&job_retries[e]));
    header(b, "hcpipe_job_retries_scheduled_total", "counter",
           "Failed attempts scheduled to run again after a backoff, by engine.");
    for (size_t e = 0; e < N_ENGINE - 1; e++)
        sample_u64(b, "hcpipe_job_retries_scheduled_total",
                   (const char *const[]){"engine", engines[e], NULL},
                   load(&job_retries_scheduled[e]));
    header(b, "hcpipe_jobs_finished_total", "counter",
           "Job attempts that ended, by engine, query and the state they left the job in.");
    for (size_t e = 0; e < N_ENGINE; e++)
        for (size_t q = 0; q <= nq; q++)
            for (size_t s = 0; s < N_STATE; s++) {
                uint64_t v = load(&jobs_finished[e][q][s]);
                if (!v)
                    continue;
                sample_u64(b, "hcpipe_jobs_finished_total",
                           (const char *const[]){"engine", name_or_other(engines, N_ENGINE - 1, e),
                                                 "query", name_or_other(qnames, nq, q), "state",
                                                 job_state_name((enum job_state)s), NULL},
                           v);
            }
    header(b, "hcpipe_jobs_dead_total", "counter",
           "Jobs that went to the dead-letter list (attempts exhausted), by engine.");
    for (size_t e = 0; e < N_ENGINE - 1; e++) {
        uint64_t v = 0;
        for (size_t q = 0; q <= nq; q++)
            v += load(&jobs_finished[e][q][JOB_DEAD]);
        sample_u64(b, "hcpipe_jobs_dead_total", (const char *const[]){"engine", engines[e], NULL},
                   v);
    }
    header(b, "hcpipe_job_duration_seconds", "histogram",
           "Run time of job attempts that ended, by engine.");
    for (size_t e = 0; e < N_ENGINE - 1; e++)
        hist_render(b, "hcpipe_job_duration_seconds",
                    (const char *const[]){"engine", engines[e], NULL}, &job_duration[e],
                    job_bounds_us, N_JOB_BOUNDS);
}

/* Objects, current facilities and object bytes of the local warehouse (read-only connection). */
static void render_warehouse(struct buf *b, const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t objects = 0, bytes = 0, facilities = 0;
    int ok = 0;

    if (!path)
        return;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto out;
    sqlite3_busy_timeout(db, 1000);
    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT count(*) FROM objects),"
                           " (SELECT coalesce(sum(size), 0) FROM objects),"
                           " (SELECT count(*) FROM current)",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) == SQLITE_ROW) {
        objects = sqlite3_column_int64(st, 0);
        bytes = sqlite3_column_int64(st, 1);
        facilities = sqlite3_column_int64(st, 2);
        ok = 1;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (!ok) {
        inc(&scrape_errors); /* no warehouse yet, or it could not be read */
        return;
    }
    header(b, "hcpipe_warehouse_objects", "gauge", "Source objects loaded in the warehouse.");
    sample_u64(b, "hcpipe_warehouse_objects", (const char *const[]){NULL}, (uint64_t)objects);
    header(b, "hcpipe_warehouse_facilities", "gauge",
           "Current facilities in the warehouse (one per facility_id).");
    sample_u64(b, "hcpipe_warehouse_facilities", (const char *const[]){NULL}, (uint64_t)facilities);
    header(b, "hcpipe_warehouse_bytes", "gauge", "Bytes of the source objects loaded.");
    sample_u64(b, "hcpipe_warehouse_bytes", (const char *const[]){NULL}, (uint64_t)bytes);
}

static void render_athena(struct buf *b)
{
    header(b, "hcpipe_athena_api_calls_total", "counter",
           "Athena API calls by operation and outcome.");
    for (size_t op = 0; op < N_ATHENA_OP; op++)
        for (size_t oc = 0; oc < N_ATHENA_OUTCOME; oc++) {
            uint64_t v = load(&athena_calls[op][oc]);
            if (!v)
                continue;
            sample_u64(b, "hcpipe_athena_api_calls_total",
                       (const char *const[]){
                           "operation", name_or_other(athena_ops, N_ATHENA_OP - 1, op), "outcome",
                           name_or_other(athena_outcomes, N_ATHENA_OUTCOME - 1, oc), NULL},
                       v);
        }
    header(b, "hcpipe_athena_throttles_total", "counter",
           "Athena API calls answered with a throttling error, by operation.");
    for (size_t op = 0; op < N_ATHENA_OP; op++) {
        uint64_t v = load(&athena_throttles[op]);
        if (v || op < N_ATHENA_OP - 1)
            sample_u64(b, "hcpipe_athena_throttles_total",
                       (const char *const[]){"operation",
                                             name_or_other(athena_ops, N_ATHENA_OP - 1, op), NULL},
                       v);
    }
    header(b, "hcpipe_athena_scanned_bytes_total", "counter",
           "Bytes scanned by finished Athena queries.");
    sample_u64(b, "hcpipe_athena_scanned_bytes_total", (const char *const[]){NULL},
               load(&athena_scanned));
}

int metrics_render(const struct metrics_sources *src, struct buf *out)
{
    header(out, "hcpipe_build_info", "gauge", "Always 1; the version of this hcpipe.");
    sample_u64(out, "hcpipe_build_info", (const char *const[]){"version", HCPIPE_VERSION, NULL}, 1);
    render_http(out);
    render_events(out);
    render_jobs(out, src ? src->jobs : NULL);
    render_warehouse(out, src ? src->warehouse_path : NULL);
    render_athena(out);
    header(out, "hcpipe_metrics_scrape_errors_total", "counter",
           "Scrapes that could not read a store (its gauges were left out).");
    sample_u64(out, "hcpipe_metrics_scrape_errors_total", (const char *const[]){NULL},
               load(&scrape_errors));
    return out->failed ? HC_ENOMEM : HC_OK;
}
