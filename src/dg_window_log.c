/*
 * distill-guard engine: the pending log of a key's window (see
 * src/dg_window_log.h), its record, its commands, and its fold into the
 * window value, which must give, byte for byte, the value the window
 * script makes of the same records (t/10 and the unit tests compare).
 */

#include <string.h>

#include "dg_cmd.h"
#include "dg_window_log.h"


#define DG_B24              16777216
#define DG_U40_MAX          1099511627775ULL


static int dg_window_commit_part(dg_cmd_t *cmd, const char *value,
    size_t off, size_t len);


size_t
dg_log_record(char *buf, const dg_window_req_t *req, uint64_t now_ms)
{
    uint64_t              tw, ht;
    unsigned char        *p;
    const dg_features_t  *f;

    f = req->features;

    if (f == NULL) {
        return 0;
    }

    /* what the script takes from its argument, as it takes it */
    tw = f->topic % 4096 + (f->cot > 0 ? DG_LOG_COT : 0)
         + (f->tokens >= DG_MESSAGE_TOKENS ? DG_LOG_LONG : 0);
    ht = dg_fold12(f->template_head) + dg_fold12(f->template_tail) * 4096;

    p = (unsigned char *) buf;

    dg_le_put(p, now_ms, 6);
    dg_le_put(p + 6, tw, 2);
    dg_le_put(p + 8, f->topic_last % 4096, 2);
    dg_le_put(p + 10, ht, 3);
    dg_le_put(p + 13, dg_fold16(f->sent), 2);
    dg_le_put(p + 15, dg_fold16(f->prior), 2);
    dg_le_put(p + 17, dg_fold16_opening(f->opening), 2);
    dg_le_put(p + 19, f->bytes, 5);

    return DG_LOG_RSZ;
}


/*
 * The provenance of a record that claims a history (prior), against the
 * ring's n records as they stand before it: the window script's check
 * (src/dg_window.lua, "Provenance"), and *again for a verified message
 * this key sent in another conversation
 */

static unsigned
dg_log_provenance(const unsigned char *v, unsigned n, unsigned prior,
    unsigned opening, unsigned sent, int lg, unsigned *again)
{
    unsigned              i, senders, verified, prefix;
    const unsigned char  *r;

    *again = 0;
    senders = 0;
    verified = 0;
    prefix = 0;

    for (i = 0; i < n; i++) {
        r = v + DG_WIN_ROFF + i * DG_WIN_RSZ;

        if (dg_le(r + 8, 2) == prior) {
            senders++;
            verified |= (dg_le(r + 10, 2) == opening);
        }

        /* a record of this conversation whose history was not its own */
        prefix |= (dg_le(r + 10, 2) == opening && dg_le(r + 3, 2) >= 32768);
    }

    if (!verified && senders != 1) {
        return prefix ? DG_PROVENANCE_PREFIX : DG_PROVENANCE_FABRICATED;
    }

    if (lg) {
        for (i = 0; i < n; i++) {
            r = v + DG_WIN_ROFF + i * DG_WIN_RSZ;

            if (dg_le(r + 8, 2) == sent && dg_le(r + 10, 2) != opening) {
                *again = 1;
                break;
            }
        }
    }

    return DG_PROVENANCE_VERIFIED;
}


int
dg_window_usable(const char *value, uint64_t window_ms)
{
    const unsigned char  *p;

    p = (const unsigned char *) value;

    return p[0] == DG_WIN_VERSION && dg_le(p + 3, 4) == dg_win_subw(window_ms)
           && p[1] >= 1 && p[1] <= DG_WIN_RING && p[2] < DG_WIN_RING
           && (p[1] == DG_WIN_RING || p[2] == p[1]);
}


unsigned
dg_window_fold(char *value, int have, const char *log, size_t loglen,
    uint64_t window_ms, unsigned mine, unsigned *slot, uint64_t *t,
    unsigned *mprov)
{
    int                   fresh;
    unsigned              n, nxt, i, m, s, k1, prior, opening, sent, prov;
    unsigned              again;
    uint64_t              w, tu, newest, last, b, k, cc, cb, tm, tw, topic;
    unsigned char        *p, *r;
    const unsigned char  *q;

    p = (unsigned char *) value;
    m = (unsigned) (loglen / DG_LOG_RSZ);

    if (m == 0 || window_ms == 0) {
        return 0;
    }

    w = dg_win_subw(window_ms);
    tu = (window_ms + 4194303) / 4194304;

    /* a value that is not there is not read */
    fresh = !have || !dg_window_usable(value, window_ms);
    n = fresh ? 0 : p[1];
    nxt = fresh ? 0 : p[2];

    if (fresh) {
        memset(p, 0, DG_WIN_SIZE);
        n = 0;
        nxt = 0;
        newest = 0;
        cc = 0;
        cb = 0;

    } else {
        newest = dg_le(p + 7, 6);
        cc = dg_le(p + DG_WIN_HDR, 4);
        cb = dg_le(p + DG_WIN_HDR + 4, 5);
    }

    last = newest / w;

    for (i = 0; i < m; i++) {
        q = (const unsigned char *) log + i * DG_LOG_RSZ;

        tm = dg_le(q, 6);
        if (tm < newest) {
            tm = newest;
        }

        b = tm / w;

        if (fresh) {
            fresh = 0;

        } else if (b > last) {
            k = b - last - 1;

            if (k >= DG_WIN_SUBW) {
                memset(p + DG_WIN_FRONT, 0, DG_WIN_SUBW * DG_WIN_BSZ);

            } else {
                /* the newest closes into its slot; the k between empty */
                r = p + DG_WIN_FRONT + (last % DG_WIN_SUBW) * DG_WIN_BSZ;
                dg_le_put(r, cc, 4);
                dg_le_put(r + 4, cb, 5);

                if (k > 0) {
                    s = (unsigned) ((last + 1) % DG_WIN_SUBW);
                    k1 = DG_WIN_SUBW - s;
                    if (k < k1) {
                        k1 = (unsigned) k;
                    }

                    memset(p + DG_WIN_FRONT + s * DG_WIN_BSZ, 0,
                           k1 * DG_WIN_BSZ);

                    if (k > k1) {
                        memset(p + DG_WIN_FRONT, 0,
                               (size_t) (k - k1) * DG_WIN_BSZ);
                    }
                }
            }

            cc = 0;
            cb = 0;
        }

        last = b;

        if (cc < 0xffffffffULL) {
            cc++;
        }

        cb += dg_le(q + 19, 5);
        if (cb > DG_U40_MAX) {
            cb = DG_U40_MAX;
        }

        /*
         * the ring record as the script makes it: provenance against the
         * ring before it; verified and fabricated ones are about the
         * conversation's topic, others about their last turn
         */
        tw = dg_le(q + 6, 2);
        prior = (unsigned) dg_le(q + 15, 2);
        opening = (unsigned) dg_le(q + 17, 2);
        sent = (unsigned) dg_le(q + 13, 2);
        prov = DG_PROVENANCE_NONE;
        again = 0;

        if (prior) {
            prov = dg_log_provenance(p, n, prior, opening, sent,
                                     (tw & DG_LOG_LONG) != 0, &again);
        }

        topic = (prov == DG_PROVENANCE_NONE || prov == DG_PROVENANCE_PREFIX)
                ? dg_le(q + 8, 2) % 4096 : tw % 4096;

        r = p + DG_WIN_ROFF + nxt * DG_WIN_RSZ;
        dg_le_put(r, (tm / tu) % DG_B24, 3);
        dg_le_put(r + 3, topic + (((tw & DG_LOG_COT) ? 2 : 0) + again) * 4096
                         + prov * 16384, 2);
        memcpy(r + 5, q + 10, 3);
        dg_le_put(r + 8, sent, 2);
        dg_le_put(r + 10, opening, 2);

        if (i == mine) {
            *slot = nxt;
            *t = tm;
            *mprov = prov;
        }

        newest = tm;
        nxt = (nxt + 1) % DG_WIN_RING;

        if (n < DG_WIN_RING) {
            n++;
        }
    }

    /* the front as the script writes it: tt (after pu) is 0 */
    p[0] = DG_WIN_VERSION;
    p[1] = (unsigned char) n;
    p[2] = (unsigned char) nxt;
    dg_le_put(p + 3, w, 4);
    dg_le_put(p + 7, newest, 6);
    dg_le_put(p + DG_WIN_STATE_OFF + 7, 0, 6);
    dg_le_put(p + DG_WIN_HDR, cc, 4);
    dg_le_put(p + DG_WIN_HDR + 4, cb, 5);

    return m;
}


int
dg_window_append_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *rec, size_t len)
{
    if (dg_window_key_cmd(cmd, req, "APPEND", 'p') != 0
        || dg_cmd_add(cmd, rec, len) != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_window_log_expire_cmd(dg_cmd_t *cmd, const dg_window_req_t *req)
{
    if (dg_window_key_cmd(cmd, req, "PEXPIRE", 'p') != 0
        || dg_cmd_addf(cmd, "%llu", (unsigned long long)
                       (req->window_ms + dg_win_subw(req->window_ms)))
           != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_window_throttle_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    uint64_t now_ms, uint64_t penalty_ms)
{
    uint64_t  px;

    /* the key lives no longer than the penalty, as the script's */
    px = (penalty_ms && penalty_ms < req->throttle_ms) ? penalty_ms
                                                        : req->throttle_ms;

    if (req->throttle_ms == 0
        || dg_window_key_cmd(cmd, req, "SET", 't') != 0
        || dg_cmd_addf(cmd, "%llu",
                       (unsigned long long) (now_ms + req->throttle_ms))
           != 0
        || dg_cmd_add(cmd, "PX", 2) != 0
        || dg_cmd_addf(cmd, "%llu", (unsigned long long) px) != 0
        || dg_cmd_add(cmd, "NX", 2) != 0
        || dg_cmd_add(cmd, "GET", 3) != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_window_commit_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *sha, const char *old, const char *value, size_t loglen)
{
    size_t                front;
    unsigned              m, n, s, k1;
    uint64_t              w, ttl;
    const unsigned char  *o, *v;

    o = (const unsigned char *) old;
    v = (const unsigned char *) value;
    m = (unsigned) (loglen / DG_LOG_RSZ);
    w = dg_win_subw(req->window_ms);

    /* a window started afresh is the script's to write */
    if (m == 0 || !dg_window_usable(old, req->window_ms)
        || !dg_window_usable(value, req->window_ms)
        || dg_window_start(cmd, req, sha, dg_window_lua, dg_window_lua_len,
                           2)
           != 0)
    {
        return -1;
    }

    /* the TTL as the script sets it: a sub-window started */
    ttl = (dg_le(v + 7, 6) / w > dg_le(o + 7, 6) / w) ? req->window_ms + w
                                                       : 0;

    /* the front, with the closed sub-windows if one started */
    front = (memcmp(o + DG_WIN_FRONT, v + DG_WIN_FRONT,
                    DG_WIN_ROFF - DG_WIN_FRONT)
             == 0)
            ? DG_WIN_FRONT : DG_WIN_ROFF;

    if (dg_window_key_add(cmd, req, 'w') != 0
        || dg_window_key_add(cmd, req, 'p') != 0
        || dg_cmd_add(cmd, old, DG_WIN_FRONT) != 0
        || dg_cmd_addf(cmd, "%u", m * DG_LOG_RSZ) != 0
        || dg_cmd_addf(cmd, "%llu", (unsigned long long) ttl) != 0
        || dg_window_commit_part(cmd, value, 0, front) != 0)
    {
        return -1;
    }

    /*
     * the ring's records from the slot the first took, in two runs when
     * the ring wraps
     */
    n = (m < DG_WIN_RING) ? m : DG_WIN_RING;
    s = (n < DG_WIN_RING) ? o[2] : 0;
    k1 = (n < DG_WIN_RING - s) ? n : DG_WIN_RING - s;

    if (dg_window_commit_part(cmd, value, DG_WIN_ROFF + s * DG_WIN_RSZ,
                              k1 * DG_WIN_RSZ)
            != 0
        || (n > k1
            && dg_window_commit_part(cmd, value, DG_WIN_ROFF,
                                     (n - k1) * DG_WIN_RSZ)
               != 0))
    {
        return -1;
    }

    return 0;
}


/* SETRANGE's offset and bytes of the part of value at off */

static int
dg_window_commit_part(dg_cmd_t *cmd, const char *value, size_t off,
    size_t len)
{
    if (dg_cmd_addf(cmd, "%zu", off) != 0
        || dg_cmd_add_ref(cmd, value + off, len) != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_window_mget_cmd(dg_cmd_t *cmd, const dg_window_req_t *req)
{
    if (dg_window_key_cmd(cmd, req, "MGET", 'w') != 0
        || dg_window_key_add(cmd, req, 'p') != 0
        || dg_window_key_add(cmd, req, 't') != 0)
    {
        return -1;
    }

    return 0;
}
