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

/* a fan-out counter's reply { keys, conversation keys }; 0 or -1 */
int dg_reply_fanout(dg_profile_t *prof, dg_fanout_t which,
    const redisReply *r);


#endif /* DG_REPLY_H */
