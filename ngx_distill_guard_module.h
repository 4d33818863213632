/*
 * distill-guard: declarations shared by the nginx glue files.
 */

#ifndef NGX_DISTILL_GUARD_MODULE_H
#define NGX_DISTILL_GUARD_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "dg_prompt.h"
#include "dg_features.h"
#include "dg_window.h"
#include "dg_profile.h"
#include "dg_fanout.h"
#include "dg_score.h"
#include "dg_policy.h"
#include "dg_cluster.h"

#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif


#define NGX_DG_FAIL_OPEN            0
#define NGX_DG_FAIL_CLOSED          1

#define NGX_DG_MAX_WORKERS          64
#define NGX_DG_BODY_MAX_LIMIT       (16 * 1024 * 1024)
#define NGX_DG_LAT_BUCKETS          32

/*
 * Bodies examined in the event loop; larger ones go to nginx's "default"
 * thread pool where there is one: at ~170 MB/s this is under 1 ms, which
 * is the longest the module holds other connections of a worker.
 */
#define NGX_DG_EXAMINE_INLINE_MAX   (128 * 1024)


typedef struct {
    ngx_str_t                   name;       /* as configured, for logs */
    ngx_str_t                   host;       /* the name a certificate is
                                               checked against */
    ngx_sockaddr_t              sockaddr;   /* resolved when configured */
    socklen_t                   socklen;
} ngx_dg_redis_addr_t;


typedef struct {
    ngx_str_t                   name;       /* the first address, as
                                               configured */
    ngx_array_t                 addrs;      /* ngx_dg_redis_addr_t: the
                                               server, or a cluster's
                                               seeds */
    ngx_str_t                   user;
    ngx_str_t                   password;
    ngx_int_t                   db;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  timeout;
    ngx_uint_t                  max_inflight;   /* per node */
    ngx_flag_t                  cluster;
    ngx_flag_t                  native;     /* the gateway's own path for
                                               requests that need no
                                               script (src/dg_warm.h) */
    ngx_flag_t                  tls;
    ngx_flag_t                  tls_verify;
    ngx_str_t                   tls_ca;
    ngx_str_t                   tls_name;   /* NUL-terminated; empty: each
                                               node's host */
    ngx_str_t                   tls_cert;
    ngx_str_t                   tls_key;
    unsigned                    tls_name_ip:1;
#if (NGX_SSL)
    ngx_ssl_t                  *ssl;        /* NULL: plain TCP */
#endif
} ngx_dg_redis_conf_t;


/* instance-wide counters, in shared memory */
typedef struct {
    ngx_atomic_t                requests;
    ngx_atomic_t                passed;
    ngx_atomic_t                tagged;
    ngx_atomic_t                throttled;
    ngx_atomic_t                refused;
    ngx_atomic_t                unavailable;    /* fail closed: 503 */
    ngx_atomic_t                would_refuse;
    ngx_atomic_t                state_changes;
    ngx_atomic_t                skipped;
    ngx_atomic_t                truncated;
    ngx_atomic_t                redis_errors;
    ngx_atomic_t                redis_timeouts;
    ngx_atomic_t                redis_unavailable;
    ngx_atomic_t                redis_replies;
    ngx_atomic_t                redis_reconnects;
    ngx_atomic_t                redis_native;   /* windows read without
                                                   the script */
    ngx_atomic_t                redis_commits;  /* folds the gateway
                                                   sent back */
    ngx_atomic_t                redis_tls_handshakes;
    ngx_atomic_t                redis_tls_reused;
    ngx_atomic_t                limit_evicted;
    ngx_atomic_t                lat[NGX_DG_LAT_BUCKETS];
    ngx_atomic_t                lat_sum_us;
    ngx_atomic_t                signals[DG_SIG_N];
    ngx_atomic_t                worker_state[NGX_DG_MAX_WORKERS];
} ngx_dg_stats_t;


/* the fallback limiter's part of the shared zone (ngx_distill_guard_limit.c) */
typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;      /* least recently used last */
    ngx_msec_t                  evicted_logged; /* when, for once a minute */
} ngx_dg_limit_sh_t;


/* the shared zone: counters, and the keys the fallback limiter knows */
typedef struct {
    ngx_dg_stats_t              stats;
    ngx_dg_limit_sh_t           limit;
} ngx_dg_shctx_t;


/* a limiter: one request per period, burst more at once */
typedef struct {
    ngx_msec_t                  period;     /* 0: no limit */
    ngx_uint_t                  burst;
    ngx_uint_t                  rate;       /* for RateLimit-Policy */
    ngx_uint_t                  per;        /* seconds: 1 or 60 */
} ngx_dg_rate_t;


typedef struct {
    ngx_str_t                   secret;
    ngx_str_t                   prefix;
    ngx_msec_t                  window;
    ngx_flag_t                  redis_set;
    ngx_dg_redis_conf_t         redis;
    char                        window_sha[DG_SHA1_HEX_LEN + 1];
    char                        fanout_sha[DG_SHA1_HEX_LEN + 1];
    ngx_shm_zone_t             *shm_zone;
    size_t                      zone_size;
    ngx_uint_t                  enabled;    /* some location turns it on */
    ngx_uint_t                  examine_large;  /* > INLINE_MAX somewhere */
#if (NGX_THREADS)
    ngx_thread_pool_t          *thread_pool;
#endif
} ngx_http_distill_guard_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_http_complex_value_t   *key;
    size_t                      body_max;
    ngx_array_t                *cot_patterns;  /* ngx_regex_t *, the
                                                   inherited ones too */
    ngx_uint_t                  fail;
    ngx_int_t                   weight[DG_SIG_SCORED];  /* milli */
    ngx_uint_t                  min_requests;
    ngx_uint_t                  tag_threshold;          /* milli */
    ngx_uint_t                  throttle_threshold;     /* milli */
    ngx_dg_rate_t               throttle;
    ngx_dg_rate_t               rate;
    ngx_msec_t                  penalty;
    ngx_uint_t                  reject_status;
    ngx_uint_t                  mode;
    ngx_http_complex_value_t   *bypass;
    ngx_flag_t                  headers;
    ngx_uint_t                  log_level;
    dg_score_conf_t             score;      /* built at merge */
} ngx_http_distill_guard_loc_conf_t;


#define NGX_DG_MODE_ENFORCE         0
#define NGX_DG_MODE_SHADOW          1


/* up to this many commands for one hash slot, answered together */
#define NGX_DG_XCHG_CMDS            4
#define NGX_DG_XCHG_BUF             2048    /* a commit of a whole ring */

typedef struct ngx_dg_xchg_s  ngx_dg_xchg_t;

typedef void (*ngx_dg_xchg_handler_pt)(ngx_dg_xchg_t *x);

struct ngx_dg_xchg_s {
    ngx_dg_xchg_handler_pt      handler;    /* NULL: nobody waits */
    void                       *data;
    ngx_uint_t                  tag;
    ngx_uint_t                  n;          /* commands */
    redisReply                 *reply[NGX_DG_XCHG_CMDS];   /* NULL: none */

    /* the transport's */
    ngx_uint_t                  slot;
    ngx_uint_t                  node;
    ngx_uint_t                  nreplied;
    ngx_uint_t                  bad;        /* first to send again */
    ngx_uint_t                  tries;
    dg_redirect_t               redirect;
    ngx_dg_xchg_t              *next;       /* free list */
    size_t                      off[NGX_DG_XCHG_CMDS + 1];
    u_char                      buf[NGX_DG_XCHG_BUF];   /* formatted */
};


typedef struct ngx_dg_op_s  ngx_dg_op_t;

typedef void (*ngx_dg_op_handler_pt)(ngx_dg_op_t *op);

/* one request's Redis exchanges, alive until every reply came */
struct ngx_dg_op_s {
    void                       *data;       /* NULL once the request left */
    ngx_dg_op_handler_pt        handler;
    ngx_uint_t                  pending;    /* exchanges still out */
    ngx_uint_t                  errors;
    ngx_uint_t                  fanout_skip;    /* counters not asked */
    ngx_uint_t                  fanout_add;     /* of them, to add to */
    ngx_uint_t                  fanout_got;     /* counters answered */
    uint64_t                    start_us;
    dg_window_req_t             req;
    dg_features_t               features;
    char                        key_id[DG_KEY_ID_LEN + 1];
    char                        subnet[48];
    dg_profile_t                profile;
    ngx_uint_t                  native;     /* the gateway's own path: the
                                               throttle's reply + 1, or 1 */
    unsigned                    native_expire:1;
    char                        window[DG_WIN_SIZE];   /* the value */
    int64_t                     wreply[DG_WREPLY_N];
    ngx_uint_t                  nwreply;
    unsigned                    have_window:1;
    ngx_dg_op_t                *next;       /* free list */
};


typedef struct {
    ngx_http_request_t         *request;
    ngx_uint_t                  state;
    unsigned                    in_handler:1;
    unsigned                    body_done:1;
    unsigned                    have_profile:1;
    unsigned                    redis_unavailable:1;
    unsigned                    logged:1;
    dg_action_t                 action;
    ngx_int_t                   status;     /* refusal status, or 0 */
    dg_refused_t                refused;    /* the limit that refused */
    uint32_t                    signals;    /* the verdict's: score signals
                                               and reasons */
    ngx_msec_t                  retry;      /* Retry-After, ms */
    ngx_uint_t                  remaining;
    ngx_dg_rate_t              *limit;      /* the limit that refused */
    char                        key_id[DG_KEY_ID_LEN + 1];
    dg_features_t               features;
    dg_profile_t                profile;
    dg_score_t                  score;
    ngx_str_t                   features_json;  /* rendered lazily */
    ngx_event_t                 timer;
    ngx_dg_op_t                *op;
} ngx_http_distill_guard_ctx_t;


extern ngx_module_t      ngx_distill_guard_module;


/* ngx_distill_guard_conf.c */
void *ngx_http_distill_guard_create_main_conf(ngx_conf_t *cf);
char *ngx_http_distill_guard_init_main_conf(ngx_conf_t *cf,
    void *conf);
void *ngx_http_distill_guard_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_distill_guard_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
char *ngx_http_distill_guard_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_distill_guard_cot_pattern(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_distill_guard_weight(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_distill_guard_threshold(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_distill_guard_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_distill_guard_secret_check(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_http_distill_guard_body_max(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_distill_guard_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_distill_guard_redis.c: the transport */
#define NGX_DG_REDIS_DOWN           0
#define NGX_DG_REDIS_CONNECTING     1
#define NGX_DG_REDIS_READY          2

ngx_int_t ngx_dg_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_distill_guard_main_conf_t *dmcf);
void ngx_dg_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dg_redis_ready(void);
ngx_dg_xchg_t *ngx_dg_redis_xchg_alloc(void);
ngx_int_t ngx_dg_redis_xchg_add(ngx_dg_xchg_t *x, dg_cmd_t *cmd);
ngx_int_t ngx_dg_redis_xchg_send(ngx_dg_xchg_t *x);
void ngx_dg_redis_xchg_free(ngx_dg_xchg_t *x);
void ngx_dg_redis_fire(dg_cmd_t *cmd);
void ngx_dg_redis_reply_error(redisReply *reply);

/* ngx_distill_guard_window.c: a request's window and fan-out calls */
ngx_dg_op_t *ngx_dg_window_op_alloc(void);
ngx_int_t ngx_dg_window_send(ngx_dg_op_t *op);
void ngx_dg_window_penalise(const char *key_id, uint64_t penalty_end_ms);
uint64_t ngx_dg_epoch_ms(void);
void ngx_dg_window_exit_process(void);

/* ngx_distill_guard_conf.c */
char *ngx_dg_redis_parse(ngx_conf_t *cf, ngx_dg_redis_conf_t *rc,
    ngx_str_t *value, ngx_uint_t n);
ngx_uint_t ngx_dg_conf_is_ip(u_char *name, size_t len);

/* ngx_distill_guard_limit.c: the node-local fallback while Redis is away */
void ngx_dg_limit_init_zone(ngx_slab_pool_t *shpool, ngx_dg_limit_sh_t *sh,
    ngx_uint_t fresh);
void ngx_dg_limit_mirror(const char *key_id, ngx_msec_t penalty_left,
    ngx_msec_t next);
ngx_int_t ngx_dg_limit_check(const char *key_id, ngx_dg_rate_t *throttle,
    ngx_dg_rate_t *rate, ngx_msec_t *retry, ngx_uint_t *remaining);

/* ngx_distill_guard_stats.c */
ngx_int_t ngx_dg_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data);
ngx_dg_stats_t *ngx_dg_stats(void);
void ngx_dg_stats_latency(uint64_t us);
void ngx_dg_stats_signals(uint32_t mask);
uint64_t ngx_dg_now_us(void);
void ngx_dg_stats_worker_state(ngx_uint_t state);
char *ngx_dg_stats_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

#define ngx_dg_count(field)                                                  \
    do {                                                                     \
        ngx_dg_stats_t  *st_ = ngx_dg_stats();                               \
        if (st_) {                                                           \
            (void) ngx_atomic_fetch_add(&st_->field, 1);                     \
        }                                                                    \
    } while (0)


#endif /* NGX_DISTILL_GUARD_MODULE_H */
