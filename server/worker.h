/*
 * worker: the pool of threads that runs jobs (design notes at the top of worker.c).
 *
 * Workers claim runnable jobs from the job store, drive the engine (start, poll, fetch_page into
 * the result writer), and report every outcome back through the job store; they never touch
 * HTTP state. Outcomes of an attempt:
 *   success                                        -> succeeded
 *   cancel requested                               -> engine cancel, cancelled
 *   deadline min(job timeout_s, job_timeout_s) passed -> engine cancel, failed (HC_ETIMEOUT)
 *   transient error (hc_err_transient), attempts < max_attempts
 *                                                  -> retrying, after worker_backoff_ms()
 *   transient error, attempts exhausted            -> dead (the dead-letter list)
 *   HC_EENGINEBUSY (engine at capacity)            -> retrying after requeue_delay_ms, the
 *                                                     attempt not counted (jobstore_requeue())
 *   non-transient error                            -> failed
 * Both failed and dead jobs can be replayed (jobstore_retry()). A job claimed with more attempts
 * than max_attempts (the service died during each) is dead without running.
 */
#ifndef HCPIPE_WORKER_H
#define HCPIPE_WORKER_H

#include <jansson.h>
#include <stdint.h>

#include "server/engine.h"
#include "server/jobstore.h"

struct worker_config {
    int threads;              /* pool size, >= 1 */
    int max_attempts;         /* attempts before a job is dead, >= 1 */
    int job_timeout_s;        /* default deadline of one attempt; a job may ask for less */
    int64_t backoff_base_ms;  /* first retry delay bound (e.g. 1000) */
    int64_t backoff_cap_ms;   /* largest retry delay bound (e.g. 60000) */
    const char *results_dir;  /* results go to <results_dir>/<job_id>/result.{json,csv} */
    int64_t requeue_delay_ms; /* HC_EENGINEBUSY: run again after this (+ up to 25% jitter)
                                 without spending an attempt; 0 = 60000 */
    /* Optional: called once a job's result files are committed in `dir`, before the job is
     * marked succeeded (e.g. copying them to HCPIPE_OUTPUT_URI). A non-zero hc_err fails the
     * attempt like an engine error (transient ones are retried). */
    int (*publish)(void *ctx, const struct job *job, const char *dir);
    void *publish_ctx;
};

struct worker;

/* Starts the pool. The store and engine are borrowed and must outlive the pool. */
int worker_start(struct jobstore *js, struct engine *engine, const struct worker_config *cfg,
                 struct worker **out);

/* Wakes an idle worker (a job was queued, retried, or cancelled). */
void worker_wake(struct worker *w);

/* Live progress of a running job as {"bytes_read", "bytes_total", "records_read",
 * "bytes_scanned", "rate_bytes_per_s", "rate_records_per_s", "eta_s"} (new reference; eta_s is
 * null until the total is known and bytes were read), or NULL when the job is not running
 * here. */
json_t *worker_progress(struct worker *w, const char *job_id);

/* Stops claiming, asks running jobs to reach a safe point, joins the threads and frees the pool.
 * A job interrupted here stays `running` in the store and is recovered at the next start. */
void worker_stop(struct worker *w);

/* The retry delay before attempt `attempt` + 1: a uniformly random value in
 * [0, min(cap, base * 2^(attempt-1))] ("full jitter"), using sys_random_u64(). */
int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

#endif
