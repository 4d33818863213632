/*
 * distill-guard: the Redis transport's exchanges and the slot map.
 *
 * An exchange is up to NGX_DG_XCHG_CMDS commands for one hash slot,
 * sent in order to the node that serves the slot and answered together.
 * An exchange whose command is redirected (MOVED, ASK) or finds its
 * script missing (NOSCRIPT) is sent again from that command on, to the
 * right node or after loading the scripts, up to NGX_DG_XCHG_TRIES
 * times; its handler sees only the final replies.
 *
 * With cluster=on the worker keeps the slot map (CLUSTER SLOTS): a node
 * that comes up tells it, a MOVED moves its slot at once and asks for
 * the whole map again, and while a slot has no master that answers, the
 * map is asked for again every NGX_DG_MAP_RETRY ms.
 */

#include "ngx_distill_guard_redis.h"
#include "dg_cmd.h"


static ngx_dg_node_t *ngx_dg_redis_route(ngx_uint_t slot);
static ngx_int_t ngx_dg_xchg_push(ngx_dg_xchg_t *x, ngx_dg_node_t *node,
    ngx_uint_t from, ngx_uint_t asking, ngx_uint_t reload);
static void ngx_dg_xchg_done(ngx_dg_xchg_t *x);


static const char  ngx_dg_asking[] = "*1\r\n$6\r\nASKING\r\n";


ngx_dg_xchg_t *
ngx_dg_redis_xchg_alloc(void)
{
    ngx_dg_xchg_t  *x;

    x = ngx_dg_redis.free;

    if (x) {
        ngx_dg_redis.free = x->next;

    } else {
        x = ngx_alloc(sizeof(ngx_dg_xchg_t), ngx_dg_redis.log);
        if (x == NULL) {
            return NULL;
        }
    }

    ngx_memzero(x, offsetof(ngx_dg_xchg_t, buf));

    return x;
}


void
ngx_dg_redis_xchg_free(ngx_dg_xchg_t *x)
{
    ngx_uint_t  i;

    for (i = 0; i < x->n; i++) {
        if (x->reply[i]) {
            freeReplyObject(x->reply[i]);
        }
    }

    x->next = ngx_dg_redis.free;
    ngx_dg_redis.free = x;
}


/* one more command of the exchange, formatted into its buffer */

ngx_int_t
ngx_dg_redis_xchg_add(ngx_dg_xchg_t *x, dg_cmd_t *cmd)
{
    long         len;
    size_t       klen;
    const char  *key;

    if (x->n == NGX_DG_XCHG_CMDS) {
        return NGX_ERROR;
    }

    /* the slot routes on a cluster only: one node needs no hash */
    if (x->n == 0 && ngx_dg_redis.conf->cluster) {
        key = dg_cmd_key(cmd->argc, cmd->argv, cmd->argvlen, &klen);
        x->slot = key ? dg_slot(key, klen) : 0;
    }

    /* formatted where it stays until every reply came: no allocation */
    len = dg_cmd_format(cmd, (char *) x->buf + x->off[x->n],
                        sizeof(x->buf) - x->off[x->n]);
    if (len < 0) {
        return NGX_ERROR;
    }

    x->n++;
    x->off[x->n] = x->off[x->n - 1] + len;

    return NGX_OK;
}


static ngx_dg_node_t *
ngx_dg_redis_route(ngx_uint_t slot)
{
    ngx_uint_t  i;

    if (!ngx_dg_redis.conf->cluster) {
        return &ngx_dg_redis.nodes[0];
    }

    i = ngx_dg_redis.slots[slot];

    if (i == NGX_DG_NO_NODE) {
        ngx_dg_map_refresh();
        return NULL;
    }

    return &ngx_dg_redis.nodes[i];
}


/*
 * Sends an exchange built with ngx_dg_redis_xchg_add().  NGX_OK: its
 * handler will be called (never from here); else the exchange is freed
 * and nothing is sent: NGX_DECLINED when the node of its slot is down,
 * NGX_BUSY at max_inflight, NGX_ERROR.
 */

ngx_int_t
ngx_dg_redis_xchg_send(ngx_dg_xchg_t *x)
{
    ngx_uint_t      suppressed;
    ngx_dg_node_t  *node;

    node = ngx_dg_redis_route(x->slot);

    if (node == NULL || node->state == NGX_DG_REDIS_DOWN) {
        ngx_dg_redis_xchg_free(x);
        return NGX_DECLINED;
    }

    if (x->handler && node->inflight >= ngx_dg_redis.conf->max_inflight) {
        if (ngx_dg_log_allow(&ngx_dg_redis.busy_log, &suppressed)) {
            ngx_log_error(NGX_LOG_WARN, ngx_dg_redis.log, 0,
                          "distill_guard: %ui redis requests in flight to "
                          "\"%V\", failing new ones until replies come (at "
                          "most one line per %d s, %ui suppressed before "
                          "this one)", node->inflight, &node->name,
                          NGX_DG_LOG_INTERVAL, suppressed);
        }

        ngx_dg_redis_xchg_free(x);
        return NGX_BUSY;
    }

    x->bad = NGX_DG_XCHG_CMDS;

    if (ngx_dg_xchg_push(x, node, 0, 0, 0) != NGX_OK) {
        ngx_dg_redis_xchg_free(x);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dg_xchg_push(ngx_dg_xchg_t *x, ngx_dg_node_t *node, ngx_uint_t from,
    ngx_uint_t asking, ngx_uint_t reload)
{
    size_t      bytes, asked;
    ngx_uint_t  i;

    asked = asking ? sizeof(ngx_dg_asking) - 1 : 0;
    bytes = x->off[x->n] - x->off[from] + (x->n - from) * asked;

    if (reload) {
        bytes += ngx_dg_redis.load_len;
    }

    if (ngx_dg_node_reserve(node, bytes,
                            (x->n - from) * (asking ? 2 : 1)
                            + (reload ? 2 : 0))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (reload) {
        /* the scripts again (SCRIPT FLUSH, a restarted Redis) */
        ngx_dg_node_append(node, ngx_dg_redis.load, ngx_dg_redis.load_len);
        ngx_dg_node_expect(node, NGX_DG_ENT_SKIP, NULL, NULL);
        ngx_dg_node_expect(node, NGX_DG_ENT_SKIP, NULL, NULL);
    }

    for (i = from; i < x->n; i++) {

        if (asking) {
            ngx_dg_node_append(node, (u_char *) ngx_dg_asking, asked);
            ngx_dg_node_expect(node, NGX_DG_ENT_SKIP, NULL, NULL);
        }

        ngx_dg_node_append(node, x->buf + x->off[i],
                           x->off[i + 1] - x->off[i]);
        ngx_dg_node_expect(node, NGX_DG_ENT_CMD, x, NULL);
    }

    x->node = node->index;
    x->nreplied = from;
    x->bad = NGX_DG_XCHG_CMDS;

    if (x->handler) {
        node->inflight++;
    }

    return NGX_OK;
}


/*
 * A reply to command x->nreplied of the exchange, or NULL when none will
 * come.  A redirection or a missing script marks the exchange for
 * sending again from that command on, once the replies sent with it
 * are in: those after it answered for a command that did not run.
 * Without cluster=on a redirection is an error like any other: the
 * operator pointed the module at a cluster node, and the log says so.
 */

void
ngx_dg_xchg_reply(ngx_dg_xchg_t *x, ngx_dg_node_t *node, redisReply *reply)
{
    ngx_uint_t       i, from, asking, reload;
    dg_redirect_t    rd;
    ngx_dg_node_t   *to;
    dg_reply_kind_t  kind;

    i = x->nreplied++;

    if (x->bad < i) {
        /* answered for a command that is sent again */
        if (reply) {
            freeReplyObject(reply);
        }

    } else if (reply && reply->type == REDIS_REPLY_ERROR
               && x->tries < NGX_DG_XCHG_TRIES - 1
               && (kind = dg_reply_redirect(reply->str, reply->len, &rd))
                  != DG_REPLY_ERROR
               && kind != DG_REPLY_TRYAGAIN && kind != DG_REPLY_CLUSTERDOWN
               && (kind == DG_REPLY_NOSCRIPT || ngx_dg_redis.conf->cluster))
    {
        x->bad = i;
        x->redirect = rd;
        freeReplyObject(reply);

    } else {
        x->reply[i] = reply;
    }

    if (x->nreplied < x->n) {
        return;
    }

    if (x->handler && node->inflight) {
        node->inflight--;
    }

    if (x->bad == NGX_DG_XCHG_CMDS) {
        ngx_dg_xchg_done(x);
        return;
    }

    /* send again from the first command that did not run */

    from = x->bad;
    asking = 0;
    reload = 0;
    to = node;
    x->tries++;

    switch (x->redirect.kind) {

    case DG_REPLY_MOVED:
        to = ngx_dg_node_by_addr(x->redirect.addr);

        if (to && ngx_dg_redis.slots) {
            /* this slot at once; the rest of the map with a refresh */
            ngx_dg_redis.slots[x->redirect.slot] = (u_char) to->index;
            to->owned++;
            ngx_dg_map_refresh();
        }

        break;

    case DG_REPLY_ASK:
        to = ngx_dg_node_by_addr(x->redirect.addr);
        asking = 1;
        break;

    default: /* DG_REPLY_NOSCRIPT */
        reload = 1;
        break;
    }

    if (to && to->state == NGX_DG_REDIS_DOWN && to->conn == NULL
        && !to->retry.timer_set)
    {
        ngx_dg_node_connect(to);
    }

    if (to == NULL || to->state == NGX_DG_REDIS_DOWN
        || ngx_dg_xchg_push(x, to, from, asking, reload) != NGX_OK)
    {
        /* the commands from there on have no reply */
        x->nreplied = x->n;
        x->bad = NGX_DG_XCHG_CMDS;
        ngx_dg_xchg_done(x);
    }
}


static void
ngx_dg_xchg_done(ngx_dg_xchg_t *x)
{
    ngx_uint_t   i;
    redisReply  *r;

    if (x->handler) {
        x->handler(x);

    } else {
        /* nobody waits: errors are only counted and logged */
        for (i = 0; i < x->n; i++) {
            r = x->reply[i];

            if (r == NULL || r->type == REDIS_REPLY_ERROR) {
                ngx_dg_count(redis_errors);

                if (r) {
                    ngx_dg_redis_log_error(" (a write not waited for)", r);
                }
            }
        }
    }

    ngx_dg_redis_xchg_free(x);
}


/*
 * A write whose reply nobody waits for (a key's change of state): it
 * rides the same pipeline, and a failure is only counted and logged.
 */

void
ngx_dg_redis_fire(dg_cmd_t *cmd)
{
    ngx_dg_xchg_t  *x;

    x = ngx_dg_redis_xchg_alloc();
    if (x == NULL) {
        return;
    }

    if (ngx_dg_redis_xchg_add(x, cmd) != NGX_OK) {
        ngx_dg_redis_xchg_free(x);
        ngx_dg_count(redis_errors);
        return;
    }

    (void) ngx_dg_redis_xchg_send(x);
}


/* the slot map of a cluster */

void
ngx_dg_map_refresh(void)
{
    ngx_uint_t      i, n;
    const char     *argv[2];
    size_t          argvlen[2];
    ngx_dg_node_t  *node;

    if (!ngx_dg_redis.conf->cluster || ngx_dg_redis.refresh_pending) {
        return;
    }

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    /* any node that answers; not always the first */
    n = ngx_dg_redis.nnodes;

    for (i = 0; i < n; i++) {
        node = &ngx_dg_redis.nodes[(i + (ngx_uint_t) ngx_random()) % n];

        if (node->state == NGX_DG_REDIS_READY) {
            if (ngx_dg_node_command(node, NGX_DG_ENT_SLOTS, NULL, 2, argv,
                                    argvlen)
                == NGX_OK)
            {
                ngx_dg_redis.refresh_pending++;
            }

            return;
        }
    }

    /* none answers: the seeds, as soon as their backoff lets them */
    for (i = 0; i < ngx_dg_redis.nseeds; i++) {
        node = &ngx_dg_redis.nodes[i];

        if (node->conn == NULL && !node->retry.timer_set) {
            ngx_dg_node_connect(node);
        }
    }
}


void
ngx_dg_map_apply(ngx_dg_node_t *from, redisReply *reply)
{
    int               n, k;
    u_char           *slots;
    ngx_uint_t        i, s, suppressed;
    ngx_dg_node_t    *node;
    dg_slot_range_t  *ranges;
    char              self[DG_ADDR_LEN];

    ranges = ngx_alloc(DG_SLOTS * sizeof(dg_slot_range_t) / 16,
                       ngx_dg_redis.log);
    if (ranges == NULL) {
        return;
    }

    ngx_memcpy(self, from->name.data, ngx_min(from->name.len,
                                              DG_ADDR_LEN - 1));
    self[ngx_min(from->name.len, DG_ADDR_LEN - 1)] = '\0';

    n = dg_cluster_slots(reply, self, ranges, DG_SLOTS / 16);

    if (n <= 0) {
        if (ngx_dg_log_allow(&ngx_dg_redis.map_log, &suppressed)) {
            ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                          "distill_guard: redis \"%V\" gave no slot map%s%*s "
                          "(is it a cluster node?)", &from->name,
                          reply->type == REDIS_REPLY_ERROR ? ": " : "",
                          reply->type == REDIS_REPLY_ERROR
                          ? (size_t) ngx_min(reply->len, 200) : 0,
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        }

        ngx_free(ranges);
        return;
    }

    slots = ngx_dg_redis.slots;
    ngx_memset(slots, NGX_DG_NO_NODE, DG_SLOTS);

    for (i = 0; i < ngx_dg_redis.nnodes; i++) {
        ngx_dg_redis.nodes[i].owned = 0;
    }

    for (k = 0; k < n; k++) {
        node = ngx_dg_node_by_addr(ranges[k].addr);

        if (node == NULL) {
            if (ngx_dg_log_allow(&ngx_dg_redis.map_log, &suppressed)) {
                ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                              "distill_guard: redis cluster node \"%s\" "
                              "cannot be used (not an IP address, or more "
                              "than %d nodes)", ranges[k].addr,
                              NGX_DG_NODES_MAX);
            }

            continue;
        }

        for (s = ranges[k].first; s <= ranges[k].last; s++) {
            slots[s] = (u_char) node->index;
        }

        node->owned += ranges[k].last - ranges[k].first + 1;
    }

    ngx_free(ranges);

    /* every master is connected before a request needs it */
    for (i = 0; i < ngx_dg_redis.nnodes; i++) {
        node = &ngx_dg_redis.nodes[i];

        if (node->owned && node->conn == NULL && !node->retry.timer_set) {
            ngx_dg_node_connect(node);
        }
    }

    ngx_dg_map_check();
    ngx_dg_redis_update_state();
}


/* while a slot has no master, or a master is lost: refresh again soon */

void
ngx_dg_map_check(void)
{
    ngx_uint_t  s, i;

    for (s = 0; s < DG_SLOTS; s++) {
        i = ngx_dg_redis.slots[s];

        if (i == NGX_DG_NO_NODE
            || ngx_dg_redis.nodes[i].state == NGX_DG_REDIS_DOWN)
        {
            if (!ngx_dg_redis.map_timer.timer_set
                && !(ngx_exiting || ngx_terminate || ngx_quit))
            {
                ngx_add_timer(&ngx_dg_redis.map_timer, NGX_DG_MAP_RETRY);
            }

            return;
        }
    }
}


void
ngx_dg_map_timer_handler(ngx_event_t *ev)
{
    ngx_dg_map_refresh();
    ngx_dg_map_check();
}
