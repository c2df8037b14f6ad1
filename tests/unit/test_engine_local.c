/* Unit tests of server/engine_local.c: the three catalog queries' exact results on handcrafted
 * data (nulls, empty services, null-state groups, as_of boundaries, month clamping, byte-order
 * sorting), scope, paging, error mapping, cancellation and deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/buf.h"
#include "server/catalog.h"
#include "server/engine_local.h"
#include "server/error.h"
#include "server/records.h"
#include "server/sys.h"

static char dir[256];
static struct engine *eng;

static void put_object(const char *bucket, const char *key, const char *text)
{
    char path[600];
    FILE *f;

    snprintf(path, sizeof path, "%s/buckets/%s", dir, bucket);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/buckets/%s/%s", dir, bucket, key);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char q_data[] =
    "{\"facility_id\":\"B2\",\"facility_name\":\"Beta\",\"location\":{\"state\":\"CA\"},"
    "\"employee_count\":100,\"services\":[\"a\",\"b\"],\"accreditations\":["
    "{\"accreditation_body\":\"NCQA\",\"valid_until\":\"2026-08-31\"},"
    "{\"accreditation_body\":\"JC\",\"valid_until\":\"2027-02-28\"},"
    "{\"accreditation_body\":null,\"valid_until\":\"2027-03-01\"}]}\n"
    "{\"facility_id\":\"A1\",\"facility_name\":null,\"location\":{\"state\":null},"
    "\"employee_count\":null,\"services\":[],\"accreditations\":["
    "{\"accreditation_body\":\"JC\",\"valid_until\":\"2026-08-30\"},"
    "{\"accreditation_body\":\"DNV\",\"valid_until\":\"2026-09-15\"}]}\n"
    "{\"facility_id\":\"a0\",\"facility_name\":\"Lower\",\"location\":null,\"services\":null,"
    "\"accreditations\":null}\n"
    "\n"
    "{\"facility_id\":\"C3\",\"facility_name\":\"Gamma\",\"location\":{\"state\":\"CA\"},"
    "\"employee_count\":50,\"accreditations\":["
    "{\"accreditation_body\":\"JC\",\"valid_until\":null},"
    "{\"accreditation_body\":\"JC\",\"valid_until\":\"2030-01-01\"},"
    "{\"accreditation_body\":\"DNV\",\"valid_until\":\"2030-01-01\"}]}\n"
    "{\"facility_id\":\"\xc3\x89"
    "4\",\"facility_name\":\"\xc3\x89mile\","
    "\"location\":{\"state\":\"\xc3\x96S\"},\"employee_count\":7,\"services\":[\"x\"],"
    "\"accreditations\":[{\"valid_until\":\"2026-12-01\"}]}\n"
    "{\"facility_id\":\"D5\",\"location\":{\"state\":\"TX\"},\"employee_count\":1,"
    "\"accreditations\":[{\"accreditation_body\":\"JC\",\"valid_until\":\"2027-02-28\"},"
    "{\"accreditation_body\":null,\"valid_until\":\"2027-02-28\"},"
    "{\"accreditation_body\":\"AB\",\"valid_until\":\"2027-02-28\"}]}\n";

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hcpipe-engine-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(engine_local_new(dir, &eng), HC_OK);
    put_object("bk1", "q.ndjson", q_data);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    eng->ops->destroy(eng);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- a sink collecting rows as text: "v|v|v\n", NULL for nulls ---- */

struct collect {
    struct buf text;
    size_t ncols, rows, column_calls;
    const struct column *cols;
};

static int c_columns(void *ctx, const struct column *cols, size_t ncols)
{
    struct collect *c = ctx;

    c->ncols = ncols;
    c->cols = cols;
    c->column_calls++;
    return HC_OK;
}

static int c_row(void *ctx, const struct value *v)
{
    struct collect *c = ctx;

    for (size_t i = 0; i < c->ncols; i++) {
        char d[11];

        if (i)
            buf_putc(&c->text, '|');
        if (v[i].is_null) {
            buf_puts(&c->text, "NULL");
        } else if (c->cols[i].type == COL_VARCHAR) {
            buf_append(&c->text, v[i].s, v[i].len);
        } else if (c->cols[i].type == COL_DATE) {
            records_format_date((int32_t)v[i].i, d);
            buf_puts(&c->text, d);
        } else {
            buf_printf(&c->text, "%lld", (long long)v[i].i);
        }
    }
    buf_putc(&c->text, '\n');
    c->rows++;
    return HC_OK;
}

struct outcome {
    int err;
    char *rows; /* malloc'ed text */
    size_t n_rows, pages;
    json_t *stats, *problem;
};

static void outcome_free(struct outcome *o)
{
    free(o->rows);
    json_decref(o->stats);
    json_decref(o->problem);
    memset(o, 0, sizeof *o);
}

static atomic_int no_cancel;
static atomic_int job_seq; /* each run gets its own job id, so handles never collide */

static struct outcome run_full(const char *query, const char *source, const char *as_of,
                               enum job_scope scope, enum bad_record_policy policy,
                               atomic_int *cancel, int64_t deadline)
{
    struct outcome o = {0};
    struct collect c = {0};
    struct result_sink sink = {c_columns, c_row, &c};
    struct engine_progress prog = {0};
    char job_id[32];
    struct engine_job job = {
        job_id, query, as_of, scope, source, policy, 1, deadline, cancel ? cancel : &no_cancel,
        &prog};
    char *handle = NULL, *token = NULL;
    int done = 0;

    snprintf(job_id, sizeof job_id, "job-%d", atomic_fetch_add(&job_seq, 1) + 1);
    buf_init(&c.text, 1 << 24);
    buf_puts(&c.text, "");
    o.err = eng->ops->start(eng, &job, NULL, &handle, &o.problem);
    if (!o.err)
        o.err = eng->ops->poll(eng, &job, handle, &done, &o.stats, &o.problem);
    if (!o.err) {
        assert_int_equal(done, 1);
        do {
            char *next = NULL;
            o.err = eng->ops->fetch_page(eng, &job, handle, token, &sink, &next, &o.problem);
            free(token);
            token = next;
            o.pages++;
        } while (!o.err && token);
        assert_int_equal(c.column_calls, 1);
        assert_int_equal(c.ncols, catalog_find(query)->ncols);
    }
    if (handle)
        eng->ops->cancel(eng, handle);
    free(handle);
    free(token);
    o.n_rows = c.rows;
    o.rows = buf_steal(&c.text, NULL);
    if (!o.rows)
        o.rows = strdup("");
    return o;
}

static struct outcome run(const char *query, const char *source, const char *as_of)
{
    return run_full(query, source, as_of, SCOPE_DATASET, BAD_RECORD_FAIL, NULL, 0);
}

/* ---- the queries ---- */

static void engine_local_facility_metrics(void **state)
{
    struct outcome o = run("facility_metrics", "s3://bk1/q.ndjson", "2026-08-31");

    (void)state;
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "A1|NULL|NULL|0|2026-08-30\n"
                                "B2|Beta|100|2|2026-08-31\n"
                                "C3|Gamma|50|0|NULL\n"
                                "D5|NULL|1|0|2027-02-28\n"
                                "a0|Lower|NULL|0|NULL\n"
                                "\xc3\x89"
                                "4|\xc3\x89mile|7|1|2026-12-01\n");
    assert_int_equal(json_integer_value(json_object_get(o.stats, "rows_loaded")), 6);
    assert_int_equal(json_integer_value(json_object_get(o.stats, "bytes_read")), strlen(q_data));
    outcome_free(&o);
}

static void engine_local_accredited_by_state(void **state)
{
    struct outcome o = run("accredited_by_state", "s3://bk1/q.ndjson", "2026-08-31");

    (void)state;
    assert_int_equal(o.err, HC_OK);
    /* valid_until == as_of counts; null state is its own group, last; byte order. */
    assert_string_equal(o.rows, "CA|2|150|5\n"
                                "TX|1|1|3\n"
                                "\xc3\x96S|1|7|1\n"
                                "NULL|1|0|1\n");
    outcome_free(&o);
    o = run("accredited_by_state", "s3://bk1/q.ndjson", "2027-03-01");
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "CA|2|150|3\n");
    outcome_free(&o);
    o = run("accredited_by_state", "s3://bk1/q.ndjson", "2031-01-01");
    assert_int_equal(o.err, HC_OK);
    assert_int_equal(o.n_rows, 0);
    outcome_free(&o);
}

static void engine_local_expiring_accreditations(void **state)
{
    struct outcome o = run("expiring_accreditations", "s3://bk1/q.ndjson", "2026-08-31");

    (void)state;
    assert_int_equal(o.err, HC_OK);
    /* window 2026-08-31 .. 2027-02-28 (clamped); 2027-03-01 is out. */
    assert_string_equal(o.rows, "B2|Beta|CA|NCQA|2026-08-31|0\n"
                                "A1|NULL|NULL|DNV|2026-09-15|15\n"
                                "\xc3\x89"
                                "4|\xc3\x89mile|\xc3\x96S|NULL|2026-12-01|92\n"
                                "B2|Beta|CA|JC|2027-02-28|181\n"
                                "D5|NULL|TX|AB|2027-02-28|181\n"
                                "D5|NULL|TX|JC|2027-02-28|181\n"
                                "D5|NULL|TX|NULL|2027-02-28|181\n");
    outcome_free(&o);
    /* one day later the window ends 2027-03-01 (2026-09-01 + 6 months) */
    o = run("expiring_accreditations", "s3://bk1/q.ndjson", "2026-09-01");
    assert_int_equal(o.err, HC_OK);
    assert_non_null(strstr(o.rows, "B2|Beta|CA|NULL|2027-03-01|181\n"));
    assert_null(strstr(o.rows, "NCQA"));
    outcome_free(&o);
}

static void engine_local_month_clamping(void **state)
{
    struct outcome o;

    (void)state;
    put_object("bk1", "leap.ndjson",
               "{\"facility_id\":\"L\",\"accreditations\":["
               "{\"accreditation_body\":\"a\",\"valid_until\":\"2024-02-29\"},"
               "{\"accreditation_body\":\"b\",\"valid_until\":\"2024-03-01\"},"
               "{\"accreditation_body\":\"c\",\"valid_until\":\"2023-08-31\"},"
               "{\"accreditation_body\":\"d\",\"valid_until\":\"2023-08-30\"},"
               "{\"accreditation_body\":\"e\",\"valid_until\":\"2024-03-31\"},"
               "{\"accreditation_body\":\"f\",\"valid_until\":\"2024-04-01\"}]}\n");
    o = run_full("expiring_accreditations", "s3://bk1/leap.ndjson", "2023-08-31", SCOPE_OBJECT,
                 BAD_RECORD_FAIL, NULL, 0);
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "L|NULL|NULL|c|2023-08-31|0\n"
                                "L|NULL|NULL|a|2024-02-29|182\n");
    outcome_free(&o);
    o = run_full("expiring_accreditations", "s3://bk1/leap.ndjson", "2023-10-01", SCOPE_OBJECT,
                 BAD_RECORD_FAIL, NULL, 0);
    assert_string_equal(o.rows, "L|NULL|NULL|a|2024-02-29|151\n"
                                "L|NULL|NULL|b|2024-03-01|152\n"
                                "L|NULL|NULL|e|2024-03-31|182\n"
                                "L|NULL|NULL|f|2024-04-01|183\n");
    outcome_free(&o);
}

static void engine_local_scope_and_supersede(void **state)
{
    struct outcome o;

    (void)state;
    o = run("facility_metrics", "s3://bk1/q.ndjson", "2026-08-31");
    outcome_free(&o);
    put_object("bk1", "r.json",
               "[{\"facility_id\":\"B2\",\"facility_name\":\"Beta2\",\"location\":{\"state\":"
               "\"NY\"},\"accreditations\":[{\"valid_until\":\"2026-09-01\"}]},"
               "{\"facility_id\":\"Z9\"}]");
    o = run_full("facility_metrics", "s3://bk1/r.json", "2026-08-31", SCOPE_OBJECT, BAD_RECORD_FAIL,
                 NULL, 0);
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "B2|Beta2|NULL|0|2026-09-01\nZ9|NULL|NULL|0|NULL\n");
    outcome_free(&o);
    /* q's object scope lost B2 to the more recent r */
    o = run_full("facility_metrics", "s3://bk1/q.ndjson", "2026-08-31", SCOPE_OBJECT,
                 BAD_RECORD_FAIL, NULL, 0);
    assert_int_equal(o.err, HC_OK);
    assert_int_equal(o.n_rows, 5);
    assert_null(strstr(o.rows, "B2"));
    assert_true(json_is_true(json_object_get(o.stats, "unchanged")));
    outcome_free(&o);
    /* the dataset as it stands (no source) */
    o = run("accredited_by_state", NULL, "2026-08-31");
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "CA|1|50|2\n"
                                "NY|1|0|1\n"
                                "TX|1|1|3\n"
                                "\xc3\x96S|1|7|1\n"
                                "NULL|1|0|1\n");
    outcome_free(&o);
    /* deleting r brings q's B2 back */
    assert_int_equal(engine_local_delete_object(eng, "s3://bk1/r.json"), HC_OK);
    o = run("facility_metrics", NULL, "2026-08-31");
    assert_non_null(strstr(o.rows, "B2|Beta|100|2|2026-08-31\n"));
    assert_null(strstr(o.rows, "Z9"));
    outcome_free(&o);
    o = run_full("facility_metrics", NULL, "2026-08-31", SCOPE_OBJECT, BAD_RECORD_FAIL, NULL, 0);
    assert_int_equal(o.err, HC_EVALIDATION);
    outcome_free(&o);
}

static void engine_local_sample_data(void **state)
{
    FILE *f = fopen("tests/data/sample_data.json", "r");
    char text[8192];
    size_t n;
    struct outcome o;

    (void)state;
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    put_object("sample", "sample_data.json", text);
    o = run("accredited_by_state", "s3://sample/sample_data.json", "2026-11-27");
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "TX|1|250|1\n");
    outcome_free(&o);
    o = run("facility_metrics", "s3://sample/sample_data.json", "2026-11-27");
    assert_string_equal(o.rows, "FAC12345|City Hospital|250|5|2026-12-31\n"
                                "FAC54321|Green Valley Clinic|85|2|2024-09-30\n"
                                "FAC67890|Lakeside Medical Center|320|4|2025-12-31\n");
    outcome_free(&o);
}

static void engine_local_pages(void **state)
{
    struct buf b;
    struct outcome o;

    (void)state;
    buf_init(&b, 1 << 24);
    for (int i = 0; i < 10005; i++)
        buf_printf(&b, "{\"facility_id\":\"P%05d\"}\n", i);
    put_object("bk1", "many.ndjson", b.data);
    buf_free(&b);
    o = run("facility_metrics", "s3://bk1/many.ndjson", "2026-01-01");
    assert_int_equal(o.err, HC_OK);
    assert_int_equal(o.n_rows, 10005);
    assert_int_equal(o.pages, 2);
    assert_non_null(strstr(o.rows, "P10004|NULL|NULL|0|NULL\n"));
    outcome_free(&o);
}

/* ---- errors ---- */

static const char *problem_type(json_t *p)
{
    return json_string_value(json_object_get(p, "type"));
}

static void engine_local_errors(void **state)
{
    struct outcome o;

    (void)state;
    o = run("facility_metrics", "s3://bk1/missing.ndjson", "2026-01-01");
    assert_int_equal(o.err, HC_ESOURCEMISSING);
    assert_non_null(strstr(problem_type(o.problem), "source-not-found"));
    outcome_free(&o);
    o = run("facility_metrics", "s3://bk1/../etc", "2026-01-01");
    assert_int_equal(o.err, HC_EBADSOURCE);
    outcome_free(&o);
    o = run("facility_metrics", "tests/data/sample_data.json", "2026-01-01");
    assert_int_equal(o.err, HC_EBADSOURCE); /* plain files only for `hcpipe run` */
    outcome_free(&o);
    o = run("no_such_query", NULL, "2026-01-01");
    assert_int_equal(o.err, HC_EUNKNOWNQUERY);
    outcome_free(&o);
    o = run("facility_metrics", NULL, "2026-02-30");
    assert_int_equal(o.err, HC_EVALIDATION);
    outcome_free(&o);
    put_object("bk1", "broken.json", "[{\"facility_id\":\"X\"}, {");
    o = run("facility_metrics", "s3://bk1/broken.json", "2026-01-01");
    assert_int_equal(o.err, HC_EBADINPUT);
    assert_non_null(strstr(problem_type(o.problem), "unreadable-input"));
    outcome_free(&o);
}

static void engine_local_bad_records(void **state)
{
    struct outcome o;
    json_t *bad;

    (void)state;
    put_object("bk1", "bad.ndjson",
               "{\"facility_id\":\"G1\"}\n"
               "{\"facility_id\":\"G2\",\"employee_count\":2.5}\n"
               "not json\n"
               "{\"facility_id\":\"G1\"}\n"
               "{\"facility_id\":\"G3\"}\n");
    o = run("facility_metrics", "s3://bk1/bad.ndjson", "2026-01-01");
    assert_int_equal(o.err, HC_EBADRECORDS);
    bad = json_object_get(o.problem, "bad_records");
    assert_int_equal(json_array_size(bad), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bad, 0), "position")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bad, 1), "position")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bad, 2), "position")), 4);
    outcome_free(&o);
    o = run("facility_metrics", NULL, "2026-01-01");
    assert_int_equal(o.n_rows, 0); /* nothing was loaded */
    outcome_free(&o);
    o = run_full("facility_metrics", "s3://bk1/bad.ndjson", "2026-01-01", SCOPE_DATASET,
                 BAD_RECORD_SKIP, NULL, 0);
    assert_int_equal(o.err, HC_OK);
    assert_string_equal(o.rows, "G1|NULL|NULL|0|NULL\nG3|NULL|NULL|0|NULL\n");
    bad = json_object_get(o.stats, "bad_records");
    assert_int_equal(json_array_size(bad), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(bad, 2), "source")),
                        "s3://bk1/bad.ndjson");
    assert_non_null(
        strstr(json_string_value(json_array_get(json_object_get(o.stats, "warnings"), 0)),
               "3 bad records"));
    outcome_free(&o);
}

static void engine_local_cancel_and_deadline(void **state)
{
    struct outcome o;
    atomic_int cancel = 1;

    (void)state;
    o = run_full("facility_metrics", "s3://bk1/q.ndjson", "2026-01-01", SCOPE_DATASET,
                 BAD_RECORD_FAIL, &cancel, 0);
    assert_int_equal(o.err, HC_ECANCELLED);
    outcome_free(&o);
    o = run_full("facility_metrics", "s3://bk1/q.ndjson", "2026-01-01", SCOPE_DATASET,
                 BAD_RECORD_FAIL, NULL, sys_now_ms() - 1000);
    assert_int_equal(o.err, HC_ETIMEOUT);
    outcome_free(&o);
    /* nothing was loaded by the stopped jobs */
    o = run("facility_metrics", NULL, "2026-01-01");
    assert_int_equal(o.n_rows, 0);
    outcome_free(&o);
}

/* Two threads at once: loads serialise on the write lock, queries run side by side. */
struct thread_job {
    const char *source;
    struct outcome o;
};

static void *thread_main(void *arg)
{
    struct thread_job *tj = arg;

    tj->o = run("accredited_by_state", tj->source, "2026-08-31");
    return NULL;
}

static void engine_local_threads(void **state)
{
    struct buf b;
    struct thread_job jobs[4] = {{"s3://bk1/t1.ndjson", {0}},
                                 {"s3://bk1/t2.ndjson", {0}},
                                 {"s3://bk1/t1.ndjson", {0}},
                                 {"s3://bk1/q.ndjson", {0}}};
    pthread_t th[4];
    struct outcome o;

    (void)state;
    for (int k = 1; k <= 2; k++) {
        char key[32];

        buf_init(&b, 1 << 24);
        for (int i = 0; i < 3000; i++)
            buf_printf(&b,
                       "{\"facility_id\":\"T%d-%d\",\"location\":{\"state\":\"S%d\"},"
                       "\"employee_count\":1,\"accreditations\":[{\"valid_until\":"
                       "\"2030-01-01\"}]}\n",
                       k, i, k);
        snprintf(key, sizeof key, "t%d.ndjson", k);
        put_object("bk1", key, b.data);
        buf_free(&b);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].o.err, HC_OK);
        outcome_free(&jobs[i].o);
    }
    o = run("accredited_by_state", NULL, "2026-08-31");
    assert_string_equal(o.rows, "S1|3000|3000|3000\n"
                                "S2|3000|3000|3000\n"
                                "CA|2|150|5\n"
                                "TX|1|1|3\n"
                                "\xc3\x96S|1|7|1\n"
                                "NULL|1|0|1\n");
    outcome_free(&o);
}

/* A second start of a running attempt (same job id and attempt, no handle to re-attach to) is
 * refused; the first run goes on untouched, and re-attaching by its handle still works. */
static void engine_local_start_twice(void **state)
{
    struct engine_progress prog = {0};
    struct engine_job job = {
        "job-twice", "facility_metrics", "2026-01-01", SCOPE_DATASET, NULL, BAD_RECORD_FAIL, 1,
        0,           &no_cancel,         &prog};
    struct collect c = {0};
    struct result_sink sink = {c_columns, c_row, &c};
    char *h1 = NULL, *h2 = NULL, *h3 = NULL, *next = NULL;
    json_t *problem = NULL;

    (void)state;
    buf_init(&c.text, 1 << 20);
    assert_int_equal(eng->ops->start(eng, &job, NULL, &h1, &problem), HC_OK);
    assert_non_null(h1);
    assert_null(problem);
    assert_int_equal(eng->ops->start(eng, &job, NULL, &h2, &problem), HC_ECONFLICT);
    assert_null(h2);
    assert_non_null(problem);
    assert_non_null(strstr(json_string_value(json_object_get(problem, "detail")), "already"));
    json_decref(problem);
    problem = NULL;
    assert_int_equal(eng->ops->start(eng, &job, h1, &h3, &problem), HC_OK); /* re-attach */
    assert_string_equal(h3, h1);
    assert_int_equal(eng->ops->fetch_page(eng, &job, h1, NULL, &sink, &next, &problem), HC_OK);
    assert_null(next);
    assert_int_equal(c.column_calls, 1);
    free(h3);
    h3 = NULL;
    /* The last page freed the run: the attempt may start again. */
    assert_int_equal(eng->ops->start(eng, &job, NULL, &h3, &problem), HC_OK);
    assert_string_equal(h3, h1);
    eng->ops->cancel(eng, h3);
    free(h1);
    free(h3);
    buf_free(&c.text);
}

static void engine_local_catalog(void **state)
{
    const char *const *names = engine_query_names();
    size_t n = 0;

    (void)state;
    for (; names[n]; n++)
        assert_true(engine_query_known(names[n]));
    assert_int_equal(n, 3);
    assert_false(engine_query_known("drop_tables"));
    assert_string_equal(catalog_find("expiring_accreditations")->columns[5].name, "days_left");
    assert_int_equal(catalog_find("facility_metrics")->columns[4].type, COL_DATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(engine_local_facility_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_accredited_by_state, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_expiring_accreditations, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_month_clamping, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_scope_and_supersede, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_sample_data, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_cancel_and_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_local_start_twice, setup, teardown),
        cmocka_unit_test(engine_local_catalog),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
