/*
 * Unit tests of src/dg_key.c: what is a key once "Bearer" and blanks are
 * dropped, and its keyed hash.
 */

#include "dg_test.h"

#include "dg_key.h"


static const char *
t_norm(const char *in, size_t *len)
{
    *len = strlen(in);

    return dg_key_normalize(in, len);
}


static void
test_key_bearer_stripped(void **state)
{
    size_t       len;
    const char  *p;

    (void) state;

    p = t_norm("Bearer sk-abc", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, "sk-abc", 6);

    p = t_norm("  bEaReR \t sk-abc  ", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, "sk-abc", 6);

    p = t_norm("sk-abc", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, "sk-abc", 6);
}


/* nginx trims "Bearer " to "Bearer": the word alone is no key */

static void
test_key_bearer_alone_is_empty(void **state)
{
    size_t        i, len;
    static const char  *empty[] = {
        "Bearer", "Bearer ", "Bearer   ", "bearer", "BEARER", " Bearer\t",
        "bEARER \t ", "", "   ", "\t"
    };

    (void) state;

    for (i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        (void) t_norm(empty[i], &len);
        if (len != 0) {
            fail_msg("\"%s\" gave a key of %zu bytes", empty[i], len);
        }
    }
}


/* only the word followed by a blank, or alone, is the scheme */

static void
test_key_bearer_prefix_of_key(void **state)
{
    size_t       len;
    const char  *p;

    (void) state;

    p = t_norm("Bearerish", &len);
    assert_int_equal(len, 9);
    assert_memory_equal(p, "Bearerish", 9);

    p = t_norm("Beare", &len);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "Beare", 5);

    p = t_norm("Bearer Bearer", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, "Bearer", 6);
}


static void
test_key_id(void **state)
{
    char  a[DG_KEY_ID_LEN + 1], b[DG_KEY_ID_LEN + 1];

    (void) state;

    assert_int_equal(dg_key_id("s", 1, "k", 1, a), 0);
    assert_int_equal(strlen(a), DG_KEY_ID_LEN);
    assert_int_equal(dg_key_id("s", 1, "k2", 2, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(dg_key_id("t", 1, "k", 1, b), 0);
    assert_string_not_equal(a, b);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_key_bearer_stripped),
        cmocka_unit_test(test_key_bearer_alone_is_empty),
        cmocka_unit_test(test_key_bearer_prefix_of_key),
        cmocka_unit_test(test_key_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
