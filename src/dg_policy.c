/*
 * distill-guard engine: from score and window reply to a verdict.
 *
 * A key moves between pass, tag and throttle as its score says: at the
 * throttle threshold it starts a penalty (renewed once half of it is
 * gone while the score stays there), and it stays throttled until the
 * penalty ends, whatever its score meanwhile.  Redis's limiter has
 * already said whether this request is refused (the plain rate, or the
 * throttle of a penalised key); when Redis did not answer, the node's
 * fallback limiter says it instead.  Shadow mode computes all of this
 * and refuses nothing.
 */

#include <string.h>

#include "dg_policy.h"


static const char  *dg_action_names[DG_ACTION_N] = {
    "pass", "tag", "throttle", "skip", "unavailable"
};


const char *
dg_action_name(dg_action_t action)
{
    return (action < DG_ACTION_N) ? dg_action_names[action] : "pass";
}


static void
dg_policy_transition(dg_verdict_t *v, const dg_policy_conf_t *conf,
    const dg_score_t *s, const dg_profile_t *prof)
{
    int  renew;

    v->from = (prof->state == DG_ACTION_TAG) ? DG_ACTION_TAG
              : (prof->state == DG_ACTION_THROTTLE) ? DG_ACTION_THROTTLE
              : DG_ACTION_PASS;
    renew = 0;

    if (s->score_milli >= conf->throttle_milli) {
        v->to = DG_ACTION_THROTTLE;
        renew = (uint64_t) prof->penalty_ms < conf->penalty_ms / 2;

    } else if (prof->penalty_ms > 0) {
        v->to = DG_ACTION_THROTTLE;

    } else if (s->score_milli >= conf->tag_milli) {
        v->to = DG_ACTION_TAG;

    } else {
        v->to = DG_ACTION_PASS;
    }

    v->write_state = (v->to != v->from || renew);
    v->penalty_ms = (v->to == DG_ACTION_THROTTLE
                     && (renew || v->from != v->to))
                    ? conf->penalty_ms : 0;
    v->fresh = (v->penalty_ms && prof->penalty_ms <= 0);

    if (v->to == DG_ACTION_THROTTLE) {
        /*
         * when Redis lets the key's next request through: a new penalty
         * counts this request as its first period's (src/dg_state.c)
         */
        v->mirror = 1;
        v->mirror_penalty_ms = v->penalty_ms ? v->penalty_ms
                                             : (uint64_t) prof->penalty_ms;
        v->mirror_next_ms = (prof->refused == DG_REFUSED_THROTTLE)
                            ? (uint64_t) prof->retry_ms
                            : (prof->penalty_ms || v->penalty_ms)
                              ? conf->throttle_ms : 0;

    } else if (v->from == DG_ACTION_THROTTLE) {
        v->mirror = 1;
    }
}


void
dg_policy_decide(dg_verdict_t *v, const dg_policy_conf_t *conf,
    const dg_score_t *s, const dg_profile_t *prof, dg_refused_t local,
    int unavailable)
{
    dg_refused_t  refused;

    memset(v, 0, sizeof(dg_verdict_t));

    v->action = DG_ACTION_PASS;
    v->signals = s->signals;
    v->from = DG_ACTION_PASS;
    v->to = DG_ACTION_PASS;

    if (prof) {
        dg_policy_transition(v, conf, s, prof);
        refused = (prof->refused == DG_REFUSED_THROTTLE
                   || prof->refused == DG_REFUSED_RATE)
                  ? (dg_refused_t) prof->refused : DG_REFUSED_NONE;

    } else {
        if (unavailable) {
            v->signals |= 1u << DG_SIG_REDIS_UNAVAILABLE;
        }

        refused = local;
    }

    if (refused != DG_REFUSED_NONE) {
        v->refused = refused;
        v->signals |= 1u << (refused == DG_REFUSED_RATE ? DG_SIG_RATE_LIMIT
                                                         : DG_SIG_PENALTY);

        if (conf->shadow) {
            v->action = DG_ACTION_TAG;
            v->would_refuse = 1;

        } else {
            v->action = DG_ACTION_THROTTLE;
            v->refuse = 1;
        }

    } else if (s->score_milli >= conf->tag_milli
               || v->to != DG_ACTION_PASS)
    {
        v->action = DG_ACTION_TAG;
    }

    if (prof == NULL && unavailable && conf->fail_closed && !v->refuse) {
        if (conf->shadow) {
            v->would_refuse = 1;

        } else {
            v->action = DG_ACTION_UNAVAILABLE;
            v->unavailable = 1;
        }
    }
}
