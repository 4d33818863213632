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


/* the same template on many keys: from the first request */
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

    profile(&p, 3, 3, 1000, 1000, 0, 0);
    p.template_keys = 40;
    assert_true(score(&p, &sig) >= 800);
    assert_int_equal(sig, 1u << DG_SIG_FANOUT);

    /* a busy network alone tags at most */
    p.template_keys = 1;
    p.subnet_keys = 500;
    assert_true(score(&p, NULL) < 800);
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
    char  buf[128];

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
        cmocka_unit_test(test_human),
        cmocka_unit_test(test_app),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
