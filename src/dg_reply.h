/*
 * distill-guard engine: the replies of a request's Redis exchanges, as
 * hiredis parsed them, turned into the profile.
 */

#ifndef DG_REPLY_H
#define DG_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "dg_profile.h"
#include "dg_window.h"
#include "dg_window_log.h"


/*
 * The window exchange: the script's packed reply and the value the GET
 * after it read.  Unpacks the script's reply into v (DG_WREPLY_N), keeps
 * the value in value (DG_WIN_SIZE bytes) and computes the profile.
 * Returns 0, or -1 when either reply is missing or not what the window
 * script and the GET give (prof is then left as it was).
 */
int dg_reply_window(dg_profile_t *prof, uint64_t window_ms,
    const redisReply *script, const redisReply *get, char *value,
    int64_t *v);

/*
 * The gateway's own path (src/dg_window_log.h): the APPEND's reply (the
 * log's length), the throttle's SET NX GET (NULL when not sent) and the
 * MGET of the window, the log and the throttle.  The log is folded into
 * the window in value (DG_WIN_SIZE bytes) as the script would; v gets
 * what the script's reply would hold for this request, *pending the
 * records the log held and *log_ms the time of its oldest (0: none);
 * *take is 1 when the request takes a penalised key's throttle period
 * that no SET NX took for it (the caller's to send).  Returns 0, or -1
 * when a reply is not what these commands give.
 */
int dg_reply_window_log(dg_profile_t *prof, uint64_t window_ms,
    const redisReply *append, const redisReply *thr, const redisReply *mget,
    char *value, int64_t *v, unsigned *pending, uint64_t *log_ms,
    unsigned *take);

/* a fan-out counter's reply { keys, conversation keys }; 0 or -1 */
int dg_reply_fanout(dg_profile_t *prof, dg_fanout_t which,
    const redisReply *r);


#endif /* DG_REPLY_H */
