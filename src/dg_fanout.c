/*
 * distill-guard engine: the cross-key counters as a gateway worker
 * remembers them (see dg_fanout.h).
 */

#include <string.h>

#include "dg_cmd.h"
#include "dg_fanout.h"
#include "dg_profile.h"
#include "dg_topic.h"


static uint64_t dg_fanout_value(const dg_window_req_t *req,
    dg_fanout_t which);
static uint64_t dg_fanout_str(const char *s, uint64_t h);
static uint64_t dg_fanout_seen_tag(const dg_window_req_t *req,
    dg_fanout_t which, uint64_t value);
static dg_fanout_count_t *dg_fanout_count(dg_fanout_cache_t *c,
    const dg_window_req_t *req, dg_fanout_t which, uint64_t value,
    uint64_t *tag);


void
dg_fanout_cache_init(dg_fanout_cache_t *c)
{
    memset(c, 0, sizeof(dg_fanout_cache_t));
}


uint64_t
dg_fanout_refresh_ms(uint64_t window_ms)
{
    return window_ms / 64 < DG_FANOUT_REFRESH_MAX ? window_ms / 64
                                                  : DG_FANOUT_REFRESH_MAX;
}


unsigned
dg_fanout_plan(dg_fanout_cache_t *c, const dg_window_req_t *req,
    dg_profile_t *prof, unsigned *add)
{
    int64_t             v[2];
    unsigned            k, skip, unseen;
    uint64_t            value, tag, t;
    dg_fanout_count_t  *e;

    skip = 0;
    *add = 0;

    for (k = 0; k < DG_FANOUT_N; k++) {
        value = dg_fanout_value(req, (dg_fanout_t) k);

        if (value == 0) {
            continue;
        }

        e = dg_fanout_count(c, req, (dg_fanout_t) k, value, &tag);

        if (e->tag != tag || req->now_ms < e->at_ms
            || req->now_ms - e->at_ms >= dg_fanout_refresh_ms(req->window_ms))
        {
            continue;
        }

        t = dg_fanout_seen_tag(req, (dg_fanout_t) k, value);
        unseen = (c->seen[t % DG_FANOUT_SEEN] != t);

        /* and this key, when it is about to be added */
        v[0] = e->keys + unseen;
        v[1] = e->conv;

        /*
         * Inside the score's ramp one key more or less changes the
         * verdict, and the count held may be late (keys of other workers
         * and nodes) or early (a key another worker added counts again):
         * Redis is asked unless what it last said is already at the top
         * (counts only grow within a bucket).  The common cases stay
         * cheap: a template of one key, or a frame of many.
         */
        if (k != DG_FANOUT_SUBNET && v[0] >= DG_FANOUT_KEYS_NONE
            && e->keys < DG_FANOUT_KEYS_FULL)
        {
            continue;
        }

        skip |= 1u << k;

        if (unseen) {
            *add |= 1u << k;
        }

        (void) dg_fanout_reply(prof, (dg_fanout_t) k, v, 2);
    }

    return skip;
}


void
dg_fanout_learn(dg_fanout_cache_t *c, const dg_window_req_t *req,
    const dg_profile_t *prof, unsigned asked)
{
    unsigned            k;
    uint64_t            value, tag, t;
    dg_fanout_count_t  *e;

    for (k = 0; k < DG_FANOUT_N; k++) {
        if (!(asked & (1u << k))) {
            continue;
        }

        value = dg_fanout_value(req, (dg_fanout_t) k);

        if (value == 0) {
            continue;
        }

        e = dg_fanout_count(c, req, (dg_fanout_t) k, value, &tag);
        e->tag = tag;
        e->keys = prof->fanout_keys[k];
        e->conv = prof->fanout_conv[k];
        e->at_ms = req->now_ms;

        t = dg_fanout_seen_tag(req, (dg_fanout_t) k, value);
        c->seen[t % DG_FANOUT_SEEN] = t;
    }
}


unsigned
dg_fanout_adds(dg_fanout_cache_t *c, const dg_window_req_t *req,
    unsigned add, const char *value, size_t len, unsigned slot)
{
    unsigned            k, out;
    uint32_t            fp;
    uint64_t            v, t, tag, bucket;
    int64_t             since;
    dg_fanout_count_t  *e;

    out = 0;
    bucket = req->now_ms / req->window_ms;

    /*
     * An earlier request in this bucket or the one before added the key
     * to this bucket's counter (each request adds to its bucket and the
     * next)
     */
    since = bucket > 0 ? (int64_t) ((bucket - 1) * req->window_ms) : 0;

    for (k = 0; k < DG_FANOUT_N; k++) {
        if (!(add & (1u << k))) {
            continue;
        }

        v = dg_fanout_value(req, (dg_fanout_t) k);

        if (v == 0) {
            continue;
        }

        t = dg_fanout_seen_tag(req, (dg_fanout_t) k, v);
        c->seen[t % DG_FANOUT_SEEN] = t;

        if (k != DG_FANOUT_SUBNET && value != NULL) {
            fp = (k == DG_FANOUT_HEAD) ? req->features->template_head
                                       : req->features->template_tail;

            if (dg_profile_sent_template(value, len, req->window_ms,
                                         (int64_t) req->now_ms, slot,
                                         (dg_fanout_t) k, dg_fold12(fp),
                                         since))
            {
                continue;
            }
        }

        /* a key new to the counter: this worker knows it at once */
        e = dg_fanout_count(c, req, (dg_fanout_t) k, v, &tag);

        if (e->tag == tag) {
            e->keys++;
        }

        out |= 1u << k;
    }

    return out;
}


int
dg_fanout_add_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    dg_fanout_t which, const char *sha)
{
    int  rc;

    rc = dg_fanout_cmd(cmd, req, which, sha);

    if (rc != 0) {
        return rc;
    }

    return dg_cmd_add(cmd, "add", 3) == 0 ? 0 : -1;
}


/* what a counter counts for this request, hashed; 0: nothing */

static uint64_t
dg_fanout_value(const dg_window_req_t *req, dg_fanout_t which)
{
    uint32_t  fp;

    switch (which) {

    case DG_FANOUT_HEAD:
    case DG_FANOUT_TAIL:
        if (req->features == NULL || req->features->prior != 0) {
            return 0;
        }

        fp = (which == DG_FANOUT_HEAD) ? req->features->template_head
                                       : req->features->template_tail;

        return fp ? dg_mix64((uint64_t) fp << 2 | which) | 1 : 0;

    case DG_FANOUT_SUBNET:
        if (req->subnet == NULL || req->subnet[0] == '\0') {
            return 0;
        }

        return dg_fanout_str(req->subnet, DG_FANOUT_SUBNET) | 1;

    default:
        return 0;
    }
}


/* a string hashed 8 bytes at a time */

static uint64_t
dg_fanout_str(const char *s, uint64_t h)
{
    size_t    len, n;
    uint64_t  b;

    len = strlen(s);

    while (len) {
        n = len < 8 ? len : 8;
        b = 0;
        memcpy(&b, s, n);
        h = dg_mix64(h ^ b ^ (uint64_t) n << 59);
        s += n;
        len -= n;
    }

    return h;
}


static uint64_t
dg_fanout_seen_tag(const dg_window_req_t *req, dg_fanout_t which,
    uint64_t value)
{
    uint64_t  h;

    h = dg_fanout_str(req->key_id, value ^ which);
    h = dg_mix64(h ^ (req->now_ms / req->window_ms));

    return h | 1;
}


static dg_fanout_count_t *
dg_fanout_count(dg_fanout_cache_t *c, const dg_window_req_t *req,
    dg_fanout_t which, uint64_t value, uint64_t *tag)
{
    *tag = dg_mix64(value ^ which ^ (req->now_ms / req->window_ms) << 2)
           | 1;

    return &c->counts[*tag % DG_FANOUT_COUNTS];
}
