/*
 * distill-guard engine: the Redis writes that record a key's change of
 * state (pass, tag, throttle) for every gateway node and for operators.
 */

#ifndef DG_STATE_H
#define DG_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_window.h"


#define DG_STATE_PASS           0
#define DG_STATE_TAG            1
#define DG_STATE_THROTTLE       2

#define DG_FLAGGED_MAX          1000        /* keys kept in <prefix>:flagged */
#define DG_EVENTS_MAX           10000       /* entries in <prefix>:events */
#define DG_MONITOR_TTL_MS       (24 * 3600 * 1000)


typedef struct {
    const char         *prefix;
    size_t              prefix_len;
    const char         *key_id;
    int                 from;
    int                 to;
    uint32_t            score_milli;
    const char         *signals;
    uint64_t            now_ms;         /* Redis clock, from the window reply */
    uint64_t            penalty_ms;     /* > 0: (re)start a penalty */
    uint64_t            ttl_ms;         /* of the key's state hash */
} dg_state_req_t;


/*
 * Fills cmd with the i-th command of a state change, starting at 0;
 * returns 0, or 1 when there are no more.  Each command touches one key.
 */
int dg_state_cmd(dg_cmd_t *cmd, const dg_state_req_t *req, unsigned i);

const char *dg_state_name(int state);


#endif /* DG_STATE_H */
