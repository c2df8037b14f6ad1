/*
 * libFuzzer target: the CSV and JSON renderers (server/result.c). Random typed rows are rendered
 * through the real result writer, then read back (result.json with jansson, result.csv with the
 * small RFC 4180 reader below) and compared value by value with what was written.
 *
 * Input: byte 0 = column count (1..6); one byte per column = type; per column a name (length
 * byte + bytes); then rows until the input ends: per value a null flag byte and the value
 * (VARCHAR: length byte + bytes, BIGINT/DATE/DOUBLE: 8 bytes, BOOLEAN: 1 byte). Strings are made
 * valid UTF-8 (invalid bytes become '?'): engines hand the writer UTF-8 only. Column names are
 * prefixed "cN_" so they are unique. Expected forms: result.h (a non-finite double and a date
 * outside 0000..9999 are null).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/error.h"
#include "server/result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_COLS 6
#define MAX_ROWS 64

struct reader {
    const uint8_t *p;
    size_t n;
};

static int take(struct reader *r, void *out, size_t n)
{
    if (r->n < n)
        return 0;
    memcpy(out, r->p, n);
    r->p += n;
    r->n -= n;
    return 1;
}

/* Copies up to a length byte's worth of bytes, making them valid UTF-8. Returns malloc'ed. */
static char *take_string(struct reader *r, size_t *len_out)
{
    uint8_t len = 0;
    char *s;
    size_t i = 0;

    if (!take(r, &len, 1))
        len = 0;
    if (len > r->n)
        len = (uint8_t)r->n;
    s = malloc((size_t)len + 1);
    if (!s)
        abort();
    take(r, s, len);
    s[len] = '\0';
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80         ? 0
                      : (c >> 5) == 6  ? 1
                      : (c >> 4) == 14 ? 2
                      : (c >> 3) == 30 ? 3
                                       : 9;
        int ok = need != 9 && i + need < len + 0u && (c != 0xc0 && c != 0xc1 && c < 0xf5);
        for (size_t k = 1; ok && k <= need; k++)
            ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && need == 2) {
            unsigned cp = ((c & 15u) << 12) | (((unsigned char)s[i + 1] & 63u) << 6);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && need == 3) {
            unsigned cp = ((c & 7u) << 18) | (((unsigned char)s[i + 1] & 63u) << 12);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok) {
            s[i++] = '?';
            continue;
        }
        i += need + 1;
    }
    *len_out = len;
    return s;
}

/* Leap years in [0, y) for y >= 0. */
static int64_t leaps_before(int64_t y)
{
    return (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400;
}

/* Days since 1970-01-01 of a civil date, years 0..9999 (independent of result.c's inverse). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    static const int cum[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return 365 * (y - 1970) + leaps_before(y) - leaps_before(1970) + cum[m - 1] + (m > 2 && leap) +
           d - 1;
}

static void check_date(const char *s, size_t len, int64_t days)
{
    int y, m, d, n = 0;

    if (len != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10)
        abort();
    if (m < 1 || m > 12 || d < 1 || d > 31 || days_from_civil(y, m, d) != days)
        abort();
}

static int date_in_range(int64_t days)
{
    return days >= -719528 && days <= 2932896;
}

/* ---- a small RFC 4180 reader: fields of one record; quoted[] says which were quoted ---- */

struct csv {
    const char *p, *end;
};

/* Reads one record. Returns the field count (0 at the end of the input). */
static size_t csv_record(struct csv *c, char **fields, size_t *lens, int *quoted, size_t max)
{
    size_t n = 0;

    if (c->p >= c->end)
        return 0;
    for (;;) {
        char *f = malloc((size_t)(c->end - c->p) + 1);
        size_t len = 0;
        int q = 0;

        if (!f)
            abort();
        if (c->p < c->end && *c->p == '"') {
            q = 1;
            c->p++;
            for (;;) {
                if (c->p >= c->end)
                    abort(); /* unterminated quote */
                if (*c->p == '"') {
                    if (c->p + 1 < c->end && c->p[1] == '"') {
                        f[len++] = '"';
                        c->p += 2;
                        continue;
                    }
                    c->p++;
                    break;
                }
                f[len++] = *c->p++;
            }
        } else {
            while (c->p < c->end && *c->p != ',' && *c->p != '\r' && *c->p != '\n') {
                if (*c->p == '"')
                    abort(); /* a bare quote inside an unquoted field */
                f[len++] = *c->p++;
            }
        }
        f[len] = '\0';
        if (n >= max)
            abort();
        fields[n] = f;
        lens[n] = len;
        quoted[n] = q;
        n++;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->end - c->p < 2 || c->p[0] != '\r' || c->p[1] != '\n')
            abort(); /* every record ends in CRLF */
        c->p += 2;
        return n;
    }
}

static void free_fields(char **fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(fields[i]);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        abort();
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        abort();
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void check_json_value(json_t *got, enum col_type t, const struct value *v)
{
    if (!got)
        abort();
    if (v->is_null || (t == COL_DOUBLE && !isfinite(v->d)) ||
        (t == COL_DATE && !date_in_range(v->i))) {
        if (!json_is_null(got))
            abort();
        return;
    }
    switch (t) {
    case COL_VARCHAR:
        if (!json_is_string(got) || json_string_length(got) != v->len ||
            memcmp(json_string_value(got), v->s, v->len) != 0)
            abort();
        break;
    case COL_BIGINT:
        if (!json_is_integer(got) || json_integer_value(got) != v->i)
            abort();
        break;
    case COL_DATE:
        if (!json_is_string(got))
            abort();
        check_date(json_string_value(got), json_string_length(got), v->i);
        break;
    case COL_DOUBLE:
        if (!json_is_number(got) || json_number_value(got) != v->d)
            abort();
        break;
    case COL_BOOLEAN:
        if (!json_is_boolean(got) || json_is_true(got) != (v->i != 0))
            abort();
        break;
    }
}

static void check_csv_value(const char *f, size_t len, int quoted, enum col_type t,
                            const struct value *v)
{
    char *end = NULL;

    if (v->is_null || (t == COL_DOUBLE && !isfinite(v->d)) ||
        (t == COL_DATE && !date_in_range(v->i))) {
        if (len != 0 || quoted)
            abort();
        return;
    }
    switch (t) {
    case COL_VARCHAR:
        if (len != v->len || memcmp(f, v->s, len) != 0 || (len == 0 && !quoted))
            abort();
        break;
    case COL_BIGINT:
        if (quoted || strtoll(f, &end, 10) != v->i || *end)
            abort();
        break;
    case COL_DATE:
        check_date(f, len, v->i);
        break;
    case COL_DOUBLE:
        if (quoted || strtod(f, &end) != v->d || *end)
            abort();
        break;
    case COL_BOOLEAN:
        if (strcmp(f, v->i ? "true" : "false") != 0)
            abort();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[] = "/dev/shm/fuzz_result_XXXXXX";
    static int have_dir;
    struct reader r = {data, size};
    struct column cols[MAX_COLS];
    char *names[MAX_COLS] = {0};
    struct value rows[MAX_ROWS][MAX_COLS];
    char *strs[MAX_ROWS][MAX_COLS];
    size_t ncols, nrows = 0, len;
    uint8_t b = 0;
    struct result_meta meta = {"job-1", "fuzz", "2024-01-01", "local"};
    struct result_writer *w = NULL;
    struct result_sink sink;
    char path[128], *text;
    json_t *doc, *jrows;
    json_error_t jerr;

    if (!have_dir) {
        if (!mkdtemp(dir))
            abort();
        have_dir = 1;
    }
    memset(strs, 0, sizeof strs);
    if (!take(&r, &b, 1))
        return 0;
    ncols = (size_t)(b % MAX_COLS) + 1;
    for (size_t i = 0; i < ncols; i++) {
        b = 0;
        take(&r, &b, 1);
        cols[i].type = (enum col_type)(b % 5);
    }
    for (size_t i = 0; i < ncols; i++) {
        char *raw = take_string(&r, &len);
        size_t n = len + 16;
        names[i] = malloc(n);
        if (!names[i])
            abort();
        snprintf(names[i], n, "c%zu_%s", i, raw);
        free(raw);
        cols[i].name = names[i];
    }
    while (r.n > 0 && nrows < MAX_ROWS) {
        for (size_t i = 0; i < ncols; i++) {
            struct value *v = &rows[nrows][i];
            uint8_t flag = 0;
            memset(v, 0, sizeof *v);
            take(&r, &flag, 1);
            v->is_null = (flag & 7) == 0;
            switch (cols[i].type) {
            case COL_VARCHAR:
                strs[nrows][i] = take_string(&r, &v->len);
                v->s = strs[nrows][i];
                break;
            case COL_BIGINT:
            case COL_DATE:
                take(&r, &v->i, 8);
                if (cols[i].type == COL_DATE && (flag & 8))
                    v->i %= 4000000; /* mostly in range */
                break;
            case COL_DOUBLE:
                take(&r, &v->d, 8);
                break;
            case COL_BOOLEAN:
                v->i = flag >> 7;
                break;
            }
        }
        nrows++;
    }

    if (result_writer_open(dir, &meta, &w) != HC_OK)
        abort();
    sink = result_writer_sink(w);
    if (sink.columns(sink.ctx, cols, ncols) != HC_OK)
        abort();
    for (size_t k = 0; k < nrows; k++)
        if (sink.row(sink.ctx, rows[k]) != HC_OK)
            abort();
    if (result_writer_rows(w) != nrows)
        abort();
    if (result_writer_commit(w, NULL, NULL, NULL) != HC_OK)
        abort();

    /* result.json */
    snprintf(path, sizeof path, "%s/result.json", dir);
    text = slurp(path, &len);
    doc = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!doc)
        abort();
    free(text);
    jrows = json_object_get(doc, "rows");
    if (!json_is_array(jrows) || json_array_size(jrows) != nrows ||
        json_array_size(json_object_get(doc, "columns")) != ncols)
        abort();
    for (size_t k = 0; k < nrows; k++) {
        json_t *row = json_array_get(jrows, k);
        if (json_object_size(row) != ncols)
            abort();
        for (size_t i = 0; i < ncols; i++)
            check_json_value(json_object_get(row, names[i]), cols[i].type, &rows[k][i]);
    }
    json_decref(doc);

    /* result.csv */
    snprintf(path, sizeof path, "%s/result.csv", dir);
    text = slurp(path, &len);
    {
        struct csv c = {text, text + len};
        char *fields[MAX_COLS];
        size_t lens[MAX_COLS], n;
        int quoted[MAX_COLS];

        n = csv_record(&c, fields, lens, quoted, MAX_COLS);
        if (n != ncols)
            abort();
        for (size_t i = 0; i < ncols; i++)
            if (strcmp(fields[i], names[i]) != 0)
                abort();
        free_fields(fields, n);
        for (size_t k = 0; k < nrows; k++) {
            n = csv_record(&c, fields, lens, quoted, MAX_COLS);
            if (n != ncols)
                abort();
            for (size_t i = 0; i < ncols; i++)
                check_csv_value(fields[i], lens[i], quoted[i], cols[i].type, &rows[k][i]);
            free_fields(fields, n);
        }
        if (csv_record(&c, fields, lens, quoted, MAX_COLS) != 0)
            abort();
    }
    free(text);
    for (size_t k = 0; k < nrows; k++)
        for (size_t i = 0; i < ncols; i++)
            free(strs[k][i]);
    for (size_t i = 0; i < ncols; i++)
        free(names[i]);
    return 0;
}
