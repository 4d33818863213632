/*
 * libFuzzer target: what Redis answers, as the transport hands it to the
 * engine.  The input is RESP bytes, parsed by hiredis's redisReader as
 * the transport does; each reply is then read as a CLUSTER SLOTS map, as
 * an error that may redirect, as a fan-out count, paired with the
 * next as the window exchange's two replies, and with the next two as
 * the replies of the gateway's own path (the log folded in, and its
 * commit built).  Checks that what comes out stays in range.
 *
 *   make fuzz && build/fuzz/fuzz_reply -max_total_time=60
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "dg_cluster.h"
#include "dg_reply.h"
#include "dg_window_log.h"


#define F_REPLIES  8


/*
 * hiredis 0.14 allocates an array's elements as its header announces:
 * "*2000000000" is gigabytes before a byte of them came.  A Redis is the
 * operator's own server, trusted as the network to it is; here such
 * headers are not what is tested.
 */
static int
f_huge(const uint8_t *data, size_t size)
{
    size_t    i;
    uint64_t  n;

    for (i = 0; i < size; i++) {
        if (data[i] != '*' && data[i] != '$') {
            continue;
        }

        for (n = 0, i++; i < size && data[i] >= '0' && data[i] <= '9'; i++) {
            n = n * 10 + (data[i] - '0');

            if (n > 65536) {
                return 1;
            }
        }
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               i, n, k;
    void             *r;
    redisReader      *rd;
    redisReply       *rep[F_REPLIES];
    dg_profile_t      p;
    dg_redirect_t     rdr;
    dg_slot_range_t   ranges[16];
    int64_t           v[DG_WREPLY_N];
    unsigned          pending, take;
    uint64_t          log_ms;
    char              value[DG_WIN_SIZE];
    char              num[16];
    dg_cmd_t          cmd;
    redisReply       *w;
    dg_window_req_t   req;

    if (f_huge(data, size)) {
        return 0;
    }

    memset(&req, 0, sizeof(req));
    req.prefix = "dg";
    req.prefix_len = 2;
    req.key_id = "0123456789abcdef";
    req.window_ms = 60000;

    rd = redisReaderCreate();
    if (rd == NULL) {
        return 0;
    }

    if (redisReaderFeed(rd, (const char *) data, size) != REDIS_OK) {
        redisReaderFree(rd);
        return 0;
    }

    n = 0;

    while (n < F_REPLIES) {
        r = NULL;

        if (redisReaderGetReply(rd, &r) != REDIS_OK || r == NULL) {
            break;
        }

        rep[n++] = r;
    }

    redisReaderFree(rd);

    memset(&p, 0, sizeof(p));

    for (i = 0; i < n; i++) {
        k = dg_cluster_slots(rep[i], "127.0.0.1:6379", ranges, 16);

        if (k > 16) {
            abort();
        }

        while (k-- > 0) {
            if (ranges[k].first > ranges[k].last
                || ranges[k].last >= DG_SLOTS
                || memchr(ranges[k].addr, '\0', DG_ADDR_LEN) == NULL)
            {
                abort();
            }
        }

        if (rep[i]->type == REDIS_REPLY_ERROR
            || rep[i]->type == REDIS_REPLY_STATUS)
        {
            if (dg_reply_redirect(rep[i]->str, rep[i]->len, &rdr)
                    != DG_REPLY_ERROR
                && (rdr.slot >= DG_SLOTS
                    || memchr(rdr.addr, '\0', DG_ADDR_LEN) == NULL))
            {
                abort();
            }
        }

        (void) dg_reply_fanout(&p, DG_FANOUT_HEAD, rep[i]);

        if (i + 1 < n
            && dg_reply_window(&p, 60000, rep[i], rep[i + 1], value, v) == 0
            && (p.v[DG_PROF_SAMPLE] < 1
                || p.v[DG_PROF_SAMPLE] > DG_WIN_RING))
        {
            abort();
        }

        /* the gateway's own path: APPEND, SET NX GET, MGET */
        if (i + 2 < n
            && dg_reply_window_log(&p, 60000, rep[i], rep[i + 1],
                                   rep[i + 2], value, v, &pending, &log_ms,
                                   &take)
               == 0)
        {
            if (p.v[DG_PROF_SAMPLE] < 1
                || p.v[DG_PROF_SAMPLE] > DG_WIN_RING
                || v[DG_WREPLY_SLOT] >= DG_WIN_RING)
            {
                abort();
            }

            /* its commit, as the glue builds it: within the value */
            w = rep[i + 2]->element[0];

            if (w->type == REDIS_REPLY_STRING && w->len == DG_WIN_SIZE
                && dg_window_commit_cmd(&cmd, &req, "sha", w->str, value,
                                        (size_t) pending * DG_LOG_RSZ)
                   == 0)
            {
                for (k = 8; k + 1 < cmd.argc; k += 2) {
                    if (cmd.argvlen[k] >= sizeof(num)) {
                        abort();
                    }

                    memcpy(num, cmd.argv[k], cmd.argvlen[k]);
                    num[cmd.argvlen[k]] = '\0';

                    if (strtoul(num, NULL, 10) + cmd.argvlen[k + 1]
                        > DG_WIN_SIZE)
                    {
                        abort();
                    }
                }
            }
        }
    }

    for (i = 0; i < n; i++) {
        freeReplyObject(rep[i]);
    }

    return 0;
}
