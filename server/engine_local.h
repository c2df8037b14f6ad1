/*
 * engine_local: the `local` engine (struct engine_ops instance over the SQLite warehouse and the
 * folder object store). Design notes at the top of engine_local.c.
 */
#ifndef HCPIPE_ENGINE_LOCAL_H
#define HCPIPE_ENGINE_LOCAL_H

#include "server/engine.h"

/* A local engine over `data_dir` (created if missing): the warehouse is
 * <data_dir>/warehouse.db and objects are read from <data_dir>/buckets/<bucket>/<key>. Returns
 * HC_OK and *out (free with out->ops->destroy()), or an hc_err. */
int engine_local_new(const char *data_dir, struct engine **out);

/* Loads job->source into the warehouse without running a query (`hcpipe run` with several
 * sources loads all but the last this way). *stats_out (new ref) gets {"source", "bytes_read",
 * "rows_loaded", "bad_record_count", "unchanged"} and, with policy skip, "bad_records". Errors
 * as start(). */
int engine_local_load(struct engine *e, const struct engine_job *job, json_t **stats_out,
                      json_t **problem_out);

/* Lets job sources also be plain file paths (anything not starting with "s3://"). Only for
 * `hcpipe run`; the service never enables it. */
void engine_local_allow_files(struct engine *e, int allow);

/* Removes an object's rows from the warehouse (an S3 "Object Deleted" event). HC_OK, or
 * HC_ENOTFOUND when it was not loaded, HC_EBADSOURCE for a malformed URI. */
int engine_local_delete_object(struct engine *e, const char *source);

struct objstore;

/* Replaces the engine's object store with `store` (taken; the folder store is freed): e.g. the
 * S3 store of HCPIPE_SOURCE=s3. With dataset_uri ("s3://bucket/prefix/", may be NULL), every
 * dataset-scope job first lists that prefix and loads each object whose version (ETag) changed
 * since it was loaded, and drops the objects no longer there. Call before the engine is used.
 * HC_EBADSOURCE for a malformed URI (the store is then not taken). */
int engine_local_set_store(struct engine *e, struct objstore *store, const char *dataset_uri);

#endif
