/*
 * distill-guard: a request's Redis calls.  One exchange adds the request
 * to its key's window and reads the window back (the script, then a GET,
 * for the key's slot); one exchange per fan-out counter the worker does
 * not hold.  The request's handler runs once every exchange is answered
 * or has failed; the replies become the profile in the engine
 * (src/dg_reply.c).
 */

#include "ngx_distill_guard_module.h"
#include "dg_reply.h"
#include "dg_warm.h"


/* the tag of the window exchange; fan-out exchanges carry their kind */
#define NGX_DG_TAG_WINDOW           DG_FANOUT_N


static void ngx_dg_window_reply(ngx_dg_xchg_t *x);
static void ngx_dg_window_op_free(ngx_dg_op_t *op);
static ngx_int_t ngx_dg_window_native(ngx_dg_op_t *op, ngx_dg_xchg_t *x,
    ngx_http_distill_guard_main_conf_t *dmcf);
static void ngx_dg_window_learn(ngx_dg_op_t *op, ngx_dg_xchg_t *x);


static ngx_dg_op_t  *ngx_dg_window_free;

/* what this worker knows of the keys it saw (src/dg_warm.h) */
static dg_warm_t     ngx_dg_warm;


ngx_dg_op_t *
ngx_dg_window_op_alloc(void)
{
    ngx_dg_op_t  *op;

    op = ngx_dg_window_free;

    if (op) {
        ngx_dg_window_free = op->next;

    } else {
        op = ngx_alloc(sizeof(ngx_dg_op_t), ngx_cycle->log);
        if (op == NULL) {
            return NULL;
        }
    }

    ngx_memzero(op, offsetof(ngx_dg_op_t, window));
    op->nwreply = 0;
    op->have_window = 0;
    op->next = NULL;

    return op;
}


static void
ngx_dg_window_op_free(ngx_dg_op_t *op)
{
    op->next = ngx_dg_window_free;
    ngx_dg_window_free = op;
}


void
ngx_dg_window_exit_process(void)
{
    ngx_dg_op_t  *op;

    if (ngx_dg_warm.entry) {
        ngx_free(ngx_dg_warm.entry);
        ngx_dg_warm.entry = NULL;
    }

    while (ngx_dg_window_free) {
        op = ngx_dg_window_free;
        ngx_dg_window_free = op->next;
        ngx_free(op);
    }
}


static ngx_int_t
ngx_dg_window_xchg(ngx_dg_op_t *op, ngx_uint_t tag)
{
    int                                  rc;
    dg_cmd_t                             cmd;
    ngx_int_t                            sent;
    ngx_dg_xchg_t                       *x;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_distill_guard_module);

    x = ngx_dg_redis_xchg_alloc();
    if (x == NULL) {
        return NGX_ERROR;
    }

    x->handler = ngx_dg_window_reply;
    x->data = op;
    x->tag = tag;

    if (tag == NGX_DG_TAG_WINDOW) {
        rc = ngx_dg_window_native(op, x, dmcf);

        if (rc == NGX_OK) {
            goto send;
        }

        if (rc == NGX_ERROR) {
            ngx_dg_redis_xchg_free(x);
            return NGX_ERROR;
        }

        /* the script, then the value it wrote: one slot, one node */
        rc = dg_window_cmd(&cmd, &op->req, dmcf->window_sha);

        if (rc == 0 && ngx_dg_redis_xchg_add(x, &cmd) == NGX_OK) {
            rc = dg_window_get_cmd(&cmd, &op->req);
        }

    } else {
        rc = dg_fanout_cmd(&cmd, &op->req, (dg_fanout_t) tag,
                           dmcf->fanout_sha);
    }

    if (rc != 0 || ngx_dg_redis_xchg_add(x, &cmd) != NGX_OK) {
        /* 1: nothing to ask of this counter */
        ngx_dg_redis_xchg_free(x);
        return rc == 1 ? NGX_DONE : NGX_ERROR;
    }

send:

    sent = ngx_dg_redis_xchg_send(x);

    if (sent == NGX_OK) {
        op->pending++;
    }

    return sent;
}


/*
 * The gateway's own path, when this worker knows the key's window is
 * there (src/dg_warm.h): APPEND the record to the key's pending log,
 * with the log's PEXPIRE when it is expected to start and the throttle's
 * SET NX GET when the key is penalised, then MGET the window and the
 * log.  NGX_OK: the commands are in x; NGX_DECLINED: the script's path.
 */

static ngx_int_t
ngx_dg_window_native(ngx_dg_op_t *op, ngx_dg_xchg_t *x,
    ngx_http_distill_guard_main_conf_t *dmcf)
{
    char            rec[DG_LOG_RSZ];
    dg_cmd_t        cmd;
    dg_warm_plan_t  plan;

    if (!dmcf->redis.native) {
        return NGX_DECLINED;
    }

    if (ngx_dg_warm.entry == NULL) {
        ngx_dg_warm.entry = ngx_calloc(DG_WARM_SLOTS
                                       * sizeof(dg_warm_entry_t),
                                       ngx_cycle->log);
        if (ngx_dg_warm.entry == NULL) {
            return NGX_DECLINED;
        }
    }

    dg_warm_plan(&ngx_dg_warm, &op->req, op->req.now_ms, &plan);

    if (!plan.native
        || dg_log_record(rec, &op->req, plan.now_ms) != DG_LOG_RSZ
        || dg_window_append_cmd(&cmd, &op->req, rec, DG_LOG_RSZ) != 0
        || ngx_dg_redis_xchg_add(x, &cmd) != NGX_OK)
    {
        /* nothing added to x yet but, at worst, the APPEND */
        return x->n ? NGX_ERROR : NGX_DECLINED;
    }

    op->native = 1;

    if (plan.expire) {
        if (dg_window_log_expire_cmd(&cmd, &op->req) != 0
            || ngx_dg_redis_xchg_add(x, &cmd) != NGX_OK)
        {
            return NGX_ERROR;
        }

        op->native_expire = 1;
    }

    if (plan.throttle) {
        if (dg_window_throttle_cmd(&cmd, &op->req, plan.now_ms,
                                   plan.penalty_ms)
               != 0
            || ngx_dg_redis_xchg_add(x, &cmd) != NGX_OK)
        {
            return NGX_ERROR;
        }

        op->native = x->n;
    }

    if (dg_window_mget_cmd(&cmd, &op->req) != 0
        || ngx_dg_redis_xchg_add(x, &cmd) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_dg_count(redis_native);

    return NGX_OK;
}


/* NGX_OK: op->handler will run; else op is freed */

ngx_int_t
ngx_dg_window_send(ngx_dg_op_t *op)
{
    ngx_uint_t  kind;

    if (ngx_dg_window_xchg(op, NGX_DG_TAG_WINDOW) != NGX_OK) {
        ngx_dg_window_op_free(op);
        return NGX_ERROR;
    }

    /* a counter that cannot be asked is left as the worker holds it */
    for (kind = 0; kind < DG_FANOUT_N; kind++) {
        if (!(op->fanout_skip & (1 << kind))) {
            (void) ngx_dg_window_xchg(op, kind);
        }
    }

    op->start_us = ngx_dg_now_us();

    return NGX_OK;
}


static void
ngx_dg_window_reply(ngx_dg_xchg_t *x)
{
    uint64_t      us;
    ngx_uint_t    i;
    ngx_dg_op_t  *op;

    op = x->data;

    for (i = 0; i < x->n; i++) {
        if (x->reply[i] == NULL) {
            /* the connection went away with this command unanswered */
            op->errors++;

        } else if (x->reply[i]->type == REDIS_REPLY_ERROR) {
            ngx_dg_redis_reply_error(x->reply[i]);
            op->errors++;
        }
    }

    if (x->tag == NGX_DG_TAG_WINDOW) {
        ngx_dg_window_learn(op, x);

    } else if (dg_reply_fanout(&op->profile, (dg_fanout_t) x->tag,
                               x->reply[0])
               == 0)
    {
        op->fanout_got |= 1 << x->tag;
    }

    if (--op->pending) {
        return;
    }

    if (op->errors || !op->have_window) {
        ngx_dg_count(redis_errors);

    } else {
        ngx_dg_count(redis_replies);
    }

    /*
     * a reply whose request has gone (timed out, client closed) is no
     * round trip a request saw: after a SIGSTOP it would read seconds
     */
    if (op->data) {
        us = ngx_dg_now_us() - op->start_us;
        ngx_dg_stats_latency(us);
        op->handler(op);
    }

    ngx_dg_window_op_free(op);
}


/*
 * The window exchange's replies into the profile, and what they tell
 * this worker of the key and of Redis's clock
 */

static void
ngx_dg_window_learn(ngx_dg_op_t *op, ngx_dg_xchg_t *x)
{
    int                                  rc;
    dg_cmd_t                             cmd;
    unsigned                             pending, take;
    uint64_t                             log_ms;
    const char                          *old;
    redisReply                          *thr, *w;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_distill_guard_module);
    pending = 0;
    take = 0;
    old = NULL;
    log_ms = 0;

    if (op->native) {
        thr = (op->native > 1) ? x->reply[op->native - 1] : NULL;

        rc = dg_reply_window_log(&op->profile, op->req.window_ms,
                                 x->reply[0], thr, x->reply[x->n - 1],
                                 op->window, op->wreply, &pending, &log_ms,
                                 &take);

        /* a penalty another worker or node set: this request's period */
        if (rc == 0 && take
            && dg_window_throttle_cmd(&cmd, &op->req,
                                      op->wreply[DG_WREPLY_NOW_MS],
                                      op->wreply[DG_WREPLY_PENALTY_MS])
               == 0)
        {
            ngx_dg_redis_fire(&cmd);
        }

        /*
         * the log started with this record where this worker did not
         * expect it (another's script folded it): its TTL now
         */
        if (rc == 0 && !op->native_expire
            && x->reply[0]->integer == DG_LOG_RSZ
            && dg_window_log_expire_cmd(&cmd, &op->req) == 0)
        {
            ngx_dg_redis_fire(&cmd);
        }

        /* the window as read, when the fold did not start it afresh */
        w = (rc == 0) ? x->reply[x->n - 1]->element[0] : NULL;

        old = (w && w->type == REDIS_REPLY_STRING && w->len == DG_WIN_SIZE
               && dg_window_usable(w->str, op->req.window_ms))
              ? w->str : NULL;

        /*
         * the fold made here, written back once the log holds a few
         * records: the script's fold costs Redis several times more
         */
        if (old && pending >= DG_LOG_COMMIT
            && dg_warm_commit(&ngx_dg_warm, op->key_id, old)
            && dg_window_commit_cmd(&cmd, &op->req, dmcf->window_sha, old,
                                    op->window,
                                    (size_t) pending * DG_LOG_RSZ)
               == 0)
        {
            ngx_dg_redis_fire(&cmd);
            ngx_dg_count(redis_commits);
            pending = 0;
            log_ms = 0;
        }

    } else {
        rc = dg_reply_window(&op->profile, op->req.window_ms, x->reply[0],
                             x->reply[1], op->window, op->wreply);

        if (rc == 0) {
            dg_warm_clock(&ngx_dg_warm,
                          (uint64_t) op->wreply[DG_WREPLY_NOW_MS],
                          ngx_dg_epoch_ms());
        }
    }

    if (rc != 0) {
        dg_warm_forget(&ngx_dg_warm, op->key_id);
        return;
    }

    op->nwreply = DG_WREPLY_N;
    op->have_window = 1;

    /*
     * the window this worker knew of is gone (released, flushed, lost in
     * a failover): the script makes it again, with the key's state, at
     * the key's next request; the log keeps this one's record till then
     */
    if (op->native && old == NULL) {
        dg_warm_forget(&ngx_dg_warm, op->key_id);
        return;
    }

    dg_warm_learn(&ngx_dg_warm, op->key_id, op->window, op->req.window_ms,
                  pending, log_ms);
}


/* this worker penalised a key: its next requests take the throttle */

void
ngx_dg_window_penalise(const char *key_id, uint64_t penalty_end_ms)
{
    dg_warm_penalise(&ngx_dg_warm, key_id, penalty_end_ms);
}


/* nginx's cached wall clock, ms since the epoch */

uint64_t
ngx_dg_epoch_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
