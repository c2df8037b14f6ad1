/*
 * sigv4: AWS Signature Version 4 for request headers, for any service.
 *
 * The caller describes a request (method, path as sent on the wire, query string, headers,
 * payload hash); sigv4_sign() computes the canonical request, the string to sign and the
 * signature, and returns the Authorization header (plus the X-Amz-Date / X-Amz-Security-Token /
 * x-amz-content-sha256 headers the caller must send). S3 mode (`service` "s3") does not normalise
 * the path and encodes each segment once; other services normalise and encode twice, as AWS's
 * suite expects. Signing keys are derived once per (secret, date, region, service) and cached.
 */
#ifndef HCPIPE_SIGV4_H
#define HCPIPE_SIGV4_H

#include <stddef.h>
#include <time.h>

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

struct sigv4_header {
    const char *name;   /* as sent; compared case-insensitively */
    const char *value;  /* as sent; trimmed and inner runs of spaces folded when signing */
};

struct sigv4_request {
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* path as on the wire (already URI-encoded), e.g. "/b/k%20x" */
    const char *query;             /* raw query string without '?', or NULL */
    const struct sigv4_header *headers; /* must include Host; a header may repeat */
    size_t n_headers;
    const char *payload_hash;      /* lowercase hex sha256 of the body, or SIGV4_UNSIGNED_PAYLOAD;
                                      NULL = hash of `payload` */
    const void *payload;           /* body bytes when payload_hash is NULL */
    size_t payload_len;
    const char *region;            /* e.g. "us-east-1" */
    const char *service;           /* e.g. "athena", "s3" */
    time_t when;                   /* signing time (UTC); tests pin it */
    const char *access_key;        /* borrowed; never logged */
    const char *secret_key;        /* borrowed; never logged */
    const char *session_token;     /* NULL for long-term credentials */
    int sign_content_sha256;       /* 1: add and sign x-amz-content-sha256 (S3) */
};

struct sigv4_result {
    char *authorization;     /* full Authorization header value */
    char amz_date[17];       /* X-Amz-Date value, e.g. 20150830T123600Z */
    char payload_hash[65];   /* the payload hash used (for x-amz-content-sha256) */
    char *canonical_request; /* for tests and debugging */
    char *string_to_sign;    /* for tests and debugging */
    char signature[65];      /* lowercase hex */
};

/* Signs `req`. Returns 0 and fills *out (free with sigv4_result_free()), or -1 on bad input
 * or ENOMEM. The headers to add to the request are: Authorization, X-Amz-Date, and, when set,
 * X-Amz-Security-Token and x-amz-content-sha256 (out->payload_hash). */
int sigv4_sign(const struct sigv4_request *req, struct sigv4_result *out);

void sigv4_result_free(struct sigv4_result *r);

/* URI-encodes `len` bytes of `s` (unreserved A-Za-z0-9-_.~ kept; '/' kept when keep_slash)
 * into a new malloc'ed string, or NULL on ENOMEM. */
char *sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* Lowercase hex SHA-256 of data into out (65 bytes). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
