/*
 * event.c: parsing of S3 event payloads (see event.h).
 *
 * Organisation: small jansson accessors that name the member at fault (get_str, get_obj, ...),
 * the key decoder, then one parser per payload shape (parse_eventbridge, parse_records) and the
 * entry point event_parse(), which decides the shape from the top-level members.
 */
#include "server/event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/error.h"

#define MAX_RECORDS 1000 /* more than S3 ever sends in one notification */

struct perr {
    char *msg;
    size_t len;
};

static int fail(struct perr *pe, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct perr *pe, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(pe->msg, pe->len, fmt, ap);
    va_end(ap);
    return HC_EBADEVENT;
}

/* A member that must be a string (required) or may be absent/null (optional). */
static int get_str(json_t *obj, const char *name, const char *where, int required, const char **out,
                   struct perr *pe)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return required ? fail(pe, "%s.%s is missing", where, name) : HC_OK;
    if (!json_is_string(v))
        return fail(pe, "%s.%s must be a string", where, name);
    *out = json_string_value(v);
    if (required && !**out)
        return fail(pe, "%s.%s must not be empty", where, name);
    return HC_OK;
}

static int get_obj(json_t *obj, const char *name, const char *where, json_t **out, struct perr *pe)
{
    *out = json_object_get(obj, name);
    if (!*out)
        return fail(pe, "%s.%s is missing", where, name);
    if (!json_is_object(*out))
        return fail(pe, "%s.%s must be an object", where, name);
    return HC_OK;
}

static int get_size(json_t *obj, const char *where, int64_t *out, struct perr *pe)
{
    json_t *v = json_object_get(obj, "size");

    *out = -1;
    if (!v || json_is_null(v))
        return HC_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(pe, "%s.size must be a non-negative integer", where);
    *out = (int64_t)json_integer_value(v);
    return HC_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) without NUL. */
static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp, min;

        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

char *event_form_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = len - i >= 3 ? hexval(s[i + 1]) : -1;
            int lo = len - i >= 3 ? hexval(s[i + 2]) : -1;

            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    if (!utf8_valid((const unsigned char *)out, o)) {
        free(out);
        return NULL;
    }
    return out;
}

int event_sequencer_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;

    for (size_t i = 0; i < n; i++) {
        char ca = i < la ? a[i] : '0', cb = i < lb ? b[i] : '0';

        if (ca != cb)
            return (unsigned char)ca < (unsigned char)cb ? -1 : 1;
    }
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Fills one event from already-checked strings; returns HC_ENOMEM when a copy fails. */
static int event_fill(struct object_event *ev, enum event_kind kind, const char *dedup_id,
                      const char *bucket, char *key, const char *raw_key, int64_t size,
                      const char *etag, const char *sequencer, const char *version_id,
                      const char *time, const char *reason)
{
    ev->kind = kind;
    ev->key = key; /* stolen */
    ev->dedup_id = strdup(dedup_id);
    ev->bucket = strdup(bucket);
    ev->raw_key = strdup(raw_key);
    ev->size = size;
    ev->etag = dup_or_null(etag);
    ev->sequencer = dup_or_null(sequencer);
    ev->version_id = dup_or_null(version_id);
    ev->time = dup_or_null(time);
    ev->reason = dup_or_null(reason);
    if (!ev->key || !ev->dedup_id || !ev->bucket || !ev->raw_key || (etag && !ev->etag) ||
        (sequencer && !ev->sequencer) || (version_id && !ev->version_id) || (time && !ev->time) ||
        (reason && !ev->reason))
        return HC_ENOMEM;
    return HC_OK;
}

static int parse_eventbridge(json_t *root, struct event_batch *out, struct perr *pe)
{
    const char *source, *dtype, *id, *time, *bucket, *raw_key, *etag, *seq, *version, *reason;
    json_t *detail, *jbucket, *jobject;
    enum event_kind kind;
    int64_t size;
    char *key;
    int rc;

    out->format = "eventbridge";
    rc = get_str(root, "source", "event", 1, &source, pe);
    if (!rc)
        rc = get_str(root, "detail-type", "event", 1, &dtype, pe);
    if (!rc)
        rc = get_str(root, "id", "event", 1, &id, pe);
    if (!rc)
        rc = get_str(root, "time", "event", 0, &time, pe);
    if (rc)
        return rc;
    if (strcmp(source, "aws.s3") != 0)
        return fail(pe, "event.source is \"%.64s\"; only aws.s3 events are accepted", source);
    if (strcmp(dtype, "Object Created") == 0) {
        kind = EVENT_OBJECT_CREATED;
    } else if (strcmp(dtype, "Object Deleted") == 0) {
        kind = EVENT_OBJECT_DELETED;
    } else {
        out->ignored = "detail-type is neither \"Object Created\" nor \"Object Deleted\"";
        return HC_OK;
    }
    rc = get_obj(root, "detail", "event", &detail, pe);
    if (!rc)
        rc = get_obj(detail, "bucket", "detail", &jbucket, pe);
    if (!rc)
        rc = get_obj(detail, "object", "detail", &jobject, pe);
    if (!rc)
        rc = get_str(jbucket, "name", "detail.bucket", 1, &bucket, pe);
    if (!rc)
        rc = get_str(jobject, "key", "detail.object", 1, &raw_key, pe);
    if (!rc)
        rc = get_size(jobject, "detail.object", &size, pe);
    if (!rc)
        rc = get_str(jobject, "etag", "detail.object", 0, &etag, pe);
    if (!rc)
        rc = get_str(jobject, "sequencer", "detail.object", 0, &seq, pe);
    if (!rc)
        rc = get_str(jobject, "version-id", "detail.object", 0, &version, pe);
    if (!rc)
        rc = get_str(detail, "reason", "detail", 0, &reason, pe);
    if (rc)
        return rc;
    /* EventBridge's key encoding is undocumented: decode when it decodes, else keep it raw. */
    key = event_form_decode(raw_key, strlen(raw_key));
    if (!key)
        key = strdup(raw_key);
    out->events = calloc(1, sizeof *out->events);
    if (!out->events) {
        free(key);
        return HC_ENOMEM;
    }
    out->n_events = 1;
    return event_fill(&out->events[0], kind, id, bucket, key, raw_key, size, etag, seq, version,
                      time, reason);
}

static int parse_record(json_t *rec, size_t i, struct object_event *ev, int *skip, struct perr *pe)
{
    const char *name, *time, *reqid = NULL, *bucket, *raw_key, *etag, *seq, *version;
    json_t *s3, *jbucket, *jobject, *resp;
    char where[48], dedup[512];
    enum event_kind kind;
    int64_t size;
    char *key;
    int rc;

    *skip = 0;
    snprintf(where, sizeof where, "Records[%zu]", i);
    if (!json_is_object(rec))
        return fail(pe, "%s must be an object", where);
    rc = get_str(rec, "eventName", where, 1, &name, pe);
    if (!rc)
        rc = get_str(rec, "eventTime", where, 0, &time, pe);
    if (rc)
        return rc;
    /* MinIO's bucket notifications name the event "s3:ObjectCreated:Put" (with the prefix of
     * its configuration's event names); AWS sends "ObjectCreated:Put". */
    if (strncmp(name, "s3:", 3) == 0)
        name += 3;
    if (strncmp(name, "ObjectCreated:", 14) == 0) {
        kind = EVENT_OBJECT_CREATED;
    } else if (strncmp(name, "ObjectRemoved:", 14) == 0) {
        kind = EVENT_OBJECT_DELETED;
    } else {
        *skip = 1;
        return HC_OK;
    }
    resp = json_object_get(rec, "responseElements");
    if (json_is_object(resp))
        rc = get_str(resp, "x-amz-request-id", "responseElements", 0, &reqid, pe);
    if (!rc)
        rc = get_obj(rec, "s3", where, &s3, pe);
    if (!rc)
        rc = get_obj(s3, "bucket", "s3", &jbucket, pe);
    if (!rc)
        rc = get_obj(s3, "object", "s3", &jobject, pe);
    if (!rc)
        rc = get_str(jbucket, "name", "s3.bucket", 1, &bucket, pe);
    if (!rc)
        rc = get_str(jobject, "key", "s3.object", 1, &raw_key, pe);
    if (!rc)
        rc = get_size(jobject, "s3.object", &size, pe);
    if (!rc)
        rc = get_str(jobject, "eTag", "s3.object", 0, &etag, pe);
    if (!rc)
        rc = get_str(jobject, "sequencer", "s3.object", 0, &seq, pe);
    if (!rc)
        rc = get_str(jobject, "versionId", "s3.object", 0, &version, pe);
    if (rc)
        return rc;
    key = event_form_decode(raw_key, strlen(raw_key));
    if (!key)
        return fail(pe, "%s.s3.object.key is not a valid form-encoded UTF-8 key", where);
    /* Without a request id, bucket + key + sequencer (or etag) identify the event. */
    snprintf(dedup, sizeof dedup, "%s/%s/%s", reqid ? reqid : "-", bucket, raw_key);
    if (!reqid)
        snprintf(dedup, sizeof dedup, "s3:%s/%s@%s", bucket, raw_key,
                 seq ? seq : (etag ? etag : "-"));
    return event_fill(ev, kind, dedup, bucket, key, raw_key, size, etag, seq, version, time, name);
}

static int parse_records(json_t *records, struct event_batch *out, struct perr *pe)
{
    size_t n = json_array_size(records);

    out->format = "s3-records";
    if (!json_is_array(records))
        return fail(pe, "Records must be an array");
    if (n == 0)
        return fail(pe, "Records is empty");
    if (n > MAX_RECORDS)
        return fail(pe, "Records has %zu entries; at most %d are accepted", n, MAX_RECORDS);
    out->events = calloc(n, sizeof *out->events);
    if (!out->events)
        return HC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int skip, rc;

        rc = parse_record(json_array_get(records, i), i, &out->events[out->n_events], &skip, pe);
        if (rc) {
            out->n_events++; /* the slot may hold copies; event_batch_free() frees them */
            return rc;
        }
        out->n_events += !skip;
    }
    if (out->n_events == 0)
        out->ignored = "no record is an ObjectCreated or ObjectRemoved event";
    return HC_OK;
}

int event_parse(const char *body, size_t len, struct event_batch *out, char *err, size_t errlen)
{
    struct perr pe = {err, errlen};
    json_error_t jerr;
    json_t *root, *records, *test;
    int rc;

    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return HC_EJSON;
    }
    records = json_object_get(root, "Records");
    test = json_object_get(root, "Event");
    if (!json_is_object(root)) {
        rc = fail(&pe, "the event must be a JSON object");
    } else if (records) {
        rc = parse_records(records, out, &pe);
    } else if (json_is_string(test) && strcmp(json_string_value(test), "s3:TestEvent") == 0) {
        out->format = "s3-test-event";
        out->ignored = "s3:TestEvent";
        rc = HC_OK;
    } else {
        rc = parse_eventbridge(root, out, &pe);
    }
    json_decref(root);
    if (rc) {
        if (rc == HC_ENOMEM)
            snprintf(err, errlen, "out of memory");
        event_batch_free(out);
    }
    return rc;
}

void event_batch_free(struct event_batch *b)
{
    for (size_t i = 0; i < b->n_events; i++) {
        struct object_event *ev = &b->events[i];

        free(ev->dedup_id);
        free(ev->bucket);
        free(ev->key);
        free(ev->raw_key);
        free(ev->etag);
        free(ev->sequencer);
        free(ev->version_id);
        free(ev->time);
        free(ev->reason);
    }
    free(b->events);
    b->events = NULL;
    b->n_events = 0;
}
