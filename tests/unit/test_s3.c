/*
 * Unit and peer tests of aws/s3.c.
 *
 * Group "s3_pure" always runs: URL building and key encoding (checked against what the AWS CLI
 * sent, /work/shared/testdata/aws-captures), the ListObjectsV2 and Error XML parsers, and the
 * botocore-style key decoding.
 *
 * Group "s3_peer" runs only when HCPIPE_TEST_S3_ENDPOINT names a running S3 peer (moto_server,
 * s3rver); tests/integration/test_aws_s3.py starts the peers and sets:
 *   HCPIPE_TEST_S3_ENDPOINT   http://127.0.0.1:PORT
 *   HCPIPE_TEST_S3_BUCKET     an existing, writable bucket
 *   HCPIPE_TEST_ACCESS_KEY / HCPIPE_TEST_SECRET_KEY
 *   HCPIPE_TEST_S3_KEYS       optional: keys to use, one per line (default: an awkward set)
 *   HCPIPE_TEST_S3_MODE       "full" (default): every operation on every key, cleaning up;
 *                             "put": put every key (content = expected_content(key)) and leave
 *                             them for another client to read; "verify": read every key (put by
 *                             another client) and check its content, size, ETag and listing
 *   HCPIPE_TEST_S3_AUTH       "1": the peer checks signatures (wrong secret must give
 *                             SignatureDoesNotMatch)
 *   HCPIPE_TEST_S3_PAGING_PREFIX  prefix of the paging test (default "paging/")
 *   HCPIPE_TEST_S3_NO_IF_MATCH    set when the peer ignores If-Match (s3rver)
 *   HCPIPE_TEST_S3_DENIED_ACCESS_KEY / _SECRET_KEY: keys of a user without s3:PutObject
 *                             (a put must give AccessDenied)
 * The content of key k is "hcpipe:" k "\n" repeated until at least 3000 bytes (the Python tests
 * build the same bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/s3.h"

/* ---- pure tests ---------------------------------------------------------------------------- */

static const char capture_key[] = "facilities/site A+B/\xc3\xbcn\xc3\xaf (1)~*.json";

static void s3_url_encodes_key_like_the_cli(void **state)
{
    char *url;

    (void)state;
    url = s3_build_url("http://127.0.0.1:18111", 1, "example-bucket", capture_key, NULL);
    assert_non_null(url);
    /* The request line of s3-put-object-encoded-key/request.http. */
    assert_string_equal(url, "http://127.0.0.1:18111/example-bucket/facilities/site%20A%2BB/"
                             "%C3%BCn%C3%AF%20%281%29~%2A.json");
    free(url);
    url = s3_build_url("http://h:1", 1, "b", "100%/x+y z", NULL);
    assert_string_equal(url, "http://h:1/b/100%25/x%2By%20z");
    free(url);
}

static void s3_url_bucket_and_query(void **state)
{
    char *url;

    (void)state;
    /* s3-list-objects-v2: path /example-bucket, no trailing slash. */
    url = s3_build_url("http://127.0.0.1:18111", 1, "example-bucket", NULL,
                       "encoding-type=url&list-type=2");
    assert_string_equal(url, "http://127.0.0.1:18111/example-bucket?encoding-type=url&list-type=2");
    free(url);
    url = s3_build_url("https://s3.eu-west-1.amazonaws.com", 0, "bkt", "a/b", NULL);
    assert_string_equal(url, "https://bkt.s3.eu-west-1.amazonaws.com/a/b");
    free(url);
    /* A dotted bucket is forced to path style. */
    url = s3_build_url("https://s3.eu-west-1.amazonaws.com", 0, "a.b", "k", "x=1");
    assert_string_equal(url, "https://s3.eu-west-1.amazonaws.com/a.b/k?x=1");
    free(url);
    /* So is any bucket that is not a plain DNS label (legacy upper case, '_'). */
    url = s3_build_url("https://s3.eu-west-1.amazonaws.com", 0, "Old_Bucket", "k", NULL);
    assert_string_equal(url, "https://s3.eu-west-1.amazonaws.com/Old_Bucket/k");
    free(url);
    url = s3_build_url("https://s3.eu-west-1.amazonaws.com", 0, "b", NULL, "list-type=2");
    assert_string_equal(url, "https://b.s3.eu-west-1.amazonaws.com/?list-type=2");
    free(url);
    assert_null(s3_build_url("no-scheme", 1, "b", "k", NULL));
    assert_null(s3_build_url("http://h", 1, "", "k", NULL));
}

static void s3_url_decode_matches_unquote_plus(void **state)
{
    char *s;

    (void)state;
    s = s3_url_decode("site+A%2BB/%C3%BCn%20%2a%zz%4", strlen("site+A%2BB/%C3%BCn%20%2a%zz%4"));
    assert_string_equal(s, "site A+B/\xc3\xbcn *%zz%4");
    free(s);
}

static const char list_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>example-bucket</Name><Prefix>facilities%2F</Prefix><KeyCount>2</KeyCount>"
    "<MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<Contents><Key>facilities/site+A%2BB/%C3%BCn%C3%AF+%281%29~%2A.json</Key>"
    "<LastModified>2015-08-30T12:36:00.000Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>123</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>facilities/b%26c.json</Key><LastModified>2016-01-01T00:00:00.000Z</"
    "LastModified>"
    "<ETag>\"abc-2\"</ETag><Size>0</Size><Owner><ID>x</ID></Owner></Contents>"
    "<CommonPrefixes><Prefix>facilities/2024%2B/</Prefix></CommonPrefixes>"
    "</ListBucketResult>";

static void s3_list_xml_parses_and_decodes(void **state)
{
    struct s3_list_page p;
    char err[200];

    (void)state;
    assert_int_equal(s3_parse_list_xml(list_xml, strlen(list_xml), &p, err, sizeof(err)), 0);
    assert_int_equal(p.n_entries, 2);
    assert_true(p.url_encoded);
    assert_true(p.is_truncated);
    assert_string_equal(p.next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    assert_string_equal(p.entries[0].key, capture_key);
    assert_string_equal(p.entries[0].etag, "\"9b2cf535f27731c974343645a3985328\"");
    assert_string_equal(p.entries[0].last_modified, "2015-08-30T12:36:00.000Z");
    assert_int_equal(p.entries[0].size, 123);
    assert_string_equal(p.entries[1].key, "facilities/b&c.json");
    assert_int_equal(p.entries[1].size, 0);
    assert_string_equal(p.entries[1].etag, "\"abc-2\"");
    assert_int_equal(p.n_common_prefixes, 1);
    assert_string_equal(p.common_prefixes[0], "facilities/2024+/");
    s3_list_page_free(&p);
    assert_null(p.entries);
}

static void s3_list_xml_raw_keys_without_encoding_type(void **state)
{
    static const char xml[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                              "<Contents><Key>a+b%20c &amp; &#xfc;</Key><Size>7</Size></Contents>"
                              "</ListBucketResult>";
    struct s3_list_page p;
    char err[200];

    (void)state;
    assert_int_equal(s3_parse_list_xml(xml, strlen(xml), &p, err, sizeof(err)), 0);
    assert_false(p.url_encoded);
    assert_false(p.is_truncated);
    assert_null(p.next_continuation_token);
    assert_int_equal(p.n_entries, 1);
    assert_string_equal(p.entries[0].key, "a+b%20c & \xc3\xbc");
    assert_string_equal(p.entries[0].etag, "");
    assert_int_equal(p.entries[0].size, 7);
    s3_list_page_free(&p);
}

static void s3_list_xml_rejects_bad_input(void **state)
{
    static const char *bad[] = {
        "",
        "<ListBucketResult><Contents><Key>a</Key></Contents>",
        "<Error><Code>NoSuchBucket</Code></Error>",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><ListBucketResult>&a;"
        "</ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult><x/>",
    };
    struct s3_list_page p;
    char err[200];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(s3_parse_list_xml(bad[i], strlen(bad[i]), &p, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        assert_null(p.entries);
        assert_int_equal(p.n_entries, 0);
    }
}

static void s3_error_xml_parses_code_and_message(void **state)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
        "<Message>The specified key does not exist.</Message><Key>nosuch.json</Key>"
        "<RequestId>4442587FB7D0A2F9</RequestId></Error>";
    char code[64], msg[128];

    (void)state;
    assert_int_equal(s3_parse_error_xml(xml, strlen(xml), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "NoSuchKey");
    assert_string_equal(msg, "The specified key does not exist.");
    assert_int_equal(s3_parse_error_xml("<Error><Message>x</Message></Error>", 34, code,
                                        sizeof(code), msg, sizeof(msg)),
                     -1);
    assert_string_equal(code, "");
    assert_int_equal(s3_parse_error_xml("not xml", 7, code, sizeof(code), msg, sizeof(msg)), -1);
}

/* ---- peer tests ------------------------------------------------------------------------------ */

static const char *const default_keys[] = {
    "plain.json",
    "dir/sub dir/with space.json",
    "plus+sign.json",
    "per%cent.json",
    "uni/\xc3\xbcn\xc3\xaf \xe2\x82\xac.json",
    "tilde~star*(paren).json",
    "facilities/site A+B/\xc3\xbcn\xc3\xaf (1)~*.json",
    "double//slash.json",
};

struct peer {
    struct aws_credentials_provider *creds;
    struct aws_client *client;
    const char *bucket;
    char **keys;
    size_t n_keys;
};

static struct peer P;

/* Asserts that a call returned 0, printing the S3 error first when it did not. */
#define assert_s3_ok(call, err)                                                                    \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            print_error("%s -> %ld %s: %s\n", #call, (err)->status, (err)->code, (err)->message);  \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)

static char *expected_content(const char *key, size_t *len_out)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    while (b.len < 3000 && !b.failed)
        buf_printf(&b, "hcpipe:%s\n", key);
    return buf_steal(&b, len_out);
}

static struct aws_client *new_client(struct aws_credentials_provider **creds_out)
{
    struct aws_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.region = "us-east-1";
    cfg.max_attempts = 2;
    cfg.backoff_base_ms = 10;
    *creds_out = aws_credentials_provider_new();
    cfg.credentials = *creds_out;
    return aws_client_new(&cfg);
}

static int peer_setup(void **state)
{
    const char *keys = getenv("HCPIPE_TEST_S3_KEYS");

    (void)state;
    setenv("AWS_ENDPOINT_URL_S3", getenv("HCPIPE_TEST_S3_ENDPOINT"), 1);
    setenv("AWS_ACCESS_KEY_ID", getenv("HCPIPE_TEST_ACCESS_KEY"), 1);
    setenv("AWS_SECRET_ACCESS_KEY", getenv("HCPIPE_TEST_SECRET_KEY"), 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    P.bucket = getenv("HCPIPE_TEST_S3_BUCKET");
    P.client = new_client(&P.creds);
    if (!P.client || !P.bucket)
        return -1;
    if (keys && *keys) {
        char *copy = strdup(keys), *save = NULL;
        for (char *k = strtok_r(copy, "\n", &save); k; k = strtok_r(NULL, "\n", &save)) {
            P.keys = realloc(P.keys, (P.n_keys + 1) * sizeof(*P.keys));
            P.keys[P.n_keys++] = strdup(k);
        }
        free(copy);
    } else {
        for (size_t i = 0; i < sizeof(default_keys) / sizeof(default_keys[0]); i++) {
            P.keys = realloc(P.keys, (P.n_keys + 1) * sizeof(*P.keys));
            P.keys[P.n_keys++] = strdup(default_keys[i]);
        }
    }
    return 0;
}

static int peer_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < P.n_keys; i++)
        free(P.keys[i]);
    free(P.keys);
    aws_client_free(P.client);
    aws_credentials_provider_free(P.creds);
    memset(&P, 0, sizeof(P));
    return 0;
}

/* Collects streamed bytes, remembering the largest chunk seen. */
struct sink {
    struct buf b;
    size_t chunks;
    int abort_after; /* abort when this many chunks arrived (0 = never) */
};

static int sink_data(void *ctx, const void *data, size_t len)
{
    struct sink *s = ctx;

    s->chunks++;
    if (buf_append(&s->b, data, len) != 0)
        return 1;
    return s->abort_after && (int)s->chunks >= s->abort_after;
}

static int get_all(const char *key, const struct s3_get_options *opt, struct sink *s,
                   struct s3_object_info *info, struct s3_error *err)
{
    memset(s, 0, sizeof(*s));
    buf_init(&s->b, 16 << 20);
    return s3_get_object(P.client, P.bucket, key, opt, sink_data, s, info, err);
}

struct found {
    const char *key;
    int hits;
    struct s3_entry copy;
    char etag[136];
    int64_t size;
    size_t total;
};

static int find_entry(void *ctx, const struct s3_entry *e)
{
    struct found *f = ctx;

    f->total++;
    if (strcmp(e->key, f->key) == 0) {
        f->hits++;
        f->size = e->size;
        snprintf(f->etag, sizeof(f->etag), "%s", e->etag);
    }
    return 0;
}

/* Lists with the key itself as prefix and checks the entry. */
static void assert_listed(const char *key, int64_t size, const char *etag)
{
    struct s3_list_options lo = {.prefix = key};
    struct found f = {.key = key};
    struct s3_error err;

    assert_s3_ok(s3_list_objects(P.client, P.bucket, &lo, find_entry, &f, &err), &err);
    assert_int_equal(f.hits, 1);
    assert_int_equal(f.size, size);
    assert_string_equal(f.etag, etag);
}

static void s3_peer_roundtrip_awkward_keys(void **state)
{
    (void)state;
    for (size_t i = 0; i < P.n_keys; i++) {
        const char *key = P.keys[i];
        struct s3_object_info put, head, got;
        struct s3_get_options ro = {.range = "bytes=7-16"};
        struct s3_get_options bad_match = {.if_match = "\"00000000000000000000000000000000\""};
        struct s3_error err;
        struct sink s;
        size_t len;
        char *content = expected_content(key, &len);

        print_message("key %s\n", key);
        assert_s3_ok(
            s3_put_object(P.client, P.bucket, key, content, len, "application/json", &put, &err),
            &err);
        assert_true(put.etag[0] == '"');
        assert_s3_ok(s3_head_object(P.client, P.bucket, key, &head, &err), &err);
        assert_int_equal(head.size, (int64_t)len);
        assert_string_equal(head.etag, put.etag);
        assert_true(head.last_modified_t > 1600000000);

        assert_s3_ok(get_all(key, NULL, &s, &got, &err), &err);
        assert_int_equal(s.b.len, len);
        assert_memory_equal(s.b.data, content, len);
        assert_string_equal(got.etag, put.etag);
        buf_free(&s.b);

        /* Range, with If-Match on the current ETag. */
        ro.if_match = put.etag;
        assert_s3_ok(get_all(key, &ro, &s, &got, &err), &err);
        assert_int_equal(s.b.len, 10);
        assert_memory_equal(s.b.data, content + 7, 10);
        assert_true(strncmp(got.content_range, "bytes 7-16/", 11) == 0);
        buf_free(&s.b);

        /* If-Match on another ETag fails with 412 and streams nothing (s3rver ignores
         * If-Match; its test run sets HCPIPE_TEST_S3_NO_IF_MATCH). */
        if (!getenv("HCPIPE_TEST_S3_NO_IF_MATCH")) {
            assert_int_equal(get_all(key, &bad_match, &s, &got, &err), -1);
            assert_int_equal(err.status, 412);
            assert_int_equal(s.b.len, 0);
            buf_free(&s.b);
        }

        /* A range past the end: 416 InvalidRange, nothing streamed. */
        {
            struct s3_get_options past = {.range = "bytes=999999-"};
            assert_int_equal(get_all(key, &past, &s, &got, &err), -1);
            assert_int_equal(err.status, 416);
            assert_string_equal(err.code, "InvalidRange");
            assert_int_equal(s.b.len, 0);
            buf_free(&s.b);
        }

        assert_listed(key, (int64_t)len, put.etag);

        assert_s3_ok(s3_delete_object(P.client, P.bucket, key, &err), &err);
        assert_int_equal(s3_head_object(P.client, P.bucket, key, &head, &err), -1);
        assert_int_equal(err.status, 404);
        assert_string_equal(err.code, "NotFound");
        free(content);
    }
}

static void s3_peer_put_from_file_and_abort_stream(void **state)
{
    char path[] = "/tmp/hcpipe-test-s3-XXXXXX";
    const char *key = "from file/big object.bin";
    size_t len = 3 << 20; /* 3 MiB: several chunks on the wire */
    unsigned char *data = malloc(len);
    struct s3_object_info info;
    struct s3_error err;
    struct sink s;
    int fd;

    (void)state;
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)((i * 131) ^ (i >> 9));
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    assert_s3_ok(s3_put_object_file(P.client, P.bucket, key, path, NULL, &info, &err), &err);
    assert_s3_ok(get_all(key, NULL, &s, &info, &err), &err);
    assert_int_equal(s.b.len, len);
    assert_memory_equal(s.b.data, data, len);
    assert_true(s.chunks > 1); /* streamed, not delivered in one piece */
    buf_free(&s.b);

    /* A callback that stops early aborts the transfer. */
    memset(&s, 0, sizeof(s));
    buf_init(&s.b, 16 << 20);
    s.abort_after = 1;
    assert_int_equal(s3_get_object(P.client, P.bucket, key, NULL, sink_data, &s, &info, &err), -1);
    assert_string_equal(err.code, "ClientError");
    assert_true(s.b.len < len);
    buf_free(&s.b);

    assert_s3_ok(s3_delete_object(P.client, P.bucket, key, &err), &err);
    /* A missing file fails before any request. */
    assert_int_equal(
        s3_put_object_file(P.client, P.bucket, key, "/nonexistent/x", NULL, &info, &err), -1);
    unlink(path);
    free(data);
}

static int count_entry(void *ctx, const struct s3_entry *e)
{
    size_t *n = ctx;

    (void)e;
    (*n)++;
    return 0;
}

static void s3_peer_list_pages_with_continuation(void **state)
{
    const char *prefix = getenv("HCPIPE_TEST_S3_PAGING_PREFIX");
    struct s3_list_options lo = {.prefix = prefix ? prefix : "paging/", .max_keys = 2};
    struct s3_list_page page;
    struct s3_error err;
    char key[64];
    size_t n = 0;

    (void)state;
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "%sk %d.x", lo.prefix, i);
        assert_s3_ok(s3_put_object(P.client, P.bucket, key, "x", 1, NULL, NULL, &err), &err);
    }
    assert_s3_ok(s3_list_objects_page(P.client, P.bucket, &lo, NULL, &page, &err), &err);
    assert_int_equal(page.n_entries, 2);
    assert_true(page.is_truncated);
    assert_non_null(page.next_continuation_token);
    snprintf(key, sizeof(key), "%sk 0.x", lo.prefix);
    assert_string_equal(page.entries[0].key, key);
    s3_list_page_free(&page);

    assert_s3_ok(s3_list_objects(P.client, P.bucket, &lo, count_entry, &n, &err), &err);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "%sk %d.x", lo.prefix, i);
        assert_s3_ok(s3_delete_object(P.client, P.bucket, key, &err), &err);
    }
    n = 0;
    assert_s3_ok(s3_list_objects(P.client, P.bucket, &lo, count_entry, &n, &err), &err);
    assert_int_equal(n, 0);
    /* Delimiter: "<prefix>dx-1", "<prefix>dy-2", "<prefix>dz" with '-' give one object and two
     * common prefixes. */
    {
        static const char *const names[] = {"dx-1", "dy-2", "dz"};
        char dprefix[64], cp[64];
        struct s3_list_options dl = {.prefix = dprefix, .delimiter = "-"};
        snprintf(dprefix, sizeof(dprefix), "%sd", lo.prefix);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "%s%s", lo.prefix, names[i]);
            assert_s3_ok(s3_put_object(P.client, P.bucket, key, "x", 1, NULL, NULL, &err), &err);
        }
        assert_s3_ok(s3_list_objects_page(P.client, P.bucket, &dl, NULL, &page, &err), &err);
        assert_int_equal(page.n_entries, 1);
        snprintf(key, sizeof(key), "%sdz", lo.prefix);
        assert_string_equal(page.entries[0].key, key);
        assert_int_equal(page.n_common_prefixes, 2);
        snprintf(cp, sizeof(cp), "%sdx-", lo.prefix);
        assert_string_equal(page.common_prefixes[0], cp);
        s3_list_page_free(&page);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "%s%s", lo.prefix, names[i]);
            assert_s3_ok(s3_delete_object(P.client, P.bucket, key, &err), &err);
        }
    }
}

static void s3_peer_errors_have_codes(void **state)
{
    struct s3_object_info info;
    struct s3_error err;
    struct sink s;

    (void)state;
    assert_int_equal(get_all("no/such key.json", NULL, &s, &info, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "NoSuchKey");
    assert_int_equal(s.b.len, 0);
    buf_free(&s.b);
    assert_int_equal(
        s3_put_object(P.client, "hcpipe-no-such-bucket", "k", "x", 1, NULL, NULL, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "NoSuchBucket");
}

static void s3_peer_auth_failures(void **state)
{
    const char *denied_ak = getenv("HCPIPE_TEST_S3_DENIED_ACCESS_KEY");
    const char *denied_sk = getenv("HCPIPE_TEST_S3_DENIED_SECRET_KEY");
    const char *good = getenv("HCPIPE_TEST_SECRET_KEY");
    struct aws_credentials_provider *creds;
    struct aws_client *c;
    struct s3_list_page page;
    struct s3_error err;

    (void)state;
    if (!getenv("HCPIPE_TEST_S3_AUTH") || strcmp(getenv("HCPIPE_TEST_S3_AUTH"), "1") != 0)
        skip();
    setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789", 1);
    c = new_client(&creds);
    assert_int_equal(s3_list_objects_page(c, P.bucket, NULL, NULL, &page, &err), -1);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "SignatureDoesNotMatch");
    assert_int_equal(s3_put_object(c, P.bucket, "k", "x", 1, NULL, NULL, &err), -1);
    assert_string_equal(err.code, "SignatureDoesNotMatch");
    aws_client_free(c);
    aws_credentials_provider_free(creds);
    setenv("AWS_SECRET_ACCESS_KEY", good, 1);
    if (denied_ak && denied_sk) {
        setenv("AWS_ACCESS_KEY_ID", denied_ak, 1);
        setenv("AWS_SECRET_ACCESS_KEY", denied_sk, 1);
        c = new_client(&creds);
        assert_s3_ok(s3_list_objects_page(c, P.bucket, NULL, NULL, &page, &err), &err);
        s3_list_page_free(&page);
        assert_int_equal(s3_put_object(c, P.bucket, "denied.json", "x", 1, NULL, NULL, &err), -1);
        assert_int_equal(err.status, 403);
        assert_string_equal(err.code, "AccessDenied");
        aws_client_free(c);
        aws_credentials_provider_free(creds);
        setenv("AWS_ACCESS_KEY_ID", getenv("HCPIPE_TEST_ACCESS_KEY"), 1);
        setenv("AWS_SECRET_ACCESS_KEY", good, 1);
    }
}

/* Mode "put": leave objects for another client. */
static void s3_peer_put_for_other_client(void **state)
{
    (void)state;
    for (size_t i = 0; i < P.n_keys; i++) {
        struct s3_error err;
        size_t len;
        char *content = expected_content(P.keys[i], &len);
        assert_int_equal(
            s3_put_object(P.client, P.bucket, P.keys[i], content, len, NULL, NULL, &err), 0);
        free(content);
    }
}

/* Mode "verify": read objects another client put. */
static void s3_peer_read_from_other_client(void **state)
{
    (void)state;
    for (size_t i = 0; i < P.n_keys; i++) {
        struct s3_object_info head, got;
        struct s3_error err;
        struct sink s;
        size_t len;
        char *content = expected_content(P.keys[i], &len);

        print_message("key %s\n", P.keys[i]);
        assert_s3_ok(s3_head_object(P.client, P.bucket, P.keys[i], &head, &err), &err);
        assert_int_equal(head.size, (int64_t)len);
        assert_s3_ok(get_all(P.keys[i], NULL, &s, &got, &err), &err);
        assert_int_equal(s.b.len, len);
        assert_memory_equal(s.b.data, content, len);
        buf_free(&s.b);
        assert_listed(P.keys[i], (int64_t)len, head.etag);
        free(content);
    }
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(s3_url_encodes_key_like_the_cli),
        cmocka_unit_test(s3_url_bucket_and_query),
        cmocka_unit_test(s3_url_decode_matches_unquote_plus),
        cmocka_unit_test(s3_list_xml_parses_and_decodes),
        cmocka_unit_test(s3_list_xml_raw_keys_without_encoding_type),
        cmocka_unit_test(s3_list_xml_rejects_bad_input),
        cmocka_unit_test(s3_error_xml_parses_code_and_message),
    };
    const struct CMUnitTest full[] = {
        cmocka_unit_test(s3_peer_roundtrip_awkward_keys),
        cmocka_unit_test(s3_peer_put_from_file_and_abort_stream),
        cmocka_unit_test(s3_peer_list_pages_with_continuation),
        cmocka_unit_test(s3_peer_errors_have_codes),
        cmocka_unit_test(s3_peer_auth_failures),
    };
    const struct CMUnitTest put[] = {cmocka_unit_test(s3_peer_put_for_other_client)};
    const struct CMUnitTest verify[] = {cmocka_unit_test(s3_peer_read_from_other_client)};
    const char *mode = getenv("HCPIPE_TEST_S3_MODE");
    int rc = cmocka_run_group_tests_name("s3_pure", pure, NULL, NULL);

    if (!getenv("HCPIPE_TEST_S3_ENDPOINT"))
        return rc;
    if (!getenv("HCPIPE_TEST_ACCESS_KEY") || !getenv("HCPIPE_TEST_SECRET_KEY") ||
        !getenv("HCPIPE_TEST_S3_BUCKET")) {
        fprintf(stderr, "HCPIPE_TEST_S3_ENDPOINT needs HCPIPE_TEST_ACCESS_KEY, "
                        "HCPIPE_TEST_SECRET_KEY and HCPIPE_TEST_S3_BUCKET\n");
        return 1;
    }
    if (mode && strcmp(mode, "put") == 0)
        rc |= cmocka_run_group_tests_name("s3_peer_put", put, peer_setup, peer_teardown);
    else if (mode && strcmp(mode, "verify") == 0)
        rc |= cmocka_run_group_tests_name("s3_peer_verify", verify, peer_setup, peer_teardown);
    else
        rc |= cmocka_run_group_tests_name("s3_peer", full, peer_setup, peer_teardown);
    return rc;
}
