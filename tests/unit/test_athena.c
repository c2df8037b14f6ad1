/*
 * Unit and peer tests of aws/athena.c.
 *
 * Group "athena_pure" always runs: the StartQueryExecution body against the AWS CLI capture
 * (athena-start-query-execution: byte for byte, and its sha256 is the capture's payload hash),
 * the headers the client really sends (caught by a one-shot loopback listener and compared with
 * the captured request), and the response parsers on handwritten bodies shaped after the model.
 *
 * Peer groups run when HCPIPE_TEST_ATHENA_ENDPOINT names a running endpoint;
 * tests/integration/test_aws_athena.py starts the peers and sets:
 *   HCPIPE_TEST_ATHENA_ENDPOINT  http://127.0.0.1:PORT
 *   HCPIPE_TEST_ATHENA_PEER      "moto" (moto_server with IAM auth) or "fake"
 *                                (tests/fixtures/fake_athena.py, scripted through /__control)
 *   HCPIPE_TEST_ACCESS_KEY / HCPIPE_TEST_SECRET_KEY
 *   HCPIPE_TEST_ATHENA_DENIED_ACCESS_KEY / _SECRET_KEY (moto): a user without athena:*
 * For moto, the integration test queues one result set (header row id,name + rows
 * [1,alpha] [2,NULL] [3,""]) before this program runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aws/athena.h"
#include "aws/sigv4.h"

#define CAPTURES "/work/shared/testdata/aws-captures"

/* ---- helpers ----------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    buf_init(&b, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b, len_out);
}

/* The body of a captured request (after the blank line). */
static const char *http_body(const char *raw)
{
    const char *p = strstr(raw, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

/* The value of header `name` in a raw request (new string), or NULL. */
static char *http_header(const char *raw, const char *name)
{
    const char *end = strstr(raw, "\r\n\r\n");
    size_t nl = strlen(name);

    for (const char *p = strstr(raw, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(e - v));
        }
    }
    return NULL;
}

/* A one-shot loopback HTTP listener: accepts one request, stores it raw, answers `reply`. */
struct catcher {
    int fd;
    int port;
    const char *reply; /* JSON body sent with 200 */
    pthread_t thread;
    struct buf raw;
};

static void *catcher_main(void *arg)
{
    struct catcher *c = arg;
    char chunk[4096], head[256];
    int conn = accept(c->fd, NULL, NULL);
    ssize_t n;

    if (conn < 0)
        return NULL;
    while ((n = recv(conn, chunk, sizeof(chunk), 0)) > 0) {
        const char *hdr_end;
        char *cl;
        buf_append(&c->raw, chunk, (size_t)n);
        hdr_end = c->raw.data ? strstr(c->raw.data, "\r\n\r\n") : NULL;
        if (!hdr_end)
            continue;
        cl = http_header(c->raw.data, "Content-Length");
        if (cl && c->raw.len >= (size_t)(hdr_end + 4 - c->raw.data) + strtoul(cl, NULL, 10)) {
            free(cl);
            break;
        }
        free(cl);
    }
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             strlen(c->reply));
    (void)!send(conn, head, strlen(head), 0);
    (void)!send(conn, c->reply, strlen(c->reply), 0);
    close(conn);
    return NULL;
}

static void catcher_start(struct catcher *c, const char *reply)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(c, 0, sizeof(*c));
    buf_init(&c->raw, 1 << 20);
    c->reply = reply;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(c->fd, 1), 0);
    assert_int_equal(getsockname(c->fd, (struct sockaddr *)&sa, &sl), 0);
    c->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&c->thread, NULL, catcher_main, c), 0);
}

/* Waits for the one request; c->raw stays valid until the caller frees it. */
static void catcher_join(struct catcher *c)
{
    pthread_join(c->thread, NULL);
    close(c->fd);
}

static time_t capture_time(void)
{
    return 1440938160; /* 2015-08-30T12:36:00Z, the captures' frozen clock */
}

static struct aws_client *client_for(const char *endpoint, const char *ak, const char *sk,
                                     struct aws_credentials_provider **creds_out,
                                     time_t (*now)(void))
{
    struct aws_client_config cfg;

    setenv("AWS_ENDPOINT_URL_ATHENA", endpoint, 1);
    setenv("AWS_ACCESS_KEY_ID", ak, 1);
    setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    memset(&cfg, 0, sizeof(cfg));
    cfg.region = "us-east-1";
    cfg.max_attempts = 3;
    cfg.backoff_base_ms = 5;
    cfg.backoff_cap_ms = 50;
    cfg.now = now;
    *creds_out = aws_credentials_provider_new();
    cfg.credentials = *creds_out;
    return aws_client_new(&cfg);
}

#define assert_athena_ok(call, err)                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            print_error("%s -> %ld %s: %s\n", #call, (err)->status, (err)->code, (err)->message);  \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)

/* ---- pure tests ---------------------------------------------------------------------------- */

static const struct athena_start_params capture_params = {
    .query_string = "SELECT facility_id, name FROM facilities.raw WHERE region = 'eu' LIMIT 10",
    .database = "facilities",
    .catalog = "AwsDataCatalog",
    .workgroup = "primary",
    .output_location = "s3://example-results/athena/",
    .client_request_token = "0123456789abcdef0123456789abcdef",
};

static void athena_start_body_matches_capture(void **state)
{
    char err[160], hash[65];
    size_t len;
    char *raw = read_file(CAPTURES "/athena-start-query-execution/request.http", &len);
    char *body = athena_start_body(&capture_params, err, sizeof(err));
    json_t *a, *b;

    (void)state;
    if (!raw)
        skip();
    assert_non_null(body);
    assert_string_equal(body, http_body(raw));
    sigv4_sha256_hex(body, strlen(body), hash);
    assert_string_equal(hash, "44ab9325225740a1f325d8b78916695400a90207caa3ffbcef76d0fe06d0218a");
    a = json_loads(body, 0, NULL);
    b = json_loads(http_body(raw), 0, NULL);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    free(body);
    free(raw);
}

static void athena_start_body_validates(void **state)
{
    struct athena_start_params p = {.query_string = "SELECT 1"};
    char err[160], tok[130];
    char *body;
    json_t *j;

    (void)state;
    /* The token is mandatory here, 32..128 characters. */
    assert_null(athena_start_body(&p, err, sizeof(err)));
    memset(tok, 'a', sizeof(tok));
    tok[31] = '\0';
    p.client_request_token = tok;
    assert_null(athena_start_body(&p, err, sizeof(err)));
    tok[31] = 'a';
    tok[32] = '\0';
    body = athena_start_body(&p, err, sizeof(err));
    assert_non_null(body);
    /* Optional members are omitted, never sent as null. */
    j = json_loads(body, 0, NULL);
    assert_int_equal(json_object_size(j), 2);
    json_decref(j);
    free(body);
    tok[32] = 'a';
    tok[128] = '\0';
    assert_non_null(body = athena_start_body(&p, err, sizeof(err)));
    free(body);
    tok[128] = 'a';
    tok[129] = '\0';
    assert_null(athena_start_body(&p, err, sizeof(err)));
    p.client_request_token = capture_params.client_request_token;
    p.query_string = "";
    assert_null(athena_start_body(&p, err, sizeof(err)));
    p.query_string = "SELECT '\xff'"; /* not UTF-8 */
    assert_null(athena_start_body(&p, err, sizeof(err)));
}

/* The request the client sends for StartQueryExecution, compared with the CLI's. */
static void athena_start_request_matches_capture(void **state)
{
    struct aws_credentials_provider *creds;
    struct aws_client *c;
    struct athena_error err;
    struct catcher k;
    char endpoint[64], host[64], *id = NULL, *v, *cap_authz;
    size_t len;
    char *raw = read_file(CAPTURES "/athena-start-query-execution/request.http", &len);

    (void)state;
    if (!raw)
        skip();
    catcher_start(&k, "{\"QueryExecutionId\": \"q-123\"}");
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", k.port);
    snprintf(host, sizeof(host), "127.0.0.1:%d", k.port);
    c = client_for(endpoint, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &creds,
                   capture_time);
    assert_athena_ok(athena_start_query(c, &capture_params, &id, &err), &err);
    assert_string_equal(id, "q-123");
    catcher_join(&k);
    /* The catcher thread is joined: k.raw is complete. */
    assert_true(strncmp(k.raw.data, "POST / HTTP/1.1\r\n", 17) == 0);
    v = http_header(k.raw.data, "Host");
    assert_string_equal(v, host);
    free(v);
    static const char *const same[] = {"Content-Type", "X-Amz-Target", "X-Amz-Date",
                                       "Content-Length"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        char *ours = http_header(k.raw.data, same[i]), *theirs = http_header(raw, same[i]);
        assert_non_null(ours);
        assert_string_equal(ours, theirs);
        free(ours);
        free(theirs);
    }
    assert_string_equal(http_body(k.raw.data), http_body(raw));
    /* Same credential scope and signed headers; the signature differs only through the Host
     * (another port), so it is recomputed here with the capture's host to match exactly. */
    v = http_header(k.raw.data, "Authorization");
    cap_authz = http_header(raw, "Authorization");
    assert_non_null(v);
    assert_true(strncmp(v, cap_authz, strlen(cap_authz) - 64) == 0);
    free(v);
    {
        struct sigv4_header hs[] = {
            {"Content-Type", "application/x-amz-json-1.1"},
            {"Host", "127.0.0.1:18081"},
            {"X-Amz-Target", "AmazonAthena.StartQueryExecution"},
        };
        const char *body = http_body(k.raw.data);
        struct sigv4_request r = {.method = "POST",
                                  .path = "/",
                                  .headers = hs,
                                  .n_headers = 3,
                                  .payload = body,
                                  .payload_len = strlen(body),
                                  .region = "us-east-1",
                                  .service = "athena",
                                  .when = capture_time(),
                                  .access_key = "AKIDEXAMPLE",
                                  .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
        struct sigv4_result out;
        assert_int_equal(sigv4_sign(&r, &out), 0);
        assert_string_equal(out.authorization, cap_authz);
        sigv4_result_free(&out);
    }
    free(cap_authz);
    buf_free(&k.raw);
    free(id);
    aws_client_free(c);
    aws_credentials_provider_free(creds);
    free(raw);
}

static void athena_parses_query_execution(void **state)
{
    static const char body[] =
        "{\"QueryExecution\": {\"QueryExecutionId\": \"abc-1\", \"Query\": \"SELECT 1\","
        " \"StatementType\": \"DML\", \"ResultConfiguration\": {\"OutputLocation\":"
        " \"s3://r/p/abc-1.csv\"}, \"QueryExecutionContext\": {\"Database\": \"facilities\","
        " \"Catalog\": \"AwsDataCatalog\"}, \"Status\": {\"State\": \"FAILED\","
        " \"StateChangeReason\": \"TABLE_NOT_FOUND: line 1:15\", \"SubmissionDateTime\":"
        " 1.700000000123E9, \"CompletionDateTime\": 1700000002.5, \"AthenaError\":"
        " {\"ErrorCategory\": 2, \"ErrorType\": 1301, \"Retryable\": false, \"ErrorMessage\":"
        " \"TABLE_NOT_FOUND\"}}, \"Statistics\": {\"EngineExecutionTimeInMillis\": 1234,"
        " \"DataScannedInBytes\": 10737418240, \"TotalExecutionTimeInMillis\": 1500},"
        " \"WorkGroup\": \"primary\", \"EngineVersion\": {\"SelectedEngineVersion\": \"AUTO\"}}}";
    struct athena_query_execution q;
    char err[160];

    (void)state;
    assert_int_equal(athena_parse_query_execution(body, strlen(body), &q, err, sizeof(err)), 0);
    assert_string_equal(q.id, "abc-1");
    assert_int_equal(q.state, ATHENA_STATE_FAILED);
    assert_true(athena_state_is_terminal(q.state));
    assert_string_equal(q.state_change_reason, "TABLE_NOT_FOUND: line 1:15");
    assert_true(q.has_athena_error);
    assert_int_equal(q.error_category, 2);
    assert_int_equal(q.error_type, 1301);
    assert_false(q.error_retryable);
    assert_string_equal(q.error_message, "TABLE_NOT_FOUND");
    assert_int_equal(q.data_scanned_bytes, 10737418240LL);
    assert_int_equal(q.engine_execution_time_ms, 1234);
    assert_int_equal(q.total_execution_time_ms, 1500);
    assert_int_equal(q.query_queue_time_ms, -1);
    assert_string_equal(q.output_location, "s3://r/p/abc-1.csv");
    assert_string_equal(q.database, "facilities");
    assert_string_equal(q.catalog, "AwsDataCatalog");
    assert_string_equal(q.workgroup, "primary");
    assert_true(q.submission_time > 1700000000.0 && q.submission_time < 1700000000.2);
    athena_query_execution_clear(&q);
    assert_null(q.id);
    /* No state, or not an object: errors. */
    assert_int_equal(
        athena_parse_query_execution("{\"QueryExecution\": {}}", 22, &q, err, sizeof(err)), -1);
    assert_int_equal(athena_parse_query_execution("[]", 2, &q, err, sizeof(err)), -1);
    assert_int_equal(athena_parse_query_execution("{", 1, &q, err, sizeof(err)), -1);
}

static const char results_page[] =
    "{\"ResultSet\": {\"Rows\": [{\"Data\": [{\"VarCharValue\": \"id\"}, {\"VarCharValue\":"
    " \"name\"}]}, {\"Data\": [{\"VarCharValue\": \"1\"}, {\"VarCharValue\": \"alpha\"}]},"
    " {\"Data\": [{\"VarCharValue\": \"2\"}, {}]}, {\"Data\": [{\"VarCharValue\": \"3\"},"
    " {\"VarCharValue\": \"\"}]}], \"ResultSetMetadata\": {\"ColumnInfo\": [{\"Name\": \"id\","
    " \"Type\": \"integer\", \"Precision\": 10}, {\"Name\": \"name\", \"Type\": \"varchar\"}]}},"
    " \"NextToken\": \"tok/+=\", \"UpdateCount\": 0}";

static void athena_parses_results_header_and_nulls(void **state)
{
    struct athena_result_page p;
    char err[160];

    (void)state;
    assert_int_equal(
        athena_parse_results(results_page, strlen(results_page), 1, &p, err, sizeof(err)), 0);
    assert_true(p.header_skipped);
    assert_int_equal(p.n_columns, 2);
    assert_string_equal(p.columns[0].name, "id");
    assert_string_equal(p.columns[0].type, "integer");
    assert_string_equal(p.columns[1].type, "varchar");
    assert_int_equal(p.n_rows, 3);
    assert_string_equal(p.rows[0].cells[0], "1");
    assert_string_equal(p.rows[0].cells[1], "alpha");
    assert_null(p.rows[1].cells[1]);             /* NULL */
    assert_string_equal(p.rows[2].cells[1], ""); /* empty string */
    assert_string_equal(p.next_token, "tok/+=");
    assert_int_equal(p.update_count, 0);
    athena_result_page_clear(&p);

    /* Not the first page: row 0 is data even when it looks like the header. */
    assert_int_equal(
        athena_parse_results(results_page, strlen(results_page), 0, &p, err, sizeof(err)), 0);
    assert_false(p.header_skipped);
    assert_int_equal(p.n_rows, 4);
    assert_string_equal(p.rows[0].cells[0], "id");
    athena_result_page_clear(&p);
}

static void athena_results_keep_first_row_unless_header(void **state)
{
    static const char body[] =
        "{\"ResultSet\": {\"Rows\": [{\"Data\": [{\"VarCharValue\": \"id\"}, {}]}],"
        " \"ResultSetMetadata\": {\"ColumnInfo\": [{\"Name\": \"id\", \"Type\": \"integer\"},"
        " {\"Name\": \"name\", \"Type\": \"varchar\"}]}}}";
    static const char *bad[] = {
        "{\"ResultSet\": {\"Rows\": {}}}",
        "{\"ResultSet\": {\"Rows\": [{\"Data\": [{\"VarCharValue\": 1}]}]}}",
        "{\"ResultSet\": {\"Rows\": [{\"Data\": [1]}]}}",
        "{\"ResultSet\": {\"ResultSetMetadata\": {\"ColumnInfo\": [{\"Name\": \"x\"}]}}}",
        "{\"NextToken\": 5}",
    };
    struct athena_result_page p;
    char err[160];

    (void)state;
    assert_int_equal(athena_parse_results(body, strlen(body), 1, &p, err, sizeof(err)), 0);
    assert_false(p.header_skipped);
    assert_int_equal(p.n_rows, 1);
    assert_null(p.next_token);
    assert_int_equal(p.update_count, -1);
    athena_result_page_clear(&p);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(athena_parse_results(bad[i], strlen(bad[i]), 1, &p, err, sizeof(err)), -1);
    /* An empty result set is fine. */
    assert_int_equal(athena_parse_results("{}", 2, 1, &p, err, sizeof(err)), 0);
    assert_int_equal(p.n_rows, 0);
    athena_result_page_clear(&p);
}

static void athena_parses_batch(void **state)
{
    static const char body[] =
        "{\"QueryExecutions\": [{\"QueryExecutionId\": \"a\", \"Status\": {\"State\":"
        " \"RUNNING\"}}, {\"QueryExecutionId\": \"b\", \"Status\": {\"State\": \"SUCCEEDED\"}}],"
        " \"UnprocessedQueryExecutionIds\": [{\"QueryExecutionId\": \"zz\", \"ErrorCode\":"
        " \"INVALID_INPUT\", \"ErrorMessage\": \"not found\"}]}";
    struct athena_batch b;
    char err[160];

    (void)state;
    assert_int_equal(athena_parse_batch(body, strlen(body), &b, err, sizeof(err)), 0);
    assert_int_equal(b.n_executions, 2);
    assert_int_equal(b.executions[0].state, ATHENA_STATE_RUNNING);
    assert_string_equal(b.executions[1].id, "b");
    assert_int_equal(b.n_unprocessed, 1);
    assert_string_equal(b.unprocessed[0].id, "zz");
    assert_string_equal(b.unprocessed[0].error_code, "INVALID_INPUT");
    athena_batch_clear(&b);
    assert_int_equal(athena_parse_batch("{\"QueryExecutions\": {}}", 23, &b, err, sizeof(err)), -1);
}

static void athena_parses_errors(void **state)
{
    char code[96], msg[256];
    static const char e1[] = "{\"__type\": \"com.amazonaws.athena#TooManyRequestsException\","
                             " \"Message\": \"Rate exceeded\", \"Reason\":"
                             " \"CONCURRENT_QUERY_LIMIT_EXCEEDED\"}";
    static const char e2[] = "{\"__type\": \"InvalidRequestException:extra\", \"message\": \"m\"}";

    (void)state;
    assert_int_equal(athena_parse_error(e1, strlen(e1), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "TooManyRequestsException");
    assert_string_equal(msg, "Rate exceeded");
    assert_int_equal(athena_parse_error(e2, strlen(e2), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "InvalidRequestException");
    assert_string_equal(msg, "m");
    assert_int_equal(athena_parse_error("{}", 2, code, sizeof(code), msg, sizeof(msg)), -1);
    assert_int_equal(athena_parse_error("<x/>", 4, code, sizeof(code), msg, sizeof(msg)), -1);
}

static void athena_token_is_random_hex(void **state)
{
    char a[33], b[33];

    (void)state;
    athena_new_token(a);
    athena_new_token(b);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    assert_string_equal(athena_state_name(ATHENA_STATE_CANCELLED), "CANCELLED");
    assert_false(athena_state_is_terminal(ATHENA_STATE_RUNNING));
}

/* ---- peer tests ---------------------------------------------------------------------------- */

static struct {
    struct aws_credentials_provider *creds;
    struct aws_client *client;
    const char *endpoint;
} P;

static int peer_setup(void **state)
{
    (void)state;
    P.endpoint = getenv("HCPIPE_TEST_ATHENA_ENDPOINT");
    P.client = client_for(P.endpoint, getenv("HCPIPE_TEST_ACCESS_KEY"),
                          getenv("HCPIPE_TEST_SECRET_KEY"), &P.creds, NULL);
    return P.client ? 0 : -1;
}

static int peer_teardown(void **state)
{
    (void)state;
    aws_client_free(P.client);
    aws_credentials_provider_free(P.creds);
    memset(&P, 0, sizeof(P));
    return 0;
}

static size_t curl_sink(char *data, size_t size, size_t n, void *ud)
{
    buf_append(ud, data, size * n);
    return size * n;
}

/* Calls the fake's control API (body NULL: GET path); returns the JSON answer. */
static json_t *fake_call(const char *path, const char *body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    char url[256];
    struct buf b;
    long status = 0;
    json_t *j;

    buf_init(&b, 16 << 20);
    snprintf(url, sizeof(url), "%s%s", P.endpoint, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    assert_non_null(j);
    buf_free(&b);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return j;
}

static void fake_control(const char *json)
{
    json_decref(fake_call("/__control", json));
}

/* Requests the fake saw for `op` since the last reset. */
static size_t fake_count(const char *op)
{
    json_t *log = fake_call("/__requests", NULL), *e;
    size_t i, n = 0;

    json_array_foreach(log, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "op")), op) == 0)
            n++;
    }
    json_decref(log);
    return n;
}

static void assert_no_violations(void)
{
    json_t *v = fake_call("/__violations", NULL);
    if (json_array_size(v)) {
        char *s = json_dumps(v, 0);
        print_error("fake_athena violations: %s\n", s);
        free(s);
    }
    assert_int_equal(json_array_size(v), 0);
    json_decref(v);
}

static const struct athena_start_params basic = {
    .query_string = "SELECT id, name FROM facilities.raw",
    .database = "facilities",
    .catalog = "AwsDataCatalog",
    .workgroup = "primary",
    .output_location = "s3://hcpipe-results/athena/",
};

static void athena_fake_state_progression(void **state)
{
    struct athena_query_execution q;
    struct athena_error err;
    enum athena_state seen[8];
    char *id = NULL;
    int n = 0;

    (void)state;
    fake_control("{\"action\": \"reset\"}");
    assert_athena_ok(athena_start_query(P.client, &basic, &id, &err), &err);
    do {
        assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
        seen[n++] = q.state;
        if (!athena_state_is_terminal(q.state))
            athena_query_execution_clear(&q);
    } while (!athena_state_is_terminal(q.state) && n < 8);
    assert_int_equal(n, 3);
    assert_int_equal(seen[0], ATHENA_STATE_QUEUED);
    assert_int_equal(seen[1], ATHENA_STATE_RUNNING);
    assert_int_equal(seen[2], ATHENA_STATE_SUCCEEDED);
    assert_string_equal(q.id, id);
    assert_int_equal(q.data_scanned_bytes, 987654321);
    assert_int_equal(q.engine_execution_time_ms, 1234);
    assert_true(strncmp(q.output_location, "s3://hcpipe-results/athena/", 27) == 0);
    assert_non_null(strstr(q.output_location, id));
    assert_string_equal(q.query, basic.query_string);
    athena_query_execution_clear(&q);
    free(id);
    assert_no_violations();
}

static void athena_fake_failed_with_athena_error(void **state)
{
    struct athena_query_execution q;
    struct athena_error err;
    char *id = NULL;

    (void)state;
    fake_control("{\"action\": \"reset\"}");
    fake_control("{\"action\": \"plan\", \"states\": [\"RUNNING\", \"FAILED\"], \"reason\":"
                 " \"TABLE_NOT_FOUND: line 1:15: Table does not exist\", \"athena_error\":"
                 " {\"ErrorCategory\": 2, \"ErrorType\": 1301, \"Retryable\": true,"
                 " \"ErrorMessage\": \"Table does not exist\"}}");
    assert_athena_ok(athena_start_query(P.client, &basic, &id, &err), &err);
    assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
    assert_int_equal(q.state, ATHENA_STATE_RUNNING);
    assert_false(q.has_athena_error);
    athena_query_execution_clear(&q);
    assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
    assert_int_equal(q.state, ATHENA_STATE_FAILED);
    assert_string_equal(q.state_change_reason, "TABLE_NOT_FOUND: line 1:15: Table does not exist");
    assert_true(q.has_athena_error);
    assert_int_equal(q.error_category, 2);
    assert_int_equal(q.error_type, 1301);
    assert_true(q.error_retryable);
    assert_string_equal(q.error_message, "Table does not exist");
    athena_query_execution_clear(&q);
    /* Results of a failed query: InvalidRequestException, not retried. */
    {
        struct athena_result_page p;
        assert_int_equal(athena_get_results(P.client, id, NULL, 0, &p, &err), -1);
        assert_string_equal(err.code, "InvalidRequestException");
        assert_false(err.retryable);
        assert_int_equal(fake_count("GetQueryResults"), 1);
    }
    free(id);
    assert_no_violations();
}

static void athena_fake_throttling_is_retried(void **state)
{
    struct athena_query_execution q;
    struct athena_error err;
    char *id = NULL, *id2 = NULL;
    json_t *log, *e;
    size_t i;
    const char *token = NULL;

    (void)state;
    fake_control("{\"action\": \"reset\"}");
    fake_control("{\"action\": \"fail\", \"op\": \"StartQueryExecution\", \"status\": 400,"
                 " \"error_type\": \"TooManyRequestsException\", \"message\": \"Rate exceeded\","
                 " \"count\": 2}");
    assert_athena_ok(athena_start_query(P.client, &basic, &id, &err), &err);
    assert_int_equal(fake_count("StartQueryExecution"), 3);
    /* Every attempt re-sent the same ClientRequestToken. */
    log = fake_call("/__requests", NULL);
    json_array_foreach(log, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "token"));
        assert_non_null(t);
        if (!token)
            token = t;
        assert_string_equal(t, token);
        assert_int_equal(strlen(t), 32);
    }
    json_decref(log);

    /* Three throttles in a row exhaust the attempts. */
    fake_control("{\"action\": \"fail\", \"op\": \"GetQueryExecution\", \"status\": 400,"
                 " \"error_type\": \"ThrottlingException\", \"message\": \"slow down\","
                 " \"count\": 3}");
    assert_int_equal(athena_get_query(P.client, id, &q, &err), -1);
    assert_string_equal(err.code, "ThrottlingException");
    assert_string_equal(err.message, "slow down");
    assert_int_equal(err.status, 400);
    assert_true(err.retryable);
    assert_int_equal(fake_count("GetQueryExecution"), 3);

    /* Capacity signal: TooManyRequestsException with a Reason, after 3 attempts. */
    fake_control("{\"action\": \"fail\", \"op\": \"StartQueryExecution\", \"status\": 400,"
                 " \"error_type\": \"com.amazonaws.athena#TooManyRequestsException\", \"count\":"
                 " 3, \"extra\": {\"Reason\": \"CONCURRENT_QUERY_LIMIT_EXCEEDED\"}}");
    assert_int_equal(athena_start_query(P.client, &basic, &id2, &err), -1);
    assert_null(id2);
    assert_string_equal(err.code, "TooManyRequestsException");
    free(id);
    assert_no_violations();
}

static void athena_fake_5xx_is_retried(void **state)
{
    struct athena_query_execution q;
    struct athena_error err;
    char *id = NULL;

    (void)state;
    fake_control("{\"action\": \"reset\"}");
    assert_athena_ok(athena_start_query(P.client, &basic, &id, &err), &err);
    fake_control("{\"action\": \"fail\", \"op\": \"GetQueryExecution\", \"status\": 500,"
                 " \"error_type\": \"InternalServerException\", \"count\": 2}");
    assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
    assert_int_equal(q.state, ATHENA_STATE_QUEUED);
    athena_query_execution_clear(&q);
    assert_int_equal(fake_count("GetQueryExecution"), 3);
    fake_control("{\"action\": \"fail\", \"op\": \"StopQueryExecution\", \"status\": 503,"
                 " \"error_type\": \"ServiceUnavailable\", \"count\": 3}");
    assert_int_equal(athena_stop_query(P.client, id, &err), -1);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "ServiceUnavailable");
    assert_true(err.retryable);
    /* An unknown id is InvalidRequestException: one attempt only. */
    assert_int_equal(athena_get_query(P.client, "no-such-id", &q, &err), -1);
    assert_string_equal(err.code, "InvalidRequestException");
    assert_int_equal(err.status, 400);
    assert_int_equal(fake_count("GetQueryExecution"), 4);
    free(id);
    assert_no_violations();
}

static void athena_fake_multi_page_results(void **state)
{
    struct athena_query_execution q;
    struct athena_result_page p;
    struct athena_error err;
    char *id = NULL, *token = NULL;
    size_t total = 0, pages = 0;
    static const char *const names[] = {"r0", "r1", NULL, "r3", "", "r5", "r6"};

    (void)state;
    fake_control("{\"action\": \"reset\"}");
    fake_control("{\"action\": \"plan\", \"states\": [\"SUCCEEDED\"], \"columns\": [[\"n\","
                 " \"bigint\"], [\"name\", \"varchar\"]], \"rows\": [[\"0\", \"r0\"], [\"1\","
                 " \"r1\"], [\"2\", null], [\"3\", \"r3\"], [\"4\", \"\"], [\"5\", \"r5\"], [\"6\","
                 " \"r6\"]]}");
    assert_athena_ok(athena_start_query(P.client, &basic, &id, &err), &err);
    assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
    assert_int_equal(q.state, ATHENA_STATE_SUCCEEDED);
    athena_query_execution_clear(&q);
    do {
        char *next;
        assert_athena_ok(athena_get_results(P.client, id, token, 3, &p, &err), &err);
        assert_int_equal(p.n_columns, 2);
        assert_string_equal(p.columns[0].type, "bigint");
        /* The header row is on the first page only, and counts toward MaxResults. */
        assert_int_equal(p.header_skipped, pages == 0);
        assert_int_equal(p.n_rows, pages == 0 ? 2 : (p.next_token ? 3 : 2));
        for (size_t i = 0; i < p.n_rows; i++, total++) {
            char n[8];
            snprintf(n, sizeof(n), "%zu", total);
            assert_string_equal(p.rows[i].cells[0], n);
            if (names[total])
                assert_string_equal(p.rows[i].cells[1], names[total]);
            else
                assert_null(p.rows[i].cells[1]);
        }
        next = p.next_token ? strdup(p.next_token) : NULL;
        free(token);
        token = next;
        athena_result_page_clear(&p);
        pages++;
    } while (token);
    assert_int_equal(total, 7);
    assert_int_equal(pages, 3);
    free(id);
    assert_no_violations();
}

static void athena_fake_batch_stop_and_idempotency(void **state)
{
    struct athena_start_params withtok = basic;
    struct athena_batch b;
    struct athena_error err;
    char *a = NULL, *a2 = NULL, *c = NULL;
    const char *ids[ATHENA_BATCH_MAX + 1];

    (void)state;
    fake_control("{\"action\": \"reset\"}");
    withtok.client_request_token = "hcpipe-job-0123456789abcdef-0123456789";
    assert_athena_ok(athena_start_query(P.client, &withtok, &a, &err), &err);
    assert_athena_ok(athena_start_query(P.client, &withtok, &a2, &err), &err);
    assert_string_equal(a, a2); /* same token, same query */
    assert_athena_ok(athena_start_query(P.client, &basic, &c, &err), &err);
    assert_string_not_equal(a, c);
    /* Same token, another query: refused. */
    withtok.query_string = "SELECT 2";
    free(a2);
    a2 = NULL;
    assert_int_equal(athena_start_query(P.client, &withtok, &a2, &err), -1);
    assert_string_equal(err.code, "InvalidRequestException");

    assert_athena_ok(athena_stop_query(P.client, c, &err), &err);
    ids[0] = a;
    ids[1] = "no-such-query";
    ids[2] = c;
    assert_athena_ok(athena_batch_get_query(P.client, ids, 3, &b, &err), &err);
    assert_int_equal(b.n_executions, 2);
    assert_string_equal(b.executions[0].id, a);
    assert_int_equal(b.executions[0].state, ATHENA_STATE_QUEUED);
    assert_string_equal(b.executions[1].id, c);
    assert_int_equal(b.executions[1].state, ATHENA_STATE_CANCELLED);
    assert_int_equal(b.n_unprocessed, 1);
    assert_string_equal(b.unprocessed[0].id, "no-such-query");
    assert_non_null(b.unprocessed[0].error_code);
    athena_batch_clear(&b);
    /* More than 50 ids: refused locally, nothing sent. */
    for (size_t i = 0; i <= ATHENA_BATCH_MAX; i++)
        ids[i] = a;
    assert_int_equal(athena_batch_get_query(P.client, ids, ATHENA_BATCH_MAX + 1, &b, &err), -1);
    assert_string_equal(err.code, "InvalidArgument");
    assert_int_equal(fake_count("BatchGetQueryExecution"), 1);
    free(a);
    free(c);
    assert_no_violations();
}

static void athena_fake_rejects_wrong_secret(void **state)
{
    struct aws_credentials_provider *creds;
    struct aws_client *c;
    struct athena_query_execution q;
    struct athena_error err;

    (void)state;
    c = client_for(P.endpoint, getenv("HCPIPE_TEST_ACCESS_KEY"), "not-the-secret", &creds, NULL);
    assert_int_equal(athena_get_query(c, "x", &q, &err), -1);
    assert_string_equal(err.code, "InvalidSignatureException");
    assert_int_equal(err.status, 403);
    aws_client_free(c);
    aws_credentials_provider_free(creds);
    setenv("AWS_SECRET_ACCESS_KEY", getenv("HCPIPE_TEST_SECRET_KEY"), 1);
}

/* moto: the request/response shapes of a real implementation (SUCCEEDED at once). */
static void athena_moto_start_get_results_stop(void **state)
{
    struct athena_query_execution q;
    struct athena_result_page p;
    struct athena_error err;
    char *id = NULL, *token = NULL;
    size_t rows = 0;
    int first = 1;

    (void)state;
    assert_athena_ok(athena_start_query(P.client, &basic, &id, &err), &err);
    assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
    assert_string_equal(q.id, id);
    assert_int_equal(q.state, ATHENA_STATE_SUCCEEDED);
    assert_string_equal(q.query, basic.query_string);
    assert_non_null(q.output_location);
    assert_string_equal(q.database, "facilities");
    athena_query_execution_clear(&q);
    do {
        char *next;
        assert_athena_ok(athena_get_results(P.client, id, token, 1000, &p, &err), &err);
        if (first) {
            assert_true(p.header_skipped);
            assert_int_equal(p.n_columns, 2);
            assert_string_equal(p.columns[1].name, "name");
            assert_string_equal(p.columns[1].type, "varchar");
            assert_string_equal(p.rows[0].cells[1], "alpha");
            assert_null(p.rows[1].cells[1]);
            assert_string_equal(p.rows[2].cells[1], "");
        }
        rows += p.n_rows;
        first = 0;
        next = p.next_token ? strdup(p.next_token) : NULL;
        free(token);
        token = next;
        athena_result_page_clear(&p);
    } while (token);
    assert_int_equal(rows, 3);
    assert_athena_ok(athena_stop_query(P.client, id, &err), &err);
    assert_athena_ok(athena_get_query(P.client, id, &q, &err), &err);
    assert_int_equal(q.state, ATHENA_STATE_CANCELLED);
    athena_query_execution_clear(&q);
    free(id);
}

static void athena_moto_auth_failures(void **state)
{
    const char *dak = getenv("HCPIPE_TEST_ATHENA_DENIED_ACCESS_KEY");
    const char *dsk = getenv("HCPIPE_TEST_ATHENA_DENIED_SECRET_KEY");
    struct aws_credentials_provider *creds;
    struct aws_client *c;
    char *id = NULL;
    struct athena_error err;

    (void)state;
    c = client_for(P.endpoint, getenv("HCPIPE_TEST_ACCESS_KEY"), "not-the-secret", &creds, NULL);
    assert_int_equal(athena_start_query(c, &basic, &id, &err), -1);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "SignatureDoesNotMatch");
    aws_client_free(c);
    aws_credentials_provider_free(creds);
    if (dak && dsk) {
        c = client_for(P.endpoint, dak, dsk, &creds, NULL);
        assert_int_equal(athena_start_query(c, &basic, &id, &err), -1);
        assert_int_equal(err.status, 403);
        assert_string_equal(err.code, "AccessDenied");
        aws_client_free(c);
        aws_credentials_provider_free(creds);
    }
    setenv("AWS_ACCESS_KEY_ID", getenv("HCPIPE_TEST_ACCESS_KEY"), 1);
    setenv("AWS_SECRET_ACCESS_KEY", getenv("HCPIPE_TEST_SECRET_KEY"), 1);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(athena_start_body_matches_capture),
        cmocka_unit_test(athena_start_body_validates),
        cmocka_unit_test(athena_start_request_matches_capture),
        cmocka_unit_test(athena_parses_query_execution),
        cmocka_unit_test(athena_parses_results_header_and_nulls),
        cmocka_unit_test(athena_results_keep_first_row_unless_header),
        cmocka_unit_test(athena_parses_batch),
        cmocka_unit_test(athena_parses_errors),
        cmocka_unit_test(athena_token_is_random_hex),
    };
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(athena_fake_state_progression),
        cmocka_unit_test(athena_fake_failed_with_athena_error),
        cmocka_unit_test(athena_fake_throttling_is_retried),
        cmocka_unit_test(athena_fake_5xx_is_retried),
        cmocka_unit_test(athena_fake_multi_page_results),
        cmocka_unit_test(athena_fake_batch_stop_and_idempotency),
        cmocka_unit_test(athena_fake_rejects_wrong_secret),
    };
    const struct CMUnitTest moto[] = {
        cmocka_unit_test(athena_moto_start_get_results_stop),
        cmocka_unit_test(athena_moto_auth_failures),
    };
    const char *peer = getenv("HCPIPE_TEST_ATHENA_PEER");
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests_name("athena_pure", pure, NULL, NULL);
    if (getenv("HCPIPE_TEST_ATHENA_ENDPOINT")) {
        if (!getenv("HCPIPE_TEST_ACCESS_KEY") || !getenv("HCPIPE_TEST_SECRET_KEY") || !peer) {
            fprintf(stderr, "HCPIPE_TEST_ATHENA_ENDPOINT needs HCPIPE_TEST_ACCESS_KEY, "
                            "HCPIPE_TEST_SECRET_KEY and HCPIPE_TEST_ATHENA_PEER\n");
            rc = 1;
        } else if (strcmp(peer, "fake") == 0) {
            rc |= cmocka_run_group_tests_name("athena_fake", fake, peer_setup, peer_teardown);
        } else {
            rc |= cmocka_run_group_tests_name("athena_moto", moto, peer_setup, peer_teardown);
        }
    }
    curl_global_cleanup();
    return rc;
}
