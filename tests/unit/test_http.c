/*
 * Unit tests of aws/http.c against a scripted loopback server (tests/unit/fake_http.h):
 * retries and their attempt counts, error parsing (JSON, XML, bodiless), network errors,
 * connection reuse, timeouts, the signed headers (recomputed with sigv4_sign), streaming
 * downloads, file uploads and endpoint resolution.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/http.h"
#include "aws/sigv4.h"
#include "fake_http.h"

static time_t pinned_now(void)
{
    return 1440938160; /* 2015-08-30T12:36:00Z */
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct fixture {
    struct aws_credentials_provider *creds;
    struct aws_client *client;
    struct fake_server *fake;
    char url[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("AWS_ENDPOINT_URL_ATHENA");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    f->creds = aws_credentials_provider_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    aws_client_free(f->client);
    aws_credentials_provider_free(f->creds);
    fake_stop(f->fake);
    free(f);
    return 0;
}

/* Starts the fake and a client with fast backoff. */
static void start(struct fixture *f, const struct fake_resp *r, int n, int max_attempts)
{
    struct aws_client_config cfg = {
        .region = "us-east-1",
        .connect_timeout_ms = 1000,
        .total_timeout_ms = 5000,
        .max_attempts = max_attempts,
        .backoff_base_ms = 1,
        .backoff_cap_ms = 5,
        .now = pinned_now,
        .credentials = f->creds,
    };

    if (r) {
        f->fake = fake_start(r, n);
        assert_non_null(f->fake);
        snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/", f->fake->port);
    }
    f->client = aws_client_new(&cfg);
    assert_non_null(f->client);
}

static const struct aws_header athena_headers[] = {
    {"Content-Type", "application/x-amz-json-1.1"},
    {"X-Amz-Target", "AmazonAthena.GetQueryExecution"},
};

static int athena_call(struct fixture *f, struct aws_response *resp)
{
    static const char body[] = "{\"QueryExecutionId\": \"q1\"}";
    struct aws_request req = {
        .service = "athena",
        .method = "POST",
        .url = f->url,
        .headers = athena_headers,
        .n_headers = 2,
        .body = body,
        .body_len = sizeof(body) - 1,
    };

    return aws_request_perform(f->client, &req, resp);
}

static void http_retries_500_then_succeeds(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 500, .body = "{\"__type\":\"InternalServerException\",\"message\":\"x\"}"},
        {.status = 200, .body = "{\"ok\":1}"},
    };
    struct aws_response resp;

    start(f, r, 2, 3);
    assert_int_equal(athena_call(f, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 2);
    assert_string_equal(resp.body.data, "{\"ok\":1}");
    assert_null(resp.error_code);
    assert_int_equal(fake_n_reqs(f->fake), 2);
    aws_response_free(&resp);
}

static void http_retries_throttling(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 429},
        {.status = 400, .body = "{\"__type\":\"ThrottlingException\",\"message\":\"slow\"}"},
        {.status = 503,
         .body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>m</Message></Error>"},
        {.status = 400, .body = "<Error><Code>RequestTimeout</Code></Error>"},
        {.status = 200, .body = "{}"},
    };
    struct aws_response resp;

    start(f, r, 5, 5);
    assert_int_equal(athena_call(f, &resp), 0);
    assert_int_equal(resp.attempts, 5);
    assert_int_equal(fake_n_reqs(f->fake), 5);
    aws_response_free(&resp);
}

static void http_retries_exhausted_reports_last_error(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 400,
         .body =
             "{\"__type\":\"com.amazonaws.athena#TooManyRequestsException\",\"Message\":\"busy\","
             "\"Reason\":\"CONCURRENT_QUERY_LIMIT_EXCEEDED\"}"},
    };
    struct aws_response resp;

    start(f, r, 1, 3);
    assert_int_equal(athena_call(f, &resp), -1);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.error_code, "TooManyRequestsException");
    assert_string_equal(resp.error_message, "busy");
    assert_int_equal(fake_n_reqs(f->fake), 3);
    aws_response_free(&resp);
}

static void http_nonretryable_json_returns_at_once(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 400,
         .headers = "x-amzn-RequestId: req-123\r\n",
         .body =
             "{\"__type\":\"com.amazonaws.athena#InvalidRequestException:http://x\","
             "\"message\":\"QueryExecution q1 was not found\",\"AthenaErrorCode\":\"INVALID\"}"},
        {.status = 200, .body = "{}"},
    };
    struct aws_response resp;

    start(f, r, 2, 3);
    assert_int_equal(athena_call(f, &resp), -1);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.error_code, "InvalidRequestException");
    assert_string_equal(resp.error_message, "QueryExecution q1 was not found");
    assert_string_equal(resp.request_id, "req-123");
    assert_int_equal(fake_n_reqs(f->fake), 1);
    aws_response_free(&resp);
}

static void http_nonretryable_xml_returns_at_once(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 404,
         .headers = "Content-Type: application/xml\r\nx-amz-request-id: 4442587FB7D0A2F9\r\n",
         .body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                 "<Message>The specified key &amp; does not exist.</Message>"
                 "<Key>nosuch.json</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>"},
    };
    struct aws_response resp;
    struct aws_request req = {.service = "s3", .method = "GET"};

    start(f, r, 1, 3);
    req.url = f->url;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), -1);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.error_code, "NoSuchKey");
    assert_string_equal(resp.error_message, "The specified key & does not exist.");
    assert_string_equal(resp.request_id, "4442587FB7D0A2F9");
    assert_string_equal(resp.content_type, "application/xml");
    aws_response_free(&resp);
}

static void http_head_error_falls_back_to_status(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 404}, {.status = 200}};
    struct aws_response resp;
    struct aws_request req = {.service = "s3", .method = "HEAD"};

    start(f, r, 2, 3);
    req.url = f->url;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), -1);
    assert_int_equal(resp.status, 404);
    assert_int_equal(resp.attempts, 1);
    assert_string_equal(resp.error_code, "404");
    assert_non_null(resp.error_message); /* the reason phrase */
    aws_response_free(&resp);
    /* And a successful HEAD reports its headers. */
    assert_int_equal(aws_request_perform(f->client, &req, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.content_length, 0);
    aws_response_free(&resp);
}

static void http_error_type_header_fallback(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 400, .headers = "x-amzn-ErrorType: ValidationException:http://internal/\r\n"},
    };
    struct aws_response resp;

    start(f, r, 1, 3);
    assert_int_equal(athena_call(f, &resp), -1);
    assert_string_equal(resp.error_code, "ValidationException");
    assert_int_equal(resp.attempts, 1);
    aws_response_free(&resp);
}

static void http_network_error_retried_then_reported(void **state)
{
    struct fixture *f = *state;
    struct aws_response resp;

    start(f, NULL, 0, 3);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/", fake_closed_port());
    assert_int_equal(athena_call(f, &resp), -1);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.status, 0);
    assert_string_equal(resp.error_code, "NetworkError");
    assert_non_null(resp.error_message);
    aws_response_free(&resp);
}

static void http_network_error_then_success(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.close = 1}, {.status = 200, .body = "{}"}};
    struct aws_response resp;

    start(f, r, 2, 3);
    assert_int_equal(athena_call(f, &resp), 0);
    assert_int_equal(resp.attempts, 2);
    aws_response_free(&resp);
}

static void http_reuses_connection(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .body = "{}"}};
    struct aws_response resp;

    start(f, r, 1, 3);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(athena_call(f, &resp), 0);
        aws_response_free(&resp);
    }
    assert_int_equal(fake_n_reqs(f->fake), 4);
    assert_int_equal(fake_n_conns(f->fake), 1);
}

struct worker {
    struct fixture *f;
    int ok;
};

static void *worker_thread(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < 5; i++) {
        struct aws_response resp;

        if (athena_call(w->f, &resp) == 0 && resp.body.data && strcmp(resp.body.data, "{}") == 0)
            w->ok++;
        aws_response_free(&resp);
    }
    return NULL;
}

static void http_concurrent_requests(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .body = "{}"}};
    pthread_t t[4];
    struct worker w[4];

    start(f, r, 1, 3);
    for (int i = 0; i < 4; i++) {
        w[i].f = f;
        w[i].ok = 0;
        pthread_create(&t[i], NULL, worker_thread, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 5);
    }
    assert_int_equal(fake_n_reqs(f->fake), 20);
    assert_true(fake_n_conns(f->fake) <= 4);
}

static void http_timeout_honoured(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.hang = 1}};
    struct aws_client_config cfg = {
        .region = "us-east-1",
        .total_timeout_ms = 300,
        .max_attempts = 2,
        .backoff_base_ms = 1,
        .credentials = f->creds,
    };
    struct aws_response resp;
    double t0;

    f->fake = fake_start(r, 1);
    assert_non_null(f->fake);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/", f->fake->port);
    f->client = aws_client_new(&cfg);
    t0 = mono_s();
    assert_int_equal(athena_call(f, &resp), -1);
    assert_true(mono_s() - t0 < 2.5);
    assert_true(mono_s() - t0 >= 0.55);
    assert_int_equal(resp.attempts, 2);
    assert_string_equal(resp.error_code, "NetworkError");
    aws_response_free(&resp);
}

static void http_signs_headers(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .body = "{}"}};
    struct aws_response resp;
    char host[64], date[64], token[256], authz[512], target[128], ctype[128], expect[64];
    char wanted_host[64];
    struct sigv4_result sig = {0};

    setenv("AWS_SESSION_TOKEN", "session-token-value", 1);
    start(f, r, 1, 3);
    assert_int_equal(athena_call(f, &resp), 0);
    aws_response_free(&resp);
    assert_int_equal(fake_n_reqs(f->fake), 1);
    fake_req_header(f->fake, 0, "Host", host, sizeof(host));
    fake_req_header(f->fake, 0, "X-Amz-Date", date, sizeof(date));
    fake_req_header(f->fake, 0, "X-Amz-Security-Token", token, sizeof(token));
    fake_req_header(f->fake, 0, "Authorization", authz, sizeof(authz));
    fake_req_header(f->fake, 0, "X-Amz-Target", target, sizeof(target));
    fake_req_header(f->fake, 0, "Content-Type", ctype, sizeof(ctype));
    fake_req_header(f->fake, 0, "Expect", expect, sizeof(expect));
    snprintf(wanted_host, sizeof(wanted_host), "127.0.0.1:%d", f->fake->port);
    assert_string_equal(host, wanted_host);
    assert_string_equal(date, "20150830T123600Z");
    assert_string_equal(token, "session-token-value");
    assert_string_equal(target, "AmazonAthena.GetQueryExecution");
    assert_string_equal(ctype, "application/x-amz-json-1.1");
    assert_string_equal(expect, "");
    assert_non_null(strstr(authz, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                                  "athena/aws4_request, SignedHeaders=content-type;host;"
                                  "x-amz-date;x-amz-security-token;x-amz-target, Signature="));
    assert_non_null(strstr(f->fake->reqs[0].head, "POST / HTTP/1.1\r\n"));
    assert_string_equal(f->fake->reqs[0].body, "{\"QueryExecutionId\": \"q1\"}");

    /* The signature is the one sigv4 computes over what the server received. */
    {
        struct sigv4_header h[] = {
            {"Host", host}, {"Content-Type", ctype}, {"X-Amz-Target", target}};
        struct sigv4_request sr = {
            .method = "POST",
            .path = "/",
            .headers = h,
            .n_headers = 3,
            .payload = f->fake->reqs[0].body,
            .payload_len = f->fake->reqs[0].body_len,
            .region = "us-east-1",
            .service = "athena",
            .when = pinned_now(),
            .access_key = "AKIDEXAMPLE",
            .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            .session_token = "session-token-value",
        };

        assert_int_equal(sigv4_sign(&sr, &sig), 0);
        assert_string_equal(sig.authorization, authz);
        sigv4_result_free(&sig);
    }
    unsetenv("AWS_SESSION_TOKEN");
}

static void http_s3_content_sha256_and_query(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .body = "<ListBucketResult/>"}};
    struct aws_response resp;
    struct aws_request req = {.service = "s3", .method = "GET"};
    char url[256], sha[80], authz[512], host[64];
    struct sigv4_result sig = {0};

    start(f, r, 1, 3);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/bucket?list-type=2&prefix=a%%2Fb",
             f->fake->port);
    req.url = url;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), 0);
    assert_string_equal(resp.body.data, "<ListBucketResult/>");
    aws_response_free(&resp);
    fake_req_header(f->fake, 0, "x-amz-content-sha256", sha, sizeof(sha));
    fake_req_header(f->fake, 0, "Authorization", authz, sizeof(authz));
    fake_req_header(f->fake, 0, "Host", host, sizeof(host));
    assert_string_equal(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_non_null(
        strstr(f->fake->reqs[0].head, "GET /bucket?list-type=2&prefix=a%2Fb HTTP/1.1\r\n"));
    assert_non_null(strstr(authz, "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
    {
        struct sigv4_header h[] = {{"Host", host}};
        struct sigv4_request sr = {
            .method = "GET",
            .path = "/bucket",
            .query = "list-type=2&prefix=a%2Fb",
            .headers = h,
            .n_headers = 1,
            .region = "us-east-1",
            .service = "s3",
            .when = pinned_now(),
            .access_key = "AKIDEXAMPLE",
            .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            .sign_content_sha256 = 1,
        };

        assert_int_equal(sigv4_sign(&sr, &sig), 0);
        assert_string_equal(sig.authorization, authz);
        sigv4_result_free(&sig);
    }
}

struct sink {
    char data[256];
    size_t len;
    int calls;
    int stop;
};

static int sink_cb(void *ctx, const void *data, size_t len)
{
    struct sink *s = ctx;

    s->calls++;
    if (s->stop)
        return 1;
    if (s->len + len < sizeof(s->data)) {
        memcpy(s->data + s->len, data, len);
        s->len += len;
    }
    return 0;
}

static void http_streams_body_to_callback(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 206,
         .headers = "Content-Range: bytes 0-9/20\r\nETag: \"abc\"\r\n",
         .body = "0123456789"},
        {.status = 403, .body = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>"},
        {.status = 200, .body = "zzzz"},
    };
    struct aws_header range = {"Range", "bytes=0-9"};
    struct aws_request req = {.service = "s3", .method = "GET", .headers = &range, .n_headers = 1};
    struct aws_response resp;
    struct sink s = {0};
    char got_range[64];

    start(f, r, 3, 3);
    req.url = f->url;
    req.on_data = sink_cb;
    req.on_data_ctx = &s;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), 0);
    assert_int_equal(resp.status, 206);
    assert_int_equal(s.len, 10);
    assert_memory_equal(s.data, "0123456789", 10);
    assert_null(resp.body.data);
    assert_string_equal(resp.content_range, "bytes 0-9/20");
    assert_string_equal(resp.etag, "\"abc\"");
    assert_int_equal(resp.content_length, 10);
    assert_string_equal(fake_req_header(f->fake, 0, "Range", got_range, sizeof(got_range)),
                        "bytes=0-9");
    aws_response_free(&resp);

    /* An error body is parsed, not streamed. */
    s.len = 0;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), -1);
    assert_int_equal(s.len, 0);
    assert_string_equal(resp.error_code, "AccessDenied");
    aws_response_free(&resp);

    /* The consumer can stop the transfer. */
    s.stop = 1;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), -1);
    assert_string_equal(resp.error_code, "Aborted");
    assert_int_equal(resp.attempts, 1);
    aws_response_free(&resp);
}

static void http_uploads_file_with_length(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .headers = "ETag: \"e1\"\r\n"}};
    char path[] = "/tmp/hcpipe_http_upload_XXXXXX";
    char *content, clen[32], sha[80], want_sha[65], ctype[64], te[64];
    size_t n = 300000;
    struct aws_header h = {"Content-Type", "application/json"};
    struct aws_request req = {
        .service = "s3", .method = "PUT", .headers = &h, .n_headers = 1, .body_file = path};
    struct aws_response resp;
    int fd = mkstemp(path);
    FILE *fp;

    assert_true(fd >= 0);
    content = malloc(n);
    for (size_t i = 0; i < n; i++)
        content[i] = (char)('a' + i % 26);
    fp = fdopen(fd, "wb");
    assert_int_equal(fwrite(content, 1, n, fp), n);
    fclose(fp);
    start(f, r, 1, 3);
    req.url = f->url;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), 0);
    assert_string_equal(resp.etag, "\"e1\"");
    aws_response_free(&resp);
    assert_non_null(strstr(f->fake->reqs[0].head, "PUT / HTTP/1.1\r\n"));
    assert_string_equal(fake_req_header(f->fake, 0, "Content-Length", clen, sizeof(clen)),
                        "300000");
    assert_string_equal(fake_req_header(f->fake, 0, "Transfer-Encoding", te, sizeof(te)), "");
    assert_string_equal(fake_req_header(f->fake, 0, "Content-Type", ctype, sizeof(ctype)),
                        "application/json");
    assert_int_equal(f->fake->reqs[0].body_len, n);
    assert_memory_equal(f->fake->reqs[0].body, content, n);
    sigv4_sha256_hex(content, n, want_sha);
    assert_string_equal(fake_req_header(f->fake, 0, "x-amz-content-sha256", sha, sizeof(sha)),
                        want_sha);

    /* A header carrying a line break is refused before any request. */
    {
        struct aws_header bad = {"X-Amz-Meta-A", "x\r\nInjected: 1"};

        req.headers = &bad;
        assert_int_equal(aws_request_perform(f->client, &req, &resp), -1);
        assert_string_equal(resp.error_code, "InvalidRequest");
        aws_response_free(&resp);
        req.headers = &h;
    }

    /* A missing file is reported without a request. */
    req.body_file = "/nonexistent/hcpipe/file";
    assert_int_equal(aws_request_perform(f->client, &req, &resp), -1);
    assert_string_equal(resp.error_code, "InvalidRequest");
    aws_response_free(&resp);
    assert_int_equal(fake_n_reqs(f->fake), 1);
    unlink(path);
    free(content);
}

static void http_put_from_memory_without_content_type(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200}};
    struct aws_request req = {.service = "s3", .method = "PUT", .body = "hello", .body_len = 5};
    struct aws_response resp;
    char ctype[64], clen[32];

    start(f, r, 1, 3);
    req.url = f->url;
    assert_int_equal(aws_request_perform(f->client, &req, &resp), 0);
    aws_response_free(&resp);
    assert_string_equal(fake_req_header(f->fake, 0, "Content-Type", ctype, sizeof(ctype)), "");
    assert_string_equal(fake_req_header(f->fake, 0, "Content-Length", clen, sizeof(clen)), "5");
    assert_string_equal(f->fake->reqs[0].body, "hello");
}

static void http_endpoints_follow_the_sdks(void **state)
{
    struct fixture *f = *state;
    int ps = -1;

    setenv("AWS_REGION", "eu-west-1", 1);
    setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
    start(f, NULL, 0, 3);
    aws_client_free(f->client);
    {
        struct aws_client_config cfg = {.credentials = f->creds};

        f->client = aws_client_new(&cfg);
    }
    assert_string_equal(aws_client_region(f->client), "eu-west-1");
    aws_client_free(f->client);
    unsetenv("AWS_REGION");
    {
        struct aws_client_config cfg = {.credentials = f->creds};

        f->client = aws_client_new(&cfg);
    }
    assert_string_equal(aws_client_region(f->client), "ap-south-1");
    aws_client_free(f->client);
    setenv("AWS_REGION", "eu-west-1", 1);
    unsetenv("AWS_DEFAULT_REGION");
    {
        struct aws_client_config cfg = {.credentials = f->creds};

        f->client = aws_client_new(&cfg);
    }
    assert_string_equal(aws_client_endpoint(f->client, "athena", &ps),
                        "https://athena.eu-west-1.amazonaws.com");
    assert_int_equal(ps, 0);
    assert_string_equal(aws_client_endpoint(f->client, "s3", &ps),
                        "https://s3.eu-west-1.amazonaws.com");
    assert_int_equal(ps, 0);
    aws_client_free(f->client);

    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", 1);
    setenv("AWS_ENDPOINT_URL_ATHENA", "http://127.0.0.1:9001", 1);
    {
        struct aws_client_config cfg = {.region = "us-west-2", .credentials = f->creds};

        f->client = aws_client_new(&cfg);
    }
    assert_string_equal(aws_client_endpoint(f->client, "athena", &ps), "http://127.0.0.1:9001");
    assert_int_equal(ps, 0);
    assert_string_equal(aws_client_endpoint(f->client, "s3", &ps), "http://127.0.0.1:9000");
    assert_int_equal(ps, 1);
    aws_client_free(f->client);
    setenv("AWS_ENDPOINT_URL_S3", "http://localhost:4569", 1);
    {
        struct aws_client_config cfg = {.region = "cn-north-1", .credentials = f->creds};

        f->client = aws_client_new(&cfg);
    }
    assert_string_equal(aws_client_endpoint(f->client, "s3", &ps), "http://localhost:4569");
    assert_int_equal(ps, 1);
    aws_client_free(f->client);
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
    {
        struct aws_client_config cfg = {.region = "cn-north-1", .credentials = f->creds};

        f->client = aws_client_new(&cfg);
    }
    assert_string_equal(aws_client_endpoint(f->client, "s3", &ps),
                        "https://s3.cn-north-1.amazonaws.com.cn");
    assert_int_equal(ps, 0);
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_ATHENA");
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("AWS_REGION");
    assert_string_equal(aws_client_endpoint(f->client, "glue", &ps),
                        "https://glue.cn-north-1.amazonaws.com.cn");
}

static void http_error_parsers(void **state)
{
    char *code, *msg;
    static const char xml2[] = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/\"><Error>"
                               "<Type>Sender</Type><Code>Throttling</Code><Message>Rate "
                               "exceeded</Message></Error></ErrorResponse>";

    (void)state;
    assert_int_equal(aws_error_parse_json("{\"__type\":\"a.b#C\"}", 18, &code, &msg), 0);
    assert_string_equal(code, "C");
    assert_null(msg);
    free(code);
    assert_int_equal(aws_error_parse_json("[1]", 3, &code, &msg), -1);
    assert_int_equal(aws_error_parse_json("{\"message\":\"x\"}", 15, &code, &msg), -1);
    assert_int_equal(aws_error_parse_xml(xml2, sizeof(xml2) - 1, &code, &msg), 0);
    assert_string_equal(code, "Throttling");
    assert_string_equal(msg, "Rate exceeded");
    free(code);
    free(msg);
    assert_int_equal(aws_error_parse_xml("<Error><Message>m</Message></Error>", 35, &code, &msg),
                     -1);
    assert_int_equal(aws_error_parse_xml("not xml", 7, &code, &msg), -1);
    assert_true(aws_error_retryable("SlowDown", 503));
    assert_true(aws_error_retryable(NULL, 502));
    assert_true(aws_error_retryable("ThrottlingException", 400));
    assert_false(aws_error_retryable("InvalidRequestException", 400));
    assert_false(aws_error_retryable("AccessDenied", 403));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(http_retries_500_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(http_retries_throttling, setup, teardown),
        cmocka_unit_test_setup_teardown(http_retries_exhausted_reports_last_error, setup, teardown),
        cmocka_unit_test_setup_teardown(http_nonretryable_json_returns_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(http_nonretryable_xml_returns_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(http_head_error_falls_back_to_status, setup, teardown),
        cmocka_unit_test_setup_teardown(http_error_type_header_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(http_network_error_retried_then_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(http_network_error_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(http_reuses_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(http_concurrent_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(http_timeout_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(http_signs_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(http_s3_content_sha256_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(http_streams_body_to_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(http_uploads_file_with_length, setup, teardown),
        cmocka_unit_test_setup_teardown(http_put_from_memory_without_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(http_endpoints_follow_the_sdks, setup, teardown),
        cmocka_unit_test(http_error_parsers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
