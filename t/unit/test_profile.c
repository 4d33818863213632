/*
 * Unit tests of src/dg_profile.c: the window value decoded and its
 * profile computed in the gateway.  The values are built here the way
 * src/dg_window.lua writes them (doc/redis-keys.md, "The window value");
 * t/10-window-script.t checks the script and this decoder together
 * against a real Redis.
 */

#include "dg_test.h"

#include <math.h>

#include "dg_profile.h"
#include "dg_test_window.h"


#define T_W         60000
#define T_T0        INT64_C(1700000000000)


typedef struct {
    unsigned char       v[DG_WIN_SIZE];
    uint64_t            window;
    int64_t             now;
} t_win_t;


static void
t_init(t_win_t *t, uint64_t window)
{
    memset(t, 0, sizeof(*t));
    t->window = window;
    t->v[0] = DG_WIN_VERSION;
    t_put(t->v + 3, (window + DG_WIN_SUBW - 1) / DG_WIN_SUBW, 4);
}


/* one request, as the script adds it (provenance given) */
static void
t_add(t_win_t *t, int64_t now, unsigned topic, unsigned head, unsigned tail,
    unsigned flags, unsigned prov, uint64_t bytes)
{
    unsigned        n, nxt, slot;
    uint64_t        w, tu;
    unsigned char  *rec;

    n = t->v[1];
    nxt = t->v[2];
    w = t_get(t->v + 3, 4);
    tu = (t->window + 4194303) / 4194304;

    t_win_count(t->v, (uint64_t) now / w, bytes);

    slot = nxt;
    rec = t->v + DG_WIN_ROFF + slot * DG_WIN_RSZ;

    if (n < DG_WIN_RING) {
        n++;
    }

    t_put(rec, ((uint64_t) now / tu) % 16777216, 3);
    t_put(rec + 3, topic | flags << 12 | prov << 14, 2);
    t_put(rec + 5, head | tail << 12, 3);
    t_put(rec + 8, 0, 4);

    t->v[1] = (unsigned char) n;
    t->v[2] = (unsigned char) ((nxt + 1) % DG_WIN_RING);
    t_put(t->v + 7, (uint64_t) now, 6);
    t->now = now;
}


static int
t_profile(t_win_t *t, dg_profile_t *p)
{
    memset(p, 0, sizeof(*p));

    return dg_profile_compute(p, (const char *) t->v, sizeof(t->v),
                              t->window, t->now);
}


static void
test_fold(void **state)
{
    uint32_t  i, x;

    (void) state;

    assert_int_equal(dg_fold12(0), 0);
    assert_int_equal(dg_fold16(0), 0);
    assert_int_equal(dg_fold12(0xabcd), 0xbc7);
    assert_int_equal(dg_fold16(0x12345678), 0x444c);

    /* an opening is folded another way than the same text sent */
    assert_int_equal(dg_fold16_opening(0), 0);
    assert_true(dg_fold16_opening(0x12345678) != dg_fold16(0x12345678));

    /* nothing but 0 becomes 0, and the values fit */
    assert_int_equal(dg_fold12(0x1001), 1);
    assert_int_equal(dg_fold16(0x10001), 1);

    for (i = 1, x = 1; i < 100000; i++, x = x * 2654435761u + 1) {
        assert_true(dg_fold12(x) > 0 && dg_fold12(x) < 4096);
        assert_true(dg_fold16(x) > 0 && dg_fold16(x) < 65536);
        assert_true(dg_fold16_opening(x) > 0
                    && dg_fold16_opening(x) < 65536);
    }
}


/* the first case of t/10-window-script.t, without Redis */
static void
test_ten_requests(void **state)
{
    int           i;
    t_win_t       t;
    dg_profile_t  p;

    (void) state;

    t_init(&t, T_W);

    for (i = 0; i < 10; i++) {
        /* one-shot: provenance none (or fabricated); the others verified */
        t_add(&t, T_T0 + 100 * i, i % 5, i % 2 ? 1 : 2, i % 2 ? 3 : 4,
              i >= 7 ? 2 : 0, i < 4 ? DG_PROVENANCE_NONE
                                    : DG_PROVENANCE_VERIFIED, 100 + i);
    }

    assert_int_equal(t_profile(&t, &p), 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 10);
    assert_int_equal(p.v[DG_PROF_SAMPLE], 10);
    assert_int_equal(p.v[DG_PROF_TOPICS], 5);
    assert_int_equal(p.v[DG_PROF_TOPIC_ENTROPY_MILLI], 2322);
    assert_int_equal(p.v[DG_PROF_TEMPLATES], 2);
    assert_int_equal(p.v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI], 500);
    assert_int_equal(p.v[DG_PROF_SINGLE_TURN_SHARE_MILLI], 400);
    assert_int_equal(p.v[DG_PROF_COT_SHARE_MILLI], 300);
    assert_int_equal(p.v[DG_PROF_GAP_MEAN_MS], 100);
    assert_int_equal(p.v[DG_PROF_GAP_CV_MILLI], 0);
    assert_int_equal(p.v[DG_PROF_BYTES], 1045);
}


static void
test_provenance_shares(void **state)
{
    t_win_t       t;
    dg_profile_t  p;

    (void) state;

    t_init(&t, T_W);
    t_add(&t, T_T0, 1, 0, 0, 1, DG_PROVENANCE_NONE, 10);
    t_add(&t, T_T0 + 10, 2, 0, 0, 0, DG_PROVENANCE_VERIFIED, 10);
    t_add(&t, T_T0 + 20, 3, 0, 0, 1, DG_PROVENANCE_FABRICATED, 10);
    t_add(&t, T_T0 + 30, 4, 0, 0, 1, DG_PROVENANCE_FABRICATED, 10);
    t_add(&t, T_T0 + 40, 5, 0, 0, 0, DG_PROVENANCE_PREFIX, 10);

    assert_int_equal(t_profile(&t, &p), 0);
    assert_int_equal(p.verified_milli, 200);
    assert_int_equal(p.fabricated_milli, 400);
    assert_int_equal(p.prefix_milli, 200);
    assert_int_equal(p.v[DG_PROF_SINGLE_TURN_SHARE_MILLI], 600);
}


static void
test_slide(void **state)
{
    int           i;
    t_win_t       t;
    dg_profile_t  p;

    (void) state;

    /* t/10's "the window slides": window 2 s */
    t_init(&t, 2000);

    for (i = 0; i < 5; i++) {
        t_add(&t, T_T0 + 100 * i, i, 0, 0, 0, 0, 10);
    }

    t_add(&t, T_T0 + 1500, 9, 0, 0, 0, 0, 20);
    t_add(&t, T_T0 + 2350, 9, 0, 0, 0, 0, 20);

    assert_int_equal(t_profile(&t, &p), 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 3);
    assert_int_equal(p.v[DG_PROF_SAMPLE], 3);
    assert_int_equal(p.v[DG_PROF_TOPICS], 2);
    assert_int_equal(p.v[DG_PROF_BYTES], 50);
    assert_int_equal(p.v[DG_PROF_GAP_MEAN_MS], 975);

    /* later, with no new request: only the newest is left */
    t.now = T_T0 + 4300;
    assert_int_equal(t_profile(&t, &p), 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 1);
    assert_int_equal(p.v[DG_PROF_BYTES], 20);
    assert_int_equal(p.v[DG_PROF_TOPIC_ENTROPY_MILLI], 0);

    /* a request exactly one window old is out */
    t_init(&t, 1000);
    t_add(&t, T_T0, 1, 0, 0, 0, 0, 1);
    t_add(&t, T_T0 + 999, 2, 0, 0, 0, 0, 1);
    assert_int_equal(t_profile(&t, &p), 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 2);
    t_add(&t, T_T0 + 1000, 3, 0, 0, 0, 0, 1);
    assert_int_equal(t_profile(&t, &p), 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 2);
}


/* more requests than the ring: the sub-windows count the rest */
static void
test_beyond_ring(void **state)
{
    int           i;
    int64_t       exact, err, worst;
    t_win_t       t;
    dg_profile_t  p;

    (void) state;

    t_init(&t, T_W);
    worst = 0;

    for (i = 0; i < 3000; i++) {
        t_add(&t, T_T0 + 30 * i, i % 4096, 0, 0, 0, 0, 10);
        assert_int_equal(t_profile(&t, &p), 0);

        exact = i < 2000 ? i + 1 : 2000;
        err = llabs(p.v[DG_PROF_REQUESTS] - exact);

        if (err > worst) {
            worst = err;
        }

        if (i < 128) {
            assert_int_equal(p.v[DG_PROF_REQUESTS], exact);
            assert_int_equal(p.v[DG_PROF_BYTES], 10 * exact);
        }

        /* bytes follow the count: every request 10 bytes */
        assert_true(llabs(p.v[DG_PROF_BYTES] - 10 * p.v[DG_PROF_REQUESTS])
                    <= 10);
    }

    /* one sub-window is 125 requests */
    assert_true(worst <= 125);
    assert_int_equal(p.v[DG_PROF_SAMPLE], 128);
    assert_int_equal(p.v[DG_PROF_TOPICS], 128);
    assert_int_equal(p.v[DG_PROF_TOPIC_ENTROPY_MILLI], 7000);
    assert_int_equal(p.v[DG_PROF_GAP_MEAN_MS], 30);
}


static void
test_invalid(void **state)
{
    int64_t       v[DG_WREPLY_N];
    t_win_t       t;
    dg_profile_t  p;

    (void) state;

    t_init(&t, T_W);

    /* no record */
    assert_int_equal(t_profile(&t, &p), -1);

    t_add(&t, T_T0, 1, 0, 0, 0, 0, 1);
    assert_int_equal(t_profile(&t, &p), 0);

    assert_int_equal(dg_profile_compute(&p, (const char *) t.v,
                                        sizeof(t.v) - 1, T_W, T_T0), -1);
    assert_int_equal(dg_profile_compute(&p, NULL, 0, T_W, T_T0), -1);
    assert_int_equal(dg_profile_compute(&p, (const char *) t.v,
                                        sizeof(t.v), 0, T_T0), -1);

    t.v[0] = DG_WIN_VERSION + 1;
    assert_int_equal(t_profile(&t, &p), -1);
    t.v[0] = DG_WIN_VERSION;

    t.v[2] = 5;                         /* next must follow n */
    assert_int_equal(t_profile(&t, &p), -1);
    t.v[2] = 1;

    t.v[1] = DG_WIN_RING + 1;
    assert_int_equal(t_profile(&t, &p), -1);
    t.v[1] = 1;

    /* the reply: the value and seven integers */
    memset(v, 0, sizeof(v));
    v[DG_WREPLY_NOW_MS] = T_T0;
    v[DG_WREPLY_PROVENANCE] = 2;
    v[DG_WREPLY_STATE] = 1;
    v[DG_WREPLY_PENALTY_MS] = 500;
    v[DG_WREPLY_REFUSED] = 1;
    v[DG_WREPLY_RETRY_MS] = 250;
    v[DG_WREPLY_REMAINING] = 0;

    memset(&p, 0, sizeof(p));
    p.template_keys = 7;
    assert_int_equal(dg_window_reply(&p, T_W, (const char *) t.v,
                                     sizeof(t.v), v, DG_WREPLY_N - 1), -1);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 0);
    assert_int_equal(dg_window_reply(&p, T_W, (const char *) t.v,
                                     sizeof(t.v) - 1, v, DG_WREPLY_N), -1);
    assert_int_equal(dg_window_reply(&p, T_W, (const char *) t.v,
                                     sizeof(t.v), v, DG_WREPLY_N), 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 1);
    assert_int_equal(p.now_ms, T_T0);
    assert_int_equal(p.provenance, 2);
    assert_int_equal(p.state, 1);
    assert_int_equal(p.penalty_ms, 500);
    assert_int_equal(p.refused, 1);
    assert_int_equal(p.retry_ms, 250);
    /* the fan-out replies may have come first: kept */
    assert_int_equal(p.template_keys, 7);
}


/* random bytes never crash the decoder, nor give counts out of range */
static void
test_random_values(void **state)
{
    int           i, j, rc;
    t_win_t       t;
    dg_profile_t  p;

    (void) state;

    srand(7);

    for (i = 0; i < 2000; i++) {
        for (j = 0; j < DG_WIN_SIZE; j++) {
            t.v[j] = (unsigned char) rand();
        }

        t.v[0] = DG_WIN_VERSION;
        t.v[1] = (unsigned char) (1 + rand() % DG_WIN_RING);
        t.v[2] = t.v[1] == DG_WIN_RING ? (unsigned char) (rand() % 128)
                                       : t.v[1];
        t.window = 1 + (uint64_t) rand() % 100000000;
        t.now = T_T0 + rand();

        rc = t_profile(&t, &p);

        if (rc == 0) {
            assert_true(p.v[DG_PROF_SAMPLE] >= 1
                        && p.v[DG_PROF_SAMPLE] <= DG_WIN_RING);
            assert_true(p.v[DG_PROF_REQUESTS] >= p.v[DG_PROF_SAMPLE]);
            assert_true(p.v[DG_PROF_TOPICS] <= p.v[DG_PROF_SAMPLE]);
            assert_true(p.v[DG_PROF_SINGLE_TURN_SHARE_MILLI] <= 1000);
        }
    }
}


static void
test_sent_template(void **state)
{
    t_win_t  t;

    (void) state;

    t_init(&t, T_W);
    t_add(&t, T_T0, 1, 0x111, 0x222, 1, DG_PROVENANCE_NONE, 1);
    t_add(&t, T_T0 + 10, 1, 0x333, 0x444, 0, DG_PROVENANCE_VERIFIED, 1);
    t_add(&t, T_T0 + 20, 1, 0x555, 0x666, 1, DG_PROVENANCE_NONE, 1);

#define T_SENT(which, fp, since)                                             \
    dg_profile_sent_template((const char *) t.v, sizeof(t.v), t.window,     \
                             t.now, 2, which, fp, since)

    assert_true(T_SENT(DG_FANOUT_HEAD, 0x111, T_T0));
    assert_true(T_SENT(DG_FANOUT_TAIL, 0x222, T_T0));
    assert_false(T_SENT(DG_FANOUT_HEAD, 0x222, T_T0));
    /* too old */
    assert_false(T_SENT(DG_FANOUT_HEAD, 0x111, T_T0 + 1));
    /* a request with a history is not counted in the fan-out */
    assert_false(T_SENT(DG_FANOUT_HEAD, 0x333, T_T0));
    /* the request's own record (slot 2) */
    assert_false(T_SENT(DG_FANOUT_HEAD, 0x555, T_T0));
    assert_false(T_SENT(DG_FANOUT_HEAD, 0, T_T0));
}


static void
test_unpack(void **state)
{
    int64_t  v[DG_WREPLY_N];

    /* now 1700000000000, verified, slot 7, throttle, refused by it,
     * penalty 60000, retry 9900, remaining 3 */
    static const unsigned char  reply[DG_WREPLY_LEN] = {
        0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01,
        1, 7, 2, 1,
        0x60, 0xea, 0x00, 0x00, 0x00, 0x00,
        0xac, 0x26, 0x00, 0x00, 0x00, 0x00,
        3, 0, 0, 0
    };

    (void) state;

    assert_int_equal(dg_window_unpack((const char *) reply, sizeof(reply),
                                      v), DG_WREPLY_N);
    assert_true(v[DG_WREPLY_NOW_MS] == INT64_C(1700000000000));
    assert_int_equal(v[DG_WREPLY_PROVENANCE], 1);
    assert_int_equal(v[DG_WREPLY_SLOT], 7);
    assert_int_equal(v[DG_WREPLY_STATE], 2);
    assert_int_equal(v[DG_WREPLY_REFUSED], 1);
    assert_int_equal(v[DG_WREPLY_PENALTY_MS], 60000);
    assert_int_equal(v[DG_WREPLY_RETRY_MS], 9900);
    assert_int_equal(v[DG_WREPLY_REMAINING], 3);

    assert_int_equal(dg_window_unpack((const char *) reply,
                                      sizeof(reply) - 1, v), 0);
    assert_int_equal(dg_window_unpack(NULL, 0, v), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_ten_requests),
        cmocka_unit_test(test_provenance_shares),
        cmocka_unit_test(test_slide),
        cmocka_unit_test(test_beyond_ring),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_random_values),
        cmocka_unit_test(test_sent_template),
        cmocka_unit_test(test_unpack),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
