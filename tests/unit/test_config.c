/* Unit tests of server/config.c: defaults, environment, flags beating the environment, and
 * error messages that name the setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"
#include "server/engine.h"

static const char *const vars[] = {"HCPIPE_LISTEN",
                                   "HCPIPE_DATA_DIR",
                                   "HCPIPE_ENGINE",
                                   "HCPIPE_WORKERS",
                                   "HCPIPE_JOB_TIMEOUT",
                                   "HCPIPE_MAX_ATTEMPTS",
                                   "HCPIPE_LOG_LEVEL",
                                   "HCPIPE_MAX_BODY",
                                   "HCPIPE_SEED",
                                   "HCPIPE_INSECURE_DEV_EVENTS",
                                   "HCPIPE_WEBHOOK_API_KEY",
                                   "HCPIPE_WEBHOOK_HEADER",
                                   "HCPIPE_WEBHOOK_BASIC",
                                   "HCPIPE_EVENT_BUCKETS",
                                   "HCPIPE_EVENT_PREFIX",
                                   "HCPIPE_EVENT_SUFFIXES",
                                   "HCPIPE_EVENT_QUERIES",
                                   "HCPIPE_EVENT_SCOPE",
                                   "HCPIPE_TLS_CERT",
                                   "HCPIPE_TLS_KEY",
                                   "HCPIPE_API_TOKENS",
                                   "HCPIPE_API_TOKENS_FILE",
                                   "HCPIPE_METRICS_AUTH",
                                   "HCPIPE_MAX_CONNECTIONS",
                                   "HCPIPE_MAX_CONNECTIONS_PER_IP",
                                   "HCPIPE_CONNECTION_TIMEOUT",
                                   "HCPIPE_REQUEST_TIMEOUT",
                                   "HCPIPE_HTTP_THREADS",
                                   "HCPIPE_SOURCE",
                                   "HCPIPE_OUTPUT_URI",
                                   NULL};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; vars[i]; i++)
        unsetenv(vars[i]);
    return 0;
}

/* Loads with a NULL-terminated list of arguments (copied, since config_load() takes char **). */
static int load(struct config *cfg, char *err, size_t n, int argc, const char *const *args)
{
    char *argv[8] = {0};
    int rc;

    assert_true(argc < 8);
    for (int i = 0; i < argc; i++)
        argv[i] = strdup(args[i]);
    rc = config_load(cfg, argc, argv, err, n);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

static void config_defaults(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", NULL};

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof err, 1, argv), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.data_dir, "./var");
    assert_string_equal(cfg.engine, "local");
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.job_timeout_s, 900);
    assert_int_equal(cfg.max_attempts, 5);
    assert_int_equal(cfg.max_body, 1 << 20);
    assert_int_equal(cfg.n_seeds, 0);
    config_free(&cfg);
}

static void config_flag_beats_env(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", "--workers", "7", "--listen=[::1]:9001", NULL};

    (void)state;
    setenv("HCPIPE_WORKERS", "3", 1);
    setenv("HCPIPE_JOB_TIMEOUT", "60", 1);
    setenv("HCPIPE_LISTEN", "127.0.0.1:1234", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 4, argv), 0);
    assert_int_equal(cfg.workers, 7);
    assert_int_equal(cfg.job_timeout_s, 60);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_ipv6, 1);
    assert_int_equal(cfg.listen_port, 9001);
    config_free(&cfg);
}

static void config_bad_env_names_variable(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", NULL};

    (void)state;
    setenv("HCPIPE_WORKERS", "abc", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, argv), -1);
    assert_string_equal(err, "invalid HCPIPE_WORKERS \"abc\": expected an integer 1..64");
    config_free(&cfg);
}

static void config_flag_hides_bad_env(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", "--workers", "4", NULL};

    (void)state;
    setenv("HCPIPE_WORKERS", "abc", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 3, argv), 0);
    assert_int_equal(cfg.workers, 4);
    config_free(&cfg);
}

static void config_bad_flag_names_flag(void **state)
{
    struct config cfg;
    char err[256];
    const char *const bad_listen[] = {"serve", "--listen", "nohost", NULL};
    const char *const bad_timeout[] = {"serve", "--job-timeout=0", NULL};
    const char *const unknown[] = {"serve", "--wat", NULL};
    const char *const missing[] = {"serve", "--data-dir", NULL};

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof err, 3, bad_listen), -1);
    assert_non_null(strstr(err, "invalid --listen \"nohost\""));
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 2, bad_timeout), -1);
    assert_non_null(strstr(err, "invalid --job-timeout \"0\""));
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 2, unknown), -1);
    assert_non_null(strstr(err, "--wat"));
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 2, missing), -1);
    assert_non_null(strstr(err, "--data-dir"));
    config_free(&cfg);
}

static void config_seeds_env_and_flags(void **state)
{
    struct config cfg;
    char err[256];
    const char *const none[] = {"serve", NULL};
    const char *const flags[] = {"serve", "--seed", "s3://abc/x.json", "--seed=s3://abc/y.json",
                                 NULL};

    (void)state;
    setenv("HCPIPE_SEED", "s3://sample/a.ndjson,s3://sample/b.ndjson", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), 0);
    assert_int_equal(cfg.n_seeds, 2);
    assert_string_equal(cfg.seeds[1], "s3://sample/b.ndjson");
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 4, flags), 0);
    assert_int_equal(cfg.n_seeds, 2); /* the flags replace the variable */
    assert_string_equal(cfg.seeds[0], "s3://abc/x.json");
    config_free(&cfg);
    setenv("HCPIPE_SEED", "http://x/y", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), -1);
    assert_non_null(strstr(err, "HCPIPE_SEED"));
    config_free(&cfg);
}

static void config_help(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", "--help", NULL};
    const char *u = config_usage();

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof err, 2, argv), 1);
    config_free(&cfg);
    for (size_t i = 0; vars[i]; i++)
        assert_non_null(strstr(u, vars[i]));
}

/* The Athena engine's flags are accepted and their text collected (flag over variable), unchecked:
 * the engine checks them (tests/unit/test_engine_athena.c). */
static void config_athena_flags_collected(void **state)
{
    struct config cfg;
    char err[256];
    const char *const none[] = {"serve", NULL};
    const char *const flags[] = {"serve", "--athena-table", "from_flag", "--athena-poll-rate=x",
                                 NULL};
    const char *const dangling[] = {"serve", "--athena-table", NULL};
    const char *const unknown[] = {"serve", "--athena-tables", "x", NULL};

    (void)state;
    unsetenv("HCPIPE_ATHENA_TABLE");
    unsetenv("HCPIPE_ATHENA_POLL_RATE");
    unsetenv("HCPIPE_SOURCE_URI");
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), 0);
    assert_null(config_athena_text(&cfg, "--athena-table"));
    assert_null(config_athena_text(&cfg, "--source-uri"));
    assert_null(config_athena_text(&cfg, "--not-an-athena-flag"));
    config_free(&cfg);
    setenv("HCPIPE_ATHENA_TABLE", "from_env", 1);
    setenv("HCPIPE_SOURCE_URI", "s3://b-x/p/", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), 0);
    assert_string_equal(config_athena_text(&cfg, "--athena-table"), "from_env");
    assert_string_equal(config_athena_text(&cfg, "--source-uri"), "s3://b-x/p/");
    config_free(&cfg);
    /* Flags beat the variables, both spellings; a bad value is not config's business. */
    setenv("HCPIPE_ATHENA_POLL_RATE", "7", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 4, flags), 0);
    assert_string_equal(config_athena_text(&cfg, "--athena-table"), "from_flag");
    assert_string_equal(config_athena_text(&cfg, "--athena-poll-rate"), "x");
    assert_string_equal(config_athena_text(&cfg, "--source-uri"), "s3://b-x/p/");
    assert_string_equal(cfg.engine, "local");
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 2, dangling), -1);
    assert_non_null(strstr(err, "--athena-table needs a value"));
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, unknown), -1);
    assert_non_null(strstr(err, "unknown option \"--athena-tables\""));
    config_free(&cfg);
    unsetenv("HCPIPE_ATHENA_TABLE");
    unsetenv("HCPIPE_ATHENA_POLL_RATE");
    unsetenv("HCPIPE_SOURCE_URI");
}

/* --source and --output-uri: defaults, both names, bad values named as written. */
static void config_objects_and_results(void **state)
{
    struct config cfg;
    char err[512];
    const char *const none[] = {"serve", NULL};
    const char *const flags[] = {"serve", "--source", "s3", "--output-uri=s3://out-b/r/", NULL};
    const char *const empty[] = {"serve", "--source=", "--output-uri=", NULL};
    const char *const bad_src[] = {"serve", "--source", "ftp", NULL};
    const char *const bad_out[] = {"serve", "--output-uri", "s3://out-b/a'b/", NULL};

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), 0);
    assert_int_equal(cfg.source_s3, 0);
    assert_null(cfg.output_uri);
    config_free(&cfg);
    setenv("HCPIPE_SOURCE", "s3", 1);
    setenv("HCPIPE_OUTPUT_URI", "s3://env-b/x/", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), 0);
    assert_int_equal(cfg.source_s3, 1);
    assert_string_equal(cfg.output_uri, "s3://env-b/x/");
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 4, flags), 0);
    assert_int_equal(cfg.source_s3, 1);
    assert_string_equal(cfg.output_uri, "s3://out-b/r/");
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, empty), 0); /* empty flags: the defaults */
    assert_int_equal(cfg.source_s3, 0);
    assert_null(cfg.output_uri);
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, bad_src), -1);
    assert_string_equal(err, "invalid --source \"ftp\": expected folder or s3");
    config_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, bad_out), -1);
    assert_non_null(strstr(err, "invalid --output-uri \"s3://out-b/a'b/\": expected s3://"));
    config_free(&cfg);
    setenv("HCPIPE_OUTPUT_URI", "s3://x", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), -1);
    assert_non_null(strstr(err, "invalid HCPIPE_OUTPUT_URI \"s3://x\""));
    config_free(&cfg);
}

static void config_check_source_rules(void **state)
{
    const char *why;

    (void)state;
    assert_int_equal(config_check_source("s3://sample/facilities.ndjson", &why), 0);
    assert_int_equal(config_check_source("s3://a.b-c/dir/x", &why), 0);
    assert_int_equal(config_check_source("s3://ab/x", &why), -1);
    assert_int_equal(config_check_source("s3://Upper/x", &why), -1);
    assert_int_equal(config_check_source("s3://bucket/", &why), -1);
    assert_int_equal(config_check_source("s3://bucket", &why), -1);
    assert_int_equal(config_check_source("s3://bucket/../etc/passwd", &why), -1);
    assert_int_equal(config_check_source("s3://bucket/a/./b", &why), -1);
    assert_int_equal(config_check_source("file:///etc/passwd", &why), -1);
    assert_int_equal(config_check_source("s3://-bucket/x", &why), -1);
}

static void config_edge_settings(void **state)
{
    struct config cfg;
    char err[512];
    const char *const none[] = {"serve", NULL};
    const char *const flags[] = {
        "serve", "--max-connections", "9", "--http-threads=0", "--metrics-auth", NULL};
    const char *const bad_tokens[] = {"serve", "--api-tokens", "ro:read:sup3r-s3cret", NULL};

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), 0);
    assert_int_equal(cfg.max_connections, 256);
    assert_int_equal(cfg.max_connections_per_ip, 32);
    assert_int_equal(cfg.connection_timeout_s, 30);
    assert_int_equal(cfg.request_timeout_s, 30);
    assert_int_equal(cfg.http_threads, 16);
    assert_int_equal(cfg.metrics_auth, 0);
    assert_null(cfg.tls_cert);
    assert_null(cfg.api_tokens);
    config_free(&cfg);

    setenv("HCPIPE_REQUEST_TIMEOUT", "5", 1);
    setenv("HCPIPE_API_TOKENS", "ci:write:0123456789abcdef0123", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 5, flags), 0);
    assert_int_equal(cfg.max_connections, 9);
    assert_int_equal(cfg.http_threads, 0);
    assert_int_equal(cfg.metrics_auth, 1);
    assert_int_equal(cfg.request_timeout_s, 5);
    assert_string_equal(cfg.api_tokens, "ci:write:0123456789abcdef0123");
    config_free(&cfg);

    /* A bad token list names the setting and never echoes the value. */
    assert_int_equal(load(&cfg, err, sizeof err, 3, bad_tokens), -1);
    assert_non_null(strstr(err, "--api-tokens"));
    assert_null(strstr(err, "sup3r-s3cret"));
    config_free(&cfg);

    /* The certificate and key go together. */
    setenv("HCPIPE_TLS_CERT", "", 1);
    setenv("HCPIPE_TLS_KEY", "/nonexistent/key.pem", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), -1);
    assert_non_null(strstr(err, "HCPIPE_TLS_KEY"));
    assert_non_null(strstr(err, "/nonexistent/key.pem"));
    config_free(&cfg);
    setenv("HCPIPE_MAX_CONNECTIONS", "0", 1);
    unsetenv("HCPIPE_TLS_KEY");
    assert_int_equal(load(&cfg, err, sizeof err, 1, none), -1);
    assert_non_null(strstr(err, "HCPIPE_MAX_CONNECTIONS"));
    config_free(&cfg);
}

static void config_event_defaults_and_lists(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", "--event-queries",
                                "facility_metrics,,expiring_accreditations ",
                                "--event-scope=object", NULL};

    (void)state;
    setenv("HCPIPE_EVENT_BUCKETS", " a-bucket , other.bucket", 1);
    setenv("HCPIPE_EVENT_SUFFIXES", "", 1);
    setenv("HCPIPE_EVENT_QUERIES", "bogus", 1); /* hidden by the flag */
    assert_int_equal(load(&cfg, err, sizeof err, 4, argv), 0);
    assert_int_equal(cfg.n_event_buckets, 2);
    assert_string_equal(cfg.event_buckets[0], "a-bucket");
    assert_string_equal(cfg.event_buckets[1], "other.bucket");
    assert_int_equal(cfg.n_event_suffixes, 0); /* empty: any suffix */
    assert_int_equal(cfg.n_event_queries, 2);
    assert_string_equal(cfg.event_queries[0], "facility_metrics");
    assert_string_equal(cfg.event_queries[1], "expiring_accreditations");
    assert_int_equal(cfg.event_scope, SCOPE_OBJECT);
    assert_string_equal(cfg.webhook_header, "x-api-key");
    assert_null(cfg.webhook_api_key);
    assert_null(cfg.webhook_basic);
    assert_string_equal(cfg.event_prefix, "");
    config_free(&cfg);

    unsetenv("HCPIPE_EVENT_BUCKETS");
    unsetenv("HCPIPE_EVENT_SUFFIXES");
    unsetenv("HCPIPE_EVENT_QUERIES");
    assert_int_equal(load(&cfg, err, sizeof err, 1, argv), 0);
    assert_int_equal(cfg.n_event_buckets, 0);
    assert_int_equal(cfg.n_event_suffixes, 3);
    assert_string_equal(cfg.event_suffixes[2], ".ndjson");
    assert_int_equal(cfg.n_event_queries, 1);
    assert_string_equal(cfg.event_queries[0], "accredited_by_state");
    assert_int_equal(cfg.event_scope, SCOPE_DATASET);
    config_free(&cfg);
}

static void config_webhook_secrets_never_echoed(void **state)
{
    struct config cfg;
    char err[256];
    const char *const argv[] = {"serve", NULL};
    const char *const bad_basic[] = {"serve", "--webhook-basic", "no-colon-secret", NULL};

    (void)state;
    setenv("HCPIPE_WEBHOOK_API_KEY", "top\x01secret", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, argv), -1);
    assert_non_null(strstr(err, "HCPIPE_WEBHOOK_API_KEY"));
    assert_null(strstr(err, "secret"));
    config_free(&cfg);
    unsetenv("HCPIPE_WEBHOOK_API_KEY");
    assert_int_equal(load(&cfg, err, sizeof err, 3, bad_basic), -1);
    assert_non_null(strstr(err, "--webhook-basic"));
    assert_null(strstr(err, "no-colon-secret"));
    config_free(&cfg);

    setenv("HCPIPE_WEBHOOK_API_KEY", "k3y", 1);
    setenv("HCPIPE_WEBHOOK_BASIC", "user:pa:ss", 1);
    setenv("HCPIPE_WEBHOOK_HEADER", "X-Hook", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, argv), 0);
    assert_string_equal(cfg.webhook_api_key, "k3y");
    assert_string_equal(cfg.webhook_basic, "user:pa:ss");
    assert_string_equal(cfg.webhook_header, "X-Hook");
    config_free(&cfg);

    setenv("HCPIPE_WEBHOOK_HEADER", "Authorization", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 1, argv), -1);
    assert_non_null(strstr(err, "HCPIPE_WEBHOOK_HEADER"));
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(config_defaults, clear_env),
        cmocka_unit_test_setup(config_flag_beats_env, clear_env),
        cmocka_unit_test_setup(config_bad_env_names_variable, clear_env),
        cmocka_unit_test_setup(config_flag_hides_bad_env, clear_env),
        cmocka_unit_test_setup(config_bad_flag_names_flag, clear_env),
        cmocka_unit_test_setup(config_seeds_env_and_flags, clear_env),
        cmocka_unit_test_setup(config_help, clear_env),
        cmocka_unit_test_setup(config_check_source_rules, clear_env),
        cmocka_unit_test_setup(config_athena_flags_collected, clear_env),
        cmocka_unit_test_setup(config_objects_and_results, clear_env),
        cmocka_unit_test_setup(config_edge_settings, clear_env),
        cmocka_unit_test_setup(config_event_defaults_and_lists, clear_env),
        cmocka_unit_test_setup(config_webhook_secrets_never_echoed, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
