/*
 * error: hcpipe's one error enum, generated from one X-macro table.
 *
 * Each row gives the C code, the HTTP status it maps to, the stable problem+json `type` slug,
 * the human title, and whether a job that fails with it may be retried. routes/ never writes an
 * error body by hand: it calls problem_reply() (routes/) with an enum value, and the worker stores
 * the slug on a failed job. 0 (HC_OK) is success; functions return `int` holding an enum hc_err.
 *
 * Slugs are API: never rename one. Add rows at the end of a group only.
 */
#ifndef HCPIPE_ERROR_H
#define HCPIPE_ERROR_H

#include <jansson.h>

/* The table stays aligned by hand. */
// clang-format off
/*  X(code,            status, slug,                     transient, title) */
#define HC_ERROR_TABLE(X)                                                                          \
    X(HC_OK,              200, "ok",                      0, "OK")                                 \
    X(HC_EINVAL,          400, "bad-request",             0, "Bad request")                        \
    X(HC_EJSON,           400, "invalid-json",            0, "Request body is not valid JSON")     \
    X(HC_EUNAUTHORIZED,   401, "unauthorized",            0, "Missing or invalid credentials")     \
    X(HC_EFORBIDDEN,      403, "forbidden",               0, "Not allowed")                        \
    X(HC_ENOTFOUND,       404, "not-found",               0, "Not found")                          \
    X(HC_EJOBNOTFOUND,    404, "job-not-found",           0, "Job not found")                      \
    X(HC_EMETHOD,         405, "method-not-allowed",      0, "Method not allowed")                 \
    X(HC_ENOTACCEPTABLE,  406, "not-acceptable",          0, "Not acceptable")                     \
    X(HC_ECONFLICT,       409, "conflict",                0, "Conflict with the job's state")      \
    X(HC_ENOTREADY,       409, "result-not-ready",        0, "The job has not finished")           \
    X(HC_ETOOBIG,         413, "payload-too-large",       0, "Request body too large")             \
    X(HC_EMEDIATYPE,      415, "unsupported-media-type",  0, "Unsupported media type")             \
    X(HC_EVALIDATION,     422, "validation-failed",       0, "Invalid request")                    \
    X(HC_EUNKNOWNQUERY,   422, "unknown-query",           0, "Unknown query")                      \
    X(HC_EBADSOURCE,      422, "invalid-source",          0, "Invalid source")                     \
    X(HC_ESOURCEMISSING,  422, "source-not-found",        0, "Source object not found")            \
    X(HC_EBADRECORDS,     422, "bad-records",             0, "Input has bad records")              \
    X(HC_EBADINPUT,       422, "unreadable-input",        0, "Input is not valid JSON")            \
    X(HC_ERATELIMIT,      429, "too-many-requests",       1, "Too many requests")                  \
    X(HC_EINTERNAL,       500, "internal-error",          0, "Internal error")                     \
    X(HC_ENOMEM,          500, "out-of-memory",           1, "Out of memory")                      \
    X(HC_EIO,             500, "io-error",                1, "Input/output error")                 \
    X(HC_EDB,             500, "database-error",          1, "Database error")                     \
    X(HC_EDISKFULL,       507, "insufficient-storage",    1, "Disk full")                          \
    X(HC_EENGINE,         502, "engine-error",            0, "The query engine reported an error") \
    X(HC_EENGINETRANSIENT,503, "engine-unavailable",      1, "The query engine is unavailable")    \
    X(HC_EUNAVAILABLE,    503, "unavailable",             1, "Service unavailable")                \
    X(HC_ETIMEOUT,        504, "timeout",                 0, "The job's deadline passed")          \
    X(HC_ECANCELLED,      409, "cancelled",               0, "The job was cancelled")            \
    X(HC_EBADEVENT,       400, "invalid-event",           0, "Not a valid S3 event")               \
    X(HC_EENGINEBUSY,     503, "engine-busy",             1, "The query engine is at capacity")
// clang-format on

#define HC_ERR_ENUM_(code, status, slug, transient, title) code,
enum hc_err { HC_ERROR_TABLE(HC_ERR_ENUM_) HC_ERR_COUNT };
#undef HC_ERR_ENUM_

/* Prefix of every problem `type`; the full type is HC_PROBLEM_TYPE_BASE + slug. */
#define HC_PROBLEM_TYPE_BASE "https://hcpipe.dev/problems/"

/* HTTP status of an error (500 for a value outside the table). */
int hc_err_status(int err);

/* Stable slug, e.g. "job-not-found" (borrowed, static). */
const char *hc_err_slug(int err);

/* Human title (borrowed, static). */
const char *hc_err_title(int err);

/* 1 when a job failing with this error may be retried. */
int hc_err_transient(int err);

/* The enum value for a slug, or -1 when no row has it. */
int hc_err_from_slug(const char *slug);

/*
 * Builds an RFC 9457 problem document {"type", "title", "status", "detail"} for `err`.
 * `detail` may be NULL. Returns a new reference (caller json_decref()s), or NULL on ENOMEM.
 */
json_t *hc_problem_new(int err, const char *detail);

#endif
