/* Unit tests of server/warehouse.c: loads, reloads, supersede, delete, unchanged objects, bad
 * and duplicate records. Records are handed to the warehouse directly (no parser). */
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
#include "server/warehouse.h"

static char dir[256];
static struct warehouse *wh;

static int setup(void **state)
{
    char path[300];

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hcpipe-wh-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/warehouse.db", dir);
    assert_int_equal(warehouse_open(path, &wh), HC_OK);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    warehouse_close(wh);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* A record "facility_id" whose state, employees and accreditations vary with its position
 * and a per-call salt, so the same id in two objects has different data. */
static int salt;

static struct facility_record rec(const char *fid, uint64_t pos)
{
    static struct record_accreditation acc[64][3];
    static const char *const states[] = {NULL, "TX", "CA"};
    struct facility_record r;
    int k = (int)((pos + (uint64_t)salt) % 64);

    memset(&r, 0, sizeof r);
    r.position = pos;
    r.facility_id = fid;
    r.facility_name = "Name";
    r.state = states[(pos + (uint64_t)salt) % 3];
    r.has_employee_count = (pos + (uint64_t)salt) % 4 != 0;
    r.employee_count = (int64_t)(pos * 10 + (uint64_t)salt);
    acc[k][0] = (struct record_accreditation){"JC", "JC1", 20000 + (int32_t)(pos * 7) + salt};
    acc[k][1] = (struct record_accreditation){"NCQA", NULL, RECORDS_NULL_DATE};
    acc[k][2] = (struct record_accreditation){NULL, "X", 20000 + (int32_t)(pos * 3)};
    r.n_accreditations = (pos + (uint64_t)salt) % 4;
    r.accreditations = acc[k];
    return r;
}

/* Loads the facility ids (NULL entries are bad records) as object `key` version `version`.
 * Returns the commit's hc_err; *bad_out (optional) gets the bad records. */
static int load(const char *key, const char *version, const char *const *ids, size_t n,
                enum bad_record_policy policy, struct warehouse_load_stats *st, json_t **bad_out)
{
    struct warehouse_object obj = {"bucket", key, 100, version, NULL, NULL, NULL};
    struct warehouse_load *ld;
    struct warehouse_load_stats tmp;
    json_t *bad = NULL;
    int rc;

    if (!st)
        st = &tmp;
    salt += 5;
    rc = warehouse_load_begin(wh, &obj, policy, &ld, st, &bad);
    if (rc || !ld) {
        if (bad_out)
            *bad_out = bad;
        else
            json_decref(bad);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct facility_record r = rec(ids[i] ? ids[i] : "", i + 1);
        int e = ids[i] ? warehouse_load_record(ld, &r) : warehouse_load_bad(ld, i + 1, "bad");
        if (e == HC_EBADRECORDS)
            break;
        assert_int_equal(e, HC_OK);
    }
    rc = warehouse_load_commit(ld, st, &bad);
    if (bad_out)
        *bad_out = bad;
    else
        json_decref(bad);
    return rc;
}

/* "fid:load_id,..." of the current facilities, and a consistency check of facilities.cur. */
static char *current(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    static char out[1024];
    size_t len = 0;

    out[0] = '\0';
    assert_int_equal(warehouse_open_reader(wh, &db), HC_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT c.facility_id, c.load_id, f.cur, f.facility_id"
                                        " FROM current c JOIN facilities f ON f.id = c.fac"
                                        " ORDER BY c.facility_id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_int_equal(sqlite3_column_int(st, 2), 1);
        assert_string_equal(sqlite3_column_text(st, 0), sqlite3_column_text(st, 3));
        len +=
            (size_t)snprintf(out + len, sizeof out - len, "%s%s:%d", len ? "," : "",
                             (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1));
    }
    sqlite3_finalize(st);
    /* every row flagged current is the one `current` names */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM facilities WHERE cur = 1),"
                                        " (SELECT count(*) FROM current)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), sqlite3_column_int(st, 1));
    sqlite3_finalize(st);
    /* the per-state summaries equal a recomputation from the current rows */
    assert_int_equal(
        sqlite3_prepare_v2(
            db,
            "WITH sv AS (SELECT f.state IS NULL AS ns, coalesce(f.state, '') AS s, m.mx AS mx,"
            " count(*) AS n, sum(coalesce(f.employee_count, 0)) AS emp FROM (SELECT fac,"
            " max(valid_until) AS mx FROM accreditations GROUP BY fac) m JOIN facilities f ON"
            " f.id = m.fac WHERE f.cur = 1 AND m.mx IS NOT NULL GROUP BY 1, 2, 3),"
            " sa AS (SELECT f.state IS NULL AS ns, coalesce(f.state, '') AS s, a.valid_until AS"
            " vu, count(*) AS n FROM accreditations a JOIN facilities f ON f.id = a.fac WHERE"
            " f.cur = 1 AND a.valid_until IS NOT NULL GROUP BY 1, 2, 3)"
            " SELECT (SELECT count(*) FROM (SELECT * FROM sv EXCEPT SELECT * FROM state_valid))"
            " + (SELECT count(*) FROM (SELECT * FROM state_valid EXCEPT SELECT * FROM sv))"
            " + (SELECT count(*) FROM (SELECT * FROM sa EXCEPT SELECT * FROM state_acc))"
            " + (SELECT count(*) FROM (SELECT * FROM state_acc EXCEPT SELECT * FROM sa))",
            -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static int64_t count(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t n;

    assert_int_equal(warehouse_open_reader(wh, &db), HC_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void warehouse_reload_replaces_rows(void **state)
{
    const char *a1[] = {"F1", "F2"}, *a2[] = {"F2", "F3"};
    struct warehouse_load_stats st;

    (void)state;
    assert_int_equal(load("a.json", "v1", a1, 2, BAD_RECORD_FAIL, &st, NULL), HC_OK);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.load_id, 1);
    assert_string_equal(current(), "F1:1,F2:1");
    assert_int_equal(load("a.json", "v2", a2, 2, BAD_RECORD_FAIL, &st, NULL), HC_OK);
    assert_int_equal(st.load_id, 2);
    assert_string_equal(current(), "F2:2,F3:2");
    assert_int_equal(count("SELECT count(*) FROM facilities"), 2);
    assert_int_equal(
        count("SELECT count(*) FROM accreditations WHERE fac NOT IN (SELECT id FROM facilities)"),
        0);
    assert_int_equal(count("SELECT count(*) FROM objects"), 1);
}

static void warehouse_supersede_and_delete(void **state)
{
    const char *a[] = {"F1", "F2"}, *b[] = {"F2", "F3"};
    int64_t id;

    (void)state;
    assert_int_equal(load("a.json", "v1", a, 2, BAD_RECORD_FAIL, NULL, NULL), HC_OK);
    assert_int_equal(load("b.json", "v1", b, 2, BAD_RECORD_FAIL, NULL, NULL), HC_OK);
    assert_string_equal(current(), "F1:1,F2:2,F3:2");
    assert_int_equal(count("SELECT count(*) FROM facilities"), 4); /* superseded row kept */
    assert_int_equal(count("SELECT count(*) FROM facilities WHERE cur = 0"), 1);
    /* Reloading a (a new version) makes it the most recent: it wins F2 again. */
    assert_int_equal(load("a.json", "v2", a, 2, BAD_RECORD_FAIL, NULL, NULL), HC_OK);
    assert_string_equal(current(), "F1:3,F2:3,F3:2");
    /* Deleting a brings back b's superseded F2. */
    assert_int_equal(warehouse_delete(wh, "bucket", "a.json"), HC_OK);
    assert_string_equal(current(), "F2:2,F3:2");
    assert_int_equal(warehouse_object_load_id(wh, "bucket", "a.json", &id), HC_ENOTFOUND);
    assert_int_equal(warehouse_object_load_id(wh, "bucket", "b.json", &id), HC_OK);
    assert_int_equal(id, 2);
    assert_int_equal(warehouse_delete(wh, "bucket", "a.json"), HC_ENOTFOUND);
    assert_int_equal(warehouse_delete(wh, "bucket", "b.json"), HC_OK);
    assert_string_equal(current(), "");
    assert_int_equal(count("SELECT count(*) FROM facilities"), 0);
    assert_int_equal(count("SELECT count(*) FROM accreditations"), 0);
}

static void warehouse_unchanged_object_not_reloaded(void **state)
{
    const char *a[] = {"F1", "F2"};
    struct warehouse_load_stats st;

    (void)state;
    assert_int_equal(load("a.json", "v1", a, 2, BAD_RECORD_FAIL, &st, NULL), HC_OK);
    assert_int_equal(st.unchanged, 0);
    assert_int_equal(load("a.json", "v1", a, 2, BAD_RECORD_FAIL, &st, NULL), HC_OK);
    assert_int_equal(st.unchanged, 1);
    assert_int_equal(st.load_id, 1);
    assert_int_equal(st.records, 2);
    assert_int_equal(load("a.json", "v2", a, 2, BAD_RECORD_FAIL, &st, NULL), HC_OK);
    assert_int_equal(st.unchanged, 0);
    assert_int_equal(st.load_id, 2);
}

static void warehouse_duplicate_ids_are_bad(void **state)
{
    const char *a[] = {"F1", "F2", "F1", "F3"};
    struct warehouse_load_stats st;
    json_t *bad = NULL;

    (void)state;
    assert_int_equal(load("a.json", "v1", a, 4, BAD_RECORD_FAIL, &st, &bad), HC_EBADRECORDS);
    assert_int_equal(json_array_size(bad), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bad, 0), "position")), 3);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(bad, 0), "reason")), "F1"));
    json_decref(bad);
    assert_string_equal(current(), ""); /* nothing of the object was loaded */
    assert_int_equal(count("SELECT count(*) FROM objects"), 0);

    assert_int_equal(load("a.json", "v1", a, 4, BAD_RECORD_SKIP, &st, &bad), HC_OK);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.bad, 1);
    assert_int_equal(json_array_size(bad), 1);
    json_decref(bad);
    assert_string_equal(current(), "F1:1,F2:1,F3:1"); /* the failed load was rolled back */
    /* the first F1 (position 1) is the one kept */
    assert_int_equal(count("SELECT f.id - o.fac_first FROM current c JOIN facilities f"
                           " ON f.id = c.fac JOIN objects o ON o.load_id = c.load_id"
                           " WHERE c.facility_id = 'F1'"),
                     0);
}

static void warehouse_fail_lists_first_20(void **state)
{
    const char *ids[30];
    json_t *bad = NULL;
    struct warehouse_load_stats st;

    (void)state;
    for (int i = 0; i < 30; i++)
        ids[i] = (i % 3 == 0) ? "OK" : NULL; /* "OK" repeats too: more bad records */
    assert_int_equal(load("x.json", "v1", ids, 30, BAD_RECORD_FAIL, &st, &bad), HC_EBADRECORDS);
    assert_int_equal(json_array_size(bad), 20);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bad, 0), "position")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bad, 2), "position")), 4);
    json_decref(bad);
    assert_int_equal(count("SELECT count(*) FROM facilities"), 0);

    /* skip: every bad record is reported, and an unchanged reload reports them again */
    assert_int_equal(load("x.json", "v1", ids, 30, BAD_RECORD_SKIP, &st, &bad), HC_OK);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.bad, 29);
    assert_int_equal(json_array_size(bad), 29);
    json_decref(bad);
    assert_int_equal(load("x.json", "v1", ids, 30, BAD_RECORD_SKIP, &st, &bad), HC_OK);
    assert_int_equal(st.unchanged, 1);
    assert_int_equal(json_array_size(bad), 29);
    json_decref(bad);
    /* ... but a fail job on the same object reads it again and fails */
    assert_int_equal(load("x.json", "v1", ids, 30, BAD_RECORD_FAIL, &st, &bad), HC_EBADRECORDS);
    json_decref(bad);
    assert_string_equal(current(), "OK:1"); /* the failed load left the skip load in place */
}

static void warehouse_failed_reload_keeps_old_version(void **state)
{
    const char *good[] = {"F1", "F2"}, *badv[] = {"F9", NULL};

    (void)state;
    assert_int_equal(load("a.json", "v1", good, 2, BAD_RECORD_FAIL, NULL, NULL), HC_OK);
    assert_int_equal(load("a.json", "v2", badv, 2, BAD_RECORD_FAIL, NULL, NULL), HC_EBADRECORDS);
    assert_string_equal(current(), "F1:1,F2:1");
}

static void warehouse_reopen_keeps_data(void **state)
{
    const char *a[] = {"F1"};
    char path[300];

    (void)state;
    assert_int_equal(load("a.json", "v1", a, 1, BAD_RECORD_FAIL, NULL, NULL), HC_OK);
    warehouse_close(wh);
    snprintf(path, sizeof path, "%s/warehouse.db", dir);
    assert_int_equal(warehouse_open(path, &wh), HC_OK);
    assert_string_equal(current(), "F1:1");
    assert_int_equal(count("PRAGMA user_version"), 3); /* every migration ran */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(warehouse_reload_replaces_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(warehouse_supersede_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(warehouse_unchanged_object_not_reloaded, setup, teardown),
        cmocka_unit_test_setup_teardown(warehouse_duplicate_ids_are_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(warehouse_fail_lists_first_20, setup, teardown),
        cmocka_unit_test_setup_teardown(warehouse_failed_reload_keeps_old_version, setup, teardown),
        cmocka_unit_test_setup_teardown(warehouse_reopen_keeps_data, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
