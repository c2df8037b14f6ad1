/*
 * jobstore: job state in one SQLite database (WAL), shared by the HTTP threads and the workers.
 *
 * A job goes
 *
 *     queued -> running -> succeeded
 *                  |  \-> retrying -> running ...   (transient error; next_run_ms = backoff)
 *                  |  \-> failed -> dead            (attempts exhausted: the dead-letter list)
 *                  \-> cancelled
 *
 * The worker's rule: a non-transient error goes straight to `failed`; a transient error is
 * retried (`retrying`) until max_attempts, then the job is `dead` (the dead-letter list). Both
 * `failed` and `dead` can be replayed with jobstore_retry(). Every function commits before it
 * returns, so a job the API acknowledged survives a crash. All functions are thread-safe (one
 * connection behind a mutex, see jobstore.c). Each returns an hc_err; a transition from a state
 * that does not allow it returns HC_ECONFLICT, an unknown id HC_EJOBNOTFOUND.
 */
#ifndef HCPIPE_JOBSTORE_H
#define HCPIPE_JOBSTORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "server/engine.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_RETRYING, JOB_SUCCEEDED, JOB_FAILED, JOB_DEAD,
                 JOB_CANCELLED };

/* "queued", "running", ... (borrowed, static); job_state_parse() returns -1 for unknown names. */
const char *job_state_name(enum job_state s);
int job_state_parse(const char *name);

/* What a client (or an event) asks for. Strings are borrowed for the call. */
struct job_spec {
    const char *query;              /* catalog name (checked by the caller) */
    const char *source;             /* "s3://bucket/key" or NULL */
    const char *as_of;              /* YYYY-MM-DD, or NULL for the creation date (UTC) */
    enum job_scope scope;
    enum bad_record_policy on_bad_record;
    int timeout_s;                  /* 0 = the service default */
    const char *engine;             /* "local" | "athena" */
    const char *event_id;           /* the event that made the job, or NULL */
};

struct job {
    char id[37];                    /* UUID */
    char *query;
    char *source;                   /* NULL when none */
    char *as_of;
    enum job_scope scope;
    enum bad_record_policy on_bad_record;
    int timeout_s;                  /* 0 = the service default */
    char *engine;
    char *event_id;                 /* NULL when none */
    enum job_state state;
    int attempts;                   /* attempts started so far */
    char *handle;                   /* engine handle of the current attempt, NULL when none */
    int cancel_requested;           /* 1 once cancel was asked for */
    int64_t created_ms, updated_ms; /* wall clock, ms since the epoch */
    int64_t started_ms;             /* start of the current/last attempt, 0 when never */
    int64_t finished_ms;            /* 0 until a final state */
    int64_t next_run_ms;            /* earliest time a queued/retrying job may be claimed */
    json_t *error;                  /* problem document of the last failure, or NULL (owned) */
    json_t *stats;                  /* engine statistics of the success, or NULL (owned) */
    uint64_t row_count;             /* rows of the result once succeeded */
};

/* Frees a job from any jobstore_* function. NULL is a no-op. */
void job_free(struct job *job);

/* The job as its API document (new reference): id, state, query, as_of, source, scope,
 * on_bad_record, timeout_s, engine, attempts, created_at, updated_at, started_at, finished_at,
 * error, and links to the results once succeeded. */
json_t *job_to_json(const struct job *job);

struct jobstore;

/* Opens (creating or migrating) the store at `path`. Returns HC_OK and *out, or an hc_err. */
int jobstore_open(const char *path, struct jobstore **out);
void jobstore_close(struct jobstore *js);

/* Inserts a queued job and commits. *out (optional) receives it; caller frees with job_free(). */
int jobstore_insert(struct jobstore *js, const struct job_spec *spec, struct job **out);

/* One job by id: HC_OK, or HC_EJOBNOTFOUND. Caller frees *out. */
int jobstore_get(struct jobstore *js, const char *id, struct job **out);

struct job_filter {
    int state;           /* an enum job_state, or -1 for any */
    const char *query;   /* NULL for any */
    size_t limit;        /* 1..1000 */
    const char *cursor;  /* opaque, from an earlier next_cursor; NULL for the first page */
};

/* Lists jobs newest first. *jobs_out is an array of *n_out jobs (free each with job_free() and
 * the array with free()); *next_cursor_out is malloc'ed, or NULL on the last page. HC_EVALIDATION
 * for a malformed cursor. */
int jobstore_list(struct jobstore *js, const struct job_filter *f, struct job ***jobs_out,
                  size_t *n_out, char **next_cursor_out);

/* The jobs an event made, oldest first (for the events module: an event delivered twice makes one
 * job). Frees as for jobstore_list(); *n_out is 0 when none. */
int jobstore_list_by_event(struct jobstore *js, const char *event_id, struct job ***jobs_out,
                           size_t *n_out);

/* Atomically claims the oldest runnable job (queued or retrying, next_run_ms <= now_ms), moving
 * it to running with attempts + 1. HC_ENOTFOUND when none is runnable. Caller frees *out. */
int jobstore_claim(struct jobstore *js, int64_t now_ms, struct job **out);

/* Stores the engine handle of the running attempt. */
int jobstore_set_handle(struct jobstore *js, const char *id, const char *handle);

/* running -> succeeded, with the engine's statistics (borrowed) and the result's row count. */
int jobstore_succeed(struct jobstore *js, const char *id, json_t *stats, uint64_t row_count);

/* running -> retrying (when retry_at_ms >= 0: next_run_ms = retry_at_ms, and the handle is
 * cleared so the next attempt starts a new query) or failed/dead (retry_at_ms < 0; dead when
 * `dead`; the handle is kept), storing the problem document (borrowed). */
int jobstore_fail(struct jobstore *js, const char *id, json_t *problem, int64_t retry_at_ms,
                  int dead);

/* Asks for cancellation: a queued/retrying job becomes cancelled at once; a running job gets
 * cancel_requested (the worker finishes it), and so does a queued job that still has an engine
 * handle (it was interrupted mid-run by a restart: the worker that claims it stops the engine's
 * query, then marks it cancelled). Idempotent on a job already flagged. HC_ECONFLICT for a job
 * in a final state. */
int jobstore_cancel(struct jobstore *js, const char *id, struct job **out);

/* running -> cancelled (called by the worker once the engine stopped). */
int jobstore_mark_cancelled(struct jobstore *js, const char *id);

/* Replays a failed or dead job: back to queued with attempts reset to 0. HC_ECONFLICT for any
 * other state. */
int jobstore_retry(struct jobstore *js, const char *id, struct job **out);

/* At start-up: every running job goes back to queued, keeping its handle, so the engine
 * re-attaches instead of starting over. *n_out (optional) gets how many. */
int jobstore_recover(struct jobstore *js, int *n_out);

/* Counts jobs by state (counts_out has one slot per enum job_state). */
int jobstore_count_by_state(struct jobstore *js, uint64_t counts_out[JOB_CANCELLED + 1]);

/* Counts jobs by state and query: calls cb once per (state, query) pair that has jobs, with
 * strings borrowed for the call (for /metrics). */
int jobstore_count_by_state_query(struct jobstore *js,
                                  void (*cb)(void *ctx, const char *state, const char *query,
                                             uint64_t n),
                                  void *ctx);

#endif
