/*
 * Unit tests of aws/credentials.c: each source of the default chain (environment, shared files
 * with profiles, container endpoint, EC2 IMDSv2 and its IMDSv1 fallback), the cache and its
 * refresh ahead of expiry, IMDS switched off, and an IMDS token request that gets no answer.
 * The container and IMDS endpoints are scripted loopback servers (tests/unit/fake_http.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/credentials.h"
#include "fake_http.h"

static const char *const cred_vars[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_METADATA_SERVICE_TIMEOUT",
};

struct fixture {
    char dir[64];
    char creds_path[128];
    char config_path[128];
    struct fake_server *fake;
    struct aws_credentials_provider *p;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    for (size_t i = 0; i < sizeof(cred_vars) / sizeof(cred_vars[0]); i++)
        unsetenv(cred_vars[i]);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hcpipe_creds_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->creds_path, sizeof(f->creds_path), "%s/credentials", f->dir);
    snprintf(f->config_path, sizeof(f->config_path), "%s/config", f->dir);
    setenv("AWS_SHARED_CREDENTIALS_FILE", f->creds_path, 1);
    setenv("AWS_CONFIG_FILE", f->config_path, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    f->p = aws_credentials_provider_new();
    assert_non_null(f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[160];

    aws_credentials_provider_free(f->p);
    fake_stop(f->fake);
    unlink(f->creds_path);
    unlink(f->config_path);
    snprintf(path, sizeof(path), "%s/token", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ISO 8601 UTC of now + delta seconds. */
static void iso_in(long delta, char out[32])
{
    time_t t = time(NULL) + delta;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void credentials_env(void **state)
{
    struct fixture *f = *state;
    struct aws_credentials c;
    char err[256];

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secretenv", 1);
    setenv("AWS_SESSION_TOKEN", "tokenenv", 1);
    /* The environment wins over a shared file. */
    write_file(f->creds_path, "[default]\naws_access_key_id = AKIDFILE\n"
                              "aws_secret_access_key = secretfile\n");
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDENV");
    assert_string_equal(c.secret_access_key, "secretenv");
    assert_string_equal(c.session_token, "tokenenv");
    assert_string_equal(c.source, "env");
    assert_int_equal(c.expiration, 0);
    aws_credentials_clear(&c);
    assert_null(c.access_key_id);

    /* AWS_CREDENTIAL_EXPIRATION is honoured (and fractional seconds / offsets parse). */
    aws_credentials_provider_free(f->p);
    f->p = aws_credentials_provider_new();
    setenv("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T02:00:00.123+02:00", 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_int_equal(c.expiration, 4070908800); /* 2099-01-01T00:00:00Z */
    aws_credentials_clear(&c);
}

static void credentials_env_partial_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct aws_credentials c;
    char err[256] = "";

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    assert_null(c.access_key_id);
}

static void credentials_shared_files_profiles(void **state)
{
    struct fixture *f = *state;
    struct aws_credentials c;
    char err[256];

    write_file(f->creds_path, "# comment\n[default]\naws_access_key_id = AKIDDEF\n"
                              "aws_secret_access_key = secretdef\n\n"
                              "[dev]\n  aws_access_key_id=AKIDDEV  \naws_secret_access_key="
                              "secretdev\naws_session_token = tokdev\n"
                              "[both]\naws_access_key_id = AKIDBOTHCRED\n"
                              "aws_secret_access_key = s1\n");
    write_file(f->config_path, "[default]\nregion = eu-west-1\n"
                               "[profile cfgonly]\naws_access_key_id = AKIDCFG\n"
                               "aws_secret_access_key = secretcfg\nregion = us-west-2\n"
                               "[profile both]\naws_access_key_id = AKIDBOTHCFG\n"
                               "aws_secret_access_key = s2\n"
                               "[plain]\naws_access_key_id = AKIDPLAIN\n"
                               "aws_secret_access_key = s3\n");

    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDDEF");
    assert_string_equal(c.source, "shared-file");
    assert_null(c.session_token);
    aws_credentials_clear(&c);
    aws_credentials_provider_free(f->p);

    setenv("AWS_PROFILE", "dev", 1);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDDEV");
    assert_string_equal(c.secret_access_key, "secretdev");
    assert_string_equal(c.session_token, "tokdev");
    aws_credentials_clear(&c);
    aws_credentials_provider_free(f->p);

    setenv("AWS_PROFILE", "cfgonly", 1);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDCFG");
    aws_credentials_clear(&c);
    aws_credentials_provider_free(f->p);

    /* The credentials file wins over the config file. */
    setenv("AWS_PROFILE", "both", 1);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDBOTHCRED");
    aws_credentials_clear(&c);
    aws_credentials_provider_free(f->p);

    /* The profile's region comes from the config file. */
    {
        char region[32];

        assert_int_equal(aws_profile_region(region, sizeof(region)), -1); /* "both": none */
        setenv("AWS_PROFILE", "cfgonly", 1);
        assert_int_equal(aws_profile_region(region, sizeof(region)), 0);
        assert_string_equal(region, "us-west-2");
        unsetenv("AWS_PROFILE");
        assert_int_equal(aws_profile_region(region, sizeof(region)), 0);
        assert_string_equal(region, "eu-west-1");
    }

    /* In the config file a profile needs the "profile " prefix. */
    setenv("AWS_PROFILE", "plain", 1);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no AWS credentials"));
    assert_null(strstr(err, "s3"));
}

static char container_body[512];

static void container_json(long expires_in, const char *akid)
{
    char exp[32];

    iso_in(expires_in, exp);
    snprintf(container_body, sizeof(container_body),
             "{\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"csecret\",\"Token\":\"ctoken\","
             "\"Expiration\":\"%s\",\"RoleArn\":\"arn:aws:iam::1:role/r\"}",
             akid, exp);
}

static void credentials_container_full_uri_with_token(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[1] = {{.status = 200, .body = container_body}};
    struct aws_credentials c;
    char err[256], url[128], hdr[128], tokpath[160];

    container_json(3600, "AKIDCONT");
    f->fake = fake_start(r, 1);
    assert_non_null(f->fake);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/credentials/abc", f->fake->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "env-token", 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDCONT");
    assert_string_equal(c.secret_access_key, "csecret");
    assert_string_equal(c.session_token, "ctoken");
    assert_string_equal(c.source, "container");
    assert_true(c.expiration > time(NULL) + 3500 && c.expiration <= time(NULL) + 3600);
    aws_credentials_clear(&c);
    assert_int_equal(fake_n_reqs(f->fake), 1);
    assert_non_null(strstr(f->fake->reqs[0].head, "GET /v2/credentials/abc HTTP/1.1\r\n"));
    assert_string_equal(fake_req_header(f->fake, 0, "Authorization", hdr, sizeof(hdr)),
                        "env-token");
    assert_string_equal(fake_req_header(f->fake, 0, "Accept", hdr, sizeof(hdr)),
                        "application/json");

    /* The token file wins over the variable and is read on every fetch. */
    snprintf(tokpath, sizeof(tokpath), "%s/token", f->dir);
    write_file(tokpath, "file-token\n");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokpath, 1);
    aws_credentials_provider_free(f->p);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    aws_credentials_clear(&c);
    assert_int_equal(fake_n_reqs(f->fake), 2);
    assert_string_equal(fake_req_header(f->fake, 1, "Authorization", hdr, sizeof(hdr)),
                        "file-token");

    /* A token with a line break is refused. */
    write_file(tokpath, "bad\r\nX-Injected: 1");
    aws_credentials_provider_free(f->p);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "CR or LF"));
    assert_int_equal(fake_n_reqs(f->fake), 2);
}

static void credentials_container_rejects_remote_http(void **state)
{
    struct fixture *f = *state;
    struct aws_credentials c;
    char err[256];

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds", 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "FULL_URI"));
}

static void credentials_container_error_status(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[1] = {{.status = 403, .body = "{\"message\":\"denied\"}"}};
    struct aws_credentials c;
    char err[256], url[128];

    f->fake = fake_start(r, 1);
    snprintf(url, sizeof(url), "http://localhost:%d/creds", f->fake->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "403"));
}

static void credentials_refresh_ahead_of_expiry(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[1] = {{.status = 200, .body = container_body}};
    struct aws_credentials c;
    char err[256], url[128];

    /* Expiring in 2 minutes (< 5): every get refreshes. */
    container_json(120, "AKIDSOON");
    f->fake = fake_start(r, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", f->fake->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
        assert_string_equal(c.access_key_id, "AKIDSOON");
        aws_credentials_clear(&c);
    }
    assert_int_equal(fake_n_reqs(f->fake), 3);

    /* Expiring in an hour: cached. (A new fake: the old one's thread read the old body.) */
    fake_stop(f->fake);
    aws_credentials_provider_free(f->p);
    f->p = aws_credentials_provider_new();
    container_json(3600, "AKIDLATER");
    f->fake = fake_start(r, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", f->fake->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
        assert_string_equal(c.access_key_id, "AKIDLATER");
        aws_credentials_clear(&c);
    }
    assert_int_equal(fake_n_reqs(f->fake), 1);
}

static void credentials_failed_refresh_keeps_valid_cache(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[1] = {{.status = 200, .body = container_body}};
    struct aws_credentials c;
    char err[256], url[128];

    /* Expiring in 4 minutes: due for refresh, still usable. */
    container_json(240, "AKIDSTALE");
    f->fake = fake_start(r, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", f->fake->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    aws_credentials_clear(&c);
    fake_stop(f->fake);
    f->fake = NULL;
    /* The endpoint is gone: the refresh fails, the cached credentials are served. */
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDSTALE");
    aws_credentials_clear(&c);
    /* A fresh provider has nothing cached and reports the failure. */
    aws_credentials_provider_free(f->p);
    f->p = aws_credentials_provider_new();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "container"));
}

struct getter {
    struct aws_credentials_provider *p;
    int ok;
};

static void *getter_thread(void *arg)
{
    struct getter *g = arg;

    for (int i = 0; i < 20; i++) {
        struct aws_credentials c;
        char err[256];

        if (aws_credentials_get(g->p, &c, err, sizeof(err)) == 0 &&
            strcmp(c.access_key_id, "AKIDTHREADS") == 0)
            g->ok++;
        aws_credentials_clear(&c);
    }
    return NULL;
}

static void credentials_cache_is_thread_safe(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[1] = {{.status = 200, .body = container_body}};
    char url[128];
    pthread_t t[4];
    struct getter g[4];

    container_json(3600, "AKIDTHREADS");
    f->fake = fake_start(r, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", f->fake->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    for (int i = 0; i < 4; i++) {
        g[i].p = f->p;
        g[i].ok = 0;
        pthread_create(&t[i], NULL, getter_thread, &g[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(g[i].ok, 20);
    }
    assert_int_equal(fake_n_reqs(f->fake), 1);
}

static char imds_body[512];

static void start_imds(struct fixture *f, const struct fake_resp *r, int n)
{
    char url[128];

    f->fake = fake_start(r, n);
    assert_non_null(f->fake);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->fake->port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
}

static void credentials_imds_v2(void **state)
{
    struct fixture *f = *state;
    char exp[32], hdr[128];
    struct fake_resp r[] = {
        {.status = 200, .body = "IMDS-TOKEN-123"},
        {.status = 200, .body = "my-role\n"},
        {.status = 200, .body = imds_body},
    };
    struct aws_credentials c;
    char err[256];

    iso_in(6 * 3600, exp);
    snprintf(imds_body, sizeof(imds_body),
             "{\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\",\"Type\":"
             "\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\",\"SecretAccessKey\":\"isecret\","
             "\"Token\":\"itoken\",\"Expiration\":\"%s\"}",
             exp);
    start_imds(f, r, 3);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAIMDS");
    assert_string_equal(c.secret_access_key, "isecret");
    assert_string_equal(c.session_token, "itoken");
    assert_string_equal(c.source, "imds");
    assert_true(c.expiration > time(NULL) + 5 * 3600);
    aws_credentials_clear(&c);
    assert_int_equal(fake_n_reqs(f->fake), 3);
    assert_non_null(strstr(f->fake->reqs[0].head, "PUT /latest/api/token HTTP/1.1\r\n"));
    assert_string_equal(
        fake_req_header(f->fake, 0, "X-aws-ec2-metadata-token-ttl-seconds", hdr, sizeof(hdr)),
        "21600");
    assert_non_null(strstr(f->fake->reqs[1].head,
                           "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n"));
    assert_string_equal(fake_req_header(f->fake, 1, "X-aws-ec2-metadata-token", hdr, sizeof(hdr)),
                        "IMDS-TOKEN-123");
    assert_non_null(strstr(f->fake->reqs[2].head,
                           "GET /latest/meta-data/iam/security-credentials/my-role HTTP/1.1\r\n"));
    assert_string_equal(fake_req_header(f->fake, 2, "X-aws-ec2-metadata-token", hdr, sizeof(hdr)),
                        "IMDS-TOKEN-123");

    /* Cached: no new requests. */
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    aws_credentials_clear(&c);
    assert_int_equal(fake_n_reqs(f->fake), 3);
}

static void credentials_imds_v1_fallback(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {
        {.status = 405},
        {.status = 200, .body = "role1"},
        {.status = 200, .body = imds_body},
    };
    struct aws_credentials c;
    char err[256], hdr[128];

    snprintf(imds_body, sizeof(imds_body),
             "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAV1\",\"SecretAccessKey\":\"s\","
             "\"Token\":\"t\",\"Expiration\":\"2099-01-01T00:00:00Z\"}");
    start_imds(f, r, 3);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAV1");
    aws_credentials_clear(&c);
    assert_int_equal(fake_n_reqs(f->fake), 3);
    assert_string_equal(fake_req_header(f->fake, 1, "X-aws-ec2-metadata-token", hdr, sizeof(hdr)),
                        "");
}

static void credentials_imds_disabled(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .body = "TOKEN"}};
    struct aws_credentials c;
    char err[256];

    start_imds(f, r, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "AWS_EC2_METADATA_DISABLED"));
    assert_int_equal(fake_n_reqs(f->fake), 0);
}

static void credentials_imds_token_unanswered_times_out(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.hang = 1}};
    struct aws_credentials c;
    char err[512];
    double t0;

    start_imds(f, r, 1);
    t0 = mono_s();
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_true(mono_s() - t0 < 3.0);
    assert_true(mono_s() - t0 >= 0.9);
    assert_non_null(strstr(err, "no answer to the token request"));
    assert_non_null(strstr(err, "hop limit"));
    assert_int_equal(fake_n_reqs(f->fake), 1);
    assert_null(c.access_key_id);
}

static void credentials_imds_no_role(void **state)
{
    struct fixture *f = *state;
    struct fake_resp r[] = {{.status = 200, .body = "TOKEN"}, {.status = 404}};
    struct aws_credentials c;
    char err[512];

    start_imds(f, r, 2);
    assert_int_equal(aws_credentials_get(f->p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no IAM role"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(credentials_env, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_env_partial_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_shared_files_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_container_full_uri_with_token, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_container_rejects_remote_http, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_container_error_status, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_refresh_ahead_of_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_failed_refresh_keeps_valid_cache, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(credentials_cache_is_thread_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_imds_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_imds_v1_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_imds_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(credentials_imds_token_unanswered_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(credentials_imds_no_role, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
