/*
 * http: the AWS HTTP client on libcurl: signs each attempt with SigV4 (fresh X-Amz-Date),
 * reuses connections (a small per-client pool of curl handles, one per concurrent caller),
 * applies connect and total timeouts with TLS verification on, and retries throttling
 * (ThrottlingException, TooManyRequestsException, SlowDown, 429, ...), 5xx, RequestTimeout and
 * network errors with capped exponential backoff and full jitter. A non-retryable error returns
 * at once with the service's error code and message parsed from the JSON (Athena) or XML (S3)
 * body; a bodiless error (HEAD) gets the HTTP status as its code, as botocore does ("404").
 *
 * Endpoints follow the SDKs: https://{service}.{region}.amazonaws.com by default (S3
 * virtual-hosted, path-style when the bucket name is not a plain DNS label, e.g. has dots),
 * overridden by AWS_ENDPOINT_URL_<SERVICE> then AWS_ENDPOINT_URL (a custom S3 endpoint uses
 * path-style addressing) unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true.
 */
#ifndef HCPIPE_AWS_HTTP_H
#define HCPIPE_AWS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/buf.h"
#include "aws/credentials.h"

struct aws_client_config {
    const char *region;      /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the profile's config-file
                                region (aws_profile_region()), else us-east-1 */
    long connect_timeout_ms; /* 0 = default 3000 */
    long total_timeout_ms;   /* per attempt, 0 = default 30000 */
    int max_attempts;        /* 0 = default 3 */
    long backoff_base_ms;    /* 0 = default 100; delay before retry n is rand[0, base*2^(n-1)] */
    long backoff_cap_ms;     /* 0 = default 20000 */
    time_t (*now)(void);     /* clock seam for signing; NULL = time() */
    struct aws_credentials_provider *credentials; /* borrowed; NULL = send unsigned */
};

struct aws_client;

/* A client for all services (config copied, region string too). Thread-safe: any number of
 * threads may perform requests at once. Returns NULL on ENOMEM. */
struct aws_client *aws_client_new(const struct aws_client_config *cfg);
void aws_client_free(struct aws_client *c);

/* The region the client signs for (borrowed, valid while the client lives). */
const char *aws_client_region(const struct aws_client *c);

/* The endpoint base URL for `service` ("s3", "athena", ...), without trailing slash, and
 * whether S3 must use path-style addressing (1 for a custom endpoint). For default S3 this is
 * https://s3.{region}.amazonaws.com with *path_style_out 0. Borrowed, valid while the client
 * lives. Returns NULL on ENOMEM. */
const char *aws_client_endpoint(struct aws_client *c, const char *service, int *path_style_out);

struct aws_header {
    const char *name;
    const char *value;
};

/* Where a response body goes: into `body` (capped buf), or, for a 2xx response, streamed to
 * `on_data` when set (return 0 to go on, non-zero to abort: the request then fails with code
 * "Aborted"). Once bytes were streamed, a network error is not retried. Error bodies always go
 * to `body`. */
struct aws_request {
    const char *service;              /* "s3", "athena": signing name; "s3" adds
                                         x-amz-content-sha256 */
    const char *method;               /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const char *url;                  /* full URL, path already URI-encoded as it must be signed */
    const struct aws_header *headers; /* extra headers to send and sign (X-Amz-Target,
                                         Content-Type, Range, ...); without a Content-Type none
                                         is sent */
    size_t n_headers;
    const void *body; /* request body in memory, or NULL */
    size_t body_len;
    const char *body_file; /* or a file to upload with Content-Length (PutObject); hash
                              computed from it */
    int unsigned_payload;  /* sign UNSIGNED-PAYLOAD (HTTPS streaming uploads) */
    int (*on_data)(void *ctx, const void *data, size_t len);
    void *on_data_ctx;
};

struct aws_response {
    long status;        /* HTTP status, 0 when no response */
    struct buf body;    /* body unless streamed (capped at 64 MiB) */
    struct buf headers; /* raw header block of the final response ("Name: value\r\n"...) */
    char *etag, *content_type, *request_id, *content_range, *last_modified;
    int64_t content_length; /* -1 when absent */
    char *error_code;       /* parsed service error code, NULL on success */
    char *error_message;    /* parsed service error message (may be NULL) */
    int attempts;           /* attempts made */
};

/* Performs the request with signing and retries. Returns 0 when a 2xx response arrived, or -1
 * with resp->status / error_code / error_message describing the final failure: status 0 with
 * code "NetworkError" when no response came, "Aborted" when on_data stopped it,
 * "CredentialsError" when no credentials could be had, "InvalidRequest" for a bad URL, an
 * unreadable body_file or a header that cannot be sent (CR/LF in it, ':' or spaces in a name).
 * *resp is overwritten (no need to initialise it); free it with aws_response_free() in every
 * case. */
int aws_request_perform(struct aws_client *c, const struct aws_request *req,
                        struct aws_response *resp);

void aws_response_free(struct aws_response *resp);

/* The value of response header `name` (case-insensitive, trimmed) as a new string (caller
 * frees), or NULL when absent. */
char *aws_response_header(const struct aws_response *resp, const char *name);

/* 1 when an error code / HTTP status is retryable under the SDKs' standard mode (throttling
 * codes, RequestTimeout, PriorRequestNotComplete, 429, 500, 502, 503, 504). */
int aws_error_retryable(const char *code, long status);

/* Parses a JSON 1.1 error body ({"__type": "ns#Code:extra", "message"|"Message": ...}) into new
 * strings (caller frees; message may come back NULL). Returns 0, or -1 when the body is not such
 * an object. */
int aws_error_parse_json(const char *body, size_t len, char **code_out, char **message_out);

/* Parses an XML error body (<Error><Code/><Message/></Error>, also nested as in
 * <ErrorResponse><Error>...) with expat into new strings (caller frees; message may be NULL).
 * Returns 0, or -1 when the body is not XML or has no Code. */
int aws_error_parse_xml(const char *body, size_t len, char **code_out, char **message_out);

#endif
