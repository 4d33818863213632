/*
 * distill-guard engine: the commands of the per-key sliding window and
 * of the cross-key counters, and the window profile they return.
 *
 * Key names (doc/redis-keys.md):
 *   <prefix>:{<key_id>}:w          the key's window (src/dg_window.lua)
 *   <prefix>:{h:<head hex>}:<n>    distinct keys per template head,
 *   <prefix>:{t:<tail hex>}:<n>    ... tail,
 *   <prefix>:{n:<network>}:<n>     ... client network (src/dg_fanout.lua)
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dg_cmd.h"
#include "dg_profile.h"
#include "dg_window.h"


#define DG_WINDOW_MS_MAX    2147483647  /* the script's timestamps wrap at
                                           2^32 ms and need window < 2^31 */


static int dg_window_valid(const char *s, size_t len);
static size_t dg_milli(char *buf, size_t size, int64_t v);


int
dg_window_cmd(dg_cmd_t *cmd, const dg_window_req_t *req, const char *sha)
{
    char                  args[DG_WARGS_LEN];
    uint64_t              v[DG_WARG_N];
    const dg_features_t  *f;

    f = req->features;

    if (f == NULL) {
        return -1;
    }

    if (dg_window_start(cmd, req, sha, dg_window_lua, dg_window_lua_len, 4)
        != 0)
    {
        return -1;
    }

    v[DG_WARG_WINDOW_MS] = req->window_ms;
    v[DG_WARG_TOPIC] = f->topic;
    v[DG_WARG_HEAD] = dg_fold12(f->template_head);
    v[DG_WARG_TAIL] = dg_fold12(f->template_tail);
    v[DG_WARG_FLAGS] = (f->prior == 0 ? 1 : 0) | (f->cot > 0 ? 2 : 0)
                       | (f->tokens >= DG_MESSAGE_TOKENS ? 4 : 0);
    v[DG_WARG_BYTES] = f->bytes;
    /* the tests' clock; 0: Redis's TIME */
    v[DG_WARG_NOW_MS] = req->clock_ms;
    v[DG_WARG_THROTTLE_MS] = req->throttle_ms;
    v[DG_WARG_RATE_MS] = req->rate_ms;
    v[DG_WARG_RATE_BURST] = req->rate_burst;
    v[DG_WARG_SHADOW] = req->shadow;
    v[DG_WARG_TOPIC_LAST] = f->topic_last;
    v[DG_WARG_SENT] = dg_fold16(f->sent);
    v[DG_WARG_PRIOR] = dg_fold16(f->prior);
    v[DG_WARG_OPENING] = dg_fold16_opening(f->opening);

    if (dg_window_key_add(cmd, req, 'w') != 0
        || dg_window_key_add(cmd, req, 's') != 0
        || dg_window_key_add(cmd, req, 'p') != 0
        || dg_window_key_add(cmd, req, 't') != 0
        || dg_cmd_add(cmd, args, dg_window_pack(args, v)) != 0)
    {
        return -1;
    }

    return 0;
}


size_t
dg_window_pack(char *buf, const uint64_t *v)
{
    int             i;
    unsigned        k;
    unsigned char  *p;

    static const unsigned char  size[DG_WARG_N] = {
        4, 2, 2, 2, 1, 5, 6, 4, 4, 4, 1, 2, 2, 2, 2
    };

    p = (unsigned char *) buf;

    for (i = 0; i < DG_WARG_N; i++) {
        for (k = 0; k < size[i]; k++) {
            *p++ = (unsigned char) (v[i] >> (8 * k));
        }
    }

    return (size_t) (p - (unsigned char *) buf);
}


int
dg_window_get_cmd(dg_cmd_t *cmd, const dg_window_req_t *req)
{
    return dg_window_key_cmd(cmd, req, "GET", 'w');
}


int
dg_window_key_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *verb, char suffix)
{
    dg_cmd_init(cmd);

    if (req->prefix == NULL || req->key_id == NULL
        || req->prefix_len > 0x7fffffff
        || !dg_window_valid(req->prefix, req->prefix_len)
        || !dg_window_valid(req->key_id, strlen(req->key_id))
        || req->key_id[0] == '\0')
    {
        return -1;
    }

    if (dg_cmd_add(cmd, verb, strlen(verb)) != 0
        || dg_window_key_add(cmd, req, suffix) != 0)
    {
        return -1;
    }

    return 0;
}


/* copied, not printed: printf was a tenth of a request's command work */

int
dg_window_key_add(dg_cmd_t *cmd, const dg_window_req_t *req, char suffix)
{
    char    name[sizeof(cmd->buf)], *p;
    size_t  idlen;

    idlen = strlen(req->key_id);

    if (req->prefix_len + idlen + 5 > sizeof(name)) {
        return -1;
    }

    p = name;
    memcpy(p, req->prefix, req->prefix_len);
    p += req->prefix_len;
    *p++ = ':';
    *p++ = '{';
    memcpy(p, req->key_id, idlen);
    p += idlen;
    *p++ = '}';
    *p++ = ':';
    *p++ = suffix;

    return dg_cmd_add(cmd, name, (size_t) (p - name));
}


int
dg_fanout_cmd(dg_cmd_t *cmd, const dg_window_req_t *req, dg_fanout_t which,
    const char *sha)
{
    int        n;
    char       tag[80];
    size_t     len;
    unsigned   nkeys;
    uint32_t   fp;
    uint64_t   bucket;

    nkeys = 3;

    switch (which) {

    case DG_FANOUT_HEAD:
    case DG_FANOUT_TAIL:
        if (req->features == NULL) {
            return -1;
        }

        fp = (which == DG_FANOUT_HEAD) ? req->features->template_head
                                       : req->features->template_tail;

        /*
         * Only one-shot prompts count: "thanks, can you explain that?"
         * said in many people's conversations is no campaign's template
         */
        if (fp == 0 || req->features->prior != 0) {
            return 1;
        }

        n = snprintf(tag, sizeof(tag), "%c:%08" PRIx32,
                     which == DG_FANOUT_HEAD ? 'h' : 't', fp);
        break;

    case DG_FANOUT_SUBNET:
        if (req->subnet == NULL || req->subnet[0] == '\0') {
            return 1;
        }

        len = strlen(req->subnet);

        /* a brace would move the hash tag */
        if (!dg_window_valid(req->subnet, len)) {
            return -1;
        }

        n = snprintf(tag, sizeof(tag), "n:%s", req->subnet);
        nkeys = 2;
        break;

    default:
        return -1;
    }

    if (n < 0 || (size_t) n >= sizeof(tag)) {
        return -1;
    }

    if (dg_window_start(cmd, req, sha, dg_fanout_lua, dg_fanout_lua_len,
                        nkeys)
        != 0)
    {
        return -1;
    }

    /*
     * The HyperLogLog of bucket b counts buckets b - 1 and b: the request
     * goes into the current bucket and the next one
     */
    bucket = req->now_ms / req->window_ms;

    if (dg_cmd_addf(cmd, "%.*s:{%s}:%" PRIu64, (int) req->prefix_len,
                    req->prefix, tag, bucket) != 0
        || dg_cmd_addf(cmd, "%.*s:{%s}:%" PRIu64, (int) req->prefix_len,
                       req->prefix, tag, bucket + 1) != 0
        || (nkeys == 3
            && dg_cmd_addf(cmd, "%.*s:{%s}:c%" PRIu64,
                           (int) req->prefix_len, req->prefix, tag, bucket)
               != 0)
        || dg_cmd_add(cmd, req->key_id, strlen(req->key_id)) != 0
        || dg_cmd_addf(cmd, "%" PRIu64, req->window_ms) != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_fanout_conv_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    dg_fanout_t which, const char *sha)
{
    int        n;
    char       tag[16];
    uint32_t   fp;
    uint64_t   bucket;

    if (req->features == NULL
        || (which != DG_FANOUT_HEAD && which != DG_FANOUT_TAIL))
    {
        return -1;
    }

    fp = (which == DG_FANOUT_HEAD) ? req->features->conv_head
                                   : req->features->conv_tail;

    if (fp == 0) {
        return 1;
    }

    n = snprintf(tag, sizeof(tag), "%c:%08" PRIx32,
                 which == DG_FANOUT_HEAD ? 'h' : 't', fp);

    if (n < 0 || (size_t) n >= sizeof(tag)
        || dg_window_start(cmd, req, sha, dg_fanout_lua, dg_fanout_lua_len,
                           2)
           != 0)
    {
        return -1;
    }

    bucket = req->now_ms / req->window_ms;

    if (dg_cmd_addf(cmd, "%.*s:{%s}:c%" PRIu64, (int) req->prefix_len,
                    req->prefix, tag, bucket) != 0
        || dg_cmd_addf(cmd, "%.*s:{%s}:c%" PRIu64, (int) req->prefix_len,
                       req->prefix, tag, bucket + 1) != 0
        || dg_cmd_add(cmd, req->key_id, strlen(req->key_id)) != 0
        || dg_cmd_addf(cmd, "%" PRIu64, req->window_ms) != 0
        || dg_cmd_add(cmd, "conv", 4) != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_fanout_reply(dg_profile_t *prof, dg_fanout_t which, const int64_t *v,
    size_t n)
{
    int64_t  conv;

    if (n < 1) {
        return -1;
    }

    conv = (n > 1 && v[1] > 0) ? v[1] : 0;

    if (which < DG_FANOUT_N) {
        prof->fanout_keys[which] = v[0];
        prof->fanout_conv[which] = conv;
    }

    if (which == DG_FANOUT_SUBNET) {
        prof->subnet_keys = v[0];
        return 0;
    }

    if (v[0] > prof->template_keys
        || (v[0] == prof->template_keys && conv > prof->template_conv))
    {
        prof->template_keys = v[0];
        prof->template_conv = conv;
    }

    return 0;
}


size_t
dg_profile_json(const dg_profile_t *prof, char *buf, size_t size)
{
    int            n;
    char           entropy[32], top[32], single[32], cot[32], cv[32],
                   ver[32], fab[32], pre[32], scr[32];
    const int64_t  *v;
    static const char  *prov[] = { "none", "verified", "fabricated",
                                   "prefix" };

    if (size == 0) {
        return 0;
    }

    v = prof->v;

    (void) dg_milli(entropy, sizeof(entropy), v[DG_PROF_TOPIC_ENTROPY_MILLI]);
    (void) dg_milli(top, sizeof(top), v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI]);
    (void) dg_milli(single, sizeof(single),
                    v[DG_PROF_SINGLE_TURN_SHARE_MILLI]);
    (void) dg_milli(cot, sizeof(cot), v[DG_PROF_COT_SHARE_MILLI]);
    (void) dg_milli(cv, sizeof(cv), v[DG_PROF_GAP_CV_MILLI]);
    (void) dg_milli(ver, sizeof(ver), prof->verified_milli);
    (void) dg_milli(fab, sizeof(fab), prof->fabricated_milli);
    (void) dg_milli(pre, sizeof(pre), prof->prefix_milli);
    (void) dg_milli(scr, sizeof(scr), prof->scripted_milli);

    n = snprintf(buf, size,
                 "{\"requests\":%" PRId64 ",\"sample\":%" PRId64
                 ",\"topics\":%" PRId64 ",\"topic_entropy\":%s"
                 ",\"templates\":%" PRId64 ",\"top_template_share\":%s"
                 ",\"single_turn_share\":%s,\"cot_share\":%s"
                 ",\"gap_mean_ms\":%" PRId64 ",\"gap_cv\":%s"
                 ",\"bytes\":%" PRId64 ",\"template_keys\":%" PRId64
                 ",\"template_conv\":%" PRId64
                 ",\"subnet_keys\":%" PRId64 ",\"verified_share\":%s"
                 ",\"fabricated_share\":%s,\"prefix_share\":%s"
                 ",\"scripted_share\":%s,\"history\":\"%s\"}",
                 v[DG_PROF_REQUESTS], v[DG_PROF_SAMPLE], v[DG_PROF_TOPICS],
                 entropy, v[DG_PROF_TEMPLATES], top, single, cot,
                 v[DG_PROF_GAP_MEAN_MS], cv, v[DG_PROF_BYTES],
                 prof->template_keys, prof->template_conv, prof->subnet_keys,
                 ver, fab, pre, scr,
                 prov[(prof->provenance >= 0 && prof->provenance <= 3)
                      ? prof->provenance : 0]);

    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }

    /* snprintf cut it short and kept the NUL */
    if ((size_t) n >= size) {
        return size - 1;
    }

    return (size_t) n;
}


int
dg_window_start(dg_cmd_t *cmd, const dg_window_req_t *req, const char *sha,
    const char *script, size_t script_len, unsigned numkeys)
{
    dg_cmd_init(cmd);

    if (req->prefix == NULL || req->key_id == NULL
        || req->window_ms == 0 || req->window_ms > DG_WINDOW_MS_MAX
        || req->prefix_len > 0x7fffffff
        || !dg_window_valid(req->prefix, req->prefix_len)
        || !dg_window_valid(req->key_id, strlen(req->key_id))
        || req->key_id[0] == '\0')
    {
        return -1;
    }

    if (sha != NULL) {
        if (dg_cmd_add(cmd, "EVALSHA", 7) != 0
            || dg_cmd_add(cmd, sha, strlen(sha)) != 0)
        {
            return -1;
        }

    } else if (dg_cmd_add(cmd, "EVAL", 4) != 0
               || dg_cmd_add_ref(cmd, script, script_len) != 0)
    {
        return -1;
    }

    return dg_cmd_addf(cmd, "%u", numkeys);
}


/*
 * Redis Cluster hashes the text between the first '{' and the next '}':
 * a brace in a name part would move the hash tag off the key id
 */
static int
dg_window_valid(const char *s, size_t len)
{
    return memchr(s, '{', len) == NULL && memchr(s, '}', len) == NULL;
}


/* v / 1000 with three decimals, by integer arithmetic */
static size_t
dg_milli(char *buf, size_t size, int64_t v)
{
    int       n;
    uint64_t  a;

    /* the magnitude as unsigned: -INT64_MIN does not fit in int64_t */
    a = v < 0 ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

    n = snprintf(buf, size, "%s%" PRIu64 ".%03" PRIu64, v < 0 ? "-" : "",
                 a / 1000, a % 1000);

    return n < 0 ? 0 : (size_t) n;
}
