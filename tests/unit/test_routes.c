/* Unit tests of routes/routes.c: the route table and openapi/openapi.yaml (embedded as
 * openapi.json) list the same operations, both ways, and the table is well formed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "routes/routes.h"
#include "server/embedded.h"

static json_t *load_spec(void)
{
    const struct embedded_file *f = embedded_find("openapi.json");
    json_error_t err;
    json_t *spec;

    assert_non_null(f);
    spec = json_loadb((const char *)f->data, f->size, 0, &err);
    assert_non_null(spec);
    return spec;
}

/* The spec's method for a table method: "GET" -> "get". */
static void lower(const char *in, char *out, size_t n)
{
    size_t i;

    for (i = 0; in[i] && i + 1 < n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    out[i] = '\0';
}

static void routes_table_in_spec(void **state)
{
    json_t *spec = load_spec(), *paths = json_object_get(spec, "paths");
    size_t n;
    const struct route *routes = routes_table(&n);

    (void)state;
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        char m[8];
        json_t *item = json_object_get(paths, routes[i].path);
        lower(routes[i].method, m, sizeof m);
        if (!item || !json_object_get(item, m))
            fail_msg("route %s %s is not in openapi.yaml", routes[i].method, routes[i].path);
    }
    json_decref(spec);
}

static void routes_spec_in_table(void **state)
{
    static const char *const methods[] = {"get",  "put",     "post",  "delete", "patch",
                                          "head", "options", "trace", NULL};
    json_t *spec = load_spec(), *paths = json_object_get(spec, "paths"), *item;
    const char *path;
    size_t n, ops = 0;
    const struct route *routes = routes_table(&n);

    (void)state;
    json_object_foreach(paths, path, item)
    {
        for (size_t k = 0; methods[k]; k++) {
            int found = 0;
            if (!json_object_get(item, methods[k]))
                continue;
            ops++;
            for (size_t i = 0; i < n && !found; i++) {
                char m[8];
                lower(routes[i].method, m, sizeof m);
                found = strcmp(routes[i].path, path) == 0 && strcmp(m, methods[k]) == 0;
            }
            if (!found)
                fail_msg("openapi.yaml has %s %s but the route table does not", methods[k], path);
        }
    }
    assert_int_equal(ops, n);
    json_decref(spec);
}

static void routes_table_well_formed(void **state)
{
    size_t n;
    const struct route *routes = routes_table(&n);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        assert_non_null(routes[i].handler);
        assert_true(routes[i].path[0] == '/');
        assert_true(strcmp(routes[i].method, "GET") == 0 || strcmp(routes[i].method, "POST") == 0);
        /* A JSON route needs a body cap; GET routes take no body. */
        if (routes[i].json_body)
            assert_true(routes[i].max_body > 0);
        if (strcmp(routes[i].method, "GET") == 0)
            assert_int_equal(routes[i].max_body, 0);
        for (size_t j = 0; j < i; j++)
            assert_false(strcmp(routes[i].method, routes[j].method) == 0 &&
                         strcmp(routes[i].path, routes[j].path) == 0);
    }
}

/* The table's auth agrees with the spec's security: an operation with `security: []` is
 * AUTH_NONE; every other one takes a bearer token (the document's default), of write scope for
 * POST and read scope for GET. AUTH_METRICS and AUTH_WEBHOOK_KEY are exempt (their own rules). */
static void routes_auth_matches_spec(void **state)
{
    json_t *spec = load_spec(), *paths = json_object_get(spec, "paths");
    json_t *global = json_object_get(spec, "security");
    size_t n;
    const struct route *routes = routes_table(&n);

    (void)state;
    assert_true(json_array_size(global) == 1 &&
                json_object_get(json_array_get(global, 0), "bearer") != NULL);
    for (size_t i = 0; i < n; i++) {
        char m[8];
        json_t *op, *sec;
        int open_in_spec;
        lower(routes[i].method, m, sizeof m);
        op = json_object_get(json_object_get(paths, routes[i].path), m);
        assert_non_null(op);
        sec = json_object_get(op, "security");
        open_in_spec = sec && json_array_size(sec) == 0;
        if (routes[i].auth == AUTH_METRICS || routes[i].auth == AUTH_WEBHOOK_KEY)
            continue;
        if (open_in_spec != (routes[i].auth == AUTH_NONE))
            fail_msg("%s %s: the table's auth and the spec's security disagree", routes[i].method,
                     routes[i].path);
        if (routes[i].auth != AUTH_NONE) {
            assert_int_equal(routes[i].auth,
                             strcmp(routes[i].method, "GET") == 0 ? AUTH_READ : AUTH_WRITE);
            if (!json_object_get(json_object_get(op, "responses"), "401"))
                fail_msg("%s %s needs a token but documents no 401", routes[i].method,
                         routes[i].path);
        }
        if (routes[i].auth == AUTH_WRITE &&
            !json_object_get(json_object_get(op, "responses"), "403"))
            fail_msg("%s %s needs a write token but documents no 403", routes[i].method,
                     routes[i].path);
    }
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_table_in_spec),
        cmocka_unit_test(routes_spec_in_table),
        cmocka_unit_test(routes_table_well_formed),
        cmocka_unit_test(routes_auth_matches_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
