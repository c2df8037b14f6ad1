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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
