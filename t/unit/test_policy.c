/*
 * Unit tests of src/dg_policy.c, the decision policy (a key's state,
 * penalty, refusals, shadow mode, Redis failure, the fallback limiter's
 * mirror), and of src/dg_state.c, the Redis writes of a change of state.
 */

#include "dg_test.h"

#include "dg_cmd.h"
#include "dg_policy.h"
#include "dg_state.h"


#define T_KEY_ID        "0a1b2c3d4e5f6789"
#define T_PENALTY_MS    600000
#define T_THROTTLE_MS   10000

#define T_BIT(sig)      (1u << (sig))
#define T_REASONS       (T_BIT(DG_SIG_REDIS_UNAVAILABLE)                     \
                         | T_BIT(DG_SIG_RATE_LIMIT) | T_BIT(DG_SIG_PENALTY))


static void
t_conf(dg_policy_conf_t *conf)
{
    memset(conf, 0, sizeof(dg_policy_conf_t));

    conf->tag_milli = 500;
    conf->throttle_milli = 800;
    conf->penalty_ms = T_PENALTY_MS;
    conf->throttle_ms = T_THROTTLE_MS;
}


/* a score with some signal of its own, to see it carried */
static void
t_score(dg_score_t *s, uint32_t milli)
{
    memset(s, 0, sizeof(dg_score_t));

    s->score_milli = milli;
    s->signals = T_BIT(DG_SIG_COVERAGE) | T_BIT(DG_SIG_COT);
}


static void
t_prof(dg_profile_t *prof, dg_action_t state, int64_t penalty_ms,
    dg_refused_t refused, int64_t retry_ms)
{
    memset(prof, 0, sizeof(dg_profile_t));

    prof->v[DG_PROF_REQUESTS] = 30;
    prof->state = state;
    prof->penalty_ms = penalty_ms;
    prof->refused = refused;
    prof->retry_ms = retry_ms;
    prof->now_ms = 1700000000000;
}


static void
t_decide(dg_verdict_t *v, const dg_policy_conf_t *conf, uint32_t score,
    const dg_profile_t *prof)
{
    dg_score_t  s;

    t_score(&s, score);

    /* a verdict left over from the last request must not show through */
    memset(v, 0xa5, sizeof(dg_verdict_t));

    dg_policy_decide(v, conf, &s, prof, DG_REFUSED_NONE, 0);
}


/* nothing refused, nothing that Redis or shadow mode would change */
static void
t_not_refused(const dg_verdict_t *v)
{
    assert_int_equal(v->refused, DG_REFUSED_NONE);
    assert_false(v->refuse);
    assert_false(v->unavailable);
    assert_false(v->would_refuse);
    assert_int_equal(v->signals & T_REASONS, 0);
    assert_int_equal(v->signals & ~T_REASONS,
                     T_BIT(DG_SIG_COVERAGE) | T_BIT(DG_SIG_COT));
}


static void
test_names(void **state)
{
    (void) state;

    assert_string_equal(dg_action_name(DG_ACTION_PASS), "pass");
    assert_string_equal(dg_action_name(DG_ACTION_TAG), "tag");
    assert_string_equal(dg_action_name(DG_ACTION_THROTTLE), "throttle");
    assert_string_equal(dg_action_name(DG_ACTION_SKIP), "skip");
    assert_string_equal(dg_action_name(DG_ACTION_UNAVAILABLE),
                        "unavailable");
    assert_string_equal(dg_action_name(DG_ACTION_N), "pass");
    assert_string_equal(dg_action_name((dg_action_t) 99), "pass");
}


/* a quiet key stays as it is: nothing to write, nothing to mirror */
static void
test_stay(void **state)
{
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);

    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 499, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_int_equal(v.from, DG_ACTION_PASS);
    assert_int_equal(v.to, DG_ACTION_PASS);
    assert_false(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_false(v.mirror);

    t_prof(&prof, DG_ACTION_TAG, 0, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 799, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_int_equal(v.from, DG_ACTION_TAG);
    assert_int_equal(v.to, DG_ACTION_TAG);
    assert_false(v.write_state);
    assert_false(v.mirror);

    /* a state the policy does not know is pass */
    t_prof(&prof, DG_ACTION_UNAVAILABLE, 0, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 0, &prof);
    assert_int_equal(v.from, DG_ACTION_PASS);
    assert_int_equal(v.to, DG_ACTION_PASS);
    assert_false(v.write_state);
    assert_int_equal(v.action, DG_ACTION_PASS);
}


static void
test_pass_to_tag(void **state)
{
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_NONE, 0);

    /* the threshold itself tags */
    t_decide(&v, &conf, 500, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_int_equal(v.from, DG_ACTION_PASS);
    assert_int_equal(v.to, DG_ACTION_TAG);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_false(v.mirror);

    t_decide(&v, &conf, 799, &prof);
    assert_int_equal(v.to, DG_ACTION_TAG);
}


static void
test_to_throttle(void **state)
{
    size_t            i;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    static const dg_action_t  from[] = { DG_ACTION_PASS, DG_ACTION_TAG };

    (void) state;

    t_conf(&conf);

    for (i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        t_prof(&prof, from[i], 0, DG_REFUSED_NONE, 0);

        t_decide(&v, &conf, 800, &prof);
        t_not_refused(&v);

        /* the request that starts the penalty is not refused by it */
        assert_int_equal(v.action, DG_ACTION_TAG);
        assert_int_equal(v.from, from[i]);
        assert_int_equal(v.to, DG_ACTION_THROTTLE);
        assert_true(v.write_state);
        assert_int_equal(v.penalty_ms, T_PENALTY_MS);

        /*
         * the fallback limiter learns of the penalty; this request took
         * the throttle's first period
         */
        assert_true(v.mirror);
        assert_int_equal(v.mirror_penalty_ms, T_PENALTY_MS);
        assert_int_equal(v.mirror_next_ms, T_THROTTLE_MS);

        t_decide(&v, &conf, 1000, &prof);
        assert_int_equal(v.to, DG_ACTION_THROTTLE);
        assert_int_equal(v.penalty_ms, T_PENALTY_MS);
    }
}


/* a penalised key stays throttled until the penalty ends, whatever */
static void
test_throttle_stays(void **state)
{
    uint32_t          score;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);

    for (score = 0; score <= 1000; score += 100) {
        t_prof(&prof, DG_ACTION_THROTTLE, 400000, DG_REFUSED_NONE, 0);

        t_decide(&v, &conf, score, &prof);
        t_not_refused(&v);
        assert_int_equal(v.action, DG_ACTION_TAG);
        assert_int_equal(v.from, DG_ACTION_THROTTLE);
        assert_int_equal(v.to, DG_ACTION_THROTTLE);

        /* more than half of the penalty left: not renewed */
        assert_false(v.write_state);
        assert_int_equal(v.penalty_ms, 0);

        /* the mirror keeps what Redis has, and the throttle's period */
        assert_true(v.mirror);
        assert_int_equal(v.mirror_penalty_ms, 400000);
        assert_int_equal(v.mirror_next_ms, T_THROTTLE_MS);
    }

    /* 1 ms left still counts */
    t_prof(&prof, DG_ACTION_THROTTLE, 1, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 0, &prof);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_false(v.write_state);
    assert_int_equal(v.mirror_penalty_ms, 1);

    /* a penalty Redis reports outlives a state that says otherwise */
    t_prof(&prof, DG_ACTION_TAG, 5000, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 0, &prof);
    assert_int_equal(v.from, DG_ACTION_TAG);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.write_state);
}


static void
test_throttle_ends(void **state)
{
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);

    /* penalty over, score low: back to pass, the mirror cleared */
    t_prof(&prof, DG_ACTION_THROTTLE, 0, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 499, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_int_equal(v.from, DG_ACTION_THROTTLE);
    assert_int_equal(v.to, DG_ACTION_PASS);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_true(v.mirror);
    assert_int_equal(v.mirror_penalty_ms, 0);
    assert_int_equal(v.mirror_next_ms, 0);

    /* at the tag level: down to tag */
    t_decide(&v, &conf, 500, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_int_equal(v.to, DG_ACTION_TAG);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_true(v.mirror);
    assert_int_equal(v.mirror_penalty_ms, 0);

    /* still at the throttle level: a new penalty */
    t_decide(&v, &conf, 800, &prof);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, T_PENALTY_MS);
    assert_int_equal(v.mirror_penalty_ms, T_PENALTY_MS);
    assert_int_equal(v.mirror_next_ms, T_THROTTLE_MS);
}


static void
test_tag_to_pass(void **state)
{
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_prof(&prof, DG_ACTION_TAG, 0, DG_REFUSED_NONE, 0);

    t_decide(&v, &conf, 0, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_int_equal(v.from, DG_ACTION_TAG);
    assert_int_equal(v.to, DG_ACTION_PASS);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_false(v.mirror);
}


/* a throttled key still at the throttle level: renewed at half */
static void
test_renew(void **state)
{
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);

    t_prof(&prof, DG_ACTION_THROTTLE, T_PENALTY_MS / 2 - 1, DG_REFUSED_NONE,
           0);
    t_decide(&v, &conf, 900, &prof);
    t_not_refused(&v);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_int_equal(v.from, DG_ACTION_THROTTLE);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, T_PENALTY_MS);
    assert_true(v.mirror);
    assert_int_equal(v.mirror_penalty_ms, T_PENALTY_MS);
    assert_int_equal(v.mirror_next_ms, T_THROTTLE_MS);

    /* half left is not less than half */
    t_prof(&prof, DG_ACTION_THROTTLE, T_PENALTY_MS / 2, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 900, &prof);
    assert_false(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_int_equal(v.mirror_penalty_ms, T_PENALTY_MS / 2);

    /* below the throttle level: the penalty runs out, no renewal */
    t_prof(&prof, DG_ACTION_THROTTLE, 1000, DG_REFUSED_NONE, 0);
    t_decide(&v, &conf, 799, &prof);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_false(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_int_equal(v.mirror_penalty_ms, 1000);
}


static void
test_refused_rate(void **state)
{
    dg_score_t        s;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_score(&s, 100);
    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_RATE, 250);

    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_THROTTLE);
    assert_true(v.refuse);
    assert_false(v.unavailable);
    assert_false(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_RATE);
    assert_int_equal(v.signals, s.signals | T_BIT(DG_SIG_RATE_LIMIT));

    /* the plain rate changes no state */
    assert_int_equal(v.from, DG_ACTION_PASS);
    assert_int_equal(v.to, DG_ACTION_PASS);
    assert_false(v.write_state);
    assert_false(v.mirror);

    /* the transition is still made for a refused request */
    t_score(&s, 900);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_THROTTLE);
    assert_true(v.refuse);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, T_PENALTY_MS);

    /* Redis answered: the fallback limiter's verdict does not count */
    t_score(&s, 100);
    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_NONE, 0);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_RATE, 0);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.refuse);
    assert_int_equal(v.refused, DG_REFUSED_NONE);

    /* a verdict the policy does not know refuses nothing */
    t_prof(&prof, DG_ACTION_PASS, 0, (dg_refused_t) 3, 0);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.refuse);
    assert_int_equal(v.refused, DG_REFUSED_NONE);
    assert_int_equal(v.signals, s.signals);
}


static void
test_refused_throttle(void **state)
{
    dg_score_t        s;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_score(&s, 0);
    t_prof(&prof, DG_ACTION_THROTTLE, 400000, DG_REFUSED_THROTTLE, 7000);

    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_THROTTLE);
    assert_true(v.refuse);
    assert_false(v.would_refuse);
    assert_false(v.unavailable);
    assert_int_equal(v.refused, DG_REFUSED_THROTTLE);
    assert_int_equal(v.signals, s.signals | T_BIT(DG_SIG_PENALTY));
    assert_int_equal(v.from, DG_ACTION_THROTTLE);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_false(v.write_state);

    /* the fallback limiter: the next request when Redis says */
    assert_true(v.mirror);
    assert_int_equal(v.mirror_penalty_ms, 400000);
    assert_int_equal(v.mirror_next_ms, 7000);
}


/* shadow mode: the same verdict, but nothing refused */
static void
test_shadow(void **state)
{
    dg_score_t        s;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    conf.shadow = 1;
    t_score(&s, 100);

    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_RATE, 250);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_false(v.refuse);
    assert_false(v.unavailable);
    assert_true(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_RATE);
    assert_int_equal(v.signals, s.signals | T_BIT(DG_SIG_RATE_LIMIT));

    t_prof(&prof, DG_ACTION_THROTTLE, 400000, DG_REFUSED_THROTTLE, 7000);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_false(v.refuse);
    assert_true(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_THROTTLE);
    assert_int_equal(v.signals, s.signals | T_BIT(DG_SIG_PENALTY));

    /* states and penalties are kept as in enforcing mode */
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.mirror);
    assert_int_equal(v.mirror_next_ms, 7000);

    t_score(&s, 900);
    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_NONE, 0);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_false(v.refuse);
    assert_false(v.would_refuse);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, T_PENALTY_MS);

    /* nothing to refuse: nothing would be */
    t_score(&s, 0);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_NONE);
}


/* Redis did not answer */
static void
test_redis_unavailable(void **state)
{
    dg_score_t        s;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_score(&s, 100);

    /* fail open */
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_NONE, 1);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.refuse);
    assert_false(v.unavailable);
    assert_false(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_NONE);
    assert_int_equal(v.signals,
                     s.signals | T_BIT(DG_SIG_REDIS_UNAVAILABLE));

    /* no state without Redis: nothing written, nothing mirrored */
    assert_int_equal(v.from, DG_ACTION_PASS);
    assert_int_equal(v.to, DG_ACTION_PASS);
    assert_false(v.write_state);
    assert_int_equal(v.penalty_ms, 0);
    assert_false(v.mirror);

    /* the request's own score still tags */
    t_score(&s, 900);
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_NONE, 1);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_false(v.refuse);
    assert_false(v.write_state);

    /* fail closed: 503 */
    conf.fail_closed = 1;
    t_score(&s, 100);
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_NONE, 1);
    assert_int_equal(v.action, DG_ACTION_UNAVAILABLE);
    assert_true(v.unavailable);
    assert_false(v.refuse);
    assert_false(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_NONE);
    assert_int_equal(v.signals,
                     s.signals | T_BIT(DG_SIG_REDIS_UNAVAILABLE));
    assert_false(v.write_state);

    /* fail closed in shadow mode: refuses nothing, says it would */
    conf.shadow = 1;
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_NONE, 1);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.unavailable);
    assert_false(v.refuse);
    assert_true(v.would_refuse);
    assert_int_equal(v.signals,
                     s.signals | T_BIT(DG_SIG_REDIS_UNAVAILABLE));

    /* no Redis configured is no failure: nothing to fail closed on */
    conf.shadow = 0;
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_NONE, 0);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.unavailable);
    assert_false(v.would_refuse);
    assert_int_equal(v.signals, s.signals);

    /* Redis answered: fail closed does nothing */
    t_prof(&prof, DG_ACTION_PASS, 0, DG_REFUSED_NONE, 0);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 1);
    assert_int_equal(v.action, DG_ACTION_PASS);
    assert_false(v.unavailable);
    assert_int_equal(v.signals, s.signals);
}


/* without a Redis reply the node's fallback limiter says who is refused */
static void
test_local_limiter(void **state)
{
    int               unavailable;
    dg_score_t        s;
    dg_verdict_t      v;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_score(&s, 0);

    for (unavailable = 0; unavailable <= 1; unavailable++) {
        dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_RATE, unavailable);
        assert_int_equal(v.action, DG_ACTION_THROTTLE);
        assert_true(v.refuse);
        assert_false(v.unavailable);
        assert_int_equal(v.refused, DG_REFUSED_RATE);
        assert_true(v.signals & T_BIT(DG_SIG_RATE_LIMIT));
        assert_false(v.signals & T_BIT(DG_SIG_PENALTY));
        assert_int_equal(!!(v.signals & T_BIT(DG_SIG_REDIS_UNAVAILABLE)),
                         unavailable);
        assert_false(v.write_state);
        assert_false(v.mirror);

        dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_THROTTLE,
                         unavailable);
        assert_int_equal(v.action, DG_ACTION_THROTTLE);
        assert_true(v.refuse);
        assert_int_equal(v.refused, DG_REFUSED_THROTTLE);
        assert_true(v.signals & T_BIT(DG_SIG_PENALTY));
        assert_false(v.signals & T_BIT(DG_SIG_RATE_LIMIT));
    }

    /* fail closed: a limiter's refusal is answered as such, not 503 */
    conf.fail_closed = 1;
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_THROTTLE, 1);
    assert_int_equal(v.action, DG_ACTION_THROTTLE);
    assert_true(v.refuse);
    assert_false(v.unavailable);

    /* shadow mode: would refuse */
    conf.fail_closed = 0;
    conf.shadow = 1;
    dg_policy_decide(&v, &conf, &s, NULL, DG_REFUSED_RATE, 1);
    assert_int_equal(v.action, DG_ACTION_TAG);
    assert_false(v.refuse);
    assert_true(v.would_refuse);
    assert_int_equal(v.refused, DG_REFUSED_RATE);
    assert_true(v.signals & T_BIT(DG_SIG_RATE_LIMIT));
}


/*
 * dg_state_cmd
 */

typedef struct {
    int                 rc[DG_STATE_CMDS + 1];
    char                cmd[DG_STATE_CMDS + 1][16];
    char                text[DG_STATE_CMDS + 1][512];
} t_state_t;


/* every index, the way the module sends a change: rc and argv joined */
static void
t_state_all(t_state_t *t, const dg_state_req_t *req)
{
    int       a;
    size_t    len;
    unsigned  i;
    dg_cmd_t  cmd;

    memset(t, 0, sizeof(t_state_t));

    for (i = 0; i <= DG_STATE_CMDS; i++) {
        t->rc[i] = dg_state_cmd(&cmd, req, i);
        assert_true(t->rc[i] == 0 || t->rc[i] == 1);

        if (t->rc[i] != 0) {
            continue;
        }

        assert_true(cmd.argc > 1);
        assert_true(cmd.argvlen[0] < sizeof(t->cmd[i]));
        memcpy(t->cmd[i], cmd.argv[0], cmd.argvlen[0]);

        len = 0;

        for (a = 0; a < cmd.argc; a++) {
            assert_true(len + cmd.argvlen[a] + 1 < sizeof(t->text[i]));
            memcpy(t->text[i] + len, cmd.argv[a], cmd.argvlen[a]);
            len += cmd.argvlen[a];
            t->text[i][len++] = ' ';
        }

        t->text[i][len - 1] = '\0';
    }

    /* past the last one: nothing */
    assert_int_equal(t->rc[DG_STATE_CMDS], 1);
}


static void
t_state_req(dg_state_req_t *req, dg_action_t from, dg_action_t to,
    uint64_t penalty_ms)
{
    memset(req, 0, sizeof(dg_state_req_t));

    req->prefix = "dg";
    req->prefix_len = 2;
    req->key_id = T_KEY_ID;
    req->from = from;
    req->to = to;
    req->score_milli = 123;
    req->signals = "coverage,cot";
    req->now_ms = 1700000000000;
    req->penalty_ms = penalty_ms;
    req->throttle_ms = 10000;
    req->fresh = (from != to);
    req->ttl_ms = 3600000;
}


static void
test_state_to_pass(void **state)
{
    t_state_t       t;
    dg_state_req_t  req;

    (void) state;

    t_state_req(&req, DG_ACTION_THROTTLE, DG_ACTION_PASS, 0);
    t_state_all(&t, &req);

    assert_int_equal(t.rc[0], 0);
    assert_string_equal(t.text[0], "HSET dg:{" T_KEY_ID "}:s st 0");
    assert_int_equal(t.rc[1], 0);
    assert_string_equal(t.text[1], "PEXPIRE dg:{" T_KEY_ID "}:s 3600000");

    /* back to pass: no ZADD, the key keeps its place */
    assert_int_equal(t.rc[2], 1);

    assert_int_equal(t.rc[3], 0);
    assert_string_equal(t.cmd[3], "ZREMRANGEBYRANK");
    assert_int_equal(t.rc[4], 0);
    assert_string_equal(t.text[4], "PEXPIRE dg:flagged 86400000");

    /* past the skipped one, the change is still recorded */
    assert_int_equal(t.rc[5], 0);
    assert_string_equal(t.text[5],
        "XADD dg:events MAXLEN ~ 10000 * key_id " T_KEY_ID
        " from throttle to pass score 0.123 signals coverage,cot");
    assert_int_equal(t.rc[6], 0);
    assert_string_equal(t.text[6], "PEXPIRE dg:events 86400000");

    t_state_req(&req, DG_ACTION_TAG, DG_ACTION_PASS, 0);
    t_state_all(&t, &req);
    assert_int_equal(t.rc[2], 1);
    assert_int_equal(t.rc[5], 0);
    assert_non_null(strstr(t.text[5], " from tag to pass "));
}


static void
test_state_to_throttle(void **state)
{
    t_state_t       t;
    dg_state_req_t  req;

    (void) state;

    t_state_req(&req, DG_ACTION_PASS, DG_ACTION_THROTTLE, 600000);
    req.score_milli = 1000;
    req.signals = "";
    t_state_all(&t, &req);

    /* a new penalty: the crossing request took the throttle's period */
    assert_string_equal(t.text[0],
        "HSET dg:{" T_KEY_ID "}:s st 2 pu 1700000600000");
    assert_int_equal(t.rc[9], 0);
    assert_string_equal(t.text[9],
        "SET dg:{" T_KEY_ID "}:t 1700000010000 PX 10000");
    assert_string_equal(t.text[1], "PEXPIRE dg:{" T_KEY_ID "}:s 4200000");
    assert_int_equal(t.rc[2], 0);
    assert_string_equal(t.text[2], "ZADD dg:flagged GT 1.000 " T_KEY_ID);
    assert_string_equal(t.text[3], "ZREMRANGEBYRANK dg:flagged 0 -1001");
    assert_int_equal(t.rc[5], 0);
    assert_non_null(strstr(t.text[5], " from pass to throttle score 1.000 "
                                      "signals"));
    assert_int_equal(t.rc[6], 0);

    t_state_req(&req, DG_ACTION_PASS, DG_ACTION_TAG, 0);
    t_state_all(&t, &req);
    assert_string_equal(t.text[0], "HSET dg:{" T_KEY_ID "}:s st 1");
    assert_int_equal(t.rc[9], 1);
    assert_int_equal(t.rc[2], 0);
    assert_non_null(strstr(t.text[5], " from pass to tag "));
}


/* the limiter's state in the window's header: offset 13 */
static uint64_t
t_le(const char *p, unsigned bytes)
{
    unsigned  k;
    uint64_t  v;

    for (v = 0, k = 0; k < bytes; k++) {
        v |= (uint64_t) (unsigned char) p[k] << (8 * k);
    }

    return v;
}


static void
test_state_header(void **state)
{
    dg_cmd_t        cmd;
    dg_state_req_t  req;

    (void) state;

    /* a new penalty: the state byte and pu (the throttle is its key) */
    t_state_req(&req, DG_ACTION_PASS, DG_ACTION_THROTTLE, 600000);
    assert_int_equal(dg_state_cmd(&cmd, &req, 7), 0);
    assert_int_equal(cmd.argc, 4);
    assert_memory_equal(cmd.argv[0], "SETRANGE", 8);
    assert_memory_equal(cmd.argv[1], "dg:{" T_KEY_ID "}:w",
                        cmd.argvlen[1]);
    assert_memory_equal(cmd.argv[2], "13", 2);
    assert_int_equal(cmd.argvlen[3], 7);
    assert_int_equal((unsigned char) cmd.argv[3][0], 8 + 2 * 2);
    assert_true(t_le(cmd.argv[3] + 1, 6) == 1700000600000ULL);

    /* a renewed one: the same */
    t_state_req(&req, DG_ACTION_THROTTLE, DG_ACTION_THROTTLE, 600000);
    assert_int_equal(dg_state_cmd(&cmd, &req, 7), 0);
    assert_int_equal(cmd.argvlen[3], 7);

    /* no penalty: the state byte alone */
    t_state_req(&req, DG_ACTION_PASS, DG_ACTION_TAG, 0);
    assert_int_equal(dg_state_cmd(&cmd, &req, 7), 0);
    assert_int_equal(cmd.argvlen[3], 1);
    assert_int_equal((unsigned char) cmd.argv[3][0], 8 + 1 * 2);
}


/* a renewed penalty: state and set written, no event */
static void
test_state_renew(void **state)
{
    t_state_t       t;
    dg_state_req_t  req;

    (void) state;

    t_state_req(&req, DG_ACTION_THROTTLE, DG_ACTION_THROTTLE, 600000);
    t_state_all(&t, &req);

    /* the throttle's slot is left to Redis's limiter */
    assert_int_equal(t.rc[0], 0);
    assert_string_equal(t.text[0],
        "HSET dg:{" T_KEY_ID "}:s st 2 pu 1700000600000");
    assert_int_equal(t.rc[1], 0);
    assert_int_equal(t.rc[2], 0);
    assert_string_equal(t.cmd[2], "ZADD");
    assert_int_equal(t.rc[3], 0);
    assert_int_equal(t.rc[4], 0);
    assert_int_equal(t.rc[5], 1);
    assert_int_equal(t.rc[6], 1);
}


/* what the policy decides is what the state commands are made of */
static void
test_policy_to_state(void **state)
{
    t_state_t         t;
    dg_score_t        s;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_state_req_t    req;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_score(&s, 100);
    t_prof(&prof, DG_ACTION_THROTTLE, 0, DG_REFUSED_NONE, 0);

    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_true(v.write_state);

    t_state_req(&req, v.from, v.to, v.penalty_ms);
    t_state_all(&t, &req);
    assert_string_equal(t.text[0], "HSET dg:{" T_KEY_ID "}:s st 0");
    assert_int_equal(t.rc[2], 1);
    assert_non_null(strstr(t.text[5], " from throttle to pass "));

    t_score(&s, 900);
    t_prof(&prof, DG_ACTION_THROTTLE, 1000, DG_REFUSED_NONE, 0);
    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_true(v.write_state);

    t_state_req(&req, v.from, v.to, v.penalty_ms);
    t_state_all(&t, &req);
    assert_string_equal(t.text[0],
        "HSET dg:{" T_KEY_ID "}:s st 2 pu 1700000600000");
    assert_int_equal(t.rc[5], 1);
}


/*
 * A key left in state throttle whose penalty ran out while it was idle,
 * and that comes back at the throttle level, starts a fresh penalty with
 * from == to == throttle: the crossing request takes the throttle's
 * first period (tt), in Redis as in the fallback limiter, as a penalty
 * started from pass or tag does.
 */
static void
test_policy_restart(void **state)
{
    t_state_t         t;
    dg_score_t        s;
    dg_verdict_t      v;
    dg_profile_t      prof;
    dg_state_req_t    req;
    dg_policy_conf_t  conf;

    (void) state;

    t_conf(&conf);
    t_score(&s, 900);
    t_prof(&prof, DG_ACTION_THROTTLE, 0, DG_REFUSED_NONE, 0);

    dg_policy_decide(&v, &conf, &s, &prof, DG_REFUSED_NONE, 0);
    assert_int_equal(v.from, DG_ACTION_THROTTLE);
    assert_int_equal(v.to, DG_ACTION_THROTTLE);
    assert_true(v.write_state);
    assert_int_equal(v.penalty_ms, T_PENALTY_MS);
    assert_int_equal(v.mirror_next_ms, T_THROTTLE_MS);

    assert_true(v.fresh);

    t_state_req(&req, v.from, v.to, v.penalty_ms);
    req.fresh = v.fresh;
    t_state_all(&t, &req);

    assert_string_equal(t.text[0],
        "HSET dg:{" T_KEY_ID "}:s st 2 pu 1700000600000");
    assert_string_equal(t.text[9],
        "SET dg:{" T_KEY_ID "}:t 1700000010000 PX 10000");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_stay),
        cmocka_unit_test(test_pass_to_tag),
        cmocka_unit_test(test_to_throttle),
        cmocka_unit_test(test_throttle_stays),
        cmocka_unit_test(test_throttle_ends),
        cmocka_unit_test(test_tag_to_pass),
        cmocka_unit_test(test_renew),
        cmocka_unit_test(test_refused_rate),
        cmocka_unit_test(test_refused_throttle),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_redis_unavailable),
        cmocka_unit_test(test_local_limiter),
        cmocka_unit_test(test_state_to_pass),
        cmocka_unit_test(test_state_to_throttle),
        cmocka_unit_test(test_state_header),
        cmocka_unit_test(test_state_renew),
        cmocka_unit_test(test_policy_to_state),
        cmocka_unit_test(test_policy_restart),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
