/*
 * warehouse.c: the SQLite warehouse of the `local` engine (schema and contracts in warehouse.h).
 *
 * Organisation: schema and migrations; open/close (the write connection with its persistent
 * prepared statements); small statement helpers; removal of an object's rows and the repair of
 * `current` for facilities that lost their current row; the load transaction (begin, record,
 * bad, commit, abort); delete.
 *
 * Speed: a load reuses its prepared statements inside one transaction. Facility rows get
 * explicit, contiguous ids, so an object's rows are a rowid range (deleted without any secondary
 * index) and accreditations are appended at the end of their clustered b-tree. No index is
 * maintained per record: at commit, resolve_current() walks the load's rows sorted by
 * facility_id (one SQLite sort), claims `current` in that order (sequential b-tree access even
 * when `current` is much larger than the cache; claiming in input order was the dominant cost of
 * a 1M-record load) and finds facility_ids repeated within the object on the way. The write
 * connection's page cache is capped (WAREHOUSE_CACHE_KIB) to keep memory flat.
 */
#include "server/warehouse.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/buf.h"
#include "server/error.h"
#include "server/sys.h"

#define WAREHOUSE_CACHE_KIB  16384 /* write connection page cache */
#define WAREHOUSE_READER_KIB 16384 /* read connection page cache */
#define WAREHOUSE_BUSY_MS    30000

static const char *const migrations[] = {
    /* version 1 */
    "CREATE TABLE objects("
    " load_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " bucket TEXT NOT NULL, key TEXT NOT NULL,"
    " size INTEGER NOT NULL, version TEXT NOT NULL,"
    " fac_first INTEGER NOT NULL, fac_last INTEGER NOT NULL,"
    " n_records INTEGER NOT NULL, n_bad INTEGER NOT NULL, bad_records TEXT,"
    " loaded_ms INTEGER NOT NULL,"
    " UNIQUE(bucket, key));"
    "CREATE TABLE facilities("
    " id INTEGER PRIMARY KEY, load_id INTEGER NOT NULL, cur INTEGER NOT NULL,"
    " facility_id TEXT NOT NULL, name TEXT, employee_count INTEGER,"
    " address TEXT, city TEXT, state TEXT, zip TEXT,"
    " n_services INTEGER NOT NULL, first_valid_until INTEGER);"
    "CREATE TABLE accreditations("
    " fac INTEGER NOT NULL, ord INTEGER NOT NULL, body TEXT, acc_id TEXT, valid_until INTEGER,"
    " PRIMARY KEY(fac, ord)) WITHOUT ROWID;"
    "CREATE TABLE current("
    " facility_id TEXT PRIMARY KEY, fac INTEGER NOT NULL, load_id INTEGER NOT NULL)"
    " WITHOUT ROWID;",
    /* version 2: the record's position in its object, to report repeated facility_ids */
    "ALTER TABLE facilities ADD COLUMN position INTEGER;",
    /* version 3: per-state summaries of the current facilities, for accredited_by_state on the
     * whole dataset without scanning it (see apply_delta()) */
    "CREATE TABLE state_valid("
    " null_state INTEGER NOT NULL, state TEXT NOT NULL, max_until INTEGER NOT NULL,"
    " n INTEGER NOT NULL, emp INTEGER NOT NULL,"
    " PRIMARY KEY(null_state, state, max_until)) WITHOUT ROWID;"
    "CREATE TABLE state_acc("
    " null_state INTEGER NOT NULL, state TEXT NOT NULL, valid_until INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY(null_state, state, valid_until)) WITHOUT ROWID;"
    "INSERT INTO state_valid"
    " SELECT f.state IS NULL, coalesce(f.state, ''), m.mx, count(*),"
    " sum(coalesce(f.employee_count, 0))"
    " FROM (SELECT fac, max(valid_until) AS mx FROM accreditations GROUP BY fac) AS m"
    " JOIN facilities AS f ON f.id = m.fac WHERE f.cur = 1 AND m.mx IS NOT NULL"
    " GROUP BY 1, 2, 3;"
    "INSERT INTO state_acc"
    " SELECT f.state IS NULL, coalesce(f.state, ''), a.valid_until, count(*)"
    " FROM accreditations AS a JOIN facilities AS f ON f.id = a.fac"
    " WHERE f.cur = 1 AND a.valid_until IS NOT NULL GROUP BY 1, 2, 3;",
};

enum stmt_id {
    ST_CUR_INS,
    ST_CUR_GET,
    ST_CUR_UPD,
    ST_FAC_UNCUR,
    ST_FAC_INS,
    ST_ACC_INS,
    ST_OBJ_GET,
    ST_LOAD_SORTED,
    ST_FAC_DEL,
    ST_ACC_DEL,
    ST_DELTA_ADD,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_CUR_INS] = "INSERT INTO current(facility_id, fac, load_id) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(facility_id) DO NOTHING",
    [ST_CUR_GET] = "SELECT fac, load_id FROM current WHERE facility_id = ?1",
    [ST_CUR_UPD] = "UPDATE current SET fac = ?2, load_id = ?3 WHERE facility_id = ?1",
    [ST_FAC_UNCUR] = "UPDATE facilities SET cur = 0 WHERE id = ?1",
    [ST_FAC_INS] = "INSERT INTO facilities(id, load_id, cur, facility_id, name, employee_count,"
                   " address, city, state, zip, n_services, first_valid_until, position)"
                   " VALUES(?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_ACC_INS] = "INSERT INTO accreditations(fac, ord, body, acc_id, valid_until)"
                   " VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_OBJ_GET] = "SELECT load_id, size, version, fac_first, fac_last, n_records, n_bad,"
                   " bad_records FROM objects WHERE bucket = ?1 AND key = ?2",
    [ST_LOAD_SORTED] = "SELECT facility_id, id, position FROM facilities"
                       " WHERE id BETWEEN ?1 AND ?2 ORDER BY facility_id, id",
    [ST_FAC_DEL] = "DELETE FROM facilities WHERE id = ?1",
    [ST_ACC_DEL] = "DELETE FROM accreditations WHERE fac = ?1",
    [ST_DELTA_ADD] = "INSERT OR IGNORE INTO temp.delta(fac) VALUES(?1)",
};

struct warehouse {
    char *path;
    sqlite3 *db;                /* the write connection */
    sqlite3_stmt *st[ST_COUNT]; /* persistent statements of the write connection */
    pthread_mutex_t lock;       /* serialises loads and deletes on db */
};

struct warehouse_load {
    struct warehouse *w;
    enum bad_record_policy policy;
    int64_t load_id;
    int64_t fac_first, next_fac; /* facility ids of this load: [fac_first, next_fac) */
    uint64_t records, bad;
    json_t *bad_list; /* {position, reason[, source]} */
    char *source;
    int dberr; /* first database error, sticky */
};

int warehouse_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return HC_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return HC_EDB;
    case SQLITE_FULL:
        return HC_EDISKFULL;
    case SQLITE_IOERR:
        return HC_EIO;
    case SQLITE_NOMEM:
        return HC_ENOMEM;
    case SQLITE_INTERRUPT:
        return HC_ECANCELLED;
    default:
        return HC_EDB;
    }
}

/* ---- statement helpers ---- */

/* Runs `sql` with int64 parameters ?1..?n. Returns an SQLite code. */
static int exec_i64(sqlite3 *db, const char *sql, int n, const int64_t *args)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    for (int i = 0; rc == SQLITE_OK && i < n; i++)
        rc = sqlite3_bind_int64(st, i + 1, args[i]);
    if (rc == SQLITE_OK) {
        do {
            rc = sqlite3_step(st);
        } while (rc == SQLITE_ROW);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* One int64 from a query with int64 parameters (0 when no row). */
static int query_i64(sqlite3 *db, const char *sql, int n, const int64_t *args, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    *out = 0;
    for (int i = 0; rc == SQLITE_OK && i < n; i++)
        rc = sqlite3_bind_int64(st, i + 1, args[i]);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Steps a statement once and resets it. Returns an SQLite code (OK for DONE/ROW). */
static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? SQLITE_OK : rc;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* ---- open / close ---- */

static int configure(sqlite3 *db, int cache_kib)
{
    char sql[256];

    sqlite3_busy_timeout(db, WAREHOUSE_BUSY_MS);
    /* page_size only takes effect on a new, empty database: 16 KiB pages measured ~15% less
     * CPU for bulk loads than 4 KiB. journal_size_limit truncates the WAL after a big load. */
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
             " PRAGMA cache_size=-%d; PRAGMA temp_store=FILE;"
             " PRAGMA journal_size_limit=67108864;",
             cache_kib);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int migrate(sqlite3 *db)
{
    int64_t version;
    int rc = query_i64(db, "PRAGMA user_version", 0, NULL, &version);
    int n = (int)(sizeof migrations / sizeof migrations[0]);

    if (rc != SQLITE_OK)
        return rc;
    if (version > n)
        return SQLITE_ERROR; /* written by a newer hcpipe */
    while (version < n) {
        char sql[64];

        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = query_i64(db, "PRAGMA user_version", 0, NULL, &version);
        if (rc == SQLITE_OK && version < n) {
            rc = sqlite3_exec(db, migrations[version], NULL, NULL, NULL);
            snprintf(sql, sizeof sql, "PRAGMA user_version=%d", (int)version + 1);
            if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
        rc = query_i64(db, "PRAGMA user_version", 0, NULL, &version);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

int warehouse_open(const char *path, struct warehouse **out)
{
    struct warehouse *w = calloc(1, sizeof *w);
    int rc = SQLITE_OK;

    *out = NULL;
    if (!w)
        return HC_ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    w->path = strdup(path);
    if (!w->path) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = sqlite3_open_v2(path, &w->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = configure(w->db, WAREHOUSE_CACHE_KIB);
    if (rc == SQLITE_OK)
        rc = migrate(w->db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(w->db,
                          "CREATE TEMP TABLE IF NOT EXISTS orphan(facility_id TEXT PRIMARY KEY)"
                          " WITHOUT ROWID;"
                          "CREATE TEMP TABLE IF NOT EXISTS delta(fac INTEGER PRIMARY KEY)",
                          NULL, NULL, NULL);
    for (int i = 0; rc == SQLITE_OK && i < ST_COUNT; i++)
        rc = sqlite3_prepare_v3(w->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &w->st[i], NULL);
out:
    if (rc != SQLITE_OK) {
        int err = warehouse_sqlite_err(rc);
        warehouse_close(w);
        return err == HC_OK ? HC_EDB : err;
    }
    *out = w;
    return HC_OK;
}

void warehouse_close(struct warehouse *w)
{
    if (!w)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(w->st[i]);
    sqlite3_close(w->db);
    pthread_mutex_destroy(&w->lock);
    free(w->path);
    free(w);
}

int warehouse_open_reader(struct warehouse *w, sqlite3 **db_out)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(w->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc == SQLITE_OK)
        rc = configure(db, WAREHOUSE_READER_KIB);
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        *db_out = NULL;
        return warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    }
    *db_out = db;
    return HC_OK;
}

/* ---- the per-state summaries ---- */

/* The summary cells of one apply_delta() pass: (state, date) -> counts, in open-addressing
 * tables of compact cells (24 bytes). State strings are interned once per facility in a table
 * shared by both cell tables, and cells refer to them by code. */
struct cell {
    int32_t st;   /* 0: empty slot, 1: the NULL state, k + 2: states.v[k] */
    int32_t date; /* max_until or valid_until */
    int64_t n, emp;
};

struct cells {
    struct cell *v;
    size_t cap, len;
};

struct states {
    char **v; /* interned state strings (owned) */
    size_t n;
    int32_t *idx; /* open-addressing table of v indices + 1 (0: empty) */
    size_t cap;
};

#define CELLS_FLUSH 131072 /* cells (and states) held before they are upserted: bounds memory */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int32_t *states_slot(int32_t *idx, size_t cap, char *const *v, const char *s)
{
    size_t i = (size_t)str_hash(s) & (cap - 1);

    while (idx[i] && strcmp(v[idx[i] - 1], s) != 0)
        i = (i + 1) & (cap - 1);
    return &idx[i];
}

/* The cell code of a state (1 for NULL), interning it. Returns 0 on ENOMEM. */
static int32_t states_code(struct states *t, const char *state)
{
    int32_t *slot;
    char *copy;

    if (!state)
        return 1;
    if ((t->n + 1) * 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        int32_t *ni = calloc(nc, sizeof *ni);
        char **nv = realloc(t->v, (nc / 2) * sizeof *nv);

        if (nv)
            t->v = nv;
        if (!ni || !nv) {
            free(ni);
            return 0;
        }
        for (size_t k = 0; k < t->n; k++)
            *states_slot(ni, nc, t->v, t->v[k]) = (int32_t)k + 1;
        free(t->idx);
        t->idx = ni;
        t->cap = nc;
    }
    slot = states_slot(t->idx, t->cap, t->v, state);
    if (*slot)
        return *slot + 1;
    copy = strdup(state);
    if (!copy)
        return 0;
    t->v[t->n++] = copy;
    *slot = (int32_t)t->n;
    return *slot + 1;
}

static void states_free(struct states *t)
{
    for (size_t k = 0; k < t->n; k++)
        free(t->v[k]);
    free(t->v);
    free(t->idx);
    memset(t, 0, sizeof *t);
}

static struct cell *cells_slot(struct cell *v, size_t cap, int32_t st, int32_t date)
{
    uint64_t h = (uint64_t)(uint32_t)st << 32 | (uint32_t)date;
    size_t i;

    h ^= h >> 33; /* murmur3's finaliser: every key bit reaches the low bits */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    i = (size_t)h & (cap - 1);

    while (v[i].st && (v[i].st != st || v[i].date != date))
        i = (i + 1) & (cap - 1);
    return &v[i];
}

/* Adds (dn, demp) to the cell of (state code, date). Returns HC_OK or HC_ENOMEM. */
static int cells_add(struct cells *t, int32_t st, int64_t date, int64_t dn, int64_t demp)
{
    struct cell *c;

    if ((t->len + 1) * 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 1024;
        struct cell *nv = calloc(nc, sizeof *nv);

        if (!nv)
            return HC_ENOMEM;
        for (size_t i = 0; i < t->cap; i++)
            if (t->v[i].st)
                *cells_slot(nv, nc, t->v[i].st, t->v[i].date) = t->v[i];
        free(t->v);
        t->v = nv;
        t->cap = nc;
    }
    c = cells_slot(t->v, t->cap, st, (int32_t)date);
    if (!c->st) {
        c->st = st;
        c->date = (int32_t)date;
        t->len++;
    }
    c->n += dn;
    c->emp += demp;
    return HC_OK;
}

static void cells_free(struct cells *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

static const char sql_valid_upsert[] =
    "INSERT INTO state_valid(null_state, state, max_until, n, emp)"
    " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(null_state, state, max_until)"
    " DO UPDATE SET n = n + excluded.n, emp = emp + excluded.emp";
static const char sql_acc_upsert[] =
    "INSERT INTO state_acc(null_state, state, valid_until, n)"
    " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(null_state, state, valid_until)"
    " DO UPDATE SET n = n + excluded.n";

/* Upserts every non-zero cell with `sql` (?1 null_state, ?2 state, ?3 date, ?4 n, ?5 emp) and
 * empties the table. Returns an hc_err. */
static int cells_flush(sqlite3 *db, struct cells *t, const struct states *names, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    int has_emp = rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 5;

    for (size_t i = 0; rc == SQLITE_OK && i < t->cap; i++) {
        const struct cell *c = &t->v[i];

        if (!c->st || (c->n == 0 && c->emp == 0))
            continue;
        sqlite3_bind_int(st, 1, c->st == 1);
        sqlite3_bind_text(st, 2, c->st == 1 ? "" : names->v[c->st - 2], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, c->date);
        sqlite3_bind_int64(st, 4, c->n);
        if (has_emp)
            sqlite3_bind_int64(st, 5, c->emp);
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    cells_free(t);
    if (rc == SQLITE_OK)
        return HC_OK;
    return warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
}

/* Adds (sign 1) or subtracts (sign -1) the facility rows listed in temp.delta to/from the
 * per-state summaries, then empties temp.delta. A row is added when it becomes current and
 * subtracted when it stops being current, while its data is still there. state_valid counts
 * facilities and employees by (state, latest valid_until); state_acc counts accreditations by
 * (state, valid_until). The rows are walked once in facility order and aggregated in memory
 * (states x dates cells, upserted whenever CELLS_FLUSH are held, as sums commute); grouping in
 * SQL instead sorted every accreditation and cost more than the load itself. Inside a
 * transaction. Returns an SQLite code. */
static int apply_delta(sqlite3 *db, int64_t sign)
{
    struct cells valid = {0}, accs = {0};
    struct states names = {0};
    sqlite3_stmt *q = NULL;
    int64_t fac = -1, emp = 0, max_vu = 0;
    int32_t st = 0;
    int have_max = 0, rc, err = HC_OK;

    rc = sqlite3_prepare_v2(db,
                            "SELECT d.fac, f.state, f.employee_count, a.valid_until"
                            " FROM temp.delta AS d JOIN facilities AS f ON f.id = d.fac"
                            " JOIN accreditations AS a ON a.fac = d.fac"
                            " WHERE a.valid_until IS NOT NULL ORDER BY d.fac",
                            -1, &q, NULL);
    while (rc == SQLITE_OK && !err) {
        int64_t id, vu;

        rc = sqlite3_step(q);
        if (rc != SQLITE_ROW) {
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
            break;
        }
        rc = SQLITE_OK;
        id = sqlite3_column_int64(q, 0);
        vu = sqlite3_column_int64(q, 3);
        if (id != fac) { /* a new facility: close the previous one */
            if (have_max)
                err = cells_add(&valid, st, max_vu, sign, sign * emp);
            if (!err && names.n >= CELLS_FLUSH) {
                err = cells_flush(db, &valid, &names, sql_valid_upsert);
                if (!err)
                    err = cells_flush(db, &accs, &names, sql_acc_upsert);
                states_free(&names);
            }
            if (err)
                break;
            st = states_code(&names, sqlite3_column_type(q, 1) == SQLITE_NULL
                                         ? NULL
                                         : (const char *)sqlite3_column_text(q, 1));
            if (!st) {
                err = HC_ENOMEM;
                break;
            }
            fac = id;
            emp = sqlite3_column_int64(q, 2); /* 0 for NULL */
            have_max = 0;
        }
        if (!have_max || vu > max_vu)
            max_vu = vu;
        have_max = 1;
        err = cells_add(&accs, st, vu, sign, 0);
        if (!err && accs.len >= CELLS_FLUSH)
            err = cells_flush(db, &accs, &names, sql_acc_upsert);
        if (!err && valid.len >= CELLS_FLUSH)
            err = cells_flush(db, &valid, &names, sql_valid_upsert);
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_OK && !err && have_max)
        err = cells_add(&valid, st, max_vu, sign, sign * emp);
    if (rc == SQLITE_OK && !err)
        err = cells_flush(db, &valid, &names, sql_valid_upsert);
    if (rc == SQLITE_OK && !err)
        err = cells_flush(db, &accs, &names, sql_acc_upsert);
    cells_free(&valid);
    cells_free(&accs);
    states_free(&names);
    if (rc != SQLITE_OK)
        return rc;
    if (err)
        return err == HC_ENOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
    if (sign < 0)
        rc = exec_i64(db, "DELETE FROM state_valid WHERE n = 0", 0, NULL);
    if (rc == SQLITE_OK && sign < 0)
        rc = exec_i64(db, "DELETE FROM state_acc WHERE n = 0", 0, NULL);
    if (rc == SQLITE_OK)
        rc = exec_i64(db, "DELETE FROM temp.delta", 0, NULL);
    return rc;
}

/* ---- removal and repair ---- */

/* Removes the rows of load `load_id` (facility ids [first, last]); facilities whose current row
 * it held are remembered in temp.orphan for repair_current(). Inside a transaction. */
static int remove_load(sqlite3 *db, int64_t load_id, int64_t first, int64_t last)
{
    int64_t a1[1] = {load_id}, a2[2] = {first, last};
    int rc = exec_i64(db,
                      "INSERT OR IGNORE INTO temp.delta SELECT fac FROM current"
                      " WHERE load_id = ?1",
                      1, a1);

    if (rc == SQLITE_OK)
        rc = apply_delta(db, -1);
    if (rc == SQLITE_OK)
        rc = exec_i64(db,
                      "INSERT OR IGNORE INTO temp.orphan SELECT facility_id FROM current"
                      " WHERE load_id = ?1",
                      1, a1);

    if (rc == SQLITE_OK)
        rc = exec_i64(db, "DELETE FROM current WHERE load_id = ?1", 1, a1);
    if (rc == SQLITE_OK)
        rc = exec_i64(db, "DELETE FROM facilities WHERE id BETWEEN ?1 AND ?2", 2, a2);
    if (rc == SQLITE_OK)
        rc = exec_i64(db, "DELETE FROM accreditations WHERE fac BETWEEN ?1 AND ?2", 2, a2);
    if (rc == SQLITE_OK)
        rc = exec_i64(db, "DELETE FROM objects WHERE load_id = ?1", 1, a1);
    return rc;
}

/* Gives every orphaned facility_id without a current row the most recently loaded row left
 * (the largest id), if any. Inside a transaction; empties temp.orphan. */
static int repair_current(sqlite3 *db)
{
    int64_t left = 0;
    int rc = exec_i64(db,
                      "DELETE FROM temp.orphan WHERE facility_id IN"
                      " (SELECT facility_id FROM current)",
                      0, NULL);

    if (rc == SQLITE_OK)
        rc = query_i64(db, "SELECT count(*) FROM temp.orphan", 0, NULL, &left);
    if (rc != SQLITE_OK || left == 0)
        return rc;
    /* A full scan of facilities: only after a delete or a reload that dropped facility ids. */
    rc = exec_i64(db,
                  "INSERT INTO current(facility_id, fac, load_id)"
                  " SELECT facility_id, max(id), load_id FROM facilities"
                  " WHERE facility_id IN (SELECT facility_id FROM temp.orphan)"
                  " GROUP BY facility_id",
                  0, NULL);
    if (rc == SQLITE_OK)
        rc = exec_i64(db,
                      "UPDATE facilities SET cur = 1 WHERE id IN (SELECT fac FROM current"
                      " WHERE facility_id IN (SELECT facility_id FROM temp.orphan))",
                      0, NULL);
    if (rc == SQLITE_OK)
        rc = exec_i64(db,
                      "INSERT OR IGNORE INTO temp.delta SELECT fac FROM current"
                      " WHERE facility_id IN (SELECT facility_id FROM temp.orphan)",
                      0, NULL);
    if (rc == SQLITE_OK)
        rc = apply_delta(db, 1);
    if (rc == SQLITE_OK)
        rc = exec_i64(db, "DELETE FROM temp.orphan", 0, NULL);
    return rc;
}

/* ---- objects ---- */

struct stored_object {
    int found;
    int64_t load_id, size, fac_first, fac_last, n_records, n_bad;
    char *version;     /* malloc'ed */
    char *bad_records; /* malloc'ed JSON text or NULL */
};

static int object_get(struct warehouse *w, const char *bucket, const char *key,
                      struct stored_object *o)
{
    sqlite3_stmt *st = w->st[ST_OBJ_GET];
    int rc;

    memset(o, 0, sizeof *o);
    sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 2);
        const char *b = (const char *)sqlite3_column_text(st, 7);

        o->found = 1;
        o->load_id = sqlite3_column_int64(st, 0);
        o->size = sqlite3_column_int64(st, 1);
        o->fac_first = sqlite3_column_int64(st, 3);
        o->fac_last = sqlite3_column_int64(st, 4);
        o->n_records = sqlite3_column_int64(st, 5);
        o->n_bad = sqlite3_column_int64(st, 6);
        o->version = strdup(v ? v : "");
        o->bad_records = b ? strdup(b) : NULL;
        rc = (!o->version || (b && !o->bad_records)) ? SQLITE_NOMEM : SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void stored_free(struct stored_object *o)
{
    free(o->version);
    free(o->bad_records);
}

int warehouse_object_load_id(struct warehouse *w, const char *bucket, const char *key,
                             int64_t *load_id_out)
{
    struct stored_object o;
    int rc;

    pthread_mutex_lock(&w->lock);
    rc = object_get(w, bucket, key, &o);
    pthread_mutex_unlock(&w->lock);
    *load_id_out = o.load_id;
    stored_free(&o);
    if (rc != SQLITE_OK)
        return warehouse_sqlite_err(rc);
    return o.found ? HC_OK : HC_ENOTFOUND;
}

/* ---- loads ---- */

/* Takes the write lock, waking every 100 ms to ask `interrupt` whether to give up (another job's
 * load may hold the lock for a long time). Returns HC_OK or HC_ECANCELLED. */
static int lock_interruptible(struct warehouse *w, int (*interrupt)(void *), void *ctx)
{
    for (;;) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_mutex_timedlock(&w->lock, &ts) == 0)
            return HC_OK;
        if (interrupt && interrupt(ctx))
            return HC_ECANCELLED;
    }
}

int warehouse_load_begin(struct warehouse *w, const struct warehouse_object *obj,
                         enum bad_record_policy policy, struct warehouse_load **out,
                         struct warehouse_load_stats *st_out, json_t **bad_records_out)
{
    struct stored_object o;
    struct warehouse_load *ld = NULL;
    int rc, err = HC_OK, in_tx = 0;

    *out = NULL;
    memset(st_out, 0, sizeof *st_out);
    if (bad_records_out)
        *bad_records_out = NULL;
    if (lock_interruptible(w, obj->interrupt, obj->interrupt_ctx) != HC_OK)
        return HC_ECANCELLED;
    sqlite3_progress_handler(w->db, obj->interrupt ? 4000 : 0, obj->interrupt, obj->interrupt_ctx);
    rc = object_get(w, obj->bucket, obj->key, &o);
    if (rc != SQLITE_OK)
        goto out;
    if (o.found && (uint64_t)o.size == obj->size && strcmp(o.version, obj->version) == 0 &&
        (o.n_bad == 0 || policy == BAD_RECORD_SKIP)) {
        st_out->load_id = o.load_id;
        st_out->records = (uint64_t)o.n_records;
        st_out->bad = (uint64_t)o.n_bad;
        st_out->unchanged = 1;
        if (bad_records_out) {
            *bad_records_out = o.bad_records ? json_loads(o.bad_records, 0, NULL) : NULL;
            if (!*bad_records_out)
                *bad_records_out = json_array();
        }
        goto out;
    }
    ld = calloc(1, sizeof *ld);
    if (!ld || !(ld->bad_list = json_array()) ||
        (obj->source && !(ld->source = strdup(obj->source)))) {
        err = HC_ENOMEM;
        goto out;
    }
    ld->w = w;
    ld->policy = policy;
    rc = sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto out;
    in_tx = 1;
    if (o.found) {
        rc = remove_load(w->db, o.load_id, o.fac_first, o.fac_last);
        if (rc != SQLITE_OK)
            goto out;
    }
    {
        sqlite3_stmt *st = NULL;

        rc = sqlite3_prepare_v2(w->db,
                                "INSERT INTO objects(bucket, key, size, version, fac_first,"
                                " fac_last, n_records, n_bad, loaded_ms)"
                                " VALUES(?1, ?2, ?3, ?4, 0, -1, 0, 0, ?5)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, obj->bucket, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, obj->key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (int64_t)obj->size);
            sqlite3_bind_text(st, 4, obj->version, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, sys_now_ms());
            rc = sqlite3_step(st);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_OK)
            goto out;
        ld->load_id = sqlite3_last_insert_rowid(w->db);
    }
    rc = query_i64(w->db, "SELECT coalesce(max(id), 0) + 1 FROM facilities", 0, NULL,
                   &ld->fac_first);
    if (rc != SQLITE_OK)
        goto out;
    ld->next_fac = ld->fac_first;
    st_out->load_id = ld->load_id;
    *out = ld;
    ld = NULL;
out:
    if (err == HC_OK && rc != SQLITE_OK)
        err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    stored_free(&o);
    if (ld) {
        json_decref(ld->bad_list);
        free(ld->source);
        free(ld);
    }
    if (err != HC_OK && in_tx)
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    if (err != HC_OK || !*out) {
        sqlite3_progress_handler(w->db, 0, NULL, NULL);
        pthread_mutex_unlock(&w->lock);
    }
    return err;
}

static int load_fail(struct warehouse_load *ld, int rc)
{
    if (!ld->dberr)
        ld->dberr = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    return ld->dberr;
}

int warehouse_load_bad(struct warehouse_load *ld, uint64_t position, const char *reason)
{
    ld->bad++;
    if (ld->policy == BAD_RECORD_SKIP || json_array_size(ld->bad_list) < WAREHOUSE_FAIL_LIST_MAX) {
        json_t *e = json_pack("{s:I, s:s}", "position", (json_int_t)position, "reason",
                              reason ? reason : "bad record");
        if (e && ld->source)
            json_object_set_new(e, "source", json_string(ld->source));
        if (!e || json_array_append_new(ld->bad_list, e) != 0)
            return HC_ENOMEM;
    }
    if (ld->policy == BAD_RECORD_FAIL && ld->bad >= WAREHOUSE_FAIL_LIST_MAX)
        return HC_EBADRECORDS;
    return HC_OK;
}

uint64_t warehouse_load_bad_count(const struct warehouse_load *ld)
{
    return ld->bad;
}

int warehouse_load_record(struct warehouse_load *ld, const struct facility_record *r)
{
    struct warehouse *w = ld->w;
    sqlite3_stmt *st;
    int64_t fac = ld->next_fac;
    int rc;

    if (ld->dberr)
        return ld->dberr;
    st = w->st[ST_FAC_INS];
    sqlite3_bind_int64(st, 1, fac);
    sqlite3_bind_int64(st, 2, ld->load_id);
    sqlite3_bind_text(st, 3, r->facility_id, -1, SQLITE_STATIC);
    bind_text_or_null(st, 4, r->facility_name);
    if (r->has_employee_count)
        sqlite3_bind_int64(st, 5, r->employee_count);
    else
        sqlite3_bind_null(st, 5);
    bind_text_or_null(st, 6, r->address);
    bind_text_or_null(st, 7, r->city);
    bind_text_or_null(st, 8, r->state);
    bind_text_or_null(st, 9, r->zip);
    sqlite3_bind_int64(st, 10, (int64_t)r->n_services);
    if (r->n_accreditations > 0 && r->accreditations[0].valid_until != RECORDS_NULL_DATE)
        sqlite3_bind_int64(st, 11, r->accreditations[0].valid_until);
    else
        sqlite3_bind_null(st, 11);
    sqlite3_bind_int64(st, 12, (int64_t)r->position);
    rc = step_reset(st);
    if (rc != SQLITE_OK)
        return load_fail(ld, rc);
    st = w->st[ST_ACC_INS];
    for (size_t i = 0; i < r->n_accreditations; i++) {
        const struct record_accreditation *a = &r->accreditations[i];

        sqlite3_bind_int64(st, 1, fac);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        bind_text_or_null(st, 3, a->body);
        bind_text_or_null(st, 4, a->id);
        if (a->valid_until != RECORDS_NULL_DATE)
            sqlite3_bind_int64(st, 5, a->valid_until);
        else
            sqlite3_bind_null(st, 5);
        rc = step_reset(st);
        if (rc != SQLITE_OK)
            return load_fail(ld, rc);
    }
    ld->next_fac++;
    ld->records++;
    return HC_OK;
}

/* A repeated facility_id found by resolve_current(). */
struct dup {
    uint64_t position;
    int64_t id;
    char reason[160];
};

static int dup_cmp(const void *a, const void *b)
{
    const struct dup *x = a, *y = b;

    return x->position < y->position ? -1 : x->position > y->position;
}

static json_t *bad_entry(const struct warehouse_load *ld, uint64_t position, const char *reason)
{
    json_t *e = json_pack("{s:I, s:s}", "position", (json_int_t)position, "reason", reason);

    if (e && ld->source)
        json_object_set_new(e, "source", json_string(ld->source));
    return e;
}

/* Merges the repeated facility_ids into the bad list, in position order (the first 20 only
 * with policy fail). */
static int merge_dups(struct warehouse_load *ld, struct dup *d, size_t n)
{
    json_t *out = json_array();
    size_t i = 0, j = 0, na = json_array_size(ld->bad_list);

    if (!out)
        return HC_ENOMEM;
    qsort(d, n, sizeof *d, dup_cmp);
    while (i < na || j < n) {
        json_t *a = i < na ? json_array_get(ld->bad_list, i) : NULL;
        uint64_t pa = a ? (uint64_t)json_integer_value(json_object_get(a, "position")) : UINT64_MAX;

        if (ld->policy == BAD_RECORD_FAIL && json_array_size(out) >= WAREHOUSE_FAIL_LIST_MAX)
            break;
        if (j < n && d[j].position < pa) {
            if (json_array_append_new(out, bad_entry(ld, d[j].position, d[j].reason)) != 0) {
                json_decref(out);
                return HC_ENOMEM;
            }
            j++;
        } else {
            json_array_append(out, a);
            i++;
        }
    }
    json_decref(ld->bad_list);
    ld->bad_list = out;
    return HC_OK;
}

/* Gives this load's rows their `current` entries, walking them in facility_id order: the
 * b-tree of `current` is then visited sequentially, which is far cheaper than claiming ids in
 * input order once it outgrows the page cache. A facility_id seen earlier in the load (same
 * facility_id, smaller id) is a bad record: its rows are removed. Returns an hc_err. */
static int resolve_current(struct warehouse_load *ld)
{
    struct warehouse *w = ld->w;
    sqlite3_stmt *q = w->st[ST_LOAD_SORTED], *st;
    struct buf prev;
    uint64_t prev_pos = 0;
    struct dup *dups = NULL;
    size_t n_dups = 0, cap_dups = 0;
    int rc, err = HC_OK, have_prev = 0;

    if (ld->next_fac == ld->fac_first)
        return HC_OK;
    buf_init(&prev, 1 << 20);
    sqlite3_bind_int64(q, 1, ld->fac_first);
    sqlite3_bind_int64(q, 2, ld->next_fac - 1);
    for (;;) {
        const char *fid;
        size_t flen;
        int64_t id;
        uint64_t pos;

        rc = sqlite3_step(q);
        if (rc != SQLITE_ROW)
            break;
        fid = (const char *)sqlite3_column_text(q, 0);
        flen = (size_t)sqlite3_column_bytes(q, 0);
        id = sqlite3_column_int64(q, 1);
        pos = (uint64_t)sqlite3_column_int64(q, 2);
        if (have_prev && prev.len == flen && memcmp(prev.data, fid, flen) == 0) {
            if (n_dups == cap_dups) {
                size_t nc = cap_dups ? cap_dups * 2 : 64;
                struct dup *nd = realloc(dups, nc * sizeof *nd);
                if (!nd) {
                    err = HC_ENOMEM;
                    break;
                }
                dups = nd;
                cap_dups = nc;
            }
            dups[n_dups].position = pos;
            dups[n_dups].id = id;
            snprintf(dups[n_dups].reason, sizeof dups[n_dups].reason,
                     "facility_id \"%.80s\" repeats the record at position %llu", prev.data,
                     (unsigned long long)prev_pos);
            n_dups++;
            continue;
        }
        buf_reset(&prev);
        if (buf_append(&prev, fid, flen) != 0) {
            err = HC_ENOMEM;
            break;
        }
        have_prev = 1;
        prev_pos = pos;
        st = w->st[ST_CUR_INS];
        sqlite3_bind_text(st, 1, prev.data, (int)prev.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_int64(st, 3, ld->load_id);
        rc = step_reset(st);
        if (rc == SQLITE_OK && sqlite3_changes(w->db) == 0) {
            /* An older object's row is current: this one supersedes it. */
            int64_t old_fac = 0;

            st = w->st[ST_CUR_GET];
            sqlite3_bind_text(st, 1, prev.data, (int)prev.len, SQLITE_STATIC);
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                old_fac = sqlite3_column_int64(st, 0);
                rc = SQLITE_OK;
            } else if (rc == SQLITE_DONE) {
                rc = SQLITE_CORRUPT;
            }
            sqlite3_reset(st);
            if (rc == SQLITE_OK) {
                st = w->st[ST_FAC_UNCUR];
                sqlite3_bind_int64(st, 1, old_fac);
                rc = step_reset(st);
            }
            if (rc == SQLITE_OK) { /* leaves the summaries below */
                st = w->st[ST_DELTA_ADD];
                sqlite3_bind_int64(st, 1, old_fac);
                rc = step_reset(st);
            }
            if (rc == SQLITE_OK) {
                st = w->st[ST_CUR_UPD];
                sqlite3_bind_text(st, 1, prev.data, (int)prev.len, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, id);
                sqlite3_bind_int64(st, 3, ld->load_id);
                rc = step_reset(st);
            }
        }
        if (rc != SQLITE_OK)
            break;
    }
    sqlite3_reset(q);
    if (!err && rc != SQLITE_DONE)
        err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    for (size_t i = 0; !err && i < n_dups; i++) {
        st = w->st[ST_FAC_DEL];
        sqlite3_bind_int64(st, 1, dups[i].id);
        rc = step_reset(st);
        if (rc == SQLITE_OK) {
            st = w->st[ST_ACC_DEL];
            sqlite3_bind_int64(st, 1, dups[i].id);
            rc = step_reset(st);
        }
        if (rc != SQLITE_OK)
            err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    }
    if (!err) { /* superseded rows leave the summaries, this load's rows enter them */
        int64_t range[2] = {ld->fac_first, ld->next_fac - 1};

        rc = apply_delta(w->db, -1);
        if (rc == SQLITE_OK)
            rc = exec_i64(w->db,
                          "INSERT INTO temp.delta SELECT id FROM facilities"
                          " WHERE id BETWEEN ?1 AND ?2",
                          2, range);
        if (rc == SQLITE_OK)
            rc = apply_delta(w->db, 1);
        if (rc != SQLITE_OK)
            err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    }
    if (!err && n_dups > 0) {
        ld->records -= n_dups;
        ld->bad += n_dups;
        err = merge_dups(ld, dups, n_dups);
    }
    free(dups);
    buf_free(&prev);
    return err;
}

static void load_free(struct warehouse_load *ld, int rollback)
{
    struct warehouse *w = ld->w;

    if (rollback)
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(w->db, "DELETE FROM temp.orphan; DELETE FROM temp.delta", NULL, NULL, NULL);
    sqlite3_progress_handler(w->db, 0, NULL, NULL);
    pthread_mutex_unlock(&w->lock);
    json_decref(ld->bad_list);
    free(ld->source);
    free(ld);
}

int warehouse_load_commit(struct warehouse_load *ld, struct warehouse_load_stats *st_out,
                          json_t **bad_records_out)
{
    sqlite3 *db = ld->w->db;
    sqlite3_stmt *st = NULL;
    char *bad_text = NULL;
    int rc, err = HC_OK;

    *bad_records_out = NULL;
    memset(st_out, 0, sizeof *st_out);
    st_out->load_id = ld->load_id;
    st_out->records = ld->records;
    st_out->bad = ld->bad;
    if (!ld->dberr)
        ld->dberr = resolve_current(ld);
    st_out->records = ld->records;
    st_out->bad = ld->bad;
    if (ld->dberr) {
        err = ld->dberr;
        goto out;
    }
    if (ld->policy == BAD_RECORD_FAIL && ld->bad > 0) {
        *bad_records_out = json_incref(ld->bad_list);
        err = HC_EBADRECORDS;
        goto out;
    }
    rc = repair_current(db);
    if (rc == SQLITE_OK && ld->bad > 0) {
        bad_text = json_dumps(ld->bad_list, JSON_COMPACT);
        if (!bad_text)
            rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "UPDATE objects SET fac_first = ?2, fac_last = ?3,"
                                " n_records = ?4, n_bad = ?5, bad_records = ?6"
                                " WHERE load_id = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ld->load_id);
        sqlite3_bind_int64(st, 2, ld->fac_first);
        sqlite3_bind_int64(st, 3, ld->next_fac - 1);
        sqlite3_bind_int64(st, 4, (int64_t)ld->records);
        sqlite3_bind_int64(st, 5, (int64_t)ld->bad);
        bind_text_or_null(st, 6, bad_text);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
        goto out;
    }
    *bad_records_out = json_incref(ld->bad_list);
    free(bad_text);
    load_free(ld, 0);
    return HC_OK;
out:
    free(bad_text);
    load_free(ld, 1);
    return err;
}

void warehouse_load_abort(struct warehouse_load *ld)
{
    if (ld)
        load_free(ld, 1);
}

int warehouse_delete(struct warehouse *w, const char *bucket, const char *key)
{
    struct stored_object o;
    int rc, err = HC_OK;

    pthread_mutex_lock(&w->lock);
    rc = sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = object_get(w, bucket, key, &o);
    else
        memset(&o, 0, sizeof o);
    if (rc == SQLITE_OK && !o.found)
        err = HC_ENOTFOUND;
    if (rc == SQLITE_OK && o.found)
        rc = remove_load(w->db, o.load_id, o.fac_first, o.fac_last);
    if (rc == SQLITE_OK && o.found)
        rc = repair_current(w->db);
    if (rc == SQLITE_OK && o.found)
        rc = sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK || !o.found) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_exec(w->db, "DELETE FROM temp.orphan; DELETE FROM temp.delta", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK)
        err = warehouse_sqlite_err(rc) ? warehouse_sqlite_err(rc) : HC_EDB;
    stored_free(&o);
    pthread_mutex_unlock(&w->lock);
    return err;
}
