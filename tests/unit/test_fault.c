/*
 * Fault injection over a job's whole lifecycle (server/fault.h; this program alone is built with
 * -DHCPIPE_FAULT_INJECTION and links hcpipe's allocations through the fault wrappers).
 *
 * For N = 1, 2, ... the Nth fallible call after a job is submitted fails, once: a job-store
 * SQLite call (prepare/step/exec), a result-file write/flush/fsync/open/rename, or an allocation
 * of hcpipe's code (insert, claim, set_handle, the local engine's load and query, result writes,
 * succeed/fail). The walk ends when a whole lifecycle makes fewer than N calls. Each pass checks:
 * nothing crashes; a job whose insert answered HC_OK (accepted) is in the store exactly once and
 * ends in a sane state (succeeded, failed or dead) without a restart (should one be needed, the
 * test restarts, checks that recovery finishes the job, and fails); a job whose insert failed is
 * not in the store; a succeeded job's result.json is complete; the store passes
 * PRAGMA integrity_check. HCPIPE_FAULT_STRIDE=k walks every kth N (default 1: all). The SQLite
 * allocator itself is walked by test_jobstore.
 *
 * The group commit of events gets the same walk: one batch of four events (a new one, a
 * redelivery, a new one with the first one's object and sequencer, another new one) queued behind
 * a blocked leader, with the Nth call of the batch failing. Each pass checks that every caller
 * told HC_OK has its event and exactly the jobs it was given (a redelivery the original's), that
 * a caller told an error left nothing, and that the store holds no other job.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/engine.h"
#include "server/engine_local.h"
#include "server/error.h"
#include "server/fault.h"
#include "server/jobstore.h"
#include "server/log.h"
#include "server/worker.h"

static char dir[256];

static const char records[] =
    "{\"facility_id\":\"B2\",\"facility_name\":\"Beta\",\"location\":{\"state\":\"CA\"},"
    "\"employee_count\":100,\"services\":[\"a\",\"b\"],\"accreditations\":["
    "{\"accreditation_body\":\"NCQA\",\"valid_until\":\"2026-08-31\"}]}\n"
    "{\"facility_id\":\"A1\",\"facility_name\":\"Alpha\",\"location\":{\"state\":\"TX\"},"
    "\"employee_count\":7,\"services\":[],\"accreditations\":["
    "{\"accreditation_body\":\"JC\",\"valid_until\":\"2027-08-30\"}]}\n"
    "{\"facility_id\":\"C3\",\"facility_name\":\"Gamma\",\"location\":{\"state\":\"CA\"},"
    "\"employee_count\":50,\"accreditations\":[]}\n";

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int run_cmd(const char *fmt, const char *arg)
{
    char cmd[600];

    snprintf(cmd, sizeof cmd, fmt, arg);
    return system(cmd);
}

static int setup(void **state)
{
    char path[400];
    FILE *f;

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hcpipe-fault-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/data", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/data/buckets", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/data/buckets/bkt", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/data/buckets/bkt/f.ndjson", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(records, f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fault_arm(0);
    assert_int_equal(run_cmd("rm -rf '%s'", dir), 0);
    return 0;
}

/* PRAGMA integrity_check of the store file, and how many rows it holds for `id` (NULL: any). */
static void check_db(const char *path, const char *id, int *rows_out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs WHERE ?1 IS NULL OR id = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *rows_out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int is_final(enum job_state s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_DEAD || s == JOB_CANCELLED;
}

/* Polls the job until it is final or `ms` passed; returns its last state (-1: not found). */
static int wait_final(struct jobstore *js, const char *id, long ms)
{
    int state = -1;

    for (long t = 0; t <= ms; t += 2) {
        struct job *job = NULL;
        if (jobstore_get(js, id, &job) == HC_OK) {
            state = (int)job->state;
            job_free(job);
            if (is_final((enum job_state)state))
                return state;
        }
        sleep_ms(2);
    }
    return state;
}

struct totals {
    long passes, accepted, succeeded, failed, dead, restarts, injected;
};

/* One lifecycle with the Nth call failing. Returns the calls the pass made. */
static long one_pass(long n, struct totals *t)
{
    char run[300], db[400], results[400], path[500];
    struct worker_config wc = {.threads = 1,
                               .max_attempts = 3,
                               .job_timeout_s = 30,
                               .backoff_base_ms = 1,
                               .backoff_cap_ms = 5,
                               .results_dir = results};
    struct job_spec spec = {.query = "facility_metrics",
                            .source = "s3://bkt/f.ndjson",
                            .as_of = "2026-08-31",
                            .engine = "local"};
    struct jobstore *js = NULL;
    struct engine *eng = NULL;
    struct worker *w = NULL;
    struct job *job = NULL;
    char id[37] = "";
    int accepted, state, rows;
    long calls;

    fault_exempt_thread(1);
    snprintf(run, sizeof run, "%s/run", dir);
    assert_int_equal(run_cmd("rm -rf '%s'", run), 0);
    mkdir(run, 0755);
    snprintf(db, sizeof db, "%s/jobs.db", run);
    snprintf(results, sizeof results, "%s/results", run);
    snprintf(path, sizeof path, "%s/data", dir);
    assert_int_equal(jobstore_open(db, &js), HC_OK);
    assert_int_equal(engine_local_new(path, &eng), HC_OK);
    assert_int_equal(worker_start(js, eng, &wc, &w), HC_OK);

    /* Armed from the submission on: this thread's insert, then the worker's whole run. */
    fault_arm(n);
    fault_exempt_thread(0);
    accepted = jobstore_insert(js, &spec, &job) == HC_OK;
    fault_exempt_thread(1);
    if (accepted) {
        snprintf(id, sizeof id, "%s", job->id);
        job_free(job);
        worker_wake(w);
        state = wait_final(js, id, 1500);
    } else {
        assert_null(job);
        sleep_ms(5);
        state = -1;
    }
    calls = fault_calls();
    fault_arm(0);
    t->passes++;

    if (accepted && !is_final((enum job_state)state)) {
        /* Stuck (e.g. the report of an outcome failed): a restart must recover and finish it. */
        print_message("N=%ld: job left %s until a restart\n", n,
                      state < 0 ? "missing" : job_state_name((enum job_state)state));
        worker_stop(w);
        jobstore_close(js);
        assert_int_equal(jobstore_open(db, &js), HC_OK);
        assert_int_equal(jobstore_recover(js, NULL), HC_OK);
        assert_int_equal(worker_start(js, eng, &wc, &w), HC_OK);
        worker_wake(w);
        state = wait_final(js, id, 5000);
        t->restarts++;
        if (!is_final((enum job_state)state))
            fail_msg("N=%ld: job %s still in state %d after a restart", n, id, state);
    }
    worker_stop(w);
    jobstore_close(js);
    eng->ops->destroy(eng);

    if (accepted) {
        check_db(db, id, &rows);
        if (rows != 1)
            fail_msg("N=%ld: accepted job %s is in the store %d times", n, id, rows);
        t->accepted++;
        if (state == JOB_SUCCEEDED) {
            json_t *doc;
            t->succeeded++;
            snprintf(path, sizeof path, "%s/%s/result.json", results, id);
            doc = json_load_file(path, 0, NULL);
            if (!doc || json_integer_value(json_object_get(doc, "row_count")) !=
                            (json_int_t)json_array_size(json_object_get(doc, "rows")))
                fail_msg("N=%ld: succeeded job without a complete result.json", n);
            json_decref(doc);
        } else if (state == JOB_FAILED) {
            t->failed++;
            if (getenv("HCPIPE_FAULT_DEBUG"))
                print_message("N=%ld failed\n", n);
        } else if (state == JOB_DEAD) {
            t->dead++;
        } else {
            fail_msg("N=%ld: job ended %d", n, state);
        }
    } else {
        check_db(db, NULL, &rows);
        if (rows != 0)
            fail_msg("N=%ld: the insert failed, yet the store holds %d jobs", n, rows);
    }
    fault_exempt_thread(0);
    return calls;
}

static void fault_every_call_of_a_lifecycle(void **state)
{
    struct totals t = {0};
    long n, calls = 0, last = 0;
    int stride =
        getenv("HCPIPE_FAULT_STRIDE") ? (int)strtol(getenv("HCPIPE_FAULT_STRIDE"), NULL, 10) : 1;

    (void)state;
    if (stride < 1)
        stride = 1;
    if (!getenv("HCPIPE_FAULT_DEBUG"))
        log_set_level((enum log_level)(LOG_ERROR + 1)); /* thousands of expected error lines */
    for (n = 1; n < 100000; n += stride) {
        calls = one_pass(n, &t);
        last = n;
        if (calls < n)
            break; /* the whole lifecycle made fewer calls: every one has been failed */
    }
    log_set_level(LOG_INFO);
    t.injected = fault_injected(FAULT_KINDS);
    print_message("fault: %ld passes (N = 1..%ld step %d), %ld faults injected (sql %ld, write "
                  "%ld, alloc %ld); accepted %ld: succeeded %ld, failed %ld, dead %ld; %ld "
                  "needed a restart\n",
                  t.passes, last, stride, t.injected, fault_injected(FAULT_SQL),
                  fault_injected(FAULT_WRITE), fault_injected(FAULT_ALLOC), t.accepted, t.succeeded,
                  t.failed, t.dead, t.restarts);
    assert_true(calls < last);               /* the walk reached the end of the lifecycle */
    assert_true(t.injected >= t.passes - 1); /* every pass but the last failed one call */
    assert_true(fault_injected(FAULT_SQL) > 0 && fault_injected(FAULT_WRITE) > 0 &&
                fault_injected(FAULT_ALLOC) > 0);
    assert_true(t.succeeded > 0 && t.accepted < t.passes);
    /* Regression: a claim whose read-back failed used to be committed anyway, leaving the job
     * `running` with no worker until a restart. One failed call must never strand a job. */
    assert_int_equal(t.restarts, 0);
}

/* ---- the group commit of events ---------------------------------------------------------- */

#define BATCH_N 4

struct event_caller {
    struct jobstore *js;
    const char *dedup, *key, *seq;
    int exempt; /* 1: this caller's calls are never counted nor failed */
    struct event_outcome o;
    int err;
    pthread_t th;
};

static const struct job_spec event_specs[] = {
    {.query = "accredited_by_state", .source = "s3://bkt/k.json", .as_of = "2026-08-31"},
    {.query = "facility_metrics", .source = "s3://bkt/k.json", .as_of = "2026-08-31"},
};

static void *event_caller_thread(void *arg)
{
    struct event_caller *c = arg;
    struct event_record ev = {.dedup_id = c->dedup,
                              .format = "eventbridge",
                              .bucket = "bkt",
                              .key = c->key,
                              .raw_key = c->key,
                              .source = "s3://bkt/k.json",
                              .sequencer = c->seq,
                              .size = -1};

    fault_exempt_thread(c->exempt);
    c->err = jobstore_event_record(c->js, &ev, event_specs, 2, 30000, &c->o);
    return NULL;
}

static void wait_batch_stats(struct jobstore *js, uint64_t taken, size_t queued)
{
    struct jobstore_batch_stats st;

    for (int i = 0; i < 20000; i++) {
        jobstore_batch_stats(js, &st);
        if (st.events >= taken && st.queued == queued)
            return;
        sleep_ms(1);
    }
    fail_msg("the group commit never got to %llu taken, %zu queued", (unsigned long long)taken,
             queued);
}

static size_t jobs_of(struct jobstore *js, const char *event_id, const struct event_outcome *o)
{
    struct job **jobs = NULL;
    size_t n = 0;

    assert_int_equal(jobstore_list_by_event(js, event_id, &jobs, &n), HC_OK);
    for (size_t i = 0; i < n; i++) {
        if (o && (i >= o->n_jobs || strcmp(jobs[i]->id, o->job_ids[i]) != 0))
            fail_msg("event %s: stored job %s is not the one its caller was given", event_id,
                     jobs[i]->id);
        job_free(jobs[i]);
    }
    free(jobs);
    return n;
}

/* One batch of BATCH_N events (a new one, a redelivery of a stored one, a new one with the same
 * object and sequencer as the first, another new one) with the Nth call of the batch failing.
 * Returns the calls the batch made. */
static long one_batch_pass(long n, long *ok_out)
{
    char run[300], db[400];
    struct event_caller base = {.dedup = "base", .key = "base.json", .seq = "01", .exempt = 1};
    struct event_caller lead = {.dedup = "lead", .key = "lead.json", .seq = "01", .exempt = 1};
    struct event_caller c[BATCH_N] = {
        {.dedup = "e1", .key = "k1.json", .seq = "0A"},
        {.dedup = "base", .key = "base.json", .seq = "01"},
        {.dedup = "e3", .key = "k1.json", .seq = "0A"},
        {.dedup = "e4", .key = "k4.json", .seq = "0B"},
    };
    uint64_t counts[JOB_CANCELLED + 1];
    size_t expected_jobs;
    struct jobstore *js = NULL;
    sqlite3 *blocker = NULL;
    long calls;
    int rows;

    fault_exempt_thread(1);
    snprintf(run, sizeof run, "%s/run", dir);
    assert_int_equal(run_cmd("rm -rf '%s'", run), 0);
    mkdir(run, 0755);
    snprintf(db, sizeof db, "%s/jobs.db", run);
    assert_int_equal(jobstore_open(db, &js), HC_OK);
    base.js = lead.js = js;
    event_caller_thread(&base);
    assert_int_equal(base.err, HC_OK);

    /* A leader blocked behind another connection's write lock, so the BATCH_N callers queue up,
     * in order, for one batch; the faults are armed for that batch alone. */
    assert_int_equal(sqlite3_open(db, &blocker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(pthread_create(&lead.th, NULL, event_caller_thread, &lead), 0);
    wait_batch_stats(js, 2, 0);
    for (int i = 0; i < BATCH_N; i++) {
        c[i].js = js;
        assert_int_equal(pthread_create(&c[i].th, NULL, event_caller_thread, &c[i]), 0);
        wait_batch_stats(js, 2, (size_t)i + 1);
    }
    fault_arm(n);
    assert_int_equal(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    pthread_join(lead.th, NULL);
    for (int i = 0; i < BATCH_N; i++)
        pthread_join(c[i].th, NULL);
    calls = fault_calls();
    fault_arm(0);
    sqlite3_close(blocker);
    assert_int_equal(lead.err, HC_OK);

    /* Every caller told HC_OK has its event and exactly the jobs it was given; every other
     * caller left nothing behind; and there is no other job. */
    expected_jobs = 4; /* base and lead */
    for (int i = 0; i < BATCH_N; i++) {
        struct event_caller *e = &c[i];

        if (e->err != HC_OK) {
            assert_int_equal(e->o.n_jobs, 0);
            assert_null(e->o.job_ids);
            continue;
        }
        (*ok_out)++;
        assert_int_equal(e->o.n_jobs, 2);
        if (jobs_of(js, e->o.event_id, &e->o) != 2)
            fail_msg("N=%ld: event %s acknowledged without its two jobs", n, e->dedup);
        if (i == 1 && (!e->o.duplicate || strcmp(e->o.event_id, base.o.event_id) != 0))
            fail_msg("N=%ld: the redelivery did not get the original event", n);
        if (i == 2 && c[0].err == HC_OK &&
            (!e->o.duplicate || strcmp(e->o.event_id, c[0].o.event_id) != 0))
            fail_msg("N=%ld: the same object and sequencer made a second event", n);
        if (!e->o.duplicate)
            expected_jobs += 2;
    }
    assert_int_equal(jobstore_count_by_state(js, counts), HC_OK);
    if (counts[JOB_QUEUED] != expected_jobs)
        fail_msg("N=%ld: %llu jobs in the store, %zu acknowledged", n,
                 (unsigned long long)counts[JOB_QUEUED], expected_jobs);
    for (int i = 0; i < BATCH_N; i++)
        free(c[i].o.job_ids);
    free(base.o.job_ids);
    free(lead.o.job_ids);
    jobstore_close(js);
    check_db(db, NULL, &rows);
    assert_int_equal((size_t)rows, expected_jobs);
    fault_exempt_thread(0);
    return calls;
}

static void fault_every_call_of_an_event_batch(void **state)
{
    long n, calls = 0, ok = 0;

    (void)state;
    if (!getenv("HCPIPE_FAULT_DEBUG"))
        log_set_level((enum log_level)(LOG_ERROR + 1));
    for (n = 1; n < 100000; n++) {
        calls = one_batch_pass(n, &ok);
        if (calls < n)
            break;
    }
    log_set_level(LOG_INFO);
    print_message("fault: event batch walked N = 1..%ld; %ld callers acknowledged\n", n, ok);
    assert_true(calls < n); /* the walk reached the end of the batch */
    assert_true(n > 20);    /* a batch of four events makes many fallible calls */
    assert_true(ok > 0);    /* the last pass (no fault) acknowledged all four */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fault_every_call_of_a_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(fault_every_call_of_an_event_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
