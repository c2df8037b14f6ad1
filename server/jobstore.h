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

enum job_state {
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_RETRYING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_DEAD,
    JOB_CANCELLED
};

/* "queued", "running", ... (borrowed, static); job_state_parse() returns -1 for unknown names. */
const char *job_state_name(enum job_state s);
int job_state_parse(const char *name);

/* What a client (or an event) asks for. Strings are borrowed for the call. */
struct job_spec {
    const char *query;  /* catalog name (checked by the caller) */
    const char *source; /* "s3://bucket/key" or NULL */
    const char *as_of;  /* YYYY-MM-DD, or NULL for the creation date (UTC) */
    enum job_scope scope;
    enum bad_record_policy on_bad_record;
    int timeout_s;        /* 0 = the service default */
    const char *engine;   /* "local" | "athena" */
    const char *event_id; /* the event that made the job, or NULL */
};

struct job {
    char id[37]; /* UUID */
    char *query;
    char *source; /* NULL when none */
    char *as_of;
    enum job_scope scope;
    enum bad_record_policy on_bad_record;
    int timeout_s; /* 0 = the service default */
    char *engine;
    char *event_id; /* NULL when none */
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
    int state;          /* an enum job_state, or -1 for any */
    const char *query;  /* NULL for any */
    size_t limit;       /* 1..1000 */
    const char *cursor; /* opaque, from an earlier next_cursor; NULL for the first page */
};

/* Lists jobs newest first. *jobs_out is an array of *n_out jobs (free each with job_free() and
 * the array with free()); *next_cursor_out is malloc'ed, or NULL on the last page. HC_EVALIDATION
 * for a malformed cursor. */
int jobstore_list(struct jobstore *js, const struct job_filter *f, struct job ***jobs_out,
                  size_t *n_out, char **next_cursor_out);

/* The jobs an event made, oldest first (in insertion order; for the events module: an event
 * delivered twice makes one job). Frees as for jobstore_list(); *n_out is 0 when none. */
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

/* running -> retrying at retry_at_ms without spending the attempt (attempts - 1; the engine
 * refused the job for capacity, e.g. Athena's concurrent query limit), clearing the handle and
 * storing the problem document (borrowed) as the last error. */
int jobstore_requeue(struct jobstore *js, const char *id, json_t *problem, int64_t retry_at_ms);

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

/* Replays up to `limit` (1..1000) jobs in `state` (JOB_DEAD or JOB_FAILED), oldest first, as
 * jobstore_retry() does, in one transaction. *ids_out gets their ids (malloc'ed, free() it; NULL
 * when none) and *n_out how many. HC_EVALIDATION for another state or limit. */
int jobstore_retry_all(struct jobstore *js, enum job_state state, size_t limit,
                       char (**ids_out)[37], size_t *n_out);

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

/* ---- events (POST /events) ---------------------------------------------------------------- */

/* Width a sequencer is right-padded to with '0' before it is stored for ordering (S3's are 16-18
 * hex digits); a longer one is stored as it is. */
#define JOBSTORE_SEQ_WIDTH 64

/* One object event as the store records it. Strings are borrowed for the call. */
struct event_record {
    const char *dedup_id;   /* EventBridge id, or "<x-amz-request-id>/<raw key>" (required) */
    const char *format;     /* "eventbridge" | "s3-records" */
    int deleted;            /* 0: Object Created, 1: Object Deleted */
    const char *bucket;     /* bucket name */
    const char *key;        /* decoded key: the object's identity for ordering and dedup */
    const char *raw_key;    /* the key as sent */
    const char *source;     /* s3://bucket/key the jobs read (decoded or raw key) */
    const char *sequencer;  /* NULL when absent */
    const char *etag;       /* NULL when absent */
    const char *version_id; /* NULL when absent */
    const char *time;       /* event time as sent, NULL when absent */
    int64_t size;           /* -1 when absent */
};

/* What jobstore_event_record() did. */
struct event_outcome {
    char event_id[37];      /* the stored event: the new one, or the original of a duplicate */
    int duplicate;          /* 1: seen before (same dedup id, same sequencer, or same etag as the
                               key's latest event without sequencer); nothing was added */
    int superseded;         /* 1: older (by sequencer) than an event already applied to the same
                               object, so it made no job (also reported for its duplicates) */
    char superseded_by[37]; /* the newer event, when superseded */
    char (*job_ids)[37];    /* n_jobs job ids (malloc'ed; free() it), oldest first */
    size_t n_jobs;
};

/* Group commit of events: at most JOBSTORE_BATCH_MAX events share one transaction, and at most
 * JOBSTORE_QUEUE_MAX callers wait for the next batch (a caller beyond that is refused). */
#define JOBSTORE_BATCH_MAX 256
#define JOBSTORE_QUEUE_MAX 1024

/*
 * Records an object event and, unless it is a duplicate or superseded, one queued job per spec
 * (each spec's event_id is replaced by the new event's id), committed before it returns. Dedup:
 * on dedup_id; on (bucket, key, sequencer); without a sequencer, on the etag and kind of the
 * object's latest event. Ordering: an event whose sequencer is lower than that of an applied
 * event of the same object is stored as superseded and makes no job. On success free
 * out->job_ids.
 *
 * Group commit. Concurrent callers join one queue; the first caller that finds no batch in
 * progress becomes the leader: it takes up to JOBSTORE_BATCH_MAX requests from the head of the
 * queue and records them in ONE transaction (one fsync), each under its own savepoint, in queue
 * order, so dedup and ordering are exact even between two events of the same batch (the later
 * one sees the earlier one as stored). Callers that arrive meanwhile queue up for the next batch.
 * Every caller returns only once the transaction holding its event has committed or failed, so
 * HC_OK always means "committed" and an error always means "nothing of this event was stored".
 * The rules:
 *   - the queue holds at most JOBSTORE_QUEUE_MAX callers: one more gets HC_EUNAVAILABLE at once
 *     (answer 503 with Retry-After; nothing was written);
 *   - a caller still in the queue wait_ms after it called is not taken into a batch: it gets
 *     HC_EUNAVAILABLE and nothing of it was written;
 *   - once taken, a caller waits for its batch's outcome, however long that takes (the leader
 *     waits at most wait_ms for the store's lock and for another process's write lock), so there
 *     is no state in which a job was committed and its caller was told otherwise. The one way a
 *     committed event goes unacknowledged is the client going away (or the process dying)
 *     between the commit and the answer: the event is then found by its dedup keys when it is
 *     delivered again, and that delivery gets the original event and job ids;
 *   - a request that fails alone (out of memory while recording it) is rolled back to its
 *     savepoint and fails alone; a batch whose transaction fails (BEGIN, a savepoint, COMMIT, or
 *     SQLite rolling it back, e.g. disk full or I/O error) is rolled back as a whole and every
 *     caller of the batch gets that error (HC_EUNAVAILABLE when another process held the write
 *     lock past wait_ms): nothing of the batch is stored, nothing is half-applied.
 */
int jobstore_event_record(struct jobstore *js, const struct event_record *ev,
                          const struct job_spec *specs, size_t n_specs, int64_t wait_ms,
                          struct event_outcome *out);

/* Counters of the group commit since jobstore_open() (for tests and the benchmark). */
struct jobstore_batch_stats {
    uint64_t batches;        /* batches taken by a leader (one transaction each) */
    uint64_t events;         /* events taken into those batches */
    uint64_t failed_batches; /* batches whose transaction failed (every caller got the error) */
    uint64_t refused;        /* callers refused because the queue was full */
    size_t largest;          /* the most events one batch held */
    size_t queued;           /* callers waiting in the queue right now */
};

/* A copy of the counters into *out. */
void jobstore_batch_stats(struct jobstore *js, struct jobstore_batch_stats *out);

/* An event by its id or its dedup id, as its API document (new reference): id, dedup_id, format,
 * kind, bucket, key, raw_key, source, sequencer, etag, version_id, size, time, received_at,
 * status ("applied" | "superseded"), superseded_by, job_ids. HC_ENOTFOUND when unknown. */
int jobstore_event_get(struct jobstore *js, const char *id, json_t **doc_out);

#endif
