/*
 * engine_athena: the `athena` engine (struct engine_ops instance over Amazon Athena; aws/athena.h
 * for the API, server/athena_sql.h for every SQL text). Design notes at the top of
 * engine_athena.c.
 *
 * Settings come from flags of `hcpipe serve` or the environment (the flag wins), through a
 * lookup the caller supplies (engine_athena_settings_load()), and are all checked at start, so a
 * bad one stops `hcpipe serve` with a message naming both the flag and the variable:
 *   --source-uri               HCPIPE_SOURCE_URI              s3://bucket/prefix/ of the
 *                                                             facility NDJSON (required)
 *   --athena-database          HCPIPE_ATHENA_DATABASE         Glue database, [a-z0-9_]{1,128}
 *                                                             (hcpipe)
 *   --athena-table             HCPIPE_ATHENA_TABLE            Glue table, [a-z0-9_]{1,128}
 *                                                             (facilities)
 *   --athena-workgroup         HCPIPE_ATHENA_WORKGROUP        [A-Za-z0-9._-]{1,128} (primary)
 *   --athena-output            HCPIPE_ATHENA_OUTPUT           query output location
 *                                                             s3://bucket/prefix/ (unset: the
 *                                                             workgroup's)
 *   --athena-catalog           HCPIPE_ATHENA_CATALOG          [A-Za-z0-9_-]{1,128}
 *                                                             (AwsDataCatalog)
 *   --athena-poll-rate         HCPIPE_ATHENA_POLL_RATE        status calls per second across
 *                                                             all jobs, 1..100 (5)
 *   --athena-poll-initial-ms   HCPIPE_ATHENA_POLL_INITIAL_MS  first status check after a start,
 *                                                             10..60000 (1000)
 *   --athena-poll-max-ms       HCPIPE_ATHENA_POLL_MAX_MS      longest interval between checks of
 *                                                             one query (10000)
 *   --athena-requeue-delay-ms  HCPIPE_ATHENA_REQUEUE_DELAY_MS delay before a job refused for
 *                                                             capacity runs again (60000)
 *   --athena-results           HCPIPE_ATHENA_RESULTS          pages | csv | auto: GetQueryResults
 *                                                             pages, the result CSV object
 *                                                             streamed from S3, or the CSV from
 *                                                             1 MiB on (pages)
 *   --athena-price-per-tb      HCPIPE_ATHENA_PRICE_PER_TB     USD per TiB scanned for the cost
 *                                                             estimate, 0..1000 (5)
 * AWS region, credentials and endpoints follow the SDKs (AWS_REGION, AWS_ENDPOINT_URL_ATHENA...).
 */
#ifndef HCPIPE_ENGINE_ATHENA_H
#define HCPIPE_ENGINE_ATHENA_H

#include <stddef.h>
#include <stdint.h>

#include "server/engine.h"

/* How a result is read: GetQueryResults pages, or the CSV object Athena wrote (streamed through
 * the S3 client), or the CSV object when it is at least 1 MiB. */
enum athena_results { ATHENA_RESULTS_PAGES, ATHENA_RESULTS_CSV, ATHENA_RESULTS_AUTO };

struct athena_settings {
    char *source_uri;         /* "s3://bucket/prefix/" */
    char *database, *table;   /* Glue names */
    char *workgroup;          /* WorkGroup */
    char *output;             /* OutputLocation, NULL = the workgroup's */
    char *catalog;            /* QueryExecutionContext.Catalog */
    int poll_rate;            /* BatchGetQueryExecution calls per second, all jobs together */
    int64_t poll_initial_ms;  /* first check of a query after its start */
    int64_t poll_max_ms;      /* cap of the x1.5 backoff between checks of one query */
    double price_per_tb;      /* USD per TiB scanned */
    int64_t requeue_delay_ms; /* delay before a job refused for capacity is tried again */
    int results;              /* enum athena_results: how results are read */
};

/* The usage lines of the settings above, for `hcpipe serve --help` (static). */
const char *engine_athena_usage(void);

/* Where a setting's text comes from: returns the text of the setting named `flag` on the command
 * line and `env` in the environment, or NULL when it is not given (borrowed; it must stay valid
 * until engine_athena_settings_load() returns). An empty text counts as not given. */
typedef const char *(*athena_lookup)(void *ctx, const char *flag, const char *env);

/* An athena_lookup that reads the environment only (getenv(env); ctx and flag unused). */
const char *engine_athena_lookup_env(void *ctx, const char *flag, const char *env);

/* The i-th setting's flag ("--athena-table") and variable ("HCPIPE_ATHENA_TABLE"), static
 * strings, for whoever parses the command line. Returns 0, or -1 when i is past the last one. */
int engine_athena_option(size_t i, const char **flag, const char **env);

/* Fills *s from lookup(ctx, flag, env) for every setting, with defaults, checking each value.
 * Returns 0, or -1 with a message naming the flag and the variable in err (settings are not
 * secret: a bad value is quoted). Release with engine_athena_settings_free() either way. */
int engine_athena_settings_load(struct athena_settings *s, athena_lookup lookup, void *ctx,
                                char *err, size_t errlen);
void engine_athena_settings_free(struct athena_settings *s);

/* An Athena engine (settings copied). `data_dir` holds what it remembers (which configurations
 * have their DDL done). Starts the status poller thread. Returns HC_OK and *out (free with
 * out->ops->destroy()), or an hc_err. */
int engine_athena_new(const char *data_dir, const struct athena_settings *s, struct engine **out);

/* The delay before a job refused for capacity (HC_EENGINEBUSY) runs again. */
int64_t engine_athena_requeue_delay_ms(const struct engine *e);

/* Counters for tests and /metrics: BatchGetQueryExecution calls made, StartQueryExecution calls
 * made for DDL. */
uint64_t engine_athena_status_calls(const struct engine *e);
uint64_t engine_athena_ddl_runs(const struct engine *e);

#endif
