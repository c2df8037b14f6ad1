/*
 * s3: the S3 REST client (GetObject, HeadObject, PutObject, ListObjectsV2, DeleteObject) on top
 * of aws/http.h, plus the pure parsers of S3's XML bodies (ListObjectsV2 result, Error).
 *
 * Keys are raw bytes (UTF-8 in practice). On the wire and in the signature each key byte other
 * than the unreserved A-Za-z0-9-_.~ and '/' is written as %XX exactly once, so keys with spaces,
 * '+', '%', '*', parentheses, unicode and '/' round-trip. ListObjectsV2 asks for
 * `encoding-type=url` (as botocore does) and, when the response says EncodingType=url, decodes
 * Key/Prefix/StartAfter/Delimiter the way botocore does (unquote_plus: '+' is a space, %XX a
 * byte). Every function returns 0 on success or -1 with *err filled (err may be NULL).
 */
#ifndef HCPIPE_S3_H
#define HCPIPE_S3_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/http.h"

/* Why a call failed. */
struct s3_error {
    long status;       /* HTTP status, 0 when no response came */
    char code[64];     /* S3 code, e.g. "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch";
                          "NotFound"/"Forbidden"/"HTTP<status>" when the body had none (HEAD);
                          "NetworkError" without a response; "InvalidArgument" for bad input;
                          "ClientError" for local failures (ENOMEM, callback abort, bad XML) */
    char message[512]; /* the service's message or a local explanation */
};

/* Metadata of one object (HeadObject, GetObject, PutObject). */
struct s3_object_info {
    int64_t size;           /* Content-Length of the response (GetObject: of the part sent);
                               -1 when unknown */
    char etag[136];         /* ETag as sent, with its quotes; "" when absent */
    char last_modified[64]; /* Last-Modified as sent (RFC 7231 date); "" when absent */
    time_t last_modified_t; /* the same as epoch seconds, 0 when absent or unparsable */
    char content_range[96]; /* GetObject with Range: "bytes 0-6/123"; "" otherwise */
    char content_type[128]; /* Content-Type; "" when absent */
};

/* One ListObjectsV2 entry. Strings are owned by the page (or, in callbacks, borrowed for the
 * duration of the call). */
struct s3_entry {
    char *key;           /* decoded key */
    int64_t size;        /* Size, -1 when absent */
    char *etag;          /* ETag with its quotes, "" when absent */
    char *last_modified; /* ISO 8601 as sent, e.g. 2015-08-30T12:36:00.000Z; "" when absent */
};

/* One parsed ListObjectsV2 page. Free with s3_list_page_free(). */
struct s3_list_page {
    struct s3_entry *entries;
    size_t n_entries;
    char **common_prefixes; /* decoded CommonPrefixes/Prefix values */
    size_t n_common_prefixes;
    int is_truncated;              /* IsTruncated was "true" */
    char *next_continuation_token; /* NULL when absent */
    int url_encoded;               /* EncodingType was "url" (and keys were decoded) */
};

/* Parses a ListObjectsV2 XML body (pure: bytes in, entries out; no network). Returns 0, or -1
 * with a reason in err (malformed XML, a DOCTYPE, a root other than ListBucketResult, ENOMEM);
 * on -1 *out is left empty. */
int s3_parse_list_xml(const char *xml, size_t len, struct s3_list_page *out, char *err,
                      size_t errlen);

/* Frees the page's contents and leaves it empty. */
void s3_list_page_free(struct s3_list_page *p);

/* Parses an S3 <Error> XML body into code and message (each NUL-terminated, truncated to fit).
 * Returns 0 when a Code was found, -1 otherwise (then both are ""). */
int s3_parse_error_xml(const char *xml, size_t len, char *code, size_t codelen, char *message,
                       size_t messagelen);

/* Decodes botocore-style (unquote_plus): '+' becomes ' ', %XX becomes a byte, other bytes and
 * malformed escapes are copied. Returns a new string (caller frees) or NULL on ENOMEM. */
char *s3_url_decode(const char *s, size_t len);

/* Builds the URL of bucket/key (key NULL: the bucket itself) on `endpoint` ("scheme://host[:port]"
 * without trailing slash), path style or virtual-hosted (forced to path style when the bucket has
 * characters other than [a-z0-9-], e.g. a '.'), with the key encoded once and `query` (already
 * canonical, may be NULL) appended. Returns a new string (caller frees) or NULL on ENOMEM / bad
 * endpoint. */
char *s3_build_url(const char *endpoint, int path_style, const char *bucket, const char *key,
                   const char *query);

/* GetObject options; all members optional (zero = unset). */
struct s3_get_options {
    const char *range;    /* Range header value, e.g. "bytes=0-6" or "bytes=100-" */
    const char *if_match; /* If-Match value (an ETag with its quotes) */
};

/* Streams the object to on_data (return 0 to go on, non-zero to abort: then code "ClientError")
 * without holding it in memory; error bodies are never streamed. info_out (optional) receives
 * the response metadata. A satisfied range gives 206 and info_out->content_range (a server that
 * ignores Range sends the whole object with an empty content_range); a failed If-Match gives 412
 * "PreconditionFailed"; an unsatisfiable range 416 "InvalidRange". */
int s3_get_object(struct aws_client *c, const char *bucket, const char *key,
                  const struct s3_get_options *opt,
                  int (*on_data)(void *ctx, const void *data, size_t len), void *ctx,
                  struct s3_object_info *info_out, struct s3_error *err);

/* HeadObject: size, ETag, Last-Modified, Content-Type into *info_out. A missing key gives 404
 * with code "NotFound" (HEAD responses have no body). */
int s3_head_object(struct aws_client *c, const char *bucket, const char *key,
                   struct s3_object_info *info_out, struct s3_error *err);

/* PutObject from memory. content_type NULL = "application/octet-stream". info_out (optional)
 * receives the ETag. */
int s3_put_object(struct aws_client *c, const char *bucket, const char *key, const void *data,
                  size_t len, const char *content_type, struct s3_object_info *info_out,
                  struct s3_error *err);

/* PutObject streamed from a file (sent with a Content-Length, never chunked). */
int s3_put_object_file(struct aws_client *c, const char *bucket, const char *key, const char *path,
                       const char *content_type, struct s3_object_info *info_out,
                       struct s3_error *err);

/* DeleteObject. S3 answers 204 whether or not the key existed. */
int s3_delete_object(struct aws_client *c, const char *bucket, const char *key,
                     struct s3_error *err);

/* ListObjectsV2 options; all members optional (zero = unset). */
struct s3_list_options {
    const char *prefix;
    const char *delimiter;
    const char *start_after;
    int max_keys; /* 1..1000; 0 = the service default (1000) */
};

/* Fetches one ListObjectsV2 page, continuing from `continuation_token` (NULL for the first).
 * Fills *page_out (free with s3_list_page_free()). */
int s3_list_objects_page(struct aws_client *c, const char *bucket,
                         const struct s3_list_options *opt, const char *continuation_token,
                         struct s3_list_page *page_out, struct s3_error *err);

/* Lists every object under the options, following continuation tokens, calling on_entry for each
 * (entries borrowed for the call; return non-zero to stop early, which is not an error). */
int s3_list_objects(struct aws_client *c, const char *bucket, const struct s3_list_options *opt,
                    int (*on_entry)(void *ctx, const struct s3_entry *e), void *ctx,
                    struct s3_error *err);

#endif
