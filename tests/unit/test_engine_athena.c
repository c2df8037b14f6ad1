/*
 * Unit tests of server/engine_athena.c against a scripted loopback Athena (fake_http.h): the
 * settings checks, re-attaching to a stored handle without a start, the poll states and each
 * failure class (retryable, user error, table missing, capacity), the DDL once per
 * configuration (marker file), typed result pages, and a column mismatch.
 */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* short fake_resp rows */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_http.h"
#include "server/config.h"
#include "server/engine_athena.h"
#include "server/error.h"
#include "server/sys.h"

#define CT "Content-Type: application/x-amz-json-1.1\r\n"

static char data_dir[256];

static void env_for(struct fake_server *fs)
{
    char endpoint[64];

    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", fs->port);
    setenv("AWS_ENDPOINT_URL_ATHENA", endpoint, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
}

static void clear_settings_env(void)
{
    static const char *const names[] = {
        "HCPIPE_SOURCE_URI",          "HCPIPE_ATHENA_DATABASE",         "HCPIPE_ATHENA_TABLE",
        "HCPIPE_ATHENA_WORKGROUP",    "HCPIPE_ATHENA_OUTPUT",           "HCPIPE_ATHENA_CATALOG",
        "HCPIPE_ATHENA_POLL_RATE",    "HCPIPE_ATHENA_POLL_INITIAL_MS",  "HCPIPE_ATHENA_POLL_MAX_MS",
        "HCPIPE_ATHENA_PRICE_PER_TB", "HCPIPE_ATHENA_REQUEUE_DELAY_MS", NULL};

    for (int i = 0; names[i]; i++)
        unsetenv(names[i]);
}

static struct engine *new_engine_polling(const char *initial_ms)
{
    struct athena_settings s;
    struct engine *e = NULL;
    char err[256];

    clear_settings_env();
    setenv("HCPIPE_SOURCE_URI", "s3://hc-data/facilities/", 1);
    setenv("HCPIPE_ATHENA_POLL_INITIAL_MS", initial_ms, 1);
    setenv("HCPIPE_ATHENA_POLL_MAX_MS", "60000", 1);
    setenv("HCPIPE_ATHENA_POLL_RATE", "100", 1);
    assert_int_equal(
        engine_athena_settings_load(&s, engine_athena_lookup_env, NULL, err, sizeof err), 0);
    assert_int_equal(engine_athena_new(data_dir, &s, &e), HC_OK);
    engine_athena_settings_free(&s);
    return e;
}

static struct engine *new_engine(void)
{
    return new_engine_polling("10");
}

static int setup(void **state)
{
    (void)state;
    snprintf(data_dir, sizeof data_dir, "/tmp/hcpipe-test-athena-XXXXXX");
    assert_non_null(mkdtemp(data_dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int count_markers(void)
{
    char path[300];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof path, "%s/athena", data_dir);
    d = opendir(path);
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "ddl-", 4) == 0;
    closedir(d);
    return n;
}

/* Polls until done or an error, at most ~5 s. */
static int poll_until(struct engine *e, const struct engine_job *job, const char *h, json_t **stats,
                      json_t **problem)
{
    int done = 0, err = HC_OK;

    for (int i = 0; i < 500 && !done && !err; i++) {
        json_decref(*stats);
        *stats = NULL;
        err = e->ops->poll(e, job, h, &done, stats, problem);
        if (!done && !err)
            usleep(10000);
    }
    return err ? err : done ? HC_OK : -1;
}

static struct engine_job job_of(const char *query)
{
    return (struct engine_job){.job_id = "11111111-2222-3333-4444-555555555555",
                               .query = query,
                               .as_of = "2026-05-01",
                               .scope = SCOPE_DATASET,
                               .attempt = 1};
}

static void engine_athena_settings_are_checked(void **state)
{
    struct athena_settings s;
    char err[256];

    (void)state;
    clear_settings_env();
    assert_int_equal(
        engine_athena_settings_load(&s, engine_athena_lookup_env, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "HCPIPE_SOURCE_URI"));
    engine_athena_settings_free(&s);
    setenv("HCPIPE_SOURCE_URI", "s3://hc-data/facilities/", 1);
    assert_int_equal(
        engine_athena_settings_load(&s, engine_athena_lookup_env, NULL, err, sizeof err), 0);
    assert_string_equal(s.database, "hcpipe");
    assert_string_equal(s.workgroup, "primary");
    assert_int_equal(s.poll_rate, 5);
    assert_true(s.poll_initial_ms == 1000 && s.poll_max_ms == 10000);
    assert_null(s.output);
    engine_athena_settings_free(&s);
    setenv("HCPIPE_ATHENA_TABLE", "x; DROP", 1);
    assert_int_equal(
        engine_athena_settings_load(&s, engine_athena_lookup_env, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "HCPIPE_ATHENA_TABLE"));
    engine_athena_settings_free(&s);
    unsetenv("HCPIPE_ATHENA_TABLE");
    setenv("HCPIPE_ATHENA_POLL_RATE", "1000", 1);
    assert_int_equal(
        engine_athena_settings_load(&s, engine_athena_lookup_env, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "HCPIPE_ATHENA_POLL_RATE"));
    engine_athena_settings_free(&s);
    unsetenv("HCPIPE_ATHENA_POLL_RATE");
    setenv("HCPIPE_ATHENA_OUTPUT", "s3://results/a b/", 1);
    assert_int_equal(
        engine_athena_settings_load(&s, engine_athena_lookup_env, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "HCPIPE_ATHENA_OUTPUT"));
    engine_athena_settings_free(&s);
    clear_settings_env();
}

/* ---- the settings loader: through config_load() as `hcpipe serve` does it ---------------- */

/* serve.c's lookup: the text config_load() collected (the flag's, else the variable's). */
static const char *cfg_lookup(void *ctx, const char *flag, const char *env)
{
    (void)env;
    return config_athena_text(ctx, flag);
}

/* Loads the settings from argv (NULL-terminated, "serve" first) and the environment. */
static int load_args(struct athena_settings *s, const char *const *args, char *err, size_t n)
{
    struct config cfg;
    char *argv[16] = {0};
    int argc = 0, rc;

    while (args[argc]) {
        assert_true(argc < 15);
        argv[argc] = strdup(args[argc]);
        argc++;
    }
    rc = config_load(&cfg, argc, argv, err, n);
    if (rc == 0)
        rc = engine_athena_settings_load(s, cfg_lookup, &cfg, err, n);
    else
        memset(s, 0, sizeof *s);
    config_free(&cfg);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

/* clear_settings_env() and the one it leaves (tests set HCPIPE_ATHENA_RESULTS around
 * new_engine()). */
static void clear_all_settings_env(void)
{
    clear_settings_env();
    unsetenv("HCPIPE_ATHENA_RESULTS");
}

/* One setting: a good value, another good one, a bad one, and its default (NULL: none). */
struct setting_case {
    const char *flag, *env, *good, *other, *bad, *def;
};

static const struct setting_case settings_cases[] = {
    {"--source-uri", "HCPIPE_SOURCE_URI", "s3://hc-data/facilities/", "s3://other-b/x/y/",
     "s3://hc-data/x'/", NULL},
    {"--athena-database", "HCPIPE_ATHENA_DATABASE", "db_one", "db_two", "a\"b", "hcpipe"},
    {"--athena-table", "HCPIPE_ATHENA_TABLE", "t_one", "t_two", "x; DROP", "facilities"},
    {"--athena-workgroup", "HCPIPE_ATHENA_WORKGROUP", "wg.one", "wg-two", "a b", "primary"},
    {"--athena-output", "HCPIPE_ATHENA_OUTPUT", "s3://out-one/a/", "s3://out-two/", "s3://x", NULL},
    {"--athena-catalog", "HCPIPE_ATHENA_CATALOG", "cat_one", "cat-two", "c.at", "AwsDataCatalog"},
    {"--athena-poll-rate", "HCPIPE_ATHENA_POLL_RATE", "7", "100", "101", "5"},
    {"--athena-poll-initial-ms", "HCPIPE_ATHENA_POLL_INITIAL_MS", "20", "500", "9", "1000"},
    {"--athena-poll-max-ms", "HCPIPE_ATHENA_POLL_MAX_MS", "600000", "5000", "600001", "10000"},
    {"--athena-requeue-delay-ms", "HCPIPE_ATHENA_REQUEUE_DELAY_MS", "1", "3600000", "0", "60000"},
    {"--athena-results", "HCPIPE_ATHENA_RESULTS", "csv", "auto", "rows", "pages"},
    {"--athena-price-per-tb", "HCPIPE_ATHENA_PRICE_PER_TB", "2.5", "0", "-1", "5"},
};

#define N_CASES (sizeof settings_cases / sizeof settings_cases[0])

/* The field a setting fills, as text ("" for NULL), to compare with what was given. */
static const char *field_text(const struct athena_settings *s, const char *env, char *buf, size_t n)
{
    static const char *const results[] = {"pages", "csv", "auto"};

    if (strcmp(env, "HCPIPE_SOURCE_URI") == 0)
        return s->source_uri ? s->source_uri : "";
    if (strcmp(env, "HCPIPE_ATHENA_DATABASE") == 0)
        return s->database;
    if (strcmp(env, "HCPIPE_ATHENA_TABLE") == 0)
        return s->table;
    if (strcmp(env, "HCPIPE_ATHENA_WORKGROUP") == 0)
        return s->workgroup;
    if (strcmp(env, "HCPIPE_ATHENA_OUTPUT") == 0)
        return s->output ? s->output : "";
    if (strcmp(env, "HCPIPE_ATHENA_CATALOG") == 0)
        return s->catalog;
    if (strcmp(env, "HCPIPE_ATHENA_POLL_RATE") == 0)
        snprintf(buf, n, "%d", s->poll_rate);
    else if (strcmp(env, "HCPIPE_ATHENA_POLL_INITIAL_MS") == 0)
        snprintf(buf, n, "%lld", (long long)s->poll_initial_ms);
    else if (strcmp(env, "HCPIPE_ATHENA_POLL_MAX_MS") == 0)
        snprintf(buf, n, "%lld", (long long)s->poll_max_ms);
    else if (strcmp(env, "HCPIPE_ATHENA_REQUEUE_DELAY_MS") == 0)
        snprintf(buf, n, "%lld", (long long)s->requeue_delay_ms);
    else if (strcmp(env, "HCPIPE_ATHENA_RESULTS") == 0)
        snprintf(buf, n, "%s", s->results >= 0 && s->results < 3 ? results[s->results] : "?");
    else if (strcmp(env, "HCPIPE_ATHENA_PRICE_PER_TB") == 0)
        snprintf(buf, n, "%g", s->price_per_tb);
    else
        fail_msg("no field for %s", env);
    return buf;
}

/* The source is required; everything else has the documented default. */
static void engine_athena_settings_defaults(void **state)
{
    const char *const none[] = {"serve", NULL};
    const char *const src[] = {"serve", "--source-uri", "s3://hc-data/facilities/", NULL};
    struct athena_settings s;
    char err[512], buf[64];

    (void)state;
    clear_all_settings_env();
    assert_int_equal(load_args(&s, none, err, sizeof err), -1);
    assert_non_null(strstr(err, "--source-uri"));
    assert_non_null(strstr(err, "HCPIPE_SOURCE_URI"));
    assert_non_null(strstr(err, "missing"));
    engine_athena_settings_free(&s);
    assert_int_equal(load_args(&s, src, err, sizeof err), 0);
    for (size_t i = 1; i < N_CASES; i++)
        assert_string_equal(field_text(&s, settings_cases[i].env, buf, sizeof buf),
                            settings_cases[i].def ? settings_cases[i].def : "");
    assert_null(s.output);
    assert_int_equal(s.results, ATHENA_RESULTS_PAGES);
    engine_athena_settings_free(&s);
}

/* Each setting from its variable, from its flag (both spellings), and the flag over the
 * variable; an empty flag is given too (the default, whatever the variable says). */
static void engine_athena_settings_flag_or_env(void **state)
{
    struct athena_settings s;
    char err[512], buf[64], eq[256];

    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct setting_case *c = &settings_cases[i];
        const char *const plain[] = {"serve", "--source-uri", "s3://hc-data/facilities/", NULL};
        const char *const flag[] = {"serve", "--source-uri", "s3://hc-data/facilities/",
                                    c->flag, c->other,       NULL};
        const char *argv_eq[] = {"serve", "--source-uri", "s3://hc-data/facilities/", eq, NULL};

        clear_all_settings_env();
        setenv(c->env, c->good, 1);
        assert_int_equal(load_args(&s, plain, err, sizeof err), 0);
        if (i > 0) /* plain names --source-uri itself */
            assert_string_equal(field_text(&s, c->env, buf, sizeof buf), c->good);
        engine_athena_settings_free(&s);
        /* The flag beats the variable. */
        assert_int_equal(load_args(&s, flag, err, sizeof err), 0);
        assert_string_equal(field_text(&s, c->env, buf, sizeof buf), c->other);
        engine_athena_settings_free(&s);
        /* The flag alone, as --flag=value; and beating a bad variable. */
        unsetenv(c->env);
        snprintf(eq, sizeof eq, "%s=%s", c->flag, c->other);
        assert_int_equal(load_args(&s, argv_eq, err, sizeof err), 0);
        assert_string_equal(field_text(&s, c->env, buf, sizeof buf), c->other);
        engine_athena_settings_free(&s);
        setenv(c->env, c->bad, 1);
        assert_int_equal(load_args(&s, argv_eq, err, sizeof err), 0);
        assert_string_equal(field_text(&s, c->env, buf, sizeof buf), c->other);
        engine_athena_settings_free(&s);
        if (c->def) { /* an empty flag means the default */
            snprintf(eq, sizeof eq, "%s=", c->flag);
            assert_int_equal(load_args(&s, argv_eq, err, sizeof err), 0);
            assert_string_equal(field_text(&s, c->env, buf, sizeof buf), c->def);
            engine_athena_settings_free(&s);
        }
    }
    clear_all_settings_env();
}

/* A bad value is refused, from the variable or the flag, with a message naming both names and
 * quoting the value. */
static void engine_athena_settings_refuse_bad_values(void **state)
{
    struct athena_settings s;
    char err[512];

    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct setting_case *c = &settings_cases[i];
        const char *const plain[] = {"serve", "--source-uri", "s3://hc-data/facilities/", NULL};
        const char *const flag[] = {"serve", "--source-uri", "s3://hc-data/facilities/",
                                    c->flag, c->bad,         NULL};

        clear_all_settings_env();
        setenv(c->env, c->bad, 1);
        if (i > 0) {
            err[0] = '\0';
            assert_int_equal(load_args(&s, plain, err, sizeof err), -1);
            assert_non_null(strstr(err, c->flag));
            assert_non_null(strstr(err, c->env));
            assert_non_null(strstr(err, "expected"));
            engine_athena_settings_free(&s);
        }
        unsetenv(c->env);
        err[0] = '\0';
        assert_int_equal(load_args(&s, flag, err, sizeof err), -1);
        assert_non_null(strstr(err, c->flag));
        assert_non_null(strstr(err, c->env));
        assert_non_null(strstr(err, c->bad));
        engine_athena_settings_free(&s);
    }
    clear_all_settings_env();
}

/* The numeric ranges are the ones the messages state: each bound is accepted, one past it is
 * refused with that range in the message. */
static void engine_athena_settings_numeric_bounds(void **state)
{
    static const struct {
        const char *flag;
        long long lo, hi;
    } ranges[] = {{"--athena-poll-rate", 1, 100},
                  {"--athena-poll-initial-ms", 10, 60000},
                  {"--athena-poll-max-ms", 10, 600000},
                  {"--athena-requeue-delay-ms", 1, 3600000}};
    struct athena_settings s;
    char err[512], val[32], range[64];

    (void)state;
    clear_all_settings_env();
    setenv("HCPIPE_SOURCE_URI", "s3://hc-data/facilities/", 1);
    setenv("HCPIPE_ATHENA_POLL_INITIAL_MS", "10", 1); /* so neither bounds the other here */
    setenv("HCPIPE_ATHENA_POLL_MAX_MS", "600000", 1);
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        const char *const argv[] = {"serve", ranges[i].flag, val, NULL};
        long long cand[4] = {ranges[i].lo, ranges[i].hi, ranges[i].lo - 1, ranges[i].hi + 1};

        for (int k = 0; k < 4; k++) {
            snprintf(val, sizeof val, "%lld", cand[k]);
            err[0] = '\0';
            assert_int_equal(load_args(&s, argv, err, sizeof err), k < 2 ? 0 : -1);
            engine_athena_settings_free(&s);
        }
        /* hi + 1 was the last: the message states the range */
        snprintf(range, sizeof range, "%lld..%lld", ranges[i].lo, ranges[i].hi);
        assert_non_null(strstr(err, range));
    }
    /* The price: 0..1000, a finite number. */
    {
        const char *const bad[] = {"1000.5", "nan", "inf", "5 ", "", NULL};
        const char *const argv[] = {"serve", "--athena-price-per-tb", val, NULL};

        snprintf(val, sizeof val, "1000");
        assert_int_equal(load_args(&s, argv, err, sizeof err), 0);
        assert_true(s.price_per_tb == 1000.0);
        engine_athena_settings_free(&s);
        for (int k = 0; bad[k]; k++) {
            snprintf(val, sizeof val, "%s", bad[k]);
            assert_int_equal(load_args(&s, argv, err, sizeof err), *bad[k] ? -1 : 0);
            engine_athena_settings_free(&s);
        }
    }
    /* The poll interval's cap may not be below its start: the message names both. */
    {
        const char *const argv[] = {
            "serve", "--athena-poll-initial-ms", "2000", "--athena-poll-max-ms", "1000", NULL};

        assert_int_equal(load_args(&s, argv, err, sizeof err), -1);
        assert_non_null(strstr(err, "--athena-poll-max-ms (HCPIPE_ATHENA_POLL_MAX_MS) 1000"));
        assert_non_null(strstr(err, "--athena-poll-initial-ms (HCPIPE_ATHENA_POLL_INITIAL_MS)"));
        engine_athena_settings_free(&s);
    }
    clear_all_settings_env();
}

/* Every setting is in the table, once, and in --help with its variable. */
static void engine_athena_settings_listed(void **state)
{
    const char *u = engine_athena_usage(), *flag, *env;
    size_t n = 0;

    (void)state;
    while (engine_athena_option(n, &flag, &env) == 0) {
        int known = 0;

        for (size_t i = 0; i < N_CASES; i++)
            known += strcmp(settings_cases[i].flag, flag) == 0 &&
                     strcmp(settings_cases[i].env, env) == 0;
        assert_int_equal(known, 1);
        assert_non_null(strstr(u, flag));
        assert_non_null(strstr(u, env));
        n++;
    }
    assert_int_equal(n, N_CASES);
}

static void engine_athena_reattaches_without_starting(void **state)
{
    struct fake_resp r[] = {
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"q-1\",\"Status\":{\"State\":\"RUNNING\"}}],"
         "\"UnprocessedQueryExecutionIds\":[]}"},
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"q-1\",\"Status\":{\"State\":\"SUCCEEDED\"},"
         "\"Statistics\":{\"EngineExecutionTimeInMillis\":70,\"QueryQueueTimeInMillis\":5,"
         "\"DataScannedInBytes\":1048576}}],\"UnprocessedQueryExecutionIds\":[]}"},
    };
    struct fake_server *fs = fake_start(r, 2);
    struct engine_job job = job_of("accredited_by_state");
    struct engine *e;
    json_t *stats = NULL, *problem = NULL;
    char *h = NULL, target[128];

    (void)state;
    env_for(fs);
    e = new_engine();
    assert_int_equal(e->ops->start(e, &job, "q-1", &h, &problem), HC_OK);
    assert_string_equal(h, "q-1");
    assert_int_equal(poll_until(e, &job, h, &stats, &problem), HC_OK);
    assert_null(problem);
    assert_int_equal(json_integer_value(json_object_get(stats, "engine_execution_ms")), 70);
    assert_int_equal(json_integer_value(json_object_get(stats, "queue_ms")), 5);
    /* 1 MiB scanned is billed as the 10 MB minimum: 10 MiB / 1 TiB * 5 USD. */
    assert_true(fabs(json_real_value(json_object_get(stats, "estimated_cost_usd")) -
                     10.0 / (1024.0 * 1024.0) * 5.0) < 1e-12);
    assert_int_equal(fake_n_reqs(fs), 2); /* two status checks, no start, no DDL */
    for (int i = 0; i < 2; i++)
        assert_string_equal(fake_req_header(fs, i, "X-Amz-Target", target, sizeof target),
                            "AmazonAthena.BatchGetQueryExecution");
    assert_int_equal(engine_athena_status_calls(e), 2);
    assert_int_equal(engine_athena_ddl_runs(e), 0);
    json_decref(stats);
    free(h);
    e->ops->destroy(e);
    fake_stop(fs);
}

static void engine_athena_failure_classes(void **state)
{
    static const struct {
        const char *status; /* the batch answer's Status member */
        int want;
        const char *detail;
    } fail_cases[] = {
        {"{\"State\":\"FAILED\",\"AthenaError\":{\"ErrorCategory\":1,\"ErrorType\":401,"
         "\"Retryable\":true,\"ErrorMessage\":\"exhausted resources\"}}",
         HC_EENGINETRANSIENT, "exhausted resources"},
        {"{\"State\":\"FAILED\",\"AthenaError\":{\"ErrorCategory\":2,\"ErrorType\":1006,"
         "\"Retryable\":false,\"ErrorMessage\":\"SYNTAX_ERROR: line 1:8\"}}",
         HC_EENGINE, "SYNTAX_ERROR: line 1:8"},
        {"{\"State\":\"FAILED\",\"StateChangeReason\":\"TABLE_NOT_FOUND: Table "
         "awsdatacatalog.hcpipe.facilities does not exist\"}",
         HC_EENGINETRANSIENT, "TABLE_NOT_FOUND"},
        {"{\"State\":\"CANCELLED\"}", HC_EENGINE, "was cancelled"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof fail_cases / sizeof fail_cases[0]; i++) {
        char body[1024];
        struct fake_resp r[1];
        struct fake_server *fs;
        struct engine_job job = job_of("facility_metrics");
        struct engine *e;
        json_t *stats = NULL, *problem = NULL;
        char *h = NULL;

        snprintf(body, sizeof body,
                 "{\"QueryExecutions\":[{\"QueryExecutionId\":\"q-%zu\",\"Status\":%s}],"
                 "\"UnprocessedQueryExecutionIds\":[]}",
                 i, fail_cases[i].status);
        r[0] = (struct fake_resp){200, CT, body};
        fs = fake_start(r, 1);
        env_for(fs);
        e = new_engine();
        snprintf(body + 900, 100, "q-%zu", i);
        assert_int_equal(e->ops->start(e, &job, body + 900, &h, &problem), HC_OK);
        assert_int_equal(poll_until(e, &job, h, &stats, &problem), fail_cases[i].want);
        assert_non_null(problem);
        assert_non_null(
            strstr(json_string_value(json_object_get(problem, "detail")), fail_cases[i].detail));
        json_decref(problem);
        json_decref(stats);
        free(h);
        e->ops->destroy(e);
        fake_stop(fs);
    }
}

static void engine_athena_ddl_once_then_start(void **state)
{
    struct fake_resp r[] = {
        {200, CT, "{\"QueryExecutionId\":\"ddl-1\"}"},
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"ddl-1\",\"Status\":{\"State\":"
         "\"SUCCEEDED\"}}],\"UnprocessedQueryExecutionIds\":[]}"},
        {200, CT, "{\"QueryExecutionId\":\"ddl-2\"}"},
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"ddl-2\",\"Status\":{\"State\":"
         "\"SUCCEEDED\"}}],\"UnprocessedQueryExecutionIds\":[]}"},
        {200, CT, "{\"QueryExecutionId\":\"q-main\"}"},
        {200, CT, "{\"QueryExecutionId\":\"q-main\"}"},
        {200, CT, "{\"QueryExecutionId\":\"q-third\"}"},
        {200, CT, "{\"QueryExecutionId\":\"q-replay\"}"},
    };
    struct fake_server *fs = fake_start(r, 8);
    struct engine_job job = job_of("accredited_by_state");
    struct engine *e;
    json_t *problem = NULL, *stats = NULL;
    char *h = NULL, target[128];
    int done = 0;

    (void)state;
    env_for(fs);
    /* Status checks of started queries come after a minute: none in this test. */
    e = new_engine_polling("60000");
    assert_int_equal(count_markers(), 0);
    assert_int_equal(e->ops->start(e, &job, NULL, &h, &problem), HC_OK);
    assert_string_equal(h, "q-main");
    assert_int_equal(count_markers(), 1);
    assert_int_equal(engine_athena_ddl_runs(e), 2);
    assert_non_null(strstr(fs->reqs[0].body, "CREATE DATABASE IF NOT EXISTS `hcpipe`"));
    assert_non_null(strstr(fs->reqs[2].body, "CREATE EXTERNAL TABLE IF NOT EXISTS"));
    assert_non_null(strstr(fs->reqs[4].body, "\"ClientRequestToken\": \"hcpipe-11111111-2222-"
                                             "3333-4444-555555555555-1\""));
    assert_string_equal(fake_req_header(fs, 4, "X-Amz-Target", target, sizeof target),
                        "AmazonAthena.StartQueryExecution");
    free(h);
    e->ops->destroy(e); /* as if the process died before the handle was stored */

    /* A new engine on the same data dir remembers the DDL, and re-sends the token of the start
     * whose handle was never stored (no poll happened): Athena answers with the same query. */
    e = new_engine_polling("60000");
    job.attempt = 2;
    assert_int_equal(e->ops->start(e, &job, NULL, &h, &problem), HC_OK);
    assert_string_equal(h, "q-main");
    assert_int_equal(engine_athena_ddl_runs(e), 0);
    assert_int_equal(fake_n_reqs(fs), 6);
    assert_non_null(strstr(fs->reqs[5].body, "555555555555-1\""));
    /* The first poll closes the ledger (the handle is stored by then). */
    assert_int_equal(e->ops->poll(e, &job, h, &done, &stats, &problem), HC_OK);
    assert_int_equal(done, 0);
    free(h);
    job.attempt = 3; /* a retry after a failure: a new token */
    assert_int_equal(e->ops->start(e, &job, NULL, &h, &problem), HC_OK);
    assert_string_equal(h, "q-third");
    assert_non_null(strstr(fs->reqs[6].body, "555555555555-3\""));
    assert_int_equal(e->ops->poll(e, &job, h, &done, &stats, &problem), HC_OK);
    free(h);
    job.attempt = 1; /* a replay (attempts counted from 1 again): a new generation */
    assert_int_equal(e->ops->start(e, &job, NULL, &h, &problem), HC_OK);
    assert_string_equal(h, "q-replay");
    assert_non_null(strstr(fs->reqs[7].body, "555555555555-g1-1\""));
    assert_int_equal(fake_n_reqs(fs), 8);
    free(h);
    e->ops->destroy(e);
    fake_stop(fs);
}

static void engine_athena_capacity_is_busy(void **state)
{
    struct fake_resp r[] = {
        {200, CT, "{\"QueryExecutionId\":\"d1\"}"},
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"d1\",\"Status\":{\"State\":"
         "\"SUCCEEDED\"}}],\"UnprocessedQueryExecutionIds\":[]}"},
        {200, CT, "{\"QueryExecutionId\":\"d2\"}"},
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"d2\",\"Status\":{\"State\":"
         "\"SUCCEEDED\"}}],\"UnprocessedQueryExecutionIds\":[]}"},
        {400, CT,
         "{\"__type\":\"TooManyRequestsException\",\"message\":\"concurrent limit\","
         "\"Reason\":\"CONCURRENT_QUERY_LIMIT_EXCEEDED\"}"},
    };
    struct fake_server *fs = fake_start(r, 5);
    struct engine_job job = job_of("accredited_by_state");
    struct engine *e;
    json_t *problem = NULL;
    char *h = NULL;

    (void)state;
    env_for(fs);
    e = new_engine();
    assert_int_equal(e->ops->start(e, &job, NULL, &h, &problem), HC_EENGINEBUSY);
    assert_null(h);
    assert_non_null(problem);
    assert_non_null(
        strstr(json_string_value(json_object_get(problem, "detail")), "TooManyRequestsException"));
    assert_true(hc_err_transient(HC_EENGINEBUSY));
    assert_int_equal(engine_athena_requeue_delay_ms(e), 60000);
    json_decref(problem);
    e->ops->destroy(e);
    fake_stop(fs);
}

static void engine_athena_fetch_types_rows(void **state)
{
    struct fake_resp r[] = {
        {200, CT,
         "{\"ResultSet\":{\"Rows\":[{\"Data\":[{\"VarCharValue\":\"state\"},"
         "{\"VarCharValue\":\"facility_count\"},{\"VarCharValue\":\"total_employees\"},"
         "{\"VarCharValue\":\"valid_accreditations\"}]},"
         "{\"Data\":[{\"VarCharValue\":\"TX\"},{\"VarCharValue\":\"2\"},{\"VarCharValue\":\"30"
         "\"},{\"VarCharValue\":\"3\"}]},{\"Data\":[{},{\"VarCharValue\":\"1\"},{\"VarCharValue"
         "\":\"0\"},{\"VarCharValue\":\"1\"}]}],\"ResultSetMetadata\":{\"ColumnInfo\":["
         "{\"Name\":\"state\",\"Type\":\"varchar\"},{\"Name\":\"facility_count\",\"Type\":"
         "\"bigint\"},{\"Name\":\"total_employees\",\"Type\":\"bigint\"},{\"Name\":"
         "\"valid_accreditations\",\"Type\":\"integer\"}]}},\"NextToken\":\"t2\"}"},
        {200, CT,
         "{\"ResultSet\":{\"Rows\":[{\"Data\":[{\"VarCharValue\":\"CA\"},{\"VarCharValue\":\"x\"},"
         "{\"VarCharValue\":\"1\"},{\"VarCharValue\":\"1\"}]}],\"ResultSetMetadata\":{"
         "\"ColumnInfo\":[{\"Name\":\"state\",\"Type\":\"varchar\"},{\"Name\":\"facility_count\","
         "\"Type\":\"bigint\"},{\"Name\":\"total_employees\",\"Type\":\"bigint\"},{\"Name\":"
         "\"valid_accreditations\",\"Type\":\"bigint\"}]}}}"},
    };
    struct fake_server *fs = fake_start(r, 2);
    struct engine_job job = job_of("accredited_by_state");
    struct engine *e;
    struct result_writer *w = NULL;
    struct result_meta meta = {"11111111-2222-3333-4444-555555555555", "accredited_by_state",
                               "2026-05-01", "athena"};
    struct result_sink sink;
    json_t *problem = NULL;
    char *next = NULL, dir[300];

    (void)state;
    env_for(fs);
    e = new_engine();
    snprintf(dir, sizeof dir, "%s/res", data_dir);
    assert_int_equal(result_writer_open(dir, &meta, &w), HC_OK);
    sink = result_writer_sink(w);
    assert_int_equal(e->ops->fetch_page(e, &job, "q-r", NULL, &sink, &next, &problem), HC_OK);
    assert_string_equal(next, "t2");
    assert_int_equal(result_writer_rows(w), 2);
    assert_non_null(strstr(fs->reqs[0].body, "\"MaxResults\""));
    assert_non_null(strstr(strstr(fs->reqs[0].body, "\"MaxResults\""), "1000"));
    /* The second page has "x" in a bigint column: an engine error naming the column. */
    {
        char *after = NULL;

        assert_int_equal(e->ops->fetch_page(e, &job, "q-r", next, &sink, &after, &problem),
                         HC_EENGINE);
        assert_null(after);
    }
    assert_non_null(
        strstr(json_string_value(json_object_get(problem, "detail")), "facility_count"));
    json_decref(problem);
    result_writer_abort(w);
    free(next);
    e->ops->destroy(e);
    fake_stop(fs);
}

static void engine_athena_reads_the_result_csv(void **state)
{
    struct fake_resp r[] = {
        {200, CT,
         "{\"QueryExecutions\":[{\"QueryExecutionId\":\"q-c\",\"Status\":{\"State\":"
         "\"SUCCEEDED\"},\"ResultConfiguration\":{\"OutputLocation\":\"s3://res-bucket/athena/"
         "q-c.csv\"}}],\"UnprocessedQueryExecutionIds\":[]}"},
        {200, CT,
         "{\"ResultSet\":{\"Rows\":[{\"Data\":[{\"VarCharValue\":\"state\"},"
         "{\"VarCharValue\":\"facility_count\"},{\"VarCharValue\":\"total_employees\"},"
         "{\"VarCharValue\":\"valid_accreditations\"}]}],\"ResultSetMetadata\":{\"ColumnInfo"
         "\":[{\"Name\":\"state\",\"Type\":\"varchar\"},{\"Name\":\"facility_count\","
         "\"Type\":\"bigint\"},{\"Name\":\"total_employees\",\"Type\":\"bigint\"},{\"Name"
         "\":\"valid_accreditations\",\"Type\":\"bigint\"}]}},\"NextToken\":\"n\"}"},
        {200, "Content-Type: text/csv\r\nETag: \"e1\"\r\n",
         "\"state\",\"facility_count\",\"total_employees\",\"valid_accreditations\"\n"
         "\"T\"\"X, \nnorth\",\"2\",\"30\",\"3\"\n"
         ",\"1\",\"0\",\"1\"\n"
         "\"\",\"4\",\"5\",\"6\"\n"},
    };
    struct fake_server *fs = fake_start(r, 3);
    struct engine_job job = job_of("accredited_by_state");
    struct engine *e;
    struct result_writer *w = NULL;
    struct result_meta meta = {"11111111-2222-3333-4444-555555555555", "accredited_by_state",
                               "2026-05-01", "athena"};
    struct result_sink sink;
    json_t *problem = NULL, *stats = NULL, *doc;
    char *h = NULL, *next = NULL, dir[300], path[400], endpoint[64], target[128];

    (void)state;
    env_for(fs);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", fs->port);
    setenv("AWS_ENDPOINT_URL_S3", endpoint, 1);
    setenv("HCPIPE_ATHENA_RESULTS", "csv", 1);
    e = new_engine();
    unsetenv("HCPIPE_ATHENA_RESULTS");
    assert_int_equal(e->ops->start(e, &job, "q-c", &h, &problem), HC_OK);
    assert_int_equal(poll_until(e, &job, h, &stats, &problem), HC_OK);
    snprintf(dir, sizeof dir, "%s/res-csv", data_dir);
    assert_int_equal(result_writer_open(dir, &meta, &w), HC_OK);
    sink = result_writer_sink(w);
    assert_int_equal(e->ops->fetch_page(e, &job, h, NULL, &sink, &next, &problem), HC_OK);
    assert_null(next); /* the whole result in one call */
    assert_null(problem);
    assert_int_equal(result_writer_rows(w), 3);
    assert_int_equal(result_writer_commit(w, stats, NULL, NULL), HC_OK);
    assert_int_equal(fake_n_reqs(fs), 3);
    assert_string_equal(fake_req_header(fs, 1, "X-Amz-Target", target, sizeof target),
                        "AmazonAthena.GetQueryResults");
    assert_non_null(strstr(fs->reqs[1].body, "\"MaxResults\""));
    assert_int_equal(strncmp(fs->reqs[2].head, "GET /res-bucket/athena/q-c.csv ", 31), 0);
    snprintf(path, sizeof path, "%s/result.json", dir);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    {
        json_t *rows = json_object_get(doc, "rows");

        assert_int_equal(json_array_size(rows), 3);
        assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "state")),
                            "T\"X, \nnorth");
        assert_int_equal(
            json_integer_value(json_object_get(json_array_get(rows, 0), "valid_accreditations")),
            3);
        assert_true(json_is_null(json_object_get(json_array_get(rows, 1), "state")));
        assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 2), "state")),
                            "");
    }
    json_decref(doc);
    json_decref(stats);
    unsetenv("AWS_ENDPOINT_URL_S3");
    free(h);
    e->ops->destroy(e);
    fake_stop(fs);
}

static void engine_athena_rejects_mismatched_columns(void **state)
{
    struct fake_resp r[] = {
        {200, CT,
         "{\"ResultSet\":{\"Rows\":[],\"ResultSetMetadata\":{\"ColumnInfo\":["
         "{\"Name\":\"state\",\"Type\":\"varchar\"},{\"Name\":\"facility_count\",\"Type\":"
         "\"varchar\"},{\"Name\":\"total_employees\",\"Type\":\"bigint\"},{\"Name\":"
         "\"valid_accreditations\",\"Type\":\"bigint\"}]}}}"},
    };
    struct fake_server *fs = fake_start(r, 1);
    struct engine_job job = job_of("accredited_by_state");
    struct engine *e;
    struct result_writer *w = NULL;
    struct result_meta meta = {"x", "accredited_by_state", "2026-05-01", "athena"};
    struct result_sink sink;
    json_t *problem = NULL;
    char *next = NULL, dir[300];

    (void)state;
    env_for(fs);
    e = new_engine();
    snprintf(dir, sizeof dir, "%s/res2", data_dir);
    assert_int_equal(result_writer_open(dir, &meta, &w), HC_OK);
    sink = result_writer_sink(w);
    assert_int_equal(e->ops->fetch_page(e, &job, "q-r", NULL, &sink, &next, &problem), HC_EENGINE);
    assert_non_null(
        strstr(json_string_value(json_object_get(problem, "detail")), "facility_count varchar"));
    json_decref(problem);
    result_writer_abort(w);
    e->ops->destroy(e);
    fake_stop(fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_athena_settings_are_checked),
        cmocka_unit_test(engine_athena_settings_defaults),
        cmocka_unit_test(engine_athena_settings_flag_or_env),
        cmocka_unit_test(engine_athena_settings_refuse_bad_values),
        cmocka_unit_test(engine_athena_settings_numeric_bounds),
        cmocka_unit_test(engine_athena_settings_listed),
        cmocka_unit_test_setup_teardown(engine_athena_reattaches_without_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_athena_failure_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_athena_ddl_once_then_start, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_athena_capacity_is_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_athena_fetch_types_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_athena_reads_the_result_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_athena_rejects_mismatched_columns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
