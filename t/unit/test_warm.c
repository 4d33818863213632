/*
 * unit tests: which path a request takes (dg_warm_plan), and the replies
 * of the gateway's own path into a profile (dg_reply_window_log): the
 * log's records folded, the throttle's period from the SET NX GET or
 * from the MGET
 */

#include "dg_test.h"

#include "dg_test_resp.h"
#include "dg_test_window.h"

#include "dg_reply.h"
#include "dg_warm.h"
#include "dg_window_log.h"


#define T_W         60000
#define T_NOW       UINT64_C(1700000000000)
#define T_KEY       "0123456789abcdef"


static dg_warm_entry_t  t_entry[DG_WARM_SLOTS];


static void
t_req(dg_window_req_t *req, dg_features_t *f)
{
    memset(req, 0, sizeof(dg_window_req_t));
    memset(f, 0, sizeof(dg_features_t));

    req->prefix = "dg";
    req->prefix_len = 2;
    req->key_id = T_KEY;
    req->window_ms = T_W;
    req->features = f;
    req->throttle_ms = 10000;
    f->topic_last = 7;
    f->template_head = 0x1234;
    f->bytes = 300;
    f->sent = 0xabcdef;
    f->opening = 0xabcdef;
}


/* a window of one record at T_NOW; penalty_end 0: no state */

static void
t_window(unsigned char *v, uint64_t penalty_end)
{
    memset(v, 0, DG_WIN_SIZE);
    v[0] = DG_WIN_VERSION;
    v[1] = 1;
    v[2] = 1;
    t_put(v + 3, (T_W + DG_WIN_SUBW - 1) / DG_WIN_SUBW, 4);
    t_put(v + 7, T_NOW, 6);
    t_put(v + DG_WIN_HDR, 1, 4);
    t_put(v + DG_WIN_ROFF, T_NOW % 16777216, 3);

    if (penalty_end) {
        v[DG_WIN_STATE_OFF] = 8 + 2 * 2;
        t_put(v + DG_WIN_STATE_OFF + 1, penalty_end, 6);
    }
}


/* MGET's reply: the window (NULL: none), the log, the throttle */

static redisReply *
t_mget(const unsigned char *w, const unsigned char *log, size_t loglen,
    const char *thr)
{
    char        *buf, *p;
    redisReply  *r;

    buf = malloc(DG_WIN_SIZE + loglen + 128);
    assert_non_null(buf);
    p = buf + sprintf(buf, "*3\r\n");

    if (w) {
        p += sprintf(p, "$%d\r\n", DG_WIN_SIZE);
        memcpy(p, w, DG_WIN_SIZE);
        p += DG_WIN_SIZE;
        p += sprintf(p, "\r\n");

    } else {
        p += sprintf(p, "$-1\r\n");
    }

    p += sprintf(p, "$%zu\r\n", loglen);
    memcpy(p, log, loglen);
    p += loglen;
    p += sprintf(p, "\r\n");

    if (thr) {
        p += sprintf(p, "$%zu\r\n%s\r\n", strlen(thr), thr);

    } else {
        p += sprintf(p, "$-1\r\n");
    }

    r = t_resp(buf, (size_t) (p - buf));
    free(buf);

    return r;
}


/* the replies of the own path: the APPEND's, the throttle's, the MGET's */

static int
t_log_reply(dg_profile_t *p, redisReply *app, redisReply *thr,
    const unsigned char *w, const unsigned char *log, unsigned nrec,
    const char *period, char *value, int64_t *v, unsigned *take)
{
    int          rc;
    unsigned     pending;
    uint64_t     log_ms;
    redisReply  *mget;

    mget = t_mget(w, log, nrec * DG_LOG_RSZ, period);
    rc = dg_reply_window_log(p, T_W, app, thr, mget, value, v, &pending,
                             &log_ms, take);
    freeReplyObject(mget);

    if (rc == 0) {
        assert_int_equal(pending, nrec);
        assert_true(log_ms == t_get(log, 6));
    }

    return rc;
}


static void
test_plan(void **state)
{
    dg_warm_t        wm;
    dg_features_t    f;
    dg_warm_plan_t   plan;
    dg_window_req_t  req;
    unsigned char    v[DG_WIN_SIZE];

    (void) state;

    memset(t_entry, 0, sizeof(t_entry));
    dg_warm_init(&wm, t_entry);
    t_req(&req, &f);

    /* no clock offset yet, then a key never seen: the script */
    dg_warm_plan(&wm, &req, T_NOW, &plan);
    assert_false(plan.native);
    dg_warm_clock(&wm, T_NOW + 5, T_NOW);
    dg_warm_plan(&wm, &req, T_NOW, &plan);
    assert_false(plan.native);

    /* a window seen: the gateway's own path, on Redis's clock */
    t_window(v, 0);
    dg_warm_learn(&wm, T_KEY, (char *) v, T_W, 0, T_NOW);
    dg_warm_plan(&wm, &req, T_NOW + 100, &plan);
    assert_true(plan.native);
    assert_true(plan.now_ms == T_NOW + 105);
    assert_true(plan.expire);
    assert_false(plan.throttle);

    /* the next expects the log there */
    dg_warm_plan(&wm, &req, T_NOW + 200, &plan);
    assert_true(plan.native);
    assert_false(plan.expire);

    /* a claimed history too (the fold checks it); a plain rate, a test
     * clock: the script */
    f.prior = 99;
    dg_warm_plan(&wm, &req, T_NOW + 200, &plan);
    assert_true(plan.native);
    f.prior = 0;
    req.rate_ms = 500;
    dg_warm_plan(&wm, &req, T_NOW + 200, &plan);
    assert_false(plan.native);
    req.rate_ms = 0;
    req.clock_ms = T_NOW;
    dg_warm_plan(&wm, &req, T_NOW + 200, &plan);
    assert_false(plan.native);
    req.clock_ms = 0;

    /* a log of DG_LOG_MAX records goes to the script, which folds it */
    dg_warm_learn(&wm, T_KEY, (char *) v, T_W, DG_LOG_MAX, T_NOW);
    dg_warm_plan(&wm, &req, T_NOW + 300, &plan);
    assert_false(plan.native);

    /* so does a log older than a sub-window (T_W / 16), however short */
    dg_warm_learn(&wm, T_KEY, (char *) v, T_W, 1, T_NOW);
    dg_warm_plan(&wm, &req, T_NOW + T_W / 16 - 10, &plan);
    assert_true(plan.native);
    dg_warm_plan(&wm, &req, T_NOW + T_W / 16 + 10, &plan);
    assert_false(plan.native);

    /* a penalty in the header: with the throttle, its time left */
    t_window(v, T_NOW + 60000);
    dg_warm_learn(&wm, T_KEY, (char *) v, T_W, 1, T_NOW);
    dg_warm_plan(&wm, &req, T_NOW + 400, &plan);
    assert_true(plan.native && plan.throttle);
    assert_true(plan.penalty_ms == 60000 - 405);

    /* the window gone by its TTL, or forgotten: the script */
    dg_warm_plan(&wm, &req, T_NOW + T_W, &plan);
    assert_false(plan.native);
    dg_warm_forget(&wm, T_KEY);
    dg_warm_plan(&wm, &req, T_NOW + 500, &plan);
    assert_false(plan.native);

    /* an offset older than DG_WARM_CLOCK_MS: the script, to renew it */
    dg_warm_learn(&wm, T_KEY, (char *) v, T_W, 0, T_NOW);
    dg_warm_plan(&wm, &req, T_NOW + DG_WARM_CLOCK_MS + 1, &plan);
    assert_false(plan.native);
}


static void
test_ways(void **state)
{
    int              i;
    char             id[DG_KEY_ID_LEN + 1];
    dg_warm_t        wm;
    dg_features_t    f;
    dg_warm_plan_t   plan;
    dg_window_req_t  req;
    unsigned char    v[DG_WIN_SIZE];

    (void) state;

    memset(t_entry, 0, sizeof(t_entry));
    dg_warm_init(&wm, t_entry);
    dg_warm_clock(&wm, T_NOW, T_NOW);
    t_req(&req, &f);
    t_window(v, 0);

    /*
     * keys of one slot (the same id modulo the slots / ways): four are
     * held, a fifth takes the place of the one known least
     */
    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "%016llx", (unsigned long long)
                 (1 + (uint64_t) i * (DG_WARM_SLOTS / DG_WARM_WAYS)));
        t_put(v + 7, T_NOW + (uint64_t) i, 6);
        dg_warm_learn(&wm, id, (char *) v, T_W, 0, T_NOW);
    }

    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "%016llx", (unsigned long long)
                 (1 + (uint64_t) i * (DG_WARM_SLOTS / DG_WARM_WAYS)));
        req.key_id = id;
        dg_warm_plan(&wm, &req, T_NOW + 10, &plan);
        assert_int_equal(plan.native, i != 0);
    }
}


/* one commit per front the window had: a hot key's replies share one */

static void
test_commit_once(void **state)
{
    dg_warm_t      wm;
    unsigned char  v[DG_WIN_SIZE];

    (void) state;

    memset(t_entry, 0, sizeof(t_entry));
    dg_warm_init(&wm, t_entry);
    t_window(v, 0);
    dg_warm_learn(&wm, T_KEY, (char *) v, T_W, 8, T_NOW);

    assert_int_equal(dg_warm_commit(&wm, T_KEY, (char *) v), 1);
    assert_int_equal(dg_warm_commit(&wm, T_KEY, (char *) v), 0);

    /* one more record: the count moves */
    t_put(v + DG_WIN_HDR, 2, 4);
    assert_int_equal(dg_warm_commit(&wm, T_KEY, (char *) v), 1);
    assert_int_equal(dg_warm_commit(&wm, T_KEY, (char *) v), 0);

    /* a new sub-window: newest moves, the count starts again at 1 */
    t_put(v + 7, T_NOW + T_W / DG_WIN_SUBW, 6);
    t_put(v + DG_WIN_HDR, 1, 4);
    assert_int_equal(dg_warm_commit(&wm, T_KEY, (char *) v), 1);

    /* a key this worker does not hold: commit */
    assert_int_equal(dg_warm_commit(&wm, "fedcba9876543210", (char *) v), 1);
}


/* argument i of cmd: the string s; its number */

static void
t_arg(const dg_cmd_t *cmd, int i, const char *s)
{
    assert_int_equal(cmd->argvlen[i], strlen(s));
    assert_memory_equal(cmd->argv[i], s, strlen(s));
}


static long long
t_num(const dg_cmd_t *cmd, int i)
{
    char  buf[32];

    assert_true(cmd->argvlen[i] < sizeof(buf));
    memcpy(buf, cmd->argv[i], cmd->argvlen[i]);
    buf[cmd->argvlen[i]] = '\0';

    return atoll(buf);
}


/*
 * two records at t and t + 1 in log, folded into v (old's copy), and the
 * commit of that fold
 */

static void
t_fold_commit(dg_cmd_t *cmd, dg_window_req_t *req, const unsigned char *old,
    unsigned char *v, char *log, uint64_t t)
{
    unsigned  slot, prov;
    uint64_t  tm;

    dg_log_record(log, req, t);
    dg_log_record(log + DG_LOG_RSZ, req, t + 1);
    memcpy(v, old, DG_WIN_SIZE);

    assert_int_equal(dg_window_fold((char *) v, 1, log, 2 * DG_LOG_RSZ, T_W,
                                    0, &slot, &tm, &prov), 2);
    assert_int_equal(dg_window_commit_cmd(cmd, req, "sha", (const char *) old,
                                          (char *) v, 2 * DG_LOG_RSZ), 0);
}


/* the commit of a fold: the parts it changed, and no more */

static void
test_commit_cmd(void **state)
{
    char             log[2 * DG_LOG_RSZ];
    uint64_t         subw;
    dg_cmd_t         cmd;
    dg_features_t    f;
    dg_window_req_t  req;
    unsigned char    old[DG_WIN_SIZE], v[DG_WIN_SIZE];

    (void) state;

    t_req(&req, &f);
    t_window(old, 0);
    subw = (T_W + DG_WIN_SUBW - 1) / DG_WIN_SUBW;

    /* two records in the newest sub-window: the front, two ring slots */
    t_fold_commit(&cmd, &req, old, v, log, T_NOW + 1);
    assert_int_equal(cmd.argc, 12);
    t_arg(&cmd, 2, "2");
    assert_memory_equal(cmd.argv[5], old, DG_WIN_FRONT);
    t_arg(&cmd, 6, "48");
    t_arg(&cmd, 7, "0");
    t_arg(&cmd, 8, "0");
    assert_int_equal(cmd.argvlen[9], DG_WIN_FRONT);
    assert_ptr_equal(cmd.argv[9], (char *) v);
    assert_int_equal(t_num(&cmd, 10), DG_WIN_ROFF + DG_WIN_RSZ);
    assert_int_equal(cmd.argvlen[11], 2 * DG_WIN_RSZ);

    /*
     * a full ring whose next slot is the last: two runs; a sub-window
     * started: the closed ones too, and the TTL
     */
    old[1] = DG_WIN_RING;
    old[2] = DG_WIN_RING - 1;
    t_fold_commit(&cmd, &req, old, v, log, T_NOW + subw);
    assert_int_equal(cmd.argc, 14);
    assert_int_equal(t_num(&cmd, 7), T_W + subw);
    assert_int_equal(cmd.argvlen[9], DG_WIN_ROFF);
    assert_int_equal(t_num(&cmd, 10),
                     DG_WIN_ROFF + (DG_WIN_RING - 1) * DG_WIN_RSZ);
    assert_int_equal(cmd.argvlen[11], DG_WIN_RSZ);
    assert_int_equal(t_num(&cmd, 12), DG_WIN_ROFF);
    assert_int_equal(cmd.argvlen[13], DG_WIN_RSZ);

    /* nothing folded; a window the script would start afresh */
    assert_int_equal(dg_window_commit_cmd(&cmd, &req, "sha", (char *) old,
                                          (char *) v, DG_LOG_RSZ - 1), -1);
    old[0] = 0;
    assert_int_equal(dg_window_commit_cmd(&cmd, &req, "sha", (char *) old,
                                          (char *) v, sizeof(log)), -1);
}


static void
test_reply_log(void **state)
{
    int64_t          v[DG_WREPLY_N];
    unsigned         pending, take;
    uint64_t         log_ms;
    dg_profile_t     p;
    dg_features_t    f;
    dg_window_req_t  req;
    redisReply      *app, *mget, *thr;
    char             value[DG_WIN_SIZE];
    unsigned char    w[DG_WIN_SIZE], log[3 * DG_LOG_RSZ];

    (void) state;

    t_req(&req, &f);
    t_window(w, 0);

    /* two records in the log: this request's is the second */
    assert_int_equal(dg_log_record((char *) log, &req, T_NOW + 1000),
                     DG_LOG_RSZ);
    assert_int_equal(dg_log_record((char *) log + DG_LOG_RSZ, &req,
                                   T_NOW + 2000),
                     DG_LOG_RSZ);

    app = t_resp_s(":48\r\n");
    memset(&p, 0, sizeof(p));
    assert_int_equal(t_log_reply(&p, app, NULL, w, log, 2, NULL, value, v,
                                 &take),
                     0);
    assert_int_equal(take, 0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 3);
    assert_true(v[DG_WREPLY_NOW_MS] == (int64_t) (T_NOW + 2000));
    assert_int_equal(v[DG_WREPLY_SLOT], 2);
    assert_int_equal(v[DG_WREPLY_REFUSED], DG_REFUSED_NONE);
    /* the record as the script stores it: topic of the last turn */
    assert_int_equal(t_get((unsigned char *) value + DG_WIN_ROFF
                           + 2 * DG_WIN_RSZ + 3, 2), 7);
    assert_int_equal(v[DG_WREPLY_PROVENANCE], DG_PROVENANCE_NONE);
    freeReplyObject(app);

    /* a record appended after this one: this one is still the second */
    assert_int_equal(dg_log_record((char *) log + 2 * DG_LOG_RSZ, &req,
                                   T_NOW + 2500),
                     DG_LOG_RSZ);
    app = t_resp_s(":48\r\n");
    assert_int_equal(t_log_reply(&p, app, NULL, w, log, 3, NULL, value,
                                 v, &take),
                     0);
    assert_int_equal(v[DG_WREPLY_SLOT], 2);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 4);

    /*
     * a follow-up of the conversation the log's first record opened:
     * verified, about the conversation's topic (the fold checks it
     * against the ring as it stands before it)
     */
    f.prior = 0xabcdef;
    f.topic = 9;
    assert_int_equal(dg_log_record((char *) log + DG_LOG_RSZ, &req,
                                   T_NOW + 2000),
                     DG_LOG_RSZ);
    assert_int_equal(t_log_reply(&p, app, NULL, w, log, 2, NULL, value,
                                 v, &take),
                     0);
    assert_int_equal(v[DG_WREPLY_PROVENANCE], DG_PROVENANCE_VERIFIED);
    assert_int_equal(t_get((unsigned char *) value + DG_WIN_ROFF
                           + 2 * DG_WIN_RSZ + 3, 2), 9 + 16384);

    /* a history no record sent: fabricated */
    f.prior = 0x55aa;
    assert_int_equal(dg_log_record((char *) log + DG_LOG_RSZ, &req,
                                   T_NOW + 2000),
                     DG_LOG_RSZ);
    assert_int_equal(t_log_reply(&p, app, NULL, w, log, 2, NULL, value,
                                 v, &take),
                     0);
    assert_int_equal(v[DG_WREPLY_PROVENANCE], DG_PROVENANCE_FABRICATED);
    f.prior = 0;
    f.topic = 0;
    assert_int_equal(dg_log_record((char *) log + DG_LOG_RSZ, &req,
                                   T_NOW + 2000),
                     DG_LOG_RSZ);

    /* penalised: the period the SET NX GET found taken refuses */
    t_window(w, T_NOW + 60000);
    thr = t_resp_s("$13\r\n1700000007000\r\n");
    assert_int_equal(t_log_reply(&p, app, thr, w, log, 2, NULL, value,
                                 v, &take),
                     0);
    assert_int_equal(v[DG_WREPLY_STATE], 2);
    assert_int_equal(v[DG_WREPLY_REFUSED], DG_REFUSED_THROTTLE);
    assert_int_equal(v[DG_WREPLY_RETRY_MS], 5000);
    assert_int_equal(v[DG_WREPLY_PENALTY_MS], 58000);
    assert_int_equal(take, 0);
    freeReplyObject(thr);

    /* a penalty this worker did not know: the MGET's period */
    assert_int_equal(t_log_reply(&p, app, NULL, w, log, 2, "1700000007000", value,
                                 v, &take),
                     0);
    assert_int_equal(v[DG_WREPLY_REFUSED], DG_REFUSED_THROTTLE);
    assert_int_equal(take, 0);

    /* ... and a free one: this request's to take */
    assert_int_equal(t_log_reply(&p, app, NULL, w, log, 2, NULL, value,
                                 v, &take),
                     0);
    assert_int_equal(v[DG_WREPLY_REFUSED], DG_REFUSED_NONE);
    assert_int_equal(take, 1);

    /* no window (released): a fresh one from the log alone */
    assert_int_equal(t_log_reply(&p, app, NULL, NULL, log, 2, NULL, value,
                                 v, &take),
                     0);
    assert_int_equal(p.v[DG_PROF_REQUESTS], 2);
    assert_int_equal(v[DG_WREPLY_STATE], 0);
    freeReplyObject(app);

    /* not these commands' replies */
    app = t_resp_s("-OOM command not allowed\r\n");
    mget = t_mget(w, log, 2 * DG_LOG_RSZ, NULL);
    assert_int_equal(dg_reply_window_log(&p, T_W, app, NULL, mget, value, v,
                                         &pending, &log_ms, &take),
                     -1);
    assert_int_equal(dg_reply_window_log(&p, T_W, NULL, NULL, mget, value,
                                         v, &pending, &log_ms, &take),
                     -1);
    freeReplyObject(app);
    app = t_bulk(w, 4);
    assert_int_equal(dg_reply_window_log(&p, T_W, app, NULL, mget, value, v,
                                         &pending, &log_ms, &take),
                     -1);
    freeReplyObject(app);
    freeReplyObject(mget);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_ways),
        cmocka_unit_test(test_commit_once),
        cmocka_unit_test(test_commit_cmd),
        cmocka_unit_test(test_reply_log),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
