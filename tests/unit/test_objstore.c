/* Unit tests of server/objstore.c: names, URIs, the folder store, and escapes that must fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/error.h"
#include "server/objstore.h"

struct fixture {
    char root[256];    /* tmp dir */
    char buckets[300]; /* root/buckets */
    struct objstore *store;
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char p[512];

    snprintf(fx->root, sizeof fx->root, "/tmp/hcpipe-objstore-XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    snprintf(fx->buckets, sizeof fx->buckets, "%s/buckets", fx->root);
    mkdir(fx->buckets, 0755);
    snprintf(p, sizeof p, "%s/bucket-1", fx->buckets);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/bucket-1/dir", fx->buckets);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/bucket-1/dir/file.ndjson", fx->buckets);
    write_file(p, "hello world\n");
    snprintf(p, sizeof p, "%s/bucket-1/top.json", fx->buckets);
    write_file(p, "[]");
    snprintf(p, sizeof p, "%s/secret.txt", fx->root); /* outside the buckets folder */
    write_file(p, "secret");
    assert_int_equal(objstore_folder_new(fx->buckets, &fx->store), HC_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[600];

    objstore_destroy(fx->store);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->root);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void objstore_bucket_names(void **state)
{
    char longname[70];

    (void)state;
    assert_true(objstore_bucket_valid("my-bucket"));
    assert_true(objstore_bucket_valid("a.b.c"));
    assert_true(objstore_bucket_valid("abc"));
    assert_false(objstore_bucket_valid("ab"));
    assert_false(objstore_bucket_valid("My-Bucket"));
    assert_false(objstore_bucket_valid("-abc"));
    assert_false(objstore_bucket_valid("abc-"));
    assert_false(objstore_bucket_valid("a..b"));
    assert_false(objstore_bucket_valid("a_b_c"));
    assert_false(objstore_bucket_valid("192.168.1.1"));
    assert_false(objstore_bucket_valid("xn--abc"));
    assert_false(objstore_bucket_valid("sthree-abc"));
    assert_false(objstore_bucket_valid("abc-s3alias"));
    assert_false(objstore_bucket_valid(".."));
    assert_false(objstore_bucket_valid(NULL));
    memset(longname, 'a', 64);
    longname[64] = '\0';
    assert_false(objstore_bucket_valid(longname));
    longname[63] = '\0';
    assert_true(objstore_bucket_valid(longname));
}

static void objstore_key_rules(void **state)
{
    char key[1100];

    (void)state;
    assert_true(objstore_key_valid("a/b.json", 8));
    assert_true(objstore_key_valid("\xc3\xbc/\xe6\x97\xa5\xe6\x9c\xac", 9)); /* ü/日本 */
    assert_true(objstore_key_valid("..a/b..", 7));
    assert_false(objstore_key_valid("", 0));
    assert_false(objstore_key_valid("/etc/passwd", 11));
    assert_false(objstore_key_valid("..", 2));
    assert_false(objstore_key_valid("a/../b", 6));
    assert_false(objstore_key_valid("../b", 4));
    assert_false(objstore_key_valid("a/..", 4));
    assert_false(objstore_key_valid("a/./b", 5));
    assert_false(objstore_key_valid("a//b", 4));
    assert_false(objstore_key_valid("a/", 2));
    assert_false(objstore_key_valid("a\0b", 3));
    assert_false(objstore_key_valid("\xff", 1));
    assert_false(objstore_key_valid("\xc0\xaf", 2));     /* overlong '/' */
    assert_false(objstore_key_valid("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(objstore_key_valid("\xc3", 1));         /* truncated */
    memset(key, 'k', sizeof key);
    assert_true(objstore_key_valid(key, 1024));
    assert_false(objstore_key_valid(key, 1025));
}

static void objstore_parse_uris(void **state)
{
    char *b, *k;

    (void)state;
    assert_int_equal(objstore_parse_uri("s3://bucket-1/dir/file.ndjson", &b, &k), HC_OK);
    assert_string_equal(b, "bucket-1");
    assert_string_equal(k, "dir/file.ndjson");
    free(b);
    free(k);
    assert_int_equal(objstore_parse_uri("s3://bucket-1", &b, &k), HC_EBADSOURCE);
    assert_null(b);
    assert_int_equal(objstore_parse_uri("s3://bucket-1/", &b, &k), HC_EBADSOURCE);
    assert_int_equal(objstore_parse_uri("http://bucket-1/x", &b, &k), HC_EBADSOURCE);
    assert_int_equal(objstore_parse_uri("s3://Bucket/x", &b, &k), HC_EBADSOURCE);
    assert_int_equal(objstore_parse_uri("s3://bucket-1//etc/passwd", &b, &k), HC_EBADSOURCE);
    assert_int_equal(objstore_parse_uri("s3://bucket-1/../secret.txt", &b, &k), HC_EBADSOURCE);
    assert_int_equal(objstore_parse_uri(NULL, &b, &k), HC_EBADSOURCE);
}

static char *read_all(struct objstore_reader *r)
{
    char *out = calloc(1, 4096);
    size_t len = 0, n;

    do {
        assert_int_equal(objstore_read(r, out + len, 3, &n), HC_OK); /* tiny chunks */
        len += n;
    } while (n > 0 && len < 4000);
    return out;
}

static void objstore_folder_reads_objects(void **state)
{
    struct fixture *fx = *state;
    struct objstore_reader *r;
    struct objstore_info info, info2;
    char *text;

    assert_int_equal(objstore_open(fx->store, "bucket-1", "dir/file.ndjson", &r, &info), HC_OK);
    text = read_all(r);
    assert_string_equal(text, "hello world\n");
    assert_int_equal(info.size, 12);
    assert_true(strlen(info.version) > 0);
    free(text);
    objstore_close(r);
    assert_int_equal(objstore_stat(fx->store, "bucket-1", "dir/file.ndjson", &info2), HC_OK);
    assert_string_equal(info.version, info2.version);
    assert_int_equal(objstore_stat(fx->store, "bucket-1", "nope.json", &info), HC_ESOURCEMISSING);
    assert_int_equal(objstore_stat(fx->store, "no-bucket", "dir/file.ndjson", &info),
                     HC_ESOURCEMISSING);
    /* A folder is not an object. */
    assert_int_equal(objstore_stat(fx->store, "bucket-1", "dir", &info), HC_ESOURCEMISSING);
}

static void objstore_folder_refuses_escapes(void **state)
{
    struct fixture *fx = *state;
    struct objstore_reader *r = NULL;
    struct objstore_info info;
    char link[600], target[600];

    assert_int_equal(objstore_open(fx->store, "bucket-1", "../secret.txt", &r, &info),
                     HC_EBADSOURCE);
    assert_int_equal(objstore_open(fx->store, "bucket-1", "/etc/passwd", &r, &info), HC_EBADSOURCE);
    assert_int_equal(objstore_open(fx->store, "..", "secret.txt", &r, &info), HC_EBADSOURCE);
    /* A symlink inside the bucket pointing outside it. */
    snprintf(target, sizeof target, "%s/secret.txt", fx->root);
    snprintf(link, sizeof link, "%s/bucket-1/escape.txt", fx->buckets);
    assert_int_equal(symlink(target, link), 0);
    assert_int_not_equal(objstore_open(fx->store, "bucket-1", "escape.txt", &r, &info), HC_OK);
    assert_null(r);
    /* Even a symlink to an object inside the bucket is refused. */
    snprintf(target, sizeof target, "%s/bucket-1/top.json", fx->buckets);
    snprintf(link, sizeof link, "%s/bucket-1/alias.json", fx->buckets);
    assert_int_equal(symlink(target, link), 0);
    assert_int_not_equal(objstore_open(fx->store, "bucket-1", "alias.json", &r, &info), HC_OK);
    /* A symlinked folder component. */
    snprintf(link, sizeof link, "%s/bucket-1/up", fx->buckets);
    assert_int_equal(symlink(fx->root, link), 0);
    assert_int_not_equal(objstore_open(fx->store, "bucket-1", "up/secret.txt", &r, &info), HC_OK);
    /* A symlinked bucket. */
    snprintf(link, sizeof link, "%s/linked-bucket", fx->buckets);
    assert_int_equal(symlink(fx->root, link), 0);
    assert_int_not_equal(objstore_open(fx->store, "linked-bucket", "secret.txt", &r, &info), HC_OK);
    assert_null(r);
}

struct listing {
    char keys[8][64];
    int n;
};

static int collect(void *ctx, const char *key, const struct objstore_info *info)
{
    struct listing *l = ctx;

    (void)info;
    if (l->n < 8)
        snprintf(l->keys[l->n++], 64, "%s", key);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void objstore_folder_lists_keys(void **state)
{
    struct fixture *fx = *state;
    struct listing l = {0};

    assert_int_equal(objstore_list(fx->store, "bucket-1", "", collect, &l), HC_OK);
    qsort(l.keys, (size_t)l.n, sizeof l.keys[0], cmp_str);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.keys[0], "dir/file.ndjson");
    assert_string_equal(l.keys[1], "top.json");
    memset(&l, 0, sizeof l);
    assert_int_equal(objstore_list(fx->store, "bucket-1", "dir/", collect, &l), HC_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.keys[0], "dir/file.ndjson");
}

static void objstore_plain_files(void **state)
{
    struct fixture *fx = *state;
    struct objstore_reader *r;
    struct objstore_info info;
    char path[600];
    char *text;

    snprintf(path, sizeof path, "%s/secret.txt", fx->root);
    assert_int_equal(objstore_file_open(path, &r, &info), HC_OK);
    text = read_all(r);
    assert_string_equal(text, "secret");
    assert_int_equal(info.size, 6);
    free(text);
    objstore_close(r);
    snprintf(path, sizeof path, "%s/missing.txt", fx->root);
    assert_int_equal(objstore_file_open(path, &r, &info), HC_ESOURCEMISSING);
    assert_int_equal(objstore_file_open(fx->root, &r, &info), HC_ESOURCEMISSING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(objstore_bucket_names),
        cmocka_unit_test(objstore_key_rules),
        cmocka_unit_test(objstore_parse_uris),
        cmocka_unit_test_setup_teardown(objstore_folder_reads_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(objstore_folder_refuses_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(objstore_folder_lists_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(objstore_plain_files, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
