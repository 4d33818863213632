/* unit tests: hash slots, routing keys, redirections, CLUSTER SLOTS */

#include "dg_test.h"

#include "dg_test_resp.h"

#include "dg_cluster.h"


static void
test_slot(void **state)
{
    (void) state;

    /* values Redis's CLUSTER KEYSLOT gives */
    assert_int_equal(dg_slot("foo", 3), 12182);
    assert_int_equal(dg_slot("bar", 3), 5061);
    assert_int_equal(dg_slot("123456789", 9), 0x31c3 & 16383);

    /* the hash tag decides, wherever it is */
    assert_int_equal(dg_slot("dg:{0123456789abcdef}:w", 23),
                     dg_slot("0123456789abcdef", 16));
    assert_int_equal(dg_slot("dg:{0123456789abcdef}:s", 23),
                     dg_slot("x{0123456789abcdef}", 19));

    /* an empty tag, or none closed: the whole key */
    assert_int_equal(dg_slot("a{}b", 4), dg_slot("a{}b", 4));
    assert_int_not_equal(dg_slot("a{}b", 4), dg_slot("", 0));
    assert_int_equal(dg_slot("{foo", 4), dg_slot("{foo", 4));
    assert_int_not_equal(dg_slot("{foo", 4), dg_slot("foo", 3));

    /* only the first tag counts */
    assert_int_equal(dg_slot("{foo}{bar}", 10), 12182);
}


static void
test_cmd_key(void **state)
{
    size_t       len;
    const char  *k;
    const char  *eval[] = { "EVALSHA", "abc", "2", "dg:{k}:w", "dg:{k}:s" };
    size_t       evallen[] = { 7, 3, 1, 8, 8 };
    const char  *nokey[] = { "EVAL", "return 1", "0", "x" };
    size_t       nokeylen[] = { 4, 8, 1, 1 };
    const char  *get[] = { "get", "dg:{k}:w" };
    size_t       getlen[] = { 3, 8 };
    const char  *auth[] = { "AUTH", "pw" };
    size_t       authlen[] = { 4, 2 };

    (void) state;

    k = dg_cmd_key(5, eval, evallen, &len);
    assert_non_null(k);
    assert_int_equal(len, 8);
    assert_memory_equal(k, "dg:{k}:w", 8);

    assert_null(dg_cmd_key(4, nokey, nokeylen, &len));

    k = dg_cmd_key(2, get, getlen, &len);
    assert_non_null(k);
    assert_memory_equal(k, "dg:{k}:w", 8);

    assert_null(dg_cmd_key(2, auth, authlen, &len));
    assert_null(dg_cmd_key(1, get, getlen, &len));
}


static void
test_redirect(void **state)
{
    dg_redirect_t  rd;
    const char    *s;

    (void) state;

    s = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_MOVED);
    assert_int_equal(rd.slot, 3999);
    assert_string_equal(rd.addr, "127.0.0.1:6381");

    s = "ASK 16383 10.0.0.7:7000";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ASK);
    assert_int_equal(rd.slot, 16383);
    assert_string_equal(rd.addr, "10.0.0.7:7000");

    s = "NOSCRIPT No matching script. Please use EVAL.";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd),
                     DG_REPLY_NOSCRIPT);

    s = "TRYAGAIN Multiple keys request during rehashing of slot";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd),
                     DG_REPLY_TRYAGAIN);

    s = "CLUSTERDOWN The cluster is down";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd),
                     DG_REPLY_CLUSTERDOWN);

    /* malformed redirections are plain errors: never followed */
    s = "MOVED 16384 127.0.0.1:6381";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ERROR);
    s = "MOVED x 127.0.0.1:6381";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ERROR);
    s = "MOVED 12";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ERROR);
    s = "ASK 12 nowhere";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ERROR);
    s = "ASK 12 1111111111111111111111111111111111"
        "111111111111111111111111111111111111:1";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ERROR);
    s = "ERR wrong number of arguments";
    assert_int_equal(dg_reply_redirect(s, strlen(s), &rd), DG_REPLY_ERROR);
    assert_int_equal(dg_reply_redirect("MOV", 3, &rd), DG_REPLY_ERROR);
}


static void
test_slots(void **state)
{
    int               n;
    redisReply       *r;
    dg_slot_range_t   ranges[4];

    (void) state;

    r = t_resp_s("*2\r\n"
              "*4\r\n:0\r\n:5460\r\n"
              "*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nid1\r\n"
              "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\nid4\r\n"
              "*3\r\n:5461\r\n:16383\r\n"
              "*2\r\n$0\r\n\r\n:7001\r\n");

    n = dg_cluster_slots(r, "127.0.0.1:7001", ranges, 4);
    assert_int_equal(n, 2);
    assert_int_equal(ranges[0].first, 0);
    assert_int_equal(ranges[0].last, 5460);
    assert_string_equal(ranges[0].addr, "127.0.0.1:7000");
    assert_int_equal(ranges[1].first, 5461);
    assert_int_equal(ranges[1].last, 16383);
    assert_string_equal(ranges[1].addr, "127.0.0.1:7001");

    /* at most max ranges */
    assert_int_equal(dg_cluster_slots(r, "127.0.0.1:7001", ranges, 1), 1);
    freeReplyObject(r);

    /* malformed: a range backwards, a slot too high, no node */
    r = t_resp_s("*1\r\n*3\r\n:10\r\n:5\r\n*2\r\n$1\r\na\r\n:1\r\n");
    assert_int_equal(dg_cluster_slots(r, NULL, ranges, 4), -1);
    freeReplyObject(r);

    r = t_resp_s("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n");
    assert_int_equal(dg_cluster_slots(r, NULL, ranges, 4), -1);
    freeReplyObject(r);

    r = t_resp_s("*1\r\n*2\r\n:0\r\n:1\r\n");
    assert_int_equal(dg_cluster_slots(r, NULL, ranges, 4), -1);
    freeReplyObject(r);

    r = t_resp_s("-ERR This instance has cluster support disabled\r\n");
    assert_int_equal(dg_cluster_slots(r, NULL, ranges, 4), -1);
    freeReplyObject(r);

    /* an address of its own unknown, and no self to take */
    r = t_resp_s("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:1\r\n");
    assert_int_equal(dg_cluster_slots(r, NULL, ranges, 4), -1);
    freeReplyObject(r);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot),
        cmocka_unit_test(test_cmd_key),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_slots),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
