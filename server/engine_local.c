/*
 * engine_local.c: the `local` engine, an instance of struct engine_ops (engine.h).
 *
 * DESIGN
 *   start()      loads the job's source object (if any) into the warehouse, then prepares the
 *                catalog query's SQL on a new read connection and steps it to its first row
 *                (SQLite does the sorting/aggregation there). Everything runs synchronously on
 *                the calling worker thread; the handle "local:<job_id>:<attempt>" names the
 *                in-memory run kept until its last page is fetched or it is cancelled. A start
 *                whose handle names a run that is still kept (the same attempt of the same job
 *                started twice without re-attaching) is refused with HC_ECONFLICT.
 *   poll()       the run exists, so it is done: returns its statistics.
 *   fetch_page() streams up to LOCAL_PAGE_ROWS rows from the kept statement into the sink;
 *                the token is the number of rows already sent.
 *   cancel()     finalises and forgets the run.
 * Threads: several workers use the engine at once. Loads are serialised by the warehouse's
 * write lock (one SQLite writer); each run has its own read connection, used by one thread at
 * a time; the list of runs is guarded by `lock`. Cancellation and deadlines are checked between
 * input chunks and by an SQLite progress handler during statements.
 */
#include "server/engine_local.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/catalog.h"
#include "server/embedded.h"
#include "server/error.h"
#include "server/objstore.h"
#include "server/records.h"
#include "server/sys.h"
#include "server/warehouse.h"

#define LOCAL_CHUNK      (1 << 20)   /* bytes read from an object at a time */
#define LOCAL_MAX_RECORD (16u << 20) /* largest single record */
#define LOCAL_PAGE_ROWS  10000
#define RUN_TWICE        "this attempt of the job is already running in this process"

/* What stops a statement: the job's cancel flag and deadline (refreshed on every call). */
struct interrupt {
    const atomic_int *cancel;
    int64_t deadline_ms; /* <= 0: none */
    int why;             /* HC_ECANCELLED or HC_ETIMEOUT once it fired */
};

struct run {
    struct run *next;
    char *handle;
    const struct catalog_query *q;
    sqlite3 *db;      /* read connection */
    sqlite3_stmt *st; /* positioned on the next row to send when has_row */
    int has_row;
    uint64_t rows_sent;
    json_t *stats;
    struct interrupt intr;
};

struct engine_local {
    struct engine base; /* first member */
    char *data_dir;
    struct warehouse *wh;
    struct objstore *store;
    int allow_files;
    char *dataset_bucket; /* dataset scope first loads changed objects under this bucket... */
    char *dataset_prefix; /* ...and prefix (engine_local_set_store()); NULL: no sync */
    pthread_mutex_t lock; /* guards runs */
    struct run *runs;
};

static const struct engine_ops local_ops;

static int interrupt_check(void *ctx)
{
    struct interrupt *in = ctx;

    if (in->cancel && atomic_load(in->cancel)) {
        in->why = HC_ECANCELLED;
        return 1;
    }
    if (in->deadline_ms > 0 && sys_now_ms() > in->deadline_ms) {
        in->why = HC_ETIMEOUT;
        return 1;
    }
    return 0;
}

static void interrupt_from_job(struct interrupt *in, const struct engine_job *job)
{
    in->cancel = job->cancel;
    in->deadline_ms = job->deadline_ms;
    in->why = 0;
}

static void set_problem(json_t **problem_out, int err, const char *detail)
{
    if (problem_out && !*problem_out)
        *problem_out = hc_problem_new(err, detail);
}

static void run_free(struct run *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->st);
    sqlite3_close(r->db);
    json_decref(r->stats);
    free(r->handle);
    free(r);
}

/* Finds (and with `unlink`, removes) the run named `handle`. */
static struct run *run_find(struct engine_local *el, const char *handle, int unlink)
{
    struct run **pp, *r = NULL;

    if (!handle)
        return NULL;
    pthread_mutex_lock(&el->lock);
    for (pp = &el->runs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->handle, handle) == 0) {
            r = *pp;
            if (unlink)
                *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&el->lock);
    return r;
}

/* Adds r (its handle set) to the runs, unless a run has that handle already: HC_ECONFLICT
 * then, and r stays the caller's. Two starts of one job attempt must not share a handle: the
 * first fetch of the last page or cancel would free the run the other still uses. */
static int run_add(struct engine_local *el, struct run *r)
{
    struct run *o;
    int err = HC_OK;

    pthread_mutex_lock(&el->lock);
    for (o = el->runs; o; o = o->next)
        if (strcmp(o->handle, r->handle) == 0)
            err = HC_ECONFLICT;
    if (!err) {
        r->next = el->runs;
        el->runs = r;
    }
    pthread_mutex_unlock(&el->lock);
    return err;
}

/* ---- loading ---- */

struct load_ctx {
    struct warehouse_load *ld;
};

static int on_record(void *ctx, const struct facility_record *rec)
{
    return warehouse_load_record(((struct load_ctx *)ctx)->ld, rec);
}

static int on_bad(void *ctx, uint64_t position, const char *reason)
{
    return warehouse_load_bad(((struct load_ctx *)ctx)->ld, position, reason);
}

/* One chunk of an object on its way into the parser (read loop or a store's stream()). */
struct feed {
    struct records_parser *p;
    const struct engine_job *job;
    struct interrupt *intr;
    uint64_t bytes;
    int err; /* what feed_chunk() returned last */
};

static int feed_chunk(void *ctx, const void *data, size_t n)
{
    struct feed *f = ctx;

    if (interrupt_check(f->intr)) {
        f->err = f->intr->why;
        return f->err;
    }
    f->bytes += n;
    f->err = records_feed(f->p, data, n);
    if (f->job->progress) {
        atomic_store(&f->job->progress->bytes_read, f->bytes);
        atomic_store(&f->job->progress->records_read, records_seen(f->p));
    }
    return f->err;
}

/* Loads job->source. Fills the load statistics; *bad_out gets skipped records (new ref). */
static int load_source(struct engine_local *el, const struct engine_job *job,
                       struct interrupt *intr, struct warehouse_load_stats *ls, json_t **bad_out,
                       uint64_t *bytes_out, json_t **problem_out)
{
    char *bucket = NULL, *key = NULL, *chunk = NULL;
    struct objstore_reader *rd = NULL;
    struct objstore_info info;
    struct warehouse_load *ld = NULL;
    struct records_parser *p = NULL;
    struct load_ctx lc;
    struct warehouse_object obj;
    uint64_t bytes = 0;
    int err;

    *bytes_out = 0;
    if (strncmp(job->source, "s3://", 5) == 0) {
        err = objstore_parse_uri(job->source, &bucket, &key);
        if (err) {
            set_problem(problem_out, err,
                        "source must be s3://bucket/key with a valid bucket"
                        " name and key");
            goto out;
        }
        /* A store that streams (S3) is read through stream() after stat() named the version;
         * the folder store is opened, which gives the version of the bytes it will read. */
        err = el->store->ops->stream ? objstore_stat(el->store, bucket, key, &info)
                                     : objstore_open(el->store, bucket, key, &rd, &info);
    } else if (el->allow_files) {
        bucket = strdup("");
        key = realpath(job->source, NULL);
        if (!bucket) {
            err = HC_ENOMEM;
            goto out;
        }
        err = key ? objstore_file_open(key, &rd, &info)
                  : (errno == ENOMEM ? HC_ENOMEM : HC_ESOURCEMISSING);
    } else {
        err = HC_EBADSOURCE;
    }
    if (err) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s: %s", job->source,
                 err == HC_ESOURCEMISSING ? "no such object" : hc_err_title(err));
        set_problem(problem_out, err, detail);
        goto out;
    }
    if (job->progress)
        atomic_store(&job->progress->bytes_total, info.size);
    obj = (struct warehouse_object){.bucket = bucket,
                                    .key = key,
                                    .size = info.size,
                                    .version = info.version,
                                    .source = job->source,
                                    .interrupt = interrupt_check,
                                    .interrupt_ctx = intr};
    err = warehouse_load_begin(el->wh, &obj, job->on_bad_record, &ld, ls, bad_out);
    if (err == HC_ECANCELLED && intr->why)
        err = intr->why; /* stopped while waiting for the write lock */
    if (err || !ld)      /* an error, or unchanged: nothing to read */
        goto out;
    lc.ld = ld;
    {
        struct records_callbacks cb = {on_record, on_bad, &lc};
        p = records_new(&cb, LOCAL_MAX_RECORD);
    }
    chunk = rd ? malloc(LOCAL_CHUNK) : NULL;
    if (!p || (rd && !chunk)) {
        err = HC_ENOMEM;
        goto out;
    }
    {
        struct feed f = {.p = p, .job = job, .intr = intr};

        if (!rd) {
            err = objstore_stream(el->store, bucket, key, &info, feed_chunk, &f);
            if (err && f.err) /* the parser's (or the interrupt's) error, not the store's */
                err = f.err;
            if (err == HC_ECANCELLED && intr->why)
                err = intr->why;
            if (err && err != HC_EBADRECORDS && err != HC_EBADINPUT)
                goto out;
        }
        while (rd) {
            size_t n = 0;

            if (interrupt_check(intr)) {
                err = intr->why;
                goto out;
            }
            err = objstore_read(rd, chunk, LOCAL_CHUNK, &n);
            if (err)
                goto out;
            if (n == 0)
                break;
            err = feed_chunk(&f, chunk, n);
            if (err == intr->why && err)
                goto out;
            if (err)
                break;
        }
        bytes = f.bytes;
    }
    if (!err)
        err = records_finish(p);
    if (job->progress)
        atomic_store(&job->progress->records_read, records_seen(p));
    if (err == HC_EBADINPUT) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s: %s", job->source, records_error(p));
        set_problem(problem_out, err, detail);
        goto out;
    }
    if (err && err != HC_EBADRECORDS) {
        if (err == HC_ECANCELLED && intr->why)
            err = intr->why;
        goto out;
    }
    err = warehouse_load_commit(ld, ls, bad_out);
    ld = NULL;
    if (err == HC_EBADRECORDS) {
        char detail[256];
        json_t *pb;

        snprintf(detail, sizeof detail,
                 "%s has bad records (the first %zu are listed); nothing of it was loaded",
                 job->source, json_array_size(*bad_out));
        pb = hc_problem_new(err, detail);
        if (pb && problem_out && !*problem_out) {
            json_object_set(pb, "bad_records", *bad_out);
            *problem_out = pb;
        } else {
            json_decref(pb);
        }
        json_decref(*bad_out);
        *bad_out = NULL;
    } else if (err == HC_ECANCELLED && intr->why) {
        err = intr->why;
    }
out:
    warehouse_load_abort(ld);
    records_free(p);
    objstore_close(rd);
    free(chunk);
    free(bucket);
    free(key);
    *bytes_out = bytes;
    return err;
}

/* ---- dataset sync (a store with a configured prefix, e.g. HCPIPE_SOURCE=s3) ---- */

struct key_list {
    char **keys;
    size_t n, cap;
};

static int collect_key(void *ctx, const char *key, const struct objstore_info *info)
{
    struct key_list *kl = ctx;

    (void)info;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        char **k = realloc(kl->keys, cap * sizeof *k);

        if (!k)
            return HC_ENOMEM;
        kl->keys = k;
        kl->cap = cap;
    }
    kl->keys[kl->n] = strdup(key);
    if (!kl->keys[kl->n])
        return HC_ENOMEM;
    kl->n++;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes from the warehouse the objects under the dataset prefix that are no longer listed
 * (deleted from the store). `listed` is sorted. */
static int drop_vanished(struct engine_local *el, const struct key_list *listed,
                         uint64_t *dropped_out)
{
    struct key_list gone = {0};
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t plen = strlen(el->dataset_prefix);
    int err, rc;

    err = warehouse_open_reader(el->wh, &db);
    if (err)
        return err;
    rc = sqlite3_prepare_v2(db, "SELECT key FROM objects WHERE bucket = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, el->dataset_bucket, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && !err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);

        if (key && strncmp(key, el->dataset_prefix, plen) == 0 &&
            !bsearch(&key, listed->keys, listed->n, sizeof *listed->keys, key_cmp))
            err = collect_key(&gone, key, NULL);
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_OK)
        err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    sqlite3_finalize(st);
    sqlite3_close(db);
    for (size_t i = 0; i < gone.n; i++) {
        int e = err ? HC_OK : warehouse_delete(el->wh, el->dataset_bucket, gone.keys[i]);

        if (e == HC_OK && !err)
            (*dropped_out)++;
        else if (e != HC_ENOTFOUND && !err)
            err = e;
        free(gone.keys[i]);
    }
    free(gone.keys);
    return err;
}

/* Lists the dataset prefix and loads every object whose version (ETag) changed since its last
 * load (the warehouse skips unchanged ones without reading them), then drops the objects that
 * are gone from the store. */
static int sync_dataset(struct engine_local *el, const struct engine_job *job,
                        struct interrupt *intr, uint64_t *loaded_out, uint64_t *listed_out,
                        uint64_t *bytes_io, struct warehouse_load_stats *total,
                        uint64_t *dropped_out, json_t **problem_out)
{
    struct key_list kl = {0};
    int err;

    err = objstore_list(el->store, el->dataset_bucket, el->dataset_prefix, collect_key, &kl);
    if (err) {
        char detail[512];

        snprintf(detail, sizeof detail, "listing s3://%s/%s failed", el->dataset_bucket,
                 el->dataset_prefix);
        set_problem(problem_out, err, detail);
    }
    *listed_out = kl.n;
    for (size_t i = 0; !err && i < kl.n; i++) {
        struct warehouse_load_stats ls = {0};
        struct engine_job one = *job;
        json_t *bad = NULL;
        uint64_t bytes = 0;
        size_t len = strlen(el->dataset_bucket) + strlen(kl.keys[i]) + 8;
        char *uri = malloc(len);

        if (!uri) {
            err = HC_ENOMEM;
            break;
        }
        snprintf(uri, len, "s3://%s/%s", el->dataset_bucket, kl.keys[i]);
        one.source = uri;
        if (job->source && strcmp(job->source, uri) == 0) {
            free(uri);
            continue; /* loaded just before */
        }
        err = load_source(el, &one, intr, &ls, &bad, &bytes, problem_out);
        json_decref(bad);
        free(uri);
        if (!err && !ls.unchanged)
            (*loaded_out)++;
        *bytes_io += bytes;
        total->records += ls.records;
        total->bad += ls.bad;
    }
    if (!err) {
        qsort(kl.keys, kl.n, sizeof *kl.keys, key_cmp);
        err = drop_vanished(el, &kl, dropped_out);
        if (err)
            set_problem(problem_out, err, "removing objects deleted from the store failed");
    }
    for (size_t i = 0; i < kl.n; i++)
        free(kl.keys[i]);
    free(kl.keys);
    return err;
}

/* ---- the query ---- */

static int prepare_query(struct engine_local *el, struct run *r, const struct engine_job *job,
                         int64_t load_id, json_t **problem_out)
{
    const struct embedded_file *f = embedded_find(r->q->local_sql);
    int rc, idx;

    if (!f) {
        set_problem(problem_out, HC_EINTERNAL, "the query's SQL text is missing");
        return HC_EINTERNAL;
    }
    rc = warehouse_open_reader(el->wh, &r->db);
    if (rc)
        return rc;
    sqlite3_progress_handler(r->db, 4000, interrupt_check, &r->intr);
    rc = sqlite3_prepare_v2(r->db, (const char *)f->data, (int)f->size, &r->st, NULL);
    if (rc != SQLITE_OK) {
        set_problem(problem_out, HC_EINTERNAL, sqlite3_errmsg(r->db));
        return warehouse_sqlite_err(rc) == HC_EDB ? HC_EINTERNAL : warehouse_sqlite_err(rc);
    }
    idx = sqlite3_bind_parameter_index(r->st, ":as_of");
    if (idx)
        sqlite3_bind_text(r->st, idx, job->as_of, -1, SQLITE_TRANSIENT);
    idx = sqlite3_bind_parameter_index(r->st, ":load");
    if (idx && load_id > 0)
        sqlite3_bind_int64(r->st, idx, load_id);
    return HC_OK;
}

/* Steps the statement to its next row; sets r->has_row. */
static int step(struct run *r)
{
    int rc = sqlite3_step(r->st);

    r->has_row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return HC_OK;
    if (rc == SQLITE_INTERRUPT && r->intr.why)
        return r->intr.why;
    return warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
}

/* ---- the vtable ---- */

static int valid_date(const char *s)
{
    int32_t d;

    return s && strlen(s) == 10 && records_parse_date(s, 10, &d) == 0;
}

static int local_start(struct engine *e, const struct engine_job *job, const char *handle,
                       char **handle_out, json_t **problem_out)
{
    struct engine_local *el = (struct engine_local *)e;
    struct run *r = NULL;
    struct warehouse_load_stats ls = {0};
    json_t *bad = NULL, *warnings = NULL;
    uint64_t bytes = 0;
    int64_t t0 = sys_mono_ms(), t1, t2, load_id = 0;
    uint64_t synced = 0, listed = 0, dropped = 0;
    char name[128];
    int err = HC_OK;

    *handle_out = NULL;
    if (handle && run_find(el, handle, 0)) { /* re-attach to a run of this process */
        *handle_out = strdup(handle);
        return *handle_out ? HC_OK : HC_ENOMEM;
    }
    snprintf(name, sizeof name, "local:%s:%d", job->job_id ? job->job_id : "-", job->attempt);
    if (run_find(el, name, 0)) { /* checked again when the run is added: this saves the load */
        set_problem(problem_out, HC_ECONFLICT, RUN_TWICE);
        return HC_ECONFLICT;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        return HC_ENOMEM;
    interrupt_from_job(&r->intr, job);
    r->q = catalog_find(job->query);
    if (!r->q) {
        err = HC_EUNKNOWNQUERY;
        set_problem(problem_out, err, job->query);
        goto out;
    }
    if (!valid_date(job->as_of)) {
        err = HC_EVALIDATION;
        set_problem(problem_out, err, "as_of must be a calendar date YYYY-MM-DD");
        goto out;
    }
    if (job->scope == SCOPE_OBJECT && !job->source) {
        err = HC_EVALIDATION;
        set_problem(problem_out, err, "object scope needs a source");
        goto out;
    }
    if (job->source) {
        err = load_source(el, job, &r->intr, &ls, &bad, &bytes, problem_out);
        if (err)
            goto out;
        load_id = ls.load_id;
    }
    if (job->scope == SCOPE_DATASET && el->dataset_bucket) {
        err = sync_dataset(el, job, &r->intr, &synced, &listed, &bytes, &ls, &dropped, problem_out);
        if (err)
            goto out;
    }
    t1 = sys_mono_ms();
    err = prepare_query(el, r, job, job->scope == SCOPE_OBJECT ? load_id : 0, problem_out);
    if (!err)
        err = step(r);
    if (err)
        goto out;
    t2 = sys_mono_ms();
    r->stats =
        json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:b, s:I, s:I}", "engine", "local", "source",
                  job->source ? json_string(job->source) : json_null(), "bytes_read",
                  (json_int_t)bytes, "rows_loaded", (json_int_t)ls.records, "bad_record_count",
                  (json_int_t)ls.bad, "load_id", (json_int_t)load_id, "unchanged", ls.unchanged,
                  "load_ms", (json_int_t)(t1 - t0), "query_ms", (json_int_t)(t2 - t1));
    if (r->stats && job->scope == SCOPE_DATASET && el->dataset_bucket) {
        json_object_set_new(r->stats, "dataset_objects", json_integer((json_int_t)listed));
        json_object_set_new(r->stats, "dataset_objects_loaded", json_integer((json_int_t)synced));
        json_object_set_new(r->stats, "dataset_objects_removed", json_integer((json_int_t)dropped));
    }
    warnings = json_array();
    if (!r->stats || !warnings) {
        err = HC_ENOMEM;
        goto out;
    }
    if (job->source && job->on_bad_record == BAD_RECORD_SKIP) {
        if (ls.bad > 0) {
            snprintf(name, sizeof name, "%llu bad record%s skipped", (unsigned long long)ls.bad,
                     ls.bad == 1 ? "" : "s");
            json_array_append_new(warnings, json_string(name));
        }
        json_object_set_new(r->stats, "bad_records", bad ? json_incref(bad) : json_array());
    }
    json_object_set(r->stats, "warnings", warnings);
    snprintf(name, sizeof name, "local:%s:%d", job->job_id ? job->job_id : "-", job->attempt);
    r->handle = strdup(name);
    *handle_out = strdup(name);
    if (!r->handle || !*handle_out) {
        err = HC_ENOMEM;
    } else if (run_add(el, r) != HC_OK) {
        err = HC_ECONFLICT;
        set_problem(problem_out, err, RUN_TWICE);
    }
    if (err) {
        free(*handle_out);
        *handle_out = NULL;
        goto out;
    }
    r = NULL;
out:
    if (err && err != HC_EBADRECORDS && err != HC_ECANCELLED && err != HC_ETIMEOUT && r && r->db)
        set_problem(problem_out, err, sqlite3_errmsg(r->db));
    else if (err)
        set_problem(problem_out, err, NULL);
    json_decref(bad);
    json_decref(warnings);
    run_free(r);
    return err;
}

static int local_poll(struct engine *e, const struct engine_job *job, const char *handle,
                      int *done_out, json_t **stats_out, json_t **problem_out)
{
    struct run *r = run_find((struct engine_local *)e, handle, 0);

    (void)job;
    *done_out = 0;
    if (stats_out)
        *stats_out = NULL;
    if (!r) {
        set_problem(problem_out, HC_EENGINETRANSIENT, "the run is not known to this process");
        return HC_EENGINETRANSIENT;
    }
    *done_out = 1;
    if (stats_out)
        *stats_out = json_deep_copy(r->stats);
    return HC_OK;
}

static int local_fetch_page(struct engine *e, const struct engine_job *job, const char *handle,
                            const char *token, struct result_sink *sink, char **next_token_out,
                            json_t **problem_out)
{
    struct engine_local *el = (struct engine_local *)e;
    struct run *r = run_find(el, handle, 0);
    struct value vals[16];
    size_t ncols;
    int err = HC_OK;

    *next_token_out = NULL;
    if (!r) {
        set_problem(problem_out, HC_EENGINETRANSIENT, "the run is not known to this process");
        return HC_EENGINETRANSIENT;
    }
    ncols = r->q->ncols;
    if (ncols > sizeof vals / sizeof vals[0])
        return HC_EINTERNAL;
    interrupt_from_job(&r->intr, job);
    if (!token) {
        if (r->rows_sent > 0) { /* the first page again: run the query again */
            sqlite3_reset(r->st);
            r->rows_sent = 0;
            err = step(r);
        }
        if (!err)
            err = sink->columns(sink->ctx, r->q->columns, ncols);
    } else if (strtoull(token, NULL, 10) != r->rows_sent) {
        set_problem(problem_out, HC_EINTERNAL, "page token out of sequence");
        return HC_EINTERNAL;
    }
    for (int n = 0; !err && r->has_row && n < LOCAL_PAGE_ROWS; n++) {
        for (size_t i = 0; i < ncols; i++) {
            struct value *v = &vals[i];

            memset(v, 0, sizeof *v);
            if (sqlite3_column_type(r->st, (int)i) == SQLITE_NULL) {
                v->is_null = 1;
                continue;
            }
            switch (r->q->columns[i].type) {
            case COL_VARCHAR:
                v->s = (const char *)sqlite3_column_text(r->st, (int)i);
                v->len = (size_t)sqlite3_column_bytes(r->st, (int)i);
                break;
            case COL_DOUBLE:
                v->d = sqlite3_column_double(r->st, (int)i);
                break;
            default:
                v->i = sqlite3_column_int64(r->st, (int)i);
            }
        }
        err = sink->row(sink->ctx, vals);
        if (!err) {
            r->rows_sent++;
            err = step(r);
        }
    }
    if (err) {
        set_problem(problem_out, err, NULL);
        return err;
    }
    if (r->has_row) {
        char tok[32];
        snprintf(tok, sizeof tok, "%llu", (unsigned long long)r->rows_sent);
        *next_token_out = strdup(tok);
        return *next_token_out ? HC_OK : HC_ENOMEM;
    }
    run_free(run_find(el, handle, 1)); /* the last page: the run is over */
    return HC_OK;
}

static int local_cancel(struct engine *e, const char *handle)
{
    run_free(run_find((struct engine_local *)e, handle, 1));
    return HC_OK;
}

static void local_destroy(struct engine *e)
{
    struct engine_local *el = (struct engine_local *)e;

    if (!el)
        return;
    while (el->runs) {
        struct run *r = el->runs;
        el->runs = r->next;
        run_free(r);
    }
    warehouse_close(el->wh);
    objstore_destroy(el->store);
    free(el->dataset_bucket);
    free(el->dataset_prefix);
    pthread_mutex_destroy(&el->lock);
    free(el->data_dir);
    free(el);
}

static int local_delete_object(struct engine *e, const char *source, int *removed_out)
{
    int err = engine_local_delete_object(e, source);

    if (removed_out)
        *removed_out = err == HC_OK;
    return err == HC_ENOTFOUND ? HC_OK : err;
}

static const struct engine_ops local_ops = {
    .name = "local",
    .start = local_start,
    .poll = local_poll,
    .fetch_page = local_fetch_page,
    .cancel = local_cancel,
    .destroy = local_destroy,
    .delete_object = local_delete_object,
};

int engine_local_new(const char *data_dir, struct engine **out)
{
    struct engine_local *el = calloc(1, sizeof *el);
    char path[PATH_MAX];
    int err = HC_OK;

    *out = NULL;
    if (!el)
        return HC_ENOMEM;
    el->base.ops = &local_ops;
    pthread_mutex_init(&el->lock, NULL);
    el->data_dir = strdup(data_dir);
    if (!el->data_dir) {
        err = HC_ENOMEM;
        goto out;
    }
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        err = HC_EIO;
        goto out;
    }
    snprintf(path, sizeof path, "%s/buckets", data_dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        err = HC_EIO;
        goto out;
    }
    err = objstore_folder_new(path, &el->store);
    if (err)
        goto out;
    snprintf(path, sizeof path, "%s/warehouse.db", data_dir);
    err = warehouse_open(path, &el->wh);
out:
    if (err) {
        local_destroy(&el->base);
        return err;
    }
    *out = &el->base;
    return HC_OK;
}

int engine_local_load(struct engine *e, const struct engine_job *job, json_t **stats_out,
                      json_t **problem_out)
{
    struct engine_local *el = (struct engine_local *)e;
    struct warehouse_load_stats ls = {0};
    struct interrupt intr;
    json_t *bad = NULL;
    uint64_t bytes = 0;
    int err;

    *stats_out = NULL;
    if (!job->source)
        return HC_EVALIDATION;
    interrupt_from_job(&intr, job);
    err = load_source(el, job, &intr, &ls, &bad, &bytes, problem_out);
    if (!err) {
        *stats_out = json_pack("{s:s, s:I, s:I, s:I, s:b}", "source", job->source, "bytes_read",
                               (json_int_t)bytes, "rows_loaded", (json_int_t)ls.records,
                               "bad_record_count", (json_int_t)ls.bad, "unchanged", ls.unchanged);
        if (!*stats_out)
            err = HC_ENOMEM;
        else if (job->on_bad_record == BAD_RECORD_SKIP)
            json_object_set_new(*stats_out, "bad_records", bad ? json_incref(bad) : json_array());
    }
    json_decref(bad);
    return err;
}

void engine_local_allow_files(struct engine *e, int allow)
{
    ((struct engine_local *)e)->allow_files = allow;
}

int engine_local_delete_object(struct engine *e, const char *source)
{
    struct engine_local *el = (struct engine_local *)e;
    char *bucket = NULL, *key = NULL;
    int err = objstore_parse_uri(source, &bucket, &key);

    if (!err)
        err = warehouse_delete(el->wh, bucket, key);
    free(bucket);
    free(key);
    return err;
}

int engine_local_set_store(struct engine *e, struct objstore *store, const char *dataset_uri)
{
    struct engine_local *el = (struct engine_local *)e;
    char *bucket = NULL, *prefix = NULL;

    if (dataset_uri && *dataset_uri) {
        const char *b = dataset_uri + 5, *slash;

        if (strncmp(dataset_uri, "s3://", 5) != 0 || !(slash = strchr(b, '/')))
            return HC_EBADSOURCE;
        bucket = strndup(b, (size_t)(slash - b));
        prefix = strdup(slash + 1);
        if (!bucket || !prefix) {
            free(bucket);
            free(prefix);
            return HC_ENOMEM;
        }
        if (!objstore_bucket_valid(bucket)) {
            free(bucket);
            free(prefix);
            return HC_EBADSOURCE;
        }
    }
    objstore_destroy(el->store);
    el->store = store;
    free(el->dataset_bucket);
    free(el->dataset_prefix);
    el->dataset_bucket = bucket;
    el->dataset_prefix = prefix;
    return HC_OK;
}
