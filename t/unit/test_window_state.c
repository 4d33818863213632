/*
 * Unit tests of src/dg_window_state.c on hand-built values: what is
 * refused, times rebuilt across the 2^32 wrap, the window's edge, a
 * clock behind the newest record, the shares.  t/50-ctl.t checks the
 * decoder against the real script.
 */

#include "dg_test.h"

#include "dg_window_state.h"


#define T_ROFF      (15 + 33 * 10)
#define T_WINDOW    60000


static void
t_put(unsigned char *p, uint64_t v, unsigned n)
{
    while (n-- > 0) {
        *p++ = (unsigned char) v;
        v >>= 8;
    }
}


/* a value with n records at times ts[] (ms), topic i % 3, flags */
static void
t_value(unsigned char *s, const uint64_t *ts, unsigned n, unsigned flags)
{
    unsigned        i;
    unsigned char  *r;

    memset(s, 0, DG_WS_SIZE);
    s[0] = DG_WS_VERSION;
    t_put(s + 1, n, 2);
    t_put(s + 3, n % DG_WS_RING, 2);
    t_put(s + 5, T_WINDOW / 32, 4);
    t_put(s + 9, n ? ts[n - 1] / (T_WINDOW / 32) : 0, 6);

    for (i = 0; i < n; i++) {
        r = s + T_ROFF + i * 29;
        t_put(r, ts[i] % 4294967296ULL, 4);
        t_put(r + 4, (i % 3) | (flags << 12), 2);
        t_put(r + 9, i < 2 ? 0xabcd : 0, 4);
        t_put(r + 17, 100 + i, 4);
    }
}


static void
test_refused(void **state)
{
    unsigned char       s[DG_WS_SIZE];
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    t_value(s, NULL, 0, 0);

    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE - 1, 1, 0,
                                            &err), -1);
    assert_non_null(strstr(err, "size"));

    s[0] = DG_WS_VERSION + 1;
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, 1, 0, &err),
                     -1);
    assert_non_null(strstr(err, "version"));

    /* a ring not full whose next slot is not n */
    t_value(s, NULL, 0, 0);
    t_put(s + 3, 5, 2);
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, 1, 0, &err),
                     -1);

    t_value(s, NULL, 0, 0);
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, 1, 0, &err),
                     0);
    assert_int_equal(ws.nrec, 0);
    assert_int_equal(ws.requests, 0);
    assert_int_equal(ws.window_ms, T_WINDOW);
}


static void
test_times_and_edge(void **state)
{
    unsigned char       s[DG_WS_SIZE];
    uint64_t            now, ts[4];
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    /* across the 2^32 wrap of the stored times */
    now = 5 * 4294967296ULL + 1000;
    ts[0] = now - 70000;            /* outside the window */
    ts[1] = now - 3000;             /* before the wrap */
    ts[2] = now - 1000;             /* at the wrap: 0 mod 2^32 */
    ts[3] = now - 10;

    t_value(s, ts, 4, 1);
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, now, 0,
                                            &err), 0);
    assert_int_equal(ws.n, 4);
    assert_int_equal(ws.nrec, 3);
    assert_true(ws.rec[0].ts == ts[1]);
    assert_true(ws.rec[1].ts == ts[2]);
    assert_true(ws.rec[2].ts == ts[3]);
    assert_int_equal(ws.rec[2].age_ms, 10);
    assert_int_equal(ws.rec[0].topic, 1);
    assert_int_equal(ws.rec[0].bytes, 101);
    assert_int_equal(ws.sample, 3);
    assert_int_equal(ws.topics, 3);
    assert_int_equal(ws.templates, 1);
    /* one head (0xabcd) on record 1 of the three: share 1/3 */
    assert_int_equal(ws.top_template_share_milli, 333);
    assert_int_equal(ws.single_turn_share_milli, 1000);
    assert_int_equal(ws.cot_share_milli, 0);
    assert_int_equal(ws.gap_mean_ms, (2000 + 990) / 2);
    assert_int_equal(ws.bytes, 101 + 102 + 103);

    /* a longer window given: the oldest one is inside */
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, now, 80000,
                                            &err), 0);
    assert_int_equal(ws.nrec, 4);

    /* Redis's clock behind the newest record: it is not dropped */
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, now - 500,
                                            0, &err), 0);
    assert_int_equal(ws.nrec, 3);
    assert_int_equal(ws.rec[2].age_ms, 0);
}


static void
test_flags(void **state)
{
    unsigned char       s[DG_WS_SIZE];
    uint64_t            ts[2] = { 1000000, 1000100 };
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    /* flags 2: reasoning, not single-turn */
    t_value(s, ts, 2, 2);
    assert_int_equal(dg_window_state_decode(&ws, s, DG_WS_SIZE, 1000200, 0,
                                            &err), 0);
    assert_int_equal(ws.single_turn_share_milli, 0);
    assert_int_equal(ws.cot_share_milli, 1000);
    assert_false(ws.rec[0].single_turn);
    assert_true(ws.rec[0].cot);
    assert_int_equal(ws.gap_cv_milli, 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_times_and_edge),
        cmocka_unit_test(test_flags),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
