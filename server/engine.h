/*
 * engine: the query-engine interface, a const vtable with two instances, `local` (the embedded
 * SQLite warehouse, server/engine_local.c) and `athena` (server/engine_athena.c, later).
 *
 * The worker drives every engine the same way:
 *
 *     start(job)  -> handle          stored on the job before anything else, so a crash resumes
 *     poll(handle) until done         (local engines may finish inside start())
 *     fetch_page(handle, token)...   rows into the result writer until next_token is NULL
 *     cancel(handle)                  on user cancel or when the job's deadline passes
 *
 * Every slot returns an hc_err (server/error.h). On failure it may set *problem_out to a problem
 * document (a new reference, caller decrefs) with details such as `bad_records`; the error's
 * transient flag decides whether the worker retries.
 */
#ifndef HCPIPE_ENGINE_H
#define HCPIPE_ENGINE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "server/result.h"

enum job_scope { SCOPE_DATASET, SCOPE_OBJECT };
enum bad_record_policy { BAD_RECORD_FAIL, BAD_RECORD_SKIP };

/* Live progress of a job, written by the engine on the worker thread and read by others. */
struct engine_progress {
    _Atomic uint64_t bytes_read;    /* bytes of input consumed */
    _Atomic uint64_t bytes_total;   /* total input bytes, 0 when unknown */
    _Atomic uint64_t records_read;  /* records parsed (valid and bad) */
    _Atomic uint64_t bytes_scanned; /* bytes the engine scanned (Athena's DataScannedInBytes) */
};

/* A job as the engine sees it: borrowed from the worker for the duration of a call. */
struct engine_job {
    const char *job_id; /* UUID */
    const char *query;  /* catalog name, e.g. "accredited_by_state" */
    const char *as_of;  /* YYYY-MM-DD */
    enum job_scope scope;
    const char *source; /* "s3://bucket/key", or NULL (dataset as it stands) */
    enum bad_record_policy on_bad_record;
    int attempt;                      /* 1-based attempt number */
    int64_t deadline_ms;              /* wall clock (sys_now_ms()) after which the job must stop */
    const atomic_int *cancel;         /* non-zero when the job must stop as soon as it can */
    struct engine_progress *progress; /* may be NULL */
};

struct engine;

struct engine_ops {
    const char *name; /* "local" or "athena" */
    /* Starts the job (or re-attaches when `handle` is the one stored by an earlier start);
     * *handle_out receives a malloc'ed handle to store on the job (may equal `handle`). */
    int (*start)(struct engine *e, const struct engine_job *job, const char *handle,
                 char **handle_out, json_t **problem_out);
    /* Sets *done_out to 1 when the query finished successfully, 0 while it runs; an error
     * return means it failed. *stats_out (optional, new ref) gets engine statistics as a JSON
     * object; its members "warnings" (array of strings) and "bad_records" (array of
     * {position, reason, source}) are moved by the worker into result.json's own members. */
    int (*poll)(struct engine *e, const struct engine_job *job, const char *handle, int *done_out,
                json_t **stats_out, json_t **problem_out);
    /* Sends the next page of rows to `sink` (columns first, on the first page). `token` is NULL
     * for the first page; *next_token_out gets a malloc'ed token, or NULL after the last page. */
    int (*fetch_page)(struct engine *e, const struct engine_job *job, const char *handle,
                      const char *token, struct result_sink *sink, char **next_token_out,
                      json_t **problem_out);
    /* Asks the engine to stop the query and waits until it has; idempotent. */
    int (*cancel)(struct engine *e, const char *handle);
    /* Frees the engine. */
    void (*destroy)(struct engine *e);
    /* Optional (NULL: the engine keeps nothing per object, as Athena reads S3 as it is).
     * Removes the rows the object `source` ("s3://bucket/key") contributed, for an S3 "Object
     * Deleted" event; the worker runs it for jobs whose query is ENGINE_DELETE_QUERY. HC_OK also
     * when the object was never loaded; *removed_out (optional) is then 0, else 1. */
    int (*delete_object)(struct engine *e, const char *source, int *removed_out);
};

/* The job "query" that removes its source object's rows instead of running a catalog query
 * (queued by POST /events for "Object Deleted"; not in the catalog, so POST /jobs refuses it). */
#define ENGINE_DELETE_QUERY "delete_object"

struct engine {
    const struct engine_ops *ops; /* first member */
};

/* The catalog: is `name` one of the pipeline's queries? */
int engine_query_known(const char *name);

/* NULL-terminated list of catalog query names (borrowed, static). */
const char *const *engine_query_names(void);

#endif
