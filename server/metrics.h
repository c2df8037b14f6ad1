/*
 * metrics: the service's Prometheus metrics, one process-wide registry.
 *
 * Every series has labels from a small fixed set (HTTP route patterns, status codes from a fixed
 * list, engines, catalog queries, job states, event outcomes, Athena operations), so the registry
 * is a set of static arrays of atomic counters: recording is lock-free and never allocates, and
 * any thread may record at any time. Histograms have fixed buckets. Gauges that describe stored
 * state (jobs by state and query, warehouse objects/facilities/bytes) are not kept here: they are
 * read from their stores at scrape time by metrics_render().
 *
 * The exposition is the Prometheus text format 0.0.4 (HELP/TYPE lines, escaped label values,
 * cumulative `_bucket{le=...}` lines ending with `+Inf`, `_sum`, `_count`).
 */
#ifndef HCPIPE_METRICS_H
#define HCPIPE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "aws/buf.h"
#include "server/jobstore.h"

/* Content-Type of the exposition. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What became of one delivered event (POST /events). */
enum metrics_event {
    METRICS_EVENT_ACCEPTED,
    METRICS_EVENT_DUPLICATE,
    METRICS_EVENT_IGNORED,
    METRICS_EVENT_REJECTED,
    METRICS_EVENT_N
};

/* One finished HTTP request. `method` is the request method ("HEAD" is counted as itself);
 * `pattern` is the matched route's pattern such as "/jobs/{id}" (a static string that outlives
 * the process's use of metrics), or NULL when no route matched (label route="unmatched");
 * `status` the status sent; `micros` the time from the first byte to completion. Patterns beyond
 * METRICS_ROUTES_MAX distinct ones are counted as "other". */
void metrics_http_observe(const char *method, const char *pattern, unsigned status, int64_t micros);

/* One event outcome (for the events module). */
void metrics_event_count(enum metrics_event outcome);

/* A job attempt started on `engine` ("local" | "athena"); `attempt` is its 1-based number, so
 * an attempt > 1 also counts as a retry. */
void metrics_job_attempt(const char *engine, int attempt);

/* A failed attempt was scheduled to run again (state retrying). */
void metrics_job_retry_scheduled(const char *engine);

/* An attempt ended in `state` (succeeded, failed, dead, cancelled) after `ms` milliseconds of
 * run time; `query` is the catalog name. */
void metrics_job_finished(const char *engine, const char *query, enum job_state state, int64_t ms);

/* One Athena API call: `operation` such as "StartQueryExecution", `outcome` "ok", "throttled",
 * "client_error", "server_error" or "network_error" (others count as "other"). A throttled call
 * also counts in hcpipe_athena_throttles_total. */
void metrics_athena_call(const char *operation, const char *outcome);

/* Bytes an Athena query scanned (DataScannedInBytes of a finished query). */
void metrics_athena_bytes_scanned(uint64_t bytes);

/* Where metrics_render() reads its scrape-time gauges (either may be NULL to leave them out). */
struct metrics_sources {
    struct jobstore *jobs;      /* jobs by state and query (borrowed) */
    const char *warehouse_path; /* the local engine's warehouse.db, opened read-only */
};

/* Appends the whole exposition to `out`. Returns HC_OK, or HC_ENOMEM when `out` failed (a store
 * that cannot be read leaves its gauges out and sets hcpipe_scrape_errors). */
int metrics_render(const struct metrics_sources *src, struct buf *out);

/* Zeroes every counter (tests only; not safe while other threads record). */
void metrics_reset(void);

#endif
