/* Unit tests of aws/buf.c: growth, the cap, and the failed state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "aws/buf.h"

static void buf_appends_and_terminates(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_printf(&b, " %d %s", 42, "x"), 0);
    assert_string_equal(b.data, "hello 42 x");
    assert_int_equal(b.len, 10);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_putc(&b, 'a'), 0);
    assert_int_equal(b.len, 1010);
    assert_int_equal(b.data[1010], '\0');
    buf_free(&b);
}

static void buf_cap_fails_and_frees(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    assert_int_equal(buf_putc(&b, '9'), -1);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_puts(&b, "a"), -1); /* stays failed */
    assert_null(buf_steal(&b, NULL));
    buf_init(&b, 8);
    assert_int_equal(buf_printf(&b, "%s", "123456789"), -1);
    buf_free(&b);
}

static void buf_steal_hands_over(void **state)
{
    struct buf b;
    size_t len;
    char *s;

    (void)state;
    buf_init(&b, 100);
    buf_puts(&b, "abc");
    s = buf_steal(&b, &len);
    assert_string_equal(s, "abc");
    assert_int_equal(len, 3);
    assert_null(b.data);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_appends_and_terminates),
        cmocka_unit_test(buf_cap_fails_and_frees),
        cmocka_unit_test(buf_steal_hands_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
