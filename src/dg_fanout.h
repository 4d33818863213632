/*
 * distill-guard engine: what a gateway worker remembers of the cross-key
 * counters (src/dg_fanout.lua), so that a request does not pay three
 * more script calls in Redis.
 *
 * Two tables, both direct-mapped (a collision only costs a command):
 *
 * - the counts: per counter (template head, tail, client network) and
 *   bucket, the distinct keys and conversation keys Redis last answered,
 *   and when.  A count younger than the refresh period answers the
 *   request; an older one, or none, is asked with the request's window
 *   script, in the same pipeline (the count command also adds the key).
 *   So is a template's count inside the score's ramp (DG_FANOUT_KEYS_NONE
 *   to _FULL keys, this one included), where one key more or less
 *   changes the verdict: a template of one key and a frame of many are
 *   answered from the table, the few that a handful of keys share are
 *   asked every time.
 * - the keys seen: per key, counter and bucket, that this worker has
 *   added the key.  A key answered from the counts and not yet added is
 *   added after the reply, without waiting (fire and forget), unless its
 *   window shows an earlier one-shot request on the same template in the
 *   bucket or the one before, which added it (any worker, any node).
 *
 * Accuracy: a count answered from the table counts the keys this worker
 * added since it was fetched at once, and those that other workers and
 * nodes added within one refresh period (dg_fanout_refresh_ms); a key
 * another worker had added already is counted once more by this one,
 * until the next refresh.  Neither happens inside the ramp.
 */

#ifndef DG_FANOUT_H
#define DG_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "dg_window.h"


#define DG_FANOUT_SEEN          262144  /* key x counter entries: 2 MB */
#define DG_FANOUT_COUNTS        4096    /* counter entries */
#define DG_FANOUT_REFRESH_MAX   1000    /* ms */


typedef struct {
    uint64_t            tag;            /* 0: empty */
    int64_t             keys;
    int64_t             conv;
    uint64_t            at_ms;          /* gateway clock */
} dg_fanout_count_t;


typedef struct {
    uint64_t            seen[DG_FANOUT_SEEN];
    dg_fanout_count_t   counts[DG_FANOUT_COUNTS];
} dg_fanout_cache_t;


void dg_fanout_cache_init(dg_fanout_cache_t *c);

/* the refresh period: 1 s, or window / 64 for short windows */
uint64_t dg_fanout_refresh_ms(uint64_t window_ms);

/*
 * Before a request is sent: the counters answered from the table (their
 * counts go into prof as dg_fanout_reply does) as a mask of 1 <<
 * dg_fanout_t; *add gets those of them the key may still have to be
 * added to.  Counters with nothing to count are in neither mask.
 */
unsigned dg_fanout_plan(dg_fanout_cache_t *c, const dg_window_req_t *req,
    dg_profile_t *prof, unsigned *add);

/*
 * After the replies: the counts of the counters in asked (what Redis
 * answered, in prof->fanout_keys, fanout_conv) are kept, and the key is
 * seen on them.
 */
void dg_fanout_learn(dg_fanout_cache_t *c, const dg_window_req_t *req,
    const dg_profile_t *prof, unsigned asked);

/*
 * Of the counters in add, those the key must be added to (a mask):
 * value is the window as read after this request's script (NULL: none),
 * slot its record.  The key counts as seen on the ones returned.
 */
unsigned dg_fanout_adds(dg_fanout_cache_t *c, const dg_window_req_t *req,
    unsigned add, const char *value, size_t len, unsigned slot);

/*
 * The fire-and-forget command that adds the key to a counter, without
 * counting: 0, 1 when there is nothing to add, -1 on bad arguments.
 */
int dg_fanout_add_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    dg_fanout_t which, const char *sha);


#endif /* DG_FANOUT_H */
