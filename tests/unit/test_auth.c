/* Unit tests of server/auth.c: the token list format, scopes, 401 vs 403 answers, lookalike
 * tokens, files, reload, and messages that never hold a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/error.h"

#define RTOK "read-token-0123456789"
#define WTOK "write:token:0123456789"

static struct auth *parse_ok(const char *text)
{
    struct auth *a = NULL;
    char why[256] = "";

    assert_int_equal(auth_parse(text, &a, why, sizeof why), HC_OK);
    assert_non_null(a);
    return a;
}

static void auth_scopes_and_statuses(void **state)
{
    struct auth *a = parse_ok("ro:read:" RTOK ", rw:write:" WTOK);
    char name[AUTH_NAME_MAX];

    (void)state;
    assert_int_equal(auth_count(a), 2);
    assert_int_equal(auth_check(a, "Bearer " RTOK, AUTH_SCOPE_READ, name), HC_OK);
    assert_string_equal(name, "ro");
    assert_int_equal(auth_check(a, "Bearer " RTOK, AUTH_SCOPE_WRITE, name), HC_EFORBIDDEN);
    assert_string_equal(name, "ro");
    assert_int_equal(auth_check(a, "bearer  " WTOK " ", AUTH_SCOPE_WRITE, name), HC_OK);
    assert_string_equal(name, "rw");
    assert_int_equal(auth_check(a, "Bearer " WTOK, AUTH_SCOPE_READ, NULL), HC_OK);
    auth_free(a);
}

static void auth_rejects_lookalikes(void **state)
{
    struct auth *a = parse_ok("ro:read:" RTOK);
    char name[AUTH_NAME_MAX] = "x";

    (void)state;
    assert_int_equal(auth_check(a, NULL, AUTH_SCOPE_READ, name), HC_EUNAUTHORIZED);
    assert_string_equal(name, "");
    assert_int_equal(auth_check(a, RTOK, AUTH_SCOPE_READ, name), HC_EUNAUTHORIZED);
    assert_int_equal(auth_check(a, "Basic " RTOK, AUTH_SCOPE_READ, name), HC_EUNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer ", AUTH_SCOPE_READ, name), HC_EUNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer read-token-012345678", AUTH_SCOPE_READ, name),
                     HC_EUNAUTHORIZED); /* a prefix */
    assert_int_equal(auth_check(a, "Bearer read-token-01234567890", AUTH_SCOPE_READ, name),
                     HC_EUNAUTHORIZED); /* longer */
    assert_int_equal(auth_check(a, "Bearer read-token-012345678X", AUTH_SCOPE_READ, name),
                     HC_EUNAUTHORIZED); /* last byte */
    assert_int_equal(auth_check(a, "Bearer Xead-token-0123456789", AUTH_SCOPE_READ, name),
                     HC_EUNAUTHORIZED); /* first byte */
    auth_free(a);
}

static void auth_bad_lists_never_echo_tokens(void **state)
{
    static const char *const bad[] = {"ro:admin:" RTOK,
                                      "ro:read:short",
                                      "ro:" RTOK,
                                      "r o:read:" RTOK,
                                      "ro:read:" RTOK " x",
                                      "ro:read:" RTOK ",ro:write:" WTOK,
                                      "a:read:" RTOK ",b:write:" RTOK,
                                      NULL};
    char why[256];

    (void)state;
    for (size_t i = 0; bad[i]; i++) {
        struct auth *a = (struct auth *)1;
        why[0] = '\0';
        assert_int_equal(auth_parse(bad[i], &a, why, sizeof why), HC_EINVAL);
        assert_null(a);
        assert_true(why[0] != '\0');
        assert_null(strstr(why, RTOK));
        assert_null(strstr(why, "short"));
        assert_null(strstr(why, WTOK));
    }
}

static void auth_empty_and_comments(void **state)
{
    struct auth *a = parse_ok("");

    (void)state;
    assert_int_equal(auth_count(a), 0);
    assert_int_equal(auth_check(a, "Bearer " RTOK, AUTH_SCOPE_READ, NULL), HC_EUNAUTHORIZED);
    auth_free(a);
    a = parse_ok("# ops\n\n  ro:read:" RTOK "  \r\n# rw:write:" WTOK "\n");
    assert_int_equal(auth_count(a), 1);
    assert_int_equal(auth_check(a, "Bearer " WTOK, AUTH_SCOPE_READ, NULL), HC_EUNAUTHORIZED);
    auth_free(a);
}

static void auth_load_file_and_replace(void **state)
{
    char path[] = "/tmp/hcpipe-auth-XXXXXX", why[256];
    int fd = mkstemp(path);
    struct auth *a = NULL, *fresh = NULL;
    FILE *f;

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("file:write:" WTOK "\n", f);
    fclose(f);
    assert_int_equal(auth_load("ro:read:" RTOK, path, &a, why, sizeof why), HC_OK);
    assert_int_equal(auth_count(a), 2);
    assert_int_equal(auth_check(a, "Bearer " WTOK, AUTH_SCOPE_WRITE, NULL), HC_OK);
    /* The same token inline and in the file is refused. */
    assert_int_equal(auth_load("x:read:" WTOK, path, &fresh, why, sizeof why), HC_EINVAL);
    assert_int_equal(auth_load(NULL, path, &fresh, why, sizeof why), HC_OK);
    auth_replace(a, fresh);
    assert_int_equal(auth_count(a), 1);
    assert_int_equal(auth_check(a, "Bearer " RTOK, AUTH_SCOPE_READ, NULL), HC_EUNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer " WTOK, AUTH_SCOPE_READ, NULL), HC_OK);
    auth_free(a);
    unlink(path);
    assert_int_equal(auth_load(NULL, path, &a, why, sizeof why), HC_EIO);
    assert_non_null(strstr(why, path));
    assert_null(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_scopes_and_statuses),
        cmocka_unit_test(auth_rejects_lookalikes),
        cmocka_unit_test(auth_bad_lists_never_echo_tokens),
        cmocka_unit_test(auth_empty_and_comments),
        cmocka_unit_test(auth_load_file_and_replace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
