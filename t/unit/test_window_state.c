/*
 * Unit tests of src/dg_window_state.c on hand-built values (the layout
 * of doc/redis-keys.md, "The window value", built here as
 * src/dg_window.lua writes it): what is refused, times rebuilt across
 * the 2^24 wrap, the window's edge, a clock behind the newest record,
 * the record fields and the shares, a ring that wrapped.  t/50-ctl.t
 * checks the CLI against the real script.
 */

#include "dg_test.h"

#include "dg_window_state.h"
#include "dg_test_window.h"


#define T_WINDOW    60000


typedef struct {
    unsigned char       v[DG_WIN_SIZE];
} t_win_t;


static void
t_init(t_win_t *t)
{
    memset(t, 0, sizeof(*t));
    t->v[0] = DG_WIN_VERSION;
    t_put(t->v + 3, (T_WINDOW + DG_WIN_SUBW - 1) / DG_WIN_SUBW, 4);
}


/* one request at now (ms), as the script adds it; tu is 1 ms here */
static void
t_add(t_win_t *t, uint64_t now, unsigned topic, unsigned head,
    unsigned tail, unsigned flags, unsigned prov, unsigned sent,
    unsigned opening, uint64_t bytes)
{
    unsigned        n, nxt;
    uint64_t        w;
    unsigned char  *rec;

    n = t->v[1];
    nxt = t->v[2];
    w = t_get(t->v + 3, 4);

    t_win_count(t->v, now / w, bytes);

    rec = t->v + DG_WIN_ROFF + nxt * DG_WIN_RSZ;
    t_put(rec, now % 16777216, 3);
    t_put(rec + 3, topic | flags << 12 | prov << 14, 2);
    t_put(rec + 5, head | tail << 12, 3);
    t_put(rec + 8, sent, 2);
    t_put(rec + 10, opening, 2);

    t->v[1] = (unsigned char) (n < DG_WIN_RING ? n + 1 : n);
    t->v[2] = (unsigned char) ((nxt + 1) % DG_WIN_RING);
    t_put(t->v + 7, now, 6);
}


static int
t_decode(dg_window_state_t *ws, t_win_t *t, uint64_t now, uint64_t window,
    const char **err)
{
    return dg_window_state_decode(ws, t->v, sizeof(t->v), now, window, err);
}


static void
test_refused(void **state)
{
    t_win_t             t;
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    t_init(&t);
    t_add(&t, 1000000, 1, 0, 0, 0, 0, 1, 1, 10);

    assert_int_equal(dg_window_state_decode(&ws, t.v, DG_WIN_SIZE - 1,
                                            1000000, 0, &err), -1);
    assert_non_null(strstr(err, "size"));

    /* the old layout's size */
    assert_int_equal(dg_window_state_decode(&ws, t.v, 4057, 1000000, 0,
                                            &err), -1);
    assert_non_null(strstr(err, "size"));

    t.v[0] = DG_WIN_VERSION - 1;
    assert_int_equal(t_decode(&ws, &t, 1000000, 0, &err), -1);
    assert_non_null(strstr(err, "version"));

    /* a ring not full whose next slot is not n */
    t.v[0] = DG_WIN_VERSION;
    t.v[2] = 5;
    assert_int_equal(t_decode(&ws, &t, 1000000, 0, &err), -1);
    assert_non_null(strstr(err, "inconsistent"));

    /* no record: the script never writes that */
    t_init(&t);
    assert_int_equal(t_decode(&ws, &t, 1000000, 0, &err), -1);

    t_add(&t, 1000000, 1, 0, 0, 0, 0, 1, 1, 10);
    assert_int_equal(t_decode(&ws, &t, 1000000, 0, &err), 0);
    assert_int_equal(ws.version, DG_WIN_VERSION);
    assert_int_equal(ws.nrec, 1);
    assert_int_equal(ws.requests, 1);
    assert_int_equal(ws.bytes, 10);
    assert_int_equal(ws.window_ms, T_WINDOW);
    assert_int_equal(ws.subwindow_ms, T_WINDOW / 16);

    /* every record older than the window: decoded, an empty profile */
    assert_int_equal(t_decode(&ws, &t, 1000000 + T_WINDOW, 0, &err), 0);
    assert_int_equal(ws.nrec, 0);
    assert_int_equal(ws.requests, 0);
    assert_int_equal(ws.sample, 0);
}


static void
test_times_and_edge(void **state)
{
    unsigned            i;
    uint64_t            now, ts[4];
    t_win_t             t;
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    /* across the 2^24 wrap of the stored times */
    now = 5 * 16777216ULL + 1000;
    ts[0] = now - 70000;            /* outside the window */
    ts[1] = now - 3000;             /* before the wrap */
    ts[2] = now - 1000;             /* at the wrap: 0 mod 2^24 */
    ts[3] = now - 10;

    t_init(&t);

    for (i = 0; i < 4; i++) {
        t_add(&t, ts[i], i % 3, i < 2 ? 0xabc : 0, 0, 0, 0, i + 1, i + 1,
              100 + i);
    }

    assert_int_equal(t_decode(&ws, &t, now, 0, &err), 0);
    assert_int_equal(ws.n, 4);
    assert_int_equal(ws.next, 4);
    assert_true(ws.newest_ms == ts[3]);
    assert_int_equal(ws.nrec, 3);
    assert_true(ws.rec[0].ts == ts[1]);
    assert_true(ws.rec[1].ts == ts[2]);
    assert_true(ws.rec[2].ts == ts[3]);
    assert_int_equal(ws.rec[2].age_ms, 10);
    assert_int_equal(ws.rec[0].topic, 1);
    assert_int_equal(ws.rec[0].head, 0xabc);
    assert_int_equal(ws.rec[1].head, 0);
    assert_int_equal(ws.rec[0].sent, 2);
    assert_int_equal(ws.sample, 3);
    assert_int_equal(ws.requests, 3);
    assert_int_equal(ws.topics, 3);
    assert_int_equal(ws.templates, 1);
    /* one head (0xabc) on record 1 of the three: share 1/3 */
    assert_int_equal(ws.top_template_share_milli, 333);
    assert_int_equal(ws.single_turn_share_milli, 1000);
    assert_int_equal(ws.cot_share_milli, 0);
    assert_int_equal(ws.gap_mean_ms, (2000 + 990) / 2);
    /* bytes only in the sub-window counters */
    assert_int_equal(ws.bytes, 101 + 102 + 103);

    /* a longer window given: the oldest one is inside */
    assert_int_equal(t_decode(&ws, &t, now, 80000, &err), 0);
    assert_int_equal(ws.nrec, 4);
    assert_int_equal(ws.window_ms, 80000);

    /* Redis's clock behind the newest record: it is not dropped */
    assert_int_equal(t_decode(&ws, &t, now - 500, 0, &err), 0);
    assert_int_equal(ws.nrec, 3);
    assert_int_equal(ws.rec[2].age_ms, 0);
}


static void
test_fields(void **state)
{
    t_win_t             t;
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    t_init(&t);

    /* a new conversation; its follow-up, scripted, with reasoning; a
     * fabricated history; a prefix */
    t_add(&t, 1000000, 7, 0x123, 0xfed, 0, DG_PROVENANCE_NONE, 0x1111,
          0x1111, 50);
    t_add(&t, 1000100, 7, 0x123, 0xfed, 1 | 2, DG_PROVENANCE_VERIFIED,
          0x2222, 0x1111, 60);
    t_add(&t, 1000200, 4095, 0, 0, 0, DG_PROVENANCE_FABRICATED, 0xffff,
          0x3333, 70);
    t_add(&t, 1000300, 9, 0, 0, 0, DG_PROVENANCE_PREFIX, 0x4444, 0x3333,
          80);

    assert_int_equal(t_decode(&ws, &t, 1000400, 0, &err), 0);
    assert_int_equal(ws.nrec, 4);

    assert_int_equal(ws.rec[0].provenance, DG_PROVENANCE_NONE);
    assert_true(ws.rec[0].single_turn);
    assert_false(ws.rec[0].scripted);
    assert_false(ws.rec[0].cot);
    assert_int_equal(ws.rec[0].head, 0x123);
    assert_int_equal(ws.rec[0].tail, 0xfed);
    assert_int_equal(ws.rec[0].sent, 0x1111);
    assert_int_equal(ws.rec[0].opening, 0x1111);

    assert_int_equal(ws.rec[1].provenance, DG_PROVENANCE_VERIFIED);
    assert_false(ws.rec[1].single_turn);
    assert_true(ws.rec[1].scripted);
    assert_true(ws.rec[1].cot);
    assert_int_equal(ws.rec[1].topic, 7);
    assert_int_equal(ws.rec[1].sent, 0x2222);
    assert_int_equal(ws.rec[1].opening, 0x1111);

    assert_int_equal(ws.rec[2].provenance, DG_PROVENANCE_FABRICATED);
    assert_true(ws.rec[2].single_turn);
    assert_int_equal(ws.rec[2].topic, 4095);
    assert_int_equal(ws.rec[2].sent, 0xffff);

    assert_int_equal(ws.rec[3].provenance, DG_PROVENANCE_PREFIX);
    assert_false(ws.rec[3].single_turn);

    assert_int_equal(ws.single_turn_share_milli, 500);
    assert_int_equal(ws.cot_share_milli, 250);
    assert_int_equal(ws.verified_milli, 250);
    assert_int_equal(ws.fabricated_milli, 250);
    assert_int_equal(ws.prefix_milli, 250);
    assert_int_equal(ws.scripted_milli, 250);
    assert_int_equal(ws.templates, 1);
    assert_int_equal(ws.top_template_share_milli, 500);
    assert_int_equal(ws.topics, 3);
    assert_int_equal(ws.gap_mean_ms, 100);
    assert_int_equal(ws.gap_cv_milli, 0);
    assert_int_equal(ws.bytes, 50 + 60 + 70 + 80);
}


static void
test_wrapped(void **state)
{
    unsigned            i;
    uint64_t            t0, w;
    t_win_t             t;
    const char         *err;
    dg_window_state_t   ws;

    (void) state;

    /* 130 requests 100 ms apart from the start of a sub-window: the ring
     * dropped the first two, which the counters still hold */
    w = (T_WINDOW + DG_WIN_SUBW - 1) / DG_WIN_SUBW;
    t0 = 1000 * w;

    t_init(&t);

    for (i = 0; i < 130; i++) {
        t_add(&t, t0 + i * 100, i % 40, 0, 0, 0, 0, i + 1, i + 1, 10);
    }

    assert_int_equal(t_decode(&ws, &t, t0 + 13000, 0, &err), 0);
    assert_int_equal(ws.n, DG_WS_RING);
    assert_int_equal(ws.next, 2);
    assert_int_equal(ws.nrec, DG_WS_RING);
    assert_true(ws.rec[0].ts == t0 + 200);
    assert_int_equal(ws.rec[0].sent, 3);
    assert_true(ws.rec[DG_WS_RING - 1].ts == t0 + 129 * 100);
    assert_int_equal(ws.rec[DG_WS_RING - 1].sent, 130);
    assert_int_equal(ws.sample, DG_WS_RING);
    assert_int_equal(ws.requests, 130);
    assert_int_equal(ws.bytes, 1300);
    assert_int_equal(ws.topics, 40);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_times_and_edge),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_wrapped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
