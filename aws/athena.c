/*
 * athena.c: the Athena JSON 1.1 client.
 *
 * Organisation:
 *   1. Small helpers (errors, jansson accessors, state names).
 *   2. Pure builders and parsers: StartQueryExecution body, the responses of every operation,
 *      the JSON error body. They take bytes and return owned C structs.
 *   3. The operations: `send_op()` POSTs a JSON body with the JSON 1.1 headers through
 *      aws_request_perform() and maps a failure into an athena_error; `call()` wraps it with the
 *      body's and response's lifetimes and a parser of the 2xx body; then a thin function per
 *      operation that checks its arguments and builds its body.
 */
#include "aws/athena.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATHENA_QUERY_MAX (262144) /* QueryString quota, bytes */

/* ---- 1. helpers ---------------------------------------------------------------------------- */

static void set_err(struct athena_error *err, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(struct athena_error *err, long status, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    err->status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->retryable = 0;
}

/* A copy of obj[key] when it is a string, else NULL (also on ENOMEM). */
static char *get_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);

    return s ? strndup(s, json_string_length(v)) : NULL;
}

static int64_t get_int(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Casting an out-of-range double is undefined; such a value is unusable anyway. */
        return d >= 0.0 && d < 9.2e18 ? (int64_t)d : -1;
    }
    return -1;
}

static double get_num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_number(v) ? json_number_value(v) : 0.0;
}

static const char *const state_names[] = {"UNKNOWN",   "QUEUED", "RUNNING",
                                          "SUCCEEDED", "FAILED", "CANCELLED"};

const char *athena_state_name(enum athena_state s)
{
    if ((int)s < 0 || (size_t)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "UNKNOWN";
    return state_names[s];
}

int athena_state_is_terminal(enum athena_state s)
{
    return s == ATHENA_STATE_SUCCEEDED || s == ATHENA_STATE_FAILED || s == ATHENA_STATE_CANCELLED;
}

static enum athena_state parse_state(const char *s)
{
    if (!s)
        return ATHENA_STATE_UNKNOWN;
    for (size_t i = 1; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(s, state_names[i]) == 0)
            return (enum athena_state)i;
    return ATHENA_STATE_UNKNOWN;
}

static json_t *load(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!root) {
        snprintf(err, errlen, "invalid JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "JSON body is not an object");
        json_decref(root);
        return NULL;
    }
    return root;
}

void athena_new_token(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* RAND_bytes failing means a broken RNG; fall back to a distinct-enough value. */
        for (size_t i = 0; i < sizeof(raw); i++)
            raw[i] = (unsigned char)(rand() & 0xff);
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
}

/* ---- 2. builders and parsers ----------------------------------------------------------------- */

/* Sets obj[key] = s when s is non-NULL. Returns -1 on ENOMEM. */
static int set_opt_str(json_t *obj, const char *key, const char *s)
{
    if (!s)
        return 0;
    return json_object_set_new(obj, key, json_string(s));
}

char *athena_start_body(const struct athena_start_params *p, char *err, size_t errlen)
{
    json_t *root = NULL, *ctx = NULL, *rc = NULL;
    char *out = NULL;
    size_t tlen;
    int bad = 0;

    if (!p || !p->query_string || !*p->query_string) {
        snprintf(err, errlen, "QueryString is required");
        return NULL;
    }
    if (strlen(p->query_string) > ATHENA_QUERY_MAX) {
        snprintf(err, errlen, "QueryString is longer than %d bytes", ATHENA_QUERY_MAX);
        return NULL;
    }
    tlen = p->client_request_token ? strlen(p->client_request_token) : 0;
    if (tlen < ATHENA_TOKEN_MIN || tlen > ATHENA_TOKEN_MAX) {
        snprintf(err, errlen, "ClientRequestToken must have %d..%d characters", ATHENA_TOKEN_MIN,
                 ATHENA_TOKEN_MAX);
        return NULL;
    }
    root = json_object();
    if (!root)
        goto nomem;
    bad |= json_object_set_new(root, "QueryString", json_string(p->query_string));
    bad |= json_object_set_new(root, "ClientRequestToken", json_string(p->client_request_token));
    if ((p->database && *p->database) || (p->catalog && *p->catalog)) {
        ctx = json_object();
        bad |= !ctx;
        bad |= set_opt_str(ctx, "Database", p->database && *p->database ? p->database : NULL);
        bad |= set_opt_str(ctx, "Catalog", p->catalog && *p->catalog ? p->catalog : NULL);
        bad |= json_object_set_new(root, "QueryExecutionContext", ctx);
    }
    if (p->output_location && *p->output_location) {
        rc = json_object();
        bad |= !rc;
        bad |= set_opt_str(rc, "OutputLocation", p->output_location);
        bad |= json_object_set_new(root, "ResultConfiguration", rc);
    }
    if (p->workgroup && *p->workgroup)
        bad |= set_opt_str(root, "WorkGroup", p->workgroup);
    if (bad)
        goto nomem;
    /* json_string() refuses invalid UTF-8, which surfaces as bad above. jansson's default
     * separators (", " and ": "), this member order and ASCII escapes give the very bytes
     * botocore sends (json.dumps), so a body can be compared with a CLI capture. */
    out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (!out)
        goto nomem;
    json_decref(root);
    return out;
nomem:
    snprintf(err, errlen, "cannot build the request (invalid UTF-8 or out of memory)");
    json_decref(root);
    return NULL;
}

char *athena_parse_start_response(const char *json, size_t len, char *err, size_t errlen)
{
    json_t *root = load(json, len, err, errlen);
    char *id;

    if (!root)
        return NULL;
    id = get_str(root, "QueryExecutionId");
    if (!id || !*id) {
        free(id);
        id = NULL;
        snprintf(err, errlen, "response has no QueryExecutionId");
    }
    json_decref(root);
    return id;
}

void athena_query_execution_clear(struct athena_query_execution *q)
{
    if (!q)
        return;
    free(q->id);
    free(q->query);
    free(q->statement_type);
    free(q->state_name);
    free(q->state_change_reason);
    free(q->error_message);
    free(q->output_location);
    free(q->workgroup);
    free(q->database);
    free(q->catalog);
    memset(q, 0, sizeof(*q));
    q->data_scanned_bytes = q->engine_execution_time_ms = -1;
    q->total_execution_time_ms = q->query_queue_time_ms = -1;
}

/* Fills *q from a QueryExecution object. */
static int parse_execution(const json_t *qe, struct athena_query_execution *q, char *err,
                           size_t errlen)
{
    const json_t *status, *stats, *aerr, *ctx, *rcfg;

    athena_query_execution_clear(q);
    if (!json_is_object(qe)) {
        snprintf(err, errlen, "QueryExecution is not an object");
        return -1;
    }
    q->id = get_str(qe, "QueryExecutionId");
    q->query = get_str(qe, "Query");
    q->statement_type = get_str(qe, "StatementType");
    q->workgroup = get_str(qe, "WorkGroup");
    status = json_object_get(qe, "Status");
    if (json_is_object(status)) {
        q->state_name = get_str(status, "State");
        q->state = parse_state(q->state_name);
        q->state_change_reason = get_str(status, "StateChangeReason");
        q->submission_time = get_num(status, "SubmissionDateTime");
        q->completion_time = get_num(status, "CompletionDateTime");
        aerr = json_object_get(status, "AthenaError");
        if (json_is_object(aerr)) {
            q->has_athena_error = 1;
            q->error_category = (int)get_int(aerr, "ErrorCategory");
            q->error_type = (int)get_int(aerr, "ErrorType");
            q->error_retryable = json_is_true(json_object_get(aerr, "Retryable"));
            q->error_message = get_str(aerr, "ErrorMessage");
        }
    }
    stats = json_object_get(qe, "Statistics");
    if (json_is_object(stats)) {
        q->data_scanned_bytes = get_int(stats, "DataScannedInBytes");
        q->engine_execution_time_ms = get_int(stats, "EngineExecutionTimeInMillis");
        q->total_execution_time_ms = get_int(stats, "TotalExecutionTimeInMillis");
        q->query_queue_time_ms = get_int(stats, "QueryQueueTimeInMillis");
    }
    rcfg = json_object_get(qe, "ResultConfiguration");
    if (json_is_object(rcfg))
        q->output_location = get_str(rcfg, "OutputLocation");
    ctx = json_object_get(qe, "QueryExecutionContext");
    if (json_is_object(ctx)) {
        q->database = get_str(ctx, "Database");
        q->catalog = get_str(ctx, "Catalog");
    }
    return 0;
}

int athena_parse_query_execution(const char *json, size_t len, struct athena_query_execution *out,
                                 char *err, size_t errlen)
{
    json_t *root;
    int rc;

    memset(out, 0, sizeof(*out));
    athena_query_execution_clear(out);
    root = load(json, len, err, errlen);
    if (!root)
        return -1;
    rc = parse_execution(json_object_get(root, "QueryExecution"), out, err, errlen);
    if (rc == 0 && out->state == ATHENA_STATE_UNKNOWN) {
        snprintf(err, errlen, "QueryExecution has no known Status.State");
        athena_query_execution_clear(out);
        rc = -1;
    }
    json_decref(root);
    return rc;
}

void athena_batch_clear(struct athena_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_executions; i++)
        athena_query_execution_clear(&b->executions[i]);
    free(b->executions);
    for (size_t i = 0; i < b->n_unprocessed; i++) {
        free(b->unprocessed[i].id);
        free(b->unprocessed[i].error_code);
        free(b->unprocessed[i].error_message);
    }
    free(b->unprocessed);
    memset(b, 0, sizeof(*b));
}

int athena_parse_batch(const char *json, size_t len, struct athena_batch *out, char *err,
                       size_t errlen)
{
    json_t *root;
    const json_t *execs, *unp;
    size_t n;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    root = load(json, len, err, errlen);
    if (!root)
        return -1;
    execs = json_object_get(root, "QueryExecutions");
    unp = json_object_get(root, "UnprocessedQueryExecutionIds");
    if ((execs && !json_is_array(execs)) || (unp && !json_is_array(unp))) {
        snprintf(err, errlen, "QueryExecutions / UnprocessedQueryExecutionIds are not arrays");
        goto out;
    }
    n = json_array_size(execs);
    if (n) {
        out->executions = calloc(n, sizeof(*out->executions));
        if (!out->executions)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            if (parse_execution(json_array_get(execs, i), &out->executions[i], err, errlen) != 0)
                goto out;
            out->n_executions++;
        }
    }
    n = json_array_size(unp);
    if (n) {
        out->unprocessed = calloc(n, sizeof(*out->unprocessed));
        if (!out->unprocessed)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            const json_t *u = json_array_get(unp, i);
            if (!json_is_object(u)) {
                snprintf(err, errlen, "unprocessed id entry is not an object");
                goto out;
            }
            out->unprocessed[i].id = get_str(u, "QueryExecutionId");
            out->unprocessed[i].error_code = get_str(u, "ErrorCode");
            out->unprocessed[i].error_message = get_str(u, "ErrorMessage");
            out->n_unprocessed++;
        }
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    if (rc != 0)
        athena_batch_clear(out);
    json_decref(root);
    return rc;
}

void athena_result_page_clear(struct athena_result_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_columns; i++) {
        free(p->columns[i].name);
        free(p->columns[i].type);
    }
    free(p->columns);
    for (size_t i = 0; i < p->n_rows; i++) {
        for (size_t j = 0; j < p->rows[i].n_cells; j++)
            free(p->rows[i].cells[j]);
        free(p->rows[i].cells);
    }
    free(p->rows);
    free(p->next_token);
    memset(p, 0, sizeof(*p));
    p->update_count = -1;
}

/* 1 when the row's Data equals the column names, cell by cell. */
static int row_is_header(const json_t *data, const struct athena_result_page *p)
{
    if (!json_is_array(data) || p->n_columns == 0 || json_array_size(data) != p->n_columns)
        return 0;
    for (size_t i = 0; i < p->n_columns; i++) {
        const char *v = json_string_value(json_object_get(json_array_get(data, i), "VarCharValue"));
        if (!v || !p->columns[i].name || strcmp(v, p->columns[i].name) != 0)
            return 0;
    }
    return 1;
}

int athena_parse_results(const char *json, size_t len, int first_page,
                         struct athena_result_page *out, char *err, size_t errlen)
{
    json_t *root;
    const json_t *rs, *cols, *rows;
    size_t first = 0, n;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->update_count = -1;
    root = load(json, len, err, errlen);
    if (!root)
        return -1;
    out->update_count = get_int(root, "UpdateCount");
    if (json_object_get(root, "NextToken")) {
        out->next_token = get_str(root, "NextToken");
        if (!out->next_token) {
            snprintf(err, errlen, "NextToken is not a string");
            goto out;
        }
    }
    rs = json_object_get(root, "ResultSet");
    if (rs && !json_is_object(rs)) {
        snprintf(err, errlen, "ResultSet is not an object");
        goto out;
    }
    cols = json_object_get(json_object_get(rs, "ResultSetMetadata"), "ColumnInfo");
    rows = json_object_get(rs, "Rows");
    if ((cols && !json_is_array(cols)) || (rows && !json_is_array(rows))) {
        snprintf(err, errlen, "ColumnInfo / Rows are not arrays");
        goto out;
    }
    n = json_array_size(cols);
    if (n) {
        out->columns = calloc(n, sizeof(*out->columns));
        if (!out->columns)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            const json_t *ci = json_array_get(cols, i);
            out->n_columns++;
            out->columns[i].name = get_str(ci, "Name");
            out->columns[i].type = get_str(ci, "Type");
            if (!out->columns[i].name || !out->columns[i].type) {
                snprintf(err, errlen, "ColumnInfo[%zu] lacks Name or Type", i);
                goto out;
            }
        }
    }
    n = json_array_size(rows);
    if (first_page && n > 0 &&
        row_is_header(json_object_get(json_array_get(rows, 0), "Data"), out)) {
        first = 1;
        out->header_skipped = 1;
    }
    if (n > first) {
        out->rows = calloc(n - first, sizeof(*out->rows));
        if (!out->rows)
            goto nomem;
    }
    for (size_t i = first; i < n; i++) {
        const json_t *data = json_object_get(json_array_get(rows, i), "Data");
        struct athena_row *r = &out->rows[out->n_rows];
        size_t nc;
        if (!json_is_array(data)) {
            snprintf(err, errlen, "Rows[%zu].Data is not an array", i);
            goto out;
        }
        out->n_rows++;
        nc = json_array_size(data);
        if (nc) {
            r->cells = calloc(nc, sizeof(*r->cells));
            if (!r->cells)
                goto nomem;
        }
        for (size_t j = 0; j < nc; j++) {
            const json_t *d = json_array_get(data, j);
            const json_t *v = json_object_get(d, "VarCharValue");
            r->n_cells++;
            if (!json_is_object(d) || (v && !json_is_string(v))) {
                snprintf(err, errlen, "Rows[%zu].Data[%zu] is not a Datum", i, j);
                goto out;
            }
            if (v) {
                r->cells[j] = strndup(json_string_value(v), json_string_length(v));
                if (!r->cells[j])
                    goto nomem;
            }
        }
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    if (rc != 0)
        athena_result_page_clear(out);
    json_decref(root);
    return rc;
}

int athena_parse_error(const char *json, size_t len, char *code, size_t codelen, char *message,
                       size_t messagelen)
{
    char err[64];
    json_t *root;
    const char *type, *msg, *hash;
    size_t n;
    int rc = -1;

    if (codelen)
        code[0] = '\0';
    if (messagelen)
        message[0] = '\0';
    root = load(json, len, err, sizeof(err));
    if (!root)
        return -1;
    type = json_string_value(json_object_get(root, "__type"));
    if (!type)
        type = json_string_value(json_object_get(root, "code"));
    msg = json_string_value(json_object_get(root, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(root, "Message"));
    if (type && *type) {
        hash = strrchr(type, '#');
        if (hash)
            type = hash + 1;
        n = strcspn(type, ":");
        if (n > 0) {
            snprintf(code, codelen, "%.*s", (int)n, type);
            rc = 0;
        }
    }
    if (rc == 0)
        snprintf(message, messagelen, "%s", msg ? msg : "");
    json_decref(root);
    return rc;
}

/* ---- 3. operations --------------------------------------------------------------------------- */

/* Builds {"QueryExecutionId": id} (plus extra string members when given). */
static char *id_body(const char *id, const char *next_token, int max_results)
{
    json_t *root = json_object();
    char *out = NULL;
    int bad = !root;

    if (!bad) {
        bad |= json_object_set_new(root, "QueryExecutionId", json_string(id));
        if (next_token)
            bad |= json_object_set_new(root, "NextToken", json_string(next_token));
        if (max_results > 0)
            bad |= json_object_set_new(root, "MaxResults", json_integer(max_results));
    }
    if (!bad)
        out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return out;
}

static int check_id(const char *id, struct athena_error *err)
{
    if (!id || !*id || strlen(id) > 128) {
        set_err(err, 0, "InvalidArgument", "QueryExecutionId must have 1..128 characters");
        return -1;
    }
    return 0;
}

static void response_init(struct aws_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    buf_init(&resp->body, 0);
}

/* POSTs body to AmazonAthena.<op>; on success the response body is in resp->body. */
static int send_op(struct aws_client *c, const char *op, const char *body,
                   struct aws_response *resp, struct athena_error *err)
{
    char target[96];
    struct aws_header headers[2];
    struct aws_request req;
    const char *endpoint;
    char *url = NULL;
    int rc = -1, path_style = 0;

    snprintf(target, sizeof(target), "AmazonAthena.%s", op);
    endpoint = aws_client_endpoint(c, "athena", &path_style);
    if (!endpoint) {
        set_err(err, 0, "ClientError", "no Athena endpoint");
        return -1;
    }
    if (asprintf(&url, "%s/", endpoint) < 0) {
        set_err(err, 0, "ClientError", "out of memory");
        return -1;
    }
    headers[0] = (struct aws_header){"Content-Type", "application/x-amz-json-1.1"};
    headers[1] = (struct aws_header){"X-Amz-Target", target};
    memset(&req, 0, sizeof(req));
    req.service = "athena";
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.n_headers = 2;
    req.body = body;
    req.body_len = strlen(body);
    if (aws_request_perform(c, &req, resp) == 0) {
        rc = 0;
        goto out;
    }
    if (err) {
        char code[96], message[512];
        if (resp->error_code && *resp->error_code)
            set_err(err, resp->status, resp->error_code, "%s",
                    resp->error_message ? resp->error_message : "");
        else if (resp->body.len && athena_parse_error(resp->body.data, resp->body.len, code,
                                                      sizeof(code), message, sizeof(message)) == 0)
            set_err(err, resp->status, code, "%s", message);
        else if (resp->status == 0)
            set_err(err, 0, "NetworkError", "no response");
        else
            set_err(err, resp->status, "", "HTTP %ld", resp->status);
        if (!err->code[0])
            snprintf(err->code, sizeof(err->code), "HTTP%ld", resp->status);
        err->retryable = aws_error_retryable(err->code, resp->status);
    }
out:
    free(url);
    return rc;
}

/* Parses a 2xx response body into ctx; on failure writes why into perr. */
typedef int (*parse_fn)(const char *json, size_t len, void *ctx, char *perr, size_t perrlen);

/* One Athena operation: POSTs body (consumed; NULL: it could not be built) to
 * AmazonAthena.<op>, maps a failure into *err and hands a 2xx body to parse (NULL: none). Returns
 * 0, or -1 with *err filled. */
static int call(struct aws_client *c, const char *op, char *body, parse_fn parse, void *ctx,
                struct athena_error *err)
{
    struct aws_response resp;
    char perr[160];
    int rc = -1;

    response_init(&resp);
    if (!body) {
        set_err(err, 0, "InvalidArgument", "cannot build the request");
        goto out;
    }
    if (send_op(c, op, body, &resp, err) != 0)
        goto out;
    if (parse &&
        parse(resp.body.data ? resp.body.data : "", resp.body.len, ctx, perr, sizeof(perr)) != 0) {
        set_err(err, resp.status, "ClientError", "%s response: %s", op, perr);
        goto out;
    }
    rc = 0;
out:
    free(body);
    aws_response_free(&resp);
    return rc;
}

/* parse_fn adapters over the public parsers. */
static int on_start(const char *json, size_t len, void *ctx, char *perr, size_t perrlen)
{
    char **id_out = ctx;

    *id_out = athena_parse_start_response(json, len, perr, perrlen);
    return *id_out ? 0 : -1;
}

static int on_execution(const char *json, size_t len, void *ctx, char *perr, size_t perrlen)
{
    return athena_parse_query_execution(json, len, ctx, perr, perrlen);
}

static int on_batch(const char *json, size_t len, void *ctx, char *perr, size_t perrlen)
{
    return athena_parse_batch(json, len, ctx, perr, perrlen);
}

/* GetQueryResults: the page to fill and whether it is the first one (its header row). */
struct results_ctx {
    struct athena_result_page *out;
    int first_page;
};

static int on_results(const char *json, size_t len, void *ctx, char *perr, size_t perrlen)
{
    struct results_ctx *r = ctx;

    return athena_parse_results(json, len, r->first_page, r->out, perr, perrlen);
}

int athena_start_query(struct aws_client *c, const struct athena_start_params *p, char **id_out,
                       struct athena_error *err)
{
    struct athena_start_params q;
    char token[33], perr[160];
    char *body;

    *id_out = NULL;
    if (!p) {
        set_err(err, 0, "InvalidArgument", "no parameters");
        return -1;
    }
    q = *p;
    if (!q.client_request_token) {
        athena_new_token(token);
        q.client_request_token = token;
    }
    body = athena_start_body(&q, perr, sizeof(perr));
    if (!body) {
        set_err(err, 0, "InvalidArgument", "%s", perr);
        return -1;
    }
    return call(c, "StartQueryExecution", body, on_start, id_out, err);
}

int athena_get_query(struct aws_client *c, const char *id, struct athena_query_execution *out,
                     struct athena_error *err)
{
    memset(out, 0, sizeof(*out));
    athena_query_execution_clear(out);
    if (check_id(id, err) != 0)
        return -1;
    return call(c, "GetQueryExecution", id_body(id, NULL, 0), on_execution, out, err);
}

int athena_batch_get_query(struct aws_client *c, const char *const *ids, size_t n_ids,
                           struct athena_batch *out, struct athena_error *err)
{
    json_t *root = NULL, *arr = NULL;
    char *body = NULL;
    int bad = 0;

    memset(out, 0, sizeof(*out));
    if (!ids || n_ids == 0 || n_ids > ATHENA_BATCH_MAX) {
        set_err(err, 0, "InvalidArgument", "BatchGetQueryExecution takes 1..%d ids",
                ATHENA_BATCH_MAX);
        return -1;
    }
    for (size_t i = 0; i < n_ids; i++)
        if (check_id(ids[i], err) != 0)
            return -1;
    root = json_object();
    arr = json_array();
    bad = !root || !arr;
    for (size_t i = 0; i < n_ids && !bad; i++)
        bad |= json_array_append_new(arr, json_string(ids[i]));
    if (!bad) {
        bad |= json_object_set_new(root, "QueryExecutionIds", arr);
        arr = NULL;
    }
    if (!bad)
        body = json_dumps(root, JSON_COMPACT);
    json_decref(arr);
    json_decref(root);
    return call(c, "BatchGetQueryExecution", body, on_batch, out, err);
}

int athena_get_results(struct aws_client *c, const char *id, const char *next_token,
                       int max_results, struct athena_result_page *out, struct athena_error *err)
{
    struct results_ctx r = {out, !next_token};

    memset(out, 0, sizeof(*out));
    out->update_count = -1;
    if (check_id(id, err) != 0)
        return -1;
    if (max_results < 0 || max_results > 1000) {
        set_err(err, 0, "InvalidArgument", "MaxResults must be 1..1000");
        return -1;
    }
    if (next_token && (!*next_token || strlen(next_token) > 1024)) {
        set_err(err, 0, "InvalidArgument", "NextToken must have 1..1024 characters");
        return -1;
    }
    return call(c, "GetQueryResults", id_body(id, next_token, max_results), on_results, &r, err);
}

int athena_stop_query(struct aws_client *c, const char *id, struct athena_error *err)
{
    if (check_id(id, err) != 0)
        return -1;
    return call(c, "StopQueryExecution", id_body(id, NULL, 0), NULL, NULL, err);
}
