/* unit tests: a request's replies, as hiredis parses them, into a profile */

#include "dg_test.h"

#include "dg_test_resp.h"

#include "dg_reply.h"


#define T_W         60000
#define T_NOW       INT64_C(1700000000000)


static void
put(unsigned char *p, uint64_t v, unsigned bytes)
{
    unsigned  i;

    for (i = 0; i < bytes; i++) {
        p[i] = (unsigned char) (v >> (8 * i));
    }
}


/* a window of one record, written at T_NOW; and the script's reply */

static void
window_one(unsigned char *v, unsigned char *script)
{
    unsigned  w;

    w = (T_W + DG_WIN_SUBW - 1) / DG_WIN_SUBW;

    memset(v, 0, DG_WIN_SIZE);
    v[0] = DG_WIN_VERSION;
    v[1] = 1;                               /* records */
    v[2] = 1;                               /* next slot */
    put(v + 3, w, 4);
    put(v + 7, (uint64_t) T_NOW, 6);
    put(v + DG_WIN_HDR, 1, 4);              /* the newest sub-window: one
                                               request, 0 bytes */
    put(v + DG_WIN_ROFF, (uint64_t) T_NOW % 16777216, 3);
    put(v + DG_WIN_ROFF + 3, 5, 2);         /* topic 5, one-shot */
    put(v + DG_WIN_ROFF + 8, 77, 2);        /* sent */

    memset(script, 0, DG_WREPLY_LEN);
    put(script, (uint64_t) T_NOW, 6);
}


static void
test_window(void **state)
{
    dg_profile_t    p;
    redisReply     *s, *g, *bad, *err;
    int64_t         v[DG_WREPLY_N];
    char            value[DG_WIN_SIZE];
    unsigned char   w[DG_WIN_SIZE], script[DG_WREPLY_LEN];

    (void) state;

    window_one(w, script);
    s = t_bulk(script, sizeof(script));
    g = t_bulk(w, sizeof(w));

    memset(&p, 0, sizeof(p));
    assert_int_equal(dg_reply_window(&p, T_W, s, g, value, v), 0);
    assert_memory_equal(value, w, DG_WIN_SIZE);
    assert_true(v[DG_WREPLY_NOW_MS] == T_NOW);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 1);

    /* either reply missing, an error, or the wrong shape: no profile */
    err = t_resp_s("-NOSCRIPT No matching script\r\n");
    bad = t_bulk(w, sizeof(w) - 1);

    memset(&p, 0, sizeof(p));
    assert_int_equal(dg_reply_window(&p, T_W, NULL, g, value, v), -1);
    assert_int_equal(dg_reply_window(&p, T_W, s, NULL, value, v), -1);
    assert_int_equal(dg_reply_window(&p, T_W, err, g, value, v), -1);
    assert_int_equal(dg_reply_window(&p, T_W, s, err, value, v), -1);
    assert_int_equal(dg_reply_window(&p, T_W, s, bad, value, v), -1);
    assert_int_equal(dg_reply_window(&p, T_W, g, g, value, v), -1);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 0);

    freeReplyObject(s);
    freeReplyObject(g);
    freeReplyObject(err);
    freeReplyObject(bad);
}


static void
test_fanout(void **state)
{
    dg_profile_t   p;
    redisReply    *r;

    (void) state;

    memset(&p, 0, sizeof(p));

    r = t_resp_s("*2\r\n:12\r\n:3\r\n");
    assert_int_equal(dg_reply_fanout(&p, DG_FANOUT_HEAD, r), 0);
    assert_int_equal(p.template_keys, 12);
    freeReplyObject(r);

    /* a count Redis did not give as an integer is no count */
    r = t_resp_s("*2\r\n$2\r\n40\r\n:3\r\n");
    assert_int_equal(dg_reply_fanout(&p, DG_FANOUT_SUBNET, r), 0);
    assert_int_equal(p.subnet_keys, 0);
    freeReplyObject(r);

    r = t_resp_s("*0\r\n");
    assert_int_equal(dg_reply_fanout(&p, DG_FANOUT_HEAD, r), -1);
    freeReplyObject(r);

    r = t_resp_s("-ERR oom\r\n");
    assert_int_equal(dg_reply_fanout(&p, DG_FANOUT_HEAD, r), -1);
    freeReplyObject(r);

    assert_int_equal(dg_reply_fanout(&p, DG_FANOUT_HEAD, NULL), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_fanout),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
