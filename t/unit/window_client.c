/*
 * Test tool of t/10-window-script.t: sends Redis commands read from
 * stdin, one a line, arguments separated by blanks ('' is an empty
 * argument), and prints one line per reply.  The window script's
 * arguments are given as text, in DG_WARG_* order, and packed
 * (t_pack).  After a call of the window
 * script (an EVAL or EVALSHA whose first key ends in ":w") it GETs the
 * value, decodes it with the script's reply as the module does
 * (dg_window_reply) and prints the profile's fields:
 *
 *   requests sample topics topic_entropy templates top_template
 *   single_turn cot gap_mean_ms gap_cv bytes state penalty_ms refused
 *   retry_ms remaining now_ms verified fabricated prefix provenance
 *
 * "bad" when the engine refuses it.  "FOLD <window key> <log key>
 * <window_ms>" reads both and prints, in hex, the window with the log
 * folded in by the gateway's code (dg_window_fold), nothing changed in
 * Redis.  "COMMIT <window key> <log key> <window_ms> <sha> [<between>]"
 * folds the same way and sends the window script's commit of it
 * (dg_window_commit_cmd) after <between>: "touch" (a change of state
 * writes the window's state byte) or a log record in hex (a request
 * appended since the read); prints the commit's reply.
 * Other replies: integers, strings
 * and errors as redis-cli prints them, arrays flattened on one line.
 *
 *   window_client <port>
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "dg_profile.h"
#include "dg_window_log.h"


#define T_ARGS  64


static void t_print(redisContext *c, redisReply *r, const char *argv[],
    int argc);
static void t_flat(redisReply *r);
static void t_fold(redisContext *c, const char *wkey, const char *pkey,
    uint64_t window_ms, const char *sha, const char *between);
static void t_commit(redisContext *c, const char *wkey, uint64_t window_ms,
    const char *sha, const char *old, const char *value, size_t loglen,
    const char *between);
static int t_window_call(const char *argv[], int argc);
static int t_pack(const char *argv[], size_t *lens, int argc, char *packed);


int
main(int argc, char **argv)
{
    int            n;
    char           line[8192], *p, *tok, packed[DG_WARGS_LEN];
    const char    *args[T_ARGS];
    size_t         lens[T_ARGS];
    redisReply    *r;
    redisContext  *c;

    if (argc != 2) {
        fprintf(stderr, "usage: window_client <port>\n");
        return 2;
    }

    c = redisConnect("127.0.0.1", atoi(argv[1]));
    if (c == NULL || c->err) {
        fprintf(stderr, "connect: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }

    while (fgets(line, sizeof(line), stdin)) {
        n = 0;

        for (p = line; (tok = strtok(p, " \t\r\n")) != NULL; p = NULL) {
            if (n == T_ARGS) {
                break;
            }

            if (strcmp(tok, "''") == 0) {
                tok[0] = '\0';
            }

            args[n] = tok;
            lens[n] = strlen(tok);
            n++;
        }

        if (n == 0) {
            continue;
        }

        if (strcmp(args[0], "FOLD") == 0 && n == 4) {
            t_fold(c, args[1], args[2], strtoull(args[3], NULL, 10), NULL,
                   NULL);
            fflush(stdout);
            continue;
        }

        if (strcmp(args[0], "COMMIT") == 0 && (n == 5 || n == 6)) {
            t_fold(c, args[1], args[2], strtoull(args[3], NULL, 10),
                   args[4], n == 6 ? args[5] : NULL);
            fflush(stdout);
            continue;
        }

        n = t_pack(args, lens, n, packed);

        r = redisCommandArgv(c, n, args, lens);
        if (r == NULL) {
            fprintf(stderr, "redis: %s\n", c->errstr);
            return 1;
        }

        t_print(c, r, args, n);
        freeReplyObject(r);
        fflush(stdout);
    }

    redisFree(c);

    return 0;
}


static void
t_print(redisContext *c, redisReply *r, const char *argv[], int argc)
{
    int            keys, i;
    size_t         k, klen;
    int64_t        v[DG_WREPLY_N + 4];
    uint64_t       window;
    const char    *get[2];
    size_t         getlen[2];
    redisReply    *g;
    dg_profile_t   prof;

    keys = argc > 3 ? atoi(argv[2]) : 0;
    klen = keys > 0 ? strlen(argv[3]) : 0;

    if (r->type != REDIS_REPLY_STRING || !t_window_call(argv, argc)
        || 3 + keys >= argc
        || (k = dg_window_unpack(r->str, r->len, v)) == 0)
    {
        t_flat(r);
        printf("\n");
        return;
    }

    /* the packed argument starts with window_ms, u32 little-endian */
    window = 0;
    for (i = 3; i >= 0; i--) {
        window = window << 8 | (unsigned char) argv[3 + keys][i];
    }

    /* as the module does: the value, read right after the script */
    get[0] = "GET";
    getlen[0] = 3;
    get[1] = argv[3];
    getlen[1] = klen;

    g = redisCommandArgv(c, 2, get, getlen);
    if (g == NULL || g->type != REDIS_REPLY_STRING) {
        printf("bad\n");
        return;
    }

    memset(&prof, 0, sizeof(prof));

    if (dg_window_reply(&prof, window, g->str, g->len, v, k) != 0) {
        freeReplyObject(g);
        printf("bad\n");
        return;
    }

    freeReplyObject(g);

    for (i = 0; i < DG_PROF_NFIELDS; i++) {
        printf("%" PRId64 " ", prof.v[i]);
    }

    printf("%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
           " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
           " %" PRId64 "\n",
           prof.state, prof.penalty_ms, prof.refused, prof.retry_ms,
           prof.remaining, prof.now_ms, prof.verified_milli,
           prof.fabricated_milli, prof.prefix_milli, prof.provenance,
           prof.scripted_milli);
}


static void
t_commit(redisContext *c, const char *wkey, uint64_t window_ms,
    const char *sha, const char *old, const char *value, size_t loglen,
    const char *between)
{
    char              id[64], prefix[64], rec[DG_LOG_RSZ], *p;
    size_t            i;
    unsigned          x;
    dg_cmd_t          cmd;
    redisReply       *r;
    const char       *b, *e;
    dg_window_req_t   req;

    /* <prefix>:{<key_id>}:w */
    b = strstr(wkey, ":{");
    e = b ? strchr(b, '}') : NULL;

    if (e == NULL || (size_t) (b - wkey) >= sizeof(prefix)
        || (size_t) (e - b - 2) >= sizeof(id))
    {
        printf("bad key\n");
        return;
    }

    memcpy(prefix, wkey, b - wkey);
    prefix[b - wkey] = '\0';
    memcpy(id, b + 2, e - b - 2);
    id[e - b - 2] = '\0';

    memset(&req, 0, sizeof(req));
    req.prefix = prefix;
    req.prefix_len = strlen(prefix);
    req.key_id = id;
    req.window_ms = window_ms;

    if (dg_window_commit_cmd(&cmd, &req, sha, old, value, loglen) != 0) {
        printf("bad\n");
        return;
    }

    if (between && strcmp(between, "touch") == 0) {
        r = redisCommand(c, "SETRANGE %s %d %b", wkey, DG_WIN_STATE_OFF,
                         "\x0a", (size_t) 1);
        freeReplyObject(r);

    } else if (between && strlen(between) == 2 * DG_LOG_RSZ) {
        for (i = 0, p = rec; i < DG_LOG_RSZ; i++) {
            sscanf(between + 2 * i, "%2x", &x);
            *p++ = (char) x;
        }

        r = redisCommand(c, "APPEND %s:{%s}:p %b", prefix, id, rec,
                         (size_t) DG_LOG_RSZ);
        freeReplyObject(r);
    }

    r = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen);
    if (r == NULL) {
        fprintf(stderr, "redis: %s\n", c->errstr);
        exit(1);
    }

    t_flat(r);
    printf("\n");
    freeReplyObject(r);
}


/* EVAL[SHA] script numkeys <prefix>:{<key_id>}:w ... */

static int
t_window_call(const char *argv[], int argc)
{
    size_t  klen;

    if (argc < 4 || strncasecmp(argv[0], "EVAL", 4) != 0) {
        return 0;
    }

    klen = strlen(argv[3]);

    return klen >= 2 && strcmp(argv[3] + klen - 2, ":w") == 0;
}


/*
 * The window script's arguments as text, in DG_WARG_* order (window_ms
 * topic head tail flags bytes [now_ms|''] [throttle_ms rate_ms
 * rate_burst shadow topic_last sent prior opening]; topic_last defaults
 * to topic), packed into the one argument the script takes.  Returns the
 * new argc.
 */

static int
t_pack(const char *argv[], size_t *lens, int argc, char *packed)
{
    int       keys, i, first;
    uint64_t  v[DG_WARG_N];

    if (!t_window_call(argv, argc)) {
        return argc;
    }

    keys = atoi(argv[2]);
    first = 3 + keys;

    if (first >= argc) {
        return argc;
    }

    memset(v, 0, sizeof(v));

    for (i = 0; i < DG_WARG_N && first + i < argc; i++) {
        v[i] = strtoull(argv[first + i], NULL, 10);
    }

    if (first + DG_WARG_TOPIC_LAST >= argc) {
        v[DG_WARG_TOPIC_LAST] = v[DG_WARG_TOPIC];
    }

    argv[first] = packed;
    lens[first] = dg_window_pack(packed, v);

    return first + 1;
}


static void
t_flat(redisReply *r)
{
    size_t  i;

    switch (r->type) {

    case REDIS_REPLY_INTEGER:
        printf("%lld", r->integer);
        break;

    case REDIS_REPLY_ARRAY:
        for (i = 0; i < r->elements; i++) {
            if (i) {
                printf(" ");
            }

            t_flat(r->element[i]);
        }

        break;

    case REDIS_REPLY_NIL:
        printf("(nil)");
        break;

    case REDIS_REPLY_ERROR:
        printf("(error) %.*s", (int) r->len, r->str);
        break;

    default:
        printf("%.*s", (int) r->len, r->str);
    }
}


static void
t_fold(redisContext *c, const char *wkey, const char *pkey,
    uint64_t window_ms, const char *sha, const char *between)
{
    int          have;
    char         value[DG_WIN_SIZE];
    size_t       i;
    unsigned     slot, prov;
    uint64_t     t;
    redisReply  *w, *l;

    w = redisCommand(c, "GET %s", wkey);
    l = redisCommand(c, "GET %s", pkey);

    if (w == NULL || l == NULL) {
        fprintf(stderr, "redis: %s\n", c->errstr);
        exit(1);
    }

    have = (w->type == REDIS_REPLY_STRING && w->len == DG_WIN_SIZE);
    if (have) {
        memcpy(value, w->str, DG_WIN_SIZE);
    }

    (void) dg_window_fold(value, have,
                          l->type == REDIS_REPLY_STRING ? l->str : NULL,
                          l->type == REDIS_REPLY_STRING ? l->len : 0,
                          window_ms, 0, &slot, &t, &prov);

    if (sha && !have) {
        printf("bad\n");

    } else if (sha) {
        t_commit(c, wkey, window_ms, sha, w->str, value,
                 l->type == REDIS_REPLY_STRING ? l->len : 0, between);

    } else {
        for (i = 0; i < DG_WIN_SIZE; i++) {
            printf("%02x", (unsigned char) value[i]);
        }

        printf("\n");
    }

    freeReplyObject(w);
    freeReplyObject(l);
}
