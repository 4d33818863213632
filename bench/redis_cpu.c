/*
 * The Redis CPU of the window calls alone, without nginx: sends the
 * module's own commands (dg_window_cmd, dg_window_get_cmd) for keys in
 * turn, pipelined in batches as the module's transport sends the
 * commands of one event-loop turn, and prints redis-server's CPU per
 * request from /proc.  bench/redis_cpu.pl runs it; a benchmark, it
 * asserts nothing.
 *
 *   redis_cpu <port> <redis pid> <keys> <requests> <batch>
 *             [native | commit]
 *
 * Each request is the script, then a GET of the value; the bodies are
 * one-shot prompts on 97 templates, as bench/peers.pl sends.  With
 * "native", as the module's worker sends them (src/dg_warm.h): a key's
 * first request and every 17th go to the script, the others APPEND
 * their record to the key's pending log and MGET the window, the log
 * and the throttle (no penalty: no SET).  With "commit", as the module
 * sends them now: a key's first request goes to the script, the others
 * APPEND and MGET, and once the log read back holds DG_LOG_COMMIT
 * records the client folds it and sends the window script's commit of
 * the fold (dg_window_commit_cmd) with the next batch, as the worker
 * fires it.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "dg_features.h"
#include "dg_window.h"
#include "dg_window_log.h"


static uint64_t
rc_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static double
rc_cpu(long pid)
{
    int     i;
    char    path[64], buf[1024], *p;
    FILE   *f;
    double  ut, st;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);

    f = fopen(path, "r");
    if (f == NULL || fgets(buf, sizeof(buf), f) == NULL) {
        perror(path);
        exit(1);
    }

    fclose(f);

    /* after the name, which may hold blanks: field 3 on */
    p = strrchr(buf, ')') + 2;

    for (i = 3; i < 14; i++) {
        p = strchr(p, ' ') + 1;
    }

    ut = strtod(p, &p);
    st = strtod(p, NULL);

    return (ut + st) / sysconf(_SC_CLK_TCK);
}


/* a commit of the fold of the log an MGET read, when it is due */

static int
rc_commit(redisContext *c, redisReply *r, dg_window_req_t *req,
    const char *sha)
{
    char               value[DG_WIN_SIZE];
    unsigned           slot, prov;
    uint64_t           t;
    dg_cmd_t           cmd;
    const redisReply  *w, *l;

    w = r->element[0];
    l = r->element[1];

    if (w->type != REDIS_REPLY_STRING || w->len != DG_WIN_SIZE
        || l->type != REDIS_REPLY_STRING
        || l->len < DG_LOG_COMMIT * DG_LOG_RSZ)
    {
        return 0;
    }

    memcpy(value, w->str, DG_WIN_SIZE);

    if (dg_window_fold(value, 1, l->str, l->len, req->window_ms, 0, &slot,
                       &t, &prov)
            == 0
        || dg_window_commit_cmd(&cmd, req, sha, w->str, value, l->len) != 0)
    {
        return 0;
    }

    redisAppendCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen);

    return 1;
}


int
main(int argc, char **argv)
{
    int               i, j, k, n, nkeys, batch, nreq, done, cmds, native;
    int               commit, extra, own, expire, *mget;
    char              rec[DG_LOG_RSZ];
    unsigned char    *seen, *restart;
    long              pid;
    char              sha[DG_SHA1_HEX_LEN + 1], (*ids)[DG_KEY_ID_LEN + 1];
    double            c0, c1;
    dg_cmd_t          cmd[3];
    redisReply       *r;
    redisContext     *c;
    dg_features_t     f;
    dg_window_req_t   req;

    if (argc != 6
        && !(argc == 7 && (strcmp(argv[6], "native") == 0
                           || strcmp(argv[6], "commit") == 0)))
    {
        fprintf(stderr, "usage: redis_cpu <port> <redis pid> <keys> "
                "<requests> <batch> [native | commit]\n");
        return 2;
    }

    native = (argc == 7);
    commit = native && strcmp(argv[6], "commit") == 0;

    pid = atol(argv[2]);
    nkeys = atoi(argv[3]);
    nreq = atoi(argv[4]);
    batch = atoi(argv[5]);

    c = redisConnect("127.0.0.1", atoi(argv[1]));
    if (c == NULL || c->err) {
        fprintf(stderr, "connect failed\n");
        return 1;
    }

    r = redisCommand(c, "SCRIPT LOAD %b", dg_window_lua, dg_window_lua_len);
    if (r == NULL || r->type != REDIS_REPLY_STRING
        || r->len != DG_SHA1_HEX_LEN)
    {
        fprintf(stderr, "SCRIPT LOAD failed\n");
        return 1;
    }

    memcpy(sha, r->str, DG_SHA1_HEX_LEN);
    sha[DG_SHA1_HEX_LEN] = '\0';
    freeReplyObject(r);

    ids = calloc(nkeys, sizeof(*ids));
    seen = calloc(nkeys, 1);
    /* the key of each command of a batch whose reply is an MGET; -1 */
    mget = calloc(4 * batch, sizeof(int));
    /* the key's log starts with its next APPEND (its PEXPIRE) */
    restart = calloc(nkeys, 1);
    if (ids == NULL || seen == NULL || mget == NULL || restart == NULL) {
        return 1;
    }

    /* keys of this run only: with as many keys as requests, each
     * request is a key's first, whatever ran before */
    for (k = 0; k < nkeys; k++) {
        snprintf(ids[k], sizeof(ids[k]), "%08x%08x", (unsigned) getpid(),
                 k * 2654435761u);
    }

    memset(&f, 0, sizeof(f));
    memset(&req, 0, sizeof(req));
    req.prefix = "dg";
    req.prefix_len = 2;
    req.window_ms = 3600000;
    req.features = &f;

    srandom(1);
    done = 0;
    k = 0;
    extra = 0;
    c0 = rc_cpu(pid);

    while (done < nreq) {
        /* the commits the last batch's replies called for go first */
        cmds = extra;
        extra = 0;

        for (i = 0; i < cmds; i++) {
            mget[i] = -1;
        }

        for (i = 0; i < batch; i++) {
            /* a one-shot prompt: one of 97 bodies, as bench/peers.pl */
            j = random() % 97;
            f.topic = (uint16_t) (j * 37 % 4096);
            f.topic_last = f.topic;
            f.template_head = 0x1000 + j;
            f.template_tail = 0x2000 + j;
            f.bytes = 1000;
            f.tokens = 200;
            f.sent = 0x10000 + j;
            f.opening = f.sent;
            req.key_id = ids[k];

            /*
             * the gateway's own path, 16 requests of every 17: the
             * first after a fold starts the log (its PEXPIRE), each
             * APPENDs its record and MGETs; else the script and a GET
             */
            n = 0;

            /* with commits every request but a key's first */
            own = commit ? seen[k] != 0 : native && seen[k] % 17 != 0;
            expire = commit ? seen[k] == 1 || restart[k]
                            : seen[k] % 17 == 1;

            if (own) {
                if ((expire
                     && dg_window_log_expire_cmd(&cmd[n++], &req) != 0)
                    || dg_log_record(rec, &req, rc_now_ms()) != DG_LOG_RSZ
                    || dg_window_append_cmd(&cmd[n++], &req, rec,
                                            DG_LOG_RSZ) != 0
                    || dg_window_mget_cmd(&cmd[n++], &req) != 0)
                {
                    return 1;
                }

            } else if (dg_window_cmd(&cmd[n++], &req, sha) != 0
                       || dg_window_get_cmd(&cmd[n++], &req) != 0)
            {
                return 1;
            }

            for (j = 0; j < n; j++) {
                redisAppendCommandArgv(c, cmd[j].argc, cmd[j].argv,
                                       cmd[j].argvlen);
                mget[cmds + j] = (commit && seen[k] != 0 && j == n - 1)
                                 ? k : -1;
            }

            cmds += n;
            seen[k] = (seen[k] == 255) ? 2 : seen[k] + 1;
            restart[k] = 0;
            k = (k + 1) % nkeys;
        }

        for (i = 0; i < cmds; i++) {
            if (redisGetReply(c, (void **) &r) != REDIS_OK) {
                fprintf(stderr, "reply: %s\n", c->errstr);
                return 1;
            }

            if (r->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "error: %s\n", r->str);
                return 1;
            }

            if (mget[i] >= 0 && r->type == REDIS_REPLY_ARRAY
                && r->elements == 3)
            {
                req.key_id = ids[mget[i]];

                /* a commit leaves the log empty: the next APPEND starts it */
                if (rc_commit(c, r, &req, sha)) {
                    restart[mget[i]] = 1;
                    extra++;
                }
            }

            freeReplyObject(r);
        }

        done += batch;
    }

    c1 = rc_cpu(pid);

    printf("%.2f\n", 1e6 * (c1 - c0) / done);

    return 0;
}
