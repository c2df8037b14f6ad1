/* Unit tests of server/result.c: CSV and JSON rendering, atomic commit, abort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/error.h"
#include "server/result.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hcpipe-result-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static char *slurp(const char *name, size_t *len_out)
{
    char path[400];
    FILE *f;
    char *buf = calloc(1, 1 << 16);
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    if (len_out)
        *len_out = n;
    return buf;
}

static int count_entries(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *de;
    int n = 0;

    if (!dp)
        return -1;
    while ((de = readdir(dp)) != NULL)
        if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
            n++;
    closedir(dp);
    return n;
}

static const struct column cols[] = {
    {"name", COL_VARCHAR}, {"n", COL_BIGINT},   {"day", COL_DATE},
    {"x", COL_DOUBLE},     {"ok", COL_BOOLEAN},
};

static struct value str(const char *s)
{
    struct value v = {0};

    v.s = s;
    v.len = strlen(s);
    return v;
}

static struct value num(int64_t i)
{
    struct value v = {0};

    v.i = i;
    return v;
}

static struct value nul(void)
{
    struct value v = {0};

    v.is_null = 1;
    return v;
}

static void result_renders_csv_and_json(void **state)
{
    struct result_meta meta = {"job-1", "facility_metrics", "2026-11-27", "local"};
    struct result_writer *w;
    struct result_sink sink;
    struct value rows[5][5];
    struct value dbl = {0};
    json_t *doc, *stats, *warnings, *bad;
    char *csv, *json_text;
    size_t csv_len;
    const char *expect_csv;

    (void)state;
    dbl.d = 2.5;
    /* plain; comma; quote; newline+CR; unicode */
    rows[0][0] = str("City Hospital");
    rows[0][1] = num(250);
    rows[0][2] = num(20818); /* 2026-12-31 */
    rows[0][3] = dbl;
    rows[0][4] = num(1);
    rows[1][0] = str("Clinic, Inc.");
    rows[1][1] = num(-5);
    rows[1][2] = num(0); /* 1970-01-01 */
    rows[1][3] = nul();
    rows[1][4] = num(0);
    rows[2][0] = str("Say \"hi\"");
    rows[2][1] = nul();
    rows[2][2] = nul();
    rows[2][3] = nul();
    rows[2][4] = nul();
    rows[3][0] = str("line1\nline2\r\tend\\");
    rows[3][1] = num(INT64_MAX);
    rows[3][2] = num(-1); /* 1969-12-31 */
    rows[3][3] = nul();
    rows[3][4] = nul();
    rows[4][0] = str(""); /* empty string, not null */
    rows[4][1] = num(0);
    rows[4][2] = num(11016); /* 2000-02-29 */
    rows[4][3] = nul();
    rows[4][4] = nul();
    assert_int_equal(result_writer_open(dir, &meta, &w), HC_OK);
    sink = result_writer_sink(w);
    assert_int_equal(sink.columns(sink.ctx, cols, 5), HC_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sink.row(sink.ctx, rows[i]), HC_OK);
    {
        struct value u[5] = {str("Gr\xc3\xb6\xc3\x9f"
                                 "e \xe7\x97\x85\xe9\x99\xa2"),
                             nul(), nul(), nul(), nul()};
        struct value ctl[5] = {str("a\x01z"), nul(), nul(), nul(), nul()};
        assert_int_equal(sink.row(sink.ctx, u), HC_OK);
        assert_int_equal(sink.row(sink.ctx, ctl), HC_OK);
    }
    assert_int_equal(result_writer_rows(w), 7);
    stats = json_pack("{s:i}", "rows_loaded", 3);
    warnings = json_pack("[s]", "1 bad record skipped");
    bad = json_pack("[{s:i, s:s}]", "position", 4, "reason", "not an object");
    assert_int_equal(result_writer_commit(w, stats, warnings, bad), HC_OK);
    json_decref(stats);
    json_decref(warnings);
    json_decref(bad);

    csv = slurp("result.csv", &csv_len);
    expect_csv = "name,n,day,x,ok\r\n"
                 "City Hospital,250,2026-12-31,2.5,true\r\n"
                 "\"Clinic, Inc.\",-5,1970-01-01,,false\r\n"
                 "\"Say \"\"hi\"\"\",,,,\r\n"
                 "\"line1\nline2\r\tend\\\",9223372036854775807,1969-12-31,,\r\n"
                 "\"\",0,2000-02-29,,\r\n"
                 "Gr\xc3\xb6\xc3\x9f"
                 "e \xe7\x97\x85\xe9\x99\xa2,,,,\r\n"
                 "a\x01z,,,,\r\n";
    assert_int_equal(csv_len, strlen(expect_csv));
    assert_memory_equal(csv, expect_csv, csv_len);
    free(csv);

    json_text = slurp("result.json", NULL);
    doc = json_loads(json_text, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "job_id")), "job-1");
    assert_string_equal(json_string_value(json_object_get(doc, "as_of")), "2026-11-27");
    assert_string_equal(json_string_value(json_object_get(doc, "engine")), "local");
    assert_int_equal(json_integer_value(json_object_get(doc, "row_count")), 7);
    {
        json_t *c = json_object_get(doc, "columns"), *r = json_object_get(doc, "rows");
        json_t *r0 = json_array_get(r, 0), *r1 = json_array_get(r, 1), *r3 = json_array_get(r, 3);
        json_t *r4 = json_array_get(r, 4), *r5 = json_array_get(r, 5), *r6 = json_array_get(r, 6);

        assert_int_equal(json_array_size(c), 5);
        assert_string_equal(json_string_value(json_object_get(json_array_get(c, 2), "type")),
                            "date");
        assert_string_equal(json_string_value(json_object_get(json_array_get(c, 4), "type")),
                            "boolean");
        assert_int_equal(json_array_size(r), 7);
        assert_true(json_is_integer(json_object_get(r0, "n")));
        assert_int_equal(json_integer_value(json_object_get(r0, "n")), 250);
        assert_string_equal(json_string_value(json_object_get(r0, "day")), "2026-12-31");
        assert_true(json_real_value(json_object_get(r0, "x")) == 2.5);
        assert_true(json_is_true(json_object_get(r0, "ok")));
        assert_true(json_is_false(json_object_get(r1, "ok")));
        assert_true(json_is_null(json_object_get(r1, "x")));
        assert_string_equal(json_string_value(json_object_get(r3, "name")),
                            "line1\nline2\r\tend\\");
        assert_int_equal(json_integer_value(json_object_get(r3, "n")), INT64_MAX);
        assert_string_equal(json_string_value(json_object_get(r4, "name")), "");
        assert_true(json_is_null(json_object_get(json_array_get(r, 2), "n")));
        assert_string_equal(json_string_value(json_object_get(r5, "name")),
                            "Gr\xc3\xb6\xc3\x9f"
                            "e \xe7\x97\x85\xe9\x99\xa2");
        assert_string_equal(json_string_value(json_object_get(r6, "name")), "a\x01z");
    }
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "stats"), "rows_loaded")), 3);
    assert_int_equal(json_array_size(json_object_get(doc, "warnings")), 1);
    assert_int_equal(json_array_size(json_object_get(doc, "bad_records")), 1);
    json_decref(doc);
    free(json_text);
    assert_int_equal(count_entries(dir), 2); /* no temporary files left */
}

static void result_empty_and_defaults(void **state)
{
    struct result_meta meta = {"job-2", "accredited_by_state", "2026-01-01", "local"};
    struct result_writer *w;
    struct result_sink sink;
    json_t *doc;
    char *text, *csv;

    (void)state;
    assert_int_equal(result_writer_open(dir, &meta, &w), HC_OK);
    sink = result_writer_sink(w);
    assert_int_equal(sink.columns(sink.ctx, cols, 2), HC_OK);
    assert_int_equal(result_writer_commit(w, NULL, NULL, NULL), HC_OK);
    text = slurp("result.json", NULL);
    doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "rows")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "row_count")), 0);
    assert_true(json_is_object(json_object_get(doc, "stats")));
    assert_true(json_is_array(json_object_get(doc, "warnings")));
    assert_null(json_object_get(doc, "bad_records"));
    csv = slurp("result.csv", NULL);
    assert_string_equal(csv, "name,n\r\n");
    json_decref(doc);
    free(text);
    free(csv);
}

static void result_abort_leaves_nothing(void **state)
{
    struct result_meta meta = {"job-3", "facility_metrics", "2026-01-01", "local"};
    struct result_writer *w;
    struct result_sink sink;
    struct value v[5] = {{0}};
    char sub[400];

    (void)state;
    snprintf(sub, sizeof sub, "%s/a/b", dir); /* folders created as needed */
    assert_int_equal(result_writer_open(sub, &meta, &w), HC_OK);
    sink = result_writer_sink(w);
    assert_int_equal(sink.columns(sink.ctx, cols, 5), HC_OK);
    v[0] = str("x");
    assert_int_equal(sink.row(sink.ctx, v), HC_OK);
    result_writer_abort(w);
    assert_int_equal(count_entries(sub), 0);
    result_writer_abort(NULL);
}

static void result_col_type_names(void **state)
{
    (void)state;
    assert_string_equal(col_type_name(COL_VARCHAR), "varchar");
    assert_string_equal(col_type_name(COL_BIGINT), "bigint");
    assert_string_equal(col_type_name(COL_DATE), "date");
    assert_string_equal(col_type_name(COL_DOUBLE), "double");
    assert_string_equal(col_type_name(COL_BOOLEAN), "boolean");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(result_renders_csv_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(result_empty_and_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(result_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test(result_col_type_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
