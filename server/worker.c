/*
 * worker.c: the pool of threads that runs jobs.
 *
 * DESIGN
 *
 * Queue. There is no in-memory queue: the job store is the queue. A worker thread takes work
 * with jobstore_claim(), one atomic UPDATE ... RETURNING that moves the oldest runnable job
 * (queued, or retrying whose next_run_ms has come) to `running`. So a job is claimed exactly once
 * however many threads (or processes) claim, and nothing accepted lives only in memory.
 *
 * Lock and wake-up. One mutex (w->lock) and one condition variable (w->wake, on
 * CLOCK_MONOTONIC) guard the pool's shared state: `stopping`, `wake_seq` and the slots' job ids.
 * An idle worker reads wake_seq, tries to claim, and when nothing is runnable sleeps on the
 * condition variable until worker_wake() bumps wake_seq (a job was queued, retried or cancelled),
 * worker_stop() runs, or IDLE_POLL_MS passes (that poll is how a retrying job whose backoff
 * elapsed, or a job queued by another process, gets picked up). Waits use the real monotonic
 * clock; the job times (claim's `now`, deadlines, retry times) use sys_now_ms(), so tests can
 * pin them.
 *
 * Running jobs. Each thread owns one slot: the id of the job it runs, its engine_progress
 * (atomics the engine updates and worker_progress() reads), its deadline, and an atomic cancel
 * flag handed to the engine as engine_job.cancel, plus the reason the flag was raised (user
 * cancel, deadline, shutdown). A monitor thread wakes every MONITOR_MS (and on worker_wake())
 * and, for each busy slot, raises the flag when the store shows cancel_requested or when the
 * deadline passed. This lets an engine that blocks inside start() or fetch_page() (the local
 * engine loading a large object) stop at its next safe point without the worker thread having
 * to look.
 *
 * A job whose query is ENGINE_DELETE_QUERY (an S3 "Object Deleted" event) runs no query: the
 * engine's delete_object slot removes its source object's rows, and it succeeds with an empty
 * result.
 *
 * One job, on its worker thread: start (or re-attach with the stored handle) -> set_handle ->
 * poll with a growing sleep (POLL_MIN_MS .. POLL_MAX_MS) for asynchronous engines -> fetch_page
 * loop into result_writer_open(<results_dir>/<job_id>) -> result_writer_commit() -> succeed.
 * The deadline of an attempt is min(job timeout_s, config job_timeout_s) from its start.
 * Outcomes:
 *   - success                                   -> succeeded
 *   - user cancel                               -> engine cancel, cancelled
 *   - deadline passed (or the engine's HC_ETIMEOUT) -> engine cancel, failed with HC_ETIMEOUT
 *   - transient error, attempts < max_attempts  -> retrying at now + worker_backoff_ms()
 *   - transient error, attempts exhausted       -> dead (the dead-letter list)
 *   - non-transient error                       -> failed (a replay may still succeed)
 *   - HC_EENGINEBUSY (the engine is at capacity) -> retrying after requeue_delay_ms with the
 *                                                  attempt given back (jobstore_requeue())
 * A job claimed with attempts > max_attempts (the service died during each attempt) goes to
 * dead at once; a job claimed with cancel_requested (cancelled, then the service died) is
 * cancelled at once.
 *
 * SQLite. The pool owns no connection: the job store has one connection behind its own mutex,
 * shared by the workers, the monitor and the HTTP threads (see jobstore.c). The pool never holds
 * w->lock while calling the store or the engine.
 *
 * Shutdown. worker_stop() sets `stopping` (no more claims), raises every busy slot's cancel flag
 * with reason "shutdown", and joins the threads. A worker interrupted this way reports nothing:
 * the job stays `running` with its handle, and jobstore_recover() at the next start requeues it
 * so the engine re-attaches (Athena) or runs it again (local). A job that completes before it
 * notices the flag is recorded as usual.
 */
#include "server/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/error.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/result.h"
#include "server/sys.h"

#define IDLE_POLL_MS  250  /* an idle worker looks for runnable jobs at least this often */
#define MONITOR_MS    100  /* the monitor checks cancel requests and deadlines this often */
#define POLL_MIN_MS   5    /* first sleep between engine polls */
#define POLL_MAX_MS   1000 /* longest sleep between engine polls */
#define RECORD_MS     50   /* first pause before recording again a failure the store refused */
#define RECORD_MAX_MS 2000 /* longest such pause */

enum stop_reason { REASON_NONE, REASON_CANCEL, REASON_DEADLINE, REASON_SHUTDOWN };

struct slot {
    char job_id[37];                 /* the job this thread runs, "" when idle (under w->lock) */
    atomic_int cancel;               /* engine_job.cancel: non-zero once the job must stop */
    atomic_int reason;               /* enum stop_reason: why `cancel` was raised */
    _Atomic int64_t deadline_ms;     /* wall clock deadline of the current attempt */
    int64_t started_mono;            /* sys_mono_ms() at the attempt's start (under w->lock) */
    struct engine_progress progress; /* written by the engine, read by worker_progress() */
};

struct worker_thread {
    struct worker *w;
    int index; /* slot index */
    pthread_t tid;
};

struct worker {
    struct jobstore *js;           /* borrowed */
    struct engine *engine;         /* borrowed */
    struct worker_config cfg;      /* copy; cfg.results_dir points at results_dir */
    char *results_dir;             /* owned */
    pthread_mutex_t lock;          /* guards wake_seq, slots' job ids (see DESIGN) */
    pthread_cond_t wake;           /* idle workers, sleeping pollers and the monitor wait here */
    uint64_t wake_seq;             /* bumped by worker_wake() */
    atomic_int stopping;           /* set once by worker_stop() */
    struct slot *slots;            /* one per thread */
    struct worker_thread *threads; /* cfg.threads of them */
    int started;                   /* threads created */
    pthread_t monitor;
    int monitor_started;
};

/* ---- small helpers ------------------------------------------------------------------------ */

/* Sleeps up to ms, returning early when the pool stops or the slot's cancel flag rises. */
static void nap(struct worker *w, struct slot *s, int64_t ms)
{
    pthread_mutex_lock(&w->lock);
    if (!atomic_load(&w->stopping) && !atomic_load(&s->cancel))
        sys_cond_wait_ms(&w->wake, &w->lock, ms);
    pthread_mutex_unlock(&w->lock);
}

/* Raises a slot's cancel flag (first reason wins) and wakes sleepers; the lock is held. */
static void raise_cancel_locked(struct worker *w, struct slot *s, enum stop_reason why)
{
    int none = REASON_NONE;

    atomic_compare_exchange_strong(&s->reason, &none, (int)why);
    atomic_store(&s->cancel, 1);
    pthread_cond_broadcast(&w->wake);
}

int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t bound = base_ms < 0 ? 0 : base_ms;

    if (cap_ms < 0)
        cap_ms = 0;
    for (int i = 1; i < attempt && bound > 0 && bound < cap_ms; i++)
        bound = bound > INT64_MAX / 2 ? INT64_MAX : bound * 2;
    if (bound > cap_ms)
        bound = cap_ms;
    return (int64_t)(sys_random_u64() % ((uint64_t)bound + 1));
}

static void log_job(enum log_level level, const char *msg, const struct job *job, const char *key,
                    const char *value)
{
    char attempt[16];

    snprintf(attempt, sizeof attempt, "%d", job->attempts);
    log_msg(level, msg, "job_id", job->id, "query", job->query, "attempt", attempt, key, value,
            NULL);
}

/* ---- one job ------------------------------------------------------------------------------ */

struct run {
    struct worker *w;
    struct slot *slot;
    struct job *job;
    struct engine_job ej;
    char *handle;    /* the engine handle of this attempt (owned), NULL before start */
    json_t *stats;   /* the last stats from poll (owned) */
    json_t *problem; /* the engine's problem document of a failure (owned) */
};

/* Stops the engine's query when there is one (cancel or deadline). */
static void engine_stop(struct run *r)
{
    if (r->handle) {
        int err = r->w->engine->ops->cancel(r->w->engine, r->handle);

        if (err)
            log_job(LOG_WARN, "engine cancel failed", r->job, "error", hc_err_slug(err));
    }
}

/* Moves "warnings" and "bad_records" out of the stats into *warnings_out / *bad_out. */
static void split_stats(json_t *stats, json_t **warnings_out, json_t **bad_out)
{
    *warnings_out = NULL;
    *bad_out = NULL;
    if (!json_is_object(stats))
        return;
    *warnings_out = json_incref(json_object_get(stats, "warnings"));
    *bad_out = json_incref(json_object_get(stats, "bad_records"));
    json_object_del(stats, "warnings");
    json_object_del(stats, "bad_records");
}

/* The engine part of an attempt: start, poll, fetch every page into the result files. */
static int run_engine(struct run *r)
{
    struct worker *w = r->w;
    struct engine *e = w->engine;
    struct result_writer *rw = NULL;
    struct result_meta meta = {r->job->id, r->job->query, r->job->as_of, r->job->engine};
    char dir[4096], *token = NULL, *next = NULL;
    json_t *warnings = NULL, *bad = NULL;
    int64_t sleep_ms = POLL_MIN_MS;
    uint64_t rows;
    int done = 0;
    int err;

    err = e->ops->start(e, &r->ej, r->job->handle, &r->handle, &r->problem);
    if (!err && r->handle && (!r->job->handle || strcmp(r->handle, r->job->handle) != 0))
        err = jobstore_set_handle(w->js, r->job->id, r->handle);
    while (!err) {
        json_t *stats = NULL;

        err = e->ops->poll(e, &r->ej, r->handle, &done, &stats, &r->problem);
        if (stats) {
            json_decref(r->stats);
            r->stats = stats;
        }
        if (err || done)
            break;
        if (atomic_load(&r->slot->cancel) || sys_now_ms() >= r->ej.deadline_ms) {
            err = HC_ECANCELLED; /* the caller tells cancel, deadline and shutdown apart */
            break;
        }
        nap(w, r->slot, sleep_ms);
        sleep_ms = sleep_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : sleep_ms * 2;
    }
    if (err)
        goto out;
    snprintf(dir, sizeof dir, "%s/%s", w->results_dir, r->job->id);
    err = result_writer_open(dir, &meta, &rw);
    while (!err) {
        struct result_sink sink = result_writer_sink(rw);

        err = e->ops->fetch_page(e, &r->ej, r->handle, token, &sink, &next, &r->problem);
        free(token);
        token = next;
        next = NULL;
        if (err || !token)
            break;
        if (atomic_load(&r->slot->cancel) || sys_now_ms() >= r->ej.deadline_ms)
            err = HC_ECANCELLED;
    }
    if (err)
        goto out;
    if (!r->stats)
        r->stats = json_object();
    split_stats(r->stats, &warnings, &bad);
    rows = result_writer_rows(rw);
    err = result_writer_commit(rw, r->stats, warnings, bad);
    rw = NULL;
    if (!err && w->cfg.publish)
        err = w->cfg.publish(w->cfg.publish_ctx, r->job, dir);
    if (!err)
        err = jobstore_succeed(w->js, r->job->id, r->stats, rows);
out:
    result_writer_abort(rw);
    free(token);
    json_decref(warnings);
    json_decref(bad);
    return err;
}

/* A delete job (ENGINE_DELETE_QUERY): the engine forgets its source object's rows, and the job
 * succeeds with an empty result whose stats say whether anything was removed. */
static int run_delete(struct run *r)
{
    struct worker *w = r->w;
    struct engine *e = w->engine;
    struct result_writer *rw = NULL;
    struct result_meta meta = {r->job->id, r->job->query, r->job->as_of, r->job->engine};
    char dir[4096];
    int removed = 0;
    int err = HC_OK;

    if (!r->job->source) {
        r->problem = hc_problem_new(HC_EVALIDATION, "a delete job needs a source");
        return HC_EVALIDATION;
    }
    if (e->ops->delete_object)
        err = e->ops->delete_object(e, r->job->source, &removed);
    if (err)
        return err;
    r->stats = json_pack("{s:s, s:s, s:b}", "engine", e->ops->name, "source", r->job->source,
                         "removed", removed);
    if (!r->stats)
        return HC_ENOMEM;
    snprintf(dir, sizeof dir, "%s/%s", w->results_dir, r->job->id);
    err = result_writer_open(dir, &meta, &rw);
    if (!err)
        err = result_writer_commit(rw, r->stats, NULL, NULL);
    if (!err)
        err = jobstore_succeed(w->js, r->job->id, r->stats, 0);
    return err;
}

/* Records a failed attempt: requeued without spending the attempt (engine busy), or failed. */
static int record_failure(struct worker *w, const struct job *job, json_t *problem,
                          int64_t retry_at, int dead, int requeue)
{
    return requeue ? jobstore_requeue(w->js, job->id, problem, retry_at)
                   : jobstore_fail(w->js, job->id, problem, retry_at, dead);
}

/* Records the outcome of a failed attempt (see DESIGN). */
static void report_failure(struct run *r, int err)
{
    struct worker *w = r->w;
    struct job *job = r->job;
    int reason = atomic_load(&r->slot->reason);
    json_t *problem = NULL;
    char detail[128];
    int64_t retry_at = -1;
    int dead = 0, requeue = 0, rc;

    if (atomic_load(&w->stopping) && reason == REASON_SHUTDOWN) {
        log_job(LOG_INFO, "job interrupted by shutdown; it resumes at the next start", job, "state",
                "running");
        return;
    }
    if (reason == REASON_CANCEL) {
        engine_stop(r);
        rc = jobstore_mark_cancelled(w->js, job->id);
        log_job(LOG_INFO, "job cancelled", job, "state", rc ? hc_err_slug(rc) : "cancelled");
        if (!rc)
            metrics_job_finished(job->engine, job->query, JOB_CANCELLED,
                                 sys_now_ms() - job->started_ms);
        return;
    }
    if (reason == REASON_DEADLINE || err == HC_ETIMEOUT || sys_now_ms() >= r->ej.deadline_ms) {
        engine_stop(r);
        err = HC_ETIMEOUT;
        snprintf(detail, sizeof detail, "the attempt's deadline passed (%d s)",
                 (int)((r->ej.deadline_ms - job->started_ms + 999) / 1000));
        problem = hc_problem_new(HC_ETIMEOUT, detail);
    } else if (err == HC_EENGINEBUSY) {
        int64_t delay = w->cfg.requeue_delay_ms > 0 ? w->cfg.requeue_delay_ms : 60000;

        engine_stop(r);
        problem = r->problem ? json_incref(r->problem) : hc_problem_new(err, NULL);
        retry_at = sys_now_ms() + delay + (int64_t)(sys_random_u64() % (uint64_t)(delay / 4 + 1));
        requeue = 1;
    } else {
        engine_stop(r); /* frees what the engine keeps for the query; idempotent */
        problem = r->problem ? json_incref(r->problem) : hc_problem_new(err, NULL);
        if (hc_err_transient(err) && job->attempts < w->cfg.max_attempts)
            retry_at = sys_now_ms() + worker_backoff_ms(job->attempts, w->cfg.backoff_base_ms,
                                                        w->cfg.backoff_cap_ms);
        else if (hc_err_transient(err))
            dead = 1;
    }
    if (problem)
        json_object_set_new(problem, "attempt", json_integer(job->attempts));
    rc = record_failure(w, job, problem, retry_at, dead, requeue);
    /* The store may refuse for a passing reason (the disk filled up, often by this very job):
     * keep trying (this worker thread waits; a full disk stops the others too) until it is
     * recorded or the pool stops, or the job would stay `running` with no worker until the next
     * restart. worker_stop() leaves it `running` for jobstore_recover(), as for any shutdown. */
    for (int64_t pause = RECORD_MS;
         (rc == HC_EDISKFULL || rc == HC_EIO || rc == HC_EDB || rc == HC_ENOMEM) &&
         !atomic_load(&w->stopping);
         pause = pause * 2 > RECORD_MAX_MS ? RECORD_MAX_MS : pause * 2) {
        if (pause == RECORD_MS)
            log_job(LOG_ERROR, "could not record the failure; trying again until it is recorded",
                    job, "error", hc_err_slug(rc));
        pthread_mutex_lock(&w->lock);
        if (!atomic_load(&w->stopping))
            sys_cond_wait_ms(&w->wake, &w->lock, pause);
        pthread_mutex_unlock(&w->lock);
        rc = record_failure(w, job, problem, retry_at, dead, requeue);
    }
    if (!rc && !requeue && retry_at >= 0)
        metrics_job_retry_scheduled(job->engine);
    else if (!rc && !requeue)
        metrics_job_finished(job->engine, job->query, dead ? JOB_DEAD : JOB_FAILED,
                             sys_now_ms() - job->started_ms);
    log_job(retry_at >= 0 ? LOG_WARN : LOG_ERROR, "job attempt failed", job, "error",
            hc_err_slug(err));
    if (rc)
        log_job(LOG_ERROR, "could not record the failure", job, "error", hc_err_slug(rc));
    json_decref(problem);
}

/* Settles a claimed job that must not run: cancelled before the crash, or out of attempts. */
static int settle_at_claim(struct worker *w, struct job *job)
{
    struct run r = {.w = w, .job = job, .handle = job->handle};
    json_t *problem;
    int rc;

    if (job->cancel_requested) {
        engine_stop(&r);
        rc = jobstore_mark_cancelled(w->js, job->id);
        log_job(LOG_INFO, "job cancelled", job, "state", rc ? hc_err_slug(rc) : "cancelled");
        return 1;
    }
    if (job->attempts > w->cfg.max_attempts) {
        engine_stop(&r);
        problem = job->error ? json_incref(job->error)
                             : hc_problem_new(HC_EUNAVAILABLE, "attempts exhausted: the service "
                                                               "stopped during earlier attempts");
        rc = jobstore_fail(w->js, job->id, problem, -1, 1);
        log_job(LOG_ERROR, "job dead: attempts exhausted", job, "state",
                rc ? hc_err_slug(rc) : "dead");
        if (!rc)
            metrics_job_finished(job->engine, job->query, JOB_DEAD, 0);
        json_decref(problem);
        return 1;
    }
    return 0;
}

static void run_job(struct worker *w, struct slot *slot, struct job *job)
{
    struct run r = {.w = w, .slot = slot, .job = job};
    int timeout_s = w->cfg.job_timeout_s;
    int err;

    if (settle_at_claim(w, job))
        return;
    if (job->timeout_s > 0 && job->timeout_s < timeout_s)
        timeout_s = job->timeout_s;
    pthread_mutex_lock(&w->lock);
    if (atomic_load(&w->stopping)) {
        /* Claimed as the pool stopped: leave it `running` for jobstore_recover(). */
        pthread_mutex_unlock(&w->lock);
        return;
    }
    snprintf(slot->job_id, sizeof slot->job_id, "%s", job->id);
    atomic_store(&slot->cancel, 0);
    atomic_store(&slot->reason, REASON_NONE);
    atomic_store(&slot->deadline_ms, job->started_ms + (int64_t)timeout_s * 1000);
    slot->started_mono = sys_mono_ms();
    atomic_store(&slot->progress.bytes_read, 0);
    atomic_store(&slot->progress.bytes_total, 0);
    atomic_store(&slot->progress.records_read, 0);
    atomic_store(&slot->progress.bytes_scanned, 0);
    pthread_mutex_unlock(&w->lock);

    r.ej = (struct engine_job){
        .job_id = job->id,
        .query = job->query,
        .as_of = job->as_of,
        .scope = job->scope,
        .source = job->source,
        .on_bad_record = job->on_bad_record,
        .attempt = job->attempts,
        .deadline_ms = atomic_load(&slot->deadline_ms),
        .cancel = &slot->cancel,
        .progress = &slot->progress,
    };
    log_job(LOG_INFO, "job started", job, "handle", job->handle);
    metrics_job_attempt(job->engine, job->attempts);
    err = strcmp(job->query, ENGINE_DELETE_QUERY) == 0 ? run_delete(&r) : run_engine(&r);
    if (err) {
        report_failure(&r, err);
    } else {
        log_job(LOG_INFO, "job succeeded", job, "state", "succeeded");
        metrics_job_finished(job->engine, job->query, JOB_SUCCEEDED,
                             sys_now_ms() - job->started_ms);
    }

    pthread_mutex_lock(&w->lock);
    slot->job_id[0] = '\0';
    pthread_mutex_unlock(&w->lock);
    free(r.handle);
    json_decref(r.stats);
    json_decref(r.problem);
}

/* ---- threads ------------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct worker_thread *t = arg;
    struct worker *w = t->w;
    struct slot *slot = &w->slots[t->index];

    while (!atomic_load(&w->stopping)) {
        struct job *job = NULL;
        uint64_t seq;
        int err;

        pthread_mutex_lock(&w->lock);
        seq = w->wake_seq;
        pthread_mutex_unlock(&w->lock);
        err = jobstore_claim(w->js, sys_now_ms(), &job);
        if (err == HC_OK) {
            run_job(w, slot, job);
            job_free(job);
            continue;
        }
        if (err != HC_ENOTFOUND)
            log_warn("worker: claim failed", "error", hc_err_slug(err), NULL);
        pthread_mutex_lock(&w->lock);
        if (!atomic_load(&w->stopping) && seq == w->wake_seq)
            sys_cond_wait_ms(&w->wake, &w->lock, IDLE_POLL_MS);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* Raises the cancel flag of busy slots whose job has cancel_requested or whose deadline passed. */
static void monitor_pass(struct worker *w)
{
    char id[37];

    for (int i = 0; i < w->cfg.threads; i++) {
        struct slot *s = &w->slots[i];
        struct job *job = NULL;
        int cancel = 0;

        pthread_mutex_lock(&w->lock);
        memcpy(id, s->job_id, sizeof id);
        pthread_mutex_unlock(&w->lock);
        if (!id[0])
            continue;
        if (jobstore_get(w->js, id, &job) == HC_OK)
            cancel = job->cancel_requested;
        job_free(job);
        pthread_mutex_lock(&w->lock);
        if (strcmp(s->job_id, id) == 0) {
            if (cancel)
                raise_cancel_locked(w, s, REASON_CANCEL);
            else if (sys_now_ms() >= atomic_load(&s->deadline_ms))
                raise_cancel_locked(w, s, REASON_DEADLINE);
        }
        pthread_mutex_unlock(&w->lock);
    }
}

static void *monitor_main(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&w->stopping)) {
        monitor_pass(w);
        pthread_mutex_lock(&w->lock);
        if (!atomic_load(&w->stopping))
            sys_cond_wait_ms(&w->wake, &w->lock, MONITOR_MS);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* ---- the pool ----------------------------------------------------------------------------- */

static void pool_free(struct worker *w)
{
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->threads);
    free(w->slots);
    free(w->results_dir);
    free(w);
}

int worker_start(struct jobstore *js, struct engine *engine, const struct worker_config *cfg,
                 struct worker **out)
{
    struct worker *w = NULL;
    int err = HC_OK;

    *out = NULL;
    if (!js || !engine || !cfg || cfg->threads < 1 || cfg->max_attempts < 1 ||
        cfg->job_timeout_s < 1 || cfg->backoff_base_ms < 0 || cfg->backoff_cap_ms < 0 ||
        !cfg->results_dir)
        return HC_EINVAL;
    if (mkdir(cfg->results_dir, 0755) != 0 && errno != EEXIST) {
        log_error("worker: cannot create the results folder", "path", cfg->results_dir, "error",
                  strerror(errno), NULL);
        return HC_EIO;
    }
    w = calloc(1, sizeof *w);
    if (!w)
        return HC_ENOMEM;
    w->js = js;
    w->engine = engine;
    w->cfg = *cfg;
    pthread_mutex_init(&w->lock, NULL);
    sys_cond_init(&w->wake);
    w->results_dir = strdup(cfg->results_dir);
    w->slots = calloc((size_t)cfg->threads, sizeof *w->slots);
    w->threads = calloc((size_t)cfg->threads, sizeof *w->threads);
    if (!w->results_dir || !w->slots || !w->threads) {
        pool_free(w);
        return HC_ENOMEM;
    }
    w->cfg.results_dir = w->results_dir;
    for (int i = 0; i < cfg->threads && !err; i++) {
        w->threads[i] = (struct worker_thread){.w = w, .index = i};
        if (pthread_create(&w->threads[i].tid, NULL, worker_main, &w->threads[i]) != 0)
            err = HC_ENOMEM;
        else
            w->started++;
    }
    if (!err) {
        if (pthread_create(&w->monitor, NULL, monitor_main, w) != 0)
            err = HC_ENOMEM;
        else
            w->monitor_started = 1;
    }
    if (err) {
        worker_stop(w);
        return err;
    }
    *out = w;
    return HC_OK;
}

void worker_wake(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->wake_seq++;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

json_t *worker_progress(struct worker *w, const char *job_id)
{
    json_t *doc = NULL;

    if (!w || !job_id)
        return NULL;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->cfg.threads; i++) {
        struct slot *s = &w->slots[i];
        uint64_t read, total, records, rate = 0, rrate = 0;
        int64_t elapsed;
        json_t *eta = json_null();

        if (!s->job_id[0] || strcmp(s->job_id, job_id) != 0)
            continue;
        read = atomic_load(&s->progress.bytes_read);
        total = atomic_load(&s->progress.bytes_total);
        records = atomic_load(&s->progress.records_read);
        elapsed = sys_mono_ms() - s->started_mono;
        if (elapsed > 0) {
            rate = (uint64_t)((double)read * 1000.0 / (double)elapsed);
            rrate = (uint64_t)((double)records * 1000.0 / (double)elapsed);
        }
        /* Seconds left at the rate so far, once the total is known and reading has begun. */
        if (total > 0 && rate > 0)
            eta = json_integer((json_int_t)((total > read ? total - read : 0) / rate));
        doc = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "bytes_read", (json_int_t)read,
                        "bytes_total", (json_int_t)total, "records_read", (json_int_t)records,
                        "bytes_scanned", (json_int_t)atomic_load(&s->progress.bytes_scanned),
                        "rate_bytes_per_s", (json_int_t)rate, "rate_records_per_s",
                        (json_int_t)rrate, "eta_s", eta);
        break;
    }
    pthread_mutex_unlock(&w->lock);
    return doc;
}

void worker_stop(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stopping, 1);
    for (int i = 0; i < w->cfg.threads; i++)
        if (w->slots[i].job_id[0])
            raise_cancel_locked(w, &w->slots[i], REASON_SHUTDOWN);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->started; i++)
        pthread_join(w->threads[i].tid, NULL);
    if (w->monitor_started)
        pthread_join(w->monitor, NULL);
    pool_free(w);
}
