/*
 * distill-guard: detects distillation campaigns at an LLM API gateway.
 *
 * This file is the nginx glue: directives, configuration, the preaccess
 * phase handler that reads the body and waits for Redis, the variables
 * and the response headers.  The engine (prompt parsing, features,
 * scoring, the Redis scripts) lives in src/ and knows no nginx.
 */

#include "ngx_distill_guard_module.h"
#include "dg_key.h"
#include "dg_policy.h"
#include "dg_state.h"


#define NGX_DG_STATE_NEW            0
#define NGX_DG_STATE_BODY           1
#define NGX_DG_STATE_REDIS          2
#define NGX_DG_STATE_DONE           3
#define NGX_DG_STATE_EXAMINE        4



/* the examination of a body: in the event loop, or in a thread */
typedef struct {
    ngx_http_request_t         *request;
    ngx_chain_t                *bufs;       /* to gather from, or NULL */
    u_char                     *data;
    size_t                      len;
    u_char                     *scratch;    /* len + 1 bytes */
    ngx_uint_t                  truncated;
    dg_prompt_t                 prompt;     /* points into data, scratch */
    dg_features_t              *features;
    ngx_err_t                   err;        /* of the temp file read */
    ngx_uint_t                  failed;
#if (NGX_THREADS)
    ngx_thread_task_t          *task;
#endif
} ngx_http_distill_guard_examine_t;


static ngx_int_t ngx_http_distill_guard_handler(ngx_http_request_t *r);
static void ngx_http_distill_guard_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_distill_guard_account(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static ngx_int_t ngx_http_distill_guard_key(ngx_http_request_t *r,
    ngx_http_distill_guard_loc_conf_t *dlcf, ngx_str_t *value);
static ngx_int_t ngx_http_distill_guard_ask_redis(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static ngx_int_t ngx_http_distill_guard_features(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static uint32_t ngx_http_distill_guard_cot(ngx_http_request_t *r,
    ngx_array_t *patterns, const char *text, size_t len);
static ngx_int_t ngx_http_distill_guard_body(ngx_http_request_t *r,
    size_t max, ngx_http_distill_guard_examine_t *ex);
static void ngx_http_distill_guard_examine(void *data, ngx_log_t *log);
static ngx_int_t ngx_http_distill_guard_examined(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx, ngx_http_distill_guard_examine_t *ex);
#if (NGX_THREADS)
static ngx_int_t ngx_http_distill_guard_examine_post(ngx_http_request_t *r,
    ngx_http_distill_guard_examine_t *ex);
static void ngx_http_distill_guard_examine_done(ngx_event_t *ev);
#endif
static void ngx_http_distill_guard_redis_done(ngx_dg_op_t *op);
static void ngx_http_distill_guard_fanout_done(ngx_dg_op_t *op);
static void ngx_http_distill_guard_timeout(ngx_event_t *ev);
static void ngx_http_distill_guard_resume(ngx_http_request_t *r);
static void ngx_http_distill_guard_unavailable(
    ngx_http_distill_guard_ctx_t *ctx);
static void ngx_http_distill_guard_decide(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static void ngx_http_distill_guard_state(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx, dg_verdict_t *v);
static void ngx_http_distill_guard_conversation(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static ngx_int_t ngx_http_distill_guard_verdict(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static void ngx_http_distill_guard_log_refusal(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx);
static ngx_int_t ngx_http_distill_guard_add_header(ngx_http_request_t *r,
    char *name, u_char *value, size_t len);
static size_t ngx_http_distill_guard_subnet(ngx_http_request_t *r,
    char *buf, size_t size);
static ngx_uint_t ngx_http_distill_guard_local4(u_char *a);
static ngx_http_distill_guard_ctx_t *ngx_http_distill_guard_get_ctx(
    ngx_http_request_t *r);
static void ngx_http_distill_guard_cleanup(void *data);

static ngx_int_t ngx_http_distill_guard_header_filter(ngx_http_request_t *r);

static ngx_int_t ngx_http_distill_guard_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_distill_guard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_distill_guard_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_distill_guard_init_process(ngx_cycle_t *cycle);
static void ngx_http_distill_guard_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_distill_guard_fail_modes[] = {
    { ngx_string("open"), NGX_DG_FAIL_OPEN },
    { ngx_string("closed"), NGX_DG_FAIL_CLOSED },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_distill_guard_modes[] = {
    { ngx_string("enforce"), NGX_DG_MODE_ENFORCE },
    { ngx_string("shadow"), NGX_DG_MODE_SHADOW },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_distill_guard_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_distill_guard_status_bounds = {
    ngx_conf_check_num_bounds, 400, 599
};


static ngx_conf_post_t  ngx_http_distill_guard_secret_post =
    { ngx_http_distill_guard_secret_check };



static ngx_command_t  ngx_http_distill_guard_commands[] = {

    { ngx_string("distill_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, enable),
      NULL },

    { ngx_string("distill_guard_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, key),
      NULL },

    { ngx_string("distill_guard_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_main_conf_t, secret),
      &ngx_http_distill_guard_secret_post },

    { ngx_string("distill_guard_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_distill_guard_body_max,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("distill_guard_cot_pattern"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_distill_guard_cot_pattern,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("distill_guard_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_distill_guard_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("distill_guard_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_main_conf_t, prefix),
      NULL },

    { ngx_string("distill_guard_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_distill_guard_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("distill_guard_window"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_main_conf_t, window),
      NULL },

    { ngx_string("distill_guard_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, fail),
      &ngx_http_distill_guard_fail_modes },

    { ngx_string("distill_guard_weight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_distill_guard_weight,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("distill_guard_min_requests"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, min_requests),
      NULL },

    { ngx_string("distill_guard_tag_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_distill_guard_threshold,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, tag_threshold),
      NULL },

    { ngx_string("distill_guard_throttle_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_distill_guard_threshold,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, throttle_threshold),
      NULL },

    { ngx_string("distill_guard_throttle_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_distill_guard_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, throttle),
      NULL },

    { ngx_string("distill_guard_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
                        |NGX_CONF_TAKE12,
      ngx_http_distill_guard_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, rate),
      NULL },

    { ngx_string("distill_guard_penalty"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, penalty),
      NULL },

    { ngx_string("distill_guard_reject_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, reject_status),
      &ngx_http_distill_guard_status_bounds },

    { ngx_string("distill_guard_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, mode),
      &ngx_http_distill_guard_modes },

    { ngx_string("distill_guard_bypass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, bypass),
      NULL },

    { ngx_string("distill_guard_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, headers),
      NULL },

    { ngx_string("distill_guard_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_distill_guard_loc_conf_t, log_level),
      &ngx_http_distill_guard_log_levels },

    { ngx_string("distill_guard_stats"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_dg_stats_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_distill_guard_module_ctx = {
    ngx_http_distill_guard_add_variables,  /* preconfiguration */
    ngx_http_distill_guard_init,           /* postconfiguration */

    ngx_http_distill_guard_create_main_conf, /* create main configuration */
    ngx_http_distill_guard_init_main_conf,   /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_distill_guard_create_loc_conf, /* create location configuration */
    ngx_http_distill_guard_merge_loc_conf  /* merge location configuration */
};


ngx_module_t  ngx_distill_guard_module = {
    NGX_MODULE_V1,
    &ngx_distill_guard_module_ctx,         /* module context */
    ngx_http_distill_guard_commands,       /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_distill_guard_init_process,   /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_distill_guard_exit_process,   /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


#define NGX_DG_VAR_FEATURES     0
#define NGX_DG_VAR_SCORE        1
#define NGX_DG_VAR_ACTION       2
#define NGX_DG_VAR_SIGNALS      3
#define NGX_DG_VAR_KEY_ID       4


static ngx_http_variable_t  ngx_http_distill_guard_vars[] = {

    { ngx_string("distill_guard_features"), NULL,
      ngx_http_distill_guard_variable, NGX_DG_VAR_FEATURES,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("distill_guard_score"), NULL,
      ngx_http_distill_guard_variable, NGX_DG_VAR_SCORE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("distill_guard_action"), NULL,
      ngx_http_distill_guard_variable, NGX_DG_VAR_ACTION,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("distill_guard_signals"), NULL,
      ngx_http_distill_guard_variable, NGX_DG_VAR_SIGNALS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("distill_guard_key_id"), NULL,
      ngx_http_distill_guard_variable, NGX_DG_VAR_KEY_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_distill_guard_policies[] = {
    ngx_string("rate"),
    ngx_string("throttle")
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static ngx_uint_t  ngx_http_distill_guard_truncated_logged;

/* this worker's memory of the cross-key counters (src/dg_fanout.h) */
static dg_fanout_cache_t  *ngx_http_distill_guard_fanout;

/* the key id's HMAC with its key schedule made once (src/dg_key.h) */
static dg_key_hmac_t      *ngx_http_distill_guard_hmac;


static ngx_int_t
ngx_http_distill_guard_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_http_distill_guard_ctx_t       *ctx;
    ngx_http_distill_guard_loc_conf_t  *dlcf;

    /* subrequests (mirror, SSI, auth_request) belong to their main one */
    if (r != r->main) {
        return NGX_DECLINED;
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);

    if (!dlcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_distill_guard_get_ctx(r);

    if (ctx) {
        if (ctx->state == NGX_DG_STATE_DONE) {
            return ngx_http_distill_guard_verdict(r, ctx);
        }

        /* still waiting for the body or for Redis */
        return NGX_AGAIN;
    }

    rc = ngx_http_distill_guard_account(r, NULL);

    if (rc == NGX_OK) {
        ctx = ngx_http_get_module_ctx(r, ngx_distill_guard_module);
        return ngx_http_distill_guard_verdict(r, ctx);
    }

    return rc;
}


/*
 * Starts accounting a request: NGX_OK when the verdict is known now,
 * NGX_AGAIN while it waits (body or Redis), or an HTTP error status.
 */

static ngx_int_t
ngx_http_distill_guard_account(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    size_t                               len;
    u_char                              *key;
    ngx_int_t                            rc;
    ngx_str_t                            value;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_distill_guard_loc_conf_t   *dlcf;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);
    dmcf = ngx_http_get_module_main_conf(r, ngx_distill_guard_module);

    if (ctx == NULL) {
        cln = ngx_pool_cleanup_add(r->pool,
                                   sizeof(ngx_http_distill_guard_ctx_t));
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx = cln->data;
        ngx_memzero(ctx, sizeof(ngx_http_distill_guard_ctx_t));
        ctx->request = r;
        cln->handler = ngx_http_distill_guard_cleanup;

        ngx_http_set_ctx(r, ctx, ngx_distill_guard_module);
        ngx_dg_count(requests);


        if (ngx_http_distill_guard_key(r, dlcf, &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len = value.len;
        key = (u_char *) dg_key_normalize((char *) value.data, &len);

        if (len == 0) {
            ctx->action = DG_ACTION_SKIP;
            ctx->state = NGX_DG_STATE_DONE;
            ngx_dg_count(skipped);
            return NGX_OK;
        }

        rc = ngx_http_distill_guard_hmac
             ? dg_key_hmac_id(ngx_http_distill_guard_hmac, (char *) key, len,
                              ctx->key_id)
             : dg_key_id((char *) dmcf->secret.data, dmcf->secret.len,
                         (char *) key, len, ctx->key_id);

        if (rc != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* after the key id: an allow-list maps $distill_guard_key_id */
        if (dlcf->bypass) {
            if (ngx_http_complex_value(r, dlcf->bypass, &value) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (value.len && (value.len > 1 || value.data[0] != '0')) {
                ctx->action = DG_ACTION_SKIP;
                ctx->state = NGX_DG_STATE_DONE;
                ngx_dg_count(skipped);
                return NGX_OK;
            }
        }

        if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
            ctx->state = NGX_DG_STATE_BODY;
            ctx->in_handler = 1;

            rc = ngx_http_read_client_request_body(r,
                                        ngx_http_distill_guard_body_handler);

            ctx->in_handler = 0;

            if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
                return rc;
            }

            /* balances the count taken by reading the body */
            ngx_http_finalize_request(r, NGX_DONE);

            if (!ctx->body_done) {
                return NGX_AGAIN;
            }
        }
    }

    rc = ngx_http_distill_guard_features(r, ctx);

    if (rc == NGX_AGAIN) {
        /* examined in a thread: ngx_http_distill_guard_examine_done() */
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_distill_guard_ask_redis(r, ctx);
}


/*
 * The features are known: the round trip to Redis, NGX_AGAIN while it
 * lasts, or NGX_OK with the verdict when there is nothing to wait for.
 */

static ngx_int_t
ngx_http_distill_guard_ask_redis(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    unsigned                             add;
    ngx_dg_op_t                         *op;
    ngx_http_distill_guard_loc_conf_t   *dlcf;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);
    dmcf = ngx_http_get_module_main_conf(r, ngx_distill_guard_module);

    if (!dmcf->redis_set) {
        ngx_http_distill_guard_decide(r, ctx);
        return NGX_OK;
    }

    if (!ngx_dg_redis_ready() || (op = ngx_dg_window_op_alloc()) == NULL) {
        ngx_http_distill_guard_unavailable(ctx);
        ngx_http_distill_guard_decide(r, ctx);
        return NGX_OK;
    }

    op->features = ctx->features;
    ngx_memcpy(op->key_id, ctx->key_id, sizeof(op->key_id));
    (void) ngx_http_distill_guard_subnet(r, op->subnet, sizeof(op->subnet));

    op->req.prefix = (char *) dmcf->prefix.data;
    op->req.prefix_len = dmcf->prefix.len;
    op->req.key_id = op->key_id;
    op->req.window_ms = dmcf->window;

    /*
     * reading a temp file and examining a large body take milliseconds:
     * nginx's cached clock, which ngx_add_timer() below counts from,
     * would make the request's timeout= start in the past
     */
    ngx_time_update();

    op->req.now_ms = ngx_dg_epoch_ms();
    op->req.features = &op->features;
    op->req.subnet = op->subnet;
    op->req.throttle_ms = dlcf->throttle.period;
    op->req.rate_ms = dlcf->rate.period;
    op->req.rate_burst = (uint32_t) dlcf->rate.burst;
    op->req.shadow = (dlcf->mode == NGX_DG_MODE_SHADOW);
    op->data = ctx;
    op->handler = ngx_http_distill_guard_redis_done;

    /* the cross-key counts this worker holds need not be asked */
    if (ngx_http_distill_guard_fanout) {
        op->fanout_skip = dg_fanout_plan(ngx_http_distill_guard_fanout,
                                         &op->req, &op->profile, &add);
        op->fanout_add = add;
    }

    if (ngx_dg_window_send(op) != NGX_OK) {
        ngx_http_distill_guard_unavailable(ctx);
        ngx_http_distill_guard_decide(r, ctx);
        return NGX_OK;
    }

    ctx->op = op;
    ctx->state = NGX_DG_STATE_REDIS;

    ctx->timer.handler = ngx_http_distill_guard_timeout;
    ctx->timer.data = r;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, dmcf->redis.timeout);

    /* notice a client that goes away while we wait */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_AGAIN;
}


static void
ngx_http_distill_guard_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_distill_guard_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_distill_guard_module);
    ctx->body_done = 1;

    if (ctx->in_handler) {
        /* the body was already there: the phase handler goes on */
        return;
    }

    rc = ngx_http_distill_guard_account(r, ctx);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * The API key: distill_guard_key when set; else Authorization (OpenAI,
 * and most gateways), or X-Api-Key when that holds no key (Anthropic).
 */

static ngx_int_t
ngx_http_distill_guard_key(ngx_http_request_t *r,
    ngx_http_distill_guard_loc_conf_t *dlcf, ngx_str_t *value)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (dlcf->key) {
        return ngx_http_complex_value(r, dlcf->key, value);
    }

    if (r->headers_in.authorization) {
        *value = r->headers_in.authorization->value;
        len = value->len;

        if (dg_key_normalize((char *) value->data, &len) && len) {
            return NGX_OK;
        }
    }

    ngx_str_null(value);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("X-Api-Key") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Api-Key",
                               sizeof("X-Api-Key") - 1) == 0)
        {
            *value = h[i].value;
            break;
        }
    }

    return NGX_OK;
}


/*
 * Examines the body: NGX_OK when done, NGX_AGAIN when a thread does it
 * (a large body: it would hold every other connection of the worker for
 * tens of milliseconds), NGX_ERROR.
 */

static ngx_int_t
ngx_http_distill_guard_features(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    ngx_http_distill_guard_examine_t    ex, *exp;
    ngx_http_distill_guard_loc_conf_t  *dlcf;
#if (NGX_THREADS)
    ngx_int_t                           rc;
    ngx_thread_task_t                  *task;
#endif

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);

    exp = &ex;

#if (NGX_THREADS)
    task = NULL;

    if (dlcf->body_max > NGX_DG_EXAMINE_INLINE_MAX) {
        task = ngx_thread_task_alloc(r->pool,
                                sizeof(ngx_http_distill_guard_examine_t));
        if (task == NULL) {
            return NGX_ERROR;
        }

        exp = task->ctx;
    }
#endif

    ngx_memzero(exp, sizeof(ngx_http_distill_guard_examine_t));
#if (NGX_THREADS)
    exp->task = task;
#endif
    exp->request = r;
    exp->features = &ctx->features;

    if (ngx_http_distill_guard_body(r, dlcf->body_max, exp) != NGX_OK) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)
    if (task && exp->len > NGX_DG_EXAMINE_INLINE_MAX) {
        rc = ngx_http_distill_guard_examine_post(r, exp);

        if (rc == NGX_OK) {
            ctx->state = NGX_DG_STATE_EXAMINE;
            return NGX_AGAIN;
        }

        /* no pool, or its queue is full: here, as without threads */
    }
#endif

    ngx_http_distill_guard_examine(exp, r->connection->log);

    return ngx_http_distill_guard_examined(r, ctx, exp);
}


/*
 * Where the first max bytes of the body are: in place when they sit in
 * one memory buffer, else a buffer of that size to gather the chain and
 * the temp file into (ex->bufs); the gathering is part of the
 * examination, which may run in a thread.
 */

static ngx_int_t
ngx_http_distill_guard_body(ngx_http_request_t *r, size_t max,
    ngx_http_distill_guard_examine_t *ex)
{
    off_t         total;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ex->data = (u_char *) "";
    ex->len = 0;

    if (r->request_body && r->request_body->bufs) {
        total = 0;
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            total += ngx_buf_size(cl->buf);
        }

        if (total > (off_t) max) {
            ex->truncated = 1;
            total = max;
        }

        ex->len = (size_t) total;

        b = r->request_body->bufs->buf;

        if (!b->in_file && b->last - b->pos >= total) {
            ex->data = b->pos;

        } else {
            ex->data = ngx_pnalloc(r->pool, ex->len);
            if (ex->data == NULL) {
                return NGX_ERROR;
            }

            ex->bufs = r->request_body->bufs;
        }
    }

    ex->scratch = ngx_pnalloc(r->pool, ex->len + 1);
    if (ex->scratch == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Gathers the body if needed, parses it and computes its features.  It
 * touches only what ex points to (no pool, no log): a thread may run it.
 */

static void
ngx_http_distill_guard_examine(void *data, ngx_log_t *log)
{
    ngx_http_distill_guard_examine_t  *ex = data;

    u_char       *p;
    off_t         size, left;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (ex->bufs) {
        p = ex->data;
        left = (off_t) ex->len;

        for (cl = ex->bufs; cl && left > 0; cl = cl->next) {
            b = cl->buf;
            size = ngx_min(ngx_buf_size(b), left);

            if (b->in_file) {
                n = pread(b->file->fd, p, (size_t) size, b->file_pos);

                if (n != (ssize_t) size) {
                    ex->err = (n == -1) ? ngx_errno : 0;
                    ex->failed = 1;
                    return;
                }

            } else {
                ngx_memcpy(p, b->pos, (size_t) size);
            }

            p += size;
            left -= size;
        }

        ex->len = p - ex->data;
    }

    dg_prompt_parse(&ex->prompt, (char *) ex->data, ex->len,
                    (char *) ex->scratch, ex->len + 1);
    dg_features_compute(ex->features, &ex->prompt);
}


static ngx_int_t
ngx_http_distill_guard_examined(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx, ngx_http_distill_guard_examine_t *ex)
{
    ngx_http_distill_guard_loc_conf_t  *dlcf;

    if (ex->failed) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ex->err,
                      "distill_guard: short read of the body's temp file");
        return NGX_ERROR;
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);

    /* the operator's patterns: in the event loop, PCRE's match data is
     * the worker's */
    if (dlcf->cot_patterns) {
        ctx->features.cot += ngx_http_distill_guard_cot(r, dlcf->cot_patterns,
                                                    ex->prompt.user.data,
                                                    ex->prompt.user.len)
                             + ngx_http_distill_guard_cot(r,
                                                    dlcf->cot_patterns,
                                                    ex->prompt.system.data,
                                                    ex->prompt.system.len);
    }

    if (ex->truncated) {
        ctx->features.truncated = 1;
        ngx_dg_count(truncated);

        /* once per worker: the counter says how often */
        if (!ngx_http_distill_guard_truncated_logged) {
            ngx_http_distill_guard_truncated_logged = 1;
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "distill_guard: a body larger than "
                          "distill_guard_body_max %uz was examined up to "
                          "that size (logged once per worker; the stats "
                          "count \"truncated\")", dlcf->body_max);
        }
    }

    return NGX_OK;
}


/*
 * Matches of the operator's distill_guard_cot_pattern regexes, counted
 * without overlap as the built-in phrases are.
 */

static uint32_t
ngx_http_distill_guard_cot(ngx_http_request_t *r, ngx_array_t *patterns,
    const char *text, size_t len)
{
    int            captures[3];
    uint32_t       n;
    ngx_int_t      rc;
    ngx_str_t      s;
    ngx_uint_t     i;
    ngx_regex_t  **re;

    n = 0;
    re = patterns->elts;

    for (i = 0; i < patterns->nelts; i++) {
        s.data = (u_char *) text;
        s.len = len;

        while (s.len > 0) {
            rc = ngx_regex_exec(re[i], &s, captures, 3);

            if (rc == NGX_REGEX_NO_MATCHED) {
                break;
            }

            if (rc < 0) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              ngx_regex_exec_n " failed: %i on a "
                              "distill_guard_cot_pattern", rc);
                break;
            }

            n++;

            /* an empty match must still move on */
            captures[1] = ngx_max(captures[1], captures[0] + 1);
            s.data += captures[1];
            s.len -= ngx_min((size_t) captures[1], s.len);
        }
    }

    return n;
}


#if (NGX_THREADS)

static ngx_int_t
ngx_http_distill_guard_examine_post(ngx_http_request_t *r,
    ngx_http_distill_guard_examine_t *ex)
{
    ngx_thread_task_t                   *task;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_distill_guard_module);

    if (dmcf->thread_pool == NULL) {
        return NGX_DECLINED;
    }

    task = ex->task;
    task->handler = ngx_http_distill_guard_examine;
    task->event.handler = ngx_http_distill_guard_examine_done;
    task->event.data = ex;

    if (ngx_thread_task_post(dmcf->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * The thread uses the request's memory: "blocked" keeps the request
     * from being freed (a terminate waits for us, as for aio), and
     * nothing of ours runs on the connection's events meanwhile.
     */
    r->main->blocked++;
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_OK;
}


static void
ngx_http_distill_guard_examine_done(ngx_event_t *ev)
{
    ngx_int_t                          rc;
    ngx_http_request_t                *r;
    ngx_http_distill_guard_ctx_t      *ctx;
    ngx_http_distill_guard_examine_t  *ex;

    ex = ev->data;
    r = ex->request;

    r->main->blocked--;

    if (r->write_event_handler != ngx_http_request_empty_handler) {
        /* the request was terminated meanwhile: let it go */
        r->write_event_handler(r);
        ngx_http_run_posted_requests(r->connection);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_distill_guard_module);

    rc = ngx_http_distill_guard_examined(r, ctx, ex);

    if (rc == NGX_OK) {
        rc = ngx_http_distill_guard_ask_redis(r, ctx);
    }

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(r->connection);
        return;
    }

    ngx_http_distill_guard_resume(r);
}

#endif


static void
ngx_http_distill_guard_redis_done(ngx_dg_op_t *op)
{
    ngx_http_request_t            *r;
    ngx_http_distill_guard_ctx_t  *ctx;

    ctx = op->data;
    r = ctx->request;
    ctx->op = NULL;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (op->have_window) {
        ctx->profile = op->profile;
        ctx->have_profile = 1;

        ngx_http_distill_guard_fanout_done(op);

    } else {
        ngx_http_distill_guard_unavailable(ctx);
    }

    ngx_http_distill_guard_decide(r, ctx);
    ngx_http_distill_guard_resume(r);
}


/*
 * The counts Redis answered are kept for the next requests; the key is
 * added to the counters it was answered from the table for, unless it
 * is in them already.  The adds are sent without waiting.
 */

static void
ngx_http_distill_guard_fanout_done(ngx_dg_op_t *op)
{
    unsigned                             k, adds;
    dg_cmd_t                             cmd;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    if (ngx_http_distill_guard_fanout == NULL) {
        return;
    }

    dg_fanout_learn(ngx_http_distill_guard_fanout, &op->req, &op->profile,
                    op->fanout_got);

    if (op->fanout_add == 0) {
        return;
    }

    adds = dg_fanout_adds(ngx_http_distill_guard_fanout, &op->req,
                          op->fanout_add, op->window, sizeof(op->window),
                          (unsigned) op->wreply[DG_WREPLY_SLOT]);

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_distill_guard_module);

    for (k = 0; k < DG_FANOUT_N; k++) {
        if ((adds & (1u << k))
            && dg_fanout_add_cmd(&cmd, &op->req, (dg_fanout_t) k,
                                 dmcf->fanout_sha)
               == 0)
        {
            ngx_dg_redis_fire(&cmd);
        }
    }
}


static void
ngx_http_distill_guard_timeout(ngx_event_t *ev)
{
    ngx_http_request_t            *r;
    ngx_http_distill_guard_ctx_t  *ctx;

    r = ev->data;
    ctx = ngx_http_get_module_ctx(r, ngx_distill_guard_module);

    /* the reply may still come: it will find no request and be dropped */
    if (ctx->op) {
        ctx->op->data = NULL;
        ctx->op = NULL;
    }

    ngx_dg_count(redis_timeouts);
    ngx_http_distill_guard_unavailable(ctx);
    ngx_http_distill_guard_decide(r, ctx);
    ngx_http_distill_guard_resume(r);
}


static void
ngx_http_distill_guard_resume(ngx_http_request_t *r)
{
    ngx_connection_t  *c;

    c = r->connection;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_distill_guard_unavailable(ngx_http_distill_guard_ctx_t *ctx)
{
    if (!ctx->redis_unavailable) {
        ctx->redis_unavailable = 1;
        ngx_dg_count(redis_unavailable);
    }
}


static void
ngx_http_distill_guard_decide(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    ngx_int_t                           rc;
    dg_refused_t                        local;
    dg_verdict_t                        v;
    dg_policy_conf_t                    pc;
    ngx_http_distill_guard_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);

    ctx->state = NGX_DG_STATE_DONE;
    local = DG_REFUSED_NONE;

    if (ctx->have_profile) {
        dg_score_compute(&ctx->score, &dlcf->score, &ctx->profile,
                         &ctx->features);

        ctx->retry = (ngx_msec_t) ctx->profile.retry_ms;
        ctx->remaining = (ngx_uint_t) ctx->profile.remaining;

    } else {
        /* Redis is away: this node's own memory of penalties and rates */
        rc = ngx_dg_limit_check(ctx->key_id, &dlcf->throttle, &dlcf->rate,
                                &ctx->retry, &ctx->remaining);

        local = (rc == NGX_BUSY) ? DG_REFUSED_THROTTLE
                : (rc == NGX_DECLINED) ? DG_REFUSED_RATE : DG_REFUSED_NONE;
    }

    pc.tag_milli = (uint32_t) dlcf->tag_threshold;
    pc.throttle_milli = (uint32_t) dlcf->throttle_threshold;
    pc.penalty_ms = dlcf->penalty;
    pc.throttle_ms = dlcf->throttle.period;
    pc.shadow = (dlcf->mode == NGX_DG_MODE_SHADOW);
    pc.fail_closed = (dlcf->fail == NGX_DG_FAIL_CLOSED);

    dg_policy_decide(&v, &pc, &ctx->score,
                     ctx->have_profile ? &ctx->profile : NULL, local,
                     ctx->redis_unavailable);

    ctx->action = v.action;
    ctx->signals = v.signals;

    if (v.refused != DG_REFUSED_NONE) {
        ctx->limit = (v.refused == DG_REFUSED_RATE) ? &dlcf->rate
                                                     : &dlcf->throttle;
    }

    if (v.refuse) {
        ctx->refused = v.refused;
        ctx->status = dlcf->reject_status;

    } else if (v.unavailable) {
        ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (v.mirror) {
        ngx_dg_limit_mirror(ctx->key_id, (ngx_msec_t) v.mirror_penalty_ms,
                            (ngx_msec_t) v.mirror_next_ms);
    }

    if (v.write_state) {
        ngx_http_distill_guard_state(r, ctx, &v);
    }

    if (ctx->have_profile
        && ctx->profile.provenance == DG_PROVENANCE_VERIFIED
        && ctx->features.prior_first)
    {
        ngx_http_distill_guard_conversation(r, ctx);
    }

    if (v.would_refuse) {
        ngx_dg_count(would_refuse);
    }

    switch (ctx->action) {

    case DG_ACTION_TAG:
        ngx_dg_count(tagged);
        break;

    case DG_ACTION_THROTTLE:
        ngx_dg_count(refused);
        ngx_dg_count(throttled);
        break;

    case DG_ACTION_UNAVAILABLE:
        ngx_dg_count(refused);
        ngx_dg_count(unavailable);
        break;

    default:
        ngx_dg_count(passed);
    }

    ngx_dg_stats_signals(ctx->signals);
}


/*
 * Tells Redis of the key's change of state: the state and penalty for
 * every node, the flagged set and the events stream for operators.
 * These writes are sent without waiting for their replies, and only on
 * a change (or to renew a penalty half gone), so a request still costs
 * one round trip.
 */

static void
ngx_http_distill_guard_state(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx, dg_verdict_t *v)
{
    char                                 signals[DG_SIGNALS_STR_MAX];
    dg_cmd_t                             cmd;
    ngx_uint_t                           i;
    dg_state_req_t                       sr;
    ngx_http_distill_guard_loc_conf_t   *dlcf;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);
    dmcf = ngx_http_get_module_main_conf(r, ngx_distill_guard_module);

    (void) dg_signals_str(ctx->score.signals, signals, sizeof(signals));

    sr.prefix = (char *) dmcf->prefix.data;
    sr.prefix_len = dmcf->prefix.len;
    sr.key_id = ctx->key_id;
    sr.from = v->from;
    sr.to = v->to;
    sr.score_milli = ctx->score.score_milli;
    sr.signals = signals;
    sr.now_ms = (uint64_t) ctx->profile.now_ms;
    sr.penalty_ms = v->penalty_ms;
    sr.throttle_ms = dlcf->throttle.period;
    sr.fresh = v->fresh;
    sr.ttl_ms = ngx_max(dmcf->window, dlcf->penalty);

    for (i = 0; i < DG_STATE_CMDS; i++) {
        if (dg_state_cmd(&cmd, &sr, i) == 0) {
            ngx_dg_redis_fire(&cmd);
        }
    }

    /* this worker's next requests of the key take the throttle at once */
    if (v->penalty_ms) {
        ngx_dg_window_penalise(ctx->key_id, sr.now_ms + v->penalty_ms);
    }

    if (v->from == v->to) {
        return;
    }

    ngx_dg_count(state_changes);

    ngx_log_error(dlcf->log_level, r->connection->log, 0,
                  "distill_guard: key %s %s -> %s, score %ui.%03ui, "
                  "signals \"%s\"%s", ctx->key_id,
                  dg_action_name(v->from), dg_action_name(v->to),
                  (ngx_uint_t) ctx->score.score_milli / 1000,
                  (ngx_uint_t) ctx->score.score_milli % 1000, signals,
                  dlcf->mode == NGX_DG_MODE_SHADOW ? " (shadow)" : "");
}


/*
 * A verified conversation's first follow-up: its opening's template is
 * a frame this key really uses in conversations, which is what tells an
 * app's frame from a campaign's wrapper (src/dg_score.c).
 */

static void
ngx_http_distill_guard_conversation(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    dg_cmd_t                             cmd;
    dg_window_req_t                      req;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_distill_guard_module);

    ngx_memzero(&req, sizeof(dg_window_req_t));

    req.prefix = (char *) dmcf->prefix.data;
    req.prefix_len = dmcf->prefix.len;
    req.key_id = ctx->key_id;
    req.window_ms = dmcf->window;
    req.now_ms = ngx_dg_epoch_ms();
    req.features = &ctx->features;

    if (dg_fanout_conv_cmd(&cmd, &req, DG_FANOUT_HEAD, dmcf->fanout_sha)
        == 0)
    {
        ngx_dg_redis_fire(&cmd);
    }

    if (dg_fanout_conv_cmd(&cmd, &req, DG_FANOUT_TAIL, dmcf->fanout_sha)
        == 0)
    {
        ngx_dg_redis_fire(&cmd);
    }
}


static ngx_int_t
ngx_http_distill_guard_verdict(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    if ((ctx->status || ctx->limit) && !ctx->logged) {
        ctx->logged = 1;
        ngx_http_distill_guard_log_refusal(r, ctx);
    }

    if (ctx->status) {
        return ctx->status;
    }

    return NGX_DECLINED;
}


/* one line per refusal, as limit_req logs its own */

static void
ngx_http_distill_guard_log_refusal(ngx_http_request_t *r,
    ngx_http_distill_guard_ctx_t *ctx)
{
    char                                signals[128];
    const char                         *by;
    ngx_http_distill_guard_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);

    if (r->connection->log->log_level < dlcf->log_level) {
        return;
    }

    if (ctx->limit == NULL) {
        ngx_log_error(dlcf->log_level, r->connection->log, 0,
                      "distill_guard: refusing key %s with %i: Redis "
                      "unavailable and \"distill_guard_fail closed\"",
                      ctx->key_id, ctx->status);
        return;
    }

    (void) dg_signals_str(ctx->score.signals, signals, sizeof(signals));

    by = (ctx->limit == &dlcf->rate) ? "distill_guard_rate"
                                      : "the throttle of a penalised key";

    ngx_log_error(dlcf->log_level, r->connection->log, 0,
                  "distill_guard: %s key %s by %s, retry in %Mms, "
                  "score %ui.%03ui, signals \"%s\"",
                  ctx->status ? "refusing" : "would refuse (shadow)",
                  ctx->key_id, by, ctx->retry,
                  (ngx_uint_t) ctx->score.score_milli / 1000,
                  (ngx_uint_t) ctx->score.score_milli % 1000, signals);
}


/*
 * The client's network: /24 for IPv4, /48 for IPv6.  Loopback, private,
 * shared (carrier NAT) and link-local addresses are left out: seen here
 * they are a proxy or a load balancer in front of nginx, not the
 * client's network, and counting them would put every key on one
 * network (use the realip module to see the client's address).
 */

static size_t
ngx_http_distill_guard_subnet(ngx_http_request_t *r, char *buf, size_t size)
{
    u_char               *p, *a;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    p = (u_char *) buf;

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        a = (u_char *) &sin->sin_addr;

        if (!ngx_http_distill_guard_local4(a)) {
            p = ngx_snprintf(p, size - 1, "%ud.%ud.%ud", a[0], a[1], a[2]);
        }

        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        a = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            if (!ngx_http_distill_guard_local4(a + 12)) {
                p = ngx_snprintf(p, size - 1, "%ud.%ud.%ud", a[12], a[13],
                                 a[14]);
            }

        } else if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)
                   && (a[0] & 0xfe) != 0xfc          /* fc00::/7 */
                   && !(a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
        {
            p = ngx_snprintf(p, size - 1, "%xd:%xd:%xd",
                             (a[0] << 8) | a[1], (a[2] << 8) | a[3],
                             (a[4] << 8) | a[5]);
        }

        break;
#endif

    default:
        break;
    }

    *p = '\0';

    return p - (u_char *) buf;
}


/* 127/8, 10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16 */

static ngx_uint_t
ngx_http_distill_guard_local4(u_char *a)
{
    return a[0] == 127 || a[0] == 10
           || (a[0] == 172 && (a[1] & 0xf0) == 16)
           || (a[0] == 192 && a[1] == 168)
           || (a[0] == 100 && (a[1] & 0xc0) == 64)
           || (a[0] == 169 && a[1] == 254);
}


/*
 * An internal redirect clears the module contexts; the one of the main
 * request survives as the data of its pool cleanup, so a redirected
 * request is accounted once (the way the realip module keeps its ctx).
 */

static ngx_http_distill_guard_ctx_t *
ngx_http_distill_guard_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_distill_guard_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_distill_guard_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_distill_guard_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_distill_guard_module);
                break;
            }
        }
    }

    return ctx;
}


static void
ngx_http_distill_guard_cleanup(void *data)
{
    ngx_http_distill_guard_ctx_t  *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    /* a reply still on its way must not find this request */
    if (ctx->op) {
        ctx->op->data = NULL;
        ctx->op = NULL;
    }
}


static ngx_int_t
ngx_http_distill_guard_header_filter(ngx_http_request_t *r)
{
    u_char                             *p;
    size_t                              len;
    ngx_str_t                          *name;
    ngx_uint_t                          window, left;
    ngx_http_variable_value_t           v;
    ngx_http_distill_guard_ctx_t       *ctx;
    ngx_http_distill_guard_loc_conf_t  *dlcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_distill_guard_get_ctx(r);

    if (ctx == NULL || ctx->state != NGX_DG_STATE_DONE) {
        return ngx_http_next_header_filter(r);
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_distill_guard_module);

    if (ctx->refused && ctx->limit) {
        /* RFC 9110 Retry-After in whole seconds, rounded up */
        p = ngx_pnalloc(r->pool, 3 * NGX_INT_T_LEN + 64);
        if (p == NULL) {
            return NGX_ERROR;
        }

        left = (ctx->retry + 999) / 1000;
        len = ngx_sprintf(p, "%ui", ngx_max(left, 1)) - p;

        if (ngx_http_distill_guard_add_header(r, "Retry-After", p, len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* draft-ietf-httpapi-ratelimit-headers: quota and what is left */
        name = (ctx->refused == DG_REFUSED_RATE)
               ? &ngx_http_distill_guard_policies[0]
               : &ngx_http_distill_guard_policies[1];
        window = ctx->limit->per;

        p += len;
        len = ngx_sprintf(p, "\"%V\";q=%ui;w=%ui", name,
                          ctx->limit->rate + ctx->limit->burst, window) - p;

        if (ngx_http_distill_guard_add_header(r, "RateLimit-Policy", p, len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p += len;
        len = ngx_sprintf(p, "\"%V\";r=%ui;t=%ui", name, ctx->remaining,
                          ngx_max(left, 1)) - p;

        if (ngx_http_distill_guard_add_header(r, "RateLimit", p, len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (!dlcf->headers) {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_distill_guard_variable(r, &v, NGX_DG_VAR_SCORE) != NGX_OK
        || ngx_http_distill_guard_add_header(r, "X-Distill-Guard-Score",
                                             v.data, v.len) != NGX_OK
        || ngx_http_distill_guard_variable(r, &v, NGX_DG_VAR_ACTION)
           != NGX_OK
        || ngx_http_distill_guard_add_header(r, "X-Distill-Guard-Action",
                                             v.data, v.len) != NGX_OK
        || ngx_http_distill_guard_variable(r, &v, NGX_DG_VAR_SIGNALS)
           != NGX_OK
        || ngx_http_distill_guard_add_header(r, "X-Distill-Guard-Signals",
                                             v.data, v.len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_distill_guard_add_header(ngx_http_request_t *r, char *name,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = value;
    h->value.len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_distill_guard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                        *p;
    size_t                         len;
    char                           window[DG_PROFILE_JSON_MAX];
    ngx_http_distill_guard_ctx_t  *ctx;

    ctx = (r == r->main) ? ngx_http_distill_guard_get_ctx(r)
                         : ngx_http_distill_guard_get_ctx(r->main);

    if (ctx && data == NGX_DG_VAR_KEY_ID && ctx->key_id[0]) {
        /* known before the verdict: distill_guard_bypass may map it */
        v->data = (u_char *) ctx->key_id;
        v->len = DG_KEY_ID_LEN;
        goto found;
    }

    if (ctx == NULL || ctx->state != NGX_DG_STATE_DONE) {
        if (data == NGX_DG_VAR_ACTION) {
            v->data = (u_char *) dg_action_name(DG_ACTION_SKIP);
            v->len = ngx_strlen(v->data);
            goto found;
        }

        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_DG_VAR_FEATURES:

        if (ctx->action == DG_ACTION_SKIP) {
            v->not_found = 1;
            return NGX_OK;
        }

        if (ctx->features_json.data == NULL) {
            if (ctx->have_profile) {
                (void) dg_profile_json(&ctx->profile, window,
                                       sizeof(window));
            }

            p = ngx_pnalloc(r->pool, DG_FEATURES_JSON_MAX + sizeof(window));
            if (p == NULL) {
                return NGX_ERROR;
            }

            len = dg_features_json(&ctx->features,
                                   ctx->have_profile ? window : NULL,
                                   (char *) p,
                                   DG_FEATURES_JSON_MAX + sizeof(window));
            ctx->features_json.data = p;
            ctx->features_json.len = len;
        }

        v->data = ctx->features_json.data;
        v->len = ctx->features_json.len;
        break;

    case NGX_DG_VAR_SCORE:
        p = ngx_pnalloc(r->pool, sizeof("0.000") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%ui.%03ui",
                             (ngx_uint_t) ctx->score.score_milli / 1000,
                             (ngx_uint_t) ctx->score.score_milli % 1000)
                 - p;
        v->data = p;
        break;

    case NGX_DG_VAR_ACTION:
        v->data = (u_char *) dg_action_name(ctx->action);
        v->len = ngx_strlen(v->data);
        break;

    case NGX_DG_VAR_SIGNALS:
        p = ngx_pnalloc(r->pool, DG_SIGNALS_STR_MAX);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = dg_signals_str(ctx->signals, (char *) p,
                                DG_SIGNALS_STR_MAX);
        v->data = p;
        break;

    default: /* NGX_DG_VAR_KEY_ID */

        if (ctx->key_id[0] == '\0') {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = (u_char *) ctx->key_id;
        v->len = DG_KEY_ID_LEN;
        break;
    }

found:

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_distill_guard_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_distill_guard_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_distill_guard_init(ngx_conf_t *cf)
{
    ngx_str_t                            name;
    ngx_http_handler_pt                 *h;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_distill_guard_module);

    ngx_str_set(&name, "distill_guard");
    dmcf->shm_zone = ngx_shared_memory_add(cf, &name, dmcf->zone_size,
                                           &ngx_distill_guard_module);
    if (dmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    dmcf->shm_zone->init = ngx_dg_stats_init_zone;

#if (NGX_THREADS)
    /* nginx's "default" pool (32 threads) examines the large bodies */
    if (dmcf->examine_large) {
        dmcf->thread_pool = ngx_thread_pool_add(cf, NULL);
        if (dmcf->thread_pool == NULL) {
            return NGX_ERROR;
        }
    }
#endif

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_distill_guard_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_distill_guard_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_distill_guard_init_process(ngx_cycle_t *cycle)
{
    ngx_http_distill_guard_main_conf_t  *dmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_distill_guard_module);

    if (dmcf == NULL || !dmcf->enabled) {
        return NGX_OK;
    }

    /* without it every request makes the key schedule: no failure */
    ngx_http_distill_guard_hmac = dg_key_hmac_create(
                                      (char *) dmcf->secret.data,
                                      dmcf->secret.len);

    if (!dmcf->redis_set) {
        return NGX_OK;
    }

    /* without it every request asks Redis for the counts: no failure */
    ngx_http_distill_guard_fanout = ngx_alloc(sizeof(dg_fanout_cache_t),
                                              cycle->log);
    if (ngx_http_distill_guard_fanout) {
        dg_fanout_cache_init(ngx_http_distill_guard_fanout);
    }

    return ngx_dg_redis_init_process(cycle, dmcf);
}


static void
ngx_http_distill_guard_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dg_key_hmac_free(ngx_http_distill_guard_hmac);
    ngx_http_distill_guard_hmac = NULL;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_distill_guard_module);

    if (dmcf == NULL || !dmcf->redis_set || !dmcf->enabled) {
        return;
    }

    ngx_dg_redis_exit_process(cycle);
    ngx_dg_window_exit_process();

    if (ngx_http_distill_guard_fanout) {
        ngx_free(ngx_http_distill_guard_fanout);
        ngx_http_distill_guard_fanout = NULL;
    }
}
