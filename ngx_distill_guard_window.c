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


/* the tag of the window exchange; fan-out exchanges carry their kind */
#define NGX_DG_TAG_WINDOW           DG_FANOUT_N


static void ngx_dg_window_reply(ngx_dg_xchg_t *x);
static void ngx_dg_window_op_free(ngx_dg_op_t *op);


static ngx_dg_op_t  *ngx_dg_window_free;


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

    sent = ngx_dg_redis_xchg_send(x);

    if (sent == NGX_OK) {
        op->pending++;
    }

    return sent;
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
        if (dg_reply_window(&op->profile, op->req.window_ms, x->reply[0],
                            x->reply[1], op->window, op->wreply)
            == 0)
        {
            op->nwreply = DG_WREPLY_N;
            op->have_window = 1;
        }

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
