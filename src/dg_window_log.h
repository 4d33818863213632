/*
 * distill-guard engine: the gateway's own path to a key's window, without
 * the window script.  A request of a key whose window this worker knows
 * is there APPENDs its record to the key's pending log
 * <prefix>:{<key_id>}:p and reads the window, the log and the throttle
 * back (MGET); a penalised key's throttle is SET <prefix>:{<key_id>}:t
 * NX GET.  The gateway folds the log into the window as the script
 * would (dg_window_fold), and the script folds it for good at its next
 * call.  Which path a request takes is dg_warm_plan's (src/dg_warm.h).
 * Plain C: no nginx, no hiredis.
 */

#ifndef DG_WINDOW_LOG_H
#define DG_WINDOW_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "dg_profile.h"
#include "dg_window.h"


#define DG_LOG_RSZ          24          /* now u48, topic u16 (DG_LOG_*
                                           flags), topic_last u16, ht u24,
                                           sent u16, prior u16, opening
                                           u16, bytes u40 */
#define DG_LOG_COT          0x1000      /* the request elicits reasoning */
#define DG_LOG_LONG         0x2000      /* its last turn is a message */
#define DG_LOG_MAX          16          /* records a log holds before the
                                           script folds it */
#define DG_LOG_COMMIT       8           /* records the gateway folds
                                           before it commits its fold */


/*
 * The record of this request at now_ms on Redis's clock, into buf
 * (DG_LOG_RSZ bytes): what the window script's argument holds of it,
 * folded as the script takes it.  Returns DG_LOG_RSZ, or 0 without
 * features.
 */
size_t dg_log_record(char *buf, const dg_window_req_t *req,
    uint64_t now_ms);

/*
 * Whether value (DG_WIN_SIZE bytes) is a window of this layout for
 * window_ms: else the script, and a fold, start it afresh
 */
int dg_window_usable(const char *value, uint64_t window_ms);

/*
 * Adds the log's records (loglen / DG_LOG_RSZ of them, oldest first) to
 * the window value (DG_WIN_SIZE bytes) exactly as the window script
 * does at its start, a claimed history checked against the ring as it
 * stands before each record; a value that is not a window of this
 * layout for window_ms (have == 0: the key has no window) starts
 * afresh, with no limiter state.  *slot, *t and *prov get the ring
 * slot, time and provenance of record mine (0-based); they are left as
 * they are when the log holds fewer.  Returns the records added.
 */
unsigned dg_window_fold(char *value, int have, const char *log,
    size_t loglen, uint64_t window_ms, unsigned mine, unsigned *slot,
    uint64_t *t, unsigned *prov);

/* APPEND <prefix>:{<key_id>}:p <record>; 0, or -1 on bad arguments */
int dg_window_append_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *rec, size_t len);

/* PEXPIRE of the log: one window and one sub-window, as the window's */
int dg_window_log_expire_cmd(dg_cmd_t *cmd, const dg_window_req_t *req);

/*
 * SET <prefix>:{<key_id>}:t <now + throttle_ms> PX <throttle_ms, or the
 * penalty_ms left if shorter> NX GET: the throttle's period, as the
 * script takes it
 */
int dg_window_throttle_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    uint64_t now_ms, uint64_t penalty_ms);

/*
 * The window script's commit of the gateway's fold: EVALSHA <sha> 2
 * <prefix>:{<key_id>}:w :p <old front> <loglen> <ttl> then offset and
 * bytes of each part of value that the fold changed.  old is the window
 * as read (DG_WIN_ROFF bytes at least), value the same with the log's
 * first loglen bytes folded in (dg_window_fold); the script writes the
 * parts if the front is still old's and drops those bytes of the log.
 * The parts are referred to, not copied: value must outlive cmd.  0, or
 * -1 when there is nothing to commit (no record, a window started
 * afresh) or on bad arguments.
 */
int dg_window_commit_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *sha, const char *old, const char *value, size_t loglen);

/*
 * MGET <prefix>:{<key_id>}:w :p :t: the window, the log, and the
 * throttle's period for a penalty this worker did not know of
 */
int dg_window_mget_cmd(dg_cmd_t *cmd, const dg_window_req_t *req);


#endif /* DG_WINDOW_LOG_H */
