/*
 * distill-guard engine: a request's Redis replies into its profile.
 */

#include <stdlib.h>
#include <string.h>

#include "dg_reply.h"


int
dg_reply_window(dg_profile_t *prof, uint64_t window_ms,
    const redisReply *script, const redisReply *get, char *value,
    int64_t *v)
{
    size_t  n;

    if (script == NULL || get == NULL
        || script->type != REDIS_REPLY_STRING
        || get->type != REDIS_REPLY_STRING
        || get->len != DG_WIN_SIZE)
    {
        return -1;
    }

    n = dg_window_unpack(script->str, script->len, v);
    if (n == 0) {
        return -1;
    }

    memcpy(value, get->str, DG_WIN_SIZE);

    return dg_window_reply(prof, window_ms, value, DG_WIN_SIZE, v, n);
}


int
dg_reply_window_log(dg_profile_t *prof, uint64_t window_ms,
    const redisReply *append, const redisReply *thr, const redisReply *mget,
    char *value, int64_t *v, unsigned *pending, uint64_t *log_ms,
    unsigned *take)
{
    int                   have;
    size_t                loglen;
    unsigned              mine, slot, m, st, prov;
    uint64_t              t, pu, end;
    const char           *log;
    const redisReply     *w, *l;
    const unsigned char  *p;

    if (append == NULL || mget == NULL
        || append->type != REDIS_REPLY_INTEGER
        || append->integer < DG_LOG_RSZ
        || mget->type != REDIS_REPLY_ARRAY || mget->elements != 3)
    {
        return -1;
    }

    *take = 0;

    w = mget->element[0];
    l = mget->element[1];

    have = (w->type == REDIS_REPLY_STRING && w->len == DG_WIN_SIZE);

    if (have) {
        memcpy(value, w->str, DG_WIN_SIZE);
    }

    log = (l->type == REDIS_REPLY_STRING) ? l->str : NULL;
    loglen = log ? l->len : 0;

    /* this request's record is the last the APPEND saw */
    mine = (unsigned) (append->integer / DG_LOG_RSZ) - 1;

    p = (const unsigned char *) value;
    slot = 0;
    t = 0;
    prov = DG_PROVENANCE_NONE;

    if (mine >= loglen / DG_LOG_RSZ) {
        /*
         * a script call of another connection came between the APPEND
         * and the MGET and folded the log: the record is in the window,
         * taken as its newest (a request of the same key right after it
         * would be taken instead)
         */
        if (!have) {
            return -1;
        }

        slot = (p[2] + DG_WIN_RING - 1) % DG_WIN_RING;
        t = dg_le(p + 7, 6);
    }

    m = dg_window_fold(value, have, log, loglen, window_ms, mine, &slot, &t,
                       &prov);

    if (!have && m == 0) {
        return -1;
    }

    st = (p[DG_WIN_STATE_OFF] >= 8) ? (p[DG_WIN_STATE_OFF] >> 1) & 3 : 0;

    pu = (p[DG_WIN_STATE_OFF] >= 8) ? dg_le(p + DG_WIN_STATE_OFF + 1, 6)
                                     : 0;

    v[DG_WREPLY_NOW_MS] = (int64_t) t;
    v[DG_WREPLY_PROVENANCE] = prov;
    v[DG_WREPLY_SLOT] = slot;
    v[DG_WREPLY_STATE] = st;
    v[DG_WREPLY_REFUSED] = DG_REFUSED_NONE;
    v[DG_WREPLY_PENALTY_MS] = (pu > t) ? (int64_t) (pu - t) : 0;
    v[DG_WREPLY_RETRY_MS] = 0;
    v[DG_WREPLY_REMAINING] = 0;

    /*
     * the throttle's period was taken already: refused until its end,
     * while the key is penalised (its SET NX GET answers the end).  A
     * penalty this worker did not know of (another set it): the period
     * as the MGET read it; a free one is this request's, which the
     * caller takes (*take) with a SET NX of its own
     */
    if (thr == NULL) {
        thr = mget->element[2];

        if (pu > t && thr->type != REDIS_REPLY_STRING) {
            *take = 1;
        }
    }

    if (thr->type == REDIS_REPLY_STRING && pu > t) {
        end = strtoull(thr->str, NULL, 10);

        if (end > t) {
            v[DG_WREPLY_REFUSED] = DG_REFUSED_THROTTLE;
            v[DG_WREPLY_RETRY_MS] = (int64_t) (end - t);

        } else {
            *take = 1;
        }
    }

    *pending = (unsigned) (loglen / DG_LOG_RSZ);
    *log_ms = *pending ? dg_le((const unsigned char *) log, 6) : 0;

    return dg_window_reply(prof, window_ms, value, DG_WIN_SIZE, v,
                           DG_WREPLY_N);
}


int
dg_reply_fanout(dg_profile_t *prof, dg_fanout_t which, const redisReply *r)
{
    size_t   i, n;
    int64_t  v[2];

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return -1;
    }

    n = r->elements < 2 ? r->elements : 2;

    for (i = 0; i < n; i++) {
        v[i] = r->element[i]->type == REDIS_REPLY_INTEGER
               ? r->element[i]->integer : 0;
    }

    return dg_fanout_reply(prof, which, v, n);
}
