/* Unit tests of server/tls.c: loading a certificate and key made with the openssl CLI, the
 * errors for missing, malformed and mismatched files, reload (new pair in, a bad pair keeps the
 * old one), and the GnuTLS retrieve callback. Skipped when the openssl CLI is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/error.h"
#include "server/tls.h"

static char dir[] = "/tmp/hcpipe-tls-XXXXXX";

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static int make_pair(const char *name, const char *cn)
{
    char cmd[1024];

    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
             "%s/%s.key -out %s/%s.crt -days 2 -subj /CN=%s >/dev/null 2>&1",
             dir, name, dir, name, cn);
    return system(cmd);
}

static int copy(const char *from, const char *to)
{
    char cmd[1024];

    snprintf(cmd, sizeof cmd, "cp %s/%s %s/%s", dir, from, dir, to);
    return system(cmd);
}

static int setup(void **state)
{
    (void)state;
    if (system("command -v openssl >/dev/null 2>&1") != 0 || !mkdtemp(dir))
        return -1;
    if (make_pair("a", "tls-a") || make_pair("b", "tls-b") || copy("a.crt", "live.crt") ||
        copy("a.key", "live.key"))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tls_check_files(void **state)
{
    char p[512], why[512];

    (void)state;
    path_of(p, sizeof p, "a.crt");
    assert_int_equal(tls_check_cert_file(p, why, sizeof why), 0);
    assert_int_equal(tls_check_key_file(p, why, sizeof why), -1); /* a certificate, not a key */
    assert_non_null(strstr(why, p));
    path_of(p, sizeof p, "a.key");
    assert_int_equal(tls_check_key_file(p, why, sizeof why), 0);
    assert_int_equal(tls_check_cert_file(p, why, sizeof why), -1);
    path_of(p, sizeof p, "missing.crt");
    assert_int_equal(tls_check_cert_file(p, why, sizeof why), -1);
    assert_non_null(strstr(why, "cannot read"));
}

static void tls_load_mismatch_refused(void **state)
{
    char c[512], k[512], err[512];
    struct tls *t = (struct tls *)1;

    (void)state;
    path_of(c, sizeof c, "a.crt");
    path_of(k, sizeof k, "b.key");
    assert_int_equal(tls_load(c, k, &t, err, sizeof err), HC_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "does not go with"));
}

static void tls_reload_swaps_and_keeps_on_error(void **state)
{
    char c[512], k[512], err[512], subject[256], not_after[32];
    struct tls *t = NULL;
    gnutls_pcert_st *certs = NULL;
    gnutls_ocsp_data_st *ocsp = NULL;
    gnutls_privkey_t key = NULL;
    unsigned n = 0, nocsp = 0, flags = 0;

    (void)state;
    path_of(c, sizeof c, "live.crt");
    path_of(k, sizeof k, "live.key");
    assert_int_equal(tls_load(c, k, &t, err, sizeof err), HC_OK);
    tls_describe(t, subject, sizeof subject, not_after, sizeof not_after);
    assert_string_equal(subject, "CN=tls-a");
    assert_int_equal(strlen(not_after), 20);

    assert_int_equal(tls_retrieve(NULL, NULL, &certs, &n, &ocsp, &nocsp, &key, &flags), 0);
    assert_int_equal(n, 1);
    assert_non_null(key);
    assert_int_equal(flags, GNUTLS_CERT_RETR_DEINIT_ALL);
    gnutls_pcert_deinit(&certs[0]); /* what GnuTLS does under DEINIT_ALL */
    gnutls_free(certs);
    gnutls_privkey_deinit(key);

    assert_int_equal(copy("b.crt", "live.crt"), 0);
    assert_int_equal(copy("b.key", "live.key"), 0);
    assert_int_equal(tls_reload(t, err, sizeof err), HC_OK);
    tls_describe(t, subject, sizeof subject, not_after, sizeof not_after);
    assert_string_equal(subject, "CN=tls-b");

    assert_int_equal(copy("a.key", "live.key"), 0); /* key A with certificate B */
    assert_int_equal(tls_reload(t, err, sizeof err), HC_EINVAL);
    tls_describe(t, subject, sizeof subject, not_after, sizeof not_after);
    assert_string_equal(subject, "CN=tls-b");
    unlink(c);
    assert_int_equal(tls_reload(t, err, sizeof err), HC_EIO);
    tls_describe(t, subject, sizeof subject, not_after, sizeof not_after);
    assert_string_equal(subject, "CN=tls-b");
    tls_free(t);
    /* No certificate loaded: the callback refuses the handshake. */
    assert_int_equal(tls_retrieve(NULL, NULL, &certs, &n, &ocsp, &nocsp, &key, &flags), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_check_files),
        cmocka_unit_test(tls_load_mismatch_refused),
        cmocka_unit_test(tls_reload_swaps_and_keeps_on_error),
    };
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("openssl CLI missing: skipping\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
