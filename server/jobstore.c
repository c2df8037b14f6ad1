/*
 * jobstore.c: the job store, one SQLite database in WAL mode.
 *
 * How it is organised:
 *   1. the schema as a list of forward migrations, indexed by PRAGMA user_version and run in one
 *      IMMEDIATE transaction at open (a database newer than this binary is refused);
 *   2. conversions: enum <-> name, row -> struct job, struct job -> API document, the cursor;
 *   3. the public functions. Each is one SQL statement (or a read right after one) run under the
 *      store's mutex in autocommit mode, so every mutation is committed before it returns.
 *
 * Threading: one connection guarded by one pthread mutex. The workers and the HTTP threads only
 * ever run short single-row statements, SQLite serialises writers anyway, and one connection
 * means no SQLITE_BUSY between our own threads and the claim stays atomic without retry loops.
 * busy_timeout is still set for another process (an operator's sqlite3 shell, a second hcpipe).
 * The connection is opened with SQLITE_OPEN_NOMUTEX because our mutex already serialises it.
 *
 * Durability: journal_mode=WAL with synchronous=FULL: a committed job survives a crash and a
 * power loss. Events (POST /events) are group-committed (section 4, rules in jobstore.h):
 * concurrent callers of jobstore_event_record() queue up, and one of them (the leader) records up
 * to JOBSTORE_BATCH_MAX of them in one transaction, so N concurrent events cost one fsync instead
 * of N; each caller returns only after the transaction that holds its event committed or failed.
 * Two things keep a batch's transaction small: ids are UUIDv7 (time-ordered, so new rows append
 * to the right edge of the id indexes instead of dirtying one random leaf per row and index), and
 * temp_store=MEMORY keeps the per-event savepoints' sub-journal in memory instead of a temporary
 * file written page by page.
 *
 * Schema versions:
 *   1  the jobs table and its indexes (claim, listing, listing by state and by query);
 *   2  jobs.event_id and an index on it (the events issue looks jobs up by event);
 *   3  the events table (POST /events: one row per object event, its dedup keys, its order
 *      among the events of the same object, and the jobs it made).
 * A new version appends one entry to `migrations`; never edit an entry that has shipped.
 */
#include "server/jobstore.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/error.h"
#include "server/fault.h"
#include "server/log.h"
#include "server/sys.h"

/* One caller of jobstore_event_record() waiting for its group commit (on the caller's stack). */
struct event_req {
    const struct event_record *ev;
    const struct job_spec *specs;
    size_t n_specs;
    struct event_outcome *out;
    int64_t deadline_ms; /* sys_mono_ms() past which it may no longer be taken into a batch */
    int err;             /* its result, set by the leader */
    int done;            /* 1 once the leader committed (or failed) it; under ev_lock */
    struct event_req *next;
};

struct jobstore {
    sqlite3 *db;          /* the one connection (see the file header) */
    pthread_mutex_t lock; /* held around every use of db */
    /* Group commit of events (see jobstore_event_record()), all under ev_lock. */
    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;    /* broadcast when a batch is done */
    struct event_req *ev_head; /* requests waiting for the next batch, oldest first */
    struct event_req **ev_tail;
    size_t ev_queued; /* requests in the queue (not yet taken by a leader) */
    int ev_leader;    /* 1 while a caller commits a batch */
    struct jobstore_batch_stats ev_stats;
};

/* ---- 1. schema ---------------------------------------------------------------------------- */

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE jobs ("
    "  id               TEXT PRIMARY KEY NOT NULL,"
    "  query            TEXT NOT NULL,"
    "  source           TEXT,"
    "  as_of            TEXT NOT NULL,"
    "  scope            TEXT NOT NULL CHECK (scope IN ('dataset', 'object')),"
    "  on_bad_record    TEXT NOT NULL CHECK (on_bad_record IN ('fail', 'skip')),"
    "  timeout_s        INTEGER NOT NULL DEFAULT 0,"
    "  engine           TEXT NOT NULL,"
    "  state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'retrying',"
    "                     'succeeded', 'failed', 'dead', 'cancelled')),"
    "  attempts         INTEGER NOT NULL DEFAULT 0,"
    "  handle           TEXT,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  created_ms       INTEGER NOT NULL,"
    "  updated_ms       INTEGER NOT NULL,"
    "  started_ms       INTEGER NOT NULL DEFAULT 0,"
    "  finished_ms      INTEGER NOT NULL DEFAULT 0,"
    "  next_run_ms      INTEGER NOT NULL DEFAULT 0,"
    "  error            TEXT,"
    "  stats            TEXT,"
    "  row_count        INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX jobs_claim ON jobs (next_run_ms, created_ms)"
    "  WHERE state IN ('queued', 'retrying');"
    "CREATE INDEX jobs_by_created ON jobs (created_ms DESC, id DESC);"
    "CREATE INDEX jobs_by_state ON jobs (state, created_ms DESC, id DESC);"
    "CREATE INDEX jobs_by_query ON jobs (query, created_ms DESC, id DESC);",
    /* 1 -> 2 */
    "ALTER TABLE jobs ADD COLUMN event_id TEXT;"
    "CREATE INDEX jobs_by_event ON jobs (event_id) WHERE event_id IS NOT NULL;",
    /* 2 -> 3 */
    "CREATE TABLE events ("
    "  id          TEXT PRIMARY KEY NOT NULL,"
    "  dedup_id    TEXT NOT NULL UNIQUE,"
    "  format      TEXT NOT NULL,"
    "  kind        TEXT NOT NULL CHECK (kind IN ('created', 'deleted')),"
    "  bucket      TEXT NOT NULL,"
    "  key         TEXT NOT NULL,"
    "  raw_key     TEXT NOT NULL,"
    "  source      TEXT NOT NULL,"
    "  sequencer   TEXT,"
    "  seq_norm    TEXT,"
    "  etag        TEXT,"
    "  version_id  TEXT,"
    "  size        INTEGER,"
    "  event_time  TEXT,"
    "  received_ms INTEGER NOT NULL,"
    "  status      TEXT NOT NULL CHECK (status IN ('applied', 'superseded')),"
    "  superseded_by TEXT,"
    "  job_ids     TEXT NOT NULL"
    ");"
    "CREATE UNIQUE INDEX events_by_seq ON events (bucket, key, seq_norm)"
    "  WHERE seq_norm IS NOT NULL;"
    "CREATE INDEX events_by_key ON events (bucket, key, received_ms);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* Columns in the order row_to_job() reads them. */
#define JOB_COLS                                                                                   \
    "id, query, source, as_of, scope, on_bad_record, timeout_s, engine, event_id, state, "         \
    "attempts, handle, cancel_requested, created_ms, updated_ms, started_ms, finished_ms, "        \
    "next_run_ms, error, stats, row_count"

/* Maps an SQLite result code to an hc_err and logs it. */
static int db_err(struct jobstore *js, int rc, const char *what)
{
    log_error("jobstore: sqlite error", "op", what, "error", sqlite3_errmsg(js->db), NULL);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return HC_ENOMEM;
    case SQLITE_FULL:
        return HC_EDISKFULL;
    case SQLITE_IOERR:
        return HC_EIO;
    default:
        return HC_EDB;
    }
}

static int exec(struct jobstore *js, const char *sql)
{
    int rc = sqlite3_exec(js->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? HC_OK : db_err(js, rc, sql);
}

/* Ends the transaction: COMMIT when err is HC_OK, else (or when COMMIT fails) ROLLBACK, so a
 * failed call changes nothing. A failed ROLLBACK is tried once more: a transaction left open
 * would refuse every later BEGIN. Returns err, or COMMIT's error. */
static int end_tx(struct jobstore *js, int err)
{
    if (!err)
        err = exec(js, "COMMIT");
    if (err && !sqlite3_get_autocommit(js->db) &&
        sqlite3_exec(js->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK &&
        !sqlite3_get_autocommit(js->db))
        sqlite3_exec(js->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static int user_version(struct jobstore *js, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(js->db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? HC_OK : db_err(js, rc, "user_version");
}

/* Runs the missing migrations in one transaction. */
static int migrate(struct jobstore *js)
{
    char sql[64];
    int version = 0;
    int err = exec(js, "BEGIN IMMEDIATE");

    if (err)
        return err;
    err = user_version(js, &version);
    if (!err && version > SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "%d", version);
        log_error("jobstore: database schema is newer than this program", "user_version", sql,
                  NULL);
        err = HC_EDB;
    }
    for (int v = version; !err && v < SCHEMA_VERSION; v++)
        err = exec(js, migrations[v]);
    if (!err && version < SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        err = exec(js, sql);
    }
    return end_tx(js, err);
}

int jobstore_open(const char *path, struct jobstore **out)
{
    struct jobstore *js = NULL;
    int err = HC_OK;
    int rc;

    *out = NULL;
    js = calloc(1, sizeof *js);
    if (!js)
        return HC_ENOMEM;
    pthread_mutex_init(&js->lock, NULL);
    pthread_mutex_init(&js->ev_lock, NULL);
    pthread_cond_init(&js->ev_cond, NULL);
    js->ev_tail = &js->ev_head;
    rc = sqlite3_open_v2(path, &js->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err = js->db ? db_err(js, rc, "open") : HC_ENOMEM;
        goto out;
    }
    sqlite3_busy_timeout(js->db, 5000);
    sqlite3_extended_result_codes(js->db, 1);
    err = exec(js, "PRAGMA journal_mode = WAL");
    if (!err)
        err = exec(js, "PRAGMA synchronous = FULL");
    /* Savepoint sub-journals in memory: a batch of events (one savepoint each) would otherwise
     * spill its sub-journal to a temporary file and write every page twice more. */
    if (!err)
        err = exec(js, "PRAGMA temp_store = MEMORY");
    if (!err)
        err = exec(js, "PRAGMA foreign_keys = ON");
    if (!err)
        err = migrate(js);
out:
    if (err) {
        jobstore_close(js);
        return err;
    }
    *out = js;
    return HC_OK;
}

void jobstore_close(struct jobstore *js)
{
    char batches[24], events[24], largest[24], failed[24], refused[24];

    if (!js)
        return;
    if (js->ev_stats.batches) {
        snprintf(batches, sizeof batches, "%llu", (unsigned long long)js->ev_stats.batches);
        snprintf(events, sizeof events, "%llu", (unsigned long long)js->ev_stats.events);
        snprintf(largest, sizeof largest, "%zu", js->ev_stats.largest);
        snprintf(failed, sizeof failed, "%llu", (unsigned long long)js->ev_stats.failed_batches);
        snprintf(refused, sizeof refused, "%llu", (unsigned long long)js->ev_stats.refused);
        log_info("jobstore: group commit of events", "batches", batches, "events", events,
                 "largest_batch", largest, "failed_batches", failed, "refused", refused, NULL);
    }
    sqlite3_close(js->db);
    pthread_mutex_destroy(&js->lock);
    pthread_mutex_destroy(&js->ev_lock);
    pthread_cond_destroy(&js->ev_cond);
    free(js);
}

/* ---- 2. conversions ----------------------------------------------------------------------- */

static const char *const state_names[] = {"queued", "running", "retrying", "succeeded",
                                          "failed", "dead",    "cancelled"};

const char *job_state_name(enum job_state s)
{
    return ((int)s >= 0 && (int)s <= JOB_CANCELLED) ? state_names[s] : "unknown";
}

int job_state_parse(const char *name)
{
    for (int i = 0; name && i <= JOB_CANCELLED; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

static const char *scope_name(enum job_scope s)
{
    return s == SCOPE_OBJECT ? "object" : "dataset";
}

static const char *policy_name(enum bad_record_policy p)
{
    return p == BAD_RECORD_SKIP ? "skip" : "fail";
}

void job_free(struct job *job)
{
    if (!job)
        return;
    free(job->query);
    free(job->source);
    free(job->as_of);
    free(job->engine);
    free(job->event_id);
    free(job->handle);
    json_decref(job->error);
    json_decref(job->stats);
    free(job);
}

/* A malloc'ed copy of a text column, NULL for SQL NULL; *oom set when the copy failed. */
static char *col_dup(sqlite3_stmt *st, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    char *s;

    if (!t)
        return NULL;
    s = strdup((const char *)t);
    if (!s)
        *oom = 1;
    return s;
}

static int col_equals(sqlite3_stmt *st, int i, const char *want)
{
    const unsigned char *t = sqlite3_column_text(st, i);

    return t && strcmp((const char *)t, want) == 0;
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);

    return t ? json_loads((const char *)t, JSON_DECODE_ANY, NULL) : NULL;
}

/* Builds a job from the current row (columns as JOB_COLS). */
static int row_to_job(sqlite3_stmt *st, struct job **out)
{
    struct job *job = calloc(1, sizeof *job);
    const unsigned char *id;
    int oom = 0;
    int state;

    *out = NULL;
    if (!job)
        return HC_ENOMEM;
    id = sqlite3_column_text(st, 0);
    snprintf(job->id, sizeof job->id, "%s", id ? (const char *)id : "");
    job->query = col_dup(st, 1, &oom);
    job->source = col_dup(st, 2, &oom);
    job->as_of = col_dup(st, 3, &oom);
    job->scope = col_equals(st, 4, "object") ? SCOPE_OBJECT : SCOPE_DATASET;
    job->on_bad_record = col_equals(st, 5, "skip") ? BAD_RECORD_SKIP : BAD_RECORD_FAIL;
    job->timeout_s = sqlite3_column_int(st, 6);
    job->engine = col_dup(st, 7, &oom);
    job->event_id = col_dup(st, 8, &oom);
    state = job_state_parse((const char *)sqlite3_column_text(st, 9));
    job->state = state < 0 ? JOB_FAILED : (enum job_state)state;
    job->attempts = sqlite3_column_int(st, 10);
    job->handle = col_dup(st, 11, &oom);
    job->cancel_requested = sqlite3_column_int(st, 12);
    job->created_ms = sqlite3_column_int64(st, 13);
    job->updated_ms = sqlite3_column_int64(st, 14);
    job->started_ms = sqlite3_column_int64(st, 15);
    job->finished_ms = sqlite3_column_int64(st, 16);
    job->next_run_ms = sqlite3_column_int64(st, 17);
    job->error = col_json(st, 18);
    job->stats = col_json(st, 19);
    job->row_count = (uint64_t)sqlite3_column_int64(st, 20);
    if (oom) {
        job_free(job);
        return HC_ENOMEM;
    }
    *out = job;
    return HC_OK;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t ms)
{
    char t[25];

    if (ms <= 0)
        return json_null();
    sys_time_rfc3339(ms, t);
    return json_string(t);
}

json_t *job_to_json(const struct job *job)
{
    json_t *doc = json_object();
    char link[96];
    int bad = 0;

    if (!doc)
        return NULL;
    bad |= json_object_set_new(doc, "id", json_string(job->id));
    bad |= json_object_set_new(doc, "state", json_string(job_state_name(job->state)));
    bad |= json_object_set_new(doc, "query", str_or_null(job->query));
    bad |= json_object_set_new(doc, "as_of", str_or_null(job->as_of));
    bad |= json_object_set_new(doc, "source", str_or_null(job->source));
    bad |= json_object_set_new(doc, "scope", json_string(scope_name(job->scope)));
    bad |= json_object_set_new(doc, "on_bad_record", json_string(policy_name(job->on_bad_record)));
    bad |= json_object_set_new(doc, "timeout_s", json_integer(job->timeout_s));
    bad |= json_object_set_new(doc, "engine", str_or_null(job->engine));
    bad |= json_object_set_new(doc, "event_id", str_or_null(job->event_id));
    bad |= json_object_set_new(doc, "attempts", json_integer(job->attempts));
    bad |= json_object_set_new(doc, "cancel_requested", json_boolean(job->cancel_requested));
    bad |= json_object_set_new(doc, "created_at", time_or_null(job->created_ms));
    bad |= json_object_set_new(doc, "updated_at", time_or_null(job->updated_ms));
    bad |= json_object_set_new(doc, "started_at", time_or_null(job->started_ms));
    bad |= json_object_set_new(doc, "finished_at", time_or_null(job->finished_ms));
    bad |= json_object_set_new(doc, "next_run_at",
                               job->state == JOB_RETRYING ? time_or_null(job->next_run_ms)
                                                          : json_null());
    bad |= json_object_set_new(doc, "error", job->error ? json_incref(job->error) : json_null());
    bad |= json_object_set_new(doc, "stats", job->stats ? json_incref(job->stats) : json_null());
    bad |= json_object_set_new(
        doc, "row_count",
        job->state == JOB_SUCCEEDED ? json_integer((json_int_t)job->row_count) : json_null());
    if (job->state == JOB_SUCCEEDED) {
        json_t *links = json_object();

        bad |= json_object_set_new(doc, "links", links);
        snprintf(link, sizeof link, "/jobs/%s", job->id);
        bad |= json_object_set_new(links, "self", json_string(link));
        snprintf(link, sizeof link, "/jobs/%s/result.json", job->id);
        bad |= json_object_set_new(links, "result_json", json_string(link));
        snprintf(link, sizeof link, "/jobs/%s/result.csv", job->id);
        bad |= json_object_set_new(links, "result_csv", json_string(link));
    }
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/*
 * The listing cursor: base64url (no padding) of "<created_ms>:<id>" of the last job of a page.
 * Opaque to clients; decoding checks every byte, so a forged or truncated cursor is refused.
 */
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *cursor_encode(int64_t created_ms, const char *id)
{
    char plain[96];
    int n = snprintf(plain, sizeof plain, "%lld:%s", (long long)created_ms, id);
    char *out = malloc((size_t)n / 3 * 4 + 5);
    size_t o = 0;

    if (!out)
        return NULL;
    for (int i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)plain[i] << 16;
        int left = n - i;

        if (left > 1)
            v |= (uint32_t)(unsigned char)plain[i + 1] << 8;
        if (left > 2)
            v |= (unsigned char)plain[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (left > 1)
            out[o++] = b64url[(v >> 6) & 63];
        if (left > 2)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64url_value(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;

    return p ? (int)(p - b64url) : -1;
}

/* Decodes a cursor into its creation time and id. HC_EVALIDATION when malformed. */
static int cursor_decode(const char *cursor, int64_t *created_ms, char id[37])
{
    char plain[96];
    size_t len = strlen(cursor), n = 0;
    uint32_t acc = 0;
    int bits = 0;
    char *end;
    const char *colon;
    long long ms;

    if (len == 0 || len > 120 || len % 4 == 1)
        return HC_EVALIDATION;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(cursor[i]);

        if (v < 0)
            return HC_EVALIDATION;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            plain[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    plain[n] = '\0';
    colon = strchr(plain, ':');
    if (!colon || colon == plain || strlen(colon + 1) != 36 || memchr(plain, '\0', n))
        return HC_EVALIDATION;
    for (const char *p = plain; p < colon; p++)
        if (*p < '0' || *p > '9')
            return HC_EVALIDATION;
    for (const char *p = colon + 1; *p; p++)
        if (!strchr("0123456789abcdef-", *p))
            return HC_EVALIDATION;
    ms = strtoll(plain, &end, 10);
    if (end != colon || ms < 0)
        return HC_EVALIDATION;
    *created_ms = ms;
    memcpy(id, colon + 1, 37);
    return HC_OK;
}

/* ---- 3. the store ------------------------------------------------------------------------- */

static int prepare(struct jobstore *js, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(js->db, sql, -1, st, NULL);

    return rc == SQLITE_OK ? HC_OK : db_err(js, rc, sql);
}

static void bind_text(sqlite3_stmt *st, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(st, name);

    if (!v)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static void bind_int64(sqlite3_stmt *st, const char *name, int64_t v)
{
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, name), v);
}

/* Binds a JSON document as compact text (NULL -> SQL NULL). HC_ENOMEM when it can't be dumped. */
static int bind_json(sqlite3_stmt *st, const char *name, const json_t *v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    char *text;

    if (!v)
        return sqlite3_bind_null(st, i) == SQLITE_OK ? HC_OK : HC_EDB;
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return HC_ENOMEM;
    sqlite3_bind_text(st, i, text, -1, free);
    return HC_OK;
}

/* Reads one job by id; the lock is held. */
static int get_locked(struct jobstore *js, const char *id, struct job **out)
{
    sqlite3_stmt *st = NULL;
    int err = prepare(js, "SELECT " JOB_COLS " FROM jobs WHERE id = :id", &st);
    int rc;

    *out = NULL;
    if (err)
        return err;
    bind_text(st, ":id", id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = row_to_job(st, out);
    else if (rc == SQLITE_DONE)
        err = HC_EJOBNOTFOUND;
    else
        err = db_err(js, rc, "get");
    sqlite3_finalize(st);
    return err;
}

/* After an UPDATE that changed nothing: the job is missing, or in the wrong state. */
static int explain_miss_locked(struct jobstore *js, const char *id)
{
    struct job *job = NULL;
    int err = get_locked(js, id, &job);

    job_free(job);
    return err ? err : HC_ECONFLICT;
}

/* Runs a prepared single-row UPDATE of job `id` (bound as :id) and finalizes it. HC_OK when a
 * row changed, HC_EJOBNOTFOUND or HC_ECONFLICT otherwise; *out (optional) receives the job. */
static int update_locked(struct jobstore *js, sqlite3_stmt *st, const char *id, struct job **out)
{
    int rc = sqlite3_step(st);
    int err = rc == SQLITE_DONE ? HC_OK : db_err(js, rc, "update");

    sqlite3_finalize(st);
    if (err)
        return err;
    if (sqlite3_changes(js->db) == 0)
        return explain_miss_locked(js, id);
    if (out)
        err = get_locked(js, id, out);
    return err;
}

/* A new id for a job or an event: a UUID version 7 (RFC 9562), i.e. the 48-bit creation time
 * in ms then 74 random bits (those of sys_uuid()). Time-ordered ids append to the right edge of
 * the primary-key and event_id indexes instead of landing on a random leaf each, so a batch of
 * inserts dirties (and writes to the WAL) a few pages instead of one page per row and index. */
static void new_id(int64_t now_ms, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t t = (uint64_t)now_ms & 0xffffffffffffULL;
    static const int pos[12] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12};

    sys_uuid(out);
    for (int i = 11; i >= 0; i--, t >>= 4)
        out[pos[i]] = hex[t & 0xf];
    out[14] = '7';
}

/* Inserts a queued job with a new id (written to id_out); the lock is held. */
static int insert_locked(struct jobstore *js, const struct job_spec *spec, int64_t now,
                         char id_out[37])
{
    sqlite3_stmt *st = NULL;
    char date[11];
    int err, rc;

    new_id(now, id_out);
    sys_date_utc(now, date);
    err = prepare(js,
                  "INSERT INTO jobs (id, query, source, as_of, scope, on_bad_record, timeout_s,"
                  " engine, event_id, state, attempts, created_ms, updated_ms, next_run_ms)"
                  " VALUES (:id, :query, :source, :as_of, :scope, :policy, :timeout, :engine,"
                  " :event, 'queued', 0, :now, :now, :now)",
                  &st);
    if (err)
        return err;
    bind_text(st, ":id", id_out);
    bind_text(st, ":query", spec->query);
    bind_text(st, ":source", spec->source);
    bind_text(st, ":as_of", spec->as_of ? spec->as_of : date);
    bind_text(st, ":scope", scope_name(spec->scope));
    bind_text(st, ":policy", policy_name(spec->on_bad_record));
    bind_int64(st, ":timeout", spec->timeout_s);
    bind_text(st, ":engine", spec->engine ? spec->engine : "local");
    bind_text(st, ":event", spec->event_id);
    bind_int64(st, ":now", now);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        err = db_err(js, rc, "insert");
    sqlite3_finalize(st);
    return err;
}

int jobstore_insert(struct jobstore *js, const struct job_spec *spec, struct job **out)
{
    char id[37];
    int err;

    if (out)
        *out = NULL;
    if (!spec->query || spec->timeout_s < 0)
        return HC_EINVAL;
    pthread_mutex_lock(&js->lock);
    /* One transaction with the read-back: an error means no job was stored, so a client that
     * got one may submit again without making a duplicate. */
    err = exec(js, "BEGIN IMMEDIATE");
    if (!err) {
        err = insert_locked(js, spec, sys_now_ms(), id);
        if (!err && out)
            err = get_locked(js, id, out);
        err = end_tx(js, err);
    }
    if (err && out) {
        job_free(*out);
        *out = NULL;
    }
    pthread_mutex_unlock(&js->lock);
    return err;
}

int jobstore_get(struct jobstore *js, const char *id, struct job **out)
{
    int err;

    pthread_mutex_lock(&js->lock);
    err = get_locked(js, id, out);
    pthread_mutex_unlock(&js->lock);
    return err;
}

/* Steps a SELECT of JOB_COLS into a growing array (at most `max` jobs). */
static int collect_locked(struct jobstore *js, sqlite3_stmt *st, size_t max, struct job ***jobs_out,
                          size_t *n_out)
{
    struct job **jobs = NULL;
    size_t n = 0, cap = 0;
    int err = HC_OK;
    int rc = SQLITE_DONE;

    while (n < max) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct job **grown = realloc(jobs, ncap * sizeof *grown);

            if (!grown) {
                err = HC_ENOMEM;
                break;
            }
            jobs = grown;
            cap = ncap;
        }
        err = row_to_job(st, &jobs[n]);
        if (err)
            break;
        n++;
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = db_err(js, rc, "select");
    if (err) {
        for (size_t i = 0; i < n; i++)
            job_free(jobs[i]);
        free(jobs);
        return err;
    }
    *jobs_out = jobs;
    *n_out = n;
    return HC_OK;
}

int jobstore_list(struct jobstore *js, const struct job_filter *f, struct job ***jobs_out,
                  size_t *n_out, char **next_cursor_out)
{
    sqlite3_stmt *st = NULL;
    struct job **jobs = NULL;
    size_t n = 0;
    char sql[512], cursor_id[37];
    int64_t cursor_ms = 0;
    int err;

    *jobs_out = NULL;
    *n_out = 0;
    *next_cursor_out = NULL;
    if (f->limit < 1 || f->limit > 1000 || f->state < -1 || f->state > JOB_CANCELLED)
        return HC_EVALIDATION;
    if (f->cursor && cursor_decode(f->cursor, &cursor_ms, cursor_id) != HC_OK)
        return HC_EVALIDATION;
    snprintf(sql, sizeof sql,
             "SELECT " JOB_COLS " FROM jobs WHERE 1%s%s%s"
             " ORDER BY created_ms DESC, id DESC LIMIT :limit",
             f->state >= 0 ? " AND state = :state" : "", f->query ? " AND query = :query" : "",
             f->cursor ? " AND (created_ms < :cms OR (created_ms = :cms AND id < :cid))" : "");
    pthread_mutex_lock(&js->lock);
    err = prepare(js, sql, &st);
    if (err)
        goto out;
    if (f->state >= 0)
        bind_text(st, ":state", job_state_name((enum job_state)f->state));
    bind_text(st, ":query", f->query);
    if (f->cursor) {
        bind_int64(st, ":cms", cursor_ms);
        bind_text(st, ":cid", cursor_id);
    }
    /* One more than asked for: its presence says whether there is a next page. */
    bind_int64(st, ":limit", (int64_t)f->limit + 1);
    err = collect_locked(js, st, f->limit + 1, &jobs, &n);
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&js->lock);
    if (err)
        return err;
    if (n > f->limit) {
        job_free(jobs[f->limit]);
        n = f->limit;
        *next_cursor_out = cursor_encode(jobs[n - 1]->created_ms, jobs[n - 1]->id);
        if (!*next_cursor_out) {
            for (size_t i = 0; i < n; i++)
                job_free(jobs[i]);
            free(jobs);
            return HC_ENOMEM;
        }
    }
    *jobs_out = jobs;
    *n_out = n;
    return HC_OK;
}

int jobstore_list_by_event(struct jobstore *js, const char *event_id, struct job ***jobs_out,
                           size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int err;

    *jobs_out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&js->lock);
    err = prepare(js,
                  "SELECT " JOB_COLS " FROM jobs WHERE event_id = :event"
                  " ORDER BY created_ms, rowid",
                  &st);
    if (!err) {
        bind_text(st, ":event", event_id);
        err = collect_locked(js, st, SIZE_MAX, jobs_out, n_out);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&js->lock);
    return err;
}

int jobstore_claim(struct jobstore *js, int64_t now_ms, struct job **out)
{
    sqlite3_stmt *st = NULL;
    int err, rc;

    *out = NULL;
    pthread_mutex_lock(&js->lock);
    /* One statement: the pick and the update are atomic even against another process. The
     * partial index jobs_claim holds exactly the runnable states in claim order, so the pick is
     * its first entry (the planner would otherwise sort every queued job). It runs in an
     * explicit transaction: when reading the returned row fails, the claim is rolled back
     * (autocommit would commit it at finalize and leave the job `running` with nobody running
     * it until the next restart). */
    err = exec(js, "BEGIN IMMEDIATE");
    if (err)
        goto out;
    err = prepare(js,
                  "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                  " started_ms = :now, updated_ms = :now"
                  " WHERE id = (SELECT id FROM jobs INDEXED BY jobs_claim"
                  "   WHERE state IN ('queued', 'retrying') AND next_run_ms <= :now"
                  "   ORDER BY next_run_ms, created_ms, rowid LIMIT 1)"
                  " RETURNING " JOB_COLS,
                  &st);
    if (!err) {
        bind_int64(st, ":now", now_ms);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            err = row_to_job(st, out);
            rc = sqlite3_step(st);
            if (rc != SQLITE_DONE && !err)
                err = db_err(js, rc, "claim");
        } else if (rc == SQLITE_DONE) {
            err = HC_ENOTFOUND;
        } else {
            err = db_err(js, rc, "claim");
        }
        sqlite3_finalize(st);
    }
    err = end_tx(js, err);
    if (err && *out) {
        job_free(*out);
        *out = NULL;
    }
out:
    pthread_mutex_unlock(&js->lock);
    return err;
}

/* The values an UPDATE of one job binds besides :id and :now; a key NULL: not bound. */
struct job_update {
    const char *sql;      /* single-row UPDATE ... WHERE id = :id AND <the states it may leave> */
    const char *text_key; /* a text parameter (NULL value: SQL NULL) */
    const char *text;
    const char *json_key; /* a JSON parameter, bound as compact text (NULL value: SQL NULL) */
    const json_t *json;
    const char *int_key; /* an integer parameter */
    int64_t num;
};

/* Runs u's UPDATE of job `id` under the lock, :now being the clock; results as update_locked()
 * (*out, optional, is NULL on failure). */
static int update_job(struct jobstore *js, const char *id, const struct job_update *u,
                      struct job **out)
{
    sqlite3_stmt *st = NULL;
    int64_t now = sys_now_ms();
    int err;

    if (out)
        *out = NULL;
    pthread_mutex_lock(&js->lock);
    err = prepare(js, u->sql, &st);
    if (!err) {
        if (u->text_key)
            bind_text(st, u->text_key, u->text);
        if (u->json_key)
            err = bind_json(st, u->json_key, u->json);
        if (u->int_key)
            bind_int64(st, u->int_key, u->num);
        bind_int64(st, ":now", now);
        bind_text(st, ":id", id);
        if (err)
            sqlite3_finalize(st);
        else
            err = update_locked(js, st, id, out);
    }
    pthread_mutex_unlock(&js->lock);
    return err;
}

int jobstore_set_handle(struct jobstore *js, const char *id, const char *handle)
{
    const struct job_update u = {
        .sql = "UPDATE jobs SET handle = :handle, updated_ms = :now"
               " WHERE id = :id AND state = 'running'",
        .text_key = ":handle",
        .text = handle,
    };

    return update_job(js, id, &u, NULL);
}

int jobstore_succeed(struct jobstore *js, const char *id, json_t *stats, uint64_t row_count)
{
    const struct job_update u = {
        .sql = "UPDATE jobs SET state = 'succeeded', stats = :stats, row_count = :rows,"
               " error = NULL, finished_ms = :now, updated_ms = :now"
               " WHERE id = :id AND state = 'running'",
        .json_key = ":stats",
        .json = stats,
        .int_key = ":rows",
        .num = (int64_t)row_count,
    };

    return update_job(js, id, &u, NULL);
}

int jobstore_fail(struct jobstore *js, const char *id, json_t *problem, int64_t retry_at_ms,
                  int dead)
{
    const struct job_update u = {
        .sql = "UPDATE jobs SET state = :state, error = :error, updated_ms = :now,"
               " next_run_ms = CASE WHEN :retry >= 0 THEN :retry ELSE next_run_ms END,"
               " handle = CASE WHEN :retry >= 0 THEN NULL ELSE handle END,"
               " finished_ms = CASE WHEN :retry >= 0 THEN 0 ELSE :now END"
               " WHERE id = :id AND state = 'running'",
        .text_key = ":state",
        .text = retry_at_ms >= 0 ? "retrying"
                : dead           ? "dead"
                                 : "failed",
        .json_key = ":error",
        .json = problem,
        .int_key = ":retry",
        .num = retry_at_ms,
    };

    return update_job(js, id, &u, NULL);
}

int jobstore_requeue(struct jobstore *js, const char *id, json_t *problem, int64_t retry_at_ms)
{
    const struct job_update u = {
        .sql = "UPDATE jobs SET state = 'retrying', error = :error, updated_ms = :now,"
               " next_run_ms = :retry, handle = NULL, finished_ms = 0,"
               " attempts = max(attempts - 1, 0)"
               " WHERE id = :id AND state = 'running'",
        .json_key = ":error",
        .json = problem,
        .int_key = ":retry",
        .num = retry_at_ms,
    };

    return update_job(js, id, &u, NULL);
}

int jobstore_cancel(struct jobstore *js, const char *id, struct job **out)
{
    /* A job nobody runs is cancelled at once. A running one, or a queued one that was
     * interrupted mid-run (it has a handle: its engine query may still be going), is flagged for
     * a worker, which stops the engine's query first. */
    static const struct job_update u = {
        .sql = "UPDATE jobs SET cancel_requested = 1, updated_ms = :now,"
               " state = CASE WHEN state = 'running' OR handle IS NOT NULL THEN state"
               "   ELSE 'cancelled' END,"
               " finished_ms = CASE WHEN state = 'running' OR handle IS NOT NULL"
               "   THEN finished_ms ELSE :now END"
               " WHERE id = :id AND state IN ('queued', 'retrying', 'running')",
    };

    return update_job(js, id, &u, out);
}

int jobstore_mark_cancelled(struct jobstore *js, const char *id)
{
    static const struct job_update u = {
        .sql = "UPDATE jobs SET state = 'cancelled', cancel_requested = 1,"
               " finished_ms = :now, updated_ms = :now WHERE id = :id AND state = 'running'",
    };

    return update_job(js, id, &u, NULL);
}

int jobstore_retry(struct jobstore *js, const char *id, struct job **out)
{
    /* A replay starts over: no handle (the old query failed), no error, no attempts. */
    static const struct job_update u = {
        .sql = "UPDATE jobs SET state = 'queued', attempts = 0, handle = NULL, error = NULL,"
               " cancel_requested = 0, finished_ms = 0, next_run_ms = :now, updated_ms = :now"
               " WHERE id = :id AND state IN ('failed', 'dead')",
    };

    return update_job(js, id, &u, out);
}

int jobstore_retry_all(struct jobstore *js, enum job_state state, size_t limit,
                       char (**ids_out)[37], size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    char(*ids)[37] = NULL;
    size_t n = 0;
    int err, rc;

    *ids_out = NULL;
    *n_out = 0;
    if ((state != JOB_DEAD && state != JOB_FAILED) || limit < 1 || limit > 1000)
        return HC_EVALIDATION;
    ids = calloc(limit, sizeof *ids);
    if (!ids)
        return HC_ENOMEM;
    pthread_mutex_lock(&js->lock);
    /* One statement, so the replay is all or nothing; the same reset as jobstore_retry(). */
    err = prepare(js,
                  "UPDATE jobs SET state = 'queued', attempts = 0, handle = NULL, error = NULL,"
                  " cancel_requested = 0, finished_ms = 0, next_run_ms = :now, updated_ms = :now"
                  " WHERE id IN (SELECT id FROM jobs WHERE state = :state"
                  "   ORDER BY created_ms, id LIMIT :limit)"
                  " RETURNING id",
                  &st);
    if (!err) {
        bind_int64(st, ":now", sys_now_ms());
        bind_text(st, ":state", job_state_name(state));
        bind_int64(st, ":limit", (int64_t)limit);
        for (rc = sqlite3_step(st); rc == SQLITE_ROW; rc = sqlite3_step(st)) {
            const unsigned char *id = sqlite3_column_text(st, 0);

            if (n < limit) /* LIMIT bounds it; the check keeps the array safe regardless */
                snprintf(ids[n++], 37, "%s", id ? (const char *)id : "");
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            err = db_err(js, rc, "retry all");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&js->lock);
    if (err || n == 0) {
        free(ids);
        return err;
    }
    *ids_out = ids;
    *n_out = n;
    return HC_OK;
}

int jobstore_recover(struct jobstore *js, int *n_out)
{
    sqlite3_stmt *st = NULL;
    int err, rc;

    if (n_out)
        *n_out = 0;
    pthread_mutex_lock(&js->lock);
    /* next_run_ms = 0: interrupted jobs go first. The handle stays, so the engine re-attaches. */
    err = prepare(js,
                  "UPDATE jobs SET state = 'queued', next_run_ms = 0, updated_ms = :now"
                  " WHERE state = 'running'",
                  &st);
    if (!err) {
        bind_int64(st, ":now", sys_now_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            err = db_err(js, rc, "recover");
        else if (n_out)
            *n_out = sqlite3_changes(js->db);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&js->lock);
    return err;
}

int jobstore_count_by_state(struct jobstore *js, uint64_t counts_out[JOB_CANCELLED + 1])
{
    sqlite3_stmt *st = NULL;
    int err, rc;

    memset(counts_out, 0, sizeof(uint64_t) * (JOB_CANCELLED + 1));
    pthread_mutex_lock(&js->lock);
    err = prepare(js, "SELECT state, count(*) FROM jobs GROUP BY state", &st);
    if (!err) {
        for (rc = sqlite3_step(st); rc == SQLITE_ROW; rc = sqlite3_step(st)) {
            int s = job_state_parse((const char *)sqlite3_column_text(st, 0));

            if (s >= 0)
                counts_out[s] = (uint64_t)sqlite3_column_int64(st, 1);
        }
        if (rc != SQLITE_DONE)
            err = db_err(js, rc, "count");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&js->lock);
    return err;
}

/* ---- 4. events ---------------------------------------------------------------------------- */

/* Takes the store's lock, waiting at most wait_ms. 0 when taken. */
static int lock_within(struct jobstore *js, int64_t wait_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_mutex_timedlock(&js->lock, &ts);
}

/* The sequencer as stored for ordering: right-padded with '0' to JOBSTORE_SEQ_WIDTH into out
 * (returned), or `seq` itself when it is longer. */
static const char *seq_normalise(const char *seq, char out[JOBSTORE_SEQ_WIDTH + 1])
{
    size_t n = strlen(seq);

    if (n > JOBSTORE_SEQ_WIDTH)
        return seq;
    memcpy(out, seq, n);
    memset(out + n, '0', JOBSTORE_SEQ_WIDTH - n);
    out[JOBSTORE_SEQ_WIDTH] = '\0';
    return out;
}

/* Reads the outcome columns (id, status, superseded_by, job_ids) of a stored event. */
static int outcome_from_row(sqlite3_stmt *st, int first, struct event_outcome *out)
{
    const unsigned char *id = sqlite3_column_text(st, first);
    const unsigned char *by = sqlite3_column_text(st, first + 2);
    const unsigned char *ids = sqlite3_column_text(st, first + 3);
    json_t *arr = ids ? json_loads((const char *)ids, 0, NULL) : NULL;
    size_t n = json_array_size(arr);

    snprintf(out->event_id, sizeof out->event_id, "%s", id ? (const char *)id : "");
    out->superseded = col_equals(st, first + 1, "superseded");
    snprintf(out->superseded_by, sizeof out->superseded_by, "%s", by ? (const char *)by : "");
    out->n_jobs = 0;
    out->job_ids = n ? calloc(n, sizeof *out->job_ids) : NULL;
    if (n && !out->job_ids) {
        json_decref(arr);
        return HC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *j = json_string_value(json_array_get(arr, i));

        if (j)
            snprintf(out->job_ids[out->n_jobs++], 37, "%s", j);
    }
    json_decref(arr);
    return HC_OK;
}

/* Step a prepared lookup: HC_OK with *found set, filling `out` from column `first` on a hit. */
static int lookup_locked(struct jobstore *js, sqlite3_stmt *st, int first, int *found,
                         struct event_outcome *out)
{
    int rc = sqlite3_step(st);

    *found = 0;
    if (rc == SQLITE_DONE)
        return HC_OK;
    if (rc != SQLITE_ROW)
        return db_err(js, rc, "event lookup");
    *found = 1;
    return outcome_from_row(st, first, out);
}

#define EVENT_OUTCOME_COLS "id, status, superseded_by, job_ids"

/* Is this event a duplicate of a stored one? Fills `out` from the original when it is. */
static int find_duplicate_locked(struct jobstore *js, const struct event_record *ev,
                                 const char *seq, int *found, struct event_outcome *out)
{
    sqlite3_stmt *st = NULL;
    int err;

    err = prepare(js, "SELECT " EVENT_OUTCOME_COLS " FROM events WHERE dedup_id = :d", &st);
    if (err)
        return err;
    bind_text(st, ":d", ev->dedup_id);
    err = lookup_locked(js, st, 0, found, out);
    sqlite3_finalize(st);
    if (err || *found)
        return err;
    if (seq) {
        err = prepare(js,
                      "SELECT " EVENT_OUTCOME_COLS " FROM events"
                      " WHERE bucket = :b AND key = :k AND seq_norm = :s",
                      &st);
        if (err)
            return err;
        bind_text(st, ":s", seq);
    } else if (ev->etag) {
        /* Without a sequencer, the same etag and kind as the object's latest event is a
         * redelivery; an older event with that etag is not (the object may have been deleted
         * and uploaded again since). */
        err = prepare(js,
                      "SELECT kind = :kind AND etag IS :etag, " EVENT_OUTCOME_COLS " FROM events"
                      " WHERE bucket = :b AND key = :k ORDER BY received_ms DESC, rowid DESC"
                      " LIMIT 1",
                      &st);
        if (err)
            return err;
        bind_text(st, ":kind", ev->deleted ? "deleted" : "created");
        bind_text(st, ":etag", ev->etag);
    } else {
        return HC_OK;
    }
    bind_text(st, ":b", ev->bucket);
    bind_text(st, ":k", ev->key);
    if (seq) {
        err = lookup_locked(js, st, 0, found, out);
    } else {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW && sqlite3_column_int(st, 0)) {
            *found = 1;
            err = outcome_from_row(st, 1, out);
        } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            err = db_err(js, rc, "event lookup");
        }
    }
    sqlite3_finalize(st);
    return err;
}

/* The newest applied event of the object with a later sequencer, if any (its id into by). */
static int find_newer_locked(struct jobstore *js, const struct event_record *ev, const char *seq,
                             char by[37])
{
    sqlite3_stmt *st = NULL;
    int err, rc;

    by[0] = '\0';
    if (!seq)
        return HC_OK;
    err = prepare(js,
                  "SELECT id FROM events WHERE bucket = :b AND key = :k AND status = 'applied'"
                  " AND seq_norm > :s ORDER BY seq_norm DESC LIMIT 1",
                  &st);
    if (err)
        return err;
    bind_text(st, ":b", ev->bucket);
    bind_text(st, ":k", ev->key);
    bind_text(st, ":s", seq);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(by, 37, "%s", (const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE)
        err = db_err(js, rc, "event order");
    sqlite3_finalize(st);
    return err;
}

static int insert_event_locked(struct jobstore *js, const struct event_record *ev, const char *seq,
                               int64_t now, const struct event_outcome *o)
{
    sqlite3_stmt *st = NULL;
    json_t *ids = json_array();
    int err, rc;

    if (!ids)
        return HC_ENOMEM;
    for (size_t i = 0; i < o->n_jobs; i++)
        if (json_array_append_new(ids, json_string(o->job_ids[i]))) {
            json_decref(ids);
            return HC_ENOMEM;
        }
    err = prepare(js,
                  "INSERT INTO events (id, dedup_id, format, kind, bucket, key, raw_key, source,"
                  " sequencer, seq_norm, etag, version_id, size, event_time, received_ms, status,"
                  " superseded_by, job_ids) VALUES (:id, :d, :fmt, :kind, :b, :k, :raw, :src,"
                  " :seq, :norm, :etag, :ver, :size, :time, :now, :status, :by, :ids)",
                  &st);
    if (err) {
        json_decref(ids);
        return err;
    }
    bind_text(st, ":id", o->event_id);
    bind_text(st, ":d", ev->dedup_id);
    bind_text(st, ":fmt", ev->format ? ev->format : "eventbridge");
    bind_text(st, ":kind", ev->deleted ? "deleted" : "created");
    bind_text(st, ":b", ev->bucket);
    bind_text(st, ":k", ev->key);
    bind_text(st, ":raw", ev->raw_key ? ev->raw_key : ev->key);
    bind_text(st, ":src", ev->source ? ev->source : "");
    bind_text(st, ":seq", ev->sequencer);
    bind_text(st, ":norm", seq);
    bind_text(st, ":etag", ev->etag);
    bind_text(st, ":ver", ev->version_id);
    if (ev->size >= 0)
        bind_int64(st, ":size", ev->size);
    bind_text(st, ":time", ev->time);
    bind_int64(st, ":now", now);
    bind_text(st, ":status", o->superseded ? "superseded" : "applied");
    bind_text(st, ":by", o->superseded ? o->superseded_by : NULL);
    err = bind_json(st, ":ids", ids);
    json_decref(ids);
    if (!err) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            err = db_err(js, rc, "event insert");
    }
    sqlite3_finalize(st);
    return err;
}

/* SQLITE_BUSY (another process holds the write lock past our wait) -> HC_EUNAVAILABLE. */
static int busy_is_unavailable(struct jobstore *js, int err)
{
    int rc = sqlite3_extended_errcode(js->db) & 0xff;

    return err == HC_EDB && (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? HC_EUNAVAILABLE : err;
}

/* Records one event inside the open transaction (see jobstore_event_record()). On error, `out`
 * is cleared; the caller rolls back to its savepoint. */
static int record_one_locked(struct jobstore *js, struct event_req *r)
{
    const struct event_record *ev = r->ev;
    struct event_outcome *out = r->out;
    char norm[JOBSTORE_SEQ_WIDTH + 1];
    const char *seq = NULL;
    int64_t now = sys_now_ms();
    int err, found = 0;

    if (ev->sequencer && *ev->sequencer)
        seq = seq_normalise(ev->sequencer, norm);
    err = find_duplicate_locked(js, ev, seq, &found, out);
    if (!err && found) {
        out->duplicate = 1;
        return HC_OK;
    }
    if (!err) {
        new_id(now, out->event_id);
        err = find_newer_locked(js, ev, seq, out->superseded_by);
    }
    out->superseded = !err && out->superseded_by[0] != '\0';
    if (!err && !out->superseded && r->n_specs) {
        out->job_ids = calloc(r->n_specs, sizeof *out->job_ids);
        if (!out->job_ids)
            err = HC_ENOMEM;
        for (size_t i = 0; !err && i < r->n_specs; i++) {
            struct job_spec spec = r->specs[i];

            spec.event_id = out->event_id;
            err = insert_locked(js, &spec, now, out->job_ids[i]);
            if (!err)
                out->n_jobs++;
        }
    }
    if (!err)
        err = insert_event_locked(js, ev, seq, now, out);
    if (err) {
        free(out->job_ids);
        memset(out, 0, sizeof *out);
    }
    return err;
}

/* Ends a batch's transaction after a failure: every request of the batch fails with `err` and
 * its outcome is cleared (nothing of the batch is stored). */
static void fail_batch(struct jobstore *js, struct event_req *batch, int err)
{
    err = busy_is_unavailable(js, err); /* before ROLLBACK replaces the error code */
    end_tx(js, err);
    for (struct event_req *r = batch; r; r = r->next) {
        free(r->out->job_ids);
        memset(r->out, 0, sizeof *r->out);
        r->err = err;
    }
}

/* The group commit: records every request of the batch in ONE transaction (one fsync), each
 * under its own savepoint so a request that fails alone (e.g. out of memory) does not take the
 * others down. Sets each request's err. */
static void commit_batch(struct jobstore *js, struct event_req *batch, int64_t wait_ms)
{
    int err;

    if (lock_within(js, wait_ms) != 0) {
        for (struct event_req *r = batch; r; r = r->next)
            r->err = HC_EUNAVAILABLE;
        return;
    }
    sqlite3_busy_timeout(js->db, (int)wait_ms);
    err = exec(js, "BEGIN IMMEDIATE");
    for (struct event_req *r = batch; !err && r; r = r->next) {
        err = exec(js, "SAVEPOINT event");
        if (err)
            break;
        r->err = record_one_locked(js, r);
        if (r->err && sqlite3_get_autocommit(js->db)) /* SQLite rolled the batch back itself */
            err = r->err;
        else if (r->err)
            err = exec(js, "ROLLBACK TO event");
        if (!err)
            err = exec(js, "RELEASE event");
    }
    if (!err)
        err = exec(js, "COMMIT");
    if (err)
        fail_batch(js, batch, err);
    sqlite3_busy_timeout(js->db, 5000);
    pthread_mutex_unlock(&js->lock);
    if (err) {
        pthread_mutex_lock(&js->ev_lock);
        js->ev_stats.failed_batches++;
        pthread_mutex_unlock(&js->ev_lock);
    }
}

/* Takes the batch a new leader commits: up to JOBSTORE_BATCH_MAX requests from the head of the
 * queue. A request whose deadline passed while it waited is not taken: it is done at once with
 * HC_EUNAVAILABLE (nothing of it was written). ev_lock is held. */
static struct event_req *take_batch_locked(struct jobstore *js)
{
    struct event_req *batch = NULL, **tail = &batch;
    int64_t now = sys_mono_ms();
    size_t n = 0;

    while (js->ev_head && n < JOBSTORE_BATCH_MAX) {
        struct event_req *r = js->ev_head;

        js->ev_head = r->next;
        js->ev_queued--;
        r->next = NULL;
        if (now > r->deadline_ms) {
            r->err = HC_EUNAVAILABLE;
            r->done = 1;
            continue;
        }
        *tail = r;
        tail = &r->next;
        n++;
    }
    if (!js->ev_head)
        js->ev_tail = &js->ev_head;
    if (n) {
        js->ev_stats.batches++;
        js->ev_stats.events += n;
        if (n > js->ev_stats.largest)
            js->ev_stats.largest = n;
    }
    return batch;
}

int jobstore_event_record(struct jobstore *js, const struct event_record *ev,
                          const struct job_spec *specs, size_t n_specs, int64_t wait_ms,
                          struct event_outcome *out)
{
    struct event_req req = {.ev = ev, .specs = specs, .n_specs = n_specs, .out = out};

    memset(out, 0, sizeof *out);
    if (!ev->dedup_id || !ev->bucket || !ev->key || (n_specs && !specs) || wait_ms < 0)
        return HC_EINVAL;
    for (size_t i = 0; i < n_specs; i++)
        if (!specs[i].query || specs[i].timeout_s < 0)
            return HC_EINVAL;
    req.deadline_ms = sys_mono_ms() + wait_ms;
    pthread_mutex_lock(&js->ev_lock);
    if (js->ev_queued >= JOBSTORE_QUEUE_MAX) {
        js->ev_stats.refused++;
        pthread_mutex_unlock(&js->ev_lock);
        return HC_EUNAVAILABLE; /* the queue is full: refused before anything was written */
    }
    /* Join the queue; the first caller to find no leader commits a batch from its head
     * (including its own request when it is among the first JOBSTORE_BATCH_MAX) while later
     * callers queue up for the next batch. A caller leads until its own request is done. */
    *js->ev_tail = &req;
    js->ev_tail = &req.next;
    js->ev_queued++;
    while (!req.done) {
        struct event_req *batch;

        if (js->ev_leader) {
            pthread_cond_wait(&js->ev_cond, &js->ev_lock);
            continue;
        }
        batch = take_batch_locked(js);
        js->ev_leader = 1;
        pthread_mutex_unlock(&js->ev_lock);
        if (batch)
            commit_batch(js, batch, wait_ms);
        pthread_mutex_lock(&js->ev_lock);
        for (struct event_req *r = batch; r; r = r->next)
            r->done = 1;
        js->ev_leader = 0;
        pthread_cond_broadcast(&js->ev_cond);
    }
    pthread_mutex_unlock(&js->ev_lock);
    return req.err;
}

void jobstore_batch_stats(struct jobstore *js, struct jobstore_batch_stats *out)
{
    pthread_mutex_lock(&js->ev_lock);
    *out = js->ev_stats;
    out->queued = js->ev_queued;
    pthread_mutex_unlock(&js->ev_lock);
}

int jobstore_event_get(struct jobstore *js, const char *id, json_t **doc_out)
{
    sqlite3_stmt *st = NULL;
    json_t *doc = NULL;
    int err, rc;

    *doc_out = NULL;
    pthread_mutex_lock(&js->lock);
    err = prepare(js,
                  "SELECT id, dedup_id, format, kind, bucket, key, raw_key, source, sequencer,"
                  " etag, version_id, size, event_time, received_ms, status, superseded_by,"
                  " job_ids FROM events WHERE id = :id OR dedup_id = :id"
                  " ORDER BY id = :id DESC LIMIT 1",
                  &st);
    if (err)
        goto out;
    bind_text(st, ":id", id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = HC_ENOTFOUND;
    } else if (rc != SQLITE_ROW) {
        err = db_err(js, rc, "event get");
    } else {
        static const char *const names[] = {"id",        "dedup_id", "format",    "kind",
                                            "bucket",    "key",      "raw_key",   "source",
                                            "sequencer", "etag",     "version_id"};
        json_t *ids = col_json(st, 16);

        doc = json_object();
        for (int i = 0; doc && i < 11; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            json_object_set_new(doc, names[i], t ? json_string((const char *)t) : json_null());
        }
        if (doc) {
            const unsigned char *t = sqlite3_column_text(st, 12);
            const unsigned char *by = sqlite3_column_text(st, 15);

            json_object_set_new(doc, "size",
                                sqlite3_column_type(st, 11) == SQLITE_NULL
                                    ? json_null()
                                    : json_integer(sqlite3_column_int64(st, 11)));
            json_object_set_new(doc, "time", t ? json_string((const char *)t) : json_null());
            json_object_set_new(doc, "received_at", time_or_null(sqlite3_column_int64(st, 13)));
            json_object_set_new(doc, "status",
                                json_string((const char *)sqlite3_column_text(st, 14)));
            json_object_set_new(doc, "superseded_by",
                                by ? json_string((const char *)by) : json_null());
            json_object_set_new(doc, "job_ids", ids ? json_incref(ids) : json_array());
        }
        json_decref(ids);
        if (!doc)
            err = HC_ENOMEM;
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&js->lock);
    *doc_out = doc;
    return err;
}

int jobstore_count_by_state_query(struct jobstore *js,
                                  void (*cb)(void *ctx, const char *state, const char *query,
                                             uint64_t n),
                                  void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err, rc;

    pthread_mutex_lock(&js->lock);
    err = prepare(js, "SELECT state, query, count(*) FROM jobs GROUP BY state, query", &st);
    if (!err) {
        for (rc = sqlite3_step(st); rc == SQLITE_ROW; rc = sqlite3_step(st)) {
            const char *state = (const char *)sqlite3_column_text(st, 0);
            const char *query = (const char *)sqlite3_column_text(st, 1);

            if (state && query)
                cb(ctx, state, query, (uint64_t)sqlite3_column_int64(st, 2));
        }
        if (rc != SQLITE_DONE)
            err = db_err(js, rc, "count");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&js->lock);
    return err;
}
