/*
 * sigv4: AWS Signature Version 4 for request headers, for any service.
 *
 * The caller describes a request (method, path as sent on the wire, query string, headers,
 * payload hash); sigv4_sign() computes the canonical request, the string to sign and the
 * signature, and returns the Authorization header (plus the X-Amz-Date / X-Amz-Security-Token /
 * x-amz-content-sha256 headers the caller must send).
 *
 * Canonical URI: for services other than S3 the wire path has its dot segments removed and
 * repeated '/' collapsed (unless path_mode says otherwise) and is then URI-encoded as a whole,
 * so an escape on the wire is encoded a second time ("%20" -> "%2520"), as botocore and AWS's
 * suite do. S3 (`service` "s3") never normalises and never encodes twice: the wire path is
 * already encoded once; bytes it left unencoded are encoded and its %XX escapes kept.
 *
 * Signed headers: every header given, except hop-by-hop ones (authorization, connection,
 * expect, keep-alive, proxy-authenticate, proxy-authorization, te, trailer, transfer-encoding,
 * upgrade, user-agent, x-amzn-trace-id), plus x-amz-date, x-amz-security-token (unless
 * omit_session_token) and x-amz-content-sha256 (when sign_content_sha256). A caller-supplied
 * X-Amz-Date is always dropped in favour of the signer's; a caller-supplied
 * X-Amz-Security-Token is dropped when session_token is set, and x-amz-content-sha256 when
 * sign_content_sha256 is set. Repeated header names are joined with ',' in the order given.
 *
 * Signing keys are derived once per (secret, date, region, service) and kept in a small cache
 * guarded by a mutex (only a SHA-256 of the secret is kept there, never the secret; evicted
 * keys are wiped). Every intermediate secret is wiped with OPENSSL_cleanse().
 */
#ifndef HCPIPE_SIGV4_H
#define HCPIPE_SIGV4_H

#include <stddef.h>
#include <time.h>

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* How the canonical URI treats `.`/`..` segments and repeated '/'. */
enum sigv4_path_mode {
    SIGV4_PATH_AUTO = 0,  /* normalise for every service but S3 (the default) */
    SIGV4_PATH_NORMALIZE, /* always normalise (ignored for S3, which never normalises) */
    SIGV4_PATH_KEEP,      /* never normalise (the suite's "normalize": false) */
};

struct sigv4_header {
    const char *name;  /* as sent; compared case-insensitively */
    const char *value; /* as sent; trimmed and inner runs of whitespace folded when signing */
};

struct sigv4_request {
    const char *method;                 /* "GET", "POST", ... */
    const char *path;                   /* path as on the wire (already URI-encoded), e.g.
                                           "/b/k%20x"; NULL or "" means "/" */
    const char *query;                  /* raw query string without '?', or NULL */
    const struct sigv4_header *headers; /* must include Host; a header may repeat */
    size_t n_headers;
    const char *payload_hash; /* lowercase hex sha256 of the body, or SIGV4_UNSIGNED_PAYLOAD;
                                 NULL = hash of `payload` */
    const void *payload;      /* body bytes when payload_hash is NULL */
    size_t payload_len;
    const char *region;             /* e.g. "us-east-1" */
    const char *service;            /* e.g. "athena", "s3" */
    time_t when;                    /* signing time (UTC); tests pin it */
    const char *access_key;         /* borrowed; never logged */
    const char *secret_key;         /* borrowed; never logged */
    const char *session_token;      /* NULL for long-term credentials */
    int omit_session_token;         /* 1: the token is sent but not signed (the suite's
                                       post-sts-header-after); 0: signed (what AWS expects) */
    int sign_content_sha256;        /* 1: add and sign x-amz-content-sha256 (S3) */
    enum sigv4_path_mode path_mode; /* 0 (SIGV4_PATH_AUTO) unless a test says otherwise */
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
 * (missing method/Host/credentials/region/service, a header name with spaces or control
 * characters, a time outside years 0..9999, a payload hash longer than 64 bytes) or ENOMEM; on
 * -1 *out holds nothing to free. The headers to add to the request are: Authorization,
 * X-Amz-Date, and, when set, X-Amz-Security-Token and x-amz-content-sha256 (out->payload_hash). */
int sigv4_sign(const struct sigv4_request *req, struct sigv4_result *out);

/* Frees what sigv4_sign() allocated in *r; safe on a zeroed or already freed result. */
void sigv4_result_free(struct sigv4_result *r);

/* URI-encodes `len` bytes of `s` (unreserved A-Za-z0-9-_.~ kept; '/' kept when keep_slash)
 * into a new malloc'ed string (caller frees), or NULL on ENOMEM. */
char *sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* Lowercase hex SHA-256 of data into out (65 bytes). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* The signing key for (secret, datestamp "YYYYMMDD", region, service) into key_out, from the
 * cache or derived and cached. Returns 1 on a cache hit, 0 when it was derived, -1 on error. */
int sigv4_signing_key(const char *secret, const char *datestamp, const char *region,
                      const char *service, unsigned char key_out[32]);

/* Wipes and empties the signing-key cache (tests; on shutdown). */
void sigv4_cache_clear(void);

#endif
