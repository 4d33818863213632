/*
 * distill-guard engine: what one worker knows of the keys it has seen,
 * to send a request down the gateway's own path (src/dg_window_log.h)
 * instead of the window script.  A key's window is known to be there
 * until a window after its newest record (the script's TTL); its penalty
 * is known from the window's header or from this worker's own verdict;
 * the clock is Redis's, as the window script's replies tell it.  A fixed
 * table, four entries a slot (a key pushes out the one whose window is
 * known least): what a worker does not know only sends a request to the
 * script.
 * Plain C, no nginx; one table per worker process, no locks.
 */

#ifndef DG_WARM_H
#define DG_WARM_H

#include <stddef.h>
#include <stdint.h>

#include "dg_window.h"


#define DG_WARM_SLOTS       16384       /* per worker: 640 KB */
#define DG_WARM_WAYS        4           /* entries a key may take */
#define DG_WARM_CLOCK_MS    10000       /* an offset this old is asked
                                           afresh (a script call) */
#define DG_WARM_MARGIN_MS   1000        /* clocks differ: the window is
                                           taken as gone this early */


typedef struct {
    uint64_t            id;             /* the key id's 64 bits; 0: free */
    uint64_t            until_ms;       /* the window is there till then */
    uint64_t            penalty_ms;     /* pu: the penalty's end */
    uint64_t            log_ms;         /* the log's oldest record, as
                                           known; 0: no log */
    uint32_t            pending;        /* records in the log, last seen */
    uint32_t            committed;      /* the window's front this worker
                                           last committed a fold on (a
                                           hash; 0: none) */
} dg_warm_entry_t;


typedef struct {
    dg_warm_entry_t    *entry;          /* DG_WARM_SLOTS */
    int64_t             offset_ms;      /* Redis's clock - the gateway's */
    uint64_t            offset_at_ms;   /* gateway's clock; 0: none yet */
} dg_warm_t;


/* the plan for one request */
typedef struct {
    uint64_t            now_ms;         /* Redis's clock, estimated */
    uint64_t            penalty_ms;     /* the penalty left, as known */
    unsigned            native:1;       /* the gateway's own path */
    unsigned            throttle:1;     /* with the throttle's SET NX */
    unsigned            expire:1;       /* with the log's PEXPIRE: the log
                                           is expected to start */
} dg_warm_plan_t;


/* entry: DG_WARM_SLOTS zeroed entries, owned by the caller */
void dg_warm_init(dg_warm_t *wm, dg_warm_entry_t *entry);

/*
 * Which path the request takes at local_ms (the gateway's clock, ms
 * since the epoch).  The script's, unless the request has no plain rate
 * and no test clock, the clock's offset is fresh, and the key's window
 * is known to be there with fewer than DG_LOG_MAX records waiting in its
 * log, the oldest of them less than a sub-window old (the log's TTL is
 * set as it starts: a sparse key's log is folded long before it ends).
 */
void dg_warm_plan(dg_warm_t *wm, const dg_window_req_t *req,
    uint64_t local_ms, dg_warm_plan_t *plan);

/* a window script's reply: Redis's clock was now_ms at local_ms */
void dg_warm_clock(dg_warm_t *wm, uint64_t now_ms, uint64_t local_ms);

/*
 * What a reply showed of the key: its window (NULL: none; else
 * DG_WIN_SIZE bytes), the records left in its log and the time of the
 * oldest (0: none).
 */
void dg_warm_learn(dg_warm_t *wm, const char *key_id, const char *value,
    uint64_t window_ms, unsigned pending, uint64_t log_ms);

/*
 * Whether to commit a fold made on the window whose front (DG_WIN_FRONT
 * bytes) is old: yes, once per front.  The replies of a hot key's
 * requests sent before the commit ran all read that front; one commit
 * covers them (the others would be refused by the script for a front
 * that changed).
 */
int dg_warm_commit(dg_warm_t *wm, const char *key_id, const char *old);

/* this worker penalised the key until penalty_end_ms */
void dg_warm_penalise(dg_warm_t *wm, const char *key_id,
    uint64_t penalty_end_ms);

/* the key's window is not known to be there (released, failed) */
void dg_warm_forget(dg_warm_t *wm, const char *key_id);


#endif /* DG_WARM_H */
