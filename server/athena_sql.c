/*
 * athena_sql.c: filling the sql/athena/ templates with checked values, and typing result cells
 * (contracts in athena_sql.h).
 *
 * Organisation: value checks (identifiers, locations, dates, UTF-8); quoting; the renderer
 * (drop the header comment, then copy the text replacing each {{name}} with the value built for
 * it, failing on an unknown or unset placeholder); result cell conversion.
 */
#include "server/athena_sql.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/buf.h"
#include "server/embedded.h"
#include "server/error.h"
#include "server/objstore.h"
#include "server/records.h"

#define SQL_MAX (256u * 1024u) /* Athena's QueryString limit is 262144 bytes */

/* ---- checks ------------------------------------------------------------------------------- */

int athena_sql_ident_ok(const char *s)
{
    size_t n = 0;

    if (!s)
        return 0;
    for (; s[n]; n++) {
        char c = s[n];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n >= 1 && n <= ATHENA_SQL_IDENT_MAX;
}

/* Characters allowed in a location prefix: S3's "safe" set without the single quote. */
static int prefix_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!-_.*()/", c) != NULL;
}

int athena_sql_location_ok(const char *uri)
{
    char bucket[64];
    const char *p, *slash;
    size_t blen;

    if (!uri || strncmp(uri, "s3://", 5) != 0)
        return 0;
    p = uri + 5;
    slash = strchr(p, '/');
    if (!slash)
        return 0;
    blen = (size_t)(slash - p);
    if (blen < 3 || blen >= sizeof bucket)
        return 0;
    memcpy(bucket, p, blen);
    bucket[blen] = '\0';
    if (!objstore_bucket_valid(bucket))
        return 0;
    p = slash + 1;
    if (strlen(p) > OBJSTORE_KEY_MAX)
        return 0;
    if (*p == '\0')
        return 1; /* the whole bucket */
    if (p[strlen(p) - 1] != '/' || p[0] == '/')
        return 0;
    for (const char *q = p; *q; q++) {
        if (!prefix_char_ok(*q))
            return 0;
        if (q[0] == '/' && q[1] == '/')
            return 0;
    }
    return 1;
}

int athena_sql_date_ok(const char *s)
{
    int32_t d;

    return s && strlen(s) == 10 && records_parse_date(s, 10, &d) == 0;
}

/* 1 when s is valid UTF-8 (no overlongs, no surrogates) without C0/DEL control characters. */
static int text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned c = *p;
        size_t n;
        uint32_t cp;

        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* ---- quoting ------------------------------------------------------------------------------ */

int athena_sql_quote(const char *s, char **out)
{
    struct buf b;
    int rc = 0;

    *out = NULL;
    if (!s || !text_ok(s))
        return HC_EVALIDATION;
    buf_init(&b, SQL_MAX);
    rc = buf_append(&b, "'", 1);
    for (const char *p = s; !rc && *p; p++)
        rc = *p == '\'' ? buf_append(&b, "''", 2) : buf_append(&b, p, 1);
    if (!rc)
        rc = buf_append(&b, "'", 1);
    if (!rc)
        *out = buf_steal(&b, NULL);
    buf_free(&b);
    return *out ? HC_OK : HC_ENOMEM;
}

/* ---- rendering ---------------------------------------------------------------------------- */

/* A placeholder's value, checked; *out is malloc'ed. */
static int placeholder_value(const char *name, size_t len, const struct athena_sql_vars *v,
                             char **out, char *why, size_t whylen)
{
    char tmp[2 * ATHENA_SQL_IDENT_MAX + 8];

    *out = NULL;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
    if (IS("database") || IS("table")) {
        const char *id = IS("database") ? v->database : v->table;

        if (!athena_sql_ident_ok(id)) {
            snprintf(why, whylen, "invalid %s (HCPIPE_ATHENA_%s): expected 1..128 of [a-z0-9_]",
                     IS("database") ? "database" : "table", IS("database") ? "DATABASE" : "TABLE");
            return HC_EVALIDATION;
        }
        snprintf(tmp, sizeof tmp, "`%s`", id);
        *out = strdup(tmp);
    } else if (IS("relation")) {
        if (!athena_sql_ident_ok(v->database) || !athena_sql_ident_ok(v->table)) {
            snprintf(why, whylen,
                     "invalid database or table (HCPIPE_ATHENA_DATABASE, HCPIPE_ATHENA_TABLE): "
                     "expected 1..128 of [a-z0-9_]");
            return HC_EVALIDATION;
        }
        snprintf(tmp, sizeof tmp, "\"%s\".\"%s\"", v->database, v->table);
        *out = strdup(tmp);
    } else if (IS("location")) {
        if (!athena_sql_location_ok(v->location)) {
            snprintf(why, whylen,
                     "invalid source location (HCPIPE_SOURCE_URI): expected s3://bucket/prefix/ "
                     "with a valid bucket and a prefix of A-Z a-z 0-9 ! - _ . * ( ) /");
            return HC_EVALIDATION;
        }
        return athena_sql_quote(v->location, out);
    } else if (IS("as_of")) {
        if (!athena_sql_date_ok(v->as_of)) {
            snprintf(why, whylen, "as_of must be a calendar date YYYY-MM-DD");
            return HC_EVALIDATION;
        }
        snprintf(tmp, sizeof tmp, "DATE '%s'", v->as_of);
        *out = strdup(tmp);
    } else if (IS("source")) {
        char *bucket = NULL, *key = NULL;
        int err;

        if (!v->source) {
            *out = strdup("NULL");
            return *out ? HC_OK : HC_ENOMEM;
        }
        err = objstore_parse_uri(v->source, &bucket, &key);
        free(bucket);
        free(key);
        if (err == HC_OK)
            err = athena_sql_quote(v->source, out);
        if (err == HC_EBADSOURCE || err == HC_EVALIDATION) {
            snprintf(why, whylen,
                     "source must be s3://bucket/key with a valid bucket name and a key of "
                     "printable UTF-8");
            return HC_EVALIDATION;
        }
        return err;
    } else {
        snprintf(why, whylen, "unknown placeholder {{%.*s}} in an Athena SQL text", (int)len, name);
        return HC_EINTERNAL;
    }
#undef IS
    return *out ? HC_OK : HC_ENOMEM;
}

/* Skips the leading block of `--` comment lines (and blank lines). */
static const char *skip_header(const char *s)
{
    for (;;) {
        const char *p = s;

        while (*p == ' ' || *p == '\t')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            p = strchr(p, '\n');
            if (!p)
                return s + strlen(s);
            s = p + 1;
        } else if (*p == '\n') {
            s = p + 1;
        } else {
            return s;
        }
    }
}

int athena_sql_render(const char *name, const struct athena_sql_vars *v, char **out, char *why,
                      size_t whylen)
{
    char path[128];
    const struct embedded_file *f;
    const char *p, *open, *close;
    struct buf b;
    int err = HC_OK;

    *out = NULL;
    if (why && whylen)
        why[0] = '\0';
    if (!name || strlen(name) > 64 || !v)
        return HC_EUNKNOWNQUERY;
    snprintf(path, sizeof path, "sql/athena/%s.sql", name);
    f = embedded_find(path);
    if (!f)
        return HC_EUNKNOWNQUERY;
    buf_init(&b, SQL_MAX);
    p = skip_header((const char *)f->data);
    while (!err && (open = strstr(p, "{{")) != NULL) {
        char *val = NULL;

        close = strstr(open + 2, "}}");
        if (!close) {
            snprintf(why, whylen, "unterminated placeholder in %s", path);
            err = HC_EINTERNAL;
            break;
        }
        err = buf_append(&b, p, (size_t)(open - p)) ? HC_ENOMEM : HC_OK;
        if (!err)
            err = placeholder_value(open + 2, (size_t)(close - open - 2), v, &val, why, whylen);
        if (!err && buf_append(&b, val, strlen(val)))
            err = HC_ENOMEM;
        free(val);
        p = close + 2;
    }
    if (!err) {
        size_t n = strlen(p);

        while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == ' '))
            n--; /* no trailing newline: the text is one statement */
        if (buf_append(&b, p, n))
            err = HC_ENOMEM;
    }
    if (!err) {
        *out = buf_steal(&b, NULL);
        if (!*out)
            err = HC_ENOMEM;
    }
    buf_free(&b);
    return err;
}

/* ---- result cells ------------------------------------------------------------------------- */

int athena_sql_type_compatible(const char *t, enum col_type want)
{
    if (!t)
        return 0;
    switch (want) {
    case COL_VARCHAR:
        return strcmp(t, "varchar") == 0 || strcmp(t, "char") == 0 || strcmp(t, "string") == 0 ||
               strcmp(t, "json") == 0;
    case COL_BIGINT:
        return strcmp(t, "bigint") == 0 || strcmp(t, "integer") == 0 || strcmp(t, "int") == 0 ||
               strcmp(t, "smallint") == 0 || strcmp(t, "tinyint") == 0;
    case COL_DATE:
        return strcmp(t, "date") == 0;
    case COL_DOUBLE:
        return strcmp(t, "double") == 0 || strcmp(t, "real") == 0 || strcmp(t, "float") == 0 ||
               strcmp(t, "decimal") == 0;
    case COL_BOOLEAN:
        return strcmp(t, "boolean") == 0;
    }
    return 0;
}

int athena_sql_convert(const char *text, enum col_type want, struct value *out)
{
    char *end = NULL;

    memset(out, 0, sizeof *out);
    if (!text) {
        out->is_null = 1;
        return HC_OK;
    }
    switch (want) {
    case COL_VARCHAR:
        out->s = text;
        out->len = strlen(text);
        return HC_OK;
    case COL_BIGINT: {
        long long v;

        if (!*text || !(text[0] == '-' || (text[0] >= '0' && text[0] <= '9')))
            return HC_EENGINE;
        errno = 0;
        v = strtoll(text, &end, 10);
        if (errno || *end)
            return HC_EENGINE;
        out->i = (int64_t)v;
        return HC_OK;
    }
    case COL_DATE: {
        int32_t d;

        if (strlen(text) != 10 || records_parse_date(text, 10, &d) != 0)
            return HC_EENGINE;
        out->i = d;
        return HC_OK;
    }
    case COL_DOUBLE: {
        double v;

        if (strcmp(text, "NaN") == 0 || strcmp(text, "Infinity") == 0 ||
            strcmp(text, "-Infinity") == 0)
            return HC_EENGINE; /* not representable in JSON */
        if (!*text || text[0] == ' ')
            return HC_EENGINE;
        errno = 0;
        v = strtod(text, &end);
        if (errno == ERANGE || *end || !isfinite(v))
            return HC_EENGINE;
        out->d = v;
        return HC_OK;
    }
    case COL_BOOLEAN:
        if (strcmp(text, "true") == 0)
            out->i = 1;
        else if (strcmp(text, "false") == 0)
            out->i = 0;
        else
            return HC_EENGINE;
        return HC_OK;
    }
    return HC_EENGINE;
}

/* ---- the result CSV ------------------------------------------------------------------------ */

#define CSV_RECORD_MAX (64u << 20) /* one record's bytes */

enum csv_state { CSV_START, CSV_UNQUOTED, CSV_QUOTED, CSV_QUOTE_END };

struct athena_csv {
    size_t ncols;
    athena_csv_row_cb on_row;
    void *ctx;
    enum csv_state state;
    struct buf rec; /* the record's cells, each NUL-terminated */
    size_t *off;    /* start of each cell in rec */
    int *is_null;   /* 1: the cell was empty and unquoted */
    char **cells;   /* pointers handed to on_row */
    size_t ncell;   /* cells ended in this record */
    int err;        /* sticky error */
};

struct athena_csv *athena_csv_new(size_t ncols, athena_csv_row_cb on_row, void *ctx)
{
    struct athena_csv *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->ncols = ncols;
    c->on_row = on_row;
    c->ctx = ctx;
    buf_init(&c->rec, CSV_RECORD_MAX);
    c->off = calloc(ncols ? ncols : 1, sizeof *c->off);
    c->is_null = calloc(ncols ? ncols : 1, sizeof *c->is_null);
    c->cells = calloc(ncols ? ncols : 1, sizeof *c->cells);
    if (!c->off || !c->is_null || !c->cells) {
        athena_csv_free(c);
        return NULL;
    }
    return c;
}

void athena_csv_free(struct athena_csv *c)
{
    if (!c)
        return;
    buf_free(&c->rec);
    free(c->off);
    free(c->is_null);
    free(c->cells);
    free(c);
}

static int csv_end_field(struct athena_csv *c, int is_null)
{
    if (c->ncell >= c->ncols)
        return HC_EENGINE; /* too many fields */
    if (buf_putc(&c->rec, '\0'))
        return HC_ENOMEM;
    c->is_null[c->ncell++] = is_null;
    if (c->ncell < c->ncols)
        c->off[c->ncell] = c->rec.len;
    c->state = CSV_START;
    return HC_OK;
}

static int csv_end_record(struct athena_csv *c)
{
    int err;

    if (c->ncell != c->ncols)
        return HC_EENGINE; /* too few fields */
    for (size_t i = 0; i < c->ncols; i++)
        c->cells[i] = c->is_null[i] ? NULL : c->rec.data + c->off[i];
    err = c->on_row(c->ctx, c->cells, c->ncols);
    buf_reset(&c->rec);
    c->ncell = 0;
    c->off[0] = 0;
    return err;
}

/* A newline outside quotes: the last field ends, then the record. */
static int csv_end_line(struct athena_csv *c, int is_null)
{
    int err = csv_end_field(c, is_null);

    return err ? err : csv_end_record(c);
}

int athena_csv_feed(struct athena_csv *c, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !c->err; i++) {
        char ch = data[i];

        switch (c->state) {
        case CSV_START:
            if (ch == '"')
                c->state = CSV_QUOTED;
            else if (ch == ',')
                c->err = csv_end_field(c, 1);
            else if (ch == '\n' && c->ncell > 0)
                c->err = csv_end_line(c, 1);
            else if (ch == '\n' || ch == '\r')
                ; /* a blank line, or the CR of CRLF */
            else if (buf_putc(&c->rec, ch))
                c->err = HC_ENOMEM;
            else
                c->state = CSV_UNQUOTED;
            break;
        case CSV_UNQUOTED:
            if (ch == ',')
                c->err = csv_end_field(c, 0);
            else if (ch == '\n')
                c->err = csv_end_line(c, 0);
            else if (ch != '\r' && buf_putc(&c->rec, ch))
                c->err = HC_ENOMEM;
            break;
        case CSV_QUOTED:
            if (ch == '"')
                c->state = CSV_QUOTE_END;
            else if (buf_putc(&c->rec, ch))
                c->err = HC_ENOMEM;
            break;
        case CSV_QUOTE_END:
            if (ch == '"') {
                c->state = CSV_QUOTED;
                if (buf_putc(&c->rec, '"'))
                    c->err = HC_ENOMEM;
            } else if (ch == ',') {
                c->err = csv_end_field(c, 0);
            } else if (ch == '\n') {
                c->err = csv_end_line(c, 0);
            } else if (ch != '\r') {
                c->err = HC_EENGINE; /* text after a closing quote */
            }
            break;
        }
    }
    return c->err;
}

int athena_csv_finish(struct athena_csv *c)
{
    if (c->err)
        return c->err;
    if (c->state == CSV_QUOTED)
        return c->err = HC_EENGINE; /* an open quote */
    if (c->state != CSV_START || c->ncell > 0)
        return athena_csv_feed(c, "\n", 1);
    return HC_OK;
}
