/* Unit tests of server/metrics.c: the exposition's exact lines (labels, escaping, cumulative
 * histograms), the fixed label sets and their "other" overflow, counters under concurrent
 * recording, and the scrape-time gauges read from a real job store and warehouse file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/error.h"
#include "server/jobstore.h"
#include "server/metrics.h"

/* Renders into a fresh string (caller frees). */
static char *render(const struct metrics_sources *src)
{
    struct buf b;
    char *text;

    buf_init(&b, 1 << 22);
    assert_int_equal(metrics_render(src, &b), HC_OK);
    text = buf_steal(&b, NULL);
    assert_non_null(text);
    return text;
}

/* Asserts that `text` holds `line` as a whole line. */
static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return;
    fail_msg("missing line: %s", line);
}

static int setup(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

static void metrics_http_counts_by_pattern_method_status(void **state)
{
    char *text;

    (void)state;
    metrics_http_observe("GET", "/jobs/{id}", 404, 100);
    metrics_http_observe("GET", "/jobs/{id}", 404, 100);
    metrics_http_observe("GET", "/jobs/{id}", 200, 100);
    metrics_http_observe("POST", "/jobs", 201, 100);
    metrics_http_observe("BREW", NULL, 418, 100);
    text = render(NULL);
    assert_line(text, "# TYPE hcpipe_http_requests_total counter");
    assert_line(text,
                "hcpipe_http_requests_total{route=\"/jobs/{id}\",method=\"GET\",status=\"404\"} 2");
    assert_line(text,
                "hcpipe_http_requests_total{route=\"/jobs/{id}\",method=\"GET\",status=\"200\"} 1");
    assert_line(text,
                "hcpipe_http_requests_total{route=\"/jobs\",method=\"POST\",status=\"201\"} 1");
    assert_line(
        text,
        "hcpipe_http_requests_total{route=\"unmatched\",method=\"other\",status=\"other\"} 1");
    free(text);
}

static void metrics_label_values_are_escaped(void **state)
{
    char *text;

    (void)state;
    metrics_http_observe("GET", "/a\"b\\c\nd", 200, 1);
    text = render(NULL);
    assert_line(
        text,
        "hcpipe_http_requests_total{route=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status=\"200\"} 1");
    free(text);
}

static void metrics_histogram_is_cumulative(void **state)
{
    char *text;

    (void)state;
    metrics_http_observe("GET", "/h", 200, 500);      /* <= 1 ms */
    metrics_http_observe("GET", "/h", 200, 3000);     /* <= 5 ms */
    metrics_http_observe("GET", "/h", 200, 20000000); /* above every bound */
    text = render(NULL);
    assert_line(text, "# TYPE hcpipe_http_request_duration_seconds histogram");
    assert_line(
        text,
        "hcpipe_http_request_duration_seconds_bucket{route=\"/h\",method=\"GET\",le=\"0.001\"} 1");
    assert_line(
        text,
        "hcpipe_http_request_duration_seconds_bucket{route=\"/h\",method=\"GET\",le=\"0.0025\"} 1");
    assert_line(
        text,
        "hcpipe_http_request_duration_seconds_bucket{route=\"/h\",method=\"GET\",le=\"0.005\"} 2");
    assert_line(
        text,
        "hcpipe_http_request_duration_seconds_bucket{route=\"/h\",method=\"GET\",le=\"10\"} 2");
    assert_line(
        text,
        "hcpipe_http_request_duration_seconds_bucket{route=\"/h\",method=\"GET\",le=\"+Inf\"} 3");
    assert_line(text,
                "hcpipe_http_request_duration_seconds_sum{route=\"/h\",method=\"GET\"} 20.003500");
    assert_line(text, "hcpipe_http_request_duration_seconds_count{route=\"/h\",method=\"GET\"} 3");
    free(text);
}

static void metrics_routes_beyond_the_cap_count_as_other(void **state)
{
    static char names[64][16];
    char *text;

    (void)state;
    for (int i = 0; i < 64; i++) {
        snprintf(names[i], sizeof names[i], "/r%d", i);
        metrics_http_observe("GET", names[i], 200, 1);
    }
    text = render(NULL);
    assert_line(text, "hcpipe_http_requests_total{route=\"/r0\",method=\"GET\",status=\"200\"} 1");
    assert_line(text, "hcpipe_http_requests_total{route=\"/r37\",method=\"GET\",status=\"200\"} 1");
    assert_null(strstr(text, "route=\"/r38\""));
    /* 40 slots: unmatched, 38 patterns, other */
    assert_line(text,
                "hcpipe_http_requests_total{route=\"other\",method=\"GET\",status=\"200\"} 26");
    free(text);
}

#define THREADS    4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_http_observe("GET", i % 2 ? "/x" : "/y", 200, i);
        metrics_event_count(METRICS_EVENT_ACCEPTED);
    }
    return NULL;
}

static void metrics_counters_survive_concurrent_recording(void **state)
{
    pthread_t t[THREADS];
    char *text, line[160];

    (void)state;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    text = render(NULL);
    snprintf(line, sizeof line,
             "hcpipe_http_requests_total{route=\"/x\",method=\"GET\",status=\"200\"} %d",
             THREADS * PER_THREAD / 2);
    assert_line(text, line);
    snprintf(line, sizeof line,
             "hcpipe_http_requests_total{route=\"/y\",method=\"GET\",status=\"200\"} %d",
             THREADS * PER_THREAD / 2);
    assert_line(text, line);
    snprintf(line, sizeof line, "hcpipe_events_total{outcome=\"accepted\"} %d",
             THREADS * PER_THREAD);
    assert_line(text, line);
    /* Each pattern claimed exactly one slot. */
    assert_null(
        strstr(strstr(text, "route=\"/x\"") + 1, "hcpipe_http_requests_total{route=\"/x\""));
    free(text);
}

static void metrics_jobs_attempts_retries_dead_and_durations(void **state)
{
    char *text;

    (void)state;
    metrics_job_attempt("local", 1);
    metrics_job_retry_scheduled("local");
    metrics_job_attempt("local", 2);
    metrics_job_finished("local", "facility_metrics", JOB_DEAD, 1500);
    metrics_job_attempt("athena", 1);
    metrics_job_finished("athena", "accredited_by_state", JOB_SUCCEEDED, 40);
    metrics_job_finished("spark", "nope", JOB_FAILED, 1);
    text = render(NULL);
    assert_line(text, "hcpipe_job_attempts_total{engine=\"local\"} 2");
    assert_line(text, "hcpipe_job_attempts_total{engine=\"athena\"} 1");
    assert_line(text, "hcpipe_job_retries_total{engine=\"local\"} 1");
    assert_line(text, "hcpipe_job_retries_scheduled_total{engine=\"local\"} 1");
    assert_line(text, "hcpipe_jobs_dead_total{engine=\"local\"} 1");
    assert_line(text, "hcpipe_jobs_dead_total{engine=\"athena\"} 0");
    assert_line(
        text,
        "hcpipe_jobs_finished_total{engine=\"local\",query=\"facility_metrics\",state=\"dead\"} 1");
    assert_line(text, "hcpipe_jobs_finished_total{engine=\"athena\",query=\"accredited_by_state\","
                      "state=\"succeeded\"} 1");
    assert_line(text,
                "hcpipe_jobs_finished_total{engine=\"other\",query=\"other\",state=\"failed\"} 1");
    assert_line(text, "hcpipe_job_duration_seconds_bucket{engine=\"local\",le=\"1\"} 0");
    assert_line(text, "hcpipe_job_duration_seconds_bucket{engine=\"local\",le=\"5\"} 1");
    assert_line(text, "hcpipe_job_duration_seconds_count{engine=\"athena\"} 1");
    assert_line(text, "hcpipe_job_duration_seconds_sum{engine=\"local\"} 1.500000");
    free(text);
}

static void metrics_athena_calls_throttles_and_bytes(void **state)
{
    char *text;

    (void)state;
    metrics_athena_call("StartQueryExecution", "ok");
    metrics_athena_call("GetQueryExecution", "throttled");
    metrics_athena_call("GetQueryExecution", "throttled");
    metrics_athena_call("ListThings", "weird");
    metrics_athena_bytes_scanned(1000);
    metrics_athena_bytes_scanned(24);
    text = render(NULL);
    assert_line(
        text, "hcpipe_athena_api_calls_total{operation=\"StartQueryExecution\",outcome=\"ok\"} 1");
    assert_line(
        text,
        "hcpipe_athena_api_calls_total{operation=\"GetQueryExecution\",outcome=\"throttled\"} 2");
    assert_line(text, "hcpipe_athena_api_calls_total{operation=\"other\",outcome=\"other\"} 1");
    assert_line(text, "hcpipe_athena_throttles_total{operation=\"GetQueryExecution\"} 2");
    assert_line(text, "hcpipe_athena_throttles_total{operation=\"StartQueryExecution\"} 0");
    assert_line(text, "hcpipe_athena_scanned_bytes_total 1024");
    free(text);
}

static void metrics_gauges_come_from_the_stores(void **state)
{
    char dir[] = "/tmp/hcpipe-metrics-XXXXXX", jobs[256], wh[256];
    struct jobstore *js = NULL;
    struct job_spec spec = {.query = "accredited_by_state", .engine = "local"};
    sqlite3 *db = NULL;
    struct metrics_sources src;
    char *text;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(jobs, sizeof jobs, "%s/jobs.db", dir);
    snprintf(wh, sizeof wh, "%s/warehouse.db", dir);
    assert_int_equal(jobstore_open(jobs, &js), HC_OK);
    assert_int_equal(jobstore_insert(js, &spec, NULL), HC_OK);
    assert_int_equal(jobstore_insert(js, &spec, NULL), HC_OK);
    spec.query = "facility_metrics";
    assert_int_equal(jobstore_insert(js, &spec, NULL), HC_OK);
    /* A warehouse-shaped file with the tables the scrape reads. */
    assert_int_equal(sqlite3_open(wh, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE objects(size INTEGER);"
                                  "CREATE TABLE current(facility_id TEXT PRIMARY KEY);"
                                  "INSERT INTO objects VALUES (100), (23);"
                                  "INSERT INTO current VALUES ('a'), ('b'), ('c');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    src = (struct metrics_sources){.jobs = js, .warehouse_path = wh};
    text = render(&src);
    assert_line(text, "hcpipe_jobs{state=\"queued\",query=\"accredited_by_state\"} 2");
    assert_line(text, "hcpipe_jobs{state=\"queued\",query=\"facility_metrics\"} 1");
    assert_line(text, "hcpipe_jobs{state=\"dead\",query=\"facility_metrics\"} 0");
    assert_line(text, "hcpipe_warehouse_objects 2");
    assert_line(text, "hcpipe_warehouse_bytes 123");
    assert_line(text, "hcpipe_warehouse_facilities 3");
    assert_line(text, "hcpipe_metrics_scrape_errors_total 0");
    free(text);

    /* A warehouse that cannot be read leaves its gauges out and counts a scrape error. */
    unlink(wh);
    text = render(&src);
    assert_null(strstr(text, "hcpipe_warehouse_objects "));
    assert_line(text, "hcpipe_metrics_scrape_errors_total 1");
    free(text);

    jobstore_close(js);
    snprintf(wh, sizeof wh, "rm -rf '%s'", dir);
    assert_int_equal(system(wh), 0);
}

static void metrics_render_reports_a_full_buffer(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 64);
    assert_int_equal(metrics_render(NULL, &b), HC_ENOMEM);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(metrics_http_counts_by_pattern_method_status, setup),
        cmocka_unit_test_setup(metrics_label_values_are_escaped, setup),
        cmocka_unit_test_setup(metrics_histogram_is_cumulative, setup),
        cmocka_unit_test_setup(metrics_routes_beyond_the_cap_count_as_other, setup),
        cmocka_unit_test_setup(metrics_counters_survive_concurrent_recording, setup),
        cmocka_unit_test_setup(metrics_jobs_attempts_retries_dead_and_durations, setup),
        cmocka_unit_test_setup(metrics_athena_calls_throttles_and_bytes, setup),
        cmocka_unit_test_setup(metrics_gauges_come_from_the_stores, setup),
        cmocka_unit_test_setup(metrics_render_reports_a_full_buffer, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
