/*
 * distill-guard engine: a request's Redis replies into its profile.
 */

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
