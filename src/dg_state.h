/*
 * distill-guard engine: the Redis writes that record a key's change of
 * state (pass, tag, throttle) for every gateway node and for operators.
 */

#ifndef DG_STATE_H
#define DG_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_policy.h"
#include "dg_window.h"


#define DG_FLAGGED_MAX          1000        /* keys kept in <prefix>:flagged */
#define DG_EVENTS_MAX           10000       /* entries in <prefix>:events */
#define DG_MONITOR_TTL_MS       (24 * 3600 * 1000)


typedef struct {
    const char         *prefix;
    size_t              prefix_len;
    const char         *key_id;
    dg_action_t         from;
    dg_action_t         to;
    uint32_t            score_milli;
    const char         *signals;
    uint64_t            now_ms;         /* Redis clock, from the window reply */
    uint64_t            penalty_ms;     /* > 0: (re)start a penalty */
    uint64_t            throttle_ms;    /* the throttle's period */
    unsigned            fresh:1;        /* a penalty that starts now: the
                                           request that started it took
                                           the throttle's first period */
    uint64_t            ttl_ms;         /* of the key's state hash */
} dg_state_req_t;


#define DG_STATE_CMDS           10          /* commands of a change, at most */


/*
 * Fills cmd with the i-th command (0 .. DG_STATE_CMDS - 1) of a change of
 * state; returns 0, 1 when this one is not needed for this change, or -1.
 * Each command touches one key.
 */
int dg_state_cmd(dg_cmd_t *cmd, const dg_state_req_t *req, unsigned i);


#endif /* DG_STATE_H */
