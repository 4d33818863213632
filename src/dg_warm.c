/*
 * distill-guard engine: what one worker knows of the keys it has seen
 * (see src/dg_warm.h).
 */

#include <string.h>

#include "dg_profile.h"
#include "dg_warm.h"
#include "dg_window_log.h"


static dg_warm_entry_t *dg_warm_find(dg_warm_t *wm, const char *key_id,
    uint64_t *id);


void
dg_warm_init(dg_warm_t *wm, dg_warm_entry_t *entry)
{
    wm->entry = entry;
    wm->offset_ms = 0;
    wm->offset_at_ms = 0;
}


void
dg_warm_plan(dg_warm_t *wm, const dg_window_req_t *req, uint64_t local_ms,
    dg_warm_plan_t *plan)
{
    uint64_t          id;
    dg_warm_entry_t  *e;

    memset(plan, 0, sizeof(dg_warm_plan_t));

    if (wm->entry == NULL || wm->offset_at_ms == 0
        || local_ms - wm->offset_at_ms > DG_WARM_CLOCK_MS
        || req->features == NULL || req->rate_ms != 0 || req->clock_ms != 0)
    {
        return;
    }

    e = dg_warm_find(wm, req->key_id, &id);

    if (e == NULL || e->id != id) {
        return;
    }

    plan->now_ms = (uint64_t) ((int64_t) local_ms + wm->offset_ms);

    if (e->until_ms <= plan->now_ms || e->pending >= DG_LOG_MAX
        || (e->pending
            && plan->now_ms > e->log_ms + dg_win_subw(req->window_ms)))
    {
        return;
    }

    plan->native = 1;
    plan->throttle = (e->penalty_ms > plan->now_ms && req->throttle_ms > 0);
    plan->penalty_ms = plan->throttle ? e->penalty_ms - plan->now_ms : 0;
    plan->expire = (e->pending == 0);

    /* the next request of this key counts this one's record too */
    if (e->pending++ == 0) {
        e->log_ms = plan->now_ms;
    }
}


void
dg_warm_clock(dg_warm_t *wm, uint64_t now_ms, uint64_t local_ms)
{
    if (now_ms == 0 || local_ms == 0) {
        return;
    }

    /*
     * the script read Redis's clock between the request's send and this
     * reply: off by less than the round trip
     */
    wm->offset_ms = (int64_t) now_ms - (int64_t) local_ms;
    wm->offset_at_ms = local_ms;
}


void
dg_warm_learn(dg_warm_t *wm, const char *key_id, const char *value,
    uint64_t window_ms, unsigned pending, uint64_t log_ms)
{
    uint64_t              id, newest;
    dg_warm_entry_t      *e;
    const unsigned char  *p;

    e = dg_warm_find(wm, key_id, &id);
    if (e == NULL) {
        return;
    }

    p = (const unsigned char *) value;

    if (p == NULL || p[0] != DG_WIN_VERSION || p[1] == 0) {
        if (e->id == id) {
            e->until_ms = 0;
        }

        return;
    }

    newest = dg_le(p + 7, 6);

    e->id = id;

    /*
     * the script sets the TTL as a sub-window starts, to a window and a
     * sub-window: the value lives at least a window after its newest
     * record
     */
    e->until_ms = (newest + window_ms > DG_WARM_MARGIN_MS)
                  ? newest + window_ms - DG_WARM_MARGIN_MS : 0;
    /* the state byte (8 + st * 2 when set), then pu */
    e->penalty_ms = (p[DG_WIN_STATE_OFF] >= 8)
                    ? dg_le(p + DG_WIN_STATE_OFF + 1, 6) : 0;
    e->pending = pending;
    e->log_ms = pending ? log_ms : 0;
}


int
dg_warm_commit(dg_warm_t *wm, const char *key_id, const char *old)
{
    uint32_t              tag;
    uint64_t              id;
    dg_warm_entry_t      *e;
    const unsigned char  *p;

    e = dg_warm_find(wm, key_id, &id);

    if (e == NULL || e->id != id) {
        return 1;
    }

    /*
     * a record changes the newest time, the ring's next slot or the
     * newest sub-window's count
     */
    p = (const unsigned char *) old;
    tag = (uint32_t) (((dg_le(p + 7, 6) ^ dg_le(p + DG_WIN_HDR, 4) << 20)
                       ^ (uint64_t) p[2] << 52)
                      * 0x9e3779b97f4a7c15ULL >> 32) | 1;

    if (e->committed == tag) {
        return 0;
    }

    e->committed = tag;

    return 1;
}


void
dg_warm_penalise(dg_warm_t *wm, const char *key_id, uint64_t penalty_end_ms)
{
    uint64_t          id;
    dg_warm_entry_t  *e;

    e = dg_warm_find(wm, key_id, &id);

    if (e != NULL && e->id == id) {
        e->penalty_ms = penalty_end_ms;
    }
}


void
dg_warm_forget(dg_warm_t *wm, const char *key_id)
{
    uint64_t          id;
    dg_warm_entry_t  *e;

    e = dg_warm_find(wm, key_id, &id);

    if (e != NULL && e->id == id) {
        e->until_ms = 0;
    }
}


/*
 * The entry of the key's slot (its id may be another key's) and the
 * key's 64 bits: the key id is a keyed hash in hex, already uniform
 */

static dg_warm_entry_t *
dg_warm_find(dg_warm_t *wm, const char *key_id, uint64_t *id)
{
    int               c;
    unsigned          i;
    uint64_t          v;
    dg_warm_entry_t  *e, *old;

    if (wm->entry == NULL || key_id == NULL) {
        return NULL;
    }

    v = 0;

    for (i = 0; i < DG_KEY_ID_LEN && key_id[i]; i++) {
        c = key_id[i];
        v = (v << 4) | (uint64_t) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }

    if (v == 0) {
        v = 1;
    }

    *id = v;

    /*
     * four ways a slot: a direct-mapped table of 16,384 loses some 30 of
     * 1,000 keys to collisions, each pair evicting the other for good.
     * The key's own entry, else the one whose window is known least
     */
    e = &wm->entry[(v % (DG_WARM_SLOTS / DG_WARM_WAYS)) * DG_WARM_WAYS];
    old = e;

    for (i = 0; i < DG_WARM_WAYS; i++) {
        if (e[i].id == v) {
            return &e[i];
        }

        if (e[i].until_ms < old->until_ms) {
            old = &e[i];
        }
    }

    return old;
}

