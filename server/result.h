/*
 * result: typed result rows and the files they are rendered to.
 *
 * Engines produce rows of typed values (struct value) into a struct result_sink. The result
 * writer is the sink the worker uses: it renders result.json and result.csv side by side as rows
 * arrive (streaming; memory does not grow with the row count) into temporary files of the job's
 * result folder, and result_writer_commit() renames both into place atomically.
 *
 * result.json: {"job_id", "query", "as_of", "engine", "columns": [{"name","type"}], "rows":
 * [{...}], "row_count", "stats": {...}, "warnings": [...], "bad_records"?: [...]} with numbers as
 * JSON numbers, nulls as null, dates as "YYYY-MM-DD" (a date outside years 0000..9999 and a
 * non-finite double are written as null, in both files).
 * result.csv: RFC 4180 (CRLF line ends), a header row, null as an empty unquoted field, the empty
 * string as "".
 */
#ifndef HCPIPE_RESULT_H
#define HCPIPE_RESULT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum col_type { COL_VARCHAR, COL_BIGINT, COL_DATE, COL_DOUBLE, COL_BOOLEAN };

struct column {
    const char *name; /* borrowed */
    enum col_type type;
};

struct value {
    int is_null;   /* 1: SQL NULL; the other members are unused */
    int64_t i;     /* BIGINT, BOOLEAN (0/1), DATE (days since 1970-01-01) */
    double d;      /* DOUBLE */
    const char *s; /* VARCHAR bytes (UTF-8), borrowed for the call */
    size_t len;    /* VARCHAR length in bytes */
};

/* Where an engine sends its rows. */
struct result_sink {
    /* Called once, before any row. `cols` is borrowed for the call. Returns an hc_err. */
    int (*columns)(void *ctx, const struct column *cols, size_t ncols);
    /* One row of ncols values (borrowed for the call). Returns an hc_err (non-zero stops). */
    int (*row)(void *ctx, const struct value *vals);
    void *ctx;
};

/* Name of a column type as the API shows it: "varchar", "bigint", "date", "double", "boolean". */
const char *col_type_name(enum col_type t);

struct result_meta {
    const char *job_id;
    const char *query;
    const char *as_of;  /* YYYY-MM-DD */
    const char *engine; /* "local" | "athena" */
};

struct result_writer;

/* Opens temporary files in `dir` (created if missing). Returns HC_OK and *out, or an hc_err. */
int result_writer_open(const char *dir, const struct result_meta *meta, struct result_writer **out);

/* The writer as a sink (valid while the writer lives). */
struct result_sink result_writer_sink(struct result_writer *w);

/* Finishes both files with the given members (each borrowed, may be NULL: stats defaults to {},
 * warnings to [], bad_records is omitted when NULL), fsyncs, and renames them to result.json and
 * result.csv. Frees the writer in every case. Returns HC_OK or an hc_err. */
int result_writer_commit(struct result_writer *w, json_t *stats, json_t *warnings,
                         json_t *bad_records);

/* Removes the temporary files and frees the writer. NULL is a no-op. */
void result_writer_abort(struct result_writer *w);

/* Row count written so far. */
uint64_t result_writer_rows(const struct result_writer *w);

#endif
