/*
 * athena: the Athena client (AWS JSON 1.1: POST /, Content-Type application/x-amz-json-1.1,
 * X-Amz-Target AmazonAthena.<Op>) on top of aws/http.h: StartQueryExecution,
 * GetQueryExecution, BatchGetQueryExecution, GetQueryResults and StopQueryExecution.
 *
 * Request bodies are built and response bodies parsed by pure functions (no network), which the
 * unit tests and the fuzzer call directly. Every network function returns 0, or -1 with *err
 * filled (err may be NULL). Timestamps are epoch seconds as doubles (Athena may send fractions and
 * exponents).
 */
#ifndef HCPIPE_ATHENA_H
#define HCPIPE_ATHENA_H

#include <stddef.h>
#include <stdint.h>

#include "aws/http.h"

#define ATHENA_TOKEN_MIN 32 /* ClientRequestToken length bounds (service model) */
#define ATHENA_TOKEN_MAX 128
#define ATHENA_BATCH_MAX 50 /* ids per BatchGetQueryExecution */

/* Why a call failed. */
struct athena_error {
    long status;   /* HTTP status, 0 when no response came */
    char code[96]; /* e.g. "InvalidRequestException", "TooManyRequestsException",
                      "NetworkError"; "InvalidArgument" for bad input; "ClientError" for a
                      local failure (ENOMEM, unparsable response) */
    char message[512];
    int retryable; /* aws_error_retryable(code, status) */
};

/* StartQueryExecution input. query_string is required; the rest optional (NULL = omitted). */
struct athena_start_params {
    const char *query_string;         /* 1..262144 bytes */
    const char *database;             /* QueryExecutionContext.Database */
    const char *catalog;              /* QueryExecutionContext.Catalog, e.g. "AwsDataCatalog" */
    const char *workgroup;            /* WorkGroup */
    const char *output_location;      /* ResultConfiguration.OutputLocation, "s3://b/prefix/" */
    const char *client_request_token; /* 32..128 chars; NULL = a fresh random one (always sent).
                                         Derive it from a stable id to make resubmits idempotent */
};

enum athena_state {
    ATHENA_STATE_UNKNOWN = 0,
    ATHENA_STATE_QUEUED,
    ATHENA_STATE_RUNNING,
    ATHENA_STATE_SUCCEEDED,
    ATHENA_STATE_FAILED,
    ATHENA_STATE_CANCELLED,
};

/* A QueryExecution (GetQueryExecution / BatchGetQueryExecution). Strings are owned (NULL when
 * absent); free with athena_query_execution_clear(). */
struct athena_query_execution {
    char *id;                         /* QueryExecutionId */
    char *query;                      /* Query */
    char *statement_type;             /* "DDL" | "DML" | "UTILITY" */
    char *state_name;                 /* Status.State as sent */
    enum athena_state state;          /* the same, parsed */
    char *state_change_reason;        /* Status.StateChangeReason */
    double submission_time;           /* Status.SubmissionDateTime, 0 when absent */
    double completion_time;           /* Status.CompletionDateTime, 0 when absent */
    int has_athena_error;             /* Status.AthenaError present */
    int error_category;               /* AthenaError.ErrorCategory (1 system, 2 user, 3 other) */
    int error_type;                   /* AthenaError.ErrorType */
    int error_retryable;              /* AthenaError.Retryable */
    char *error_message;              /* AthenaError.ErrorMessage */
    int64_t data_scanned_bytes;       /* Statistics.DataScannedInBytes, -1 when absent */
    int64_t engine_execution_time_ms; /* Statistics.EngineExecutionTimeInMillis, -1 absent */
    int64_t total_execution_time_ms;  /* Statistics.TotalExecutionTimeInMillis, -1 absent */
    int64_t query_queue_time_ms;      /* Statistics.QueryQueueTimeInMillis, -1 absent */
    char *output_location; /* ResultConfiguration.OutputLocation: the full result object URL */
    char *workgroup;       /* WorkGroup */
    char *database;        /* QueryExecutionContext.Database */
    char *catalog;         /* QueryExecutionContext.Catalog */
};

void athena_query_execution_clear(struct athena_query_execution *q);

/* 1 for SUCCEEDED, FAILED and CANCELLED. */
int athena_state_is_terminal(enum athena_state s);

/* "QUEUED" ... for a state, "UNKNOWN" otherwise (static string). */
const char *athena_state_name(enum athena_state s);

/* An id BatchGetQueryExecution could not process. */
struct athena_unprocessed {
    char *id;            /* QueryExecutionId */
    char *error_code;    /* ErrorCode, may be NULL */
    char *error_message; /* ErrorMessage, may be NULL */
};

/* BatchGetQueryExecution result; free with athena_batch_clear(). */
struct athena_batch {
    struct athena_query_execution *executions;
    size_t n_executions;
    struct athena_unprocessed *unprocessed;
    size_t n_unprocessed;
};

void athena_batch_clear(struct athena_batch *b);

struct athena_column {
    char *name; /* ColumnInfo.Name */
    char *type; /* ColumnInfo.Type, e.g. "varchar", "bigint" */
};

struct athena_row {
    char **cells; /* n_cells values; NULL = SQL NULL (a Datum without VarCharValue) */
    size_t n_cells;
};

/* One GetQueryResults page; free with athena_result_page_clear(). */
struct athena_result_page {
    struct athena_column *columns;
    size_t n_columns;
    struct athena_row *rows; /* data rows (the header row removed, see below) */
    size_t n_rows;
    int header_skipped;   /* 1 when row 0 of the first page equalled the column names */
    int64_t update_count; /* UpdateCount, -1 when absent */
    char *next_token;     /* NextToken, NULL on the last page */
};

void athena_result_page_clear(struct athena_result_page *p);

/* ---- pure request builders and response parsers -------------------------------------------- */

/* Builds the StartQueryExecution JSON body (members omitted when unset; the same bytes botocore
 * would send for the same members: its member order and separators, \uXXXX escapes). The token must
 * be given here (32..128 chars). Returns a new string (caller frees) or NULL with a reason in
 * err. */
char *athena_start_body(const struct athena_start_params *p, char *err, size_t errlen);

/* Parses {"QueryExecutionId": ...}. Returns a new string (caller frees) or NULL. */
char *athena_parse_start_response(const char *json, size_t len, char *err, size_t errlen);

/* Parses a GetQueryExecution body into *out (cleared first). Returns 0 or -1 with a reason. */
int athena_parse_query_execution(const char *json, size_t len, struct athena_query_execution *out,
                                 char *err, size_t errlen);

/* Parses a BatchGetQueryExecution body into *out. Returns 0 or -1 with a reason. */
int athena_parse_batch(const char *json, size_t len, struct athena_batch *out, char *err,
                       size_t errlen);

/* Parses a GetQueryResults body into *out. When first_page is set and row 0 equals the column
 * names (PyAthena's rule), that row is skipped. Returns 0 or -1 with a reason. */
int athena_parse_results(const char *json, size_t len, int first_page,
                         struct athena_result_page *out, char *err, size_t errlen);

/* Parses an Athena JSON error body: code = the part of __type after the last '#' and before any
 * ':'; message from "message" or "Message". Returns 0 when a code was found, -1 otherwise. */
int athena_parse_error(const char *json, size_t len, char *code, size_t codelen, char *message,
                       size_t messagelen);

/* Writes a fresh random ClientRequestToken (32 lowercase hex digits) into out[33]. */
void athena_new_token(char out[33]);

/* ---- operations ------------------------------------------------------------------------------ */

/* StartQueryExecution. *id_out receives the QueryExecutionId (caller frees). */
int athena_start_query(struct aws_client *c, const struct athena_start_params *p, char **id_out,
                       struct athena_error *err);

/* GetQueryExecution into *out (clear with athena_query_execution_clear()). */
int athena_get_query(struct aws_client *c, const char *id, struct athena_query_execution *out,
                     struct athena_error *err);

/* BatchGetQueryExecution for 1..50 ids into *out (clear with athena_batch_clear()). */
int athena_batch_get_query(struct aws_client *c, const char *const *ids, size_t n_ids,
                           struct athena_batch *out, struct athena_error *err);

/* One GetQueryResults page. next_token NULL asks for the first page (header row handling as in
 * athena_parse_results()); max_results 0 = the service default, else 1..1000. */
int athena_get_results(struct aws_client *c, const char *id, const char *next_token,
                       int max_results, struct athena_result_page *out, struct athena_error *err);

/* StopQueryExecution. */
int athena_stop_query(struct aws_client *c, const char *id, struct athena_error *err);

#endif
