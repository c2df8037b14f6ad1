/*
 * http: the AWS HTTP client on libcurl: signs each attempt with SigV4 (fresh X-Amz-Date),
 * reuses connections (one curl handle per thread), applies connect and total timeouts with TLS
 * verification on, and retries throttling (ThrottlingException, TooManyRequestsException,
 * SlowDown, 429, ...), 5xx and network errors with capped exponential backoff and full jitter.
 * A non-retryable error returns at once with the service's error code and message parsed from
 * the JSON (Athena) or XML (S3) body.
 *
 * Endpoints follow the SDKs: https://{service}.{region}.amazonaws.com by default (S3
 * virtual-hosted), overridden by AWS_ENDPOINT_URL_<SERVICE> then AWS_ENDPOINT_URL (a custom S3
 * endpoint uses path-style addressing).
 */
#ifndef HCPIPE_AWS_HTTP_H
#define HCPIPE_AWS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/buf.h"
#include "aws/credentials.h"

struct aws_client_config {
    const char *region;              /* AWS_REGION or AWS_DEFAULT_REGION; default us-east-1 */
    long connect_timeout_ms;         /* default 3000 */
    long total_timeout_ms;           /* per attempt, default 30000 */
    int max_attempts;                /* default 3 */
    long backoff_base_ms;            /* default 100 */
    long backoff_cap_ms;             /* default 20000 */
    time_t (*now)(void);             /* clock seam for signing; NULL = time() */
    struct aws_credentials_provider *credentials; /* borrowed */
};

struct aws_client;

/* A client for all services (config copied). Returns NULL on ENOMEM. */
struct aws_client *aws_client_new(const struct aws_client_config *cfg);
void aws_client_free(struct aws_client *c);

/* The endpoint base URL for `service` ("s3", "athena", ...), without trailing slash, and
 * whether S3 must use path-style addressing. Borrowed, valid while the client lives. */
const char *aws_client_endpoint(struct aws_client *c, const char *service, int *path_style_out);

struct aws_header {
    const char *name;
    const char *value;
};

/* Where a response body goes: into `body` (capped buf), or streamed to `on_data` when set
 * (return 0 to go on, non-zero to abort). */
struct aws_request {
    const char *service;             /* "s3", "athena" */
    const char *method;
    const char *url;                 /* full URL, path already URI-encoded as it must be signed */
    const struct aws_header *headers;/* extra headers to send and sign (e.g. X-Amz-Target) */
    size_t n_headers;
    const void *body;                /* request body in memory, or NULL */
    size_t body_len;
    const char *body_file;           /* or a file to upload (PutObject); hash computed from it */
    int unsigned_payload;            /* sign UNSIGNED-PAYLOAD (HTTPS streaming uploads) */
    int (*on_data)(void *ctx, const void *data, size_t len);
    void *on_data_ctx;
};

struct aws_response {
    long status;                     /* HTTP status, 0 when no response */
    struct buf body;                 /* body unless streamed (capped at 64 MiB) */
    char *etag, *content_type, *request_id, *content_range, *last_modified;
    int64_t content_length;          /* -1 when absent */
    char *error_code;                /* parsed service error code, NULL on success */
    char *error_message;             /* parsed service error message */
    int attempts;                    /* attempts made */
};

/* Performs the request with signing and retries. Returns 0 when a 2xx response arrived, or -1
 * with resp->status / error_code / error_message describing the final failure (status 0 and code
 * "NetworkError" when no response came). Free with aws_response_free(). */
int aws_request_perform(struct aws_client *c, const struct aws_request *req,
                        struct aws_response *resp);

void aws_response_free(struct aws_response *resp);

/* 1 when an error code / HTTP status is retryable under the SDKs' standard mode. */
int aws_error_retryable(const char *code, long status);

#endif
