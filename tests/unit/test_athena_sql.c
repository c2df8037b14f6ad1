/*
 * Unit tests of server/athena_sql.c: identifier, location and date checks, string quoting,
 * rendering of every sql/athena/ text (including hostile settings, keys and dates), and the
 * typing of result cells.
 *
 * With HCPIPE_SQL_DUMP=<dir>, athena_sql_dump writes the rendered texts (plain and hostile
 * values) to <dir>/<name>[.hostile].sql for tests/integration/test_athena_sql.sh to parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/athena_sql.h"
#include "server/error.h"

static const char *const texts[] = {"create_database",         "create_table",
                                    "facility_metrics",        "accredited_by_state",
                                    "expiring_accreditations", NULL};

static const struct athena_sql_vars plain = {
    .database = "hcpipe",
    .table = "facilities",
    .location = "s3://hc-data/facilities/",
    .as_of = "2026-05-01",
    .source = NULL,
};

/* A source key an attacker controls (an S3 key may hold quotes, semicolons, dashes). */
#define HOSTILE_SOURCE "s3://hc-data/facilities/x'); DROP TABLE t; --'' \"y\" $path.json"

static const struct athena_sql_vars hostile = {
    .database = "hcpipe",
    .table = "facilities",
    .location = "s3://hc-data/facilities/",
    .as_of = "2026-05-01",
    .source = HOSTILE_SOURCE,
};

/* Removes every '...' literal (with '' escapes) from sql; returns a new string. Fails the test
 * on an unterminated literal. */
static char *outside_literals(const char *sql)
{
    char *out = malloc(strlen(sql) + 1), *o = out;
    int in = 0;

    assert_non_null(out);
    for (const char *p = sql; *p; p++) {
        if (!in && *p == '\'') {
            in = 1;
        } else if (in && *p == '\'') {
            if (p[1] == '\'')
                p++;
            else
                in = 0;
        } else if (!in) {
            *o++ = *p;
        }
    }
    *o = '\0';
    assert_int_equal(in, 0);
    return out;
}

static void athena_sql_identifiers_are_strict(void **state)
{
    char long_id[130];

    (void)state;
    assert_true(athena_sql_ident_ok("facilities"));
    assert_true(athena_sql_ident_ok("hc_2026"));
    assert_false(athena_sql_ident_ok(""));
    assert_false(athena_sql_ident_ok(NULL));
    assert_false(athena_sql_ident_ok("Facilities"));
    assert_false(athena_sql_ident_ok("a-b"));
    assert_false(athena_sql_ident_ok("a\"b"));
    assert_false(athena_sql_ident_ok("a`b"));
    assert_false(athena_sql_ident_ok("a b"));
    assert_false(athena_sql_ident_ok("a.b"));
    memset(long_id, 'a', 128);
    long_id[128] = '\0';
    assert_true(athena_sql_ident_ok(long_id));
    long_id[128] = 'a';
    long_id[129] = '\0';
    assert_false(athena_sql_ident_ok(long_id));
}

static void athena_sql_locations_are_checked(void **state)
{
    (void)state;
    assert_true(athena_sql_location_ok("s3://hc-data/"));
    assert_true(athena_sql_location_ok("s3://hc-data/facilities/2026/"));
    assert_true(athena_sql_location_ok("s3://hc.data/a_b/(c)!*-./"));
    assert_false(athena_sql_location_ok("s3://hc-data/facilities")); /* no trailing slash */
    assert_false(athena_sql_location_ok("s3://hc-data"));
    assert_false(athena_sql_location_ok("s3://hc-data/a'b/"));
    assert_false(athena_sql_location_ok("s3://hc-data/a\\b/"));
    assert_false(athena_sql_location_ok("s3://hc-data/a b/"));
    assert_false(athena_sql_location_ok("s3://hc-data//"));
    assert_false(athena_sql_location_ok("s3://hc-data/a//b/"));
    assert_false(athena_sql_location_ok("s3://Bad_Bucket/x/"));
    assert_false(athena_sql_location_ok("s3://b'x/x/"));
    assert_false(athena_sql_location_ok("https://hc-data/x/"));
    assert_false(athena_sql_location_ok(NULL));
}

static void athena_sql_dates_are_real(void **state)
{
    (void)state;
    assert_true(athena_sql_date_ok("2026-05-01"));
    assert_true(athena_sql_date_ok("2024-02-29"));
    assert_false(athena_sql_date_ok("2026-02-29"));
    assert_false(athena_sql_date_ok("2026-13-01"));
    assert_false(athena_sql_date_ok("2026-05-01'"));
    assert_false(athena_sql_date_ok("2026-5-1"));
    assert_false(athena_sql_date_ok(NULL));
}

static void athena_sql_quote_doubles_quotes(void **state)
{
    char *q = NULL;

    (void)state;
    assert_int_equal(athena_sql_quote("it's", &q), HC_OK);
    assert_string_equal(q, "'it''s'");
    free(q);
    assert_int_equal(athena_sql_quote("''", &q), HC_OK);
    assert_string_equal(q, "''''''");
    free(q);
    assert_int_equal(athena_sql_quote("\xc3\xbcn\xc3\xaf \\ \"x\"", &q), HC_OK);
    assert_string_equal(q, "'\xc3\xbcn\xc3\xaf \\ \"x\"'");
    free(q);
    assert_int_equal(athena_sql_quote("a\nb", &q), HC_EVALIDATION);
    assert_null(q);
    assert_int_equal(athena_sql_quote("a\x7f", &q), HC_EVALIDATION);
    assert_int_equal(athena_sql_quote("\xc3", &q), HC_EVALIDATION);         /* truncated */
    assert_int_equal(athena_sql_quote("\xc0\xa7", &q), HC_EVALIDATION);     /* overlong ' */
    assert_int_equal(athena_sql_quote("\xed\xa0\x80", &q), HC_EVALIDATION); /* surrogate */
}

static void athena_sql_render_fills_every_text(void **state)
{
    char why[256];

    (void)state;
    for (int i = 0; texts[i]; i++) {
        char *sql = NULL;

        assert_int_equal(athena_sql_render(texts[i], &plain, &sql, why, sizeof why), HC_OK);
        assert_null(strstr(sql, "{{"));
        assert_null(strstr(sql, "--")); /* the header comment is not sent */
        if (strncmp(texts[i], "create_", 7) == 0) {
            assert_int_equal(strncmp(sql, "CREATE ", 7), 0);
            assert_non_null(strstr(sql, "`hcpipe`"));
        } else {
            assert_int_equal(strncmp(sql, "WITH ", 5), 0);
            assert_non_null(strstr(sql, "FROM \"hcpipe\".\"facilities\" AS t"));
            assert_non_null(strstr(sql, "CAST(NULL AS varchar) IS NULL"));
        }
        free(sql);
    }
}

static void athena_sql_render_places_checked_values(void **state)
{
    char why[256], *sql = NULL, *outside;

    (void)state;
    assert_int_equal(athena_sql_render("create_table", &plain, &sql, why, sizeof why), HC_OK);
    assert_non_null(strstr(sql, "CREATE EXTERNAL TABLE IF NOT EXISTS `hcpipe`.`facilities`"));
    assert_non_null(strstr(sql, "LOCATION 's3://hc-data/facilities/'"));
    assert_non_null(strstr(sql, "'ignore.malformed.json' = 'false'"));
    assert_non_null(strstr(sql, "org.openx.data.jsonserde.JsonSerDe"));
    free(sql);

    assert_int_equal(athena_sql_render("expiring_accreditations", &plain, &sql, why, sizeof why),
                     HC_OK);
    assert_non_null(strstr(sql, "date_add('month', 6, DATE '2026-05-01')"));
    free(sql);

    /* The hostile key stays inside one literal: outside literals no payload word appears. */
    assert_int_equal(athena_sql_render("facility_metrics", &hostile, &sql, why, sizeof why), HC_OK);
    assert_non_null(strstr(sql, "'s3://hc-data/facilities/x''); DROP TABLE t; --'''' \"y\" "
                                "$path.json'"));
    outside = outside_literals(sql);
    assert_null(strstr(outside, "DROP"));
    assert_null(strstr(outside, "--"));
    free(outside);
    free(sql);
}

static void athena_sql_render_rejects_hostile_values(void **state)
{
    static const char *const bad_sources[] = {
        "s3://hc-data/a\nDROP TABLE x", /* a newline */
        "s3://Bad'Bucket/key.json",     /* not a bucket name */
        "s3://hc-data/",                /* no key */
        "s3://hc-data/../x.json",       /* a dot-dot segment */
        "file:///etc/passwd",
        "s3://hc-data/\xff.json", /* not UTF-8 */
        NULL,
    };
    struct athena_sql_vars v = plain;
    char why[256], *sql = NULL;

    (void)state;
    for (int i = 0; bad_sources[i]; i++) {
        v = plain;
        v.source = bad_sources[i];
        assert_int_equal(athena_sql_render("facility_metrics", &v, &sql, why, sizeof why),
                         HC_EVALIDATION);
        assert_null(sql);
        assert_non_null(strstr(why, "source"));
    }
    v = plain;
    v.database = "hcpipe\".\"x";
    assert_int_equal(athena_sql_render("accredited_by_state", &v, &sql, why, sizeof why),
                     HC_EVALIDATION);
    assert_non_null(strstr(why, "HCPIPE_ATHENA_DATABASE"));
    v = plain;
    v.table = "t` (x int); DROP TABLE `y";
    assert_int_equal(athena_sql_render("create_table", &v, &sql, why, sizeof why), HC_EVALIDATION);
    assert_non_null(strstr(why, "HCPIPE_ATHENA_TABLE"));
    v = plain;
    v.location = "s3://hc-data/x' LOCATION 's3://other/";
    assert_int_equal(athena_sql_render("create_table", &v, &sql, why, sizeof why), HC_EVALIDATION);
    assert_non_null(strstr(why, "HCPIPE_SOURCE_URI"));
    v = plain;
    v.as_of = "2026-05-01' OR '1'='1";
    assert_int_equal(athena_sql_render("expiring_accreditations", &v, &sql, why, sizeof why),
                     HC_EVALIDATION);
    v.as_of = "2026-02-30";
    assert_int_equal(athena_sql_render("accredited_by_state", &v, &sql, why, sizeof why),
                     HC_EVALIDATION);
    v.as_of = NULL;
    assert_int_equal(athena_sql_render("accredited_by_state", &v, &sql, why, sizeof why),
                     HC_EVALIDATION);
    assert_null(sql);
    assert_int_equal(athena_sql_render("no_such_query", &plain, &sql, why, sizeof why),
                     HC_EUNKNOWNQUERY);
    assert_int_equal(athena_sql_render("../local/facility_metrics", &plain, &sql, why, sizeof why),
                     HC_EUNKNOWNQUERY);
}

static void athena_sql_types_are_matched(void **state)
{
    (void)state;
    assert_true(athena_sql_type_compatible("varchar", COL_VARCHAR));
    assert_true(athena_sql_type_compatible("bigint", COL_BIGINT));
    assert_true(athena_sql_type_compatible("integer", COL_BIGINT));
    assert_true(athena_sql_type_compatible("date", COL_DATE));
    assert_true(athena_sql_type_compatible("double", COL_DOUBLE));
    assert_true(athena_sql_type_compatible("boolean", COL_BOOLEAN));
    assert_false(athena_sql_type_compatible("varchar", COL_BIGINT));
    assert_false(athena_sql_type_compatible("timestamp", COL_DATE));
    assert_false(athena_sql_type_compatible("array(varchar)", COL_VARCHAR));
    assert_false(athena_sql_type_compatible(NULL, COL_VARCHAR));
}

static void athena_sql_convert_types_cells(void **state)
{
    struct value v;

    (void)state;
    assert_int_equal(athena_sql_convert(NULL, COL_BIGINT, &v), HC_OK);
    assert_true(v.is_null);
    assert_int_equal(athena_sql_convert("", COL_VARCHAR, &v), HC_OK);
    assert_false(v.is_null);
    assert_int_equal(v.len, 0);
    assert_int_equal(athena_sql_convert("a,\"b\"", COL_VARCHAR, &v), HC_OK);
    assert_int_equal(v.len, 5);
    assert_int_equal(athena_sql_convert("42", COL_BIGINT, &v), HC_OK);
    assert_int_equal(v.i, 42);
    assert_int_equal(athena_sql_convert("-9223372036854775808", COL_BIGINT, &v), HC_OK);
    assert_true(v.i == INT64_MIN);
    assert_int_equal(athena_sql_convert("9223372036854775808", COL_BIGINT, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("", COL_BIGINT, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("4x", COL_BIGINT, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert(" 4", COL_BIGINT, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("1970-01-02", COL_DATE, &v), HC_OK);
    assert_int_equal(v.i, 1);
    assert_int_equal(athena_sql_convert("2026-02-29", COL_DATE, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("2026-02-28 00:00", COL_DATE, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("1.5e3", COL_DOUBLE, &v), HC_OK);
    assert_true(v.d == 1500.0);
    assert_int_equal(athena_sql_convert("NaN", COL_DOUBLE, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("1e999", COL_DOUBLE, &v), HC_EENGINE);
    assert_int_equal(athena_sql_convert("true", COL_BOOLEAN, &v), HC_OK);
    assert_int_equal(v.i, 1);
    assert_int_equal(athena_sql_convert("false", COL_BOOLEAN, &v), HC_OK);
    assert_int_equal(v.i, 0);
    assert_int_equal(athena_sql_convert("TRUE", COL_BOOLEAN, &v), HC_EENGINE);
}

/* Collects CSV records as "cell|cell|..." lines, NULL written as \N. */
struct csv_out {
    char text[1024];
    size_t len;
    int rows;
};

static int csv_collect(void *ctx, char *const *cells, size_t n)
{
    struct csv_out *o = ctx;

    for (size_t i = 0; i < n; i++)
        o->len += (size_t)snprintf(o->text + o->len, sizeof o->text - o->len, "%s%s", i ? "|" : "",
                                   cells[i] ? cells[i] : "\\N");
    o->len += (size_t)snprintf(o->text + o->len, sizeof o->text - o->len, ";");
    o->rows++;
    return o->rows == 99 ? HC_ECANCELLED : HC_OK;
}

static int csv_parse(const char *input, size_t ncols, size_t chunk, struct csv_out *o)
{
    struct athena_csv *c = athena_csv_new(ncols, csv_collect, o);
    size_t n = strlen(input);
    int err = HC_OK;

    assert_non_null(c);
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < n && !err; i += chunk)
        err = athena_csv_feed(c, input + i, n - i < chunk ? n - i : chunk);
    if (!err)
        err = athena_csv_finish(c);
    athena_csv_free(c);
    return err;
}

static void athena_sql_csv_reads_athena_output(void **state)
{
    static const char input[] = "\"state\",\"facility_count\",\"name\"\n"
                                "\"TX\",\"2\",\"he said \"\"hi\"\", then\nleft\"\n"
                                ",\"1\",\"\"\r\n"
                                "\"a,b\",,\"x\"";
    static const char want[] = "state|facility_count|name;TX|2|he said \"hi\", then\nleft;"
                               "\\N|1|;a,b|\\N|x;";
    struct csv_out o;

    (void)state;
    for (size_t chunk = 1; chunk <= sizeof input; chunk += 3) {
        assert_int_equal(csv_parse(input, 3, chunk, &o), HC_OK);
        assert_string_equal(o.text, want);
        assert_int_equal(o.rows, 4);
    }
    assert_int_equal(csv_parse("\"a\"\n\n\"b\"\n", 1, 4, &o), HC_OK); /* blank line */
    assert_int_equal(o.rows, 2);
}

static void athena_sql_csv_rejects_malformed(void **state)
{
    struct csv_out o;

    (void)state;
    assert_int_equal(csv_parse("\"a\"b,\"c\"\n", 2, 5, &o), HC_EENGINE);      /* after quote */
    assert_int_equal(csv_parse("\"a\"\n", 2, 5, &o), HC_EENGINE);             /* too few */
    assert_int_equal(csv_parse("\"a\",\"b\",\"c\"\n", 2, 5, &o), HC_EENGINE); /* too many */
    assert_int_equal(csv_parse("\"a\",\"b", 2, 5, &o), HC_EENGINE);           /* open quote */
    assert_int_equal(o.rows, 0);
    assert_int_equal(csv_parse("\"a\"\n\"b\"\n", 1, 1, &o), HC_OK);
    /* The callback's error stops the parse and is returned. */
    {
        char many[99 * 4 + 1];

        for (int i = 0; i < 99; i++)
            memcpy(many + 4 * i, "\"x\"\n", 4);
        many[99 * 4] = '\0';
        assert_int_equal(csv_parse(many, 1, 7, &o), HC_ECANCELLED);
        assert_int_equal(o.rows, 99);
    }
}

/* Writes the rendered texts for the syntax check (only with HCPIPE_SQL_DUMP set). */
static void athena_sql_dump(void **state)
{
    const char *dir = getenv("HCPIPE_SQL_DUMP");
    char why[256], path[4096];

    (void)state;
    if (!dir)
        skip();
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; texts[i]; i++) {
            char *sql = NULL;
            FILE *f;

            assert_int_equal(
                athena_sql_render(texts[i], pass ? &hostile : &plain, &sql, why, sizeof why),
                HC_OK);
            snprintf(path, sizeof path, "%s/%s%s.sql", dir, texts[i], pass ? ".hostile" : "");
            f = fopen(path, "w");
            assert_non_null(f);
            fputs(sql, f);
            fclose(f);
            free(sql);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(athena_sql_identifiers_are_strict),
        cmocka_unit_test(athena_sql_locations_are_checked),
        cmocka_unit_test(athena_sql_dates_are_real),
        cmocka_unit_test(athena_sql_quote_doubles_quotes),
        cmocka_unit_test(athena_sql_render_fills_every_text),
        cmocka_unit_test(athena_sql_render_places_checked_values),
        cmocka_unit_test(athena_sql_render_rejects_hostile_values),
        cmocka_unit_test(athena_sql_types_are_matched),
        cmocka_unit_test(athena_sql_convert_types_cells),
        cmocka_unit_test(athena_sql_csv_reads_athena_output),
        cmocka_unit_test(athena_sql_csv_rejects_malformed),
        cmocka_unit_test(athena_sql_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
