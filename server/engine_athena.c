/*
 * engine_athena.c: the `athena` engine, an instance of struct engine_ops (engine.h).
 *
 * DESIGN
 *   start()      checks the job (catalog query, as_of, object scope inside the table's
 *                location), makes sure the schema exists (ensure_schema(): CREATE DATABASE and
 *                CREATE EXTERNAL TABLE once per configuration, remembered by a marker file
 *                <data_dir>/athena/ddl-<sha256 of the configuration>, forgotten when a query
 *                reports the table missing), renders the catalog query (athena_sql_render()),
 *                and calls StartQueryExecution with ClientRequestToken "hcpipe-<job id>-<attempt>"
 *                (token_for_start(): the same after a crash, new for a replay):
 *                the http client's retries of a lost response re-send the same token, so Athena
 *                returns the same execution instead of starting a second one. The handle is the
 *                QueryExecutionId; the worker stores it before polling. Given a stored handle
 *                (a restart), start() re-attaches to it and starts nothing.
 *   poll()       never calls AWS: it reads the state the poller last saw for the handle.
 *   fetch_page() one GetQueryResults page (MaxResults 1000; the token is Athena's NextToken),
 *                converted by column type into the catalog's typed columns; or, with
 *                HCPIPE_ATHENA_RESULTS=csv (auto: from 1 MiB on), the whole result in one call
 *                from the CSV object at the query's OutputLocation, streamed through the S3
 *                client into athena_csv (types from a one-row GetQueryResults page).
 *   cancel()     StopQueryExecution (unless the query already ended), then waits until the
 *                poller sees it CANCELLED (or ended otherwise), at most STOP_WAIT_MS.
 *
 * The poller. One thread checks every tracked query with BatchGetQueryExecution (up to 50 ids
 * a call). Each query has its own next-check time: poll_initial_ms after its start, then the
 * interval grows x1.5 up to poll_max_ms, each with +-20% jitter. Calls are spaced at least
 * 1000/poll_rate ms apart, so however many jobs run, the account sees at most poll_rate status
 * calls per second. Waiters (cancel, DDL) ask for an immediate check and sleep on `changed`.
 *
 * Failure classes:
 *   TooManyRequestsException at start (CONCURRENT_QUERY_LIMIT_EXCEEDED, or a throttling storm
 *   that outlasted the http client's retries)  -> HC_EENGINEBUSY: the worker requeues the job
 *                                                after requeue_delay_ms without spending an
 *                                                attempt
 *   FAILED with AthenaError.Retryable, the table missing (DDL forgotten), a network error or
 *   a 5xx after the client's retries           -> HC_EENGINETRANSIENT (retried; a new attempt
 *                                                has a new token, so the query really runs again)
 *   FAILED otherwise (bad SQL, permissions, bytes-scanned cutoff), any other 4xx at start
 *                                              -> HC_EENGINE with Athena's message in the
 *                                                problem document; never retried
 *   status checks denied (AccessDenied) DENIED_LIMIT times in a row
 *                                              -> HC_EENGINE for the queries asked about (the
 *                                                job names the missing permission; its query
 *                                                is asked to stop); never retried
 *
 * Threads: worker threads call the vtable concurrently; `lock` guards the tracked list and the
 * poller's state; `ddl_lock` serialises schema creation (other jobs wait for the first).
 * Crash safety: the token of each start is written to a ledger before the call (see "the token
 * ledger" below), so a kill -9 after Athena started the query but before the worker stored the
 * handle re-sends the same token at the next attempt and gets the same execution back.
 */
#include "server/engine_athena.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/athena.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/s3.h"
#include "server/athena_sql.h"
#include "server/catalog.h"
#include "server/error.h"
#include "server/metrics.h"
#include "server/log.h"
#include "server/sys.h"

#define STOP_WAIT_MS     60000 /* cancel() waits this long for CANCELLED */
#define DENIED_LIMIT     3     /* status calls denied in a row before their jobs fail */
#define DDL_WAIT_SLICE   100   /* DDL waits check the job's cancel flag this often */
#define RESULT_PAGE_ROWS 1000
#define CSV_MIN_BYTES    (1 << 20) /* auto: results from this size on are read as CSV */

/* A query the poller watches. */
struct tracked {
    struct tracked *next;
    char *id;                         /* QueryExecutionId */
    struct athena_query_execution qe; /* last state seen (owned), valid when `seen` */
    int seen;                         /* at least one status came back */
    int missing;                      /* Athena does not know the id */
    char missing_msg[256];            /* why, when missing */
    int denied;                       /* missing because status checks are denied */
    int64_t next_check_ms;            /* monotonic time of its next status check */
    int64_t interval_ms;              /* current backoff interval */
    int ledger_closed;                /* the job's token ledger was closed by a poll */
    char *job_id;                     /* the job that started it here, NULL when re-attached */
};

struct engine_athena {
    struct engine base; /* first member */
    struct athena_settings set;
    char *ddl_marker; /* <data_dir>/athena/ddl-<fingerprint> */
    char *tokens_dir; /* <data_dir>/athena/tokens: the token ledger */
    struct aws_credentials_provider *creds;
    struct aws_client *client;
    pthread_mutex_t lock;    /* guards everything below but ddl_* */
    pthread_cond_t changed;  /* poller -> waiters: a state changed; waiters -> poller: wake */
    struct tracked *tracked; /* watched queries */
    int stopping;
    int64_t next_call_ms; /* earliest monotonic time of the next status call */
    pthread_t poller;
    int poller_started;
    pthread_mutex_t ddl_lock; /* held while the schema is being created */
    int ddl_done;             /* the marker exists (under ddl_lock) */
    int no_batch;             /* BatchGetQueryExecution is not served (e.g. moto): one
                                 GetQueryExecution per call instead */
    int batch_failures;       /* consecutive failed batch calls */
    int denied_streak;        /* consecutive status calls refused with AccessDenied */
    _Atomic uint64_t status_calls;
    _Atomic uint64_t ddl_runs;
};

static const struct engine_ops athena_ops;

/* ---- settings ----------------------------------------------------------------------------- */

/* Counts one Athena API call in the metrics by operation and outcome. */
static void count_call(const char *op, int rc, const struct athena_error *e)
{
    const char *outcome = "ok";

    if (rc != 0) {
        if (strcmp(e->code, "ThrottlingException") == 0 ||
            strcmp(e->code, "TooManyRequestsException") == 0 || e->status == 429)
            outcome = "throttled";
        else if (e->status == 0)
            outcome = "network_error";
        else if (e->status >= 500)
            outcome = "server_error";
        else
            outcome = "client_error";
    }
    metrics_athena_call(op, outcome);
}

const char *engine_athena_usage(void)
{
    return "Athena engine (--engine athena); each flag has an environment variable, the flag\n"
           "wins:\n"
           "  --source-uri s3://B/P/  the facility NDJSON: the table's location; with\n"
           "                          HCPIPE_SOURCE=s3, also the local engine's dataset prefix\n"
           "                          (HCPIPE_SOURCE_URI, required for athena)\n"
           "  --athena-database NAME  Glue database, [a-z0-9_]{1,128}\n"
           "                          (HCPIPE_ATHENA_DATABASE, hcpipe)\n"
           "  --athena-table NAME     Glue table, [a-z0-9_]{1,128} (HCPIPE_ATHENA_TABLE,\n"
           "                          facilities)\n"
           "  --athena-workgroup NAME workgroup, [A-Za-z0-9._-]{1,128}\n"
           "                          (HCPIPE_ATHENA_WORKGROUP, primary)\n"
           "  --athena-output s3://B/P/  query output location (HCPIPE_ATHENA_OUTPUT, the\n"
           "                          workgroup's)\n"
           "  --athena-catalog NAME   data catalog, [A-Za-z0-9_-]{1,128}\n"
           "                          (HCPIPE_ATHENA_CATALOG, AwsDataCatalog)\n"
           "  --athena-poll-rate N    status calls per second over all jobs, 1..100\n"
           "                          (HCPIPE_ATHENA_POLL_RATE, 5)\n"
           "  --athena-poll-initial-ms MS  first status check after a start, 10..60000\n"
           "                          (HCPIPE_ATHENA_POLL_INITIAL_MS, 1000)\n"
           "  --athena-poll-max-ms MS longest interval between checks of a query, 10..600000,\n"
           "                          at least the initial one (HCPIPE_ATHENA_POLL_MAX_MS, 10000)\n"
           "  --athena-requeue-delay-ms MS  delay before a job refused for capacity runs again,\n"
           "                          without spending an attempt, 1..3600000\n"
           "                          (HCPIPE_ATHENA_REQUEUE_DELAY_MS, 60000)\n"
           "  --athena-results MODE   pages | csv | auto: read results with GetQueryResults\n"
           "                          pages, or stream the CSV Athena wrote to S3 (auto: the\n"
           "                          CSV from 1 MiB on) (HCPIPE_ATHENA_RESULTS, pages)\n"
           "  --athena-price-per-tb USD  USD per TiB scanned, for the cost estimate, 0..1000\n"
           "                          (HCPIPE_ATHENA_PRICE_PER_TB, 5)\n"
           "  AWS_REGION, AWS_ENDPOINT_URL_ATHENA, AWS_ACCESS_KEY_ID, ... as the AWS SDKs.\n";
}

void engine_athena_settings_free(struct athena_settings *s)
{
    free(s->source_uri);
    free(s->database);
    free(s->table);
    free(s->workgroup);
    free(s->output);
    free(s->catalog);
    memset(s, 0, sizeof *s);
}

static int chars_ok(const char *s, const char *extra, size_t max)
{
    size_t n = strlen(s);

    if (n < 1 || n > max)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(extra, *p)))
            return 0;
    return 1;
}

/* An output location: s3://bucket/ plus an optional prefix ending in '/', printable ASCII. */
static int output_ok(const char *s)
{
    const char *p;

    if (strncmp(s, "s3://", 5) != 0 || strlen(s) > 1024 || s[strlen(s) - 1] != '/')
        return 0;
    p = strchr(s + 5, '/');
    if (!p || p - (s + 5) < 3)
        return 0;
    for (p = s; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return 0;
    return 1;
}

/*
 * The settings table. A row is one setting: its flag and environment variable (the names the
 * user can fix), its default (the text used when it is unset or empty), the parser that checks
 * the text and stores it into the row's field of struct athena_settings, the integer range
 * some parsers use, and what a good value looks like (for the message). The loader runs every
 * row through one loop, then the checks that span two settings.
 */
enum parsed { PARSE_OK, PARSE_BAD, PARSE_NOMEM };

struct option;
typedef enum parsed (*option_parse)(const struct option *o, const char *v, void *field);

struct option {
    const char *flag;     /* "--athena-database" */
    const char *env;      /* "HCPIPE_ATHENA_DATABASE" */
    const char *def;      /* used when unset or empty; NULL: the field stays NULL/0 */
    int required;         /* 1: unset (with no default) is an error */
    option_parse parse;   /* checks `v` and stores it into `field` */
    size_t field;         /* offsetof(struct athena_settings, ...) */
    int64_t lo, hi;       /* accepted range of the numeric parsers */
    const char *expected; /* "expected ..." text of the message */
};

static enum parsed store_text(const char *v, void *field)
{
    char **slot = field, *copy = strdup(v);

    if (!copy)
        return PARSE_NOMEM;
    free(*slot);
    *slot = copy;
    return PARSE_OK;
}

static enum parsed parse_location(const struct option *o, const char *v, void *field)
{
    (void)o;
    return athena_sql_location_ok(v) ? store_text(v, field) : PARSE_BAD;
}

static enum parsed parse_ident(const struct option *o, const char *v, void *field)
{
    (void)o;
    return athena_sql_ident_ok(v) ? store_text(v, field) : PARSE_BAD;
}

static enum parsed parse_workgroup(const struct option *o, const char *v, void *field)
{
    (void)o;
    return chars_ok(v, "._-", 128) ? store_text(v, field) : PARSE_BAD;
}

static enum parsed parse_catalog(const struct option *o, const char *v, void *field)
{
    (void)o;
    return chars_ok(v, "_-", 128) ? store_text(v, field) : PARSE_BAD;
}

static enum parsed parse_output(const struct option *o, const char *v, void *field)
{
    (void)o;
    return output_ok(v) ? store_text(v, field) : PARSE_BAD;
}

/* A whole decimal integer in [o->lo, o->hi]. */
static int range_ok(const struct option *o, const char *v, int64_t *out)
{
    char *end = NULL;
    long long x;

    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < o->lo || x > o->hi)
        return 0;
    *out = x;
    return 1;
}

static enum parsed parse_int(const struct option *o, const char *v, void *field)
{
    int64_t x;

    if (!range_ok(o, v, &x))
        return PARSE_BAD;
    *(int *)field = (int)x;
    return PARSE_OK;
}

static enum parsed parse_ms(const struct option *o, const char *v, void *field)
{
    return range_ok(o, v, (int64_t *)field) ? PARSE_OK : PARSE_BAD;
}

/* A finite decimal number in [o->lo, o->hi]. */
static enum parsed parse_price(const struct option *o, const char *v, void *field)
{
    char *end = NULL;
    double x;

    errno = 0;
    x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < (double)o->lo || x > (double)o->hi)
        return PARSE_BAD;
    *(double *)field = x;
    return PARSE_OK;
}

static enum parsed parse_results(const struct option *o, const char *v, void *field)
{
    (void)o;
    if (strcmp(v, "pages") == 0)
        *(int *)field = ATHENA_RESULTS_PAGES;
    else if (strcmp(v, "csv") == 0)
        *(int *)field = ATHENA_RESULTS_CSV;
    else if (strcmp(v, "auto") == 0)
        *(int *)field = ATHENA_RESULTS_AUTO;
    else
        return PARSE_BAD;
    return PARSE_OK;
}

#define FIELD(f) offsetof(struct athena_settings, f)

static const struct option options[] = {
    {.flag = "--source-uri",
     .env = "HCPIPE_SOURCE_URI",
     .required = 1,
     .parse = parse_location,
     .field = FIELD(source_uri),
     .expected = "s3://bucket/prefix/ (a valid bucket; a prefix ending in / of A-Z a-z 0-9 ! - "
                 "_ . * ( ) /)"},
    {.flag = "--athena-database",
     .env = "HCPIPE_ATHENA_DATABASE",
     .def = "hcpipe",
     .parse = parse_ident,
     .field = FIELD(database),
     .expected = "1..128 of [a-z0-9_]"},
    {.flag = "--athena-table",
     .env = "HCPIPE_ATHENA_TABLE",
     .def = "facilities",
     .parse = parse_ident,
     .field = FIELD(table),
     .expected = "1..128 of [a-z0-9_]"},
    {.flag = "--athena-workgroup",
     .env = "HCPIPE_ATHENA_WORKGROUP",
     .def = "primary",
     .parse = parse_workgroup,
     .field = FIELD(workgroup),
     .expected = "1..128 of [A-Za-z0-9._-]"},
    {.flag = "--athena-output",
     .env = "HCPIPE_ATHENA_OUTPUT",
     .parse = parse_output,
     .field = FIELD(output),
     .expected = "s3://bucket/prefix/ (printable, ending in /)"},
    {.flag = "--athena-catalog",
     .env = "HCPIPE_ATHENA_CATALOG",
     .def = "AwsDataCatalog",
     .parse = parse_catalog,
     .field = FIELD(catalog),
     .expected = "1..128 of [A-Za-z0-9_-]"},
    {.flag = "--athena-poll-rate",
     .env = "HCPIPE_ATHENA_POLL_RATE",
     .def = "5",
     .parse = parse_int,
     .field = FIELD(poll_rate),
     .lo = 1,
     .hi = 100,
     .expected = "an integer 1..100"},
    {.flag = "--athena-poll-initial-ms",
     .env = "HCPIPE_ATHENA_POLL_INITIAL_MS",
     .def = "1000",
     .parse = parse_ms,
     .field = FIELD(poll_initial_ms),
     .lo = 10,
     .hi = 60000,
     .expected = "an integer 10..60000"},
    {.flag = "--athena-poll-max-ms",
     .env = "HCPIPE_ATHENA_POLL_MAX_MS",
     .def = "10000",
     .parse = parse_ms,
     .field = FIELD(poll_max_ms),
     .lo = 10,
     .hi = 600000,
     .expected = "an integer 10..600000"},
    {.flag = "--athena-requeue-delay-ms",
     .env = "HCPIPE_ATHENA_REQUEUE_DELAY_MS",
     .def = "60000",
     .parse = parse_ms,
     .field = FIELD(requeue_delay_ms),
     .lo = 1,
     .hi = 3600000,
     .expected = "an integer 1..3600000"},
    {.flag = "--athena-results",
     .env = "HCPIPE_ATHENA_RESULTS",
     .def = "pages",
     .parse = parse_results,
     .field = FIELD(results),
     .expected = "pages, csv or auto"},
    {.flag = "--athena-price-per-tb",
     .env = "HCPIPE_ATHENA_PRICE_PER_TB",
     .def = "5",
     .parse = parse_price,
     .field = FIELD(price_per_tb),
     .lo = 0,
     .hi = 1000,
     .expected = "a number 0..1000"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

int engine_athena_option(size_t i, const char **flag, const char **env)
{
    if (i >= N_OPTIONS)
        return -1;
    *flag = options[i].flag;
    *env = options[i].env;
    return 0;
}

const char *engine_athena_lookup_env(void *ctx, const char *flag, const char *env)
{
    (void)ctx;
    (void)flag;
    return getenv(env);
}

int engine_athena_settings_load(struct athena_settings *s, athena_lookup lookup, void *ctx,
                                char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        const char *v = lookup(ctx, o->flag, o->env);
        enum parsed p;

        if (!v || !*v)
            v = o->def;
        if (!v) {
            if (!o->required)
                continue;
            snprintf(err, errlen, "missing %s (%s): expected %s", o->flag, o->env, o->expected);
            return -1;
        }
        p = o->parse(o, v, (char *)s + o->field);
        if (p == PARSE_NOMEM) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (p == PARSE_BAD) {
            snprintf(err, errlen, "invalid %s (%s) \"%.200s\": expected %s", o->flag, o->env, v,
                     o->expected);
            return -1;
        }
    }
    if (s->poll_max_ms < s->poll_initial_ms) {
        snprintf(err, errlen,
                 "invalid --athena-poll-max-ms (HCPIPE_ATHENA_POLL_MAX_MS) %lld: below "
                 "--athena-poll-initial-ms (HCPIPE_ATHENA_POLL_INITIAL_MS) %lld",
                 (long long)s->poll_max_ms, (long long)s->poll_initial_ms);
        return -1;
    }
    return 0;
}

static int settings_copy(struct athena_settings *d, const struct athena_settings *s)
{
    *d = *s;
    d->source_uri = strdup(s->source_uri);
    d->database = strdup(s->database);
    d->table = strdup(s->table);
    d->workgroup = strdup(s->workgroup);
    d->catalog = strdup(s->catalog);
    d->output = s->output ? strdup(s->output) : NULL;
    return d->source_uri && d->database && d->table && d->workgroup && d->catalog &&
                   (!s->output || d->output)
               ? 0
               : -1;
}

/* ---- the tracked list (lock held) --------------------------------------------------------- */

static struct tracked *find_locked(struct engine_athena *ea, const char *id)
{
    for (struct tracked *t = ea->tracked; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

/* Finds or adds `id`, first checked `delay_ms` from now. NULL on ENOMEM. */
static struct tracked *track_locked(struct engine_athena *ea, const char *id, int64_t delay_ms)
{
    struct tracked *t = find_locked(ea, id);

    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->id = strdup(id);
    if (!t->id) {
        free(t);
        return NULL;
    }
    t->interval_ms = ea->set.poll_initial_ms;
    t->next_check_ms = sys_mono_ms() + delay_ms;
    t->next = ea->tracked;
    ea->tracked = t;
    pthread_cond_broadcast(&ea->changed);
    return t;
}

static void untrack_locked(struct engine_athena *ea, const char *id)
{
    for (struct tracked **pp = &ea->tracked; *pp; pp = &(*pp)->next) {
        struct tracked *t = *pp;

        if (strcmp(t->id, id) == 0) {
            *pp = t->next;
            athena_query_execution_clear(&t->qe);
            free(t->job_id);
            free(t->id);
            free(t);
            return;
        }
    }
}

static int ended(const struct tracked *t)
{
    return t->missing || (t->seen && athena_state_is_terminal(t->qe.state));
}

/* The error of a query that ended as missing: one that vanished runs again; one whose status
 * checks are denied would only be denied again. */
static int missing_error(const struct tracked *t)
{
    return t->denied ? HC_EENGINE : HC_EENGINETRANSIENT;
}

/* interval +-20% */
static int64_t jittered(int64_t ms)
{
    int64_t span = ms * 2 / 5;

    return ms - ms / 5 + (span > 0 ? (int64_t)(sys_random_u64() % (uint64_t)(span + 1)) : 0);
}

/* ---- the poller --------------------------------------------------------------------------- */

/* Applies one BatchGetQueryExecution answer; the lock is held. */
static void apply_batch_locked(struct engine_athena *ea, struct athena_batch *b, int64_t now)
{
    for (size_t i = 0; i < b->n_executions; i++) {
        struct athena_query_execution *qe = &b->executions[i];
        struct tracked *t = qe->id ? find_locked(ea, qe->id) : NULL;

        if (!t)
            continue;
        athena_query_execution_clear(&t->qe);
        t->qe = *qe;
        memset(qe, 0, sizeof *qe); /* moved */
        t->seen = 1;
        t->interval_ms = t->interval_ms * 3 / 2;
        if (t->interval_ms > ea->set.poll_max_ms)
            t->interval_ms = ea->set.poll_max_ms;
        t->next_check_ms = now + jittered(t->interval_ms);
    }
    for (size_t i = 0; i < b->n_unprocessed; i++) {
        struct athena_unprocessed *u = &b->unprocessed[i];
        struct tracked *t = u->id ? find_locked(ea, u->id) : NULL;

        if (!t)
            continue;
        t->missing = 1;
        snprintf(t->missing_msg, sizeof t->missing_msg, "%s: %s",
                 u->error_code ? u->error_code : "unprocessed",
                 u->error_message ? u->error_message : "Athena could not report the query");
    }
}

/* 1 when a failed status call got an answer Athena itself gives (a real, passing failure). */
static int batch_error_is_athena(const struct athena_error *e)
{
    return strcmp(e->code, "NetworkError") == 0 || strcmp(e->code, "CredentialsError") == 0 ||
           strcmp(e->code, "InternalServerException") == 0 ||
           strcmp(e->code, "ThrottlingException") == 0 ||
           strcmp(e->code, "TooManyRequestsException") == 0 ||
           strcmp(e->code, "InvalidRequestException") == 0 || strstr(e->code, "Signature") ||
           strstr(e->code, "Token") || strstr(e->code, "AccessDenied") ||
           strstr(e->code, "Unrecognized");
}

static void *poller_main(void *arg)
{
    struct engine_athena *ea = arg;
    const char *ids[ATHENA_BATCH_MAX];
    char *copies[ATHENA_BATCH_MAX];

    pthread_mutex_lock(&ea->lock);
    while (!ea->stopping) {
        int64_t now = sys_mono_ms(), soonest = now + 1000;
        size_t n = 0;
        struct athena_batch batch = {0};
        struct athena_error aerr;
        int rc;

        for (struct tracked *t = ea->tracked; t; t = t->next) {
            if (ended(t))
                continue;
            if (t->next_check_ms <= now && n < (ea->no_batch ? 1u : ATHENA_BATCH_MAX))
                copies[n++] = strdup(t->id);
            else if (t->next_check_ms < soonest)
                soonest = t->next_check_ms;
        }
        if (n == 0) {
            sys_cond_wait_ms(&ea->changed, &ea->lock, soonest - now > 0 ? soonest - now : 1);
            continue;
        }
        if (now < ea->next_call_ms) { /* the global rate cap */
            for (size_t i = 0; i < n; i++)
                free(copies[i]);
            sys_cond_wait_ms(&ea->changed, &ea->lock, ea->next_call_ms - now);
            continue;
        }
        ea->next_call_ms = now + (1000 + ea->set.poll_rate - 1) / ea->set.poll_rate;
        pthread_mutex_unlock(&ea->lock);

        for (size_t i = 0; i < n; i++)
            ids[i] = copies[i] ? copies[i] : "";
        atomic_fetch_add(&ea->status_calls, 1);
        if (ea->no_batch) {
            batch.executions = calloc(1, sizeof *batch.executions);
            rc = batch.executions ? athena_get_query(ea->client, ids[0], batch.executions, &aerr)
                                  : -1;
            if (rc == 0)
                batch.n_executions = 1;
            else if (!batch.executions)
                snprintf(aerr.code, sizeof aerr.code, "ClientError");
        } else {
            rc = athena_batch_get_query(ea->client, ids, n, &batch, &aerr);
        }
        count_call(ea->no_batch ? "GetQueryExecution" : "BatchGetQueryExecution", rc, &aerr);

        pthread_mutex_lock(&ea->lock);
        now = sys_mono_ms();
        if (rc == 0) {
            ea->batch_failures = 0;
            ea->denied_streak = 0;
            apply_batch_locked(ea, &batch, now);
        } else if (!ea->no_batch && !batch_error_is_athena(&aerr) && ++ea->batch_failures >= 2) {
            ea->no_batch = 1; /* checked again at once, one id at a time */
            log_warn("athena: BatchGetQueryExecution is not available; polling with "
                     "GetQueryExecution",
                     "code", aerr.code, NULL);
        } else {
            /* Denied status checks do not heal by waiting: after DENIED_LIMIT in a row the
             * queries asked about end here, and their jobs fail with the reason. */
            int denied = strstr(aerr.code, "AccessDenied") && ++ea->denied_streak >= DENIED_LIMIT;

            log_warn("athena: status check failed", "code", aerr.code, "message", aerr.message,
                     NULL);
            for (size_t i = 0; i < n; i++) {
                struct tracked *t = copies[i] ? find_locked(ea, copies[i]) : NULL;

                if (t && denied) {
                    t->missing = t->denied = 1;
                    snprintf(t->missing_msg, sizeof t->missing_msg,
                             "its status cannot be checked (%s: %.80s); hcpipe needs "
                             "athena:%s",
                             aerr.code, aerr.message,
                             ea->no_batch ? "GetQueryExecution" : "BatchGetQueryExecution");
                } else if (t) {
                    t->next_check_ms = now + jittered(t->interval_ms);
                }
            }
        }
        athena_batch_clear(&batch);
        for (size_t i = 0; i < n; i++)
            free(copies[i]);
        pthread_cond_broadcast(&ea->changed);
    }
    pthread_mutex_unlock(&ea->lock);
    return NULL;
}

/* Waits until the query ended, the job's cancel flag or deadline fires (job may be NULL), the
 * engine stops, or max_ms passes. Copies the last state into *qe_out (when it ended). Returns
 * 1 when it ended, 0 otherwise; *missing_out is set when Athena did not know it. */
static int wait_ended(struct engine_athena *ea, const char *id, const struct engine_job *job,
                      int64_t max_ms, int urgent, char *missing, size_t missinglen)
{
    int64_t until = sys_mono_ms() + max_ms;
    int done = 0;

    pthread_mutex_lock(&ea->lock);
    for (;;) {
        struct tracked *t = track_locked(ea, id, 0);

        if (!t)
            break;
        if (urgent && !ended(t)) {
            t->next_check_ms = sys_mono_ms();
            urgent = 0;
            pthread_cond_broadcast(&ea->changed);
        }
        if (ended(t)) {
            done = 1;
            if (t->missing && missing)
                snprintf(missing, missinglen, "%s", t->missing_msg);
            break;
        }
        if (ea->stopping || sys_mono_ms() >= until)
            break;
        if (job && ((job->cancel && atomic_load(job->cancel)) ||
                    (job->deadline_ms > 0 && sys_now_ms() >= job->deadline_ms)))
            break;
        sys_cond_wait_ms(&ea->changed, &ea->lock, DDL_WAIT_SLICE);
    }
    pthread_mutex_unlock(&ea->lock);
    return done;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void set_problem(json_t **problem_out, int err, const char *detail)
{
    if (problem_out && !*problem_out)
        *problem_out = hc_problem_new(err, detail && *detail ? detail : NULL);
}

/* The hc_err for a failed API call (start, results). */
static int classify_call(const struct athena_error *e)
{
    if (strcmp(e->code, "TooManyRequestsException") == 0)
        return HC_EENGINEBUSY;
    if (e->retryable || e->status == 0 || e->status >= 500 ||
        strcmp(e->code, "NetworkError") == 0 || strcmp(e->code, "CredentialsError") == 0 ||
        strcmp(e->code, "ExpiredTokenException") == 0)
        return HC_EENGINETRANSIENT;
    if (strcmp(e->code, "ClientError") == 0)
        return HC_EINTERNAL;
    return HC_EENGINE;
}

static void call_problem(json_t **problem_out, int err, const char *what,
                         const struct athena_error *e)
{
    char detail[768];
    json_t *pb;

    if (!problem_out || *problem_out)
        return;
    snprintf(detail, sizeof detail, "%s: %s: %s", what, e->code, e->message);
    pb = hc_problem_new(err, detail);
    if (pb)
        json_object_set_new(
            pb, "athena",
            json_pack("{s:s, s:I}", "error_code", e->code, "http_status", (json_int_t)e->status));
    *problem_out = pb;
}

/* 1 when a failure message says the table or database is gone. */
static int table_missing(const struct athena_query_execution *qe)
{
    const char *m = qe->error_message ? qe->error_message : qe->state_change_reason;

    if (!m)
        return 0;
    return strstr(m, "TABLE_NOT_FOUND") || strstr(m, "SCHEMA_NOT_FOUND") ||
           (strstr(m, "does not exist") &&
            (strstr(m, "able") || strstr(m, "chema") || strstr(m, "atabase"))) ||
           strstr(m, "Table not found");
}

/* hex sha256 of s into out[65] */
static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;

    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Runs one DDL text and waits for it. */
static int run_ddl(struct engine_athena *ea, const char *name, const struct engine_job *job,
                   json_t **problem_out)
{
    struct athena_sql_vars v = {
        .database = ea->set.database, .table = ea->set.table, .location = ea->set.source_uri};
    struct athena_start_params p = {0};
    struct athena_error aerr;
    struct tracked *t;
    char why[256], token[33], missing[256] = "", *sql = NULL, *id = NULL, detail[768];
    int err, done;

    err = athena_sql_render(name, &v, &sql, why, sizeof why);
    if (err) {
        set_problem(problem_out, err, why);
        return err;
    }
    athena_new_token(token); /* the DDL is idempotent (IF NOT EXISTS): a fresh token is fine */
    p.query_string = sql;
    p.catalog = ea->set.catalog;
    p.workgroup = ea->set.workgroup;
    p.output_location = ea->set.output;
    p.client_request_token = token;
    atomic_fetch_add(&ea->ddl_runs, 1);
    int rc_call = athena_start_query(ea->client, &p, &id, &aerr);
    count_call("StartQueryExecution", rc_call, &aerr);
    if (rc_call != 0) {
        err = classify_call(&aerr);
        call_problem(problem_out, err, "creating the Athena table", &aerr);
        free(sql);
        return err;
    }
    free(sql);
    pthread_mutex_lock(&ea->lock);
    t = track_locked(ea, id, ea->set.poll_initial_ms < 200 ? ea->set.poll_initial_ms : 200);
    pthread_mutex_unlock(&ea->lock);
    if (!t) {
        free(id);
        return HC_ENOMEM;
    }
    done = wait_ended(ea, id, job, INT32_MAX, 0, missing, sizeof missing);
    pthread_mutex_lock(&ea->lock);
    t = find_locked(ea, id);
    if (!done) {
        err = job && job->cancel && atomic_load(job->cancel)                    ? HC_ECANCELLED
              : job && job->deadline_ms > 0 && sys_now_ms() >= job->deadline_ms ? HC_ETIMEOUT
                                                                                : HC_EUNAVAILABLE;
    } else if (t && t->missing) {
        err = missing_error(t);
        snprintf(detail, sizeof detail, "the DDL query %s %s: %s", id,
                 t->denied ? "could not be watched" : "vanished", missing);
        set_problem(problem_out, err, detail);
    } else if (t && t->qe.state != ATHENA_STATE_SUCCEEDED) {
        const char *msg = t->qe.error_message         ? t->qe.error_message
                          : t->qe.state_change_reason ? t->qe.state_change_reason
                                                      : athena_state_name(t->qe.state);

        err = t->qe.has_athena_error && t->qe.error_retryable ? HC_EENGINETRANSIENT : HC_EENGINE;
        snprintf(detail, sizeof detail, "creating the Athena table failed (%s): %s", name, msg);
        set_problem(problem_out, err, detail);
    }
    untrack_locked(ea, id);
    pthread_mutex_unlock(&ea->lock);
    if (!done && !err)
        err = HC_EUNAVAILABLE;
    if (err == HC_EUNAVAILABLE)
        set_problem(problem_out, err, "the engine is stopping");
    free(id);
    return err;
}

/* CREATE DATABASE / TABLE once per configuration (see DESIGN). */
static int ensure_schema(struct engine_athena *ea, const struct engine_job *job,
                         json_t **problem_out)
{
    int err = HC_OK, fd;

    pthread_mutex_lock(&ea->ddl_lock);
    if (!ea->ddl_done && access(ea->ddl_marker, F_OK) == 0)
        ea->ddl_done = 1;
    if (!ea->ddl_done) {
        log_info("athena: creating the database and table", "database", ea->set.database, "table",
                 ea->set.table, "location", ea->set.source_uri, NULL);
        err = run_ddl(ea, "create_database", job, problem_out);
        if (!err)
            err = run_ddl(ea, "create_table", job, problem_out);
        if (!err) {
            fd = open(ea->ddl_marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd >= 0) {
                char line[1024];
                int n = snprintf(line, sizeof line, "%s %s %s %s %s\n", ea->set.catalog,
                                 ea->set.database, ea->set.table, ea->set.source_uri,
                                 ea->set.workgroup);

                if (write(fd, line, (size_t)n) < 0 || fsync(fd) != 0)
                    log_warn("athena: cannot write the DDL marker", "path", ea->ddl_marker, NULL);
                close(fd);
            } else {
                log_warn("athena: cannot write the DDL marker", "path", ea->ddl_marker, "error",
                         strerror(errno), NULL);
            }
            ea->ddl_done = 1;
        }
    }
    pthread_mutex_unlock(&ea->ddl_lock);
    return err;
}

static void forget_schema(struct engine_athena *ea)
{
    pthread_mutex_lock(&ea->ddl_lock);
    ea->ddl_done = 0;
    if (unlink(ea->ddl_marker) != 0 && errno != ENOENT)
        log_warn("athena: cannot remove the DDL marker", "path", ea->ddl_marker, NULL);
    pthread_mutex_unlock(&ea->ddl_lock);
}

/* ---- the token ledger ----------------------------------------------------------------------
 *
 * <data_dir>/athena/tokens/<job id> holds "<generation> <attempt> <open|closed> <token>" for the
 * job's last start. It is written (fsync'ed) as "open" before StartQueryExecution and turned
 * "closed" by the first poll, which the worker only makes after it stored the handle. So:
 *   - an open ledger means the handle may never have been stored (a crash between the start's
 *     answer and the store, or a start that failed without a definite answer): the next start
 *     re-sends the same token, and Athena answers with the execution it may already have
 *     started instead of starting a second one;
 *   - a closed ledger whose attempt is not below this one means the job was replayed
 *     (jobstore_retry() counts attempts from 1 again): a new generation makes new tokens, so the
 *     replay really runs the query again.
 * The token is "hcpipe-<job id>-<attempt>", or "hcpipe-<job id>-g<generation>-<attempt>". The
 * ledger of a job whose results were fetched is removed. */

static int ledger_path(struct engine_athena *ea, const char *job_id, char *out, size_t outlen)
{
    size_t n = job_id ? strlen(job_id) : 0;

    if (n == 0 || n > 64)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!((job_id[i] >= '0' && job_id[i] <= '9') || (job_id[i] >= 'a' && job_id[i] <= 'z') ||
              (job_id[i] >= 'A' && job_id[i] <= 'Z') || job_id[i] == '-'))
            return -1;
    return snprintf(out, outlen, "%s/%s", ea->tokens_dir, job_id) < (int)outlen ? 0 : -1;
}

static void ledger_write(const char *path, int gen, int attempt, int is_open, const char *token)
{
    char tmp[4300], line[256];
    int fd, n;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    n = snprintf(line, sizeof line, "%d %d %s %s\n", gen, attempt, is_open ? "open" : "closed",
                 token);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n || fsync(fd) != 0 || rename(tmp, path) != 0)
        log_warn("athena: cannot write the token ledger", "path", path, "error", strerror(errno),
                 NULL);
    if (fd >= 0)
        close(fd);
}

/* Reads a ledger line; returns 1 when it holds one. */
static int ledger_read(const char *path, int *gen, int *attempt, int *is_open, char *token,
                       size_t tokenlen)
{
    char line[256], state[16], tok[ATHENA_TOKEN_MAX + 1];
    int ok;
    FILE *f = fopen(path, "re");

    if (!f)
        return 0;
    ok = fgets(line, sizeof line, f) &&
         sscanf(line, "%d %d %15s %128s", gen, attempt, state, tok) == 4 &&
         strlen(tok) >= ATHENA_TOKEN_MIN;
    fclose(f);
    if (ok) {
        *is_open = strcmp(state, "open") == 0;
        snprintf(token, tokenlen, "%s", tok);
    }
    return ok;
}

/* Chooses the start's ClientRequestToken (see above) and records it as open. */
static int token_for_start(struct engine_athena *ea, const struct engine_job *job, char *token,
                           size_t tokenlen)
{
    char path[4200];
    int gen = 0, att = 0, is_open = 0, have;

    if (ledger_path(ea, job->job_id, path, sizeof path) != 0)
        return HC_EINVAL; /* the worker always gives a UUID */
    have = ledger_read(path, &gen, &att, &is_open, token, tokenlen);
    if (have && is_open) {
        log_info("athena: re-sending the token of an unfinished start", "job_id", job->job_id,
                 "token", token, NULL);
        return HC_OK; /* the handle may never have been stored */
    }
    if (!have)
        gen = 0;
    else if (job->attempt <= att)
        gen++; /* a replay: new tokens */
    if (gen > 0)
        snprintf(token, tokenlen, "hcpipe-%s-g%d-%d", job->job_id, gen, job->attempt);
    else
        snprintf(token, tokenlen, "hcpipe-%s-%d", job->job_id, job->attempt);
    if (strlen(token) < ATHENA_TOKEN_MIN) { /* a short id: pad deterministically */
        size_t n = strlen(token);

        memset(token + n, '0', ATHENA_TOKEN_MIN - n);
        token[ATHENA_TOKEN_MIN] = '\0';
    }
    ledger_write(path, gen, job->attempt, 1, token);
    return HC_OK;
}

/* The first poll after a start: the worker stored the handle, so the ledger closes. */
static void ledger_close(struct engine_athena *ea, const char *job_id)
{
    char path[4200], token[ATHENA_TOKEN_MAX + 1];
    int gen, att, is_open;

    if (ledger_path(ea, job_id, path, sizeof path) == 0 &&
        ledger_read(path, &gen, &att, &is_open, token, sizeof token) && is_open)
        ledger_write(path, gen, att, 0, token);
}

/* ---- the vtable --------------------------------------------------------------------------- */

static int athena_start(struct engine *e, const struct engine_job *job, const char *handle,
                        char **handle_out, json_t **problem_out)
{
    struct engine_athena *ea = (struct engine_athena *)e;
    struct athena_sql_vars v = {.database = ea->set.database,
                                .table = ea->set.table,
                                .location = ea->set.source_uri,
                                .as_of = job->as_of,
                                .source = job->scope == SCOPE_OBJECT ? job->source : NULL};
    struct athena_start_params p = {0};
    struct athena_error aerr;
    char why[256], token[ATHENA_TOKEN_MAX + 1], *sql = NULL, *id = NULL;
    struct tracked *t;
    int err;

    *handle_out = NULL;
    if (handle && *handle) { /* re-attach: the query was started by an earlier process */
        pthread_mutex_lock(&ea->lock);
        t = track_locked(ea, handle, 0);
        pthread_mutex_unlock(&ea->lock);
        *handle_out = t ? strdup(handle) : NULL;
        return *handle_out ? HC_OK : HC_ENOMEM;
    }
    if (!catalog_find(job->query)) {
        set_problem(problem_out, HC_EUNKNOWNQUERY, job->query);
        return HC_EUNKNOWNQUERY;
    }
    if (job->scope == SCOPE_OBJECT) {
        if (!job->source) {
            set_problem(problem_out, HC_EVALIDATION, "object scope needs a source");
            return HC_EVALIDATION;
        }
        if (strncmp(job->source, ea->set.source_uri, strlen(ea->set.source_uri)) != 0) {
            snprintf(why, sizeof why,
                     "object scope: the source is not under the Athena table's location %s",
                     ea->set.source_uri);
            set_problem(problem_out, HC_EVALIDATION, why);
            return HC_EVALIDATION;
        }
    }
    err = athena_sql_render(job->query, &v, &sql, why, sizeof why);
    if (err) {
        set_problem(problem_out, err, why);
        return err;
    }
    err = ensure_schema(ea, job, problem_out);
    if (err)
        goto out;
    err = token_for_start(ea, job, token, sizeof token);
    if (err)
        goto out;
    p.query_string = sql;
    p.database = ea->set.database;
    p.catalog = ea->set.catalog;
    p.workgroup = ea->set.workgroup;
    p.output_location = ea->set.output;
    p.client_request_token = token;
    int rc_call = athena_start_query(ea->client, &p, &id, &aerr);
    count_call("StartQueryExecution", rc_call, &aerr);
    if (rc_call != 0) {
        err = classify_call(&aerr);
        call_problem(problem_out, err, "StartQueryExecution", &aerr);
        goto out;
    }
    pthread_mutex_lock(&ea->lock);
    t = track_locked(ea, id, ea->set.poll_initial_ms);
    if (t && !t->job_id)
        t->job_id = strdup(job->job_id);
    pthread_mutex_unlock(&ea->lock);
    if (!t) {
        err = HC_ENOMEM;
        goto out;
    }
    log_info("athena: query started", "job_id", job->job_id, "query_execution_id", id, "token",
             token, NULL);
    *handle_out = id;
    id = NULL;
out:
    free(sql);
    free(id);
    return err;
}

/* Statistics of an ended query (new reference). */
static json_t *stats_of(struct engine_athena *ea, const struct athena_query_execution *qe)
{
    double billed = 0, cost;
    json_t *st;

    if (qe->data_scanned_bytes >= 0) {
        const double mb = 1024.0 * 1024.0;

        billed = ceil((double)qe->data_scanned_bytes / mb) * mb;
        if (billed < 10 * mb)
            billed = 10 * mb; /* Athena bills at least 10 MB per query */
    }
    cost = billed / (1024.0 * 1024.0 * 1024.0 * 1024.0) * ea->set.price_per_tb;
    st = json_pack("{s:s, s:s?, s:s?, s:I, s:I, s:I, s:I, s:f, s:s?, s:s?}", "engine", "athena",
                   "query_execution_id", qe->id, "state", qe->state_name, "engine_execution_ms",
                   (json_int_t)qe->engine_execution_time_ms, "queue_ms",
                   (json_int_t)qe->query_queue_time_ms, "total_execution_ms",
                   (json_int_t)qe->total_execution_time_ms, "bytes_scanned",
                   (json_int_t)qe->data_scanned_bytes, "estimated_cost_usd", cost,
                   "output_location", qe->output_location, "workgroup", qe->workgroup);
    return st;
}

static int athena_poll(struct engine *e, const struct engine_job *job, const char *handle,
                       int *done_out, json_t **stats_out, json_t **problem_out)
{
    struct engine_athena *ea = (struct engine_athena *)e;
    struct athena_query_execution qe = {0};
    struct tracked *t;
    char detail[1024];
    json_t *pb;
    int err = HC_OK, missing = 0, denied = 0;

    *done_out = 0;
    if (stats_out)
        *stats_out = NULL;
    pthread_mutex_lock(&ea->lock);
    t = track_locked(ea, handle, 0);
    if (!t) {
        pthread_mutex_unlock(&ea->lock);
        return HC_ENOMEM;
    }
    if (!t->ledger_closed && job && job->job_id) {
        t->ledger_closed = 1;
        pthread_mutex_unlock(&ea->lock);
        ledger_close(ea, job->job_id);
        pthread_mutex_lock(&ea->lock);
        t = track_locked(ea, handle, 0);
        if (!t) {
            pthread_mutex_unlock(&ea->lock);
            return HC_ENOMEM;
        }
    }
    if (!ended(t)) {
        pthread_mutex_unlock(&ea->lock);
        return HC_OK;
    }
    missing = t->missing;
    snprintf(detail, sizeof detail, "query execution %s: %s", handle, t->missing_msg);
    if (!missing) {
        qe = t->qe; /* shallow: used under the lock below */
        if (job && job->progress && qe.data_scanned_bytes > 0)
            atomic_store(&job->progress->bytes_scanned, (uint64_t)qe.data_scanned_bytes);
        if (qe.data_scanned_bytes > 0) /* once: the worker stops polling an ended query */
            metrics_athena_bytes_scanned((uint64_t)qe.data_scanned_bytes);
        if (stats_out)
            *stats_out = stats_of(ea, &qe);
    }
    if (missing) {
        err = missing_error(t);
        set_problem(problem_out, err, detail);
    } else if (qe.state == ATHENA_STATE_SUCCEEDED) {
        *done_out = 1;
    } else {
        const char *msg = qe.error_message         ? qe.error_message
                          : qe.state_change_reason ? qe.state_change_reason
                                                   : "no reason given";
        int gone = qe.state == ATHENA_STATE_FAILED && table_missing(&qe);

        if (qe.state == ATHENA_STATE_CANCELLED)
            err = HC_EENGINE;
        else if (gone || (qe.has_athena_error && qe.error_retryable))
            err = HC_EENGINETRANSIENT;
        else
            err = HC_EENGINE;
        snprintf(detail, sizeof detail, "Athena query %s %s: %s", handle,
                 qe.state == ATHENA_STATE_CANCELLED ? "was cancelled" : "failed", msg);
        pb = hc_problem_new(err, detail);
        if (pb) {
            json_t *a =
                json_pack("{s:s, s:s?}", "query_execution_id", handle, "state", qe.state_name);

            if (a && qe.has_athena_error) {
                json_object_set_new(a, "error_category", json_integer(qe.error_category));
                json_object_set_new(a, "error_type", json_integer(qe.error_type));
                json_object_set_new(a, "retryable", json_boolean(qe.error_retryable));
            }
            if (a && qe.error_message)
                json_object_set_new(a, "error_message", json_string(qe.error_message));
            if (a && qe.state_change_reason)
                json_object_set_new(a, "state_change_reason", json_string(qe.state_change_reason));
            json_object_set_new(pb, "athena", a);
        }
        if (problem_out && !*problem_out)
            *problem_out = pb;
        else
            json_decref(pb);
        if (gone) {
            pthread_mutex_unlock(&ea->lock);
            log_warn("athena: the table is missing; the DDL runs again", "query_execution_id",
                     handle, NULL);
            forget_schema(ea);
            return err;
        }
    }
    denied = missing && t->denied;
    pthread_mutex_unlock(&ea->lock);
    if (denied) { /* the job fails, so its query should not run on unwatched: best effort */
        struct athena_error aerr;
        int rc = athena_stop_query(ea->client, handle, &aerr);

        count_call("StopQueryExecution", rc, &aerr);
        log_warn("athena: a query whose status cannot be checked", "query_execution_id", handle,
                 "stop", rc == 0 ? "asked" : aerr.code, NULL);
    }
    return err;
}

/* Checks that a result's columns are the catalog query's, in order, with compatible types. */
static int check_columns(const struct catalog_query *q, const struct athena_result_page *page,
                         json_t **problem_out)
{
    char detail[512];

    if (page->n_columns != q->ncols) {
        snprintf(detail, sizeof detail, "Athena returned %zu columns; %s has %zu", page->n_columns,
                 q->name, q->ncols);
        set_problem(problem_out, HC_EENGINE, detail);
        return HC_EENGINE;
    }
    for (size_t c = 0; c < q->ncols; c++) {
        if (strcmp(page->columns[c].name, q->columns[c].name) != 0 ||
            !athena_sql_type_compatible(page->columns[c].type, q->columns[c].type)) {
            snprintf(detail, sizeof detail, "Athena column %zu is %s %s; the catalog expects %s %s",
                     c + 1, page->columns[c].name, page->columns[c].type, q->columns[c].name,
                     col_type_name(q->columns[c].type));
            set_problem(problem_out, HC_EENGINE, detail);
            return HC_EENGINE;
        }
    }
    return HC_OK;
}

/* Converts one row of result strings (NULL = SQL NULL) and sends it to the sink. */
static int emit_row(const struct catalog_query *q, struct result_sink *sink, struct value *vals,
                    char *const *cells, size_t n, json_t **problem_out)
{
    char detail[512];
    int err;

    if (n != q->ncols) {
        set_problem(problem_out, HC_EENGINE, "an Athena result row has the wrong number of cells");
        return HC_EENGINE;
    }
    for (size_t c = 0; c < q->ncols; c++) {
        err = athena_sql_convert(cells[c], q->columns[c].type, &vals[c]);
        if (err) {
            snprintf(detail, sizeof detail, "column %s: \"%.64s\" is not a %s", q->columns[c].name,
                     cells[c], col_type_name(q->columns[c].type));
            set_problem(problem_out, err, detail);
            return err;
        }
    }
    return sink->row(sink->ctx, vals);
}

/* The query's result is fetched: it is no longer watched, and its job never starts again. */
static void results_done(struct engine_athena *ea, const struct engine_job *job, const char *handle)
{
    char path[4200];

    pthread_mutex_lock(&ea->lock);
    untrack_locked(ea, handle);
    pthread_mutex_unlock(&ea->lock);
    if (ledger_path(ea, job->job_id, path, sizeof path) == 0)
        unlink(path);
}

/* ---- results from the CSV object (HCPIPE_ATHENA_RESULTS=csv|auto) ---- */

struct csv_fetch {
    const struct catalog_query *q;
    struct result_sink *sink;
    struct value *vals;
    struct athena_csv *csv;
    int records; /* records seen, the header included */
    int err;     /* the parser's or the sink's error */
    json_t **problem_out;
};

static int csv_row(void *ctx, char *const *cells, size_t n)
{
    struct csv_fetch *cf = ctx;
    int header = cf->records++ == 0;

    if (header) { /* the header row names the columns */
        for (size_t c = 0; c < n && c < cf->q->ncols; c++)
            if (!cells[c] || strcmp(cells[c], cf->q->columns[c].name) != 0)
                header = 0;
        if (header)
            return HC_OK;
    }
    return emit_row(cf->q, cf->sink, cf->vals, cells, n, cf->problem_out);
}

static int csv_data(void *ctx, const void *data, size_t len)
{
    struct csv_fetch *cf = ctx;

    cf->err = athena_csv_feed(cf->csv, data, len);
    return cf->err ? 1 : 0;
}

/* Splits "s3://bucket/key" into new strings. */
static int split_s3(const char *uri, char **bucket, char **key)
{
    const char *slash;

    *bucket = *key = NULL;
    if (!uri || strncmp(uri, "s3://", 5) != 0 || !(slash = strchr(uri + 5, '/')) || !slash[1])
        return -1;
    *bucket = strndup(uri + 5, (size_t)(slash - uri - 5));
    *key = strdup(slash + 1);
    if (!*bucket || !*key) {
        free(*bucket);
        free(*key);
        *bucket = *key = NULL;
        return -1;
    }
    return 0;
}

/* GetQueryResults of handle into *page (the caller clears it), counted. A failure is classified
 * into the returned error and *problem_out, HC_EENGINEBUSY counting as HC_EENGINETRANSIENT. */
static int get_page(struct engine_athena *ea, const char *handle, const char *token, int max_rows,
                    struct athena_result_page *page, json_t **problem_out)
{
    struct athena_error aerr;
    int rc_call = athena_get_results(ea->client, handle, token, max_rows, page, &aerr);
    int err;

    count_call("GetQueryResults", rc_call, &aerr);
    if (rc_call == 0)
        return HC_OK;
    err = classify_call(&aerr);
    if (err == HC_EENGINEBUSY)
        err = HC_EENGINETRANSIENT;
    call_problem(problem_out, err, "GetQueryResults", &aerr);
    return err;
}

/* Streams the whole result from the CSV object Athena wrote (one "page"). Returns 1 through
 * *used_out when it did (err then tells how), 0 when the pages should be used instead (no S3
 * location, or with auto: small or unreadable). */
static int fetch_csv(struct engine_athena *ea, const struct engine_job *job,
                     const struct catalog_query *q, const char *handle, struct result_sink *sink,
                     int *used_out, json_t **problem_out)
{
    struct csv_fetch cf = {.q = q, .sink = sink, .problem_out = problem_out};
    struct athena_result_page page = {0};
    struct s3_object_info oi;
    struct s3_error se;
    struct tracked *t;
    char *loc = NULL, *bucket = NULL, *key = NULL, detail[768];
    int err = HC_OK;

    *used_out = 0;
    pthread_mutex_lock(&ea->lock);
    t = find_locked(ea, handle);
    if (t && t->seen && t->qe.output_location)
        loc = strdup(t->qe.output_location);
    pthread_mutex_unlock(&ea->lock);
    if (split_s3(loc, &bucket, &key) != 0)
        goto out; /* e.g. managed query results, or re-attached without a status: pages */
    if (ea->set.results == ATHENA_RESULTS_AUTO &&
        (s3_head_object(ea->client, bucket, key, &oi, &se) != 0 || oi.size < CSV_MIN_BYTES))
        goto out;
    *used_out = 1;
    /* The column types come from a one-row page; the values from the object. */
    err = get_page(ea, handle, NULL, 1, &page, problem_out);
    if (err)
        goto out;
    err = check_columns(q, &page, problem_out);
    if (!err)
        err = sink->columns(sink->ctx, q->columns, q->ncols);
    if (err)
        goto out;
    cf.vals = calloc(q->ncols, sizeof *cf.vals);
    cf.csv = athena_csv_new(q->ncols, csv_row, &cf);
    if (!cf.vals || !cf.csv) {
        err = HC_ENOMEM;
        goto out;
    }
    if (s3_get_object(ea->client, bucket, key, NULL, csv_data, &cf, NULL, &se) != 0) {
        if (cf.err) {
            err = cf.err;
        } else {
            err = se.status == 0 || se.status >= 500 ? HC_EENGINETRANSIENT : HC_EENGINE;
            snprintf(detail, sizeof detail, "reading the result %s: %s: %s", loc, se.code,
                     se.message);
            set_problem(problem_out, err, detail);
        }
    } else {
        err = athena_csv_finish(cf.csv);
    }
    if (err == HC_EENGINE)
        set_problem(problem_out, err, "the result CSV is malformed");
    if (!err) {
        char rows[32];

        snprintf(rows, sizeof rows, "%d", cf.records);
        log_info("athena: results read from the CSV object", "query_execution_id", handle,
                 "location", loc, "records", rows, NULL);
        results_done(ea, job, handle);
    }
out:
    athena_csv_free(cf.csv);
    free(cf.vals);
    athena_result_page_clear(&page);
    free(loc);
    free(bucket);
    free(key);
    return err;
}

static int athena_fetch_page(struct engine *e, const struct engine_job *job, const char *handle,
                             const char *token, struct result_sink *sink, char **next_token_out,
                             json_t **problem_out)
{
    struct engine_athena *ea = (struct engine_athena *)e;
    const struct catalog_query *q = catalog_find(job->query);
    struct athena_result_page page = {0};
    struct value *vals = NULL;
    int err = HC_OK, used = 0;

    *next_token_out = NULL;
    if (!q) {
        set_problem(problem_out, HC_EUNKNOWNQUERY, job->query);
        return HC_EUNKNOWNQUERY;
    }
    if (!token && ea->set.results != ATHENA_RESULTS_PAGES) {
        err = fetch_csv(ea, job, q, handle, sink, &used, problem_out);
        if (used || err)
            return err;
    }
    err = get_page(ea, handle, token, RESULT_PAGE_ROWS, &page, problem_out);
    if (err)
        goto out;
    err = check_columns(q, &page, problem_out);
    if (!err && !token)
        err = sink->columns(sink->ctx, q->columns, q->ncols);
    if (err)
        goto out;
    vals = calloc(q->ncols, sizeof *vals);
    if (!vals) {
        err = HC_ENOMEM;
        goto out;
    }
    for (size_t r = 0; r < page.n_rows && !err; r++)
        err = emit_row(q, sink, vals, page.rows[r].cells, page.rows[r].n_cells, problem_out);
    if (!err && page.next_token) {
        *next_token_out = strdup(page.next_token);
        if (!*next_token_out)
            err = HC_ENOMEM;
    }
    if (!err && !page.next_token)
        results_done(ea, job, handle);
out:
    free(vals);
    athena_result_page_clear(&page);
    return err;
}

static int athena_cancel(struct engine *e, const char *handle)
{
    struct engine_athena *ea = (struct engine_athena *)e;
    struct athena_error aerr;
    struct tracked *t;
    int done, is_ended;

    if (!handle || !*handle)
        return HC_OK;
    pthread_mutex_lock(&ea->lock);
    t = find_locked(ea, handle);
    if (t && t->job_id && !t->ledger_closed) {
        /* Stopped before its first poll (e.g. the handle could not be stored): the execution
         * is being stopped, so the next attempt must not re-send its token. */
        char *jid = strdup(t->job_id);

        t->ledger_closed = 1;
        pthread_mutex_unlock(&ea->lock);
        if (jid)
            ledger_close(ea, jid);
        free(jid);
        pthread_mutex_lock(&ea->lock);
        t = find_locked(ea, handle);
    }
    is_ended = t && ended(t);
    if (is_ended)
        untrack_locked(ea, handle);
    pthread_mutex_unlock(&ea->lock);
    if (is_ended)
        return HC_OK;
    int rc_call = athena_stop_query(ea->client, handle, &aerr);
    count_call("StopQueryExecution", rc_call, &aerr);
    if (rc_call != 0) {
        log_warn("athena: StopQueryExecution failed", "query_execution_id", handle, "code",
                 aerr.code, "message", aerr.message, NULL);
        if (strcmp(aerr.code, "InvalidRequestException") != 0)
            return classify_call(&aerr) == HC_EENGINE ? HC_EENGINE : HC_EENGINETRANSIENT;
    }
    done = wait_ended(ea, handle, NULL, STOP_WAIT_MS, 1, NULL, 0);
    pthread_mutex_lock(&ea->lock);
    t = find_locked(ea, handle);
    log_info("athena: query stopped", "query_execution_id", handle, "state",
             t && t->seen ? athena_state_name(t->qe.state) : "unknown", NULL);
    untrack_locked(ea, handle);
    pthread_mutex_unlock(&ea->lock);
    return done ? HC_OK : HC_EENGINETRANSIENT;
}

static void athena_destroy(struct engine *e)
{
    struct engine_athena *ea = (struct engine_athena *)e;

    if (!ea)
        return;
    pthread_mutex_lock(&ea->lock);
    ea->stopping = 1;
    pthread_cond_broadcast(&ea->changed);
    pthread_mutex_unlock(&ea->lock);
    if (ea->poller_started)
        pthread_join(ea->poller, NULL);
    while (ea->tracked)
        untrack_locked(ea, ea->tracked->id);
    aws_client_free(ea->client);
    aws_credentials_provider_free(ea->creds);
    engine_athena_settings_free(&ea->set);
    free(ea->ddl_marker);
    free(ea->tokens_dir);
    pthread_cond_destroy(&ea->changed);
    pthread_mutex_destroy(&ea->lock);
    pthread_mutex_destroy(&ea->ddl_lock);
    free(ea);
}

static const struct engine_ops athena_ops = {
    .name = "athena",
    .start = athena_start,
    .poll = athena_poll,
    .fetch_page = athena_fetch_page,
    .cancel = athena_cancel,
    .destroy = athena_destroy,
};

int engine_athena_new(const char *data_dir, const struct athena_settings *s, struct engine **out)
{
    struct engine_athena *ea = NULL;
    struct aws_client_config cc = {0};
    char dir[4096], fp[65], conf[2048];
    int n;

    *out = NULL;
    if (!data_dir || !s)
        return HC_EINVAL;
    n = snprintf(dir, sizeof dir, "%s/athena", data_dir);
    if (n < 0 || (size_t)n >= sizeof dir)
        return HC_EINVAL;
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST)
        return HC_EIO;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return HC_EIO;
    ea = calloc(1, sizeof *ea);
    if (!ea)
        return HC_ENOMEM;
    ea->base.ops = &athena_ops;
    pthread_mutex_init(&ea->lock, NULL);
    pthread_mutex_init(&ea->ddl_lock, NULL);
    sys_cond_init(&ea->changed);
    if (settings_copy(&ea->set, s) != 0)
        goto nomem;
    snprintf(conf, sizeof conf, "%s\n%s\n%s\n%s\n%s\n%s", s->catalog, s->database, s->table,
             s->source_uri, s->workgroup, s->output ? s->output : "");
    sha256_hex(conf, fp);
    ea->ddl_marker = malloc(strlen(dir) + 80);
    if (!ea->ddl_marker)
        goto nomem;
    snprintf(ea->ddl_marker, strlen(dir) + 80, "%s/ddl-%s", dir, fp);
    ea->tokens_dir = malloc(strlen(dir) + 8);
    if (!ea->tokens_dir)
        goto nomem;
    snprintf(ea->tokens_dir, strlen(dir) + 8, "%s/tokens", dir);
    if (mkdir(ea->tokens_dir, 0755) != 0 && errno != EEXIST) {
        athena_destroy(&ea->base);
        return HC_EIO;
    }
    ea->creds = aws_credentials_provider_new();
    cc.credentials = ea->creds;
    ea->client = ea->creds ? aws_client_new(&cc) : NULL;
    if (!ea->client)
        goto nomem;
    if (pthread_create(&ea->poller, NULL, poller_main, ea) != 0)
        goto nomem;
    ea->poller_started = 1;
    *out = &ea->base;
    return HC_OK;
nomem:
    athena_destroy(&ea->base);
    return HC_ENOMEM;
}

int64_t engine_athena_requeue_delay_ms(const struct engine *e)
{
    return ((const struct engine_athena *)e)->set.requeue_delay_ms;
}

uint64_t engine_athena_status_calls(const struct engine *e)
{
    return atomic_load(&((const struct engine_athena *)e)->status_calls);
}

uint64_t engine_athena_ddl_runs(const struct engine *e)
{
    return atomic_load(&((const struct engine_athena *)e)->ddl_runs);
}
