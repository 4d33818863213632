/* unit tests of the JSON scanner (src/dg_json.c) */

#include "dg_test.h"

#include "dg_json.h"


/* reads a whole document of n bytes: 0 if it is valid JSON, else -1 */

static int
scan_n(const char *doc, size_t n)
{
    dg_json_t  js;

    dg_json_init(&js, doc, n);

    if (dg_json_skip(&js) != 0) {
        return -1;
    }

    return dg_json_end(&js);
}


static int
scan(const char *doc)
{
    return scan_n(doc, strlen(doc));
}


/* the first value of doc, which must be a scalar */

static void
value(const char *doc, dg_json_value_t *v)
{
    dg_json_t  js;

    dg_json_init(&js, doc, strlen(doc));

    assert_int_equal(dg_json_next(&js, v), 0);
    assert_int_equal(dg_json_end(&js), 0);
}


static void
assert_string(const char *doc, const char *expect, size_t expect_len)
{
    char             buf[64];
    dg_json_value_t  v;

    value(doc, &v);

    assert_int_equal(v.type, DG_JSON_STRING);
    assert_int_equal(v.len, expect_len);
    assert_int_equal(dg_json_string_copy(&v, buf, sizeof(buf)), expect_len);
    assert_memory_equal(buf, expect, expect_len);
    assert_true(dg_json_string_eq(&v, expect, expect_len));
}


static void
test_valid(void **state)
{
    size_t  i;

    static const char  *docs[] = {
        "{}",
        "[]",
        " \t\r\n{ \"a\" : [ 1 , -2.5e+3 , true , false , null , \"x\" ] } \n",
        "{\"a\":{\"b\":{\"c\":[[],[{}],{\"d\":\"\"}]}}}",
        "{\"\":0,\"\":1}",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"]",
        "[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"]",
        "[\"\x7f\"]",
        "[0,-0,0.0,-0.0e0,1E5,1e-5,1.5E+10,123456789012345678]",
        "[9223372036854775807,-9223372036854775808]",
        "[1.7976931348623157e308,-1.7976931348623157e308,1e-400]",
        "\"top-level string\"",
        "42",
        "-1.5",
        "true",
        "null",
    };

    (void) state;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        if (scan(docs[i]) != 0) {
            fail_msg("valid document refused: %s", docs[i]);
        }
    }
}


static void
test_invalid(void **state)
{
    size_t  i;

    static const char  *docs[] = {
        "",
        "   ",
        "{",
        "[",
        "}",
        "]",
        "[}",
        "{]",
        "{\"a\":1}}",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{a:1}",
        "{'a':1}",
        "[01]",
        "[-01]",
        "[1.]",
        "[.5]",
        "[-]",
        "[+1]",
        "[1e]",
        "[1e+]",
        "[0x10]",
        "[NaN]",
        "[Infinity]",
        "[-Infinity]",
        "[tru]",
        "[nul]",
        "[True]",
        "[truex]",
        "[\"unterminated]",
        "[\"tab\there\"]",
        "[\"new\nline\"]",
        "[\"\\x41\"]",
        "[\"\\u12\"]",
        "[\"\\u12G4\"]",
        "[\"\\U0041\"]",
        "[\"\\\"]",
        "[\"\\u0000\"]",
        "[\"\\ud800\"]",
        "[\"\\udc00\"]",
        "[\"\\ud800\\u0041\"]",
        "[\"\\ud800\\ud800\"]",
        "[\"\\ud800x\"]",
        "[\"\\ude00\\ud83d\"]",
        "[\"\xff\"]",
        "[\"\xc3\"]",
        "[\"\xc3(\"]",
        "[\"\x80\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xc1\xbf\"]",
        "[\"\xe0\x80\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf0\x80\x80\xaf\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xf5\x80\x80\x80\"]",
        "[\"\xe2\x82\"]",
        "\xef\xbb\xbf{}",
        "[9223372036854775808]",
        "[-9223372036854775809]",
        "[99999999999999999999999]",
        "[1e309]",
        "[-1e309]",
        "[1.7976931348623159e308]",
        "[1e99999999999999999999999999]",
    };

    (void) state;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        if (scan(docs[i]) == 0) {
            fail_msg("invalid document accepted: %s", docs[i]);
        }
    }

    /* NUL bytes: in a string, and after a number (jansson skips that) */

    assert_int_equal(scan_n("[\"a\0b\"]", 7), -1);
    assert_int_equal(scan_n("[1\0]", 4), -1);
    assert_int_equal(scan_n("{}\0", 3), -1);
}


static void
test_strings(void **state)
{
    char             buf[16];
    const char      *doc;
    dg_json_value_t  v;

    (void) state;

    /* no escape: the text is in the buffer itself */

    doc = "\"plain text, long enough for a word or two\"";
    value(doc, &v);

    assert_int_equal(v.type, DG_JSON_STRING);
    assert_false(v.escaped);
    assert_ptr_equal(v.data, doc + 1);
    assert_int_equal(v.len, strlen(doc) - 2);
    assert_int_equal(v.raw_len, v.len);

    assert_string("\"\"", "", 0);
    assert_string("\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7);
    assert_string("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5);
    assert_string("\"\\u0041\\u00e9\\u20ac\\uFFFF\"",
                  "A\xc3\xa9\xe2\x82\xac\xef\xbf\xbf", 9);
    assert_string("\"\\u0001\\u001f\"", "\x01\x1f", 2);

    /* surrogate pairs: U+1F600 and the last code point U+10FFFF */

    assert_string("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
    assert_string("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4);
    assert_string("\"x\\uD800\\uDC00y\"", "x\xf0\x90\x80\x80y", 6);

    /* raw UTF-8 passes as it is */

    assert_string("\"\xe4\xb8\xad\xe6\x96\x87\"", "\xe4\xb8\xad\xe6\x96\x87",
                  6);

    /* a bounded copy cuts where it must, even inside a sequence */

    value("\"ab\\u00e9cd\"", &v);
    assert_true(v.escaped);
    assert_int_equal(v.len, 6);
    assert_int_equal(v.raw_len, 10);

    memset(buf, 0, sizeof(buf));
    assert_int_equal(dg_json_string_copy(&v, buf, 3), 3);
    assert_memory_equal(buf, "ab\xc3", 3);
    assert_int_equal(buf[3], 0);

    assert_int_equal(dg_json_string_copy(&v, buf, 0), 0);

    /* eq compares the text, not the source */

    assert_true(dg_json_string_eq(&v, "ab\xc3\xa9" "cd", 6));
    assert_false(dg_json_string_eq(&v, "ab\xc3\xa9" "ce", 6));
    assert_false(dg_json_string_eq(&v, "ab\xc3\xa9" "c", 5));

    value("\"us\\u0065r\"", &v);
    assert_true(dg_json_string_eq(&v, "user", 4));

    /* not a string */

    value("12", &v);
    assert_false(dg_json_string_eq(&v, "12", 2));
    assert_int_equal(dg_json_string_copy(&v, buf, sizeof(buf)), 0);
}


static void
test_depth(void **state)
{
    int          i;
    char        *doc;
    size_t       n;

    (void) state;

    n = 100000;
    doc = malloc(2 * n + 1);
    assert_non_null(doc);

    /* exactly DG_JSON_MAX_DEPTH levels */

    n = 0;
    for (i = 0; i < DG_JSON_MAX_DEPTH; i++) {
        n += sprintf(doc + n, "[");
    }
    for (i = 0; i < DG_JSON_MAX_DEPTH; i++) {
        doc[n++] = ']';
    }
    doc[n] = '\0';

    assert_int_equal(scan(doc), 0);

    /* the same mixing objects and arrays */

    n = 0;
    for (i = 0; i < DG_JSON_MAX_DEPTH - 1; i++) {
        n += sprintf(doc + n, "{\"k\":");
    }
    n += sprintf(doc + n, "[1]");
    for (i = 0; i < DG_JSON_MAX_DEPTH - 1; i++) {
        doc[n++] = '}';
    }
    doc[n] = '\0';

    assert_int_equal(scan(doc), 0);

    /* one more level is refused */

    n = 0;
    for (i = 0; i < DG_JSON_MAX_DEPTH; i++) {
        n += sprintf(doc + n, "{\"k\":");
    }
    n += sprintf(doc + n, "[1]");
    for (i = 0; i < DG_JSON_MAX_DEPTH; i++) {
        doc[n++] = '}';
    }
    doc[n] = '\0';

    assert_int_equal(scan(doc), -1);

    /* very deep: refused early, no recursion */

    n = 100000;
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    assert_int_equal(scan_n(doc, 2 * n), -1);

    memset(doc, '{', n);
    assert_int_equal(scan_n(doc, n), -1);

    free(doc);
}


static void
test_numbers(void **state)
{
    size_t           i;
    double           d, ref;
    int32_t          m;
    int64_t          n;
    dg_json_value_t  v;

    static const struct {
        const char  *text;
        int32_t      milli;
    } milli[] = {
        { "0", 0 },
        { "2", 2000 },
        { "0.7", 700 },
        { "-1.5", -1500 },
        { "0.0004", 0 },
        { "0.0005", 1 },
        { "-0.0005", -1 },
        { "0.0006", 1 },
        { "1.0005", 1001 },
        { "1e10", INT32_MAX },
        { "-1e300", INT32_MIN },
        { "2147483.647", 2147483647 },
        { "1e-400", 0 },
        { "-0.0", 0 },
    };

    static const char  *reals[] = {
        "0.1", "0.7", "1.5", "-2.25", "3.141592653589793",
        "1e22", "1e23", "123456789012345.6", "1234567890123456.7",
        "0.30000000000000004", "2.2250738585072014e-308", "5e-324",
        "4.9406564584124654e-324", "1.7976931348623157e308",
        "0.000000000000000000000000000001",
        "9007199254740993.0", "1.00000000000000011102230246251565404",
    };

    (void) state;

    /* integers */

    value("9223372036854775807", &v);
    assert_int_equal(v.type, DG_JSON_NUMBER);
    assert_true(v.is_int);
    assert_int_equal(dg_json_number_int64(&v, &n), 0);
    assert_true(n == INT64_MAX);

    value("-9223372036854775808", &v);
    assert_int_equal(dg_json_number_int64(&v, &n), 0);
    assert_true(n == INT64_MIN);

    value("-0", &v);
    assert_true(v.is_int);
    assert_int_equal(dg_json_number_int64(&v, &n), 0);
    assert_int_equal(n, 0);

    /* a fraction or an exponent makes a real, even when it is whole */

    value("10.0", &v);
    assert_false(v.is_int);
    assert_int_equal(dg_json_number_int64(&v, &n), -1);

    value("1e2", &v);
    assert_false(v.is_int);
    assert_int_equal(dg_json_number_double(&v, &d), 0);
    assert_true(d == 100.0);

    value("\"5\"", &v);
    assert_int_equal(dg_json_number_int64(&v, &n), -1);
    assert_int_equal(dg_json_number_double(&v, &d), -1);
    assert_int_equal(dg_json_number_milli(&v, &m), -1);

    /* the nearest double, as strtod() gives it, fast path or not */

    for (i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        value(reals[i], &v);
        assert_int_equal(dg_json_number_double(&v, &d), 0);

        ref = strtod(reals[i], NULL);

        if (memcmp(&d, &ref, sizeof(double)) != 0) {
            fail_msg("%s read as %.17g", reals[i], d);
        }
    }

    for (i = 0; i < sizeof(milli) / sizeof(milli[0]); i++) {
        value(milli[i].text, &v);
        assert_int_equal(dg_json_number_milli(&v, &m), 0);

        if (m != milli[i].milli) {
            fail_msg("%s: milli %d, not %d", milli[i].text, (int) m,
                     (int) milli[i].milli);
        }
    }

    /* the overflow limit is DBL_MAX + ulp / 2, to the last digit */

    assert_int_equal(scan(
        "[179769313486231580793728971405303415079934132710037826936173778"
        "9804449682927647509466490179775872070963302864166928879109465555"
        "4785194040263065748867150582068190890200070838367627385484581771"
        "1531764475730270069855571366959622842914819860834936475292719074"
        "168444365510704342711559699508093042880177904174497791.9e0]"), 0);

    assert_int_equal(scan(
        "[0.1797693134862315807937289714053034150799341327100378269361737"
        "7898044496829276475094664901797758720709633028641669288791094655"
        "5547851940402630657488671505820681908902000708383676273854845817"
        "7115317644757302700698555713669596228429148198608349364752927190"
        "74168444365510704342711559699508093042880177904174497792e309]"), -1);

    assert_int_equal(scan("[0.00017976931348623157e312]"), 0);
    assert_int_equal(scan("[0.00017976931348623159e312]"), -1);
    assert_int_equal(scan("[0e99999999999999999999]"), 0);
}


static void
test_cursor(void **state)
{
    int              rc;
    dg_json_t        js, mark;
    dg_json_value_t  v, key;

    static const char  doc[] =
        "{\"a\": [1, {\"x\": [2, 3]}, \"s\"], \"b\": {\"c\": null}, "
        "\"d\": \"e\\n\", \"f\": true}";

    (void) state;

    dg_json_init(&js, doc, sizeof(doc) - 1);

    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_int_equal(v.type, DG_JSON_OBJECT);

    /* "a": walk the array, entering the object inside it */

    assert_int_equal(dg_json_member(&js, &key), 1);
    assert_true(dg_json_string_eq(&key, "a", 1));

    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_int_equal(v.type, DG_JSON_ARRAY);

    assert_int_equal(dg_json_element(&js), 1);
    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_int_equal(v.type, DG_JSON_NUMBER);
    assert_int_equal(v.integer, 1);

    assert_int_equal(dg_json_element(&js), 1);
    mark = js;

    assert_int_equal(dg_json_read(&js, &v), 0);
    assert_int_equal(v.type, DG_JSON_OBJECT);

    assert_int_equal(dg_json_element(&js), 1);
    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_true(dg_json_string_eq(&v, "s", 1));

    assert_int_equal(dg_json_element(&js), 0);

    /* a copy of the cursor reads the same value again, trusted or not */

    dg_json_trust(&mark);

    assert_int_equal(dg_json_next(&mark, &v), 0);
    assert_int_equal(v.type, DG_JSON_OBJECT);
    assert_int_equal(dg_json_member(&mark, &key), 1);
    assert_true(dg_json_string_eq(&key, "x", 1));
    assert_int_equal(dg_json_skip(&mark), 0);
    assert_int_equal(dg_json_leave(&mark), 0);
    assert_int_equal(dg_json_element(&mark), 1);
    assert_int_equal(dg_json_next(&mark, &v), 0);
    assert_true(dg_json_string_eq(&v, "s", 1));

    /* "b": skipped whole */

    assert_int_equal(dg_json_member(&js, &key), 1);
    assert_true(dg_json_string_eq(&key, "b", 1));
    assert_int_equal(dg_json_skip(&js), 0);

    /* "d": an escaped string */

    assert_int_equal(dg_json_member(&js, &key), 1);
    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_true(v.escaped);
    assert_true(dg_json_string_eq(&v, "e\n", 2));

    /* the rest of the object, then the end */

    assert_int_equal(dg_json_leave(&js), 0);
    assert_int_equal(dg_json_end(&js), 0);

    /* misuse fails, and the error sticks */

    dg_json_init(&js, "[1, 2]", 6);
    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_int_equal(dg_json_member(&js, &key), -1);
    assert_int_equal(dg_json_element(&js), -1);
    assert_int_equal(dg_json_next(&js, &v), -1);
    assert_int_equal(v.type, DG_JSON_ERROR);

    dg_json_init(&js, "{\"a\": 1}", 8);
    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_int_equal(dg_json_element(&js), -1);

    /* nothing to leave at the top level; an unclosed array never ends */

    dg_json_init(&js, "1", 1);
    assert_int_equal(dg_json_leave(&js), -1);

    dg_json_init(&js, "[1", 2);
    assert_int_equal(dg_json_next(&js, &v), 0);
    assert_int_equal(dg_json_end(&js), -1);

    rc = 0;
    dg_json_init(&js, "[1", 2);
    assert_int_equal(dg_json_next(&js, &v), 0);
    while ((rc = dg_json_element(&js)) == 1) {
        assert_int_equal(dg_json_skip(&js), 0);
    }
    assert_int_equal(rc, -1);

    /* an empty buffer, and no buffer at all */

    dg_json_init(&js, NULL, 0);
    assert_int_equal(dg_json_next(&js, &v), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_cursor),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
