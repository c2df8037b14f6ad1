/*
 * Unit tests of server/jobstore.c: insert/get/list and the cursor, every state transition (and
 * the refused ones), claim atomicity across threads, recovery after a crash, schema migration,
 * and the API document. The clock and ids are pinned through sys_set() where a test needs it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/error.h"
#include "server/jobstore.h"
#include "server/log.h"
#include "server/sys.h"

/* ---- pinned clock and ids ----------------------------------------------------------------- */

static _Atomic int64_t fake_now = 1795780800000; /* 2026-11-27T12:00:00.000Z */
static _Atomic uint64_t fake_seq;

static int64_t fake_now_ms(void)
{
    return fake_now;
}

static int64_t fake_mono_ms(void)
{
    return fake_now;
}

static uint64_t fake_random(void)
{
    return 0;
}

/* Sequential UUID-shaped ids, so ordering by id is predictable. */
static void fake_uuid(char out[37])
{
    uint64_t n = ++fake_seq;

    snprintf(out, 37, "00000000-0000-4000-8000-%012llx", (unsigned long long)n);
}

static const struct sys_ops fake_ops = {fake_now_ms, fake_mono_ms, fake_random, fake_uuid};

struct fixture {
    char dir[64];
    char path[96];
    struct jobstore *js;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    /* tmpfs when there is one: the store fsyncs every commit, and the fault test commits a lot. */
    snprintf(fx->dir, sizeof fx->dir, "%s/hcpipe-jobstore-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/jobs.db", fx->dir);
    sys_set(&fake_ops);
    fake_now = 1795780800000;
    if (jobstore_open(fx->path, &fx->js) != HC_OK)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char p[128];

    jobstore_close(fx->js);
    snprintf(p, sizeof p, "%s/jobs.db", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/jobs.db-wal", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/jobs.db-shm", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/fault.db", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/fault.db-wal", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/fault.db-shm", fx->dir);
    unlink(p);
    rmdir(fx->dir);
    free(fx);
    sys_set(NULL);
    return 0;
}

static struct job *insert(struct jobstore *js, const char *query)
{
    struct job_spec spec = {.query = query, .engine = "local"};
    struct job *job = NULL;

    assert_int_equal(jobstore_insert(js, &spec, &job), HC_OK);
    assert_non_null(job);
    return job;
}

static enum job_state state_of(struct jobstore *js, const char *id)
{
    struct job *job = NULL;
    enum job_state s;

    assert_int_equal(jobstore_get(js, id, &job), HC_OK);
    s = job->state;
    job_free(job);
    return s;
}

/* Claims the next job and checks it is `id`. */
static struct job *claim_expect(struct jobstore *js, const char *id)
{
    struct job *job = NULL;

    assert_int_equal(jobstore_claim(js, fake_now, &job), HC_OK);
    assert_string_equal(job->id, id);
    assert_int_equal(job->state, JOB_RUNNING);
    return job;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void jobstore_insert_and_get_roundtrip(void **state)
{
    struct fixture *fx = *state;
    struct job_spec spec = {.query = "accredited_by_state",
                            .source = "s3://bucket/key.ndjson",
                            .as_of = "2026-01-02",
                            .scope = SCOPE_OBJECT,
                            .on_bad_record = BAD_RECORD_SKIP,
                            .timeout_s = 30,
                            .engine = "athena",
                            .event_id = "ev-1"};
    struct job *a = NULL, *b = NULL;

    assert_int_equal(jobstore_insert(fx->js, &spec, &a), HC_OK);
    assert_int_equal(jobstore_get(fx->js, a->id, &b), HC_OK);
    assert_string_equal(b->id, a->id);
    assert_string_equal(b->query, "accredited_by_state");
    assert_string_equal(b->source, "s3://bucket/key.ndjson");
    assert_string_equal(b->as_of, "2026-01-02");
    assert_int_equal(b->scope, SCOPE_OBJECT);
    assert_int_equal(b->on_bad_record, BAD_RECORD_SKIP);
    assert_int_equal(b->timeout_s, 30);
    assert_string_equal(b->engine, "athena");
    assert_string_equal(b->event_id, "ev-1");
    assert_int_equal(b->state, JOB_QUEUED);
    assert_int_equal(b->attempts, 0);
    assert_null(b->handle);
    assert_null(b->error);
    assert_int_equal(b->created_ms, fake_now);
    assert_int_equal(b->updated_ms, fake_now);
    assert_int_equal(b->started_ms, 0);
    assert_int_equal(b->finished_ms, 0);
    job_free(a);
    job_free(b);
    assert_int_equal(jobstore_get(fx->js, "00000000-0000-4000-8000-00000000ffff", &b),
                     HC_EJOBNOTFOUND);
    assert_null(b);
}

static void jobstore_insert_defaults_as_of_to_utc_date(void **state)
{
    struct fixture *fx = *state;
    struct job_spec spec = {.query = "q"};
    struct job *job = NULL;

    fake_now = 1798761599000; /* 2026-12-31T23:59:59Z */
    assert_int_equal(jobstore_insert(fx->js, &spec, &job), HC_OK);
    assert_string_equal(job->as_of, "2026-12-31");
    assert_string_equal(job->engine, "local");
    assert_null(job->source);
    assert_null(job->event_id);
    job_free(job);
    spec.query = NULL;
    assert_int_equal(jobstore_insert(fx->js, &spec, NULL), HC_EINVAL);
}

static void jobstore_to_json_document(void **state)
{
    struct fixture *fx = *state;
    struct job *job = insert(fx->js, "q"), *got = NULL;
    json_t *doc, *stats = json_pack("{s:i}", "rows_scanned", 7);
    char self[96];

    doc = job_to_json(job);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "queued");
    assert_string_equal(json_string_value(json_object_get(doc, "created_at")),
                        "2026-11-27T12:00:00.000Z");
    assert_true(json_is_null(json_object_get(doc, "started_at")));
    assert_true(json_is_null(json_object_get(doc, "error")));
    assert_true(json_is_null(json_object_get(doc, "source")));
    assert_null(json_object_get(doc, "links"));
    assert_string_equal(json_string_value(json_object_get(doc, "scope")), "dataset");
    assert_string_equal(json_string_value(json_object_get(doc, "on_bad_record")), "fail");
    assert_int_equal(json_integer_value(json_object_get(doc, "attempts")), 0);
    json_decref(doc);

    job_free(claim_expect(fx->js, job->id));
    fake_now += 1500;
    assert_int_equal(jobstore_succeed(fx->js, job->id, stats, 42), HC_OK);
    assert_int_equal(jobstore_get(fx->js, job->id, &got), HC_OK);
    doc = job_to_json(got);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(doc, "finished_at")),
                        "2026-11-27T12:00:01.500Z");
    assert_int_equal(json_integer_value(json_object_get(doc, "row_count")), 42);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "stats"), "rows_scanned")), 7);
    snprintf(self, sizeof self, "/jobs/%s/result.csv", job->id);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "links"), "result_csv")), self);
    json_decref(doc);
    json_decref(stats);
    job_free(job);
    job_free(got);
}

static void jobstore_list_pages_newest_first(void **state)
{
    struct fixture *fx = *state;
    char ids[25][37];
    struct job **jobs = NULL;
    size_t n = 0, seen = 0;
    char *cursor = NULL;
    struct job_filter f = {.state = -1, .limit = 10};

    for (int i = 0; i < 25; i++) {
        struct job *j = insert(fx->js, i % 2 ? "odd" : "even");

        memcpy(ids[i], j->id, 37);
        job_free(j);
        if (i % 3 == 0)
            fake_now += 1; /* some jobs share a creation time: the id breaks the tie */
    }
    do {
        char *next = NULL;

        f.cursor = cursor;
        assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_OK);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(jobs[i]->id, ids[24 - seen]);
            seen++;
            job_free(jobs[i]);
        }
        free(jobs);
        free(cursor);
        cursor = next;
        assert_true(n == 10 || cursor == NULL);
    } while (cursor);
    assert_int_equal(seen, 25);

    /* Filters: query and state. */
    f.cursor = NULL;
    f.query = "odd";
    f.limit = 1000;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &cursor), HC_OK);
    assert_int_equal(n, 12);
    assert_null(cursor);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(jobs[i]->query, "odd");
        job_free(jobs[i]);
    }
    free(jobs);
    job_free(claim_expect(fx->js, ids[0]));
    f.query = NULL;
    f.state = JOB_RUNNING;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &cursor), HC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0]->id, ids[0]);
    job_free(jobs[0]);
    free(jobs);
    f.state = JOB_DEAD;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &cursor), HC_OK);
    assert_int_equal(n, 0);
    free(jobs);
}

static void jobstore_list_rejects_bad_cursor_and_limit(void **state)
{
    struct fixture *fx = *state;
    struct job **jobs = NULL;
    size_t n = 0;
    char *next = NULL, *real;
    struct job_filter f = {.state = -1, .limit = 1};
    const char *bad[] = {"", "!!!!", "abc", "MTIzNDU", /* "12345": no colon */
                         "YWJjOjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMQ",
                         /* "abc:<uuid>": not a number */
                         "MTI6eHh4"}; /* "12:xxx": not an id */

    for (int i = 0; i < 3; i++)
        job_free(insert(fx->js, "q"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f.cursor = bad[i];
        assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_EVALIDATION);
        assert_null(jobs);
        assert_null(next);
    }
    f.cursor = NULL;
    f.limit = 0;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_EVALIDATION);
    f.limit = 1001;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_EVALIDATION);
    f.limit = 1;
    f.state = 99;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_EVALIDATION);

    /* A real cursor with one byte changed is refused or still well-formed, never a crash. */
    f.state = -1;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_OK);
    assert_non_null(next);
    job_free(jobs[0]);
    free(jobs);
    real = next;
    real[strlen(real) - 1] = '*';
    f.cursor = real;
    assert_int_equal(jobstore_list(fx->js, &f, &jobs, &n, &next), HC_EVALIDATION);
    free(real);
}

static void jobstore_claim_oldest_runnable(void **state)
{
    struct fixture *fx = *state;
    struct job *a = insert(fx->js, "q"), *b, *c = NULL;

    fake_now += 10;
    b = insert(fx->js, "q");
    assert_int_equal(jobstore_claim(fx->js, a->created_ms - 1, &c), HC_ENOTFOUND);
    assert_null(c);
    c = claim_expect(fx->js, a->id);
    assert_int_equal(c->attempts, 1);
    assert_int_equal(c->started_ms, fake_now);
    job_free(c);
    c = claim_expect(fx->js, b->id);
    job_free(c);
    assert_int_equal(jobstore_claim(fx->js, fake_now, &c), HC_ENOTFOUND);
    job_free(a);
    job_free(b);
}

static void jobstore_transitions_and_conflicts(void **state)
{
    struct fixture *fx = *state;
    struct job *j = insert(fx->js, "q"), *got = NULL;
    json_t *problem = hc_problem_new(HC_EENGINETRANSIENT, "try later");
    const char *missing = "00000000-0000-4000-8000-0000000fffff";

    /* Only a running job takes a handle, an outcome or mark_cancelled. */
    assert_int_equal(jobstore_set_handle(fx->js, j->id, "h"), HC_ECONFLICT);
    assert_int_equal(jobstore_succeed(fx->js, j->id, NULL, 0), HC_ECONFLICT);
    assert_int_equal(jobstore_fail(fx->js, j->id, problem, -1, 0), HC_ECONFLICT);
    assert_int_equal(jobstore_mark_cancelled(fx->js, j->id), HC_ECONFLICT);
    assert_int_equal(jobstore_retry(fx->js, j->id, NULL), HC_ECONFLICT);
    assert_int_equal(jobstore_set_handle(fx->js, missing, "h"), HC_EJOBNOTFOUND);
    assert_int_equal(jobstore_cancel(fx->js, missing, NULL), HC_EJOBNOTFOUND);
    assert_int_equal(jobstore_retry(fx->js, missing, NULL), HC_EJOBNOTFOUND);

    /* running -> retrying -> running -> failed -> (retry) queued. */
    job_free(claim_expect(fx->js, j->id));
    assert_int_equal(jobstore_set_handle(fx->js, j->id, "handle-1"), HC_OK);
    assert_int_equal(jobstore_fail(fx->js, j->id, problem, fake_now + 5000, 0), HC_OK);
    assert_int_equal(jobstore_get(fx->js, j->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_RETRYING);
    assert_int_equal(got->next_run_ms, fake_now + 5000);
    assert_int_equal(got->finished_ms, 0);
    assert_null(got->handle); /* the next attempt starts a new query */
    assert_string_equal(json_string_value(json_object_get(got->error, "detail")), "try later");
    job_free(got);
    assert_int_equal(jobstore_claim(fx->js, fake_now + 4999, &got), HC_ENOTFOUND);
    fake_now += 5000;
    got = claim_expect(fx->js, j->id);
    assert_int_equal(got->attempts, 2);
    job_free(got);
    assert_int_equal(jobstore_set_handle(fx->js, j->id, "handle-2"), HC_OK);
    assert_int_equal(jobstore_fail(fx->js, j->id, problem, -1, 0), HC_OK);
    assert_int_equal(jobstore_get(fx->js, j->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_FAILED);
    assert_string_equal(got->handle, "handle-2"); /* kept for diagnosis */
    assert_int_not_equal(got->finished_ms, 0);
    job_free(got);
    assert_int_equal(jobstore_cancel(fx->js, j->id, NULL), HC_ECONFLICT);
    assert_int_equal(jobstore_succeed(fx->js, j->id, NULL, 1), HC_ECONFLICT);
    assert_int_equal(jobstore_retry(fx->js, j->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_QUEUED);
    assert_int_equal(got->attempts, 0);
    assert_null(got->handle);
    assert_null(got->error);
    assert_int_equal(got->finished_ms, 0);
    job_free(got);

    /* running -> dead, replayable; succeeded is final. */
    job_free(claim_expect(fx->js, j->id));
    assert_int_equal(jobstore_fail(fx->js, j->id, problem, -1, 1), HC_OK);
    assert_int_equal(state_of(fx->js, j->id), JOB_DEAD);
    assert_int_equal(jobstore_retry(fx->js, j->id, NULL), HC_OK);
    job_free(claim_expect(fx->js, j->id));
    assert_int_equal(jobstore_succeed(fx->js, j->id, NULL, 3), HC_OK);
    assert_int_equal(state_of(fx->js, j->id), JOB_SUCCEEDED);
    assert_int_equal(jobstore_retry(fx->js, j->id, NULL), HC_ECONFLICT);
    assert_int_equal(jobstore_cancel(fx->js, j->id, NULL), HC_ECONFLICT);
    assert_int_equal(jobstore_fail(fx->js, j->id, problem, -1, 0), HC_ECONFLICT);
    json_decref(problem);
    job_free(j);
}

static void jobstore_cancel_queued_and_running(void **state)
{
    struct fixture *fx = *state;
    struct job *q = insert(fx->js, "q"), *r = insert(fx->js, "q"), *got = NULL;

    /* A queued job is cancelled at once and never claimed. */
    assert_int_equal(jobstore_cancel(fx->js, q->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_CANCELLED);
    assert_int_equal(got->finished_ms, fake_now);
    job_free(got);
    got = claim_expect(fx->js, r->id);
    job_free(got);
    /* A running job is flagged; the worker finishes it. */
    assert_int_equal(jobstore_cancel(fx->js, r->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_RUNNING);
    assert_int_equal(got->cancel_requested, 1);
    job_free(got);
    assert_int_equal(jobstore_cancel(fx->js, r->id, NULL), HC_OK); /* idempotent */
    assert_int_equal(jobstore_mark_cancelled(fx->js, r->id), HC_OK);
    assert_int_equal(state_of(fx->js, r->id), JOB_CANCELLED);
    assert_int_equal(jobstore_cancel(fx->js, r->id, NULL), HC_ECONFLICT);
    assert_int_equal(jobstore_mark_cancelled(fx->js, r->id), HC_ECONFLICT);
    assert_int_equal(jobstore_claim(fx->js, fake_now, &got), HC_ENOTFOUND);
    job_free(q);
    job_free(r);
}

static void jobstore_recover_after_crash_keeps_handle(void **state)
{
    struct fixture *fx = *state;
    struct job *a = insert(fx->js, "q"), *b = insert(fx->js, "q"), *got = NULL;
    uint64_t counts[JOB_CANCELLED + 1];
    int n = -1;

    job_free(claim_expect(fx->js, a->id));
    assert_int_equal(jobstore_set_handle(fx->js, a->id, "athena-qe-1"), HC_OK);
    /* "Crash": close without finishing, reopen. */
    jobstore_close(fx->js);
    fx->js = NULL;
    assert_int_equal(jobstore_open(fx->path, &fx->js), HC_OK);
    assert_int_equal(state_of(fx->js, a->id), JOB_RUNNING);
    assert_int_equal(jobstore_recover(fx->js, &n), HC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(jobstore_count_by_state(fx->js, counts), HC_OK);
    assert_int_equal(counts[JOB_QUEUED], 2);
    assert_int_equal(counts[JOB_RUNNING], 0);
    /* The recovered job runs first and re-attaches to its handle. */
    got = claim_expect(fx->js, a->id);
    assert_string_equal(got->handle, "athena-qe-1");
    assert_int_equal(got->attempts, 2);
    job_free(got);
    assert_int_equal(jobstore_recover(fx->js, &n), HC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(jobstore_recover(fx->js, &n), HC_OK);
    assert_int_equal(n, 0);
    /* Cancelling a recovered job (it has a handle) flags it for a worker instead. */
    assert_int_equal(jobstore_cancel(fx->js, a->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_QUEUED);
    assert_int_equal(got->cancel_requested, 1);
    job_free(got);
    got = claim_expect(fx->js, a->id);
    assert_int_equal(got->cancel_requested, 1);
    job_free(got);
    assert_int_equal(jobstore_mark_cancelled(fx->js, a->id), HC_OK);
    job_free(a);
    job_free(b);
}

static void jobstore_reopen_is_idempotent(void **state)
{
    struct fixture *fx = *state;
    struct job *a = insert(fx->js, "q"), *got = NULL;

    for (int i = 0; i < 3; i++) {
        jobstore_close(fx->js);
        fx->js = NULL;
        assert_int_equal(jobstore_open(fx->path, &fx->js), HC_OK);
    }
    assert_int_equal(jobstore_get(fx->js, a->id, &got), HC_OK);
    assert_string_equal(got->query, "q");
    job_free(got);
    job_free(a);
}

static void sql_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static void jobstore_migrates_v1_database(void **state)
{
    struct fixture *fx = *state;
    char path[128];
    sqlite3 *db = NULL;
    struct jobstore *js = NULL;
    struct job *got = NULL, **jobs = NULL;
    struct job_spec spec = {.query = "q", .event_id = "ev-9"};
    size_t n = 0;

    /* A version-1 database made by hand: no event_id column. */
    snprintf(path, sizeof path, "%s/v1.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sql_exec(db, "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, query TEXT NOT NULL,"
                 " source TEXT, as_of TEXT NOT NULL, scope TEXT NOT NULL, on_bad_record TEXT"
                 " NOT NULL, timeout_s INTEGER NOT NULL DEFAULT 0, engine TEXT NOT NULL, state"
                 " TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, handle TEXT,"
                 " cancel_requested INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
                 " updated_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0,"
                 " finished_ms INTEGER NOT NULL DEFAULT 0, next_run_ms INTEGER NOT NULL DEFAULT"
                 " 0, error TEXT, stats TEXT, row_count INTEGER NOT NULL DEFAULT 0);"
                 "INSERT INTO jobs (id, query, as_of, scope, on_bad_record, engine, state,"
                 " created_ms, updated_ms) VALUES ('00000000-0000-4000-8000-0000000000aa', 'old',"
                 " '2025-01-01', 'dataset', 'fail', 'local', 'queued', 1, 1);"
                 "PRAGMA user_version = 1;");
    sqlite3_close(db);

    assert_int_equal(jobstore_open(path, &js), HC_OK);
    assert_int_equal(jobstore_get(js, "00000000-0000-4000-8000-0000000000aa", &got), HC_OK);
    assert_string_equal(got->query, "old");
    assert_null(got->event_id);
    job_free(got);
    assert_int_equal(jobstore_insert(js, &spec, &got), HC_OK);
    job_free(got);
    assert_int_equal(jobstore_list_by_event(js, "ev-9", &jobs, &n), HC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0]->event_id, "ev-9");
    job_free(jobs[0]);
    free(jobs);
    jobstore_close(js);

    /* The schema is now the latest; a database from a newer program is refused. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sql_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    js = NULL;
    assert_int_equal(jobstore_open(path, &js), HC_EDB);
    assert_null(js);
    unlink(path);
    snprintf(path, sizeof path, "%s/v1.db-wal", fx->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/v1.db-shm", fx->dir);
    unlink(path);
}

/* Several threads claim from many jobs: every job is claimed exactly once. */
#define CLAIM_JOBS    200
#define CLAIM_THREADS 4

struct claimer {
    struct jobstore *js;
    char (*ids)[37];
    _Atomic int *claimed;
    int count;  /* jobs this thread claimed */
    int errors; /* claims that failed with another error than "none runnable" */
};

static void *claim_thread(void *arg)
{
    struct claimer *c = arg;
    struct job *job = NULL;

    for (;;) {
        int err = jobstore_claim(c->js, fake_now, &job);

        if (err == HC_ENOTFOUND)
            break;
        if (err != HC_OK) {
            c->errors++;
            continue;
        }
        for (int i = 0; i < CLAIM_JOBS; i++)
            if (strcmp(c->ids[i], job->id) == 0)
                atomic_fetch_add(&c->claimed[i], 1);
        c->count++;
        job_free(job);
    }
    return NULL;
}

/* Claims every job from CLAIM_THREADS threads; thread i uses stores[i % nstores]. */
static void claim_all(struct jobstore **stores, int nstores)
{
    static char ids[CLAIM_JOBS][37];
    static _Atomic int claimed[CLAIM_JOBS];
    struct claimer c[CLAIM_THREADS];
    pthread_t t[CLAIM_THREADS];
    int total = 0;

    for (int i = 0; i < CLAIM_JOBS; i++) {
        struct job *j = insert(stores[0], "q");

        memcpy(ids[i], j->id, 37);
        job_free(j);
        claimed[i] = 0;
    }
    for (int i = 0; i < CLAIM_THREADS; i++) {
        c[i] = (struct claimer){stores[i % nstores], ids, claimed, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, claim_thread, &c[i]), 0);
    }
    for (int i = 0; i < CLAIM_THREADS; i++) {
        pthread_join(t[i], NULL);
        total += c[i].count;
        assert_int_equal(c[i].errors, 0);
    }
    assert_int_equal(total, CLAIM_JOBS);
    for (int i = 0; i < CLAIM_JOBS; i++)
        assert_int_equal(claimed[i], 1);
}

static void jobstore_claim_is_atomic_across_threads(void **state)
{
    struct fixture *fx = *state;

    claim_all(&fx->js, 1);
}

/* Two connections to one file, as two processes would have: still each job exactly once. */
static void jobstore_claim_is_atomic_across_connections(void **state)
{
    struct fixture *fx = *state;
    struct jobstore *stores[2] = {fx->js, NULL};

    assert_int_equal(jobstore_open(fx->path, &stores[1]), HC_OK);
    claim_all(stores, 2);
    jobstore_close(stores[1]);
}

/* ---- fault injection: SQLite allocation number `fail_at` fails, once ----------------------- */

static sqlite3_mem_methods real_mem;
static _Atomic long alloc_count, fail_at;

static int alloc_fails(void)
{
    return ++alloc_count == fail_at;
}

static void *fi_malloc(int n)
{
    return alloc_fails() ? NULL : real_mem.xMalloc(n);
}

static void *fi_realloc(void *p, int n)
{
    return alloc_fails() ? NULL : real_mem.xRealloc(p, n);
}

static void fi_free(void *p)
{
    real_mem.xFree(p);
}

static int fi_size(void *p)
{
    return real_mem.xSize(p);
}

static int fi_roundup(int n)
{
    return real_mem.xRoundup(n);
}

static int fi_init(void *app)
{
    return real_mem.xInit(app);
}

static void fi_shutdown(void *app)
{
    real_mem.xShutdown(app);
}

/* One pass over every store operation; each may fail, none may crash or leak. */
static void store_workout(const char *path)
{
    struct jobstore *js = NULL;
    struct job_spec spec = {.query = "q", .event_id = "ev"};
    struct job *a = NULL, *b = NULL, *c = NULL, **jobs = NULL;
    struct job_filter f = {.state = -1, .limit = 2};
    uint64_t counts[JOB_CANCELLED + 1];
    json_t *problem = hc_problem_new(HC_EIO, "disk");
    char *next = NULL;
    size_t n = 0;

    if (jobstore_open(path, &js) != HC_OK)
        goto out;
    jobstore_insert(js, &spec, &a);
    jobstore_insert(js, &spec, &b);
    if (jobstore_claim(js, fake_now, &c) == HC_OK) {
        jobstore_set_handle(js, c->id, "h");
        jobstore_fail(js, c->id, problem, fake_now, 0);
        job_free(c);
        c = NULL;
    }
    if (jobstore_claim(js, fake_now, &c) == HC_OK) {
        jobstore_succeed(js, c->id, problem, 3);
        jobstore_retry(js, c->id, NULL);
    }
    if (b) {
        job_free(c);
        c = NULL;
        jobstore_cancel(js, b->id, &c);
    }
    if (jobstore_list(js, &f, &jobs, &n, &next) == HC_OK) {
        for (size_t i = 0; i < n; i++)
            job_free(jobs[i]);
        free(jobs);
        f.cursor = next;
        jobs = NULL;
        if (next && jobstore_list(js, &f, &jobs, &n, &next) == HC_OK) {
            for (size_t i = 0; i < n; i++)
                job_free(jobs[i]);
            free(jobs);
            free(next);
        }
        free((void *)(uintptr_t)f.cursor);
    }
    jobs = NULL;
    if (jobstore_list_by_event(js, "ev", &jobs, &n) == HC_OK) {
        for (size_t i = 0; i < n; i++)
            job_free(jobs[i]);
        free(jobs);
    }
    jobstore_recover(js, NULL);
    jobstore_count_by_state(js, counts);
out:
    jobstore_close(js);
    job_free(a);
    job_free(b);
    job_free(c);
    json_decref(problem);
}

static void jobstore_survives_each_allocation_failing(void **state)
{
    struct fixture *fx = *state;
    sqlite3_mem_methods fi = {fi_malloc,  fi_free, fi_realloc,  fi_size,
                              fi_roundup, fi_init, fi_shutdown, NULL};
    struct jobstore *js = NULL;
    uint64_t counts[JOB_CANCELLED + 1];
    long n;
    char path[128];

    jobstore_close(fx->js);
    fx->js = NULL;
    assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem), SQLITE_OK);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &fi), SQLITE_OK);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
    snprintf(path, sizeof path, "%s/fault.db", fx->dir);
    /* Fail allocation 1, 2, ... 200, then every 29th, until a whole pass makes fewer
     * allocations than that (a pass makes about 5000; every one of them would take minutes). */
    log_set_level((enum log_level)(LOG_ERROR + 1)); /* thousands of expected error lines */
    for (n = 1; n < 20000; n += n < 200 ? 1 : 29) {
        alloc_count = 0;
        fail_at = n;
        store_workout(path);
        if (alloc_count < n)
            break;
    }
    fail_at = 0;
    log_set_level(LOG_INFO);
    assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &real_mem), SQLITE_OK);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
    assert_true(n > 50 && n < 20000);

    /* The database is still sound: it opens, and every job is in a real state. */
    assert_int_equal(jobstore_open(path, &js), HC_OK);
    assert_int_equal(jobstore_count_by_state(js, counts), HC_OK);
    assert_true(counts[JOB_QUEUED] + counts[JOB_RUNNING] + counts[JOB_RETRYING] +
                    counts[JOB_SUCCEEDED] + counts[JOB_CANCELLED] >
                0);
    jobstore_close(js);
    assert_int_equal(jobstore_open(fx->path, &fx->js), HC_OK);
}

/* ---- events ------------------------------------------------------------------------------- */

static const struct job_spec event_specs[] = {
    {.query = "accredited_by_state", .source = "s3://b/k.json", .as_of = "2024-06-03"},
    {.query = "facility_metrics", .source = "s3://b/k.json", .as_of = "2024-06-03"},
};

static struct event_record event_rec(const char *dedup, int deleted, const char *key,
                                     const char *seq, const char *etag)
{
    return (struct event_record){.dedup_id = dedup,
                                 .format = "eventbridge",
                                 .deleted = deleted,
                                 .bucket = "b",
                                 .key = key,
                                 .raw_key = key,
                                 .source = "s3://b/k.json",
                                 .sequencer = seq,
                                 .etag = etag,
                                 .time = "2024-06-03T09:15:42Z",
                                 .size = -1};
}

/* Records an event with the Created specs (or one delete spec) and returns the outcome. */
static struct event_outcome record(struct jobstore *js, const struct event_record *ev)
{
    static const struct job_spec del = {.query = "delete_object", .source = "s3://b/k.json"};
    struct event_outcome o;

    assert_int_equal(jobstore_event_record(js, ev, ev->deleted ? &del : event_specs,
                                           ev->deleted ? 1 : 2, 1000, &o),
                     HC_OK);
    return o;
}

static size_t jobs_of_event(struct jobstore *js, const char *event_id)
{
    struct job **jobs = NULL;
    size_t n = 0;

    assert_int_equal(jobstore_list_by_event(js, event_id, &jobs, &n), HC_OK);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(jobs[i]->event_id, event_id);
        job_free(jobs[i]);
    }
    free(jobs);
    return n;
}

static void jobstore_event_dedup_on_id_and_sequencer(void **state)
{
    struct fixture *fx = *state;
    struct event_record ev = event_rec("eb-1", 0, "k.json", "00665D8A2E3B1C4F27", "e1");
    struct event_outcome a = record(fx->js, &ev), b, c, d;
    struct job *job = NULL;

    assert_false(a.duplicate);
    assert_false(a.superseded);
    assert_int_equal(a.n_jobs, 2);
    assert_int_equal(jobs_of_event(fx->js, a.event_id), 2);
    assert_int_equal(jobstore_get(fx->js, a.job_ids[0], &job), HC_OK);
    assert_string_equal(job->query, "accredited_by_state");
    assert_string_equal(job->as_of, "2024-06-03");
    assert_int_equal(job->state, JOB_QUEUED);
    job_free(job);

    /* The same delivery again: the original event and job ids, nothing new. */
    b = record(fx->js, &ev);
    assert_true(b.duplicate);
    assert_string_equal(b.event_id, a.event_id);
    assert_int_equal(b.n_jobs, 2);
    assert_memory_equal(b.job_ids, a.job_ids, sizeof a.job_ids[0] * 2);

    /* The same S3 event through another path (another dedup id, same sequencer). */
    ev.dedup_id = "C3D13FE58DE4C810/k.json";
    c = record(fx->js, &ev);
    assert_true(c.duplicate);
    assert_string_equal(c.event_id, a.event_id);
    assert_memory_equal(c.job_ids, a.job_ids, sizeof a.job_ids[0] * 2);

    /* Same sequencer, other key: a new event. */
    ev = event_rec("eb-2", 0, "other.json", "00665D8A2E3B1C4F27", "e1");
    d = record(fx->js, &ev);
    assert_false(d.duplicate);
    assert_int_equal(d.n_jobs, 2);
    assert_string_not_equal(d.job_ids[0], a.job_ids[0]);
    assert_int_equal(jobs_of_event(fx->js, a.event_id), 2);
    free(a.job_ids);
    free(b.job_ids);
    free(c.job_ids);
    free(d.job_ids);
}

static void jobstore_event_older_sequencer_does_not_undo_newer(void **state)
{
    struct fixture *fx = *state;
    struct event_record ev;
    struct event_outcome del, old_created, created, old_del, again;

    /* A newer Deleted first, then an older Created: the Created makes nothing. */
    ev = event_rec("del-1", 1, "k.json", "00665DA1B476E46300", NULL);
    del = record(fx->js, &ev);
    assert_false(del.superseded);
    assert_int_equal(del.n_jobs, 1);
    ev = event_rec("cre-1", 0, "k.json", "00665D8A2E3B1C4F27", "e1");
    old_created = record(fx->js, &ev);
    assert_true(old_created.superseded);
    assert_false(old_created.duplicate);
    assert_string_equal(old_created.superseded_by, del.event_id);
    assert_int_equal(old_created.n_jobs, 0);
    assert_int_equal(jobs_of_event(fx->js, old_created.event_id), 0);

    /* Its redelivery is a duplicate that still says superseded. */
    again = record(fx->js, &ev);
    assert_true(again.duplicate);
    assert_true(again.superseded);
    assert_string_equal(again.event_id, old_created.event_id);

    /* A newer Created applies; then an older Deleted deletes nothing. Sequencers of different
     * lengths compare right-padded with '0': "00665DA1B476E463001" > "00665DA1B476E46300". */
    ev = event_rec("cre-2", 0, "k.json", "00665DA1B476E463001", "e2");
    created = record(fx->js, &ev);
    assert_false(created.superseded);
    assert_int_equal(created.n_jobs, 2);
    ev = event_rec("del-2", 1, "k.json", "00665DA1B476E462", NULL);
    old_del = record(fx->js, &ev);
    assert_true(old_del.superseded);
    assert_string_equal(old_del.superseded_by, created.event_id);
    assert_int_equal(old_del.n_jobs, 0);
    /* "...E463" pads to the same sequencer as "...E46300": the first Deleted again. */
    ev = event_rec("del-3", 1, "k.json", "00665DA1B476E463", NULL);
    free(again.job_ids);
    again = record(fx->js, &ev);
    assert_true(again.duplicate);
    assert_string_equal(again.event_id, del.event_id);

    /* Another object is not affected by this one's order. */
    ev = event_rec("cre-3", 0, "elsewhere.json", "0001", "e3");
    free(again.job_ids);
    again = record(fx->js, &ev);
    assert_false(again.superseded);
    assert_int_equal(again.n_jobs, 2);
    free(del.job_ids);
    free(old_created.job_ids);
    free(created.job_ids);
    free(old_del.job_ids);
    free(again.job_ids);
}

static void jobstore_event_etag_dedups_latest_without_sequencer(void **state)
{
    struct fixture *fx = *state;
    struct event_record ev = event_rec("r-1/k.json", 0, "k.json", NULL, "e1");
    struct event_outcome a = record(fx->js, &ev), b, del, c;

    assert_false(a.duplicate);
    ev.dedup_id = "r-2/k.json";
    b = record(fx->js, &ev);
    assert_true(b.duplicate);
    assert_string_equal(b.event_id, a.event_id);
    ev = event_rec("r-3/k.json", 1, "k.json", NULL, NULL);
    del = record(fx->js, &ev);
    assert_false(del.duplicate);
    assert_int_equal(del.n_jobs, 1);
    /* Uploaded again with the same content after the delete: a new event, new jobs. */
    ev = event_rec("r-4/k.json", 0, "k.json", NULL, "e1");
    c = record(fx->js, &ev);
    assert_false(c.duplicate);
    assert_int_equal(c.n_jobs, 2);
    assert_string_not_equal(c.event_id, a.event_id);
    free(a.job_ids);
    free(b.job_ids);
    free(del.job_ids);
    free(c.job_ids);
}

static void jobstore_event_get_document(void **state)
{
    struct fixture *fx = *state;
    struct event_record ev =
        event_rec("0b6ef3c3-3f43-9b2e-7c1a-5c7a4d2f1e90", 0, "k.json", "00665D8A2E3B1C4F27", "e1");
    struct event_outcome o = record(fx->js, &ev);
    json_t *doc = NULL, *by_dedup = NULL;

    assert_int_equal(jobstore_event_get(fx->js, o.event_id, &doc), HC_OK);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), o.event_id);
    assert_string_equal(json_string_value(json_object_get(doc, "dedup_id")), ev.dedup_id);
    assert_string_equal(json_string_value(json_object_get(doc, "kind")), "created");
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "applied");
    assert_string_equal(json_string_value(json_object_get(doc, "sequencer")), ev.sequencer);
    assert_string_equal(json_string_value(json_object_get(doc, "source")), "s3://b/k.json");
    assert_true(json_is_null(json_object_get(doc, "size")));
    assert_int_equal(json_array_size(json_object_get(doc, "job_ids")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "job_ids"), 1)),
                        o.job_ids[1]);
    assert_int_equal(jobstore_event_get(fx->js, ev.dedup_id, &by_dedup), HC_OK);
    assert_true(json_equal(doc, by_dedup));
    json_decref(doc);
    json_decref(by_dedup);
    assert_int_equal(jobstore_event_get(fx->js, "nope", &doc), HC_ENOTFOUND);
    assert_null(doc);
    free(o.job_ids);
}

struct race {
    struct jobstore *js;
    struct event_outcome o;
    int err;
};

static void *record_thread(void *arg)
{
    struct race *r = arg;
    struct event_record ev = event_rec("same", 0, "k.json", "0A", "e1");

    r->err = jobstore_event_record(r->js, &ev, event_specs, 1, 5000, &r->o);
    return NULL;
}

static void jobstore_event_concurrent_duplicates_make_one_job(void **state)
{
    struct fixture *fx = *state;
    struct jobstore *second = NULL;
    struct race races[8];
    pthread_t th[8];
    int fresh = 0;

    /* Half the threads on another connection to the same file, like a second process. */
    assert_int_equal(jobstore_open(fx->path, &second), HC_OK);
    for (int i = 0; i < 8; i++) {
        races[i] = (struct race){.js = i % 2 ? second : fx->js};
        pthread_create(&th[i], NULL, record_thread, &races[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(races[i].err, HC_OK);
        fresh += !races[i].o.duplicate;
        assert_int_equal(races[i].o.n_jobs, 1);
        assert_string_equal(races[i].o.event_id, races[0].o.event_id);
        assert_string_equal(races[i].o.job_ids[0], races[0].o.job_ids[0]);
    }
    assert_int_equal(fresh, 1);
    assert_int_equal(jobs_of_event(fx->js, races[0].o.event_id), 1);
    for (int i = 0; i < 8; i++)
        free(races[i].o.job_ids);
    jobstore_close(second);
}

static void jobstore_event_busy_store_is_unavailable(void **state)
{
    struct fixture *fx = *state;
    struct event_record ev = event_rec("busy", 0, "k.json", "01", "e1");
    struct event_outcome o;
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(jobstore_event_record(fx->js, &ev, event_specs, 2, 100, &o), HC_EUNAVAILABLE);
    assert_int_equal(o.n_jobs, 0);
    assert_null(o.job_ids);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    /* Nothing half-written: the retry records it normally. */
    o = record(fx->js, &ev);
    assert_false(o.duplicate);
    assert_int_equal(o.n_jobs, 2);
    free(o.job_ids);
}

/* ---- group commit of events ---------------------------------------------------------------- */

#define BATCH_THREADS 12
#define BATCH_EVENTS  30 /* per kind and thread */

struct batch_worker {
    struct jobstore *js;
    int t;
    struct event_outcome own[BATCH_EVENTS];    /* distinct to this thread */
    struct event_outcome by_id[BATCH_EVENTS];  /* the same dedup id from every thread */
    struct event_outcome by_seq[BATCH_EVENTS]; /* own dedup id, same (bucket, key, sequencer) */
    int errs;
};

static void *batch_thread(void *arg)
{
    struct batch_worker *w = arg;
    char d[64], k[64];

    for (int i = 0; i < BATCH_EVENTS; i++) {
        struct event_record ev;

        snprintf(d, sizeof d, "own-%d-%d", w->t, i);
        snprintf(k, sizeof k, "own-%d-%d.json", w->t, i);
        ev = event_rec(d, 0, k, "01", "e1");
        w->errs += jobstore_event_record(w->js, &ev, event_specs, 2, 10000, &w->own[i]) != HC_OK;
        snprintf(d, sizeof d, "shared-%d", i);
        snprintf(k, sizeof k, "shared-%d.json", i);
        ev = event_rec(d, 0, k, "02", "e1");
        w->errs += jobstore_event_record(w->js, &ev, event_specs, 2, 10000, &w->by_id[i]) != HC_OK;
        snprintf(d, sizeof d, "seq-%d-%d", w->t, i);
        snprintf(k, sizeof k, "seq-%d.json", i);
        ev = event_rec(d, 0, k, "03", "e1");
        w->errs += jobstore_event_record(w->js, &ev, event_specs, 2, 10000, &w->by_seq[i]) != HC_OK;
    }
    return NULL;
}

/* Every thread of a group of outcomes of one event got the original's ids; one was new. */
static void assert_one_event(struct jobstore *js, struct batch_worker *w, int i,
                             struct event_outcome *(*pick)(struct batch_worker *, int))
{
    struct event_outcome *first = pick(&w[0], i);
    int fresh = 0;

    for (int t = 0; t < BATCH_THREADS; t++) {
        struct event_outcome *o = pick(&w[t], i);

        fresh += !o->duplicate;
        assert_false(o->superseded);
        assert_string_equal(o->event_id, first->event_id);
        assert_int_equal(o->n_jobs, 2);
        assert_string_equal(o->job_ids[0], first->job_ids[0]);
        assert_string_equal(o->job_ids[1], first->job_ids[1]);
    }
    assert_int_equal(fresh, 1);
    assert_int_equal(jobs_of_event(js, first->event_id), 2);
}

static struct event_outcome *pick_by_id(struct batch_worker *w, int i)
{
    return &w->by_id[i];
}

static struct event_outcome *pick_by_seq(struct batch_worker *w, int i)
{
    return &w->by_seq[i];
}

static void jobstore_event_batch_threads_get_exact_ids(void **state)
{
    struct fixture *fx = *state;
    struct batch_worker *w = calloc(BATCH_THREADS, sizeof *w);
    pthread_t th[BATCH_THREADS];
    struct jobstore_batch_stats stats;
    uint64_t counts[JOB_CANCELLED + 1];

    assert_non_null(w);
    for (int t = 0; t < BATCH_THREADS; t++) {
        w[t] = (struct batch_worker){.js = fx->js, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, batch_thread, &w[t]), 0);
    }
    for (int t = 0; t < BATCH_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < BATCH_THREADS; t++)
        assert_int_equal(w[t].errs, 0);
    /* Distinct events: new, two jobs each, all ids different. */
    for (int t = 0; t < BATCH_THREADS; t++)
        for (int i = 0; i < BATCH_EVENTS; i++) {
            assert_false(w[t].own[i].duplicate);
            assert_int_equal(w[t].own[i].n_jobs, 2);
            assert_int_equal(jobs_of_event(fx->js, w[t].own[i].event_id), 2);
            if (t > 0)
                assert_string_not_equal(w[t].own[i].event_id, w[t - 1].own[i].event_id);
        }
    /* The same event from every thread at once (same dedup id, or another dedup id with the same
     * bucket, key and sequencer): one event, its two jobs, and every caller got their ids. */
    for (int i = 0; i < BATCH_EVENTS; i++) {
        assert_one_event(fx->js, w, i, pick_by_id);
        assert_one_event(fx->js, w, i, pick_by_seq);
    }
    /* Exactly one job per (distinct event, spec), nothing more. */
    assert_int_equal(jobstore_count_by_state(fx->js, counts), HC_OK);
    assert_int_equal(counts[JOB_QUEUED], 2 * (BATCH_THREADS * BATCH_EVENTS + 2 * BATCH_EVENTS));
    /* And they were group-committed: fewer transactions than events. */
    jobstore_batch_stats(fx->js, &stats);
    assert_int_equal(stats.events, 3 * BATCH_THREADS * BATCH_EVENTS);
    assert_true(stats.batches < stats.events);
    assert_true(stats.largest > 1);
    assert_int_equal(stats.failed_batches, 0);
    assert_int_equal(stats.queued, 0);
    for (int t = 0; t < BATCH_THREADS; t++)
        for (int i = 0; i < BATCH_EVENTS; i++) {
            free(w[t].own[i].job_ids);
            free(w[t].by_id[i].job_ids);
            free(w[t].by_seq[i].job_ids);
        }
    free(w);
}

struct waiter {
    struct jobstore *js;
    const char *dedup;
    const char *key;
    int64_t wait_ms;
    struct event_outcome o;
    int err;
    pthread_t th;
};

static void *waiter_thread(void *arg)
{
    struct waiter *w = arg;
    struct event_record ev = event_rec(w->dedup, 0, w->key, NULL, NULL);

    w->err = jobstore_event_record(w->js, &ev, event_specs, 2, w->wait_ms, &w->o);
    return NULL;
}

/* Polls the store's batch counters until `done` says so (at most ~10 s). */
static void wait_stats(struct jobstore *js,
                       int (*done)(const struct jobstore_batch_stats *, size_t), size_t arg)
{
    struct jobstore_batch_stats st;

    for (int i = 0; i < 10000; i++) {
        jobstore_batch_stats(js, &st);
        if (done(&st, arg))
            return;
        usleep(1000);
    }
    fail_msg("the batch counters never got there");
}

static int taken_at_least(const struct jobstore_batch_stats *st, size_t n)
{
    return st->events >= n;
}

static int queued_exactly(const struct jobstore_batch_stats *st, size_t n)
{
    return st->queued == n;
}

/* Starts a caller that becomes the leader of a batch of one and blocks in BEGIN IMMEDIATE behind
 * the write lock `db` holds, so the callers started next all queue up for the following batch. */
static void block_leader(struct fixture *fx, sqlite3 **db, struct waiter *leader)
{
    assert_int_equal(sqlite3_open(fx->path, db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(*db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    *leader =
        (struct waiter){.js = fx->js, .dedup = "leader", .key = "leader.json", .wait_ms = 20000};
    assert_int_equal(pthread_create(&leader->th, NULL, waiter_thread, leader), 0);
    wait_stats(fx->js, taken_at_least, 1);
}

static int event_exists(struct jobstore *js, const char *dedup)
{
    json_t *doc = NULL;
    int err = jobstore_event_get(js, dedup, &doc);

    json_decref(doc);
    assert_true(err == HC_OK || err == HC_ENOTFOUND);
    return err == HC_OK;
}

#define FAILING_BATCH 5

static void jobstore_event_batch_commit_failure_fails_every_waiter(void **state)
{
    struct fixture *fx = *state;
    struct waiter leader, w[FAILING_BATCH];
    struct jobstore_batch_stats stats;
    uint64_t counts[JOB_CANCELLED + 1];
    char names[FAILING_BATCH][2][32];
    sqlite3 *db = NULL;

    /* A deferred foreign key that the event "poison" violates: its batch's COMMIT fails. */
    block_leader(fx, &db, &leader);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE poison_parent (id INTEGER PRIMARY KEY);"
                                  "CREATE TABLE poison (p INTEGER REFERENCES poison_parent (id)"
                                  "  DEFERRABLE INITIALLY DEFERRED);"
                                  "CREATE TRIGGER poison_commit AFTER INSERT ON events"
                                  "  WHEN NEW.dedup_id = 'poison'"
                                  "  BEGIN INSERT INTO poison VALUES (42); END;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < FAILING_BATCH; i++) {
        snprintf(names[i][0], 32, i == 2 ? "poison" : "fine-%d", i);
        snprintf(names[i][1], 32, "k-%d.json", i);
        w[i] = (struct waiter){
            .js = fx->js, .dedup = names[i][0], .key = names[i][1], .wait_ms = 20000};
        assert_int_equal(pthread_create(&w[i].th, NULL, waiter_thread, &w[i]), 0);
    }
    wait_stats(fx->js, queued_exactly, FAILING_BATCH);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    pthread_join(leader.th, NULL);
    for (int i = 0; i < FAILING_BATCH; i++)
        pthread_join(w[i].th, NULL);

    /* The leader's own batch committed; the next one (all five) failed as a whole. */
    assert_int_equal(leader.err, HC_OK);
    assert_int_equal(leader.o.n_jobs, 2);
    jobstore_batch_stats(fx->js, &stats);
    assert_int_equal(stats.batches, 2);
    assert_int_equal(stats.largest, FAILING_BATCH);
    assert_int_equal(stats.failed_batches, 1);
    for (int i = 0; i < FAILING_BATCH; i++) {
        assert_int_equal(w[i].err, HC_EDB);
        assert_int_equal(w[i].o.n_jobs, 0);
        assert_null(w[i].o.job_ids);
        assert_false(event_exists(fx->js, names[i][0]));
    }
    assert_true(event_exists(fx->js, "leader"));
    assert_int_equal(jobstore_count_by_state(fx->js, counts), HC_OK);
    assert_int_equal(counts[JOB_QUEUED], 2);

    /* The store is consistent and usable: once the poison is gone, each one records anew. */
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER poison_commit", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    for (int i = 0; i < FAILING_BATCH; i++) {
        struct event_record ev = event_rec(names[i][0], 0, names[i][1], NULL, NULL);
        struct event_outcome o = record(fx->js, &ev);

        assert_false(o.duplicate);
        assert_int_equal(o.n_jobs, 2);
        free(o.job_ids);
    }
    assert_int_equal(jobstore_count_by_state(fx->js, counts), HC_OK);
    assert_int_equal(counts[JOB_QUEUED], 2 + 2 * FAILING_BATCH);
    free(leader.o.job_ids);
}

static void jobstore_event_batch_expired_waiter_writes_nothing(void **state)
{
    struct fixture *fx = *state;
    struct waiter leader, late, patient;
    sqlite3 *db = NULL;

    block_leader(fx, &db, &leader);
    late = (struct waiter){.js = fx->js, .dedup = "late", .key = "late.json", .wait_ms = 50};
    patient = (struct waiter){.js = fx->js, .dedup = "patient", .key = "p.json", .wait_ms = 60000};
    assert_int_equal(pthread_create(&late.th, NULL, waiter_thread, &late), 0);
    wait_stats(fx->js, queued_exactly, 1);
    assert_int_equal(pthread_create(&patient.th, NULL, waiter_thread, &patient), 0);
    wait_stats(fx->js, queued_exactly, 2);
    fake_now += 1000; /* past the late caller's wait, not the patient one's */
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    pthread_join(leader.th, NULL);
    pthread_join(late.th, NULL);
    pthread_join(patient.th, NULL);
    assert_int_equal(leader.err, HC_OK);
    assert_int_equal(late.err, HC_EUNAVAILABLE);
    assert_null(late.o.job_ids);
    assert_false(event_exists(fx->js, "late"));
    assert_int_equal(patient.err, HC_OK);
    assert_int_equal(patient.o.n_jobs, 2);
    assert_true(event_exists(fx->js, "patient"));
    free(leader.o.job_ids);
    free(patient.o.job_ids);
}

static void jobstore_retry_all_replays_dead_or_failed(void **state)
{
    struct fixture *fx = *state;
    struct job_spec spec = {.query = "facility_metrics"};
    struct job *a = NULL, *b = NULL, *c = NULL, *got = NULL;
    char(*ids)[37] = NULL;
    size_t n = 99;

    assert_int_equal(jobstore_insert(fx->js, &spec, &a), HC_OK);
    assert_int_equal(jobstore_insert(fx->js, &spec, &b), HC_OK);
    assert_int_equal(jobstore_insert(fx->js, &spec, &c), HC_OK);
    job_free(a);
    job_free(b);
    job_free(c);
    /* a dies, b fails, c stays queued */
    assert_int_equal(jobstore_claim(fx->js, fake_now, &a), HC_OK);
    assert_int_equal(jobstore_fail(fx->js, a->id, NULL, -1, 1), HC_OK);
    assert_int_equal(jobstore_claim(fx->js, fake_now, &b), HC_OK);
    assert_int_equal(jobstore_fail(fx->js, b->id, NULL, -1, 0), HC_OK);

    assert_int_equal(jobstore_retry_all(fx->js, JOB_QUEUED, 10, &ids, &n), HC_EVALIDATION);
    assert_int_equal(jobstore_retry_all(fx->js, JOB_DEAD, 0, &ids, &n), HC_EVALIDATION);
    assert_int_equal(jobstore_retry_all(fx->js, JOB_DEAD, 10, &ids, &n), HC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], a->id);
    free(ids);
    assert_int_equal(jobstore_get(fx->js, a->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_QUEUED);
    assert_int_equal(got->attempts, 0);
    job_free(got);
    assert_int_equal(jobstore_get(fx->js, b->id, &got), HC_OK);
    assert_int_equal(got->state, JOB_FAILED); /* untouched by the dead replay */
    job_free(got);
    assert_int_equal(jobstore_retry_all(fx->js, JOB_DEAD, 10, &ids, &n), HC_OK);
    assert_int_equal(n, 0);
    assert_null(ids);
    assert_int_equal(jobstore_retry_all(fx->js, JOB_FAILED, 10, &ids, &n), HC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], b->id);
    free(ids);
    job_free(a);
    job_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(jobstore_insert_and_get_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_insert_defaults_as_of_to_utc_date, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_to_json_document, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_list_pages_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_list_rejects_bad_cursor_and_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_claim_oldest_runnable, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_transitions_and_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_cancel_queued_and_running, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_recover_after_crash_keeps_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_reopen_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_migrates_v1_database, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_claim_is_atomic_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_claim_is_atomic_across_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_survives_each_allocation_failing, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_dedup_on_id_and_sequencer, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_older_sequencer_does_not_undo_newer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_etag_dedups_latest_without_sequencer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_get_document, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_concurrent_duplicates_make_one_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_busy_store_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_batch_threads_get_exact_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_batch_commit_failure_fails_every_waiter,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(jobstore_event_batch_expired_waiter_writes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(jobstore_retry_all_replays_dead_or_failed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
