/*
 * Unit tests of server/worker.c, driven by a scripted fake engine (the query name picks its
 * behaviour) over a real job store in a temporary folder, with the wall clock and randomness
 * pinned through sys_set() so deadlines and retry times are deterministic.
 *
 * Fake engine queries:
 *   ok        start -> handle "h-<id>", done on the second poll, two pages of rows (3 in all)
 *   transient start fails with HC_EENGINETRANSIENT
 *   flaky     the first attempt fails transiently, later ones behave as `ok`
 *   broken    start fails with HC_EENGINE and a problem document (not transient)
 *   forever   start succeeds, poll never finishes; reports progress
 *   blocking  start blocks until the cancel flag rises (like the local engine), then returns
 *             HC_ECANCELLED; when re-attached (a stored handle) it behaves as `ok`
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/engine.h"
#include "server/engine_local.h"
#include "server/error.h"
#include "server/jobstore.h"
#include "server/sys.h"
#include "server/worker.h"

/* ---- pinned clock and randomness ---------------------------------------------------------- */

#define T0 1795780800000 /* 2026-11-27T12:00:00.000Z */

static _Atomic int64_t fake_now = T0;
static _Atomic uint64_t fake_rand = 12345;

static int64_t fake_now_ms(void)
{
    return fake_now;
}

static uint64_t fake_random(void)
{
    return fake_rand;
}

static void fake_uuid(char out[37])
{
    static _Atomic uint64_t seq;
    uint64_t n = ++seq;

    snprintf(out, 37, "00000000-0000-4000-8000-%012llx", (unsigned long long)n);
}

static const struct sys_ops fake_ops = {fake_now_ms, fake_now_ms, fake_random, fake_uuid};

/* ---- the fake engine ---------------------------------------------------------------------- */

struct fake_engine {
    struct engine base;    /* first member */
    atomic_int starts;     /* start() calls */
    atomic_int cancels;    /* cancel() calls */
    atomic_int reattaches; /* start() calls that got a stored handle */
    pthread_mutex_t lock;
    char last_handle[64]; /* the handle of the last re-attach (under lock) */
};

static struct fake_engine fake;

static int fake_start(struct engine *e, const struct engine_job *job, const char *handle,
                      char **handle_out, json_t **problem_out)
{
    struct fake_engine *f = (struct fake_engine *)e;
    char h[64];

    atomic_fetch_add(&f->starts, 1);
    *handle_out = NULL;
    if (handle) {
        atomic_fetch_add(&f->reattaches, 1);
        pthread_mutex_lock(&f->lock);
        snprintf(f->last_handle, sizeof f->last_handle, "%s", handle);
        pthread_mutex_unlock(&f->lock);
        *handle_out = strdup(handle);
        return HC_OK;
    }
    if (strcmp(job->query, "transient") == 0 ||
        (strcmp(job->query, "flaky") == 0 && job->attempt == 1))
        return HC_EENGINETRANSIENT;
    if (strcmp(job->query, "busy") == 0 && atomic_load(&f->starts) <= 2) {
        *problem_out = hc_problem_new(HC_EENGINEBUSY, "concurrent query limit");
        return HC_EENGINEBUSY;
    }
    if (strcmp(job->query, "broken") == 0) {
        *problem_out = hc_problem_new(HC_EENGINE, "syntax error near FROM");
        return HC_EENGINE;
    }
    snprintf(h, sizeof h, "h-%s", job->job_id);
    *handle_out = strdup(h);
    if (strcmp(job->query, "forever") == 0 || strcmp(job->query, "blocking") == 0) {
        atomic_store(&job->progress->bytes_read, 1000);
        atomic_store(&job->progress->bytes_total, 5000);
        atomic_store(&job->progress->records_read, 10);
    }
    if (strcmp(job->query, "blocking") == 0) {
        while (!atomic_load(job->cancel))
            usleep(1000);
        return HC_ECANCELLED;
    }
    return HC_OK;
}

static int fake_poll(struct engine *e, const struct engine_job *job, const char *handle,
                     int *done_out, json_t **stats_out, json_t **problem_out)
{
    (void)e;
    (void)handle;
    (void)problem_out;
    *done_out = 0;
    if (strcmp(job->query, "forever") == 0)
        return HC_OK;
    *done_out = 1;
    *stats_out =
        json_pack("{s:i, s:[s], s:[{s:i, s:s, s:s}]}", "rows_scanned", 3, "warnings", "one warning",
                  "bad_records", "position", 7, "reason", "not an object", "source", "s3://b/k");
    return HC_OK;
}

static int fake_fetch_page(struct engine *e, const struct engine_job *job, const char *handle,
                           const char *token, struct result_sink *sink, char **next_token_out,
                           json_t **problem_out)
{
    static const struct column cols[] = {{"state", COL_VARCHAR}, {"n", COL_BIGINT}};
    struct value v[2] = {{0}, {0}};
    int err = HC_OK;

    (void)e;
    (void)job;
    (void)handle;
    (void)problem_out;
    *next_token_out = NULL;
    if (!token) {
        err = sink->columns(sink->ctx, cols, 2);
        v[0].s = "CA";
        v[0].len = 2;
        v[1].i = 5;
        if (!err)
            err = sink->row(sink->ctx, v);
        v[0].s = "NY";
        v[1].i = 2;
        if (!err)
            err = sink->row(sink->ctx, v);
        *next_token_out = strdup("page-2");
        return err;
    }
    v[0].is_null = 1;
    v[1].i = 1;
    return sink->row(sink->ctx, v);
}

static int fake_cancel(struct engine *e, const char *handle)
{
    (void)handle;
    atomic_fetch_add(&((struct fake_engine *)e)->cancels, 1);
    return HC_OK;
}

static void fake_destroy(struct engine *e)
{
    (void)e;
}

static const struct engine_ops fake_engine_ops = {"fake",          fake_start,  fake_poll,
                                                  fake_fetch_page, fake_cancel, fake_destroy,
                                                  NULL};

/* ---- fixture ------------------------------------------------------------------------------ */

struct fixture {
    char dir[64];
    char results[96];
    char db[96];
    struct jobstore *js;
    struct worker *w;
    struct worker_config cfg;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    snprintf(fx->dir, sizeof fx->dir, "/tmp/hcpipe-worker-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->results, sizeof fx->results, "%s/results", fx->dir);
    snprintf(fx->db, sizeof fx->db, "%s/jobs.db", fx->dir);
    fake_now = T0;
    fake_rand = 12345;
    sys_set(&fake_ops);
    memset(&fake, 0, sizeof fake);
    fake.base.ops = &fake_engine_ops;
    pthread_mutex_init(&fake.lock, NULL);
    if (jobstore_open(fx->db, &fx->js) != HC_OK)
        return -1;
    fx->cfg = (struct worker_config){.threads = 2,
                                     .max_attempts = 3,
                                     .job_timeout_s = 900,
                                     .backoff_base_ms = 1000,
                                     .backoff_cap_ms = 60000,
                                     .results_dir = fx->results};
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    worker_stop(fx->w);
    jobstore_close(fx->js);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        return -1;
    pthread_mutex_destroy(&fake.lock);
    sys_set(NULL);
    free(fx);
    return 0;
}

static void start_pool(struct fixture *fx)
{
    assert_int_equal(worker_start(fx->js, &fake.base, &fx->cfg, &fx->w), HC_OK);
}

static struct job *submit(struct fixture *fx, const char *query, int timeout_s)
{
    struct job_spec spec = {.query = query, .engine = "local", .timeout_s = timeout_s};
    struct job *job = NULL;

    assert_int_equal(jobstore_insert(fx->js, &spec, &job), HC_OK);
    worker_wake(fx->w);
    return job;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits (real time, at most 10 s) until job `id` is in state `want` with `attempts` attempts (-1:
 * any); returns it (caller frees). */
static struct job *wait_job(struct fixture *fx, const char *id, enum job_state want, int attempts)
{
    struct job *job = NULL;

    for (int i = 0; i < 2000; i++) {
        assert_int_equal(jobstore_get(fx->js, id, &job), HC_OK);
        if (job->state == want && (attempts < 0 || job->attempts == attempts))
            return job;
        job_free(job);
        job = NULL;
        sleep_ms(5);
    }
    fail_msg("job %s never reached %s", id, job_state_name(want));
    return NULL;
}

static struct job *wait_state(struct fixture *fx, const char *id, enum job_state want)
{
    return wait_job(fx, id, want, -1);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static const char *problem_type(const struct job *job)
{
    return json_string_value(json_object_get(job->error, "type"));
}

/* ---- tests -------------------------------------------------------------------------------- */

static void worker_backoff_full_jitter(void **state)
{
    (void)state;
    sys_set(&fake_ops);
    /* The bound doubles from base up to the cap; the value is random % (bound + 1). */
    fake_rand = 1000;
    assert_int_equal(worker_backoff_ms(1, 1000, 8000), 1000);
    fake_rand = 1001;
    assert_int_equal(worker_backoff_ms(1, 1000, 8000), 0);
    fake_rand = 1999;
    assert_int_equal(worker_backoff_ms(2, 1000, 8000), 1999);
    assert_int_equal(worker_backoff_ms(1, 1000, 8000), 1999 % 1001);
    fake_rand = 7999;
    assert_int_equal(worker_backoff_ms(4, 1000, 8000), 7999);
    assert_int_equal(worker_backoff_ms(3, 1000, 8000), 7999 % 4001);
    assert_int_equal(worker_backoff_ms(60, 1000, 8000), 7999); /* capped, no overflow */
    fake_rand = 8001;
    assert_int_equal(worker_backoff_ms(1000, 1000, 8000), 0);
    fake_rand = UINT64_MAX;
    assert_true(worker_backoff_ms(40, 1000, INT64_MAX) >= 0);
    assert_int_equal(worker_backoff_ms(3, 0, 8000), 0);
    sys_set(NULL);
}

static void worker_runs_job_to_success(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;
    char path[256], handle[64], *text;
    json_t *doc;

    start_pool(fx);
    job = submit(fx, "ok", 0);
    got = wait_state(fx, job->id, JOB_SUCCEEDED);
    assert_int_equal(got->attempts, 1);
    assert_int_equal(got->row_count, 3);
    snprintf(handle, sizeof handle, "h-%s", job->id);
    assert_string_equal(got->handle, handle);
    assert_int_equal(json_integer_value(json_object_get(got->stats, "rows_scanned")), 3);
    assert_null(json_object_get(got->stats, "warnings")); /* moved into result.json */
    assert_null(got->error);

    snprintf(path, sizeof path, "%s/%s/result.json", fx->results, job->id);
    text = read_file(path);
    assert_non_null(text);
    doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "job_id")), job->id);
    assert_int_equal(json_array_size(json_object_get(doc, "rows")), 3);
    assert_int_equal(json_integer_value(json_object_get(doc, "row_count")), 3);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "warnings"), 0)),
                        "one warning");
    assert_int_equal(json_array_size(json_object_get(doc, "bad_records")), 1);
    json_decref(doc);
    free(text);
    snprintf(path, sizeof path, "%s/%s/result.csv", fx->results, job->id);
    text = read_file(path);
    assert_non_null(text);
    assert_string_equal(text, "state,n\r\nCA,5\r\nNY,2\r\n,1\r\n");
    free(text);
    /* Not running any more (the slot is released just after the store is updated). */
    for (int i = 0; i < 2000; i++) {
        doc = worker_progress(fx->w, job->id);
        if (!doc)
            break;
        json_decref(doc);
        sleep_ms(5);
    }
    assert_null(worker_progress(fx->w, job->id));
    job_free(job);
    job_free(got);
}

static void worker_retries_transient_then_dead(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;
    /* random = 12345: attempt 1 -> 12345 % (1000 + 1), attempt 2 -> 12345 % (2000 + 1). */
    const int64_t expect[2] = {12345 % 1001, 12345 % 2001};

    start_pool(fx);
    job = submit(fx, "transient", 0);
    for (int attempt = 1; attempt <= 2; attempt++) {
        int64_t next_run;

        got = wait_job(fx, job->id, JOB_RETRYING, attempt);
        /* The pinned clock did not move since the failure: next run = now + backoff. */
        assert_int_equal(got->next_run_ms, fake_now + expect[attempt - 1]);
        assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/engine-unavailable");
        assert_int_equal(json_integer_value(json_object_get(got->error, "attempt")), attempt);
        next_run = got->next_run_ms;
        job_free(got);
        /* Not claimed before its time. */
        fake_now = next_run - 1;
        worker_wake(fx->w);
        sleep_ms(30);
        assert_int_equal(atomic_load(&fake.starts), attempt);
        fake_now = next_run;
        worker_wake(fx->w);
    }
    got = wait_job(fx, job->id, JOB_DEAD, 3);
    assert_int_equal(atomic_load(&fake.starts), 3);
    assert_int_not_equal(got->finished_ms, 0);
    assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/engine-unavailable");
    job_free(got);
    /* A dead job can be replayed: it starts over at attempt 1. */
    assert_int_equal(jobstore_retry(fx->js, job->id, NULL), HC_OK);
    worker_wake(fx->w);
    job_free(wait_job(fx, job->id, JOB_RETRYING, 1));
    assert_int_equal(atomic_load(&fake.starts), 4);
    job_free(job);
}

static void worker_flaky_job_succeeds_on_retry(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;

    start_pool(fx);
    job = submit(fx, "flaky", 0);
    got = wait_state(fx, job->id, JOB_RETRYING);
    fake_now = got->next_run_ms;
    job_free(got);
    worker_wake(fx->w);
    got = wait_state(fx, job->id, JOB_SUCCEEDED);
    assert_int_equal(got->attempts, 2);
    assert_null(got->error);
    job_free(got);
    job_free(job);
}

static void worker_requeues_busy_without_spending_attempts(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;

    fx->cfg.max_attempts = 1; /* a spent attempt would make the job dead */
    fx->cfg.requeue_delay_ms = 4000;
    start_pool(fx);
    job = submit(fx, "busy", 0);
    for (int refusal = 1; refusal <= 2; refusal++) {
        for (int i = 0; i < 2000 && atomic_load(&fake.starts) < refusal; i++)
            sleep_ms(5);
        got = wait_job(fx, job->id, JOB_RETRYING, 0);
        while (got->next_run_ms != fake_now + 4000 + 12345 % 1001 && got->next_run_ms <= fake_now) {
            job_free(got); /* still the previous refusal's row */
            sleep_ms(5);
            got = wait_job(fx, job->id, JOB_RETRYING, 0);
        }
        /* delay + jitter in [0, delay / 4] from the pinned random value */
        assert_int_equal(got->next_run_ms, fake_now + 4000 + 12345 % 1001);
        assert_null(got->handle);
        assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/engine-busy");
        fake_now = got->next_run_ms;
        job_free(got);
        worker_wake(fx->w);
    }
    got = wait_state(fx, job->id, JOB_SUCCEEDED);
    assert_int_equal(got->attempts, 1);
    assert_int_equal(atomic_load(&fake.starts), 3);
    job_free(got);
    job_free(job);
}

static atomic_int publishes;

static int publish_count(void *ctx, const struct job *job, const char *dir)
{
    char path[4096];
    FILE *f;

    (void)ctx;
    snprintf(path, sizeof path, "%s/result.json", dir);
    f = fopen(path, "r"); /* committed before the hook runs */
    if (!f)
        return HC_EINTERNAL;
    fclose(f);
    return atomic_fetch_add(&publishes, 1) == 0 && strcmp(job->query, "ok") == 0 ? HC_EIO : HC_OK;
}

static void worker_publishes_committed_results(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;

    atomic_store(&publishes, 0);
    fx->cfg.publish = publish_count;
    start_pool(fx);
    job = submit(fx, "ok", 0);
    got = wait_state(fx, job->id, JOB_RETRYING); /* the first publish failed (HC_EIO) */
    assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/io-error");
    fake_now = got->next_run_ms;
    job_free(got);
    worker_wake(fx->w);
    got = wait_state(fx, job->id, JOB_SUCCEEDED);
    assert_int_equal(got->attempts, 2);
    assert_int_equal(atomic_load(&publishes), 2);
    job_free(got);
    job_free(job);
}

static void worker_non_transient_error_fails(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;

    start_pool(fx);
    job = submit(fx, "broken", 0);
    got = wait_state(fx, job->id, JOB_FAILED);
    assert_int_equal(got->attempts, 1);
    assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/engine-error");
    assert_string_equal(json_string_value(json_object_get(got->error, "detail")),
                        "syntax error near FROM");
    assert_int_equal(json_integer_value(json_object_get(got->error, "attempt")), 1);
    job_free(got);
    /* Replay: it runs (and fails) once more. */
    assert_int_equal(jobstore_retry(fx->js, job->id, NULL), HC_OK);
    worker_wake(fx->w);
    for (int i = 0; i < 2000 && atomic_load(&fake.starts) < 2; i++)
        sleep_ms(5);
    got = wait_state(fx, job->id, JOB_FAILED);
    assert_int_equal(atomic_load(&fake.starts), 2);
    job_free(got);
    job_free(job);
}

static void worker_times_out_polling_job(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;

    start_pool(fx);
    job = submit(fx, "forever", 2); /* less than the config's 900 s: 2 s wins */
    job_free(wait_state(fx, job->id, JOB_RUNNING));
    sleep_ms(50);
    assert_int_equal(jobstore_get(fx->js, job->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_RUNNING); /* the pinned clock has not moved */
    job_free(got);
    fake_now += 2000;
    got = wait_state(fx, job->id, JOB_FAILED);
    assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/timeout");
    assert_int_equal(atomic_load(&fake.cancels), 1);
    job_free(got);
    job_free(job);
}

static void worker_times_out_blocking_job(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;

    fx->cfg.job_timeout_s = 5; /* the config's deadline is shorter than the job's 60 s */
    start_pool(fx);
    job = submit(fx, "blocking", 60);
    job_free(wait_state(fx, job->id, JOB_RUNNING));
    fake_now += 4999;
    sleep_ms(150);
    assert_int_equal(jobstore_get(fx->js, job->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_RUNNING);
    job_free(got);
    fake_now += 1;
    got = wait_state(fx, job->id, JOB_FAILED);
    assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/timeout");
    job_free(got);
    job_free(job);
}

static void worker_cancels_running_job(void **state)
{
    struct fixture *fx = *state;
    const char *queries[] = {"forever", "blocking"};

    start_pool(fx);
    for (int i = 0; i < 2; i++) {
        struct job *job = submit(fx, queries[i], 0), *got;

        job_free(wait_state(fx, job->id, JOB_RUNNING));
        assert_int_equal(jobstore_cancel(fx->js, job->id, NULL), HC_OK);
        worker_wake(fx->w);
        got = wait_state(fx, job->id, JOB_CANCELLED);
        assert_int_not_equal(got->finished_ms, 0);
        assert_int_equal(atomic_load(&fake.cancels), i + 1);
        job_free(got);
        job_free(job);
    }
}

static void worker_never_starts_cancelled_queued_job(void **state)
{
    struct fixture *fx = *state;
    struct job *cancelled = submit(fx, "ok", 0), *after, *got;

    assert_int_equal(jobstore_cancel(fx->js, cancelled->id, NULL), HC_OK);
    start_pool(fx);
    after = submit(fx, "ok", 0);
    job_free(wait_state(fx, after->id, JOB_SUCCEEDED));
    got = wait_state(fx, cancelled->id, JOB_CANCELLED);
    assert_int_equal(got->attempts, 0);
    assert_int_equal(atomic_load(&fake.starts), 1);
    job_free(got);
    job_free(cancelled);
    job_free(after);
}

static void worker_reports_progress(void **state)
{
    struct fixture *fx = *state;
    struct job *job;
    json_t *p = NULL;

    start_pool(fx);
    job = submit(fx, "forever", 0);
    job_free(wait_state(fx, job->id, JOB_RUNNING));
    for (int i = 0; i < 2000; i++) {
        p = worker_progress(fx->w, job->id);
        if (p && json_integer_value(json_object_get(p, "bytes_read")) == 1000)
            break;
        json_decref(p);
        p = NULL;
        sleep_ms(5);
    }
    assert_non_null(p);
    json_decref(p);
    fake_now += 2000; /* the pinned monotonic clock too: 1000 bytes in 2 s */
    p = worker_progress(fx->w, job->id);
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_read")), 1000);
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_total")), 5000);
    assert_int_equal(json_integer_value(json_object_get(p, "records_read")), 10);
    assert_int_equal(json_integer_value(json_object_get(p, "rate_bytes_per_s")), 500);
    json_decref(p);
    assert_null(worker_progress(fx->w, "00000000-0000-4000-8000-00000000ffff"));
    job_free(job);
}

static void worker_stop_leaves_job_for_recover(void **state)
{
    struct fixture *fx = *state;
    struct job *job, *got;
    char handle[64];
    int n = 0;

    start_pool(fx);
    job = submit(fx, "blocking", 0);
    job_free(wait_state(fx, job->id, JOB_RUNNING));
    /* start() is blocked in the engine: shutdown interrupts it at its safe point. */
    worker_stop(fx->w);
    fx->w = NULL;
    assert_int_equal(jobstore_get(fx->js, job->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_RUNNING);
    assert_int_equal(atomic_load(&fake.cancels), 0); /* shutdown does not cancel the query */
    job_free(got);

    /* Next start: recover, then the engine re-attaches with the stored handle and succeeds.
     * (The blocking fake returns its handle only by failing, so the test stores one.) */
    assert_int_equal(jobstore_set_handle(fx->js, job->id, "h-stored"), HC_OK);
    assert_int_equal(jobstore_recover(fx->js, &n), HC_OK);
    assert_int_equal(n, 1);
    start_pool(fx);
    got = wait_state(fx, job->id, JOB_SUCCEEDED);
    assert_int_equal(got->attempts, 2);
    assert_int_equal(atomic_load(&fake.reattaches), 1);
    pthread_mutex_lock(&fake.lock);
    snprintf(handle, sizeof handle, "%s", fake.last_handle);
    pthread_mutex_unlock(&fake.lock);
    assert_string_equal(handle, "h-stored");
    job_free(got);
    job_free(job);
}

static void worker_settles_crashed_jobs_at_claim(void **state)
{
    struct fixture *fx = *state;
    struct job *spent = submit(fx, "ok", 0), *cancelled, *got = NULL;

    /* `spent` crashed the service during both its attempts (max_attempts 2): the worker's claim
     * is a third attempt, so the job is dead without running. */
    fx->cfg.max_attempts = 2;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobstore_claim(fx->js, fake_now, &got), HC_OK);
        assert_string_equal(got->id, spent->id);
        job_free(got);
        assert_int_equal(jobstore_recover(fx->js, NULL), HC_OK);
    }
    start_pool(fx);
    got = wait_state(fx, spent->id, JOB_DEAD);
    assert_string_equal(problem_type(got), "https://hcpipe.dev/problems/unavailable");
    assert_int_equal(got->attempts, 3);
    job_free(got);
    worker_stop(fx->w);
    fx->w = NULL;

    /* `cancelled` was being cancelled when the service died: its query is stopped, not run. */
    cancelled = submit(fx, "ok", 0);
    assert_int_equal(jobstore_claim(fx->js, fake_now, &got), HC_OK);
    assert_string_equal(got->id, cancelled->id);
    job_free(got);
    assert_int_equal(jobstore_set_handle(fx->js, cancelled->id, "h-c"), HC_OK);
    assert_int_equal(jobstore_cancel(fx->js, cancelled->id, NULL), HC_OK);
    assert_int_equal(jobstore_recover(fx->js, NULL), HC_OK);
    start_pool(fx);
    job_free(wait_state(fx, cancelled->id, JOB_CANCELLED));
    assert_int_equal(atomic_load(&fake.starts), 0);
    assert_int_equal(atomic_load(&fake.cancels), 1);
    job_free(spent);
    job_free(cancelled);
}

static void worker_runs_each_job_once(void **state)
{
    struct fixture *fx = *state;
    struct job *jobs[30];

    fx->cfg.threads = 4;
    for (int i = 0; i < 30; i++)
        jobs[i] = submit(fx, "ok", 0);
    start_pool(fx);
    for (int i = 0; i < 30; i++) {
        struct job *got = wait_state(fx, jobs[i]->id, JOB_SUCCEEDED);

        assert_int_equal(got->attempts, 1);
        job_free(got);
        job_free(jobs[i]);
    }
    assert_int_equal(atomic_load(&fake.starts), 30);
}

/* The real local engine over the sample data: the result the sample's README gives. */
static void worker_runs_local_engine_end_to_end(void **state)
{
    struct fixture *fx = *state;
    struct job_spec spec = {.query = "accredited_by_state",
                            .source = "s3://sample/facilities.ndjson",
                            .as_of = "2026-11-27",
                            .engine = "local"};
    struct engine *local = NULL;
    struct job *job = NULL, *got;
    char path[256], *text, *data;
    FILE *f;

    sys_set(NULL); /* the real clock: the local engine checks its deadline against it */
    snprintf(path, sizeof path, "mkdir -p '%s/buckets/sample'", fx->dir);
    assert_int_equal(system(path), 0);
    data = read_file("tests/data/sample_data.ndjson");
    assert_non_null(data);
    snprintf(path, sizeof path, "%s/buckets/sample/facilities.ndjson", fx->dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, strlen(data), f), strlen(data));
    fclose(f);
    free(data);

    assert_int_equal(engine_local_new(fx->dir, &local), HC_OK);
    assert_int_equal(worker_start(fx->js, local, &fx->cfg, &fx->w), HC_OK);
    assert_int_equal(jobstore_insert(fx->js, &spec, &job), HC_OK);
    worker_wake(fx->w);
    got = wait_state(fx, job->id, JOB_SUCCEEDED);
    assert_int_equal(got->row_count, 1);
    job_free(got);
    snprintf(path, sizeof path, "%s/%s/result.csv", fx->results, job->id);
    text = read_file(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\r\nTX,1,250,1\r\n"));
    free(text);
    worker_stop(fx->w);
    fx->w = NULL;
    local->ops->destroy(local);
    job_free(job);
}

static void worker_start_rejects_bad_config(void **state)
{
    struct fixture *fx = *state;
    struct worker_config cfg = fx->cfg;
    struct worker *w = NULL;

    cfg.threads = 0;
    assert_int_equal(worker_start(fx->js, &fake.base, &cfg, &w), HC_EINVAL);
    cfg = fx->cfg;
    cfg.max_attempts = 0;
    assert_int_equal(worker_start(fx->js, &fake.base, &cfg, &w), HC_EINVAL);
    cfg = fx->cfg;
    cfg.results_dir = NULL;
    assert_int_equal(worker_start(fx->js, &fake.base, &cfg, &w), HC_EINVAL);
    assert_null(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worker_backoff_full_jitter),
        cmocka_unit_test_setup_teardown(worker_runs_job_to_success, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_retries_transient_then_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_flaky_job_succeeds_on_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_requeues_busy_without_spending_attempts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(worker_publishes_committed_results, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_non_transient_error_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_times_out_polling_job, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_times_out_blocking_job, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_cancels_running_job, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_never_starts_cancelled_queued_job, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_reports_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_stop_leaves_job_for_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_settles_crashed_jobs_at_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_runs_each_job_once, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_runs_local_engine_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(worker_start_rejects_bad_config, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
