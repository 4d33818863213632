/*
 * Unit tests of src/dg_fanout.c: the cross-key counts a worker holds,
 * when they answer a request, and when a key is added without a count.
 */

#include "dg_test.h"

#include "dg_fanout.h"
#include "dg_profile.h"


#define T_SHA       "0123456789abcdef0123456789abcdef01234567"
#define T_W         64000                   /* refresh: 1000 ms */
#define T_NOW       UINT64_C(1700000032000) /* mid-bucket */


typedef struct {
    dg_features_t       f;
    dg_window_req_t     req;
    dg_profile_t        prof;
} t_req_t;


static dg_fanout_cache_t  t_cache;


static void
t_req(t_req_t *t, const char *key_id, uint64_t now)
{
    memset(t, 0, sizeof(*t));

    t->f.template_head = 0xabcd;
    t->f.template_tail = 0x1234;

    t->req.prefix = "dg";
    t->req.prefix_len = 2;
    t->req.key_id = key_id;
    t->req.window_ms = T_W;
    t->req.now_ms = now;
    t->req.features = &t->f;
    t->req.subnet = "192.0.2";
}


/* what Redis answered for every counter: keys, conversation keys */
static void
t_answer(t_req_t *t, int64_t keys, int64_t conv)
{
    int64_t  v[2];
    int      k;

    v[0] = keys;
    v[1] = conv;

    for (k = 0; k < DG_FANOUT_N; k++) {
        assert_int_equal(dg_fanout_reply(&t->prof, (dg_fanout_t) k, v, 2), 0);
    }
}


static void
test_plan_learn(void **state)
{
    unsigned  all, skip, add;
    t_req_t   t;

    (void) state;

    dg_fanout_cache_init(&t_cache);
    all = (1u << DG_FANOUT_N) - 1;

    /* nothing held: everything is asked */
    t_req(&t, "key1", T_NOW);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), 0);
    assert_int_equal(add, 0);
    t_answer(&t, 40, 2);
    dg_fanout_learn(&t_cache, &t.req, &t.prof, all);

    /* the same key soon after: answered, nothing to add */
    t_req(&t, "key1", T_NOW + 999);
    skip = dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(skip, all);
    assert_int_equal(add, 0);
    assert_int_equal(t.prof.template_keys, 40);
    assert_int_equal(t.prof.template_conv, 2);
    assert_int_equal(t.prof.subnet_keys, 40);

    /* another key: answered, counted in, and to be added */
    t_req(&t, "key2", T_NOW + 10);
    skip = dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(skip, all);
    assert_int_equal(add, all);
    assert_int_equal(t.prof.template_keys, 41);
    assert_int_equal(t.prof.subnet_keys, 41);

    /* once added, this worker counts it at once */
    assert_int_equal(dg_fanout_adds(&t_cache, &t.req, add, NULL, 0, 0),
                     all);
    t_req(&t, "key3", T_NOW + 20);
    (void) dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(t.prof.template_keys, 42);
    t_req(&t, "key2", T_NOW + 30);
    (void) dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(add, 0);
    assert_int_equal(t.prof.template_keys, 41);

    /* the refresh period (window / 64, at most 1 s) is over: asked */
    t_req(&t, "key1", T_NOW + 1000);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), 0);

    /* a new bucket: asked */
    t_req(&t, "key1", T_NOW + T_W);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), 0);

    /* a clock that went back: asked */
    t_req(&t, "key1", T_NOW - 1);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), 0);
}


static void
test_nothing_to_count(void **state)
{
    unsigned  skip, add;
    t_req_t   t;

    (void) state;

    dg_fanout_cache_init(&t_cache);

    t_req(&t, "key1", T_NOW);
    t_answer(&t, 1, 0);
    dg_fanout_learn(&t_cache, &t.req, &t.prof, 7);

    /* a turn of a conversation: no template counter, the network's */
    t_req(&t, "key1", T_NOW + 1);
    t.f.prior = 77;
    skip = dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(skip, 1u << DG_FANOUT_SUBNET);

    t_req(&t, "key1", T_NOW + 1);
    t.req.subnet = NULL;
    t.f.template_tail = 0;
    skip = dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(skip, 1u << DG_FANOUT_HEAD);
}


/*
 * Inside the score's ramp (2 to 5 keys on a template, this one included)
 * a template count is asked afresh, until Redis says 6; below it, above
 * it, and for networks the count held answers
 */
static void
test_plan_band(void **state)
{
    unsigned  all, skip, add, net;
    t_req_t   t;

    (void) state;

    dg_fanout_cache_init(&t_cache);
    all = (1u << DG_FANOUT_N) - 1;
    net = 1u << DG_FANOUT_SUBNET;

    /* a template of its own: one key, held */
    t_req(&t, "key1", T_NOW);
    t_answer(&t, 1, 0);
    dg_fanout_learn(&t_cache, &t.req, &t.prof, all);

    t_req(&t, "key1", T_NOW + 10);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), all);
    assert_int_equal(t.prof.template_keys, 1);

    /* a second key would make two: asked, the network still held */
    t_req(&t, "key2", T_NOW + 20);
    skip = dg_fanout_plan(&t_cache, &t.req, &t.prof, &add);
    assert_int_equal(skip, net);
    assert_int_equal(add, net);
    t_answer(&t, 2, 0);
    dg_fanout_learn(&t_cache, &t.req, &t.prof, all & ~net);

    /* 2 to 5 keys: asked, by the keys on it as by new ones */
    t_req(&t, "key1", T_NOW + 30);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), net);
    t_answer(&t, 5, 0);
    dg_fanout_learn(&t_cache, &t.req, &t.prof, all & ~net);

    t_req(&t, "key1", T_NOW + 40);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), net);
    assert_int_equal(add, 0);

    /* a new key would make 6, unless another worker added it: asked */
    t_req(&t, "key6", T_NOW + 50);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), net);
    t_answer(&t, 6, 0);
    dg_fanout_learn(&t_cache, &t.req, &t.prof, all & ~net);

    /* once Redis said 6, the top of the ramp: every key is answered */
    t_req(&t, "key1", T_NOW + 60);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), all);
    assert_int_equal(t.prof.template_keys, 6);
    t_req(&t, "key7", T_NOW + 70);
    assert_int_equal(dg_fanout_plan(&t_cache, &t.req, &t.prof, &add), all);
    assert_int_equal(add, all);
    assert_int_equal(t.prof.template_keys, 7);
}


/* the key's window shows an earlier one-shot request on the template */
static void
test_adds_window(void **state)
{
    unsigned       add, out;
    t_req_t        t;
    unsigned char  v[DG_WIN_SIZE], *rec;

    (void) state;

    dg_fanout_cache_init(&t_cache);

    /* two records: an earlier one-shot with the head, this one (slot 1) */
    memset(v, 0, sizeof(v));
    v[0] = DG_WIN_VERSION;
    v[1] = 2;
    v[2] = 2;
    v[3] = (T_W / 16) & 0xff;
    v[4] = (T_W / 16) >> 8;
    memcpy(v + 7, &(uint64_t) { T_NOW }, 6);        /* little-endian */

    rec = v + DG_WIN_ROFF;
    rec[0] = (unsigned char) ((T_NOW - 500) & 0xff);
    rec[1] = (unsigned char) (((T_NOW - 500) >> 8) & 0xff);
    rec[2] = (unsigned char) (((T_NOW - 500) >> 16) & 0xff);
    rec[3] = 1;
    rec[4] = 1 << 4;                                /* one-shot */
    rec[5] = dg_fold12(0xabcd) & 0xff;
    rec[6] = dg_fold12(0xabcd) >> 8;

    rec += DG_WIN_RSZ;
    rec[0] = (unsigned char) (T_NOW & 0xff);
    rec[1] = (unsigned char) ((T_NOW >> 8) & 0xff);
    rec[2] = (unsigned char) ((T_NOW >> 16) & 0xff);
    rec[5] = dg_fold12(0xabcd) & 0xff;
    rec[6] = dg_fold12(0xabcd) >> 8;

    t_req(&t, "key9", T_NOW);
    add = (1u << DG_FANOUT_HEAD) | (1u << DG_FANOUT_TAIL);
    out = dg_fanout_adds(&t_cache, &t.req, add, (const char *) v, sizeof(v),
                         1);
    assert_int_equal(out, 1u << DG_FANOUT_TAIL);

    /* without the value: added */
    dg_fanout_cache_init(&t_cache);
    out = dg_fanout_adds(&t_cache, &t.req, add, NULL, 0, 1);
    assert_int_equal(out, add);
}


static void
test_add_cmd(void **state)
{
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req(&t, "key1", T_NOW);

    assert_int_equal(dg_fanout_add_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA),
                     0);
    assert_int_equal(cmd.argc, 9);
    assert_int_equal(cmd.argvlen[8], 3);
    assert_memory_equal(cmd.argv[8], "add", 3);

    assert_int_equal(dg_fanout_add_cmd(&cmd, &t.req, DG_FANOUT_SUBNET,
                                       T_SHA), 0);
    assert_int_equal(cmd.argc, 8);
    assert_memory_equal(cmd.argv[7], "add", 3);

    t.f.template_head = 0;
    assert_int_equal(dg_fanout_add_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA),
                     1);
    assert_int_equal(dg_fanout_refresh_ms(60000), 937);
    assert_int_equal(dg_fanout_refresh_ms(3600000), 1000);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_learn),
        cmocka_unit_test(test_plan_band),
        cmocka_unit_test(test_nothing_to_count),
        cmocka_unit_test(test_adds_window),
        cmocka_unit_test(test_add_cmd),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
