/*
 * result.c: the result writer (contract in result.h): typed rows rendered to result.json and
 * result.csv as they arrive.
 *
 * Organisation: value formatting (dates, JSON strings, CSV fields); the writer's sink callbacks
 * (columns writes both headers, row appends one JSON object and one CSV line); commit (closing
 * members, fsync, rename, fsync of the folder) and abort. Both files are written through stdio
 * with large buffers into mkstemp() files in the result folder, so a reader never sees a partial
 * result.json or result.csv.
 */
#include "server/result.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/error.h"

#define RESULT_IOBUF (256 * 1024)

/* Each writer's FILEs are used by one thread at a time: skip stdio's per-call locking. */
#define putc(c, f)         putc_unlocked(c, f)
#define fputs(s, f)        fputs_unlocked(s, f)
#define fwrite(p, n, m, f) fwrite_unlocked(p, n, m, f)

struct result_writer {
    char *dir;
    char *json_tmp, *csv_tmp; /* temporary paths */
    FILE *json, *csv;
    struct result_meta meta; /* strings owned (copies) */
    struct column *cols;     /* owned copy (names owned) */
    size_t ncols;
    int have_columns;
    uint64_t rows;
    int err; /* sticky first error */
};

const char *col_type_name(enum col_type t)
{
    switch (t) {
    case COL_VARCHAR:
        return "varchar";
    case COL_BIGINT:
        return "bigint";
    case COL_DATE:
        return "date";
    case COL_DOUBLE:
        return "double";
    case COL_BOOLEAN:
        return "boolean";
    }
    return "varchar";
}

/* ---- formatting ---- */

/* Days since 1970-01-01 to YYYY-MM-DD (proleptic Gregorian calendar). */
static void format_date(int64_t days, char out[48])
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;

    if (m <= 2)
        y++;
    snprintf(out, 48, "%04d-%02d-%02d", (int)y, (int)m, (int)d);
}

/* Writes a decimal integer (faster than fprintf for millions of values). */
static void put_i64(FILE *f, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    fwrite(tmp + i, 1, sizeof tmp - i, f);
}

static void json_str(FILE *f, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        fwrite(s + run, 1, i - run, f);
        run = i + 1;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        }
        fputs(esc, f);
    }
    fwrite(s + run, 1, len - run, f);
    putc('"', f);
}

static void csv_str(FILE *f, const char *s, size_t len)
{
    int quote = len == 0;

    for (size_t i = 0; !quote && i < len; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        fwrite(s, 1, len, f);
        return;
    }
    putc('"', f);
    for (size_t i = 0, run = 0; i <= len; i++) {
        if (i == len || s[i] == '"') {
            fwrite(s + run, 1, i - run, f);
            if (i < len)
                fputs("\"\"", f);
            run = i + 1;
        }
    }
    putc('"', f);
}

/* The value as JSON (number, string, true/false or null). */
static void json_value(FILE *f, enum col_type t, const struct value *v)
{
    char tmp[48];

    if (v->is_null) {
        fputs("null", f);
        return;
    }
    switch (t) {
    case COL_VARCHAR:
        json_str(f, v->s ? v->s : "", v->s ? v->len : 0);
        break;
    case COL_BIGINT:
        put_i64(f, v->i);
        break;
    case COL_DATE:
        format_date(v->i, tmp);
        fprintf(f, "\"%s\"", tmp);
        break;
    case COL_DOUBLE:
        if (isfinite(v->d))
            fprintf(f, "%.17g", v->d);
        else
            fputs("null", f);
        break;
    case COL_BOOLEAN:
        fputs(v->i ? "true" : "false", f);
        break;
    }
}

/* The value as a CSV field (empty and unquoted for null). */
static void csv_value(FILE *f, enum col_type t, const struct value *v)
{
    char tmp[48];

    if (v->is_null)
        return;
    switch (t) {
    case COL_VARCHAR:
        csv_str(f, v->s ? v->s : "", v->s ? v->len : 0);
        break;
    case COL_BIGINT:
        put_i64(f, v->i);
        break;
    case COL_DATE:
        format_date(v->i, tmp);
        fputs(tmp, f);
        break;
    case COL_DOUBLE:
        if (isfinite(v->d))
            fprintf(f, "%.17g", v->d);
        break;
    case COL_BOOLEAN:
        fputs(v->i ? "true" : "false", f);
        break;
    }
}

/* ---- the sink ---- */

static void write_json_head(struct result_writer *w)
{
    FILE *f = w->json;
    const char *m[4][2] = {{"job_id", w->meta.job_id},
                           {"query", w->meta.query},
                           {"as_of", w->meta.as_of},
                           {"engine", w->meta.engine}};

    putc('{', f);
    for (int i = 0; i < 4; i++) {
        json_str(f, m[i][0], strlen(m[i][0]));
        putc(':', f);
        if (m[i][1])
            json_str(f, m[i][1], strlen(m[i][1]));
        else
            fputs("null", f);
        putc(',', f);
    }
    fputs("\"columns\":[", f);
    for (size_t i = 0; i < w->ncols; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        json_str(f, w->cols[i].name, strlen(w->cols[i].name));
        fprintf(f, ",\"type\":\"%s\"}", col_type_name(w->cols[i].type));
    }
    fputs("],\"rows\":[", f);
}

static int sink_columns(void *ctx, const struct column *cols, size_t ncols)
{
    struct result_writer *w = ctx;

    if (w->have_columns)
        return HC_OK; /* a later page repeating its columns */
    w->cols = calloc(ncols ? ncols : 1, sizeof *w->cols);
    if (!w->cols)
        return w->err = HC_ENOMEM;
    for (size_t i = 0; i < ncols; i++) {
        char *name = strdup(cols[i].name);
        if (!name)
            return w->err = HC_ENOMEM;
        w->cols[i].name = name;
        w->cols[i].type = cols[i].type;
        w->ncols = i + 1;
    }
    w->have_columns = 1;
    write_json_head(w);
    for (size_t i = 0; i < ncols; i++) {
        if (i)
            putc(',', w->csv);
        csv_str(w->csv, cols[i].name, strlen(cols[i].name));
    }
    fputs("\r\n", w->csv);
    return HC_OK;
}

static int sink_row(void *ctx, const struct value *vals)
{
    struct result_writer *w = ctx;

    if (w->err)
        return w->err;
    if (!w->have_columns)
        return w->err = HC_EINTERNAL;
    putc(w->rows ? ',' : '{', w->json);
    if (w->rows)
        putc('{', w->json);
    for (size_t i = 0; i < w->ncols; i++) {
        if (i)
            putc(',', w->json);
        json_str(w->json, w->cols[i].name, strlen(w->cols[i].name));
        putc(':', w->json);
        json_value(w->json, w->cols[i].type, &vals[i]);
        if (i)
            putc(',', w->csv);
        csv_value(w->csv, w->cols[i].type, &vals[i]);
    }
    putc('}', w->json);
    fputs("\r\n", w->csv);
    w->rows++;
    if (ferror(w->json) || ferror(w->csv))
        return w->err = (errno == ENOSPC ? HC_EDISKFULL : HC_EIO);
    return HC_OK;
}

struct result_sink result_writer_sink(struct result_writer *w)
{
    struct result_sink s = {sink_columns, sink_row, w};

    return s;
}

uint64_t result_writer_rows(const struct result_writer *w)
{
    return w->rows;
}

/* ---- open / commit / abort ---- */

static int mkdirs(const char *dir)
{
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

static FILE *open_tmp(const char *dir, const char *name, char **path_out)
{
    size_t n = strlen(dir) + strlen(name) + 16;
    char *path = malloc(n);
    int fd;
    FILE *f;

    *path_out = NULL;
    if (!path)
        return NULL;
    snprintf(path, n, "%s/.%s.XXXXXX", dir, name);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    fchmod(fd, 0644);
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        free(path);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, RESULT_IOBUF);
    *path_out = path;
    return f;
}

static void writer_free(struct result_writer *w, int remove_tmp)
{
    if (w->json)
        fclose(w->json);
    if (w->csv)
        fclose(w->csv);
    if (remove_tmp) {
        if (w->json_tmp)
            unlink(w->json_tmp);
        if (w->csv_tmp)
            unlink(w->csv_tmp);
    }
    for (size_t i = 0; i < w->ncols; i++)
        free((char *)(uintptr_t)w->cols[i].name);
    free(w->cols);
    free(w->json_tmp);
    free(w->csv_tmp);
    free(w->dir);
    free((char *)(uintptr_t)w->meta.job_id);
    free((char *)(uintptr_t)w->meta.query);
    free((char *)(uintptr_t)w->meta.as_of);
    free((char *)(uintptr_t)w->meta.engine);
    free(w);
}

static char *dup_or_null(const char *s, int *failed)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

int result_writer_open(const char *dir, const struct result_meta *meta, struct result_writer **out)
{
    struct result_writer *w = calloc(1, sizeof *w);
    int failed = 0;

    *out = NULL;
    if (!w)
        return HC_ENOMEM;
    w->dir = dup_or_null(dir, &failed);
    w->meta.job_id = dup_or_null(meta->job_id, &failed);
    w->meta.query = dup_or_null(meta->query, &failed);
    w->meta.as_of = dup_or_null(meta->as_of, &failed);
    w->meta.engine = dup_or_null(meta->engine, &failed);
    if (failed || !w->dir) {
        writer_free(w, 1);
        return HC_ENOMEM;
    }
    if (mkdirs(dir) != 0) {
        writer_free(w, 1);
        return HC_EIO;
    }
    w->json = open_tmp(dir, "result.json", &w->json_tmp);
    w->csv = w->json ? open_tmp(dir, "result.csv", &w->csv_tmp) : NULL;
    if (!w->json || !w->csv) {
        int e = errno == ENOSPC ? HC_EDISKFULL : HC_EIO;
        writer_free(w, 1);
        return e;
    }
    *out = w;
    return HC_OK;
}

/* Flushes, fsyncs and closes f; returns an hc_err. */
static int finish_file(FILE **fp)
{
    FILE *f = *fp;
    int rc = HC_OK;

    *fp = NULL;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = errno == ENOSPC ? HC_EDISKFULL : HC_EIO;
    if (fclose(f) != 0 && rc == HC_OK)
        rc = errno == ENOSPC ? HC_EDISKFULL : HC_EIO;
    return rc;
}

static void json_member(FILE *f, const char *name, json_t *v, const char *dflt)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    fprintf(f, ",\"%s\":%s", name, text ? text : dflt);
    free(text);
}

int result_writer_commit(struct result_writer *w, json_t *stats, json_t *warnings,
                         json_t *bad_records)
{
    size_t n = strlen(w->dir) + 16;
    char *json_path = malloc(n), *csv_path = malloc(n);
    int rc = w->err;

    if (!json_path || !csv_path)
        rc = HC_ENOMEM;
    if (rc == HC_OK && !w->have_columns) {
        write_json_head(w);    /* no columns at all: an empty result */
        fputs("\r\n", w->csv); /* the empty header line */
    }
    if (rc == HC_OK) {
        fprintf(w->json, "],\"row_count\":%" PRIu64, w->rows);
        json_member(w->json, "stats", stats, "{}");
        json_member(w->json, "warnings", warnings, "[]");
        if (bad_records)
            json_member(w->json, "bad_records", bad_records, "[]");
        fputs("}\n", w->json);
        rc = finish_file(&w->json);
    }
    if (rc == HC_OK)
        rc = finish_file(&w->csv);
    if (rc == HC_OK) {
        snprintf(json_path, n, "%s/result.json", w->dir);
        snprintf(csv_path, n, "%s/result.csv", w->dir);
        if (rename(w->json_tmp, json_path) != 0 || rename(w->csv_tmp, csv_path) != 0)
            rc = HC_EIO;
    }
    if (rc == HC_OK) {
        int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(json_path);
    free(csv_path);
    writer_free(w, rc != HC_OK);
    return rc;
}

void result_writer_abort(struct result_writer *w)
{
    if (w)
        writer_free(w, 1);
}
