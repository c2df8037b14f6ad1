/*
 * records_double.c: a TEMPORARY stand-in for server/records.c (branch `records`), used only to
 * build and test the warehouse branch until the real streaming parser is merged. It buffers the
 * whole input and parses it with jansson at records_finish(). Not part of the product build
 * (built by listing it in SRCS on the make command line).
 */
#include "server/records.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/error.h"

struct records_parser {
    struct records_callbacks cb;
    char *data;
    size_t len, cap;
    uint64_t seen;
    enum records_format fmt;
    char err[200];
    int rc;
};

struct records_parser *records_new(const struct records_callbacks *cb, size_t max)
{
    struct records_parser *p = calloc(1, sizeof *p);
    (void)max;
    if (p)
        p->cb = *cb;
    return p;
}

int records_feed(struct records_parser *p, const void *data, size_t len)
{
    if (p->len + len + 1 > p->cap) {
        size_t nc = (p->len + len + 1) * 2;
        char *d = realloc(p->data, nc);
        if (!d)
            return HC_ENOMEM;
        p->data = d;
        p->cap = nc;
    }
    memcpy(p->data + p->len, data, len);
    p->len += len;
    return HC_OK;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int records_parse_date(const char *s, size_t len, int32_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap(y)))
        return -1;
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    *out = era * 146097 + doe - 719468;
    return 0;
}

void records_format_date(int32_t days, char out[11])
{
    (void)days;
    snprintf(out, 11, "0000-00-00");
}

static int is_str_or_null(json_t *v) { return !v || json_is_null(v) || json_is_string(v); }
static const char *str(json_t *v) { return json_is_string(v) ? json_string_value(v) : NULL; }

static const char *check(json_t *r, struct facility_record *fr, const char **svc,
                         struct record_accreditation *acc, size_t max)
{
    json_t *v, *loc, *a;
    size_t i;
    if (!json_is_object(r))
        return "not an object";
    v = json_object_get(r, "facility_id");
    if (!json_is_string(v) || !*json_string_value(v))
        return "facility_id must be a non-empty string";
    fr->facility_id = json_string_value(v);
    if (!is_str_or_null(v = json_object_get(r, "facility_name")))
        return "facility_name";
    fr->facility_name = str(v);
    v = json_object_get(r, "employee_count");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return "employee_count";
        fr->has_employee_count = 1;
        fr->employee_count = json_integer_value(v);
    }
    loc = json_object_get(r, "location");
    if (loc && !json_is_null(loc)) {
        if (!json_is_object(loc))
            return "location";
        const char *k;
        json_object_foreach(loc, k, v) if (!is_str_or_null(v)) return "location field";
        fr->address = str(json_object_get(loc, "address"));
        fr->city = str(json_object_get(loc, "city"));
        fr->state = str(json_object_get(loc, "state"));
        fr->zip = str(json_object_get(loc, "zip"));
    }
    v = json_object_get(r, "services");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > max)
            return "services";
        json_array_foreach(v, i, a) {
            if (!json_is_string(a))
                return "services element";
            svc[i] = json_string_value(a);
        }
        fr->n_services = json_array_size(v);
        fr->services = svc;
    }
    v = json_object_get(r, "accreditations");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > max)
            return "accreditations";
        json_array_foreach(v, i, a) {
            json_t *vu;
            if (!json_is_object(a))
                return "accreditation";
            if (!is_str_or_null(json_object_get(a, "accreditation_body")) ||
                !is_str_or_null(json_object_get(a, "accreditation_id")))
                return "accreditation body/id";
            acc[i].body = str(json_object_get(a, "accreditation_body"));
            acc[i].id = str(json_object_get(a, "accreditation_id"));
            vu = json_object_get(a, "valid_until");
            acc[i].valid_until = RECORDS_NULL_DATE;
            if (vu && !json_is_null(vu)) {
                if (!json_is_string(vu) ||
                    records_parse_date(json_string_value(vu), json_string_length(vu),
                                       &acc[i].valid_until) != 0)
                    return "valid_until must be a calendar date YYYY-MM-DD";
            }
        }
        fr->n_accreditations = json_array_size(v);
        fr->accreditations = acc;
    }
    return NULL;
}

static int one(struct records_parser *p, json_t *r, uint64_t pos, const char *jerr)
{
    const char *svc[64];
    struct record_accreditation acc[64];
    struct facility_record fr;
    const char *why;
    memset(&fr, 0, sizeof fr);
    fr.position = pos;
    p->seen++;
    why = jerr ? jerr : check(r, &fr, svc, acc, 64);
    if (why)
        return p->cb.bad(p->cb.ctx, pos, why);
    return p->cb.record(p->cb.ctx, &fr);
}

int records_finish(struct records_parser *p)
{
    size_t i = 0;
    json_error_t je;
    int rc = HC_OK;
    if (p->rc)
        return p->rc;
    while (i < p->len && (p->data[i] == ' ' || p->data[i] == '\n' || p->data[i] == '\t' ||
                          p->data[i] == '\r'))
        i++;
    if (i < p->len && p->data[i] == '[') {
        json_t *arr = json_loadb(p->data, p->len, 0, &je);
        p->fmt = RECORDS_FORMAT_ARRAY;
        if (!arr) {
            snprintf(p->err, sizeof p->err, "line %d: %s", je.line, je.text);
            return p->rc = HC_EBADINPUT;
        }
        json_t *r;
        size_t k;
        json_array_foreach(arr, k, r) if (!rc) rc = one(p, r, k + 1, NULL);
        json_decref(arr);
        return p->rc = rc;
    }
    if (i < p->len && p->data[i] == '{') {
        json_t *o = json_loadb(p->data, p->len, 0, NULL);
        if (o && json_object_size(o) == 1) {
            json_t *arr = json_object_iter_value(json_object_iter(o));
            if (json_is_array(arr)) {
                json_t *r;
                size_t k;
                p->fmt = RECORDS_FORMAT_WRAPPED;
                json_array_foreach(arr, k, r) if (!rc) rc = one(p, r, k + 1, NULL);
                json_decref(o);
                return p->rc = rc;
            }
        }
        json_decref(o);
    }
    p->fmt = RECORDS_FORMAT_NDJSON;
    uint64_t line = 0;
    size_t s = 0;
    while (s < p->len && !rc) {
        char *nl = memchr(p->data + s, '\n', p->len - s);
        size_t e = nl ? (size_t)(nl - p->data) : p->len;
        line++;
        size_t b = s;
        while (b < e && (p->data[b] == ' ' || p->data[b] == '\r' || p->data[b] == '\t'))
            b++;
        if (b < e) {
            json_t *r = json_loadb(p->data + s, e - s, 0, &je);
            rc = one(p, r, line, r ? NULL : "not valid JSON");
            json_decref(r);
        }
        s = e + 1;
    }
    return p->rc = rc;
}

const char *records_error(const struct records_parser *p) { return p->err; }
enum records_format records_format(const struct records_parser *p) { return p->fmt; }
uint64_t records_bytes(const struct records_parser *p) { return p->len; }
uint64_t records_seen(const struct records_parser *p) { return p->seen; }

void records_free(struct records_parser *p)
{
    if (!p)
        return;
    free(p->data);
    free(p);
}
