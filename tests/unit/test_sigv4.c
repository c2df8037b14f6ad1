/*
 * Unit tests of aws/sigv4.c (and the case reader in aws/cli.c).
 *
 * The conformance tests walk EVERY folder of shared/testdata/sigv4 (AWS's suite, aws-c-auth
 * layout) and shared/testdata/aws-captures (AWS CLI captures) and compare the canonical request,
 * the string to sign, the signature and the Authorization header byte for byte, so a case added
 * in the same layout is checked without touching this file. The test data is found at
 * $HCPIPE_SHARED/testdata, else at <ancestor>/shared/testdata for an ancestor of the working
 * directory or of the test binary (tests run from the repository root; ../shared from main).
 *
 * The other tests pin single rules: URI encoding, path handling for S3 and other services, query
 * sorting, header folding and joining, the payload hash modes, the session token, the
 * signing-key cache (hits, misses, eviction, threads) and bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/cli.h"
#include "aws/sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_2015 ((time_t)1440938160) /* 2015-08-30T12:36:00Z */

/* ---- helpers -------------------------------------------------------------------------- */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Looks for <ancestor of start>/shared/testdata/sigv4; fills out with the testdata path. */
static int search_up(const char *start, char *out, size_t cap)
{
    char dir[PATH_MAX], probe[PATH_MAX + 64];

    if (!realpath(start, dir))
        return -1;
    for (;;) {
        const char *base = strcmp(dir, "/") ? dir : "";
        char *slash;

        snprintf(probe, sizeof(probe), "%s/shared/testdata/sigv4", base);
        if (is_dir(probe)) {
            probe[strlen(probe) - strlen("/sigv4")] = '\0';
            if (strlen(probe) >= cap)
                return -1;
            memcpy(out, probe, strlen(probe) + 1);
            return 0;
        }
        if (!*base)
            return -1;
        slash = strrchr(dir, '/');
        if (!slash)
            return -1;
        slash[slash == dir ? 1 : 0] = '\0'; /* parent; "/x" becomes "/" */
    }
}

static int find_testdata(char *out, size_t cap)
{
    const char *env = getenv("HCPIPE_SHARED");
    char exe[PATH_MAX];
    ssize_t n;

    if (env && *env) {
        snprintf(out, cap, "%s/testdata", env);
        return is_dir(out) ? 0 : -1;
    }
    if (search_up(".", out, cap) == 0)
        return 0;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        if (search_up(exe, out, cap) == 0)
            return 0;
    }
    return -1;
}

/* Reads a whole file (NUL-terminated, malloc'ed) or returns NULL. */
static char *slurp(const char *dir, const char *name)
{
    char path[PATH_MAX + 256];
    FILE *f;
    char *buf = NULL;
    long len;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
            buf[len] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* The value of the first "Authorization:" line of a request file (new string), or NULL. */
static char *authorization_line(const char *text)
{
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, "Authorization:", 14) == 0) {
            const char *v = p + 14;
            size_t n;
            while (*v == ' ')
                v++;
            n = strcspn(v, "\r\n");
            return strndup(v, n);
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static int expect_equal(const char *dir, const char *what, const char *want, const char *got)
{
    if (want && got && strcmp(want, got) == 0)
        return 0;
    print_error("MISMATCH %s (%s)\n--- expected:\n%s\n--- got:\n%s\n", dir, what,
                want ? want : "(missing)", got ? got : "(none)");
    return 1;
}

/* Signs every case folder under testdata/<suite> and compares with the expected files.
 * Returns the number of folders checked; *failures counts mismatching items. */
static int walk_suite(const char *suite, const char *creq_name, const char *sts_name,
                      const char *sig_name, const char *signed_name, int *failures)
{
    char root[PATH_MAX], dir[PATH_MAX + 256];
    DIR *d;
    struct dirent *e;
    int cases = 0;

    assert_int_equal(find_testdata(root, sizeof(root)), 0);
    strncat(root, "/", sizeof(root) - strlen(root) - 1);
    strncat(root, suite, sizeof(root) - strlen(root) - 1);
    d = opendir(root);
    assert_non_null(d);
    for (;;) {
        struct sigv4_result res;
        char *creq, *sts, *sig, *sreq, *authz;

        e = readdir(d);
        if (!e)
            break;
        if (e->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, e->d_name);
        if (!is_dir(dir))
            continue;
        creq = slurp(dir, creq_name);
        sts = slurp(dir, sts_name);
        sig = slurp(dir, sig_name);
        sreq = slurp(dir, signed_name);
        authz = sreq ? authorization_line(sreq) : NULL;
        cases++;
        if (aws_cli_sign_case(dir, &res) != 0) {
            print_error("CANNOT SIGN %s\n", dir);
            (*failures)++;
        } else {
            *failures += expect_equal(dir, creq_name, creq, res.canonical_request);
            *failures += expect_equal(dir, sts_name, sts, res.string_to_sign);
            *failures += expect_equal(dir, sig_name, sig, res.signature);
            if (authz) /* the Authorization line, where the case has one */
                *failures += expect_equal(dir, "Authorization", authz, res.authorization);
            sigv4_result_free(&res);
        }
        free(creq);
        free(sts);
        free(sig);
        free(sreq);
        free(authz);
    }
    closedir(d);
    return cases;
}

/* A request with the suite's fixed inputs and the given path/query/headers. */
static struct sigv4_request base_request(const char *service, const char *path, const char *query,
                                         const struct sigv4_header *h, size_t n)
{
    struct sigv4_request r;

    memset(&r, 0, sizeof(r));
    r.method = "GET";
    r.path = path;
    r.query = query;
    r.headers = h;
    r.n_headers = n;
    r.region = "us-east-1";
    r.service = service;
    r.when = T_2015;
    r.access_key = "AKIDEXAMPLE";
    r.secret_key = SECRET;
    return r;
}

/* The second line (canonical URI) or third line (query) of a canonical request, as a string. */
static char *creq_line(const char *creq, int line)
{
    const char *p = creq;

    for (int i = 0; i < line; i++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    return strndup(p, strcspn(p, "\n"));
}

static char *canonical_uri_of(const char *service, const char *path, enum sigv4_path_mode mode)
{
    struct sigv4_header h[] = {{"Host", "example.amazonaws.com"}};
    struct sigv4_request r = base_request(service, path, NULL, h, 1);
    struct sigv4_result res;
    char *line;

    r.path_mode = mode;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    line = creq_line(res.canonical_request, 1);
    sigv4_result_free(&res);
    return line;
}

/* ---- conformance: every folder ---------------------------------------------------------- */

static void sigv4_suite_cases_match(void **state)
{
    int failures = 0;
    int cases = walk_suite("sigv4", "header-canonical-request.txt", "header-string-to-sign.txt",
                           "header-signature.txt", "header-signed-request.txt", &failures);

    (void)state;
    print_message("sigv4 suite: %d cases checked, %d mismatches\n", cases, failures);
    assert_true(cases >= 28);
    assert_int_equal(failures, 0);
}

static void sigv4_capture_cases_match(void **state)
{
    int failures = 0;
    int cases = walk_suite("aws-captures", "canonical-request.txt", "string-to-sign.txt",
                           "signature.txt", "request.http", &failures);

    (void)state;
    print_message("aws captures: %d cases checked, %d mismatches\n", cases, failures);
    assert_true(cases >= 9);
    assert_int_equal(failures, 0);
}

/* ---- single rules --------------------------------------------------------------------- */

static void sigv4_uri_encode_rules(void **state)
{
    char *s;

    (void)state;
    s = sigv4_uri_encode("AZaz09-_.~", 10, 0);
    assert_string_equal(s, "AZaz09-_.~");
    free(s);
    s = sigv4_uri_encode("a b+c/d*", 8, 1);
    assert_string_equal(s, "a%20b%2Bc/d%2A");
    free(s);
    s = sigv4_uri_encode("a/b", 3, 0);
    assert_string_equal(s, "a%2Fb");
    free(s);
    s = sigv4_uri_encode("\xc3\xbc%", 3, 1);
    assert_string_equal(s, "%C3%BC%25");
    free(s);
    s = sigv4_uri_encode("a\0b", 3, 0);
    assert_string_equal(s, "a%00b");
    free(s);
    s = sigv4_uri_encode("", 0, 0);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void sigv4_path_s3_encoded_once_not_normalized(void **state)
{
    char *u;

    (void)state;
    u = canonical_uri_of("s3", "/b/site%20A%2BB/%C3%BCn~%2A.json", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/b/site%20A%2BB/%C3%BCn~%2A.json");
    free(u);
    u = canonical_uri_of("s3", "/b/./k//x/../y z", SIGV4_PATH_NORMALIZE);
    assert_string_equal(u, "/b/./k//x/../y%20z");
    free(u);
    u = canonical_uri_of("s3", "/b/100%", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/b/100%25");
    free(u);
}

static void sigv4_path_other_services_normalized_and_encoded(void **state)
{
    char *u;

    (void)state;
    u = canonical_uri_of("service", "/a%20b", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/a%2520b"); /* the wire escape is encoded again */
    free(u);
    u = canonical_uri_of("service", "//a/./b/../c//", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/a/c/");
    free(u);
    u = canonical_uri_of("service", "/a/b/..", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/a/");
    free(u);
    u = canonical_uri_of("service", "/../..", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/");
    free(u);
    u = canonical_uri_of("service", "", SIGV4_PATH_AUTO);
    assert_string_equal(u, "/");
    free(u);
    u = canonical_uri_of("service", "//a/./b", SIGV4_PATH_KEEP);
    assert_string_equal(u, "//a/./b");
    free(u);
}

static void sigv4_query_sorted_and_encoded(void **state)
{
    struct sigv4_header h[] = {{"Host", "h"}};
    struct sigv4_request r =
        base_request("s3", "/", "b=2&a=1&a=0&&c&Param-3=x&Param=y&k=a%2fb+c", h, 1);
    struct sigv4_result res;
    char *q;

    (void)state;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    q = creq_line(res.canonical_request, 2);
    assert_string_equal(q, "Param=y&Param-3=x&a=0&a=1&b=2&c=&k=a%2Fb%2Bc");
    free(q);
    sigv4_result_free(&res);
}

static void sigv4_headers_folded_joined_sorted(void **state)
{
    struct sigv4_header h[] = {
        {"Host", "example.amazonaws.com"},  {"X-Multi", "  first \t value  "},
        {"User-Agent", "not signed"},       {"x-multi", "second\n   line"},
        {"X-Amz-Date", "19990101T000000Z"}, /* replaced by the signer's own */
        {"Content-Type", "  a   b  "},      {"Expect", "100-continue"},
    };
    struct sigv4_request r = base_request("service", "/", NULL, h, sizeof(h) / sizeof(h[0]));
    struct sigv4_result res;

    (void)state;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    assert_string_equal(res.canonical_request,
                        "GET\n/\n\n"
                        "content-type:a b\n"
                        "host:example.amazonaws.com\n"
                        "x-amz-date:20150830T123600Z\n"
                        "x-multi:first value,second line\n\n"
                        "content-type;host;x-amz-date;x-multi\n"
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_non_null(strstr(res.authorization, "SignedHeaders=content-type;host;x-amz-date;x-multi, "
                                              "Signature="));
    assert_string_equal(res.amz_date, "20150830T123600Z");
    sigv4_result_free(&res);
}

static void sigv4_payload_and_content_sha256(void **state)
{
    struct sigv4_header h[] = {{"Host", "h"}, {"X-Amz-Content-SHA256", "stale"}};
    struct sigv4_request r = base_request("s3", "/b/k", NULL, h, 2);
    struct sigv4_result res;
    const char *tail;

    (void)state;
    r.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
    r.sign_content_sha256 = 1;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    assert_non_null(strstr(res.canonical_request, "\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
    assert_null(strstr(res.canonical_request, "stale"));
    tail = strrchr(res.canonical_request, '\n');
    assert_string_equal(tail, "\nUNSIGNED-PAYLOAD");
    assert_string_equal(res.payload_hash, "UNSIGNED-PAYLOAD");
    sigv4_result_free(&res);

    r.payload_hash = NULL;
    r.payload = "Param1=value1";
    r.payload_len = 13;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    assert_string_equal(res.payload_hash,
                        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    sigv4_result_free(&res);
}

static void sigv4_session_token_signed_or_omitted(void **state)
{
    struct sigv4_header h[] = {{"Host", "h"}};
    struct sigv4_request r = base_request("athena", "/", NULL, h, 1);
    struct sigv4_result res;

    (void)state;
    r.session_token = "TOKEN//x==";
    assert_int_equal(sigv4_sign(&r, &res), 0);
    assert_non_null(strstr(res.canonical_request, "\nx-amz-security-token:TOKEN//x==\n"));
    assert_non_null(
        strstr(res.authorization, "SignedHeaders=host;x-amz-date;x-amz-security-token,"));
    sigv4_result_free(&res);
    r.omit_session_token = 1;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    assert_null(strstr(res.canonical_request, "x-amz-security-token"));
    sigv4_result_free(&res);
}

static void sigv4_clock_is_injected(void **state)
{
    struct sigv4_header h[] = {{"Host", "h"}};
    struct sigv4_request r = base_request("s3", "/", NULL, h, 1);
    struct sigv4_result res;

    (void)state;
    r.when = 0;
    assert_int_equal(sigv4_sign(&r, &res), 0);
    assert_string_equal(res.amz_date, "19700101T000000Z");
    assert_non_null(strstr(res.string_to_sign, "\n19700101/us-east-1/s3/aws4_request\n"));
    assert_non_null(strstr(res.authorization, "Credential=AKIDEXAMPLE/19700101/us-east-1/s3/"));
    sigv4_result_free(&res);
}

static void sigv4_bad_input_rejected(void **state)
{
    struct sigv4_header nohost[] = {{"X-A", "1"}};
    struct sigv4_header badname[] = {{"Host", "h"}, {"Bad Name", "1"}};
    struct sigv4_header ok[] = {{"Host", "h"}};
    struct sigv4_request r;
    struct sigv4_result res;

    (void)state;
    r = base_request("s3", "/", NULL, nohost, 1);
    assert_int_equal(sigv4_sign(&r, &res), -1);
    assert_null(res.authorization);
    r = base_request("s3", "/", NULL, badname, 2);
    assert_int_equal(sigv4_sign(&r, &res), -1);
    r = base_request("s3", "/", NULL, ok, 1);
    r.method = NULL;
    assert_int_equal(sigv4_sign(&r, &res), -1);
    r = base_request("s3", "/", NULL, ok, 1);
    r.region = "us/east";
    assert_int_equal(sigv4_sign(&r, &res), -1);
    r = base_request("s3", "/", NULL, ok, 1);
    r.payload_hash = "0123456789012345678901234567890123456789012345678901234567890123456789";
    assert_int_equal(sigv4_sign(&r, &res), -1);
    r = base_request("s3", "/", NULL, ok, 1);
    r.payload_len = 5; /* no payload bytes */
    assert_int_equal(sigv4_sign(&r, &res), -1);
}

/* ---- signing-key cache ----------------------------------------------------------------- */

static void sigv4_key_cache_reuses_and_separates(void **state)
{
    unsigned char k1[32], k2[32], k3[32], k4[32];
    static const unsigned char aws_doc_key[32] = {0xc4, 0xaf, 0xb1, 0xcc, 0x57, 0x71, 0xd8, 0x71,
                                                  0x76, 0x3a, 0x39, 0x3e, 0x44, 0xb7, 0x03, 0x57,
                                                  0x1b, 0x55, 0xcc, 0x28, 0x42, 0x4d, 0x1a, 0x5e,
                                                  0x86, 0xda, 0x6e, 0xd3, 0xc1, 0x54, 0xa4, 0xb9};

    (void)state;
    sigv4_cache_clear();
    assert_int_equal(sigv4_signing_key(SECRET, "20150830", "us-east-1", "iam", k1), 0);
    assert_memory_equal(k1, aws_doc_key, 32); /* the IAM user guide's example key */
    assert_int_equal(sigv4_signing_key(SECRET, "20150830", "us-east-1", "iam", k2), 1);
    assert_memory_equal(k1, k2, 32);
    assert_int_equal(sigv4_signing_key(SECRET, "20150831", "us-east-1", "iam", k3), 0);
    assert_memory_not_equal(k1, k3, 32);
    assert_int_equal(sigv4_signing_key("other", "20150830", "us-east-1", "iam", k4), 0);
    assert_memory_not_equal(k1, k4, 32);
    assert_int_equal(sigv4_signing_key(SECRET, "20150830", "us-west-2", "iam", k4), 0);
    assert_memory_not_equal(k1, k4, 32);
    assert_int_equal(sigv4_signing_key(SECRET, "20150830", "us-east-1", "s3", k4), 0);
    assert_memory_not_equal(k1, k4, 32);
    assert_int_equal(sigv4_signing_key(SECRET, "2015083", "us-east-1", "s3", k4), -1);
}

static void sigv4_key_cache_evicts_least_recent(void **state)
{
    unsigned char k[32];
    char date[9];

    (void)state;
    sigv4_cache_clear();
    assert_int_equal(sigv4_signing_key(SECRET, "20200101", "r", "s", k), 0);
    for (int i = 0; i < 40; i++) {
        snprintf(date, sizeof(date), "2021%04d", i);
        assert_int_equal(sigv4_signing_key(SECRET, date, "r", "s", k), 0);
        /* keep the first key the most recently used one */
        assert_int_equal(sigv4_signing_key(SECRET, "20200101", "r", "s", k), 1);
    }
    assert_int_equal(sigv4_signing_key(SECRET, "20210000", "r", "s", k), 0); /* evicted */
    sigv4_cache_clear();
    assert_int_equal(sigv4_signing_key(SECRET, "20200101", "r", "s", k), 0);
}

struct key_worker {
    int id;
    int bad;
};

static void *key_thread(void *arg)
{
    struct key_worker *w = arg;
    unsigned char k[32], again[32];
    char date[9];

    for (int i = 0; i < 200; i++) {
        snprintf(date, sizeof(date), "2015%04d", (i + w->id) % 12);
        if (sigv4_signing_key(SECRET, date, "us-east-1", "s3", k) < 0 ||
            sigv4_signing_key(SECRET, date, "us-east-1", "s3", again) < 0 ||
            memcmp(k, again, 32) != 0)
            w->bad++;
    }
    return NULL;
}

static void sigv4_key_cache_thread_safe(void **state)
{
    pthread_t t[4];
    struct key_worker w[4];
    unsigned char k[32], expect[32];

    (void)state;
    sigv4_cache_clear();
    for (int i = 0; i < 4; i++) {
        w[i].id = i;
        w[i].bad = 0;
        assert_int_equal(pthread_create(&t[i], NULL, key_thread, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    /* a cached key equals a freshly derived one */
    assert_true(sigv4_signing_key(SECRET, "20150003", "us-east-1", "s3", k) >= 0);
    sigv4_cache_clear();
    assert_int_equal(sigv4_signing_key(SECRET, "20150003", "us-east-1", "s3", expect), 0);
    assert_memory_equal(k, expect, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigv4_suite_cases_match),
        cmocka_unit_test(sigv4_capture_cases_match),
        cmocka_unit_test(sigv4_uri_encode_rules),
        cmocka_unit_test(sigv4_path_s3_encoded_once_not_normalized),
        cmocka_unit_test(sigv4_path_other_services_normalized_and_encoded),
        cmocka_unit_test(sigv4_query_sorted_and_encoded),
        cmocka_unit_test(sigv4_headers_folded_joined_sorted),
        cmocka_unit_test(sigv4_payload_and_content_sha256),
        cmocka_unit_test(sigv4_session_token_signed_or_omitted),
        cmocka_unit_test(sigv4_clock_is_injected),
        cmocka_unit_test(sigv4_bad_input_rejected),
        cmocka_unit_test(sigv4_key_cache_reuses_and_separates),
        cmocka_unit_test(sigv4_key_cache_evicts_least_recent),
        cmocka_unit_test(sigv4_key_cache_thread_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
