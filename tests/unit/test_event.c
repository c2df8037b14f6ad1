/*
 * Unit tests of server/event.c against the real payloads in ../shared/testdata/events (or
 * $HCPIPE_SHARED/testdata/events), each with the handling its README expects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/error.h"
#include "server/event.h"
#include "tests/unit/testdata.h"

static char *slurp_event(const char *name, size_t *len)
{
    char dir[4096], path[4200];
    FILE *f;
    char *data;
    long n;

    if (testdata_dir(dir, sizeof dir))
        fail_msg("shared/testdata not found (set HCPIPE_SHARED)");
    snprintf(path, sizeof path, "%s/events/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    data[n] = '\0';
    *len = (size_t)n;
    return data;
}

static int parse_file(const char *name, struct event_batch *b, char *err, size_t errlen)
{
    size_t len;
    char *data = slurp_event(name, &len);
    int rc = event_parse(data, len, b, err, errlen);

    free(data);
    return rc;
}

static void event_eventbridge_created(void **state)
{
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(parse_file("eventbridge-object-created.json", &b, err, sizeof err), HC_OK);
    assert_string_equal(b.format, "eventbridge");
    assert_null(b.ignored);
    assert_int_equal(b.n_events, 1);
    assert_int_equal(b.events[0].kind, EVENT_OBJECT_CREATED);
    assert_string_equal(b.events[0].dedup_id, "0b6ef3c3-3f43-9b2e-7c1a-5c7a4d2f1e90");
    assert_string_equal(b.events[0].bucket, "example-facility-data");
    assert_string_equal(b.events[0].key, "facilities/2024/06/site-0001.json");
    assert_int_equal(b.events[0].size, 48213);
    assert_string_equal(b.events[0].etag, "9b2cf535f27731c974343645a3985328");
    assert_string_equal(b.events[0].sequencer, "00665D8A2E3B1C4F27");
    assert_string_equal(b.events[0].version_id, "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e");
    assert_string_equal(b.events[0].time, "2024-06-03T09:15:42Z");
    assert_string_equal(b.events[0].reason, "PutObject");
    event_batch_free(&b);
}

static void event_eventbridge_special_key_decoded(void **state)
{
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(parse_file("eventbridge-object-created-special-key.json", &b, err,
                                sizeof err),
                     HC_OK);
    assert_int_equal(b.n_events, 1);
    assert_string_equal(b.events[0].key, "facilities/2024/site A+B/\xc3\xbc"
                                         "ber (1).json");
    assert_string_equal(b.events[0].raw_key, "facilities/2024/site+A%2BB/%C3%BCber+%281%29.json");
    assert_null(b.events[0].version_id);
    event_batch_free(&b);
}

static void event_eventbridge_multipart_etag_kept(void **state)
{
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(parse_file("eventbridge-object-created-multipart.json", &b, err, sizeof err),
                     HC_OK);
    assert_string_equal(b.events[0].etag, "3858f62230ac3c915f300c664312c11f-88");
    assert_int_equal(b.events[0].size, 734003200);
    assert_string_equal(b.events[0].reason, "CompleteMultipartUpload");
    event_batch_free(&b);
}

static void event_eventbridge_deleted(void **state)
{
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(parse_file("eventbridge-object-deleted.json", &b, err, sizeof err), HC_OK);
    assert_int_equal(b.n_events, 1);
    assert_int_equal(b.events[0].kind, EVENT_OBJECT_DELETED);
    assert_int_equal(b.events[0].size, -1);
    event_batch_free(&b);
}

static void event_records_two(void **state)
{
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(parse_file("s3-notification-records.json", &b, err, sizeof err), HC_OK);
    assert_string_equal(b.format, "s3-records");
    assert_int_equal(b.n_events, 2);
    assert_string_equal(b.events[0].key, "facilities/2024/site A+B/\xc3\xbc"
                                         "ber (1).json");
    assert_string_equal(b.events[1].key, "facilities/2024/06/r\xc3\xa9gion=nord/site#1.json");
    assert_int_equal(b.events[0].kind, EVENT_OBJECT_CREATED);
    assert_string_not_equal(b.events[0].dedup_id, b.events[1].dedup_id);
    event_batch_free(&b);
}

/* MinIO's webhook body (docker/compose.yaml): Records with eventName "s3:ObjectCreated:Put",
 * eventSource "minio:s3", eventVersion "2.0" and a form-encoded key. */
static void event_minio_records_accepted(void **state)
{
    static const char body[] =
        "{\"EventName\":\"s3:ObjectCreated:Put\",\"Key\":\"facilities/in/a+b.ndjson\","
        "\"Records\":[{\"eventVersion\":\"2.0\",\"eventSource\":\"minio:s3\","
        "\"awsRegion\":\"\",\"eventTime\":\"2026-11-27T10:00:00.000Z\","
        "\"eventName\":\"s3:ObjectCreated:Put\",\"userIdentity\":{\"principalId\":\"hc\"},"
        "\"requestParameters\":{\"sourceIPAddress\":\"172.18.0.3\"},"
        "\"responseElements\":{\"x-amz-request-id\":\"187B0A1C2D3E4F50\"},"
        "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"Config\","
        "\"bucket\":{\"name\":\"facilities\",\"ownerIdentity\":{\"principalId\":\"hc\"},"
        "\"arn\":\"arn:aws:s3:::facilities\"},\"object\":{\"key\":\"in%2Fa+b.ndjson\","
        "\"size\":42,\"eTag\":\"0123456789abcdef0123456789abcdef\","
        "\"contentType\":\"application/x-ndjson\",\"sequencer\":\"187B0A1C2D3E4F51\"}}}]}";
    static const char removed[] =
        "{\"Records\":[{\"eventVersion\":\"2.0\",\"eventSource\":\"minio:s3\","
        "\"eventTime\":\"2026-11-27T10:00:01.000Z\",\"eventName\":\"s3:ObjectRemoved:Delete\","
        "\"s3\":{\"bucket\":{\"name\":\"facilities\"},\"object\":{\"key\":\"x.ndjson\","
        "\"sequencer\":\"187B0A1C2D3E4F52\"}}}]}";
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(event_parse(body, sizeof body - 1, &b, err, sizeof err), HC_OK);
    assert_int_equal(b.n_events, 1);
    assert_int_equal(b.events[0].kind, EVENT_OBJECT_CREATED);
    assert_string_equal(b.events[0].bucket, "facilities");
    assert_string_equal(b.events[0].key, "in/a b.ndjson");
    event_batch_free(&b);
    assert_int_equal(event_parse(removed, sizeof removed - 1, &b, err, sizeof err), HC_OK);
    assert_int_equal(b.n_events, 1);
    assert_int_equal(b.events[0].kind, EVENT_OBJECT_DELETED);
    event_batch_free(&b);
}

static void event_test_event_ignored(void **state)
{
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(parse_file("s3-notification-test-event.json", &b, err, sizeof err), HC_OK);
    assert_int_equal(b.n_events, 0);
    assert_non_null(b.ignored);
    assert_string_equal(b.format, "s3-test-event");
    event_batch_free(&b);
}

static void event_malformed_rejected(void **state)
{
    static const struct {
        const char *file;
        int rc;
        const char *needle; /* must appear in the reason */
    } cases[] = {
        {"malformed-truncated.json", HC_EJSON, "invalid JSON"},
        {"malformed-missing-key.json", HC_EBADEVENT, "detail.object.key"},
        {"malformed-wrong-types.json", HC_EBADEVENT, "must be"},
        {"malformed-bad-percent-encoding.json", HC_EBADEVENT, "Records[0].s3.object.key"},
        {"malformed-invalid-utf8-after-decoding.json", HC_EBADEVENT, "UTF-8"},
        {"malformed-empty-records.json", HC_EBADEVENT, "Records is empty"},
        {"malformed-wrong-source.json", HC_EBADEVENT, "aws.s3"},
    };
    struct event_batch b;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse_file(cases[i].file, &b, err, sizeof err);

        if (rc != cases[i].rc || !strstr(err, cases[i].needle))
            fail_msg("%s: rc %d, reason \"%s\"", cases[i].file, rc, err);
        assert_int_equal(b.n_events, 0);
        assert_null(b.events);
    }
}

static void event_form_decode_rules(void **state)
{
    char *s;

    (void)state;
    s = event_form_decode("a+b%2Bc%20d", 11);
    assert_string_equal(s, "a b+c d");
    free(s);
    assert_null(event_form_decode("%zz", 3));
    assert_null(event_form_decode("abc%", 4));
    assert_null(event_form_decode("abc%4", 5));
    assert_null(event_form_decode("%00", 3));       /* NUL */
    assert_null(event_form_decode("%C0%AF", 6));    /* overlong */
    assert_null(event_form_decode("%ED%A0%80", 9)); /* surrogate */
    s = event_form_decode("%F0%9F%98%80", 12);
    assert_string_equal(s, "\xf0\x9f\x98\x80");
    free(s);
}

static void event_sequencer_order(void **state)
{
    (void)state;
    assert_true(event_sequencer_cmp("00665D8A2E3B1C4F27", "00665D8A45A0B7E913") < 0);
    assert_int_equal(event_sequencer_cmp("0055AED6DCD9028", "0055AED6DCD90280"), 0);
    assert_true(event_sequencer_cmp("0055AED6DCD90281", "0055AED6DCD9028") > 0);
}

static void event_other_shapes(void **state)
{
    static const char tags[] = "{\"version\":\"0\",\"id\":\"x\",\"detail-type\":\"Object Tags "
                               "Added\",\"source\":\"aws.s3\",\"detail\":{}}";
    static const char arr[] = "[1,2]";
    static const char dup[] = "{\"Records\":[],\"Records\":[]}";
    struct event_batch b;
    char err[256];

    (void)state;
    assert_int_equal(event_parse(tags, strlen(tags), &b, err, sizeof err), HC_OK);
    assert_int_equal(b.n_events, 0);
    assert_non_null(b.ignored);
    event_batch_free(&b);
    assert_int_equal(event_parse(arr, strlen(arr), &b, err, sizeof err), HC_EBADEVENT);
    assert_int_equal(event_parse(dup, strlen(dup), &b, err, sizeof err), HC_EJSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_eventbridge_created),
        cmocka_unit_test(event_eventbridge_special_key_decoded),
        cmocka_unit_test(event_eventbridge_multipart_etag_kept),
        cmocka_unit_test(event_eventbridge_deleted),
        cmocka_unit_test(event_records_two),
        cmocka_unit_test(event_test_event_ignored),
        cmocka_unit_test(event_malformed_rejected),
        cmocka_unit_test(event_form_decode_rules),
        cmocka_unit_test(event_sequencer_order),
        cmocka_unit_test(event_other_shapes),
        cmocka_unit_test(event_minio_records_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
