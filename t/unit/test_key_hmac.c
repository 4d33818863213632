/*
 * Unit tests of src/dg_key.c: the key id, one-shot
 * and with the key schedule made once.
 */

#include "dg_test.h"

#include "dg_key.h"


static void
test_normalize(void **state)
{
    size_t       len;
    const char  *p;

    (void) state;

    len = 17;
    p = dg_key_normalize("  Bearer  sk-abc ", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, "sk-abc", 6);

    len = 0;
    (void) dg_key_normalize("", &len);
    assert_int_equal(len, 0);
}


/* RFC 4231, test case 2: the first 8 bytes of HMAC-SHA256 */
static void
test_rfc4231(void **state)
{
    char            id[DG_KEY_ID_LEN + 1];
    dg_key_hmac_t  *h;

    (void) state;

    assert_int_equal(dg_key_id("Jefe", 4, "what do ya want for nothing?",
                               28, id), 0);
    assert_string_equal(id, "5bdcc146bf60754e");

    h = dg_key_hmac_create("Jefe", 4);
    assert_non_null(h);
    memset(id, 0, sizeof(id));
    assert_int_equal(dg_key_hmac_id(h, "what do ya want for nothing?", 28,
                                    id), 0);
    assert_string_equal(id, "5bdcc146bf60754e");
    dg_key_hmac_free(h);
}


/* the same ids as the one-shot HMAC, for short, block-sized and long
 * secrets and keys */
static void
test_same_as_oneshot(void **state)
{
    char            a[DG_KEY_ID_LEN + 1], b[DG_KEY_ID_LEN + 1],
                    secret[200], key[300];
    size_t          s, k, i;
    dg_key_hmac_t  *h;

    static const size_t  slen[] = { 1, 12, 63, 64, 65, 200 };
    static const size_t  klen[] = { 0, 1, 20, 64, 65, 300 };

    (void) state;

    for (i = 0; i < sizeof(secret); i++) {
        secret[i] = (char) (i * 7 + 1);
    }

    for (i = 0; i < sizeof(key); i++) {
        key[i] = (char) (i * 13 + 5);
    }

    for (s = 0; s < sizeof(slen) / sizeof(slen[0]); s++) {
        h = dg_key_hmac_create(secret, slen[s]);
        assert_non_null(h);

        for (k = 0; k < sizeof(klen) / sizeof(klen[0]); k++) {
            assert_int_equal(dg_key_id(secret, slen[s], key, klen[k], a), 0);
            assert_int_equal(dg_key_hmac_id(h, key, klen[k], b), 0);
            assert_string_equal(a, b);
        }

        dg_key_hmac_free(h);
    }

    dg_key_hmac_free(NULL);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_same_as_oneshot),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
