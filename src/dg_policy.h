/*
 * distill-guard engine: the policy that turns a request's score and its
 * key's window reply into an action, the key's next state, a penalty
 * and the reason of a refusal.  Plain C, no nginx.
 */

#ifndef DG_POLICY_H
#define DG_POLICY_H

#include <stdint.h>

#include "dg_score.h"
#include "dg_window.h"


/*
 * What a request gets.  A key's state is one of the first three: the
 * state hash in Redis, the events stream and $distill_guard_action use
 * the same numbers and names.
 */
typedef enum {
    DG_ACTION_PASS = 0,
    DG_ACTION_TAG,
    DG_ACTION_THROTTLE,                 /* refused by a limit */
    DG_ACTION_SKIP,                     /* not accounted: no key, bypass */
    DG_ACTION_UNAVAILABLE,              /* refused: Redis is unavailable
                                           and the fail mode is closed */
    DG_ACTION_N
} dg_action_t;


typedef struct {
    uint32_t            tag_milli;      /* score thresholds */
    uint32_t            throttle_milli;
    uint64_t            penalty_ms;
    uint64_t            throttle_ms;    /* the throttle's period */
    unsigned            shadow:1;       /* refuse nothing, say what would be */
    unsigned            fail_closed:1;
} dg_policy_conf_t;


typedef struct {
    dg_action_t         action;
    dg_refused_t        refused;        /* the limit that refused, or would
                                           have in shadow mode */
    uint32_t            signals;        /* the score's, and the reasons */
    unsigned            refuse:1;       /* answer with the reject status */
    unsigned            unavailable:1;  /* answer 503: fail closed */
    unsigned            would_refuse:1; /* shadow mode kept a refusal back */

    /* the key's state: written to Redis when write_state is set */
    dg_action_t         from;
    dg_action_t         to;
    unsigned            write_state:1;
    uint64_t            penalty_ms;     /* > 0: (re)start a penalty */
    unsigned            fresh:1;        /* the penalty starts now: none ran
                                           when this request came */

    /* the node's fallback limiter, kept in step with Redis */
    unsigned            mirror:1;
    uint64_t            mirror_penalty_ms;
    uint64_t            mirror_next_ms;
} dg_verdict_t;


/*
 * prof: the key's window reply, or NULL when Redis did not answer; then
 * local is the node's fallback limiter's verdict and unavailable says
 * whether Redis failed (rather than not being configured).
 */
void dg_policy_decide(dg_verdict_t *v, const dg_policy_conf_t *conf,
    const dg_score_t *s, const dg_profile_t *prof, dg_refused_t local,
    int unavailable);

const char *dg_action_name(dg_action_t action);


#endif /* DG_POLICY_H */
