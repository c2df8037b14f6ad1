/*
 * records: the streaming parser and validator of facility records (contract in records.h).
 *
 * How it is organised, from the bytes up:
 *   1. small helpers: growable vectors, UTF-8 checks, calendar dates;
 *   2. the record parser: ONE recursive-descent pass over one record's bytes held contiguously
 *      (an NDJSON line or an array element). It checks the JSON grammar, applies the facility
 *      rules, decodes the strings it keeps into a per-record arena (a decoded string plus its NUL
 *      is never longer than its quoted source, so an arena as big as the record never moves), and
 *      skips every other value without building it. Nesting is bounded by MAX_DEPTH, so the
 *      recursion is bounded too;
 *   3. framing: NDJSON lines are found with memchr(); array elements with a scanner that only
 *      counts brackets and tracks strings. A record that lies within one chunk is parsed in place;
 *      one that straddles chunks is copied into the carry buffer (at most max_record_bytes);
 *   4. format detection over the first bytes, then the public functions.
 * No callback sees a different sequence whatever the chunk sizes, because every decision is made
 * on complete records or byte by byte.
 */
#include "server/records.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "server/error.h"

#define MAX_DEPTH  512 /* deepest nesting accepted inside a record */
#define REASON_MAX 256 /* bytes of a bad-record reason */
#define SNIP_MAX   40  /* bytes of input quoted in a reason */

/* ---------------------------------------------------------------- helpers */

struct vec {
    void *data; /* elements, owned */
    size_t len; /* elements used */
    size_t cap; /* elements allocated */
};

static int vec_reserve(struct vec *v, size_t elem, size_t n)
{
    size_t cap;
    void *d;

    if (n <= v->cap)
        return 0;
    cap = v->cap ? v->cap : 16;
    while (cap < n)
        cap *= 2;
    d = realloc(v->data, cap * elem);
    if (!d)
        return -1;
    v->data = d;
    v->cap = cap;
    return 0;
}

static int vec_append(struct vec *v, const void *src, size_t n)
{
    if (vec_reserve(v, 1, v->len + n))
        return -1;
    memcpy((char *)v->data + v->len, src, n);
    v->len += n;
    return 0;
}

/* Appends one element of `elem` bytes. */
static int vec_push(struct vec *v, const void *src, size_t elem)
{
    if (vec_reserve(v, elem, v->len + 1))
        return -1;
    memcpy((char *)v->data + v->len * elem, src, elem);
    v->len++;
    return 0;
}

static void vec_free(struct vec *v)
{
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

static int is_ws(unsigned c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Length of the valid UTF-8 sequence starting at p (a byte >= 0x80), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t avail = (size_t)(end - p);

    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

static int utf8_valid(const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    size_t k;

    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        k = utf8_len(p, end);
        if (!k)
            return 0;
        p += k;
    }
    return 1;
}

static char *utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

static int is_leap(int y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (the classic era/day-of-era method). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int records_parse_date(const char *s, size_t len, int32_t *days_out)
{
    static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 0;
    unsigned m, d, dim;

    if (len != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    }
    for (int i = 0; i < 4; i++)
        y = y * 10 + (s[i] - '0');
    m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    if (m < 1 || m > 12)
        return -1;
    dim = mdays[m - 1] + (m == 2 && is_leap(y));
    if (d < 1 || d > dim)
        return -1;
    *days_out = (int32_t)days_from_civil(y, m, d);
    return 0;
}

void records_format_date(int32_t days, char out[11])
{
    int64_t z = (int64_t)days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;

    y += m <= 2;
    if (y < 0 || y > 9999) { /* outside what records_parse_date() accepts */
        y = y < 0 ? 0 : 9999;
        m = y ? 12 : 1;
        d = y ? 31 : 1;
    }
    out[0] = (char)('0' + y / 1000);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

/* ---------------------------------------------------------------- the parser object */

enum { D_START, D_OBJ, D_KEY, D_COLON, D_VALUE };         /* format detection states */
enum { A_FIRST, A_NEXT, A_ELEM, A_AFTER, A_END, A_DONE }; /* array framing states */
enum { K_VALUE, K_SCALAR };                               /* kinds of array element */

struct records_parser {
    struct records_callbacks cb; /* copied from records_new() */
    size_t max;                  /* max_record_bytes */
    enum records_format fmt;     /* UNKNOWN while detecting */
    int err;                     /* sticky result: the first error */
    int finished;                /* records_finish() was called */
    char errmsg[256];            /* why the input is unreadable */
    uint64_t bytes;              /* bytes fed so far */
    uint64_t seen;               /* records reported (valid + bad) */

    /* Detection: leading whitespace is counted, not kept; from the first '{' on, bytes are kept
     * in dbuf until the format is known, then replayed. */
    int dstate;          /* D_* */
    unsigned bom;        /* bytes of a UTF-8 BOM matched at the start */
    int kesc;            /* inside the first key: the last byte was a backslash */
    int khex;            /* inside the first key: hex digits of a \u escape still to come */
    int key_escaped;     /* the first key holds an escape */
    size_t klen;         /* bytes of the first key (key[] keeps the first 16) */
    char key[16];        /* the first key, raw */
    uint64_t lead_lines; /* newlines before the first non-space byte */
    size_t lead_cols;    /* bytes skipped on that byte's line (BOM, spaces) */
    struct vec dbuf;     /* bytes held while detecting */

    uint64_t line;     /* NDJSON: number of the line being read */
    uint64_t col_line; /* NDJSON: the line whose first col0 bytes were skipped by detection */
    size_t col0;       /* NDJSON: those bytes, added to the columns of reasons */
    int too_long;      /* NDJSON: the current line passed max; its bytes are dropped */

    int astate;        /* A_*: where the array framer is */
    int kind;          /* K_*: the element being framed */
    int depth;         /* bracket depth inside the element */
    int in_str, esc;   /* inside a string of the element; after a backslash */
    size_t elen;       /* bytes of the element so far */
    uint64_t elem_off; /* byte offset of the element's first byte */
    uint64_t index;    /* elements seen */

    struct vec carry; /* bytes of a record that straddles chunks */

    char *arena;             /* decoded strings of the current record */
    size_t arena_cap;        /* bytes allocated for arena */
    struct vec services;     /* const char * */
    struct vec certs;        /* const char *, every lab's certifications in order */
    struct vec labs;         /* struct record_lab */
    struct vec accs;         /* struct record_accreditation */
    char reason[REASON_MAX]; /* the reason handed to the bad callback */
};

static int fail_input(struct records_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail_input(struct records_parser *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    p->err = HC_EBADINPUT;
    return p->err;
}

static int set_err(struct records_parser *p, int err)
{
    if (err && !p->err)
        p->err = err;
    return err;
}

/* ---------------------------------------------------------------- the record parser */

enum { FAIL_NONE, FAIL_SYNTAX, FAIL_DEPTH, FAIL_NOMEM };

#define S_NUL  1u /* the string holds \u0000 */
#define S_UTF8 2u /* the string holds bytes that are not UTF-8 */
#define S_SURR 4u /* the string holds an unpaired surrogate escape */

/* Where a value sits, for reasons: f1[i1].f2[i2], parts absent when NULL or -1. */
struct path {
    const char *f1;
    int64_t i1;
    const char *f2;
    int64_t i2;
};

struct rp {
    const unsigned char *p;     /* next byte */
    const unsigned char *end;   /* end of the record's bytes */
    const unsigned char *start; /* first byte of the record */
    char *w;                    /* arena write position */
    int depth;                  /* containers open */
    int fail;                   /* FAIL_*: parsing stopped */
    const char *fail_msg;       /* static text of a syntax failure */
    size_t fail_at;             /* byte index of the failure in the record, plus col0 */
    size_t col0;                /* bytes of the line before start (NDJSON first line) */
    int bad;                    /* a rule is broken; reason says which */
    char *reason;               /* REASON_MAX bytes */
    struct records_parser *ps;  /* vectors */
    struct facility_record rec; /* filled while parsing */
};

static int syn(struct rp *r, const char *msg)
{
    if (!r->fail) {
        r->fail = FAIL_SYNTAX;
        r->fail_msg = r->p < r->end ? msg : "unexpected end of the record";
        r->fail_at = (size_t)(r->p - r->start) + r->col0;
    }
    return -1;
}

static int unexpected(struct rp *r)
{
    return syn(r, r->p < r->end ? "unexpected character" : "unexpected end of record");
}

static int nomem(struct rp *r)
{
    r->fail = FAIL_NOMEM;
    return -1;
}

static int peek(const struct rp *r)
{
    return r->p < r->end ? *r->p : -1;
}

static inline __attribute__((always_inline)) void skip_ws(struct rp *r)
{
    if (r->p<r->end && * r->p> ' ')
        return; /* the common case: no whitespace at all */
    while (r->p < r->end && is_ws(*r->p))
        r->p++;
}

static size_t path_fmt(char *out, size_t cap, const struct path *pp)
{
    int n = snprintf(out, cap, "%s", pp->f1);

    if (pp->i1 >= 0 && n >= 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "[%lld]", (long long)pp->i1);
    if (pp->f2 && n >= 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, ".%s", pp->f2);
    if (pp->i2 >= 0 && n >= 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "[%lld]", (long long)pp->i2);
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

static void bad(struct rp *r, const struct path *pp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first broken rule: "path: message". Parsing goes on to check the grammar. */
static void bad(struct rp *r, const struct path *pp, const char *fmt, ...)
{
    va_list ap;
    size_t n = 0;

    if (r->bad)
        return;
    r->bad = 1;
    if (pp) {
        n = path_fmt(r->reason, REASON_MAX, pp);
        if (n + 2 < REASON_MAX) {
            memcpy(r->reason + n, ": ", 3);
            n += 2;
        }
    }
    va_start(ap, fmt);
    vsnprintf(r->reason + n, REASON_MAX - n, fmt, ap);
    va_end(ap);
}

/* Quotes up to SNIP_MAX bytes of the token at s (a string with its quotes, or a bare token) into
 * out, as valid one-line UTF-8. */
static void snippet(const unsigned char *s, const unsigned char *end, char *out, size_t cap)
{
    size_t n = 0, lim = cap - 4 < SNIP_MAX ? cap - 4 : SNIP_MAX;
    int str = s < end && *s == '"', esc = 0, cut = 0;

    while (s + n < end) {
        unsigned c = s[n];
        if (c < 0x20 || (!str && (is_ws(c) || c == ',' || c == '}' || c == ']')))
            break;
        if (n == lim) {
            cut = 1;
            break;
        }
        n++;
        if (str && n > 1) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                break;
        }
    }
    if (cut) {
        while (n > 0 && (s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    if (!utf8_valid((const unsigned char *)out, n)) {
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)out[i] >= 0x80)
                out[i] = '?';
    }
    if (cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* Describes the value at r->p for a type-mismatch reason. */
static void bad_type(struct rp *r, const struct path *pp, const char *expected)
{
    char snip[SNIP_MAX + 8];
    int c = peek(r);

    if (r->bad)
        return;
    if (c == '{')
        bad(r, pp, "expected %s, got an object", expected);
    else if (c == '[')
        bad(r, pp, "expected %s, got an array", expected);
    else {
        snippet(r->p, r->end, snip, sizeof(snip));
        bad(r, pp, "expected %s, got %s", expected, snip);
    }
}

static int is_hex(unsigned c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/*
 * Scans a string whose opening quote is just before r->p. With o != NULL, decodes it into o
 * (NUL-terminated, length in *len_out). *flags receives S_* bits. Returns 0, or -1 on a syntax
 * error. A decoded string is never longer than its source, which keeps the arena in bounds.
 */
static int str_scan(struct rp *r, char *o, size_t *len_out, unsigned *flags)
{
    const unsigned char *p = r->p, *end = r->end;
    char *o0 = o;
    unsigned fl = 0, cp, lo;
#ifdef __SSE2__
    const __m128i vq = _mm_set1_epi8('"'), vb = _mm_set1_epi8('\\'), vs = _mm_set1_epi8(0x20);
#endif

    for (;;) {
#ifdef __SSE2__
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vq), _mm_cmpeq_epi8(v, vb)),
                                     _mm_cmplt_epi8(v, vs)); /* signed: also catches >= 0x80 */
            unsigned mask = (unsigned)_mm_movemask_epi8(m);
            if (o)
                _mm_storeu_si128((__m128i *)(void *)o, v);
            if (mask) {
                unsigned k = (unsigned)__builtin_ctz(mask);
                p += k;
                if (o)
                    o += k;
                break;
            }
            p += 16;
            if (o)
                o += 16;
        }
#endif
        if (p >= end) {
            r->p = p;
            return syn(r, "unterminated string");
        }
        unsigned c = *p;
        if (c == '"')
            break;
        if (c == '\\') {
            if (end - p < 2) {
                r->p = p;
                return syn(r, "unterminated string");
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
                c = p[1];
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u':
                if (end - p < 6 || hex4(p + 2, &cp)) {
                    r->p = p;
                    return syn(r, "invalid \\u escape");
                }
                p += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) == 0 &&
                        lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    } else {
                        fl |= S_SURR;
                        continue;
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fl |= S_SURR;
                    continue;
                }
                if (cp == 0)
                    fl |= S_NUL;
                if (o)
                    o = utf8_put(o, cp);
                continue;
            default:
                r->p = p;
                return syn(r, "invalid escape in a string");
            }
            if (o)
                *o++ = (char)c;
            p += 2;
        } else if (c < 0x20) {
            r->p = p;
            return syn(r, "control character in a string");
        } else if (c < 0x80) {
            if (o)
                *o++ = (char)c;
            p++;
        } else {
            size_t k = utf8_len(p, end);
            if (!k) {
                fl |= S_UTF8;
                k = 1;
            }
            if (o) {
                memcpy(o, p, k);
                o += k;
            }
            p += k;
        }
    }
    if (o) {
        *o = '\0';
        *len_out = (size_t)(o - o0);
    }
    r->p = p + 1;
    *flags = fl;
    return 0;
}

static void bad_utf8_at(struct rp *r, const unsigned char *at)
{
    bad(r, NULL, "invalid UTF-8 in a string at column %zu", (size_t)(at - r->start) + r->col0 + 1);
}

static int skip_value(struct rp *r);

static int open_container(struct rp *r)
{
    if (++r->depth > MAX_DEPTH) {
        r->fail = FAIL_DEPTH;
        r->fail_at = (size_t)(r->p - r->start) + r->col0;
        return -1;
    }
    r->p++;
    skip_ws(r);
    return 0;
}

static int is_null(const struct rp *r)
{
    return r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0;
}

/* Consumes a null at r->p: 1 if there was one, else 0 (nothing consumed). */
static int take_null(struct rp *r)
{
    if (!is_null(r))
        return 0;
    r->p += 4;
    return 1;
}

/* Opens the object or array at r->p (close is its closing byte): 1 when a member or element
 * follows, 0 when it is empty (closed again), -1 on a failure. */
static int open_nonempty(struct rp *r, int close)
{
    if (open_container(r))
        return -1;
    if (peek(r) != close)
        return 1;
    r->p++;
    r->depth--;
    return 0;
}

/* After a member or element: 1 for another (',' consumed), 0 at the close (consumed), -1. */
static int next_or_close(struct rp *r, int close)
{
    skip_ws(r);
    if (peek(r) == ',') {
        r->p++;
        skip_ws(r);
        return 1;
    }
    if (peek(r) == close) {
        r->p++;
        r->depth--;
        return 0;
    }
    return syn(r, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* Reads a key and its colon; the decoded key is left at r->w (not kept). Returns its length
 * (SIZE_MAX when it cannot name a field), or sets a failure. */
static int read_key(struct rp *r, size_t *klen_out)
{
    const unsigned char *at = r->p;
    unsigned fl;

    if (peek(r) != '"')
        return syn(r, "expected a key");
    r->p++;
    if (str_scan(r, r->w, klen_out, &fl))
        return -1;
    if (fl & S_UTF8)
        bad_utf8_at(r, at);
    if (fl)
        *klen_out = SIZE_MAX;
    skip_ws(r);
    if (peek(r) != ':')
        return syn(r, "expected ':'");
    r->p++;
    skip_ws(r);
    return 0;
}

static int key_is(const struct rp *r, size_t klen, const char *name, size_t n)
{
    return klen == n && memcmp(r->w, name, n) == 0;
}

static int skip_number(struct rp *r, int *is_int)
{
    const unsigned char *p = r->p, *end = r->end;

    *is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        r->p = p;
        return syn(r, "invalid number");
    }
    if (p < end && *p == '.') {
        *is_int = 0;
        p++;
        if (!(p < end && *p >= '0' && *p <= '9')) {
            r->p = p;
            return syn(r, "invalid number");
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!(p < end && *p >= '0' && *p <= '9')) {
            r->p = p;
            return syn(r, "invalid number");
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    r->p = p;
    return 0;
}

static int literal(struct rp *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return unexpected(r);
    r->p += n;
    return 0;
}

static int skip_value(struct rp *r)
{
    int c = peek(r), is_int, more;
    const unsigned char *at = r->p;
    unsigned fl;
    size_t klen;

    switch (c) {
    case '"':
        r->p++;
        if (str_scan(r, NULL, NULL, &fl))
            return -1;
        if (fl & S_UTF8)
            bad_utf8_at(r, at);
        return 0;
    case '{':
        more = open_nonempty(r, '}');
        while (more > 0) {
            if (peek(r) != '"')
                return syn(r, "expected a key");
            at = r->p++;
            if (str_scan(r, NULL, &klen, &fl))
                return -1;
            if (fl & S_UTF8)
                bad_utf8_at(r, at);
            skip_ws(r);
            if (peek(r) != ':')
                return syn(r, "expected ':'");
            r->p++;
            skip_ws(r);
            if (skip_value(r))
                return -1;
            more = next_or_close(r, '}');
        }
        return more;
    case '[':
        more = open_nonempty(r, ']');
        while (more > 0) {
            if (skip_value(r))
                return -1;
            more = next_or_close(r, ']');
        }
        return more;
    case 't':
        return literal(r, "true", 4);
    case 'f':
        return literal(r, "false", 5);
    case 'n':
        return literal(r, "null", 4);
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return skip_number(r, &is_int);
        return syn(r, r->p < r->end ? "expected a value" : "unexpected end of record");
    }
}

/* A kept string at r->p (its quote): decoded into the arena. */
static int kept_string(struct rp *r, const struct path *pp, const char **out, size_t *len_out)
{
    char *o = r->w;
    size_t len;
    unsigned fl;

    r->p++;
    if (str_scan(r, o, &len, &fl))
        return -1;
    r->w = o + len + 1;
    if (fl & S_UTF8)
        bad(r, pp, "invalid UTF-8 in the string");
    else if (fl & S_NUL)
        bad(r, pp, "the string holds \\u0000");
    else if (fl & S_SURR)
        bad(r, pp, "the string holds an unpaired surrogate escape");
    *out = o;
    if (len_out)
        *len_out = len;
    return 0;
}

static int str_or_null(struct rp *r, const struct path *pp, const char **out)
{
    if (peek(r) == '"')
        return kept_string(r, pp, out, NULL);
    if (take_null(r)) {
        *out = NULL;
        return 0;
    }
    bad_type(r, pp, "a string or null");
    return skip_value(r);
}

static int employee_count(struct rp *r)
{
    static const struct path pp = {"employee_count", -1, NULL, -1};
    const unsigned char *s = r->p;
    char snip[SNIP_MAX + 8];
    int c = peek(r), is_int;
    uint64_t v = 0;

    if (take_null(r)) {
        r->rec.has_employee_count = 0;
        return 0;
    }
    if (c != '-' && !(c >= '0' && c <= '9')) {
        bad_type(r, &pp, "a non-negative integer or null");
        return skip_value(r);
    }
    if (skip_number(r, &is_int))
        return -1;
    snippet(s, r->p, snip, sizeof(snip));
    if (!is_int) {
        bad(r, &pp, "%s is not an integer", snip);
        return 0;
    }
    if (*s == '-' && !(r->p - s == 2 && s[1] == '0')) { /* -0 is zero */
        bad(r, &pp, "%s is negative", snip);
        return 0;
    }
    if (*s == '-')
        s++;
    for (; s < r->p; s++) {
        unsigned dgt = (unsigned)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - dgt) / 10) {
            bad(r, &pp, "%s is out of range", snip);
            return 0;
        }
        v = v * 10 + dgt;
    }
    r->rec.employee_count = (int64_t)v;
    r->rec.has_employee_count = 1;
    return 0;
}

static void duplicate(struct rp *r, const struct path *pp, const char *key)
{
    bad(r, pp, "duplicate key \"%s\"", key);
}

/* Member key of the object at pp, bit in *seen: reports a repeat at pp (without a member), then
 * points pp at the member for its value's reasons. */
static void member(struct rp *r, struct path *pp, unsigned *seen, unsigned bit, const char *key)
{
    pp->f2 = NULL;
    if (*seen & bit)
        duplicate(r, pp, key);
    *seen |= bit;
    pp->f2 = key;
}

static int location(struct rp *r)
{
    static const char *const names[4] = {"address", "city", "state", "zip"};
    static const size_t lens[4] = {7, 4, 5, 3};
    const char **slots[4] = {&r->rec.address, &r->rec.city, &r->rec.state, &r->rec.zip};
    struct path pp = {"location", -1, NULL, -1};
    unsigned seen = 0;
    size_t klen;
    int more, f;

    if (take_null(r))
        return 0;
    if (peek(r) != '{') {
        bad_type(r, &pp, "an object or null");
        return skip_value(r);
    }
    more = open_nonempty(r, '}');
    while (more > 0) {
        if (read_key(r, &klen))
            return -1;
        f = -1;
        for (int i = 0; i < 4; i++)
            if (key_is(r, klen, names[i], lens[i]))
                f = i;
        if (f < 0) {
            if (skip_value(r))
                return -1;
        } else {
            member(r, &pp, &seen, 1u << f, names[f]);
            if (str_or_null(r, &pp, slots[f]))
                return -1;
        }
        more = next_or_close(r, '}');
    }
    return more;
}

/* An array of strings or null at r->p, appended to v; pp's index slot *idx is set per element. */
static int string_array(struct rp *r, struct path *pp, int64_t *idx, struct vec *v, size_t *n_out)
{
    const char *s;
    int more;

    *n_out = 0;
    if (take_null(r))
        return 0;
    if (peek(r) != '[') {
        bad_type(r, pp, "an array of strings or null");
        return skip_value(r);
    }
    more = open_nonempty(r, ']');
    *idx = 0;
    while (more > 0) {
        if (peek(r) == '"') {
            if (kept_string(r, pp, &s, NULL))
                return -1;
            if (vec_push(v, &s, sizeof(s)))
                return nomem(r);
            (*n_out)++;
        } else {
            bad_type(r, pp, "a string");
            if (skip_value(r))
                return -1;
        }
        (*idx)++;
        more = next_or_close(r, ']');
    }
    *idx = -1;
    return more;
}

static int lab(struct rp *r, int64_t i)
{
    struct record_lab l = {NULL, 0, NULL};
    struct path pp = {"labs", i, NULL, -1};
    unsigned seen = 0;
    size_t klen;
    int more;

    more = open_nonempty(r, '}');
    while (more > 0) {
        if (read_key(r, &klen))
            return -1;
        if (key_is(r, klen, "lab_name", 8)) {
            member(r, &pp, &seen, 1u, "lab_name");
            if (str_or_null(r, &pp, &l.name))
                return -1;
        } else if (key_is(r, klen, "certifications", 14)) {
            member(r, &pp, &seen, 2u, "certifications");
            if (string_array(r, &pp, &pp.i2, &r->ps->certs, &l.n_certifications))
                return -1;
        } else if (skip_value(r)) {
            return -1;
        }
        more = next_or_close(r, '}');
    }
    if (more < 0)
        return -1;
    return vec_push(&r->ps->labs, &l, sizeof(l)) ? nomem(r) : 0;
}

static int accreditation(struct rp *r, int64_t i)
{
    struct record_accreditation a = {NULL, NULL, RECORDS_NULL_DATE};
    struct path pp = {"accreditations", i, NULL, -1};
    char snip[SNIP_MAX + 8];
    unsigned seen = 0;
    const unsigned char *at;
    const char *s;
    size_t klen, len;
    int more;

    more = open_nonempty(r, '}');
    while (more > 0) {
        if (read_key(r, &klen))
            return -1;
        if (key_is(r, klen, "accreditation_body", 18)) {
            member(r, &pp, &seen, 1u, "accreditation_body");
            if (str_or_null(r, &pp, &a.body))
                return -1;
        } else if (key_is(r, klen, "accreditation_id", 16)) {
            member(r, &pp, &seen, 2u, "accreditation_id");
            if (str_or_null(r, &pp, &a.id))
                return -1;
        } else if (key_is(r, klen, "valid_until", 11)) {
            member(r, &pp, &seen, 4u, "valid_until");
            at = r->p;
            if (peek(r) == '"') {
                if (kept_string(r, &pp, &s, &len))
                    return -1;
                if (records_parse_date(s, len, &a.valid_until)) {
                    snippet(at, r->p, snip, sizeof(snip));
                    bad(r, &pp, "%s is not a valid date", snip);
                }
            } else if (take_null(r)) {
                a.valid_until = RECORDS_NULL_DATE;
            } else {
                bad_type(r, &pp, "a date \"YYYY-MM-DD\" or null");
                if (skip_value(r))
                    return -1;
            }
        } else if (skip_value(r)) {
            return -1;
        }
        more = next_or_close(r, '}');
    }
    if (more < 0)
        return -1;
    return vec_push(&r->ps->accs, &a, sizeof(a)) ? nomem(r) : 0;
}

/* labs or accreditations: an array of objects, or null. */
static int object_array(struct rp *r, const char *field, int (*element)(struct rp *, int64_t))
{
    struct path pp = {field, -1, NULL, -1};
    int64_t i = 0;
    int more;

    if (take_null(r))
        return 0;
    if (peek(r) != '[') {
        bad_type(r, &pp, "an array or null");
        return skip_value(r);
    }
    more = open_nonempty(r, ']');
    while (more > 0) {
        if (peek(r) == '{') {
            if (element(r, i))
                return -1;
        } else {
            pp.i1 = i;
            bad_type(r, &pp, "an object");
            if (skip_value(r))
                return -1;
        }
        i++;
        more = next_or_close(r, ']');
    }
    return more;
}

enum { F_ID, F_NAME, F_COUNT, F_LOCATION, F_SERVICES, F_LABS, F_ACCS, F_UNKNOWN };

static int top_field(const struct rp *r, size_t klen)
{
    switch (klen) {
    case 4:
        return key_is(r, klen, "labs", 4) ? F_LABS : F_UNKNOWN;
    case 8:
        if (key_is(r, klen, "services", 8))
            return F_SERVICES;
        return key_is(r, klen, "location", 8) ? F_LOCATION : F_UNKNOWN;
    case 11:
        return key_is(r, klen, "facility_id", 11) ? F_ID : F_UNKNOWN;
    case 13:
        return key_is(r, klen, "facility_name", 13) ? F_NAME : F_UNKNOWN;
    case 14:
        if (key_is(r, klen, "employee_count", 14))
            return F_COUNT;
        return key_is(r, klen, "accreditations", 14) ? F_ACCS : F_UNKNOWN;
    default:
        return F_UNKNOWN;
    }
}

/* The record at r->p: fills r->rec and the vectors, or sets r->bad / r->fail. */
static int record(struct rp *r)
{
    static const char *const names[F_UNKNOWN] = {"facility_id",   "facility_name", "employee_count",
                                                 "location",      "services",      "labs",
                                                 "accreditations"};
    struct path pp = {NULL, -1, NULL, -1};
    unsigned seen = 0;
    size_t klen, len;
    int more, f;

    if (peek(r) != '{') {
        if (skip_value(r))
            return -1;
        bad(r, NULL, "record is not an object");
        return 0;
    }
    more = open_nonempty(r, '}');
    while (more > 0) {
        if (read_key(r, &klen))
            return -1;
        f = top_field(r, klen);
        if (f != F_UNKNOWN) {
            if (seen & (1u << f))
                duplicate(r, NULL, names[f]);
            seen |= 1u << f;
            pp.f1 = names[f];
        }
        switch (f) {
        case F_ID:
            if (peek(r) == '"') {
                if (kept_string(r, &pp, &r->rec.facility_id, &len))
                    return -1;
                if (len == 0)
                    bad(r, &pp, "must not be empty");
            } else {
                bad_type(r, &pp, "a non-empty string");
                if (skip_value(r))
                    return -1;
            }
            break;
        case F_NAME:
            if (str_or_null(r, &pp, &r->rec.facility_name))
                return -1;
            break;
        case F_COUNT:
            if (employee_count(r))
                return -1;
            break;
        case F_LOCATION:
            if (location(r))
                return -1;
            break;
        case F_SERVICES:
            if (string_array(r, &pp, &pp.i1, &r->ps->services, &r->rec.n_services))
                return -1;
            break;
        case F_LABS:
            if (object_array(r, "labs", lab))
                return -1;
            break;
        case F_ACCS:
            if (object_array(r, "accreditations", accreditation))
                return -1;
            break;
        default:
            if (skip_value(r))
                return -1;
        }
        more = next_or_close(r, '}');
    }
    if (more < 0)
        return -1;
    if (!(seen & (1u << F_ID)))
        bad(r, NULL, "facility_id: missing");
    return 0;
}

static int call_bad(struct records_parser *p, uint64_t pos, const char *reason)
{
    p->seen++;
    if (p->cb.bad)
        return set_err(p, p->cb.bad(p->cb.ctx, pos, reason));
    return HC_OK;
}

/*
 * Parses one record's bytes (an NDJSON line, or an array element at byte offset `off`) and calls
 * the callbacks. Returns HC_OK or the sticky error.
 */
static int handle_record(struct records_parser *p, const unsigned char *d, size_t n, uint64_t pos,
                         int ndjson, uint64_t off)
{
    struct rp r;
    struct record_lab *labs;
    size_t k = 0;

    if (p->arena_cap < n + 64 || (p->arena_cap > (4u << 20) && n + 64 < (64u << 10))) {
        char *a = malloc(n + 64);
        if (!a)
            return set_err(p, HC_ENOMEM);
        if (p->arena_cap > n + 64) { /* after a huge record: give its memory back */
            vec_free(&p->services);
            vec_free(&p->certs);
            vec_free(&p->labs);
            vec_free(&p->accs);
            if (p->carry.len == 0)
                vec_free(&p->carry);
        }
        free(p->arena);
        p->arena = a;
        p->arena_cap = n + 64;
    }
    memset(&r, 0, sizeof(r));
    r.p = r.start = d;
    r.end = d + n;
    r.w = p->arena;
    r.reason = p->reason;
    r.ps = p;
    r.col0 = ndjson && pos == p->col_line ? p->col0 : 0;
    p->services.len = p->certs.len = p->labs.len = p->accs.len = 0;
    skip_ws(&r);
    if (ndjson && r.p == r.end)
        return HC_OK; /* a blank line */
    if (record(&r) == 0) {
        skip_ws(&r);
        if (r.p != r.end)
            syn(&r, "unexpected data after the record");
    }
    if (r.fail == FAIL_NOMEM)
        return set_err(p, HC_ENOMEM);
    if (r.fail && !ndjson) {
        if (r.fail == FAIL_DEPTH)
            return fail_input(p, "element %llu nests deeper than %d levels at byte offset %llu",
                              (unsigned long long)pos, MAX_DEPTH,
                              (unsigned long long)(off + r.fail_at));
        return fail_input(p, "invalid JSON at byte offset %llu (element %llu): %s",
                          (unsigned long long)(off + r.fail_at), (unsigned long long)pos,
                          r.fail_msg);
    }
    if (r.fail == FAIL_DEPTH) {
        snprintf(p->reason, REASON_MAX, "nesting deeper than %d levels at column %zu", MAX_DEPTH,
                 r.fail_at + 1);
        return call_bad(p, pos, p->reason);
    }
    if (r.fail) {
        snprintf(p->reason, REASON_MAX, "not valid JSON: %s at column %zu", r.fail_msg,
                 r.fail_at + 1);
        return call_bad(p, pos, p->reason);
    }
    if (r.bad)
        return call_bad(p, pos, p->reason);

    r.rec.position = pos;
    r.rec.services = (const char *const *)p->services.data;
    r.rec.n_labs = p->labs.len;
    labs = p->labs.data;
    r.rec.labs = labs;
    for (size_t i = 0; i < p->labs.len; i++) {
        labs[i].certifications = labs[i].n_certifications ? (const char **)p->certs.data + k : NULL;
        k += labs[i].n_certifications;
    }
    r.rec.n_accreditations = p->accs.len;
    r.rec.accreditations = p->accs.data;
    p->seen++;
    if (p->cb.record)
        return set_err(p, p->cb.record(p->cb.ctx, &r.rec));
    return HC_OK;
}

/* ---------------------------------------------------------------- framing: NDJSON */

static int nd_long(struct records_parser *p)
{
    snprintf(p->reason, REASON_MAX, "line is longer than %zu bytes", p->max);
    return call_bad(p, p->line, p->reason);
}

static int nd_feed(struct records_parser *p, const unsigned char *d, size_t n)
{
    int rc = HC_OK;

    while (n > 0 && rc == HC_OK) {
        const unsigned char *nl = memchr(d, '\n', n);
        size_t take = nl ? (size_t)(nl - d) : n;

        if (!nl) {
            if (p->too_long)
                break;
            if (p->carry.len + take > p->max) {
                p->too_long = 1;
                p->carry.len = 0;
            } else if (vec_append(&p->carry, d, take)) {
                rc = set_err(p, HC_ENOMEM);
            }
            break;
        }
        if (p->too_long || p->carry.len + take > p->max) {
            rc = nd_long(p);
        } else if (p->carry.len == 0) {
            rc = handle_record(p, d, take, p->line, 1, 0);
        } else if (vec_append(&p->carry, d, take)) {
            rc = set_err(p, HC_ENOMEM);
        } else {
            rc = handle_record(p, p->carry.data, p->carry.len, p->line, 1, 0);
        }
        p->carry.len = 0;
        p->too_long = 0;
        p->line++;
        d = nl + 1;
        n -= take + 1;
    }
    return rc;
}

static int nd_finish(struct records_parser *p)
{
    if (p->too_long)
        return nd_long(p);
    if (p->carry.len)
        return handle_record(p, p->carry.data, p->carry.len, p->line, 1, 0);
    return HC_OK;
}

/* ---------------------------------------------------------------- framing: arrays */

static int is_delim(unsigned c)
{
    return is_ws(c) || c == ',' || c == ']' || c == '}';
}

/* Index of the first '"' or '\\' in d[i..lim), or lim: the plain bytes of a string. */
static size_t skip_plain(const unsigned char *d, size_t i, size_t lim)
{
#ifdef __SSE2__
    const __m128i vq = _mm_set1_epi8('"'), vb = _mm_set1_epi8('\\');

    while (lim - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
        unsigned mask =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, vq), _mm_cmpeq_epi8(v, vb)));
        if (mask)
            return i + (unsigned)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (i < lim && d[i] != '"' && d[i] != '\\')
        i++;
    return i;
}

/* Scans the element being framed from d[*ip]; parses it once complete. */
static int elem_feed(struct records_parser *p, const unsigned char *d, size_t n, size_t *ip,
                     uint64_t base)
{
    size_t i = *ip, start = i, room = p->max + 1 - p->elen;
    size_t lim = n - i < room ? n : i + room;
    int done = 0, rc;

    if (p->kind == K_SCALAR) {
        while (i < lim && !is_delim(d[i]))
            i++;
        done = i < lim;
    } else {
        int depth = p->depth, in_str = p->in_str, esc = p->esc;
        while (i < lim) {
            if (in_str && !esc)
                i = skip_plain(d, i, lim);
            if (i >= lim)
                break;
            unsigned c = d[i++];
            if (in_str) {
                if (esc) {
                    esc = 0;
                } else if (c == '\\') {
                    esc = 1;
                } else if (c == '"') {
                    in_str = 0;
                    if (depth == 0) {
                        done = 1;
                        break;
                    }
                }
            } else if (c == '"') {
                in_str = 1;
            } else if (c == '{' || c == '[') {
                if (++depth > MAX_DEPTH)
                    return fail_input(p,
                                      "element %llu nests deeper than %d levels at byte offset "
                                      "%llu",
                                      (unsigned long long)p->index + 1, MAX_DEPTH,
                                      (unsigned long long)(base + i - 1));
            } else if (c == '}' || c == ']') {
                if (--depth <= 0) {
                    done = 1;
                    break;
                }
            }
        }
        p->depth = depth;
        p->in_str = in_str;
        p->esc = esc;
    }
    p->elen += i - start;
    *ip = i;
    if (done) {
        p->index++;
        p->astate = A_AFTER;
        if (p->carry.len == 0)
            return handle_record(p, d + start, i - start, p->index, 0, p->elem_off);
        if (vec_append(&p->carry, d + start, i - start))
            return set_err(p, HC_ENOMEM);
        rc = handle_record(p, p->carry.data, p->carry.len, p->index, 0, p->elem_off);
        p->carry.len = 0;
        return rc;
    }
    if (p->elen > p->max)
        return fail_input(p, "element %llu at byte offset %llu is longer than %zu bytes",
                          (unsigned long long)p->index + 1, (unsigned long long)p->elem_off,
                          p->max);
    if (vec_append(&p->carry, d + start, i - start))
        return set_err(p, HC_ENOMEM);
    return HC_OK;
}

static int arr_feed(struct records_parser *p, const unsigned char *d, size_t n, uint64_t base)
{
    size_t i = 0;
    int rc;

    while (i < n) {
        unsigned c = d[i];
        unsigned long long at = (unsigned long long)(base + i);

        if (p->astate == A_ELEM) {
            rc = elem_feed(p, d, n, &i, base);
            if (rc)
                return rc;
            continue;
        }
        if (is_ws(c)) {
            i++;
            continue;
        }
        switch (p->astate) {
        case A_FIRST:
        case A_NEXT:
            if (c == ']' && p->astate == A_FIRST) {
                p->astate = A_END;
                break;
            }
            if (c == ',' || c == ']' || c == '}' || c == ':')
                return fail_input(p, "invalid JSON at byte offset %llu: expected an element", at);
            p->astate = A_ELEM;
            p->kind = (c == '{' || c == '[' || c == '"') ? K_VALUE : K_SCALAR;
            p->depth = p->in_str = p->esc = 0;
            p->elen = 0;
            p->elem_off = base + i;
            continue; /* the element scanner reads this byte */
        case A_AFTER:
            if (c == ',')
                p->astate = A_NEXT;
            else if (c == ']')
                p->astate = A_END;
            else
                return fail_input(p,
                                  "invalid JSON at byte offset %llu: expected ',' or ']' after "
                                  "element %llu",
                                  at, (unsigned long long)p->index);
            break;
        case A_END:
            if (p->fmt == RECORDS_FORMAT_WRAPPED && c == '}') {
                p->astate = A_DONE;
                break;
            }
            if (p->fmt == RECORDS_FORMAT_WRAPPED && c == ',')
                return fail_input(p,
                                  "invalid JSON at byte offset %llu: the wrapping object has "
                                  "more than one member",
                                  at);
            if (p->fmt == RECORDS_FORMAT_WRAPPED)
                return fail_input(p, "invalid JSON at byte offset %llu: expected '}'", at);
            return fail_input(p, "invalid JSON at byte offset %llu: data after the array", at);
        default:
            return fail_input(p, "invalid JSON at byte offset %llu: data after the object", at);
        }
        i++;
    }
    return HC_OK;
}

static int arr_finish(struct records_parser *p)
{
    unsigned long long at = (unsigned long long)p->bytes;

    switch (p->astate) {
    case A_ELEM:
        return fail_input(p, "invalid JSON at byte offset %llu: input ends inside element %llu", at,
                          (unsigned long long)p->index + 1);
    case A_END:
        if (p->fmt == RECORDS_FORMAT_ARRAY)
            return HC_OK;
        return fail_input(p, "invalid JSON at byte offset %llu: the wrapping object is not closed",
                          at);
    case A_DONE:
        return HC_OK;
    default:
        return fail_input(p, "invalid JSON at byte offset %llu: the array is not closed", at);
    }
}

/* ---------------------------------------------------------------- detection and the API */

static int fmt_feed(struct records_parser *p, const unsigned char *d, size_t n, uint64_t base)
{
    if (n == 0)
        return HC_OK;
    if (p->fmt == RECORDS_FORMAT_NDJSON)
        return nd_feed(p, d, n);
    return arr_feed(p, d, n, base);
}

/* NDJSON it is: replays the held bytes, then the rest of the chunk. */
static int decide_ndjson(struct records_parser *p, const unsigned char *rest, size_t n)
{
    int rc = HC_OK;

    p->fmt = RECORDS_FORMAT_NDJSON;
    p->line = p->lead_lines + 1;
    p->col_line = p->line;
    p->col0 = p->lead_cols;
    if (p->dbuf.len)
        rc = nd_feed(p, p->dbuf.data, p->dbuf.len);
    vec_free(&p->dbuf);
    if (rc == HC_OK && n)
        rc = nd_feed(p, rest, n);
    return rc;
}

static int decide_array(struct records_parser *p, enum records_format fmt,
                        const unsigned char *rest, size_t n, uint64_t base)
{
    p->fmt = fmt;
    p->astate = A_FIRST;
    vec_free(&p->dbuf);
    return fmt_feed(p, rest, n, base);
}

static int first_key_is_field(const struct records_parser *p)
{
    static const char *const fields[] = {"services", "labs", "accreditations"};

    if (p->key_escaped)
        return 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (p->klen == strlen(fields[i]) && memcmp(p->key, fields[i], p->klen) == 0)
            return 1;
    return 0;
}

static int detect_feed(struct records_parser *p, const unsigned char *d, size_t n, uint64_t base)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

    for (size_t i = 0; i < n; i++) {
        unsigned c = d[i];
        uint64_t a = base + i;

        if (p->dstate == D_START) {
            if (a < 3 && a == p->bom && c == bom[a]) {
                p->bom++;
                p->lead_cols++;
                continue;
            }
            if (p->bom > 0 && p->bom < 3) { /* a partial BOM: plain bytes after all */
                p->lead_cols = 0;
                if (vec_append(&p->dbuf, bom, p->bom))
                    return set_err(p, HC_ENOMEM);
                return decide_ndjson(p, d + i, n - i);
            }
            if (is_ws(c)) {
                p->lead_lines += c == '\n';
                p->lead_cols = c == '\n' ? 0 : p->lead_cols + 1;
                continue;
            }
            if (c == '[')
                return decide_array(p, RECORDS_FORMAT_ARRAY, d + i + 1, n - i - 1, a + 1);
            if (c != '{')
                return decide_ndjson(p, d + i, n - i);
            p->dstate = D_OBJ;
        } else if (p->dstate == D_KEY) {
            /* A key that is not a JSON string cannot start a wrapped array: NDJSON then, where
             * its line becomes a bad record. */
            if (p->khex > 0) {
                if (!is_hex(c))
                    return decide_ndjson(p, d + i, n - i);
                p->khex--;
            } else if (p->kesc) {
                if (c == 0 || !strchr("\"\\/bfnrtu", (int)c))
                    return decide_ndjson(p, d + i, n - i);
                p->kesc = 0;
                p->khex = c == 'u' ? 4 : 0;
            } else if (c == '\\') {
                p->kesc = p->key_escaped = 1;
            } else if (c == '"') {
                p->dstate = D_COLON;
            } else if (c < 0x20) {
                return decide_ndjson(p, d + i, n - i);
            }
            if (p->dstate == D_KEY && p->klen < sizeof(p->key))
                p->key[p->klen] = (char)c;
            if (p->dstate == D_KEY)
                p->klen++;
        } else if (!is_ws(c)) {
            if (p->dstate == D_OBJ && c == '"') {
                p->dstate = D_KEY;
            } else if (p->dstate == D_COLON && c == ':') {
                p->dstate = D_VALUE;
            } else if (p->dstate == D_VALUE && c == '[' && !first_key_is_field(p)) {
                return decide_array(p, RECORDS_FORMAT_WRAPPED, d + i + 1, n - i - 1, a + 1);
            } else {
                return decide_ndjson(p, d + i, n - i);
            }
        }
        if (vec_append(&p->dbuf, d + i, 1))
            return set_err(p, HC_ENOMEM);
        if (p->dbuf.len > p->max)
            return decide_ndjson(p, d + i + 1, n - i - 1);
    }
    return HC_OK;
}

struct records_parser *records_new(const struct records_callbacks *cb, size_t max_record_bytes)
{
    struct records_parser *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->cb = *cb;
    p->max = max_record_bytes > SIZE_MAX / 4 ? SIZE_MAX / 4 : max_record_bytes;
    p->fmt = RECORDS_FORMAT_UNKNOWN;
    p->dstate = D_START;
    p->line = 1;
    return p;
}

int records_feed(struct records_parser *p, const void *data, size_t len)
{
    uint64_t base = p->bytes;

    if (p->err)
        return p->err;
    if (p->finished)
        return HC_EINVAL;
    p->bytes += len;
    if (len == 0)
        return HC_OK;
    if (p->fmt == RECORDS_FORMAT_UNKNOWN)
        return set_err(p, detect_feed(p, data, len, base));
    return set_err(p, fmt_feed(p, data, len, base));
}

int records_finish(struct records_parser *p)
{
    int rc = HC_OK;

    if (p->err || p->finished)
        return p->err;
    p->finished = 1;
    if (p->fmt == RECORDS_FORMAT_UNKNOWN) {
        if (p->dstate == D_START && (p->bom == 0 || p->bom == 3))
            return HC_OK; /* empty or only whitespace */
        if (p->dstate == D_START && vec_append(&p->dbuf, "\xEF\xBB", p->bom))
            return set_err(p, HC_ENOMEM);
        if (p->dstate == D_START)
            p->lead_cols = 0;
        rc = decide_ndjson(p, NULL, 0);
    }
    if (rc == HC_OK)
        rc = p->fmt == RECORDS_FORMAT_NDJSON ? nd_finish(p) : arr_finish(p);
    vec_free(&p->carry);
    return set_err(p, rc);
}

const char *records_error(const struct records_parser *p)
{
    return p->err == HC_EBADINPUT ? p->errmsg : "";
}

enum records_format records_format(const struct records_parser *p)
{
    return p->fmt;
}

uint64_t records_bytes(const struct records_parser *p)
{
    return p->bytes;
}

uint64_t records_seen(const struct records_parser *p)
{
    return p->seen;
}

void records_free(struct records_parser *p)
{
    if (!p)
        return;
    vec_free(&p->dbuf);
    vec_free(&p->carry);
    vec_free(&p->services);
    vec_free(&p->certs);
    vec_free(&p->labs);
    vec_free(&p->accs);
    free(p->arena);
    free(p);
}
