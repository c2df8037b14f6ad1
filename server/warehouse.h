/*
 * warehouse: the `local` engine's SQLite database of facilities, keyed by source object.
 *
 * One database file (WAL, schema versioned with PRAGMA user_version). Tables:
 *   objects(load_id, bucket, key, size, version, ...)  one row per loaded object; load_id grows
 *                                                      with every load (AUTOINCREMENT)
 *   facilities(id, load_id, cur, facility_id, ...)     one row per record; ids of one load are a
 *                                                      contiguous range, later loads get larger ids
 *   accreditations(fac, ord, body, acc_id, valid_until) WITHOUT ROWID, clustered by facility row
 *   current(facility_id, fac, load_id)                 WITHOUT ROWID: the row that is current for
 *                                                      each facility_id (most recently loaded)
 * facilities.cur mirrors `current` (1 on the current row) so queries need no extra lookup.
 * facilities.position is the record's position in its object (schema version 2).
 * Superseded rows are kept (cur = 0): deleting or reloading the newer object makes them current
 * again. Dates are stored as integer days since 1970-01-01.
 *
 * Loading an object is one transaction: warehouse_load_begin() (takes the write lock, removes the
 * object's previous rows), warehouse_load_record()/warehouse_load_bad() per parsed record, then
 * warehouse_load_commit() or warehouse_load_abort(). An object with the same bucket, key, size and
 * version as the loaded one is not reloaded.
 *
 * Threads: the warehouse owns one write connection, serialised by a mutex held from
 * warehouse_load_begin() to commit/abort (and by warehouse_delete()); readers open their own
 * connections with warehouse_open_reader() and may run while a load is in progress (WAL).
 */
#ifndef HCPIPE_WAREHOUSE_H
#define HCPIPE_WAREHOUSE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "server/engine.h"
#include "server/records.h"

#define WAREHOUSE_FAIL_LIST_MAX 20 /* bad records listed when on_bad_record is fail */

struct warehouse;
struct warehouse_load;

/* The object being loaded (strings borrowed for the call). */
struct warehouse_object {
    const char *bucket;          /* "" for a plain file */
    const char *key;             /* key, or the file's path */
    uint64_t size;               /* bytes */
    const char *version;         /* ETag or mtime */
    const char *source;          /* how bad records name it, e.g. "s3://b/k" (may be NULL) */
    int (*interrupt)(void *ctx); /* optional: non-zero stops long statements (cancel, deadline) */
    void *interrupt_ctx;
};

/* What a load (or the stored earlier load of an unchanged object) did. */
struct warehouse_load_stats {
    int64_t load_id;  /* the object's load, for object scope */
    uint64_t records; /* facility rows loaded */
    uint64_t bad;     /* bad records (skipped, or found before failing) */
    int unchanged;    /* 1: the object was already loaded and was not read again */
};

/* Opens (creating and migrating) the database at `path`. Returns HC_OK and *out, or HC_EDB. */
int warehouse_open(const char *path, struct warehouse **out);

/* Closes the write connection and frees the warehouse. NULL is a no-op. */
void warehouse_close(struct warehouse *w);

/* Opens a new read connection to the same database (caller closes with sqlite3_close()). */
int warehouse_open_reader(struct warehouse *w, sqlite3 **db_out);

/* Starts loading `obj` under the write lock. When the object is unchanged (same size and version,
 * and either loaded without bad records or policy is skip), nothing is started: *out is NULL,
 * st_out describes the stored load, and *bad_records_out (may be NULL) gets its skipped records
 * (new ref). Otherwise *out is the load (finish with commit or abort). While waiting for the
 * write lock, obj->interrupt is asked every 100 ms; HC_ECANCELLED when it says stop. */
int warehouse_load_begin(struct warehouse *w, const struct warehouse_object *obj,
                         enum bad_record_policy policy, struct warehouse_load **out,
                         struct warehouse_load_stats *st_out, json_t **bad_records_out);

/* Adds one valid record. A facility_id already seen in this load makes the later record a bad
 * one; that is found by warehouse_load_commit(), which claims `current` in facility_id order.
 * Returns HC_OK, or HC_EDB/HC_EDISKFULL/HC_EIO on database errors. */
int warehouse_load_record(struct warehouse_load *ld, const struct facility_record *rec);

/* Reports a bad record. Returns HC_OK; HC_EBADRECORDS when policy is fail and the list of bad
 * records is full (stop parsing); HC_ENOMEM. */
int warehouse_load_bad(struct warehouse_load *ld, uint64_t position, const char *reason);

/* Number of bad records so far. */
uint64_t warehouse_load_bad_count(const struct warehouse_load *ld);

/* Ends the load: with policy fail and any bad record, rolls back and returns HC_EBADRECORDS with
 * the first 20 as *bad_records_out; otherwise commits (HC_OK), with every skipped record in
 * *bad_records_out (an array, possibly empty). Frees the load and releases the lock in every
 * case. *bad_records_out is a new ref or NULL. */
int warehouse_load_commit(struct warehouse_load *ld, struct warehouse_load_stats *st_out,
                          json_t **bad_records_out);

/* Rolls back, frees the load, releases the lock. NULL is a no-op. */
void warehouse_load_abort(struct warehouse_load *ld);

/* The load currently holding (bucket, key): HC_OK and *load_id_out, or HC_ENOTFOUND. */
int warehouse_object_load_id(struct warehouse *w, const char *bucket, const char *key,
                             int64_t *load_id_out);

/* Removes an object's rows (superseded rows of other objects become current again). HC_OK, or
 * HC_ENOTFOUND when the object is not loaded. */
int warehouse_delete(struct warehouse *w, const char *bucket, const char *key);

/* The hc_err for an SQLite result code (busy/locked/io -> transient codes, full -> disk full). */
int warehouse_sqlite_err(int rc);

#endif
