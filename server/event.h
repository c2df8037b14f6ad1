/*
 * event: the parser of S3 object events as they reach POST /events.
 *
 * Three payload shapes are understood:
 *   - an EventBridge event from source "aws.s3" ("Object Created", "Object Deleted"; other
 *     detail-types from aws.s3 are acknowledged and ignored);
 *   - a classic S3 notification, {"Records": [...]} (eventName "ObjectCreated:*" /
 *     "ObjectRemoved:*", or with MinIO's "s3:" prefix, "s3:ObjectCreated:Put"), as S3 -> SNS/SQS
 *     relays and MinIO send it;
 *   - the s3:TestEvent S3 sends when a notification configuration is saved (acknowledged).
 *
 * Keys: a classic key is form-decoded ('+' is a space, then %XX) and must then be valid UTF-8,
 * or the payload is rejected. An EventBridge key is decoded the same way when that succeeds
 * (AWS's own tools do), and kept raw otherwise; the raw key is kept in both cases so the caller
 * can fall back to it when the decoded key does not exist.
 *
 * This module only parses; it knows nothing of jobs or HTTP.
 */
#ifndef HCPIPE_EVENT_H
#define HCPIPE_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum event_kind { EVENT_OBJECT_CREATED, EVENT_OBJECT_DELETED };

/* One object event. Every string is owned by the batch. */
struct object_event {
    enum event_kind kind;
    char *dedup_id;   /* EventBridge `id`, or "<x-amz-request-id>/<raw key>" for Records */
    char *bucket;     /* bucket name as sent */
    char *key;        /* decoded key (UTF-8) */
    char *raw_key;    /* key exactly as in the payload */
    int64_t size;     /* object size, -1 when absent */
    char *etag;       /* NULL when absent */
    char *sequencer;  /* NULL when absent */
    char *version_id; /* NULL when absent */
    char *time;       /* event time, RFC 3339, NULL when absent */
    char *reason;     /* detail.reason or eventName, NULL when absent */
};

struct event_batch {
    struct object_event *events; /* n_events entries */
    size_t n_events;
    const char *ignored; /* when no event applies: why (static text), else NULL */
    const char *format;  /* "eventbridge", "s3-records" or "s3-test-event" (static) */
};

/*
 * Parses a payload. Returns HC_OK and fills *out (free with event_batch_free()); HC_EJSON when the
 * body is not JSON; HC_EBADEVENT when it is JSON but not a valid S3 event (missing or mistyped
 * member, wrong source, bad key encoding, no records). `err` (errlen bytes) receives a one-line
 * reason naming the member at fault.
 */
int event_parse(const char *body, size_t len, struct event_batch *out, char *err, size_t errlen);

void event_batch_free(struct event_batch *b);

/* Form-decodes `len` bytes ('+' -> space, %XX -> byte) into a new string and checks the result is
 * valid UTF-8 without NUL. Returns NULL when an escape is malformed or the result is not valid
 * UTF-8 (or on ENOMEM). */
char *event_form_decode(const char *s, size_t len);

/* Compares two S3 sequencers of the same key: the shorter is right-padded with '0', then they
 * compare as strings. Returns <0, 0 or >0 as a is earlier than, equal to or later than b. */
int event_sequencer_cmp(const char *a, const char *b);

#endif
