/* unit tests: the score of a key's profile and its signals (dg_score) */

#include "dg_test.h"

#include "dg_score.h"


static const dg_features_t  t_features;


/* a profile of n requests with the given shares (x1000) */
static void
profile(dg_profile_t *p, int64_t n, int64_t topics, int64_t top_template,
    int64_t single, int64_t cot, int64_t gap_cv)
{
    memset(p, 0, sizeof(dg_profile_t));

    p->v[DG_PROF_REQUESTS] = n;
    p->v[DG_PROF_SAMPLE] = n > 128 ? 128 : n;
    p->v[DG_PROF_TOPICS] = topics;
    p->v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI] = top_template;
    p->v[DG_PROF_SINGLE_TURN_SHARE_MILLI] = single;
    p->v[DG_PROF_COT_SHARE_MILLI] = cot;
    p->v[DG_PROF_GAP_CV_MILLI] = gap_cv;
    p->v[DG_PROF_GAP_MEAN_MS] = 30000;
    p->template_keys = 1;
    p->subnet_keys = 1;
}


static uint32_t
score(const dg_profile_t *p, uint32_t *signals)
{
    dg_score_t       s;
    dg_score_conf_t  conf;

    dg_score_conf_default(&conf);
    dg_score_compute(&s, &conf, p, &t_features);

    assert_true(s.score_milli <= 1000);

    if (signals) {
        *signals = s.signals;
    }

    return s.score_milli;
}


static void
test_empty(void **state)
{
    dg_profile_t  p;
    uint32_t      sig;

    (void) state;

    memset(&p, 0, sizeof(p));
    assert_int_equal(score(&p, &sig), 0);
    assert_int_equal(sig, 0);
}


/* a sweep: every request a new topic, single-turn, machine-regular */
static void
test_sweep(void **state)
{
    dg_profile_t  p;
    uint32_t      sig;

    (void) state;

    profile(&p, 40, 34, 25, 1000, 0, 50);
    assert_true(score(&p, &sig) >= 800);
    assert_true(sig & (1u << DG_SIG_COVERAGE));
    assert_true(sig & (1u << DG_SIG_SINGLE_TURN));
    assert_true(sig & (1u << DG_SIG_REGULAR));

    /* irregular timing: still above the throttle threshold */
    profile(&p, 40, 34, 25, 1000, 0, 1200);
    assert_true(score(&p, NULL) >= 800);
}


/* a campaign through a template asking for reasoning, on one subject */
static void
test_template_cot(void **state)
{
    dg_profile_t  p;

    (void) state;

    profile(&p, 40, 8, 1000, 1000, 1000, 50);
    assert_true(score(&p, NULL) >= 800);
}


/* below min_requests a key's own profile does not count */
static void
test_min_requests(void **state)
{
    dg_profile_t  p;
    uint32_t      sig;

    (void) state;

    profile(&p, 19, 19, 1000, 1000, 1000, 0);
    assert_int_equal(score(&p, &sig), 0);
    assert_int_equal(sig, 0);
}


/* the fan-out strength alone, from a profile */
static uint32_t
fanout(const dg_profile_t *p)
{
    dg_score_t       s;
    dg_score_conf_t  conf;

    dg_score_conf_default(&conf);
    dg_score_compute(&s, &conf, p, &t_features);

    return s.strength_milli[DG_SIG_FANOUT];
}


/*
 * The same template on many keys: from the first request, at the tag
 * level until the key has shown itself one-shot (3 requests)
 */
static void
test_fanout(void **state)
{
    dg_profile_t  p;
    uint32_t      sig;

    (void) state;

    profile(&p, 1, 1, 1000, 1000, 0, 0);

    p.template_keys = 2;
    assert_int_equal(score(&p, NULL), 0);

    p.template_keys = 5;
    assert_true(score(&p, NULL) >= 400);

    /* a key's first request tags; from its third one-shot it counts in
     * full (src/dg_score.c, dg_fanout_strength) */
    p.template_keys = 40;
    assert_true(score(&p, NULL) >= 500);
    assert_true(score(&p, NULL) < 800);

    p.template_keys = 40;
    assert_int_equal(score(&p, &sig), 540);
    assert_int_equal(sig, 1u << DG_SIG_FANOUT);

    p.v[DG_PROF_REQUESTS] = 3;
    assert_true(score(&p, &sig) >= 800);
    assert_int_equal(sig, 1u << DG_SIG_FANOUT);

    /* a busy network alone tags at most */
    p.template_keys = 1;
    p.subnet_keys = 500;
    assert_true(score(&p, NULL) < 800);
}


/* a campaign's wrapper: no key opens conversations with it */
static void
test_fanout_hydra(void **state)
{
    dg_profile_t  p;
    uint32_t      sig;

    (void) state;

    profile(&p, 1, 1, 1000, 1000, 0, 0);
    p.template_keys = 6;
    p.template_conv = 0;

    /* the first requests: tag level only */
    assert_int_equal(fanout(&p), 600);
    assert_int_equal(score(&p, &sig), 540);
    assert_int_equal(sig, 1u << DG_SIG_FANOUT);

    p.v[DG_PROF_REQUESTS] = 2;
    assert_int_equal(fanout(&p), 600);

    /* one-shot from the third request on: in full */
    p.v[DG_PROF_REQUESTS] = 3;
    assert_int_equal(fanout(&p), 1000);
    assert_int_equal(score(&p, &sig), 900);
    assert_int_equal(sig, 1u << DG_SIG_FANOUT);

    p.v[DG_PROF_REQUESTS] = 500;
    assert_int_equal(fanout(&p), 1000);

    /* up to 20% verified conversations is still one-shot */
    p.verified_milli = 200;
    assert_int_equal(fanout(&p), 1000);

    /* a key that continues its own conversations: tag level */
    p.verified_milli = 201;
    assert_int_equal(fanout(&p), 600);

    /* fewer keys: the ramp from 2 to 6 keys */
    p.verified_milli = 0;
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 500);
    p.template_keys = 2;
    assert_int_equal(fanout(&p), 0);
    p.template_keys = 0;
    assert_int_equal(fanout(&p), 0);
}


/* an app's frame: its users hold conversations that open with it */
static void
test_fanout_app(void **state)
{
    dg_profile_t  p;

    (void) state;

    profile(&p, 1, 1, 1000, 1000, 0, 0);
    p.template_keys = 6;
    p.template_conv = 3;

    /* the frame counts for nothing until the key shows what it does */
    assert_int_equal(fanout(&p), 0);
    assert_int_equal(score(&p, NULL), 0);

    p.v[DG_PROF_REQUESTS] = 5;
    assert_int_equal(fanout(&p), 0);

    /* a user of the app: verified conversations */
    p.v[DG_PROF_REQUESTS] = 40;
    p.verified_milli = 500;
    assert_int_equal(fanout(&p), 0);

    p.verified_milli = 201;
    assert_int_equal(fanout(&p), 0);

    /* one-shot on the app's frame: 6 requests, at most 20% verified */
    p.v[DG_PROF_REQUESTS] = 6;
    p.verified_milli = 200;
    assert_int_equal(fanout(&p), 1000);

    p.verified_milli = 0;
    p.v[DG_PROF_REQUESTS] = 500;
    assert_int_equal(fanout(&p), 1000);

    /* the app's share is a ramp from 10% to 30% of the keys */
    p.v[DG_PROF_REQUESTS] = 1;
    p.template_keys = 10;
    p.template_conv = 1;
    assert_int_equal(fanout(&p), 600);

    p.template_conv = 2;
    assert_int_equal(fanout(&p), 300);

    p.template_conv = 3;
    assert_int_equal(fanout(&p), 0);

    /* the HyperLogLogs may count more conversation keys than keys */
    p.template_conv = 12;
    assert_int_equal(fanout(&p), 0);
    p.v[DG_PROF_REQUESTS] = 6;
    assert_int_equal(fanout(&p), 1000);

    /* half-way up the ramp: 4 requests make a key one-shot */
    p.v[DG_PROF_REQUESTS] = 3;
    p.template_conv = 2;
    assert_int_equal(fanout(&p), 300);
    p.v[DG_PROF_REQUESTS] = 4;
    assert_int_equal(fanout(&p), 1000);
}


/*
 * A key whose own requests look like a script sweeping topics (one-shot,
 * reasoning, a new topic each, a machine's clock; from its 5th request)
 * needs 4 keys on the frame instead of 6; without any one of the four,
 * 4 one-shot keys on a frame do not tag
 */
static void
test_fanout_shaped(void **state)
{
    dg_profile_t  p;
    uint32_t      sig;

    (void) state;

    /* 5 requests, 5 topics, 2 of them on this frame, +-5 % gaps */
    profile(&p, 5, 5, 400, 1000, 1000, 30);
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 1000);
    assert_int_equal(score(&p, &sig), 900);
    assert_int_equal(sig, 1u << DG_SIG_FANOUT);

    /* 3 keys: half-way, no tag */
    p.template_keys = 3;
    assert_int_equal(fanout(&p), 500);
    assert_true(score(&p, NULL) < 500);

    /* 6 keys and more: as for any one-shot key */
    p.template_keys = 40;
    assert_int_equal(fanout(&p), 1000);

    /* 4 requests are too few to tell a clock */
    profile(&p, 4, 4, 500, 1000, 1000, 30);
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 500);
    assert_true(score(&p, NULL) < 500);

    /* a person's timing (cv 0.2 and over) */
    profile(&p, 8, 8, 250, 1000, 1000, 200);
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 500);
    assert_true(score(&p, NULL) < 500);

    /* no reasoning asked */
    profile(&p, 8, 8, 250, 1000, 0, 30);
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 500);

    /* the same few topics */
    profile(&p, 8, 2, 250, 1000, 1000, 30);
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 500);

    /* conversations: half of the requests continue one */
    profile(&p, 8, 8, 250, 500, 1000, 30);
    p.verified_milli = 500;
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 300);

    /* between a person's clock and a machine's: between 6 and 4 keys */
    profile(&p, 8, 8, 250, 1000, 1000, 150);
    p.template_keys = 4;
    assert_int_equal(fanout(&p), 666);
    p.template_keys = 5;
    assert_int_equal(fanout(&p), 1000);

    /* an app's frame (half its keys converse) still takes 6 requests */
    profile(&p, 5, 5, 400, 1000, 1000, 30);
    p.template_keys = 4;
    p.template_conv = 2;
    assert_int_equal(fanout(&p), 0);
    p.v[DG_PROF_REQUESTS] = 6;
    p.v[DG_PROF_SAMPLE] = 6;
    p.v[DG_PROF_TOPICS] = 6;
    assert_int_equal(fanout(&p), 1000);
}


/*
 * Histories this key never sent: a signal of its own, primary, once the
 * key has min_requests
 */
static void
test_fabricated(void **state)
{
    dg_score_t       s;
    dg_profile_t     p;
    dg_score_conf_t  conf;
    uint32_t         sig;

    (void) state;

    /* nothing else: a few topics, no template, irregular, no cot */
    profile(&p, 40, 4, 100, 0, 0, 1800);
    assert_int_equal(score(&p, &sig), 0);
    assert_int_equal(sig, 0);

    /* a restored or trimmed chat now and then: nothing */
    p.fabricated_milli = 150;
    assert_int_equal(score(&p, &sig), 0);
    assert_int_equal(sig, 0);

    /* the ramp from 15% to 50% */
    p.fabricated_milli = 325;
    dg_score_conf_default(&conf);
    dg_score_compute(&s, &conf, &p, &t_features);
    assert_int_equal(s.strength_milli[DG_SIG_FABRICATED], 500);
    assert_int_equal(s.score_milli, 300);
    assert_int_equal(s.signals, 1u << DG_SIG_FABRICATED);

    /* nearly all of them: the weight, 0.6, tags on its own */
    p.fabricated_milli = 500;
    assert_int_equal(score(&p, &sig), 600);
    assert_int_equal(sig, 1u << DG_SIG_FABRICATED);

    p.fabricated_milli = 1000;
    assert_int_equal(score(&p, NULL), 600);

    /* primary: it opens the gate of the supporting signals */
    profile(&p, 40, 4, 100, 1000, 0, 50);
    assert_true(score(&p, NULL) < 300);
    p.fabricated_milli = 1000;
    assert_true(score(&p, &sig) >= 800);
    assert_true(sig & (1u << DG_SIG_FABRICATED));
    assert_true(sig & (1u << DG_SIG_SINGLE_TURN));
    assert_true(sig & (1u << DG_SIG_REGULAR));

    /* below min_requests it does not count */
    profile(&p, 19, 4, 100, 0, 0, 1800);
    p.fabricated_milli = 1000;
    assert_int_equal(score(&p, &sig), 0);
    assert_int_equal(sig, 0);

    /* its weight can be set, and 0 silences it */
    profile(&p, 40, 4, 100, 0, 0, 1800);
    p.fabricated_milli = 1000;
    conf.weight_milli[DG_SIG_FABRICATED] = 0;
    dg_score_compute(&s, &conf, &p, &t_features);
    assert_int_equal(s.score_milli, 0);
    assert_int_equal(s.signals, 0);
    assert_int_equal(s.strength_milli[DG_SIG_FABRICATED], 1000);
}


/* a person: a few conversations, irregular */
static void
test_human(void **state)
{
    dg_profile_t  p;

    (void) state;

    profile(&p, 40, 6, 50, 150, 50, 1800);
    assert_true(score(&p, NULL) < 500);

    /* a busy one: twelve conversations in the window */
    profile(&p, 90, 12, 50, 130, 100, 1500);
    assert_true(score(&p, NULL) < 500);
}


/* an app: one narrow area, single-turn, Poisson arrivals */
static void
test_app(void **state)
{
    dg_profile_t  p;

    (void) state;

    profile(&p, 300, 12, 40, 1000, 0, 1000);
    assert_true(score(&p, NULL) < 500);
}


/* weights: zero silences a signal; a weight above 1 saturates it */
static void
test_weights(void **state)
{
    dg_score_t       s;
    dg_profile_t     p;
    dg_score_conf_t  conf;

    (void) state;

    profile(&p, 40, 34, 25, 1000, 0, 50);

    dg_score_conf_default(&conf);
    memset(conf.weight_milli, 0, sizeof(conf.weight_milli));
    dg_score_compute(&s, &conf, &p, &t_features);
    assert_int_equal(s.score_milli, 0);
    assert_int_equal(s.signals, 0);

    conf.weight_milli[DG_SIG_COVERAGE] = 10000;
    dg_score_compute(&s, &conf, &p, &t_features);
    assert_int_equal(s.score_milli, 1000);
}


static void
test_names(void **state)
{
    char  buf[128], all[DG_SIGNALS_STR_MAX];

    (void) state;

    assert_int_equal(dg_signal_by_name("coverage", 8), DG_SIG_COVERAGE);
    assert_int_equal(dg_signal_by_name("single_turn", 11),
                     DG_SIG_SINGLE_TURN);
    assert_int_equal(dg_signal_by_name("cover", 5), -1);
    assert_string_equal(dg_signal_name(DG_SIG_REDIS_UNAVAILABLE),
                        "redis_unavailable");

    assert_int_equal(dg_signals_str(0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");

    dg_signals_str((1u << DG_SIG_COVERAGE) | (1u << DG_SIG_COT), buf,
                   sizeof(buf));
    assert_string_equal(buf, "coverage,cot");

    /* never overflows: whole names only */
    dg_signals_str((1u << DG_SIG_COVERAGE) | (1u << DG_SIG_COT), buf, 12);
    assert_string_equal(buf, "coverage");

    /* the new signal and the reasons, which are not scored */
    assert_int_equal(dg_signal_by_name("fabricated", 10), DG_SIG_FABRICATED);
    assert_int_equal(dg_signal_by_name("rate_limit", 10), DG_SIG_RATE_LIMIT);
    assert_int_equal(dg_signal_by_name("penalty", 7), DG_SIG_PENALTY);
    assert_string_equal(dg_signal_name(DG_SIG_FABRICATED), "fabricated");
    assert_string_equal(dg_signal_name(DG_SIG_N), "");
    assert_true(DG_SIG_FABRICATED < DG_SIG_SCORED);
    assert_true(DG_SIG_RATE_LIMIT >= DG_SIG_SCORED);
    assert_true(DG_SIG_PENALTY >= DG_SIG_SCORED);

    /* all of them fit DG_SIGNALS_STR_MAX */
    assert_int_equal(dg_signals_str((1u << DG_SIG_N) - 1, all, sizeof(all)),
                     strlen("coverage,template,fanout,single_turn,cot,"
                            "regular,volume,fabricated,scripted,redis_unavailable,"
                            "rate_limit,penalty"));
    assert_string_equal(all, "coverage,template,fanout,single_turn,cot,"
                             "regular,volume,fabricated,scripted,redis_unavailable,"
                             "rate_limit,penalty");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_template_cot),
        cmocka_unit_test(test_min_requests),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_fanout_hydra),
        cmocka_unit_test(test_fanout_app),
        cmocka_unit_test(test_fanout_shaped),
        cmocka_unit_test(test_fabricated),
        cmocka_unit_test(test_human),
        cmocka_unit_test(test_app),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
