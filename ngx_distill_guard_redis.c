/*
 * distill-guard: the Redis transport's nodes and their connections.
 *
 * Each worker keeps one connection per Redis node (one server, or every
 * master of a Redis Cluster), on nginx's event loop: nginx does the I/O,
 * plain or TLS (OpenSSL, with the certificate and name checked and the
 * session kept for the next connection), and hiredis only formats
 * commands and parses replies (redisFormatCommandArgv, redisReader), so
 * TLS needs nothing that Debian's hiredis 0.14 lacks.  Commands queued
 * during one event-loop turn leave together in one write: requests are
 * pipelined.  A lost connection fails every reply it owed at once and is
 * made again with a backoff; the login and the scripts go first on each.
 *
 * The worker never waits: a request whose replies are late is answered
 * by its own timer, and the replies, when they come, find it gone.
 */

#include <time.h>

#include "ngx_distill_guard_redis.h"


static ngx_dg_node_t *ngx_dg_node_add(ngx_sockaddr_t *sa, socklen_t len,
    ngx_str_t *name, ngx_str_t *host);
static void ngx_dg_node_connected(ngx_dg_node_t *node);
static void ngx_dg_node_setup(ngx_dg_node_t *node);
static void ngx_dg_node_fail(ngx_dg_node_t *node, const char *what,
    const char *reason);
static void ngx_dg_node_schedule(ngx_dg_node_t *node);
static void ngx_dg_node_retry_handler(ngx_event_t *ev);
static void ngx_dg_node_connect_timeout(ngx_event_t *ev);
static void ngx_dg_node_read_handler(ngx_event_t *ev);
static void ngx_dg_node_write_handler(ngx_event_t *ev);
static ngx_int_t ngx_dg_node_flush(ngx_dg_node_t *node);
static void ngx_dg_node_post(ngx_dg_node_t *node);
static void ngx_dg_node_dispatch(ngx_dg_node_t *node, redisReply *reply);
static void ngx_dg_node_setup_reply(ngx_dg_node_t *node, const char *what,
    redisReply *reply);
static ngx_int_t ngx_dg_redis_format_scripts(void);
#if (NGX_SSL)
static ngx_int_t ngx_dg_node_handshake(ngx_dg_node_t *node);
static ngx_int_t ngx_dg_node_tls_start(ngx_dg_node_t *node);
static const char *ngx_dg_tls_reason(ngx_dg_node_t *node, int sslerr,
    char *buf, size_t size);
static const char *ngx_dg_tls_what(ngx_dg_node_t *node);
static int ngx_dg_tls_cert_asked(SSL *ssl, X509 **x509, EVP_PKEY **pkey);
#endif


ngx_dg_redis_t  ngx_dg_redis;



uint64_t
ngx_dg_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


ngx_int_t
ngx_dg_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_distill_guard_main_conf_t *dmcf)
{
    ngx_uint_t            i;
    ngx_dg_redis_conf_t  *rc;
    ngx_dg_redis_addr_t  *addr;

    ngx_memzero(&ngx_dg_redis, sizeof(ngx_dg_redis_t));

    rc = &dmcf->redis;

    ngx_dg_redis.dmcf = dmcf;
    ngx_dg_redis.conf = rc;
    ngx_dg_redis.log = cycle->log;

    ngx_dg_redis.nodes = ngx_calloc(NGX_DG_NODES_MAX * sizeof(ngx_dg_node_t),
                                    cycle->log);
    if (ngx_dg_redis.nodes == NULL) {
        return NGX_ERROR;
    }

    if (rc->cluster) {
        ngx_dg_redis.slots = ngx_alloc(DG_SLOTS, cycle->log);
        if (ngx_dg_redis.slots == NULL) {
            return NGX_ERROR;
        }

        ngx_memset(ngx_dg_redis.slots, NGX_DG_NO_NODE, DG_SLOTS);

        ngx_dg_redis.map_timer.handler = ngx_dg_map_timer_handler;
        ngx_dg_redis.map_timer.log = cycle->log;
        ngx_dg_redis.map_timer.data = &ngx_dg_redis;
        ngx_dg_redis.map_timer.cancelable = 1;
    }

    if (ngx_dg_redis_format_scripts() != NGX_OK) {
        return NGX_ERROR;
    }

#if (NGX_SSL)
    if (rc->ssl && rc->tls_cert.len == 0) {
        /* only to say so when the server then refuses the connection */
        SSL_CTX_set_client_cert_cb(rc->ssl->ctx, ngx_dg_tls_cert_asked);
    }
#endif

    /* the first nodes: the configured server, or the cluster's seeds */
    addr = rc->addrs.elts;

    for (i = 0; i < rc->addrs.nelts; i++) {
        if (ngx_dg_node_add(&addr[i].sockaddr, addr[i].socklen,
                            &addr[i].name, &addr[i].host)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    ngx_dg_redis.nseeds = rc->addrs.nelts;

    /* one is enough: it tells the slot map, and names the others */
    ngx_dg_node_connect(&ngx_dg_redis.nodes[0]);

    return NGX_OK;
}


/* SCRIPT LOAD of both scripts, one after the other, as sent */

static ngx_int_t
ngx_dg_redis_format_scripts(void)
{
    int          len[2];
    char        *cmd[2];
    const char  *argv[3];
    size_t       argvlen[3];

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = dg_window_lua;
    argvlen[2] = dg_window_lua_len;

    len[0] = redisFormatCommandArgv(&cmd[0], 3, argv, argvlen);

    argv[2] = dg_fanout_lua;
    argvlen[2] = dg_fanout_lua_len;

    len[1] = redisFormatCommandArgv(&cmd[1], 3, argv, argvlen);

    if (len[0] > 0 && len[1] > 0) {
        ngx_dg_redis.load = ngx_alloc(len[0] + len[1], ngx_dg_redis.log);
    }

    if (ngx_dg_redis.load) {
        ngx_memcpy(ngx_dg_redis.load, cmd[0], len[0]);
        ngx_memcpy(ngx_dg_redis.load + len[0], cmd[1], len[1]);
        ngx_dg_redis.load_len = len[0] + len[1];
    }

    if (len[0] > 0) {
        free(cmd[0]);
    }

    if (len[1] > 0) {
        free(cmd[1]);
    }

    return ngx_dg_redis.load ? NGX_OK : NGX_ERROR;
}


void
ngx_dg_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t      i;
    ngx_dg_xchg_t  *x;
    ngx_dg_node_t  *node;

    if (ngx_dg_redis.nodes == NULL) {
        return;
    }

    if (ngx_dg_redis.map_timer.timer_set) {
        ngx_del_timer(&ngx_dg_redis.map_timer);
    }

    for (i = 0; i < ngx_dg_redis.nnodes; i++) {
        node = &ngx_dg_redis.nodes[i];

        if (node->retry.timer_set) {
            ngx_del_timer(&node->retry);
        }

        if (node->connect_timer.timer_set) {
            ngx_del_timer(&node->connect_timer);
        }

        /* nobody is told: the requests go with the worker */
        if (node->conn) {
#if (NGX_SSL)
            if (node->ssl) {
                SSL_free(node->ssl);
                node->ssl = NULL;
            }

            if (node->session) {
                SSL_SESSION_free(node->session);
                node->session = NULL;
            }
#endif
            ngx_close_connection(node->conn);
            node->conn = NULL;
        }

        if (node->reader) {
            redisReaderFree(node->reader);
        }

        ngx_free(node->out);
        ngx_free(node->fifo);
    }

    while (ngx_dg_redis.free) {
        x = ngx_dg_redis.free;
        ngx_dg_redis.free = x->next;
        ngx_free(x);
    }

    ngx_free(ngx_dg_redis.load);
    ngx_free(ngx_dg_redis.slots);
    ngx_free(ngx_dg_redis.nodes);
    ngx_dg_redis.nodes = NULL;
}


/* some node can take commands: the module tries, else it fails at once */

ngx_int_t
ngx_dg_redis_ready(void)
{
    return ngx_dg_redis.state != NGX_DG_REDIS_DOWN;
}


static ngx_dg_node_t *
ngx_dg_node_add(ngx_sockaddr_t *sa, socklen_t len, ngx_str_t *name,
    ngx_str_t *host)
{
    size_t          n;
    u_char         *p;
    ngx_dg_node_t  *node;

    if (ngx_dg_redis.nnodes == NGX_DG_NODES_MAX) {
        return NULL;
    }

    node = &ngx_dg_redis.nodes[ngx_dg_redis.nnodes];
    ngx_memzero(node, sizeof(ngx_dg_node_t));

    node->index = ngx_dg_redis.nnodes++;
    ngx_memcpy(&node->sockaddr, sa, len);
    node->socklen = len;

    node->name.len = ngx_min(name->len, sizeof(node->name_buf));
    node->name.data = node->name_buf;
    ngx_memcpy(node->name_buf, name->data, node->name.len);

    /* IPv6 hosts come bracketed from a URL */
    n = host->len;
    p = host->data;

    if (n > 2 && p[0] == '[' && p[n - 1] == ']') {
        p++;
        n -= 2;
    }

    n = ngx_min(n, sizeof(node->host) - 1);
    ngx_memcpy(node->host, p, n);
    node->host[n] = '\0';
    node->host_ip = ngx_dg_conf_is_ip(node->host, n);

    node->backoff = NGX_DG_BACKOFF_MIN;

    node->retry.handler = ngx_dg_node_retry_handler;
    node->retry.log = ngx_dg_redis.log;
    node->retry.data = node;
    node->retry.cancelable = 1;

    node->connect_timer.handler = ngx_dg_node_connect_timeout;
    node->connect_timer.log = ngx_dg_redis.log;
    node->connect_timer.data = node;
    node->connect_timer.cancelable = 1;

    return node;
}


/* the node of "ip:port" (a redirection, the slot map); added if new */

ngx_dg_node_t *
ngx_dg_node_by_addr(const char *addr)
{
    u_char          *p, *colon;
    size_t           len;
    ngx_int_t        port;
    ngx_str_t        name, host;
    ngx_uint_t       i;
    ngx_addr_t       a;
    ngx_dg_node_t   *node;
    ngx_sockaddr_t   sa;
    u_char           buf[NGX_SOCKADDR_STRLEN];

    len = ngx_strlen(addr);

    for (i = 0; i < ngx_dg_redis.nnodes; i++) {
        node = &ngx_dg_redis.nodes[i];

        if (node->name.len == len
            && ngx_strncmp(node->name.data, addr, len) == 0)
        {
            return node;
        }
    }

    p = (u_char *) addr;
    colon = NULL;

    for (i = 0; i < len; i++) {
        if (p[i] == ':') {
            colon = p + i;
        }
    }

    if (colon == NULL) {
        return NULL;
    }

    port = ngx_atoi(colon + 1, p + len - colon - 1);
    if (port <= 0 || port > 65535) {
        return NULL;
    }

    /* numeric only: resolving would block the worker */
    if (ngx_parse_addr(ngx_cycle->pool, &a, p, colon - p) != NGX_OK) {
        return NULL;
    }

    ngx_memcpy(&sa, a.sockaddr, a.socklen);
    ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);

    /* the same node under another spelling (the seed's configured name) */
    for (i = 0; i < ngx_dg_redis.nnodes; i++) {
        node = &ngx_dg_redis.nodes[i];

        if (ngx_cmp_sockaddr(&node->sockaddr.sockaddr, node->socklen,
                             &sa.sockaddr, a.socklen, 1)
            == NGX_OK)
        {
            return node;
        }
    }

    name.data = buf;
    name.len = ngx_sock_ntop(&sa.sockaddr, a.socklen, buf, sizeof(buf), 1);

    /* a node the cluster named: its certificate names its address */
    host.data = p;
    host.len = colon - p;

    return ngx_dg_node_add(&sa, a.socklen, &name, &host);
}


static void
ngx_dg_node_set_state(ngx_dg_node_t *node, ngx_uint_t state)
{
    node->state = state;
    ngx_dg_redis_update_state();
}


void
ngx_dg_node_connect(ngx_dg_node_t *node)
{
    int                rc;
    ngx_err_t          err;
    ngx_socket_t       s;
    ngx_event_t       *rev, *wev;
    ngx_connection_t  *c;

    if (node->reader == NULL) {
        node->reader = redisReaderCreate();
        if (node->reader == NULL) {
            ngx_dg_node_schedule(node);
            return;
        }
    }

    s = ngx_socket(node->sockaddr.sockaddr.sa_family, SOCK_STREAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_dg_node_fail(node, "socket() failed", strerror(ngx_socket_errno));
        return;
    }

    c = ngx_get_connection(s, ngx_dg_redis.log);
    if (c == NULL) {
        (void) ngx_close_socket(s);
        ngx_dg_node_schedule(node);
        return;
    }

    c->type = SOCK_STREAM;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->log_error = NGX_ERROR_INFO;
    c->data = node;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    rev = c->read;
    wev = c->write;
    rev->log = c->log;
    wev->log = c->log;
    rev->handler = ngx_dg_node_read_handler;
    wev->handler = ngx_dg_node_write_handler;

    node->conn = c;
    node->tcp_up = 0;
    node->io_up = 0;
    node->out_len = 0;
    node->out_sent = 0;
    node->setup_pending = 0;

    if (ngx_nonblocking(s) == -1) {
        ngx_dg_node_fail(node, "fcntl(O_NONBLOCK) failed",
                         strerror(ngx_socket_errno));
        return;
    }

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            ngx_dg_node_fail(node, "adding the connection failed", "epoll");
            return;
        }
    }

    rc = connect(s, &node->sockaddr.sockaddr, node->socklen);

    if (rc == -1) {
        err = ngx_socket_errno;

        if (err != NGX_EINPROGRESS) {
            ngx_dg_node_fail(node, "connect failed", strerror(err));
            return;
        }
    }

    if (ngx_add_conn == NULL) {
        if (ngx_add_event(rev, NGX_READ_EVENT, NGX_CLEAR_EVENT) != NGX_OK
            || ngx_add_event(wev, NGX_WRITE_EVENT, NGX_CLEAR_EVENT)
               != NGX_OK)
        {
            ngx_dg_node_fail(node, "adding events failed", "");
            return;
        }
    }

    ngx_dg_node_set_state(node, NGX_DG_REDIS_CONNECTING);

    /* the login and the scripts go first; requests queue behind them */
    ngx_dg_node_setup(node);

    if (node->conn == NULL) {
        return;
    }

    ngx_add_timer(&node->connect_timer,
                  ngx_dg_redis.conf->connect_timeout);

    if (rc == 0) {
        ngx_dg_node_connected(node);
    }
}


static void
ngx_dg_node_setup(ngx_dg_node_t *node)
{
    int                   argc;
    const char           *argv[3];
    size_t                argvlen[3];
    char                  db[NGX_INT_T_LEN + 1];
    ngx_dg_redis_conf_t  *rc;

    rc = ngx_dg_redis.conf;

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

        if (ngx_dg_node_command(node, NGX_DG_ENT_SETUP, "AUTH", argc, argv,
                                argvlen)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (rc->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = db;
        argvlen[1] = ngx_sprintf((u_char *) db, "%i", rc->db) - (u_char *) db;

        if (ngx_dg_node_command(node, NGX_DG_ENT_SETUP, "SELECT", 2, argv,
                                argvlen)
            != NGX_OK)
        {
            goto failed;
        }
    }

    /* both scripts, formatted once per worker */
    if (ngx_dg_node_reserve(node, ngx_dg_redis.load_len, 2) != NGX_OK) {
        goto failed;
    }

    ngx_dg_node_append(node, ngx_dg_redis.load, ngx_dg_redis.load_len);
    ngx_dg_node_expect(node, NGX_DG_ENT_SETUP, NULL, "SCRIPT LOAD");
    ngx_dg_node_expect(node, NGX_DG_ENT_SETUP, NULL, "SCRIPT LOAD");

    if (rc->cluster) {
        /* a node that comes up tells the slot map: cheap, and current */
        argv[0] = "CLUSTER";
        argvlen[0] = 7;
        argv[1] = "SLOTS";
        argvlen[1] = 5;

        if (ngx_dg_node_command(node, NGX_DG_ENT_SLOTS, "CLUSTER SLOTS", 2,
                                argv, argvlen)
            != NGX_OK)
        {
            goto failed;
        }

        ngx_dg_redis.refresh_pending++;
    }

    return;

failed:

    ngx_dg_node_fail(node, "setup failed", "out of memory");
}


/* TCP is up: TLS next, or the queued commands */

static void
ngx_dg_node_connected(ngx_dg_node_t *node)
{
    node->tcp_up = 1;

#if (NGX_SSL)
    if (ngx_dg_redis.conf->ssl) {
        if (ngx_dg_node_tls_start(node) != NGX_OK) {
            return;
        }

        (void) ngx_dg_node_handshake(node);
        return;
    }
#endif

    node->io_up = 1;
    (void) ngx_dg_node_flush(node);
}


/*
 * The connection is given up: every reply it owed is failed, and a new
 * connection is scheduled.  Logged once per outage.
 */

static void
ngx_dg_node_fail(ngx_dg_node_t *node, const char *what, const char *reason)
{
    ngx_uint_t       type;
    ngx_dg_entry_t  *e;

    if (!node->down_logged) {
        ngx_log_error(NGX_LOG_ERR, ngx_dg_redis.log, 0,
                      "distill_guard: redis \"%V\" %s%s%s", &node->name,
                      what, reason[0] ? ": " : "", reason);
        node->down_logged = 1;
    }

    if (node->connect_timer.timer_set) {
        ngx_del_timer(&node->connect_timer);
    }

#if (NGX_SSL)
    if (node->ssl) {
        /*
         * no close_notify on a lost connection; without the flags
         * SSL_free() would mark the kept session not resumable
         */
        SSL_set_shutdown(node->ssl,
                         SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(node->ssl);
        node->ssl = NULL;
    }
#endif

    if (node->conn) {
        ngx_close_connection(node->conn);
        node->conn = NULL;
    }

    node->tcp_up = 0;
    node->io_up = 0;
    node->out_len = 0;
    node->out_sent = 0;

    if (node->reader) {
        redisReaderFree(node->reader);
        node->reader = NULL;
    }

    ngx_dg_node_schedule(node);

    /*
     * The replies owed fail in order; their handlers may queue new
     * commands, which find the node down and fail at once
     */
    while (node->fifo_n) {
        e = &node->fifo[node->fifo_head];
        type = e->type;
        node->fifo_head = (node->fifo_head + 1) % node->fifo_size;
        node->fifo_n--;

        if (type == NGX_DG_ENT_CMD) {
            ngx_dg_xchg_reply(e->x, node, NULL);

        } else if (type == NGX_DG_ENT_SLOTS) {
            ngx_dg_redis.refresh_pending--;
        }
    }

    node->inflight = 0;

    if (ngx_dg_redis.conf->cluster) {
        /* a lost master may have been replaced: ask another node */
        ngx_dg_map_refresh();
        ngx_dg_map_check();
    }
}


static void
ngx_dg_node_schedule(ngx_dg_node_t *node)
{
    ngx_msec_t  delay;

    ngx_dg_node_set_state(node, NGX_DG_REDIS_DOWN);

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* a node that serves no slot any more is not called again */
    if (ngx_dg_redis.conf->cluster && node->index >= ngx_dg_redis.nseeds
        && node->owned == 0)
    {
        return;
    }

    /* exponential backoff with jitter: workers do not reconnect in step */
    delay = node->backoff / 2
            + (ngx_msec_t) ngx_random() % (node->backoff / 2 + 1);

    node->backoff *= 2;
    if (node->backoff > NGX_DG_BACKOFF_MAX) {
        node->backoff = NGX_DG_BACKOFF_MAX;
    }

    if (!node->retry.timer_set) {
        ngx_add_timer(&node->retry, delay);
    }
}


static void
ngx_dg_node_retry_handler(ngx_event_t *ev)
{
    ngx_dg_node_t  *node;

    node = ev->data;

    if (node->conn) {
        return;
    }

    ngx_dg_count(redis_reconnects);
    ngx_dg_node_connect(node);
}


static void
ngx_dg_node_connect_timeout(ngx_event_t *ev)
{
    ngx_dg_node_t  *node;

    node = ev->data;

    if (node->state != NGX_DG_REDIS_CONNECTING || node->conn == NULL) {
        return;
    }

#if (NGX_SSL)
    if (node->ssl && !node->io_up) {
        ngx_dg_node_fail(node, "TLS handshake failed", "timed out");
        return;
    }
#endif

    ngx_dg_node_fail(node, node->tcp_up ? "setup timed out"
                                        : "connect timed out", "");
}


static void
ngx_dg_node_write_handler(ngx_event_t *wev)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;
    ngx_dg_node_t     *node;

    c = wev->data;
    node = c->data;

    if (!node->tcp_up) {
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_dg_node_fail(node, "connect failed", strerror(err));
            return;
        }

        ngx_dg_node_connected(node);
        return;
    }

#if (NGX_SSL)
    if (node->ssl && !node->io_up) {
        (void) ngx_dg_node_handshake(node);
        return;
    }
#endif

    (void) ngx_dg_node_flush(node);
}


static void
ngx_dg_node_read_handler(ngx_event_t *rev)
{
    void              *r;
    ssize_t            n;
    ngx_connection_t  *c;
    ngx_dg_node_t     *node;
    u_char             buf[NGX_DG_READ_SIZE];
    size_t             off, len;
#if (NGX_SSL)
    int                sslerr;
    char               reason[256];
#endif

    c = rev->data;
    node = c->data;

    if (!node->io_up) {
        /*
         * a refused connect() shows here too, and a handshake waits for
         * either side: the write side carries the connection up
         */
        ngx_dg_node_write_handler(c->write);
        return;
    }

    for ( ;; ) {

#if (NGX_SSL)
        if (node->ssl) {
            ERR_clear_error();
            n = SSL_read(node->ssl, buf, sizeof(buf));

            if (n <= 0) {
                sslerr = SSL_get_error(node->ssl, n);

                if (sslerr == SSL_ERROR_WANT_READ) {
                    rev->ready = 0;
                    break;
                }

                if (sslerr == SSL_ERROR_WANT_WRITE) {
                    break;
                }

                ngx_dg_node_fail(node, ngx_dg_tls_what(node),
                                 ngx_dg_tls_reason(node, sslerr, reason,
                                                   sizeof(reason)));
                return;
            }

        } else
#endif
        {
            n = c->recv(c, buf, sizeof(buf));

            if (n == NGX_AGAIN) {
                break;
            }

            if (n == 0) {
                ngx_dg_node_fail(node, "connection lost", "closed");
                return;
            }

            if (n == NGX_ERROR) {
                ngx_dg_node_fail(node, "connection lost",
                                 strerror(ngx_socket_errno));
                return;
            }
        }

        /*
         * fed in slices: after each reply past its first kilobyte the
         * reader moves what it holds still to the front of its buffer,
         * which for 16 KB of 2 KB replies moved four bytes a byte read
         */
        for (off = 0; off < (size_t) n; off += len) {
            len = ngx_min((size_t) n - off, NGX_DG_FEED_SIZE);

            if (redisReaderFeed(node->reader, (char *) buf + off, len)
                != REDIS_OK)
            {
                ngx_dg_node_fail(node, "protocol error",
                                 node->reader->errstr);
                return;
            }

            for ( ;; ) {
                r = NULL;

                if (redisReaderGetReply(node->reader, &r) != REDIS_OK) {
                    ngx_dg_node_fail(node, "protocol error",
                                     node->reader->errstr);
                    return;
                }

                if (r == NULL) {
                    break;
                }

                ngx_dg_node_dispatch(node, r);

                if (node->conn != c) {
                    /* failed on the way (a protocol error in a reply) */
                    return;
                }
            }
        }
    }

    if (node->out_len > node->out_sent) {
        /* a TLS write that waited for a read */
        (void) ngx_dg_node_flush(node);
    }
}


static void
ngx_dg_node_dispatch(ngx_dg_node_t *node, redisReply *reply)
{
    ngx_dg_entry_t  e;

    if (node->fifo_n == 0) {
        freeReplyObject(reply);
        ngx_dg_node_fail(node, "protocol error", "a reply nobody asked for");
        return;
    }

    e = node->fifo[node->fifo_head];
    node->fifo_head = (node->fifo_head + 1) % node->fifo_size;
    node->fifo_n--;

    switch (e.type) {

    case NGX_DG_ENT_CMD:
        /* the exchange owns the reply from here */
        ngx_dg_xchg_reply(e.x, node, reply);
        return;

    case NGX_DG_ENT_SETUP:
        ngx_dg_node_setup_reply(node, e.what, reply);
        break;

    case NGX_DG_ENT_SLOTS:
        ngx_dg_redis.refresh_pending--;
        ngx_dg_map_apply(node, reply);
        break;

    default: /* NGX_DG_ENT_SKIP */
        break;
    }

    freeReplyObject(reply);
}


static void
ngx_dg_node_setup_reply(ngx_dg_node_t *node, const char *what,
    redisReply *reply)
{
    u_char  err[256], failed[32];

    if (reply->type == REDIS_REPLY_ERROR) {

        /* the command's name only: AUTH's arguments are secret */
        ngx_snprintf(err, sizeof(err) - 1, "%*s%Z",
                     (size_t) ngx_min(reply->len, 200), reply->str);
        err[sizeof(err) - 1] = '\0';
        ngx_snprintf(failed, sizeof(failed) - 1, "%s failed%Z", what);
        failed[sizeof(failed) - 1] = '\0';

        ngx_dg_node_fail(node, (char *) failed, (char *) err);
        return;
    }

    if (node->setup_pending == 0 || --node->setup_pending) {
        return;
    }

    /*
     * The connection counts as up (backoff reset, "connected" logged)
     * only once the login and the scripts have succeeded, or a wrong
     * password would reconnect in a tight loop
     */

    if (node->connect_timer.timer_set) {
        ngx_del_timer(&node->connect_timer);
    }

    if (node->down_logged) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_dg_redis.log, 0,
                      "distill_guard: redis \"%V\" connected", &node->name);
        node->down_logged = 0;
    }

#if (NGX_SSL)
    if (node->ssl) {
        /* TLS 1.3 tickets come after the handshake: by now they came */
        if (node->session) {
            SSL_SESSION_free(node->session);
        }

        node->session = SSL_get1_session(node->ssl);
    }
#endif

    node->backoff = NGX_DG_BACKOFF_MIN;
    ngx_dg_node_set_state(node, NGX_DG_REDIS_READY);
}


/* queue bytes; they leave at the end of this event-loop turn */

/*
 * Room for bytes more to send and entries more replies to expect: once
 * it is made, ngx_dg_node_append() and ngx_dg_node_expect() cannot fail,
 * so a command is never sent without its reply expected, or the reverse
 * (the replies would answer the wrong commands from then on).
 */

ngx_int_t
ngx_dg_node_reserve(ngx_dg_node_t *node, size_t bytes, ngx_uint_t entries)
{
    size_t           size;
    u_char          *out;
    ngx_uint_t       i, n;
    ngx_dg_entry_t  *fifo;

    if (node->out_sent && node->out_sent == node->out_len) {
        node->out_sent = 0;
        node->out_len = 0;
    }

    if (node->out_len + bytes > node->out_size) {
        size = ngx_max(node->out_size * 2, 4096);

        while (size < node->out_len + bytes) {
            size *= 2;
        }

        out = ngx_alloc(size, ngx_dg_redis.log);
        if (out == NULL) {
            return NGX_ERROR;
        }

        if (node->out_len) {
            ngx_memcpy(out, node->out, node->out_len);
        }

        ngx_free(node->out);
        node->out = out;
        node->out_size = size;
    }

    if (node->fifo_n + entries > node->fifo_size) {
        n = ngx_max(node->fifo_size * 2, 64);

        while (n < node->fifo_n + entries) {
            n *= 2;
        }

        fifo = ngx_alloc(n * sizeof(ngx_dg_entry_t), ngx_dg_redis.log);
        if (fifo == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < node->fifo_n; i++) {
            fifo[i] = node->fifo[(node->fifo_head + i) % node->fifo_size];
        }

        ngx_free(node->fifo);
        node->fifo = fifo;
        node->fifo_head = 0;
        node->fifo_size = n;
    }

    return NGX_OK;
}


/* bytes to send, in room reserved; they leave at the end of this turn */

void
ngx_dg_node_append(ngx_dg_node_t *node, const u_char *p, size_t len)
{
    ngx_memcpy(node->out + node->out_len, p, len);
    node->out_len += len;

    ngx_dg_node_post(node);
}


static void
ngx_dg_node_post(ngx_dg_node_t *node)
{
    ngx_connection_t  *c;

    c = node->conn;

    if (c && node->io_up && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/* a reply to expect, in room reserved */

void
ngx_dg_node_expect(ngx_dg_node_t *node, ngx_uint_t type, ngx_dg_xchg_t *x,
    const char *what)
{
    ngx_dg_entry_t  *e;

    e = &node->fifo[(node->fifo_head + node->fifo_n) % node->fifo_size];
    e->x = x;
    e->type = type;
    e->what = what;
    node->fifo_n++;

    if (type == NGX_DG_ENT_SETUP) {
        node->setup_pending++;
    }
}


ngx_int_t
ngx_dg_node_command(ngx_dg_node_t *node, ngx_uint_t type, const char *what,
    int argc, const char **argv, const size_t *argvlen)
{
    int   len;
    char *cmd;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (ngx_dg_node_reserve(node, len, 1) != NGX_OK) {
        free(cmd);
        return NGX_ERROR;
    }

    ngx_dg_node_append(node, (u_char *) cmd, len);
    ngx_dg_node_expect(node, type, NULL, what);
    free(cmd);

    return NGX_OK;
}


static ngx_int_t
ngx_dg_node_flush(ngx_dg_node_t *node)
{
    ssize_t            n;
    size_t             len;
    ngx_connection_t  *c;
#if (NGX_SSL)
    int                sslerr;
    char               reason[256];
#endif

    c = node->conn;

    if (c == NULL || !node->io_up) {
        return NGX_AGAIN;
    }

    while (node->out_sent < node->out_len) {
        len = node->out_len - node->out_sent;

#if (NGX_SSL)
        if (node->ssl) {
            ERR_clear_error();
            n = SSL_write(node->ssl, node->out + node->out_sent, len);

            if (n <= 0) {
                sslerr = SSL_get_error(node->ssl, n);

                if (sslerr == SSL_ERROR_WANT_WRITE) {
                    c->write->ready = 0;
                    return NGX_AGAIN;
                }

                if (sslerr == SSL_ERROR_WANT_READ) {
                    return NGX_AGAIN;
                }

                ngx_dg_node_fail(node, ngx_dg_tls_what(node),
                                 ngx_dg_tls_reason(node, sslerr, reason,
                                                   sizeof(reason)));
                return NGX_ERROR;
            }

        } else
#endif
        {
            n = c->send(c, node->out + node->out_sent, len);

            if (n == NGX_AGAIN) {
                return NGX_AGAIN;
            }

            if (n == NGX_ERROR) {
                ngx_dg_node_fail(node, "connection lost",
                                 strerror(ngx_socket_errno));
                return NGX_ERROR;
            }
        }

        node->out_sent += n;
    }

    node->out_sent = 0;
    node->out_len = 0;

    return NGX_OK;
}


#if (NGX_SSL)

static ngx_int_t
ngx_dg_node_tls_start(ngx_dg_node_t *node)
{
    SSL                  *ssl;
    char                 *host;
    ngx_uint_t            ip;
    X509_VERIFY_PARAM    *param;
    ngx_dg_redis_conf_t  *rc;

    rc = ngx_dg_redis.conf;

    ssl = SSL_new(rc->ssl->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, node->conn->fd) != 1) {
        if (ssl) {
            SSL_free(ssl);
        }

        ngx_dg_node_fail(node, "TLS setup failed", "SSL_new()");
        return NGX_ERROR;
    }

    node->ssl = ssl;
    node->cert_asked = 0;

    SSL_set_app_data(ssl, node);
    SSL_set_connect_state(ssl);
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE
                      | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    /* the name checked, and sent as SNI: tls_name=, else the node's */
    if (rc->tls_name.len) {
        host = (char *) rc->tls_name.data;
        ip = rc->tls_name_ip;

    } else {
        host = (char *) node->host;
        ip = node->host_ip;
    }

    if (!ip && host[0]) {
        (void) SSL_set_tlsext_host_name(ssl, host);
    }

    if (rc->tls_verify && host[0]) {
        param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param,
                                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);

        if (ip) {
            (void) X509_VERIFY_PARAM_set1_ip_asc(param, host);

        } else {
            (void) X509_VERIFY_PARAM_set1_host(param, host, 0);
        }
    }

    if (node->session) {
        (void) SSL_set_session(ssl, node->session);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dg_node_handshake(ngx_dg_node_t *node)
{
    int                n, sslerr;
    char               reason[256];
    ngx_connection_t  *c;

    c = node->conn;

    ERR_clear_error();
    n = SSL_do_handshake(node->ssl);

    if (n == 1) {
        ngx_dg_count(redis_tls_handshakes);

        if (SSL_session_reused(node->ssl)) {
            ngx_dg_count(redis_tls_reused);
        }

        node->io_up = 1;
        return ngx_dg_node_flush(node);
    }

    sslerr = SSL_get_error(node->ssl, n);

    if (sslerr == SSL_ERROR_WANT_READ) {
        c->read->ready = 0;
        return NGX_AGAIN;
    }

    if (sslerr == SSL_ERROR_WANT_WRITE) {
        c->write->ready = 0;
        return NGX_AGAIN;
    }

    ngx_dg_node_fail(node, "TLS handshake failed",
                     ngx_dg_tls_reason(node, sslerr, reason, sizeof(reason)));

    return NGX_ERROR;
}


/* why TLS failed, in words an operator can act on */

static const char *
ngx_dg_tls_reason(ngx_dg_node_t *node, int sslerr, char *buf, size_t size)
{
    long           v;
    u_char        *p, *last;
    unsigned long  e;
    const char    *r;

    e = ERR_peek_last_error();
    v = SSL_get_verify_result(node->ssl);
    p = (u_char *) buf;
    last = p + size - 1;

    if (v != X509_V_OK && ngx_dg_redis.conf->tls_verify) {
        p = ngx_slprintf(p, last, "certificate verify failed (%s)",
                         X509_verify_cert_error_string(v));

    } else if (e) {
        r = ERR_reason_error_string(e);
        p = ngx_slprintf(p, last, "%s", r ? r : "unknown TLS error");

    } else if (sslerr == SSL_ERROR_ZERO_RETURN) {
        p = ngx_slprintf(p, last, "closed");

    } else if (sslerr == SSL_ERROR_SYSCALL) {
        p = ngx_slprintf(p, last, "%s",
                         ngx_socket_errno ? strerror(ngx_socket_errno)
                                          : "closed by the server");

    } else {
        p = ngx_slprintf(p, last, "TLS error %d", sslerr);
    }

    /* a TLS 1.3 server refuses a missing certificate after the handshake */
    if (node->cert_asked) {
        p = ngx_slprintf(p, last, " (the server asked for a client "
                         "certificate: tls_cert=, tls_key=)");
    }

    *p = '\0';
    ERR_clear_error();

    return buf;
}


/* what failed: before the login and the scripts went through, the TLS
 * handshake, as far as an operator is concerned */

static const char *
ngx_dg_tls_what(ngx_dg_node_t *node)
{
    return node->state == NGX_DG_REDIS_READY ? "connection lost"
                                             : "TLS handshake failed";
}


/* the server asked for a client certificate and none is configured */

static int
ngx_dg_tls_cert_asked(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    ngx_dg_node_t  *node;

    node = SSL_get_app_data(ssl);

    if (node) {
        node->cert_asked = 1;
    }

    return 0;
}

#endif


/*
 * The worker's state for the status page: ready when every node that
 * serves slots is, down when none can take a command.
 */

void
ngx_dg_redis_update_state(void)
{
    ngx_uint_t      i, ready, usable, all;
    ngx_dg_node_t  *node;

    ready = 0;
    usable = 0;
    all = 1;

    for (i = 0; i < ngx_dg_redis.nnodes; i++) {
        node = &ngx_dg_redis.nodes[i];

        if (ngx_dg_redis.conf->cluster && node->owned == 0) {
            continue;
        }

        if (node->state == NGX_DG_REDIS_READY) {
            ready++;

        } else {
            all = 0;
        }

        if (node->state != NGX_DG_REDIS_DOWN) {
            usable++;
        }
    }

    if (ngx_dg_redis.conf->cluster && ngx_dg_redis.slots
        && ready + usable == 0)
    {
        /* no map yet: a seed tells */
        for (i = 0; i < ngx_dg_redis.nseeds; i++) {
            if (ngx_dg_redis.nodes[i].state != NGX_DG_REDIS_DOWN) {
                usable = 1;
            }
        }
    }

    if (ready && all) {
        ngx_dg_redis.state = NGX_DG_REDIS_READY;

    } else if (usable) {
        ngx_dg_redis.state = NGX_DG_REDIS_CONNECTING;

    } else {
        ngx_dg_redis.state = NGX_DG_REDIS_DOWN;
    }

    ngx_dg_stats_worker_state(ngx_dg_redis.state);
}


/*
 * Error replies are logged at most once per NGX_DG_LOG_INTERVAL: at
 * maxmemory good and bad replies interleave, and a message re-armed by
 * each good reply wrote a line per request.  The status endpoint counts
 * every one; the line says how many it stands for.
 */

void
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


void
ngx_dg_redis_reply_error(redisReply *reply)
{
    ngx_dg_redis_log_error("", reply);
}


/* 1: log now, and *suppressed lines were not logged since the last one */

ngx_int_t
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
