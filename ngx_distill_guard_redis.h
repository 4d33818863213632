/*
 * distill-guard: what the Redis transport's two files share: the nodes
 * and their connections (ngx_distill_guard_redis.c), and the exchanges
 * and slot map that route commands to them (ngx_distill_guard_xchg.c).
 */

#ifndef NGX_DISTILL_GUARD_REDIS_H
#define NGX_DISTILL_GUARD_REDIS_H

#include "ngx_distill_guard_module.h"
#include "dg_cluster.h"


#define NGX_DG_BACKOFF_MIN          100
#define NGX_DG_BACKOFF_MAX          5000

/* at most this many nodes per worker: a cluster's masters, and the
 * nodes a redirection named */
#define NGX_DG_NODES_MAX            64
#define NGX_DG_NO_NODE              0xff

#define NGX_DG_XCHG_TRIES           3

/* while the slot map has a hole or a lost master: refresh this often */
#define NGX_DG_MAP_RETRY            500

/* seconds between two log lines of one kind of repeated failure */
#define NGX_DG_LOG_INTERVAL         10

#define NGX_DG_READ_SIZE            16384
#define NGX_DG_FEED_SIZE            2048    /* to the reply parser at once */


/* what a reply answers */
#define NGX_DG_ENT_CMD              0   /* a command of an exchange */
#define NGX_DG_ENT_SETUP            1   /* AUTH, SELECT, SCRIPT LOAD */
#define NGX_DG_ENT_SLOTS            2   /* CLUSTER SLOTS */
#define NGX_DG_ENT_SKIP             3   /* ASKING, a reloaded script */


typedef struct {
    ngx_dg_xchg_t                       *x;
    const char                          *what;  /* of a setup command */
    ngx_uint_t                           type;
} ngx_dg_entry_t;


typedef struct {
    time_t                               next;  /* quiet until then */
    ngx_uint_t                           suppressed;
} ngx_dg_log_limit_t;


typedef struct {
    ngx_uint_t                           index;
    ngx_str_t                            name;  /* for logs: as configured,
                                                   or ip:port of a node */
    u_char                               name_buf[DG_ADDR_LEN];
    ngx_sockaddr_t                       sockaddr;
    socklen_t                            socklen;
    u_char                               host[DG_ADDR_LEN];  /* for TLS,
                                                               NUL-ended */
    unsigned                             host_ip:1;

    ngx_connection_t                    *conn;
    ngx_uint_t                           state;
    unsigned                             tcp_up:1;
    unsigned                             io_up:1;   /* TCP and TLS */
    unsigned                             down_logged:1;
    unsigned                             cert_asked:1;
    ngx_msec_t                           backoff;
    ngx_event_t                          retry;
    ngx_event_t                          connect_timer;
    ngx_uint_t                           setup_pending;
    ngx_uint_t                           inflight;
    ngx_uint_t                           owned;     /* slots it serves */

    redisReader                         *reader;

    u_char                              *out;       /* formatted commands */
    size_t                               out_len;
    size_t                               out_sent;
    size_t                               out_size;

    ngx_dg_entry_t                      *fifo;      /* replies expected */
    ngx_uint_t                           fifo_head;
    ngx_uint_t                           fifo_n;
    ngx_uint_t                           fifo_size;

#if (NGX_SSL)
    SSL                                 *ssl;
    SSL_SESSION                         *session;
#endif
} ngx_dg_node_t;


typedef struct {
    ngx_http_distill_guard_main_conf_t  *dmcf;
    ngx_dg_redis_conf_t                 *conf;
    ngx_log_t                           *log;
    ngx_dg_node_t                       *nodes;
    ngx_uint_t                           nnodes;
    ngx_uint_t                           nseeds;    /* the first nodes */
    u_char                              *slots;     /* slot -> node */
    ngx_uint_t                           refresh_pending;
    ngx_event_t                          map_timer;
    ngx_dg_xchg_t                       *free;
    u_char                              *load;  /* SCRIPT LOAD of both */
    size_t                               load_len;
    ngx_dg_log_limit_t                   busy_log;
    ngx_dg_log_limit_t                   error_log;
    ngx_dg_log_limit_t                   map_log;
    ngx_uint_t                           state;
} ngx_dg_redis_t;


extern ngx_dg_redis_t  ngx_dg_redis;


/* ngx_distill_guard_redis.c: nodes and their connections */
ngx_dg_node_t *ngx_dg_node_by_addr(const char *addr);
void ngx_dg_node_connect(ngx_dg_node_t *node);
ngx_int_t ngx_dg_node_reserve(ngx_dg_node_t *node, size_t bytes,
    ngx_uint_t entries);
void ngx_dg_node_append(ngx_dg_node_t *node, const u_char *p, size_t len);
void ngx_dg_node_expect(ngx_dg_node_t *node, ngx_uint_t type,
    ngx_dg_xchg_t *x, const char *what);
ngx_int_t ngx_dg_node_command(ngx_dg_node_t *node, ngx_uint_t type,
    const char *what, int argc, const char **argv, const size_t *argvlen);
void ngx_dg_redis_update_state(void);
void ngx_dg_redis_log_error(const char *what, redisReply *reply);
ngx_int_t ngx_dg_log_allow(ngx_dg_log_limit_t *ll, ngx_uint_t *suppressed);

/* ngx_distill_guard_xchg.c: exchanges and the slot map */
void ngx_dg_xchg_reply(ngx_dg_xchg_t *x, ngx_dg_node_t *node,
    redisReply *reply);
void ngx_dg_map_refresh(void);
void ngx_dg_map_apply(ngx_dg_node_t *from, redisReply *reply);
void ngx_dg_map_check(void);
void ngx_dg_map_timer_handler(ngx_event_t *ev);


#endif /* NGX_DISTILL_GUARD_REDIS_H */
