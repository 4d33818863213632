/*
 * distill-guard: one Redis connection per worker, driven by hiredis's
 * asynchronous API on nginx's event loop.
 *
 * hiredis 0.14 ships no nginx adapter, so this file is one: hiredis owns
 * the socket and the protocol, nginx owns the events.  Commands that
 * requests queue during one event-loop turn are appended to hiredis's
 * output buffer and leave together on the next write event, so
 * concurrent requests are pipelined on the one connection.  The worker
 * never waits: a request whose replies are late is answered by its own
 * timer, and its replies, when they come, find it gone and are dropped.
 */

#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_distill_guard_module.h"


#define NGX_DG_REDIS_DOWN           0
#define NGX_DG_REDIS_CONNECTING     1
#define NGX_DG_REDIS_READY          2

#define NGX_DG_BACKOFF_MIN          100
#define NGX_DG_BACKOFF_MAX          5000

/* what a reply answers: a dg_fanout_t, the window script, its value */
#define NGX_DG_KIND_WINDOW          DG_FANOUT_N
#define NGX_DG_KIND_VALUE           (DG_FANOUT_N + 1)

/* seconds between two log lines of one kind of repeated failure */
#define NGX_DG_LOG_INTERVAL         10


typedef struct {
    time_t                               next;  /* quiet until then */
    ngx_uint_t                           suppressed;
} ngx_dg_log_limit_t;


typedef struct {
    redisAsyncContext                   *ac;
    ngx_connection_t                    *conn;
    ngx_uint_t                           state;
    ngx_msec_t                           backoff;
    ngx_event_t                          retry;
    ngx_event_t                          connect_timer;
    ngx_http_distill_guard_main_conf_t  *dmcf;
    ngx_log_t                           *log;
    ngx_dg_op_t                         *free;
    ngx_uint_t                           nops;
    ngx_uint_t                           inflight;
    ngx_uint_t                           setup_pending;
    ngx_dg_log_limit_t                   busy_log;
    ngx_dg_log_limit_t                   error_log;
    unsigned                             down_logged:1;
} ngx_dg_redis_t;


static void ngx_dg_redis_connect(void);
static void ngx_dg_redis_schedule(void);
static void ngx_dg_redis_retry_handler(ngx_event_t *ev);
static void ngx_dg_redis_connect_timeout(ngx_event_t *ev);
static void ngx_dg_redis_on_connect(const redisAsyncContext *ac, int status);
static void ngx_dg_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_dg_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_dg_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_dg_redis_fire_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_dg_redis_log_error(const char *what, redisReply *reply);
static ngx_int_t ngx_dg_log_allow(ngx_dg_log_limit_t *ll,
    ngx_uint_t *suppressed);
static ngx_int_t ngx_dg_redis_queue(ngx_dg_op_t *op, ngx_uint_t kind,
    ngx_uint_t eval);
static void ngx_dg_redis_op_free(ngx_dg_op_t *op);

static void ngx_dg_redis_read_handler(ngx_event_t *ev);
static void ngx_dg_redis_write_handler(ngx_event_t *ev);
static void ngx_dg_redis_add_read(void *privdata);
static void ngx_dg_redis_del_read(void *privdata);
static void ngx_dg_redis_add_write(void *privdata);
static void ngx_dg_redis_del_write(void *privdata);
static void ngx_dg_redis_cleanup(void *privdata);


static ngx_dg_redis_t  ngx_dg_redis;


uint64_t
ngx_dg_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


char *
ngx_dg_redis_parse(ngx_conf_t *cf, ngx_dg_redis_conf_t *rc, ngx_str_t *value,
    ngx_uint_t n)
{
    u_char      *p;
    size_t       len;
    ngx_int_t    num;
    ngx_str_t    s;
    ngx_url_t    u;
    ngx_uint_t   i;

    rc->name = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        len = value[1].len - 5;
        p = ngx_pnalloc(cf->pool, len + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(p, value[1].data + 5, len);
        p[len] = '\0';
        rc->addr.data = p;
        rc->addr.len = len;
        rc->port = 0;

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = value[1];
        u.default_port = 6379;

        /* resolved here, once: hiredis would resolve in the worker */
        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid redis address \"%V\"%s%s", &value[1],
                               u.err ? ": " : "", u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                            NGX_SOCKADDR_STRLEN, 0);
        p[len] = '\0';
        rc->addr.data = p;
        rc->addr.len = len;
        rc->port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

    for (i = 2; i < n; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rc->password.data = value[i].data + 9;
            rc->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rc->user.data = value[i].data + 5;
            rc->user.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            num = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (num == NGX_ERROR || num > 65535) {
                goto invalid;
            }

            rc->db = num;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;
            rc->connect_timeout = ngx_parse_time(&s, 0);
            if (rc->connect_timeout == (ngx_msec_t) NGX_ERROR
                || rc->connect_timeout == 0)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            rc->timeout = ngx_parse_time(&s, 0);
            if (rc->timeout == (ngx_msec_t) NGX_ERROR || rc->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_inflight=", 13) == 0) {
            num = ngx_atoi(value[i].data + 13, value[i].len - 13);
            if (num == NGX_ERROR || num == 0) {
                goto invalid;
            }

            rc->max_inflight = num;
            continue;
        }

        goto invalid;
    }

    if (rc->user.len && rc->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"user=\" needs \"password=\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    /* never echo a password back, even a malformed one */
    if (ngx_strncmp(value[i].data, "password", 8) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid redis password parameter");

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid redis parameter \"%V\"", &value[i]);
    }

    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_dg_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_distill_guard_main_conf_t *dmcf)
{
    ngx_memzero(&ngx_dg_redis, sizeof(ngx_dg_redis_t));

    ngx_dg_redis.dmcf = dmcf;
    ngx_dg_redis.log = cycle->log;
    ngx_dg_redis.backoff = NGX_DG_BACKOFF_MIN;

    ngx_dg_redis.retry.handler = ngx_dg_redis_retry_handler;
    ngx_dg_redis.retry.log = cycle->log;
    ngx_dg_redis.retry.data = &ngx_dg_redis;
    ngx_dg_redis.retry.cancelable = 1;

    ngx_dg_redis.connect_timer.handler = ngx_dg_redis_connect_timeout;
    ngx_dg_redis.connect_timer.log = cycle->log;
    ngx_dg_redis.connect_timer.data = &ngx_dg_redis;
    ngx_dg_redis.connect_timer.cancelable = 1;

    ngx_dg_redis_connect();

    return NGX_OK;
}


void
ngx_dg_redis_exit_process(ngx_cycle_t *cycle)
{
    redisAsyncContext  *ac;
    ngx_dg_op_t        *op;

    if (ngx_dg_redis.retry.timer_set) {
        ngx_del_timer(&ngx_dg_redis.retry);
    }

    if (ngx_dg_redis.connect_timer.timer_set) {
        ngx_del_timer(&ngx_dg_redis.connect_timer);
    }

    ac = ngx_dg_redis.ac;
    ngx_dg_redis.ac = NULL;
    ngx_dg_redis.state = NGX_DG_REDIS_DOWN;

    if (ac) {
        redisAsyncFree(ac);
    }

    while (ngx_dg_redis.free) {
        op = ngx_dg_redis.free;
        ngx_dg_redis.free = op->next;
        ngx_free(op);
    }
}


ngx_int_t
ngx_dg_redis_ready(void)
{
    return ngx_dg_redis.ac != NULL
           && ngx_dg_redis.state != NGX_DG_REDIS_DOWN;
}


static void
ngx_dg_redis_set_state(ngx_uint_t state)
{
    ngx_dg_redis.state = state;
    ngx_dg_stats_worker_state(state);
}


static void
ngx_dg_redis_connect(void)
{
    ngx_connection_t     *c;
    redisAsyncContext    *ac;
    ngx_dg_redis_conf_t  *rc;
    const char           *argv[3];
    size_t                argvlen[3];
    int                   argc;
    char                  db[NGX_INT_T_LEN + 1];

    rc = &ngx_dg_redis.dmcf->redis;

    if (rc->port) {
        ac = redisAsyncConnect((char *) rc->addr.data, rc->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rc->addr.data);
    }

    if (ac == NULL || ac->err) {
        if (!ngx_dg_redis.down_logged) {
            ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                          "distill_guard: redis \"%V\" connect failed: %s",
                          &rc->name, ac ? ac->errstr : "out of memory");
            ngx_dg_redis.down_logged = 1;
        }

        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_dg_redis_schedule();
        return;
    }

    c = ngx_get_connection(ac->c.fd, ngx_dg_redis.log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_dg_redis_schedule();
        return;
    }

    c->data = ac;
    c->read->handler = ngx_dg_redis_read_handler;
    c->write->handler = ngx_dg_redis_write_handler;
    c->read->log = c->log;
    c->write->log = c->log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_dg_redis_add_read;
    ac->ev.delRead = ngx_dg_redis_del_read;
    ac->ev.addWrite = ngx_dg_redis_add_write;
    ac->ev.delWrite = ngx_dg_redis_del_write;
    ac->ev.cleanup = ngx_dg_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_dg_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_dg_redis_on_disconnect);

    ngx_dg_redis.ac = ac;
    ngx_dg_redis.conn = c;
    ngx_dg_redis.setup_pending = 0;
    ngx_dg_redis_set_state(NGX_DG_REDIS_CONNECTING);

    /*
     * AUTH, SELECT and the scripts are queued before anything else, so
     * they are the first to leave once connect() completes; requests
     * queued behind them see an authenticated connection.
     */

    if (rc->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (rc->user.len) {
            argv[argc] = (char *) rc->user.data;
            argvlen[argc++] = rc->user.len;
        }

        argv[argc] = (char *) rc->password.data;
        argvlen[argc++] = rc->password.len;

        redisAsyncCommandArgv(ac, ngx_dg_redis_setup_reply, "AUTH", argc,
                              argv, argvlen);
        ngx_dg_redis.setup_pending++;
    }

    if (rc->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = db;
        argvlen[1] = ngx_sprintf((u_char *) db, "%i", rc->db) - (u_char *) db;
        redisAsyncCommandArgv(ac, ngx_dg_redis_setup_reply, "SELECT", 2,
                              argv, argvlen);
        ngx_dg_redis.setup_pending++;
    }

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = dg_window_lua;
    argvlen[2] = dg_window_lua_len;
    redisAsyncCommandArgv(ac, ngx_dg_redis_setup_reply, "SCRIPT LOAD", 3,
                          argv, argvlen);

    argv[2] = dg_fanout_lua;
    argvlen[2] = dg_fanout_lua_len;
    redisAsyncCommandArgv(ac, ngx_dg_redis_setup_reply, "SCRIPT LOAD", 3,
                          argv, argvlen);
    ngx_dg_redis.setup_pending += 2;

    ngx_add_timer(&ngx_dg_redis.connect_timer, rc->connect_timeout);
}


static void
ngx_dg_redis_schedule(void)
{
    ngx_msec_t  delay;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_dg_redis_set_state(NGX_DG_REDIS_DOWN);

    /* exponential backoff with jitter: workers do not reconnect in step */
    delay = ngx_dg_redis.backoff / 2
            + (ngx_msec_t) ngx_random() % (ngx_dg_redis.backoff / 2 + 1);

    ngx_dg_redis.backoff *= 2;
    if (ngx_dg_redis.backoff > NGX_DG_BACKOFF_MAX) {
        ngx_dg_redis.backoff = NGX_DG_BACKOFF_MAX;
    }

    if (!ngx_dg_redis.retry.timer_set) {
        ngx_add_timer(&ngx_dg_redis.retry, delay);
    }
}


static void
ngx_dg_redis_retry_handler(ngx_event_t *ev)
{
    ngx_dg_count(redis_reconnects);
    ngx_dg_redis_connect();
}


static void
ngx_dg_redis_connect_timeout(ngx_event_t *ev)
{
    redisAsyncContext  *ac;

    if (ngx_dg_redis.state != NGX_DG_REDIS_CONNECTING
        || ngx_dg_redis.ac == NULL)
    {
        return;
    }

    if (!ngx_dg_redis.down_logged) {
        ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                      "distill_guard: redis \"%V\" connect timed out",
                      &ngx_dg_redis.dmcf->redis.name);
        ngx_dg_redis.down_logged = 1;
    }

    ac = ngx_dg_redis.ac;
    ngx_dg_redis.ac = NULL;

    /* not connected: hiredis calls neither callback, so reschedule here */
    redisAsyncFree(ac);
    ngx_dg_redis_schedule();
}


static void
ngx_dg_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (ngx_dg_redis.connect_timer.timer_set) {
        ngx_del_timer(&ngx_dg_redis.connect_timer);
    }

    if (status != REDIS_OK) {
        if (!ngx_dg_redis.down_logged) {
            ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                          "distill_guard: redis \"%V\" connect failed: %s",
                          &ngx_dg_redis.dmcf->redis.name, ac->errstr);
            ngx_dg_redis.down_logged = 1;
        }

        /* hiredis frees the context after this callback */
        ngx_dg_redis.ac = NULL;
        ngx_dg_redis_schedule();
        return;
    }

    /*
     * TCP is up; the connection counts as up (backoff reset, "connected"
     * logged) only once AUTH, SELECT and the scripts have succeeded, or a
     * wrong password would reconnect in a tight loop
     */
}


static void
ngx_dg_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    if (ngx_dg_redis.ac != ac) {
        /* freed on purpose: whoever did it has rescheduled */
        return;
    }

    if (!ngx_dg_redis.down_logged) {
        ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                      "distill_guard: redis \"%V\" connection lost: %s",
                      &ngx_dg_redis.dmcf->redis.name,
                      status == REDIS_OK ? "closed" : ac->errstr);
        ngx_dg_redis.down_logged = 1;
    }

    ngx_dg_redis.ac = NULL;
    ngx_dg_redis_schedule();
}


static void
ngx_dg_redis_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply;

    reply = r;

    if (reply == NULL || ngx_dg_redis.ac != ac) {
        /* the connection went away: its disconnect callback reschedules */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        /* once per outage; the command name only: AUTH's are secret */
        if (!ngx_dg_redis.down_logged) {
            ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                          "distill_guard: redis \"%V\" %s failed: %*s",
                          &ngx_dg_redis.dmcf->redis.name, (char *) privdata,
                          (size_t) ngx_min(reply->len, 200), reply->str);
            ngx_dg_redis.down_logged = 1;
        }

        ngx_dg_redis.setup_pending = 0;
        redisAsyncDisconnect(ac);
        return;
    }

    if (ngx_dg_redis.setup_pending == 0 || --ngx_dg_redis.setup_pending) {
        return;
    }

    if (ngx_dg_redis.down_logged) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_dg_redis.log, 0,
                      "distill_guard: redis \"%V\" connected",
                      &ngx_dg_redis.dmcf->redis.name);
        ngx_dg_redis.down_logged = 0;
    }

    ngx_dg_redis.backoff = NGX_DG_BACKOFF_MIN;
    ngx_dg_redis_set_state(NGX_DG_REDIS_READY);
}


ngx_dg_op_t *
ngx_dg_redis_op_alloc(void)
{
    ngx_uint_t    suppressed;
    ngx_dg_op_t  *op;

    if (ngx_dg_redis.inflight >= ngx_dg_redis.dmcf->redis.max_inflight) {
        if (ngx_dg_log_allow(&ngx_dg_redis.busy_log, &suppressed)) {
            ngx_log_error(NGX_LOG_WARN, ngx_dg_redis.log, 0,
                          "distill_guard: %ui redis requests in flight, "
                          "failing new ones until replies come (at most "
                          "one line per %d s, %ui suppressed before this "
                          "one)", ngx_dg_redis.inflight,
                          NGX_DG_LOG_INTERVAL, suppressed);
        }

        return NULL;
    }

    op = ngx_dg_redis.free;

    if (op) {
        ngx_dg_redis.free = op->next;

    } else {
        op = ngx_alloc(sizeof(ngx_dg_op_t), ngx_dg_redis.log);
        if (op == NULL) {
            return NULL;
        }
    }

    ngx_memzero(op, sizeof(ngx_dg_op_t));

    return op;
}


static void
ngx_dg_redis_op_free(ngx_dg_op_t *op)
{
    op->next = ngx_dg_redis.free;
    ngx_dg_redis.free = op;
}


ngx_int_t
ngx_dg_redis_send(ngx_dg_op_t *op)
{
    ngx_uint_t  kind;

    if (!ngx_dg_redis_ready()) {
        ngx_dg_redis_op_free(op);
        return NGX_DECLINED;
    }

    if (ngx_dg_redis_queue(op, NGX_DG_KIND_WINDOW, 0) != NGX_ERROR
        && ngx_dg_redis_queue(op, NGX_DG_KIND_VALUE, 0) != NGX_ERROR)
    {
        for (kind = 0; kind < DG_FANOUT_N; kind++) {
            if (op->fanout_skip & (1 << kind)) {
                continue;
            }

            if (ngx_dg_redis_queue(op, kind, 0) == NGX_ERROR) {
                break;
            }
        }
    }

    if (op->pending == 0) {
        ngx_dg_redis_op_free(op);
        return NGX_ERROR;
    }

    op->start_us = ngx_dg_now_us();
    ngx_dg_redis.inflight++;

    return NGX_OK;
}


/*
 * Error replies are logged at most once per NGX_DG_LOG_INTERVAL: at
 * maxmemory good and bad replies interleave, and a message re-armed by
 * each good reply wrote a line per request.  The status endpoint counts
 * every one; the line says how many it stands for.
 */

static void
ngx_dg_redis_log_error(const char *what, redisReply *reply)
{
    ngx_uint_t  suppressed;

    if (!ngx_dg_log_allow(&ngx_dg_redis.error_log, &suppressed)) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                  "distill_guard: redis error%s: %*s (at most one line per "
                  "%d s, %ui suppressed before this one)", what,
                  (size_t) ngx_min(reply->len, 200), reply->str,
                  NGX_DG_LOG_INTERVAL, suppressed);
}


/* 1: log now, and *suppressed lines were not logged since the last one */

static ngx_int_t
ngx_dg_log_allow(ngx_dg_log_limit_t *ll, ngx_uint_t *suppressed)
{
    time_t  now;

    now = ngx_time();

    if (now < ll->next) {
        ll->suppressed++;
        return 0;
    }

    ll->next = now + NGX_DG_LOG_INTERVAL;
    *suppressed = ll->suppressed;
    ll->suppressed = 0;

    return 1;
}


/*
 * A write whose reply nobody waits for (a key's change of state): it
 * rides the same pipeline, and a failure is only counted and logged.
 */

void
ngx_dg_redis_fire(dg_cmd_t *cmd)
{
    if (!ngx_dg_redis_ready()) {
        return;
    }

    if (redisAsyncCommandArgv(ngx_dg_redis.ac, ngx_dg_redis_fire_reply, NULL,
                              cmd->argc, cmd->argv, cmd->argvlen)
        != REDIS_OK)
    {
        ngx_dg_count(redis_errors);
    }
}


static void
ngx_dg_redis_fire_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply;

    reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_dg_count(redis_errors);

        /* a conversation count after a script flush: the next fan-out
         * command loads the script again */
        if (reply->len < 8 || ngx_strncmp(reply->str, "NOSCRIPT", 8) != 0) {
            ngx_dg_redis_log_error(" (state write)", reply);
        }
    }
}


/* NGX_OK: queued; NGX_DONE: nothing to send; NGX_ERROR */

static ngx_int_t
ngx_dg_redis_queue(ngx_dg_op_t *op, ngx_uint_t kind, ngx_uint_t eval)
{
    int                                  rc;
    dg_cmd_t                             cmd;
    const char                          *sha;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_dg_redis.dmcf;

    if (op->nsent == sizeof(op->kinds)) {
        return NGX_ERROR;
    }

    if (kind == NGX_DG_KIND_WINDOW) {
        sha = eval ? NULL : dmcf->window_sha;
        rc = dg_window_cmd(&cmd, &op->req, sha);

    } else if (kind == NGX_DG_KIND_VALUE) {
        rc = dg_window_get_cmd(&cmd, &op->req);

    } else {
        sha = eval ? NULL : dmcf->fanout_sha;
        rc = dg_fanout_cmd(&cmd, &op->req, (dg_fanout_t) kind, sha);
    }

    if (rc == 1) {
        return NGX_DONE;
    }

    if (rc != 0 || ngx_dg_redis.ac == NULL) {
        return NGX_ERROR;
    }

    if (redisAsyncCommandArgv(ngx_dg_redis.ac, ngx_dg_redis_reply, op,
                              cmd.argc, cmd.argv, cmd.argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    op->kinds[op->nsent++] = (u_char) kind;
    op->pending++;

    return NGX_OK;
}


static void
ngx_dg_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t        i, n;
    int64_t       v[2];
    uint64_t      us;
    ngx_uint_t    kind;
    redisReply   *reply;
    ngx_dg_op_t  *op;

    reply = r;
    op = privdata;
    kind = op->kinds[op->nreplied++];

    if (reply == NULL) {
        /* the connection went away with this command unanswered */
        op->errors++;

    } else if (reply->type == REDIS_REPLY_ERROR) {

        if (reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
            && !(op->noscript_retried & (1 << kind))
            && ngx_dg_redis.ac == ac)
        {
            /*
             * Redis restarted or its script cache was flushed: EVAL the
             * text, which caches it again for every later EVALSHA; once
             * per command
             */
            op->noscript_retried |= 1 << kind;

            /* the window's value is read again after the script */
            if (ngx_dg_redis_queue(op, kind, 1) == NGX_OK
                && (kind != NGX_DG_KIND_WINDOW
                    || ngx_dg_redis_queue(op, NGX_DG_KIND_VALUE, 0)
                       == NGX_OK))
            {
                op->pending--;
                return;
            }
        }

        ngx_dg_redis_log_error("", reply);
        op->errors++;

    } else if (kind == NGX_DG_KIND_WINDOW) {

        /* a packed string: src/dg_profile.h; the value comes with GET */
        op->nwreply = reply->type == REDIS_REPLY_STRING
                      ? dg_window_unpack(reply->str, reply->len, op->wreply)
                      : 0;

        if (op->nwreply == 0) {
            op->errors++;
        }

    } else if (kind == NGX_DG_KIND_VALUE) {

        if (reply->type == REDIS_REPLY_STRING
            && reply->len == sizeof(op->window))
        {
            ngx_memcpy(op->window, reply->str, sizeof(op->window));
            op->have_value = 1;
        }

    } else if (reply->type == REDIS_REPLY_ARRAY) {
        n = ngx_min(reply->elements, 2);

        for (i = 0; i < n; i++) {
            v[i] = reply->element[i]->type == REDIS_REPLY_INTEGER
                   ? reply->element[i]->integer : 0;
        }

        if (dg_fanout_reply(&op->profile, (dg_fanout_t) kind, v, n) == 0) {
            op->fanout_got |= 1 << kind;
        }
    }

    if (--op->pending) {
        return;
    }

    if (op->have_value
        && dg_window_reply(&op->profile, op->req.window_ms, op->window,
                           sizeof(op->window), op->wreply, op->nwreply)
           == 0)
    {
        op->have_window = 1;

    } else {
        op->errors++;
    }

    ngx_dg_redis.inflight--;

    if (op->errors) {
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

    ngx_dg_redis_op_free(op);
}


/* the event loop side */

static void
ngx_dg_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    /* may free the context and, through cleanup, this connection */
    redisAsyncHandleRead(c->data);
}


static void
ngx_dg_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    redisAsyncHandleWrite(c->data);
}


/*
 * Level-triggered events: hiredis reads at most one buffer per call, so
 * with edge-triggered ones a burst of replies larger than that would
 * wait for the next packet.
 */

static void
ngx_dg_redis_add_read(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "distill_guard: adding redis read event failed");
        }
    }
}


static void
ngx_dg_redis_del_read(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_dg_redis_add_write(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (!c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "distill_guard: adding redis write event failed");
        }
    }
}


static void
ngx_dg_redis_del_write(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_dg_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    ngx_dg_redis_del_read(c);
    ngx_dg_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* hiredis closes the socket itself right after this */
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    if (ngx_dg_redis.conn == c) {
        ngx_dg_redis.conn = NULL;
    }
}
