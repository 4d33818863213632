/*
 * distill-guard engine: the Redis writes of a key's change of state.
 *
 * Every command touches a single key, so they work on Redis Cluster: the
 * key's state hash (hash tag {key_id}, read by the window script), the
 * bounded sorted set of flagged keys, and the capped events stream.
 */

#include <stdio.h>

#include "dg_cmd.h"
#include "dg_profile.h"
#include "dg_state.h"


int
dg_state_cmd(dg_cmd_t *cmd, const dg_state_req_t *req, unsigned i)
{
    int            rc;
    char           score[16];
    size_t         len;
    unsigned char  hdr[7];

    dg_cmd_init(cmd);

    snprintf(score, sizeof(score), "%u.%03u", req->score_milli / 1000,
             req->score_milli % 1000);

    switch (i) {

    case 0:
        /* st: the state; pu: the penalty's end on Redis's clock */
        rc = dg_cmd_add(cmd, "HSET", 4)
             | dg_cmd_addf(cmd, "%.*s:{%s}:s", (int) req->prefix_len,
                           req->prefix, req->key_id)
             | dg_cmd_add(cmd, "st", 2)
             | dg_cmd_addf(cmd, "%d", (int) req->to);

        if (req->penalty_ms) {
            rc |= dg_cmd_add(cmd, "pu", 2)
                  | dg_cmd_addf(cmd, "%llu", (unsigned long long)
                                (req->now_ms + req->penalty_ms));
        }

        break;

    case 1:
        rc = dg_cmd_add(cmd, "PEXPIRE", 7)
             | dg_cmd_addf(cmd, "%.*s:{%s}:s", (int) req->prefix_len,
                           req->prefix, req->key_id)
             | dg_cmd_addf(cmd, "%llu", (unsigned long long)
                           (req->ttl_ms + req->penalty_ms));
        break;

    case 2:
        if (req->to == DG_ACTION_PASS) {
            /* a key going back to pass keeps its place in the set */
            return 1;
        }

        /* the highest score a key reached stays: ZADD GT */
        rc = dg_cmd_add(cmd, "ZADD", 4)
             | dg_cmd_addf(cmd, "%.*s:flagged", (int) req->prefix_len,
                           req->prefix)
             | dg_cmd_add(cmd, "GT", 2)
             | dg_cmd_addf(cmd, "%s", score)
             | dg_cmd_addf(cmd, "%s", req->key_id);
        break;

    case 3:
        rc = dg_cmd_add(cmd, "ZREMRANGEBYRANK", 15)
             | dg_cmd_addf(cmd, "%.*s:flagged", (int) req->prefix_len,
                           req->prefix)
             | dg_cmd_add(cmd, "0", 1)
             | dg_cmd_addf(cmd, "%d", -(DG_FLAGGED_MAX + 1));
        break;

    case 4:
        rc = dg_cmd_add(cmd, "PEXPIRE", 7)
             | dg_cmd_addf(cmd, "%.*s:flagged", (int) req->prefix_len,
                           req->prefix)
             | dg_cmd_addf(cmd, "%d", DG_MONITOR_TTL_MS);
        break;

    case 5:
        if (req->from == req->to) {
            /* a renewed penalty is no change of state */
            return 1;
        }

        rc = dg_cmd_add(cmd, "XADD", 4)
             | dg_cmd_addf(cmd, "%.*s:events", (int) req->prefix_len,
                           req->prefix)
             | dg_cmd_add(cmd, "MAXLEN", 6)
             | dg_cmd_add(cmd, "~", 1)
             | dg_cmd_addf(cmd, "%d", DG_EVENTS_MAX)
             | dg_cmd_add(cmd, "*", 1)
             | dg_cmd_add(cmd, "key_id", 6)
             | dg_cmd_addf(cmd, "%s", req->key_id)
             | dg_cmd_add(cmd, "from", 4)
             | dg_cmd_addf(cmd, "%s", dg_action_name(req->from))
             | dg_cmd_add(cmd, "to", 2)
             | dg_cmd_addf(cmd, "%s", dg_action_name(req->to))
             | dg_cmd_add(cmd, "score", 5)
             | dg_cmd_addf(cmd, "%s", score)
             | dg_cmd_add(cmd, "signals", 7)
             | dg_cmd_addf(cmd, "%s", req->signals);
        break;

    case 6:
        if (req->from == req->to) {
            return 1;
        }

        rc = dg_cmd_add(cmd, "PEXPIRE", 7)
             | dg_cmd_addf(cmd, "%.*s:events", (int) req->prefix_len,
                           req->prefix)
             | dg_cmd_addf(cmd, "%d", DG_MONITOR_TTL_MS);
        break;

    case 7:
        /*
         * The limiter's state in the window's header, which the script
         * and the gateway read instead of the hash (doc/redis-keys.md):
         * the state byte (8 + st * 2) and pu
         */
        hdr[0] = (unsigned char) (8 | (((unsigned) req->to & 3) << 1));
        len = 1;

        if (req->penalty_ms) {
            dg_le_put(hdr + 1, req->now_ms + req->penalty_ms, 6);
            len = 7;
        }

        rc = dg_cmd_add(cmd, "SETRANGE", 8)
             | dg_cmd_addf(cmd, "%.*s:{%s}:w", (int) req->prefix_len,
                           req->prefix, req->key_id)
             | dg_cmd_addf(cmd, "%d", DG_WIN_STATE_OFF)
             | dg_cmd_add(cmd, (char *) hdr, len);
        break;

    case 8:
        /* the window was there (this request's script wrote it), but
         * should it have expired since, the one SETRANGE made has a TTL */
        rc = dg_cmd_add(cmd, "PEXPIRE", 7)
             | dg_cmd_addf(cmd, "%.*s:{%s}:w", (int) req->prefix_len,
                           req->prefix, req->key_id)
             | dg_cmd_addf(cmd, "%llu", (unsigned long long) req->ttl_ms)
             | dg_cmd_add(cmd, "NX", 2);
        break;

    case 9:
        /*
         * A penalty that starts: the request that started it took the
         * throttle's first period (the key the script and the gateway
         * SET NX)
         */
        if (!req->penalty_ms || !req->fresh || !req->throttle_ms) {
            return 1;
        }

        rc = dg_cmd_add(cmd, "SET", 3)
             | dg_cmd_addf(cmd, "%.*s:{%s}:t", (int) req->prefix_len,
                           req->prefix, req->key_id)
             | dg_cmd_addf(cmd, "%llu", (unsigned long long)
                           (req->now_ms + req->throttle_ms))
             | dg_cmd_add(cmd, "PX", 2)
             | dg_cmd_addf(cmd, "%llu", (unsigned long long)
                           (req->throttle_ms < req->penalty_ms
                            ? req->throttle_ms : req->penalty_ms));
        break;

    default:
        return 1;
    }

    return rc ? -1 : 0;
}
