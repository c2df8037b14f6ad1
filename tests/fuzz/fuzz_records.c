/*
 * libFuzzer target for server/records.c: parses the input whole, then again in chunks whose
 * sizes come from a generator seeded by the first bytes, and asserts that both runs make the same
 * callbacks, return the same code and report the same error. It also checks what every callback
 * receives: strings are valid UTF-8, facility_id is non-empty, reasons are one line.
 *
 * Build and run (not part of the default Makefile targets):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_records.c \
 *       server/records.c server/error.c aws/buf.c $(pkg-config --cflags --libs jansson) \
 *       -o build/fuzz_records
 *   build/fuzz_records -max_total_time=60 tests/fuzz/corpus/records
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int on_record(void *ctx, const struct facility_record *r)
{
    struct buf *b = ctx;

    if (!r->facility_id || !r->facility_id[0])
        abort();
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
    return 0;
}

static int on_bad(void *ctx, uint64_t pos, const char *reason)
{
    struct buf *b = ctx;

    if (!reason[0] || strchr(reason, '\n') || !valid_utf8(reason))
        abort();
    buf_printf(b, "B%llu %s\n", (unsigned long long)pos, reason);
    return 0;
}

/* Parses data in chunks (seed 0: whole) and returns the log; caller frees. */
static char *parse(const uint8_t *data, size_t size, uint32_t seed, size_t max)
{
    struct buf b;
    struct records_callbacks cb = {on_record, on_bad, &b};
    struct records_parser *p;
    size_t off = 0;
    int rc = HC_OK;
    char *out;

    buf_init(&b, (size_t)1 << 30);
    buf_puts(&b, "");
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
    buf_printf(&b, "rc=%d err=%s seen=%llu fmt=%d", rc, records_error(p),
               (unsigned long long)records_seen(p), (int)records_format(p));
    records_free(p);
    if (b.failed)
        abort();
    out = buf_steal(&b, NULL);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = 1;
    size_t max = 1 << 20;
    char *whole, *chunked;

    for (size_t i = 0; i < size && i < 4; i++)
        seed = seed * 131u + data[i];
    if (size > 0 && data[0] % 3 == 0)
        max = 8 + data[size - 1] % 64; /* exercise the size cap */
    whole = parse(data, size, 0, max);
    chunked = parse(data, size, seed | 1u, max);
    if (strcmp(whole, chunked) != 0) {
        fprintf(stderr, "whole:\n%s\nchunked:\n%s\n", whole, chunked);
        abort();
    }
    free(whole);
    free(chunked);
    return 0;
}
