/*
 * athena_sql: the Athena engine's SQL texts (the embedded sql/athena/ files) with their
 * placeholders filled, the checks every substituted value passes, and the conversion of Athena's
 * result strings into typed values (server/result.h).
 *
 * No SQL is built anywhere else: engine_athena.c sends exactly what athena_sql_render() returns.
 * A placeholder is `{{name}}`; the template's leading `--` comment block is dropped before
 * substitution. Every value is checked before it is placed:
 *   {{database}}, {{table}}  DDL identifiers, backquoted: [a-z0-9_]{1,128}
 *   {{relation}}             "database"."table" for the queries (same identifier rule)
 *   {{location}}             the table's LOCATION: 's3://bucket/prefix/' where the bucket follows
 *                            the S3 naming rules and the prefix is empty or ends with '/' and
 *                            uses only A-Z a-z 0-9 ! - _ . * ( ) / (no quote, no backslash)
 *   {{as_of}}                DATE 'YYYY-MM-DD' (a real calendar date)
 *   {{source}}               a string literal of "s3://bucket/key" (valid bucket, valid UTF-8
 *                            key without control characters; ' doubled), or NULL
 * Pure functions: no network, no globals; thread-safe.
 */
#ifndef HCPIPE_ATHENA_SQL_H
#define HCPIPE_ATHENA_SQL_H

#include <stddef.h>

#include "server/result.h"

#define ATHENA_SQL_IDENT_MAX 128

/* The values a text may need; NULL members are only allowed when the text does not use them. */
struct athena_sql_vars {
    const char *database; /* Glue database */
    const char *table;    /* Glue table */
    const char *location; /* "s3://bucket/prefix/" */
    const char *as_of;    /* "YYYY-MM-DD" */
    const char *source;   /* "s3://bucket/key", NULL for dataset scope */
};

/* 1 when `s` is an acceptable database/table name: 1..128 of [a-z0-9_]. */
int athena_sql_ident_ok(const char *s);

/* 1 when `uri` is an acceptable table location (see the file comment). */
int athena_sql_location_ok(const char *uri);

/* 1 when `s` is "YYYY-MM-DD" naming a real calendar date. */
int athena_sql_date_ok(const char *s);

/* Writes `s` as an SQL string literal ('...' with ' doubled) into a new string (caller frees).
 * Returns HC_OK, HC_EVALIDATION when s holds a control character or invalid UTF-8, HC_ENOMEM. */
int athena_sql_quote(const char *s, char **out);

/* The text `name` ("create_database", "create_table", or a catalog query name) with its
 * placeholders filled from `v`. Returns HC_OK and *out (caller frees), HC_EUNKNOWNQUERY when
 * there is no such text, or HC_EVALIDATION with a reason (naming the setting or parameter) in
 * why[whylen] when a value fails its check or is missing. */
int athena_sql_render(const char *name, const struct athena_sql_vars *v, char **out, char *why,
                      size_t whylen);

/* 1 when a column of Athena type `athena_type` (ColumnInfo.Type, e.g. "integer") may fill a
 * catalog column of type `want`. */
int athena_sql_type_compatible(const char *athena_type, enum col_type want);

/* Converts one result cell (NULL = SQL NULL) to a value of type `want`. VARCHAR values borrow
 * `text`. Returns HC_OK, or HC_EENGINE when the text is not a value of that type. */
int athena_sql_convert(const char *text, enum col_type want, struct value *out);

/* ---- Athena's result CSV (the object at the query's OutputLocation) ------------------------
 * A header row, then one record per row: every non-NULL value in double quotes with embedded
 * quotes doubled (values may hold commas and newlines), NULL as an empty unquoted field. */

struct athena_csv;

/* Called for each record with its ncols cells (NULL = SQL NULL; borrowed for the call). Returns
 * HC_OK or an hc_err, which stops the parse and is returned by feed/finish. */
typedef int (*athena_csv_row_cb)(void *ctx, char *const *cells, size_t ncols);

/* A parser of records of exactly ncols fields. Returns NULL on ENOMEM. */
struct athena_csv *athena_csv_new(size_t ncols, athena_csv_row_cb on_row, void *ctx);

/* Parses the next bytes (any chunking). Returns HC_OK, HC_EENGINE for a malformed record (a
 * wrong field count, text after a closing quote), HC_ENOMEM, or the callback's error. */
int athena_csv_feed(struct athena_csv *c, const char *data, size_t len);

/* Ends the input (a last record without newline counts; an open quote is malformed). */
int athena_csv_finish(struct athena_csv *c);

void athena_csv_free(struct athena_csv *c);

#endif
