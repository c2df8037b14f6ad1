/*
 * libFuzzer target for server/records.c: parses the input whole, then again in chunks whose
 * sizes come from a generator seeded by the first bytes, and asserts that both runs make the same
 * callbacks, return the same code and report the same error. It also checks what every callback
 * receives: strings are valid UTF-8, facility_id is non-empty, reasons are one line.
 *
 * For NDJSON input it also checks every line against an independent reference: jansson parses
 * the line and the rules of records.h are applied to the json_t. Lines where jansson and the
 * contract legitimately differ (integers beyond int64, lone surrogate escapes in ignored fields,
 * duplicate ignored keys, nesting limits, the line-size cap) are left out of that comparison.
 *
 * Built and run by `make fuzz` (see the Makefile).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm, strndup */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <time.h>

#include "aws/buf.h"
#include "server/error.h"
#include "server/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned c = *p, n, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* What one parse produced: the log, and each position's entry (for the reference check). */
struct run {
    struct buf log;   /* every callback, in order */
    char **entry;     /* entry[pos]: "R..." or "B<pos> reason", NULL when no callback */
    size_t n_entry;   /* slots in entry */
    size_t cur_start; /* offset in log where the current callback's text starts */
    int rc;           /* what the parse returned */
    char err[256];    /* records_error() */
};

static void note(struct run *r, uint64_t pos)
{
    if (pos >= (uint64_t)1 << 24)
        return;
    if (pos >= r->n_entry) {
        size_t n = (size_t)pos * 2 + 8;
        char **e = realloc(r->entry, n * sizeof(*e));
        if (!e)
            abort();
        memset(e + r->n_entry, 0, (n - r->n_entry) * sizeof(*e));
        r->entry = e;
        r->n_entry = n;
    }
    free(r->entry[pos]);
    r->entry[pos] = strndup(r->log.data + r->cur_start, r->log.len - r->cur_start);
}

static void put(struct buf *b, const char *s)
{
    if (!s) {
        buf_puts(b, "~");
        return;
    }
    if (!valid_utf8(s))
        abort();
    buf_printf(b, "\"%s\"", s);
}

static void render(struct buf *b, const struct facility_record *r)
{
    buf_printf(b, "R%llu", (unsigned long long)r->position);
    put(b, r->facility_id);
    put(b, r->facility_name);
    buf_printf(b, "%d:%lld", r->has_employee_count, (long long)r->employee_count);
    if (r->has_employee_count && r->employee_count < 0)
        abort();
    put(b, r->address);
    put(b, r->city);
    put(b, r->state);
    put(b, r->zip);
    for (size_t i = 0; i < r->n_services; i++)
        put(b, r->services[i]);
    for (size_t i = 0; i < r->n_labs; i++) {
        buf_puts(b, "L");
        put(b, r->labs[i].name);
        for (size_t j = 0; j < r->labs[i].n_certifications; j++)
            put(b, r->labs[i].certifications[j]);
    }
    for (size_t i = 0; i < r->n_accreditations; i++) {
        char d[11];
        buf_puts(b, "A");
        put(b, r->accreditations[i].body);
        put(b, r->accreditations[i].id);
        if (r->accreditations[i].valid_until != RECORDS_NULL_DATE) {
            int32_t back;
            records_format_date(r->accreditations[i].valid_until, d);
            if (records_parse_date(d, 10, &back) || back != r->accreditations[i].valid_until)
                abort();
            buf_puts(b, d);
        }
    }
    buf_puts(b, "\n");
}

static int on_record(void *ctx, const struct facility_record *r)
{
    struct run *run = ctx;

    if (!r->facility_id || !r->facility_id[0])
        abort();
    run->cur_start = run->log.len;
    render(&run->log, r);
    note(run, r->position);
    return 0;
}

static int on_bad(void *ctx, uint64_t pos, const char *reason)
{
    struct run *run = ctx;

    if (!reason[0] || strchr(reason, '\n') || !valid_utf8(reason))
        abort();
    run->cur_start = run->log.len;
    buf_printf(&run->log, "B%llu %s\n", (unsigned long long)pos, reason);
    note(run, pos);
    return 0;
}

/* Parses data in chunks (seed 0: whole) into *run; returns the detected format. */
static enum records_format parse(const uint8_t *data, size_t size, uint32_t seed, size_t max,
                                 struct run *run)
{
    struct buf *b = &run->log;
    struct records_callbacks cb = {on_record, on_bad, run};
    enum records_format fmt;
    struct records_parser *p;
    size_t off = 0;
    int rc = HC_OK;

    buf_init(b, (size_t)1 << 30);
    buf_puts(b, "");
    p = records_new(&cb, max);
    if (!p)
        abort();
    while (off < size && rc == HC_OK) {
        size_t n = size - off;
        if (seed) {
            seed = seed * 1664525u + 1013904223u;
            size_t want = (seed >> 24) % 4 == 0 ? 1 : 1 + (seed >> 8) % 97;
            if (want < n)
                n = want;
        }
        rc = records_feed(p, data + off, n);
        off += n;
    }
    if (rc == HC_OK)
        rc = records_finish(p);
    buf_printf(b, "rc=%d err=%s seen=%llu fmt=%d", rc, records_error(p),
               (unsigned long long)records_seen(p), (int)records_format(p));
    fmt = records_format(p);
    run->rc = rc;
    snprintf(run->err, sizeof(run->err), "%s", records_error(p));
    records_free(p);
    if (b->failed)
        abort();
    return fmt;
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n_entry; i++)
        free(r->entry[i]);
    free(r->entry);
    buf_free(&r->log);
}

/* ---- the reference: jansson plus the rules of records.h, written separately */

static int ref_str(json_t *v, int nullable, const char **out)
{
    if ((!v || json_is_null(v)) && nullable) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

static int ref_date(const char *s, int32_t *days)
{
    struct tm tm = {0}, back;
    int y, m, d;
    time_t t;

    if (strlen(s) != 10)
        return -1;
    for (int i = 0; i < 10; i++)
        if ((i == 4 || i == 7) ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return -1;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 12;
    t = timegm(&tm);
    if (!gmtime_r(&t, &back) || back.tm_year != y - 1900 || back.tm_mon != m - 1 ||
        back.tm_mday != d)
        return -1;
    *days = (int32_t)((t - 43200) / 86400);
    return 0;
}

static int ref_strings(json_t *v, const char **out, size_t *n)
{
    size_t i;
    json_t *e;

    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return -1;
    json_array_foreach(v, i, e)
    {
        if (ref_str(e, 0, &out[(*n)++]))
            return -1;
    }
    return 0;
}

/* Renders the reference's verdict on one record into b: the record, or "B". */
static void ref_record(json_t *j, uint64_t pos, struct buf *b)
{
    static const char *strs[65536];
    static struct record_lab labs[4096];
    static struct record_accreditation accs[4096];
    struct facility_record r = {0};
    json_t *v, *e;
    size_t i, used = 0;

    r.position = pos;
    if (!json_is_object(j))
        goto bad;
    if (ref_str(json_object_get(j, "facility_id"), 0, &r.facility_id) || !r.facility_id[0])
        goto bad;
    if (ref_str(json_object_get(j, "facility_name"), 1, &r.facility_name))
        goto bad;
    v = json_object_get(j, "employee_count");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            goto bad;
        r.has_employee_count = 1;
        r.employee_count = json_integer_value(v);
    }
    v = json_object_get(j, "location");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v) || ref_str(json_object_get(v, "address"), 1, &r.address) ||
            ref_str(json_object_get(v, "city"), 1, &r.city) ||
            ref_str(json_object_get(v, "state"), 1, &r.state) ||
            ref_str(json_object_get(v, "zip"), 1, &r.zip))
            goto bad;
    }
    v = json_object_get(j, "services");
    if (json_array_size(v) > 60000 || ref_strings(v, strs, &r.n_services))
        goto bad;
    r.services = strs;
    used = r.n_services;
    v = json_object_get(j, "labs");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > 4096)
            goto bad;
        json_array_foreach(v, i, e)
        {
            json_t *c = json_object_get(e, "certifications");
            if (!json_is_object(e) || ref_str(json_object_get(e, "lab_name"), 1, &labs[i].name) ||
                used + json_array_size(c) > 65536 ||
                ref_strings(c, strs + used, &labs[i].n_certifications))
                goto bad;
            labs[i].certifications = labs[i].n_certifications ? strs + used : NULL;
            used += labs[i].n_certifications;
        }
        r.n_labs = json_array_size(v);
        r.labs = labs;
    }
    v = json_object_get(j, "accreditations");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > 4096)
            goto bad;
        json_array_foreach(v, i, e)
        {
            json_t *u = json_object_get(e, "valid_until");
            if (!json_is_object(e) ||
                ref_str(json_object_get(e, "accreditation_body"), 1, &accs[i].body) ||
                ref_str(json_object_get(e, "accreditation_id"), 1, &accs[i].id))
                goto bad;
            accs[i].valid_until = RECORDS_NULL_DATE;
            if (u && !json_is_null(u) &&
                (!json_is_string(u) || ref_date(json_string_value(u), &accs[i].valid_until)))
                goto bad;
        }
        r.n_accreditations = json_array_size(v);
        r.accreditations = accs;
    }
    render(b, &r);
    return;
bad:
    buf_puts(b, "B");
}

/* Compares the parser's entry for each NDJSON line with the reference's verdict. Where jansson
 * cannot judge (see skip: e.g. it refuses a key holding \u0000, which the parser rightly treats
 * as an unknown key; test_records records_nul_in_key_is_unknown) the line is not compared. */
static void check_reference(const uint8_t *data, size_t size, size_t max, const struct run *run)
{
    static const char *const skip[] = {"Unicode",   "too big", "overflow",
                                       "duplicate", "depth",   "NUL byte in object key"};
    size_t off = 0, line = 0;

    if (size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        off = 3;
    while (off <= size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        const char *ours;
        int blank = 1;
        json_error_t err;
        json_t *j;
        struct buf ref;

        line++;
        for (size_t i = 0; i < len; i++)
            if (data[off + i] != ' ' && data[off + i] != '\t' && data[off + i] != '\r')
                blank = 0;
        ours = line < run->n_entry ? run->entry[line] : NULL;
        if (blank && len <= max) {
            if (ours)
                abort(); /* a blank line makes no callback */
        } else if (blank) {
            if (ours && ours[0] != 'B')
                abort(); /* a blank line over the cap: skipped, or bad, never a record */
        } else if (!ours) {
            abort(); /* every other line makes one */
        } else if (len > max || memchr(data + off, '\0', len)) {
            if (ours[0] != 'B')
                abort(); /* over the cap, or a raw NUL (jansson stops there): bad */
        } else {
            j = json_loadb((const char *)data + off, len,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
            if (!j) {
                int skipped = 0;
                for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
                    skipped |= strstr(err.text, skip[k]) != NULL;
                if (!skipped && ours[0] != 'B') {
                    fprintf(stderr, "line %zu: jansson says %s, parser says %s\n", line, err.text,
                            ours);
                    abort();
                }
            } else if (!(ours[0] == 'B' &&
                         strncmp(strchr(ours, ' ') + 1, "nesting deeper", 14) == 0)) {
                buf_init(&ref, (size_t)1 << 30);
                ref_record(j, line, &ref);
                if (strcmp(ref.data, "B") == 0
                        ? (ours[0] != 'B' ||
                           strncmp(strchr(ours, ' ') + 1, "not valid JSON", 14) == 0)
                        : strcmp(ref.data, ours) != 0) {
                    fprintf(stderr, "line %zu: reference %s, parser %s\n", line, ref.data, ours);
                    abort();
                }
                buf_free(&ref);
                json_decref(j);
            } else {
                json_decref(j);
            }
        }
        if (!nl)
            break;
        off += len + 1;
    }
}

static int skip_error(const char *text)
{
    static const char *const skip[] = {"Unicode",   "too big", "overflow",
                                       "duplicate", "depth",   "NUL byte in object key"};

    for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
        if (strstr(text, skip[k]))
            return 1;
    return 0;
}

/* The array forms: jansson reads the whole input; it must be unreadable exactly when jansson
 * cannot read it, and each element must get the reference's verdict. */
static void check_reference_array(const uint8_t *data, size_t size, enum records_format fmt,
                                  const struct run *run)
{
    size_t off = size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    json_error_t err;
    json_t *j, *arr, *e;
    size_t i;

    if (memchr(data, '\0', size) || run->rc == HC_ENOMEM)
        return; /* jansson stops at a NUL */
    j = json_loadb((const char *)data + off, size - off, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
                   &err);
    if (!j) {
        /* bytes that are not UTF-8 make a bad record, not an unreadable input */
        if (!skip_error(err.text) && !strstr(err.text, "unable to decode") &&
            run->rc != HC_EBADINPUT) {
            fprintf(stderr, "jansson says %s, parser returned %d\n", err.text, run->rc);
            abort();
        }
        return;
    }
    arr = j;
    if (fmt == RECORDS_FORMAT_WRAPPED)
        arr = json_object_size(j) == 1 ? json_object_iter_value(json_object_iter(j)) : NULL;
    if (!json_is_array(arr)) {
        if (run->rc != HC_EBADINPUT)
            abort(); /* a wrapper with other members is unreadable */
        json_decref(j);
        return;
    }
    if (strstr(run->err, "nests deeper") || strstr(run->err, "is longer than")) {
        json_decref(j);
        return;
    }
    if (run->rc != HC_OK) {
        fprintf(stderr, "jansson reads it, parser returned %d: %s\n", run->rc, run->err);
        abort();
    }
    if (json_array_size(arr) + 1 < run->n_entry && run->entry[json_array_size(arr) + 1])
        abort(); /* more callbacks than elements */
    json_array_foreach(arr, i, e)
    {
        const char *ours = i + 1 < run->n_entry ? run->entry[i + 1] : NULL;
        struct buf ref;

        if (!ours)
            abort();
        buf_init(&ref, (size_t)1 << 30);
        ref_record(e, i + 1, &ref);
        if (strcmp(ref.data, "B") == 0 ? ours[0] != 'B' : strcmp(ref.data, ours) != 0) {
            fprintf(stderr, "element %zu: reference %s, parser %s\n", i + 1, ref.data, ours);
            abort();
        }
        buf_free(&ref);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = 1;
    size_t max = 1 << 20;
    struct run whole = {0}, chunked = {0};
    enum records_format fmt;

    for (size_t i = 0; i < size && i < 4; i++)
        seed = seed * 131u + data[i];
    if (size >= 2 && data[size - 1] % 7 == 0)
        max = 8 + data[size - 2] % 64; /* exercise the size cap */
    fmt = parse(data, size, 0, max, &whole);
    parse(data, size, seed | 1u, max, &chunked);
    if (strcmp(whole.log.data, chunked.log.data) != 0) {
        fprintf(stderr, "whole:\n%s\nchunked:\n%s\n", whole.log.data, chunked.log.data);
        abort();
    }
    if (fmt == RECORDS_FORMAT_NDJSON && whole.rc == HC_OK)
        check_reference(data, size, max, &whole);
    if (fmt == RECORDS_FORMAT_ARRAY || fmt == RECORDS_FORMAT_WRAPPED)
        check_reference_array(data, size, fmt, &whole);
    run_free(&whole);
    run_free(&chunked);
    return 0;
}
