/*
 * distill-guard: instance-wide counters in shared memory and the
 * distill_guard_stats endpoint (JSON, or Prometheus text).
 */

#include <jansson.h>

#include "ngx_distill_guard_module.h"


#define NGX_DG_LAT_MIN_US       16      /* bucket 0: up to 16 us */
#define NGX_DG_LAT_EXPOSED      22      /* buckets up to 33.6 s */
#define NGX_DG_PROM_MAX         8192


static ngx_int_t ngx_dg_stats_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_dg_stats_percentile(ngx_dg_stats_t *st,
    ngx_uint_t pct);
static u_char *ngx_dg_stats_json(ngx_http_request_t *r, ngx_dg_stats_t *st,
    size_t *len);
static u_char *ngx_dg_stats_prometheus(ngx_http_request_t *r,
    ngx_dg_stats_t *st, size_t *len);
static u_char *ngx_dg_stats_prom_latency(u_char *p, u_char *last,
    ngx_dg_stats_t *st);


static ngx_dg_stats_t  *ngx_dg_stats_ptr;



ngx_int_t
ngx_dg_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;
    ngx_dg_shctx_t   *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* reload: keep counting where the old cycle left off */
        sh = data;
        ngx_dg_limit_init_zone(shpool, &sh->limit, 0);
        goto done;
    }

    if (shm_zone->shm.exists) {
        sh = shpool->data;
        ngx_dg_limit_init_zone(shpool, &sh->limit, 0);
        goto done;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_dg_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_dg_limit_init_zone(shpool, &sh->limit, 1);

    shpool->data = sh;

    /* the limiter logs its own message when the zone is full */
    shpool->log_nomem = 0;

done:

    shm_zone->data = sh;
    ngx_dg_stats_ptr = &sh->stats;

    return NGX_OK;
}


ngx_dg_stats_t *
ngx_dg_stats(void)
{
    return ngx_dg_stats_ptr;
}


void
ngx_dg_stats_latency(uint64_t us)
{
    ngx_uint_t  i;
    uint64_t    bound;

    if (ngx_dg_stats_ptr == NULL) {
        return;
    }

    /*
     * log2 buckets, bucket i up to and including 16 << i us, as a
     * Prometheus "le" bound is: the percentiles are good to a factor of 2
     */
    for (i = 0, bound = NGX_DG_LAT_MIN_US;
         i < NGX_DG_LAT_BUCKETS - 1 && us > bound;
         i++, bound <<= 1)
    {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&ngx_dg_stats_ptr->lat[i], 1);
    (void) ngx_atomic_fetch_add(&ngx_dg_stats_ptr->lat_sum_us,
                                (ngx_atomic_int_t) us);
}


/* the signals behind one request's score, counted by name */

void
ngx_dg_stats_signals(uint32_t mask)
{
    ngx_uint_t  i;

    if (ngx_dg_stats_ptr == NULL) {
        return;
    }

    for (i = 0; i < DG_SIG_N; i++) {
        if (mask & ((uint32_t) 1 << i)) {
            (void) ngx_atomic_fetch_add(&ngx_dg_stats_ptr->signals[i], 1);
        }
    }
}


void
ngx_dg_stats_worker_state(ngx_uint_t state)
{
    if (ngx_dg_stats_ptr == NULL || ngx_worker >= NGX_DG_MAX_WORKERS) {
        return;
    }

    /* stored +1 so that 0 means "no such worker" */
    ngx_dg_stats_ptr->worker_state[ngx_worker] = state + 1;
}


char *
ngx_dg_stats_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_distill_guard_loc_conf_t  *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_dg_stats_handler;

    /*
     * reading the counters is not API traffic, even under a guarded
     * server, unless this location turned accounting on itself
     */
    if (dlcf->enable == NGX_CONF_UNSET) {
        dlcf->enable = 0;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_dg_stats_handler(ngx_http_request_t *r)
{
    u_char          *p;
    size_t           len;
    ngx_int_t        rc;
    ngx_str_t        format;
    ngx_buf_t       *b;
    ngx_chain_t      out;
    ngx_dg_stats_t  *st;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    st = ngx_dg_stats_ptr;
    if (st == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 10
        && ngx_strncmp(format.data, "prometheus", 10) == 0)
    {
        p = ngx_dg_stats_prometheus(r, st, &len);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        p = ngx_dg_stats_json(r, st, &len);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = p;
    b->last = p + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_uint_t
ngx_dg_stats_percentile(ngx_dg_stats_t *st, ngx_uint_t pct)
{
    ngx_uint_t  i, total, seen, want;

    total = 0;
    for (i = 0; i < NGX_DG_LAT_BUCKETS; i++) {
        total += st->lat[i];
    }

    if (total == 0) {
        return 0;
    }

    want = (total * pct + 99) / 100;
    seen = 0;

    for (i = 0; i < NGX_DG_LAT_BUCKETS; i++) {
        seen += st->lat[i];
        if (seen >= want) {
            break;
        }
    }

    /* the bucket's upper bound */
    return (ngx_uint_t) NGX_DG_LAT_MIN_US << ngx_min(i, 40);
}


static void
ngx_dg_stats_workers(ngx_dg_stats_t *st, ngx_uint_t n[3])
{
    ngx_uint_t  i, s;

    n[0] = n[1] = n[2] = 0;

    for (i = 0; i < NGX_DG_MAX_WORKERS; i++) {
        s = st->worker_state[i];
        if (s >= 1 && s <= 3) {
            n[s - 1]++;
        }
    }
}


static u_char *
ngx_dg_stats_json(ngx_http_request_t *r, ngx_dg_stats_t *st, size_t *len)
{
    char        *text;
    u_char      *p;
    json_t      *root, *redis, *signals;
    ngx_uint_t   i, w[3], count;

    ngx_dg_stats_workers(st, w);

    count = 0;
    for (i = 0; i < NGX_DG_LAT_BUCKETS; i++) {
        count += st->lat[i];
    }

    signals = json_object();
    if (signals == NULL) {
        return NULL;
    }

    for (i = 0; i < DG_SIG_N; i++) {
        if (json_object_set_new(signals, dg_signal_name(i),
                                json_integer((json_int_t) st->signals[i]))
            != 0)
        {
            json_decref(signals);
            return NULL;
        }
    }

    redis = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                      " s:I, s:I, s:I, s:I, s:I}",
                      "errors", (json_int_t) st->redis_errors,
                      "native", (json_int_t) st->redis_native,
                      "commits", (json_int_t) st->redis_commits,
                      "timeouts", (json_int_t) st->redis_timeouts,
                      "unavailable", (json_int_t) st->redis_unavailable,
                      "reconnects", (json_int_t) st->redis_reconnects,
                      "tls_handshakes",
                      (json_int_t) st->redis_tls_handshakes,
                      "tls_reused", (json_int_t) st->redis_tls_reused,
                      "latency_p50_us",
                      (json_int_t) ngx_dg_stats_percentile(st, 50),
                      "latency_p99_us",
                      (json_int_t) ngx_dg_stats_percentile(st, 99),
                      "latency_count", (json_int_t) count,
                      "latency_sum_us", (json_int_t) st->lat_sum_us,
                      "workers_ready", (json_int_t) w[2],
                      "workers_connecting", (json_int_t) w[1],
                      "workers_down", (json_int_t) w[0]);

    root = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                     " s:I, s:o, s:o}",
                     "requests", (json_int_t) st->requests,
                     "passed", (json_int_t) st->passed,
                     "tagged", (json_int_t) st->tagged,
                     "throttled", (json_int_t) st->throttled,
                     "unavailable", (json_int_t) st->unavailable,
                     "refused", (json_int_t) st->refused,
                     "would_refuse", (json_int_t) st->would_refuse,
                     "skipped", (json_int_t) st->skipped,
                     "truncated", (json_int_t) st->truncated,
                     "state_changes", (json_int_t) st->state_changes,
                     "limit_evicted", (json_int_t) st->limit_evicted,
                     "signals", signals,
                     "redis", redis);
    if (root == NULL) {
        return NULL;
    }

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (text == NULL) {
        return NULL;
    }

    *len = ngx_strlen(text) + 1;
    p = ngx_pnalloc(r->pool, *len);

    if (p) {
        ngx_memcpy(p, text, *len - 1);
        p[*len - 1] = '\n';
    }

    free(text);

    return p;
}


/*
 * The text exposition format: every metric with HELP and TYPE, counters
 * ending in _total, the Redis round trip as a histogram in seconds.
 */

static u_char *
ngx_dg_stats_prometheus(ngx_http_request_t *r, ngx_dg_stats_t *st,
    size_t *len)
{
    u_char      *p, *start, *last;
    ngx_uint_t   i, w[3];

    ngx_dg_stats_workers(st, w);

    start = ngx_pnalloc(r->pool, NGX_DG_PROM_MAX);
    if (start == NULL) {
        return NULL;
    }

    last = start + NGX_DG_PROM_MAX;

    p = ngx_slprintf(start, last,
        "# HELP distill_guard_requests_total Requests by action.\n"
        "# TYPE distill_guard_requests_total counter\n"
        "distill_guard_requests_total{action=\"pass\"} %uA\n"
        "distill_guard_requests_total{action=\"tag\"} %uA\n"
        "distill_guard_requests_total{action=\"throttle\"} %uA\n"
        "distill_guard_requests_total{action=\"skip\"} %uA\n"
        "distill_guard_requests_total{action=\"unavailable\"} %uA\n"
        "# HELP distill_guard_seen_total Requests seen by the module.\n"
        "# TYPE distill_guard_seen_total counter\n"
        "distill_guard_seen_total %uA\n"
        "# HELP distill_guard_refused_total Requests refused.\n"
        "# TYPE distill_guard_refused_total counter\n"
        "distill_guard_refused_total %uA\n"
        "# HELP distill_guard_throttled_total Requests refused by the "
        "throttle or the plain rate.\n"
        "# TYPE distill_guard_throttled_total counter\n"
        "distill_guard_throttled_total %uA\n"
        "# HELP distill_guard_would_refuse_total Refusals shadow mode "
        "let through.\n"
        "# TYPE distill_guard_would_refuse_total counter\n"
        "distill_guard_would_refuse_total %uA\n"
        "# HELP distill_guard_state_changes_total Keys changing state.\n"
        "# TYPE distill_guard_state_changes_total counter\n"
        "distill_guard_state_changes_total %uA\n"
        "# HELP distill_guard_truncated_total Bodies cut at body_max.\n"
        "# TYPE distill_guard_truncated_total counter\n"
        "distill_guard_truncated_total %uA\n"
        "# HELP distill_guard_limit_evicted_total Keys the fallback "
        "limiter evicted from its full zone.\n"
        "# TYPE distill_guard_limit_evicted_total counter\n"
        "distill_guard_limit_evicted_total %uA\n",
        st->passed, st->tagged, st->throttled,
        st->skipped, st->unavailable, st->requests, st->refused,
        st->throttled,
        st->would_refuse, st->state_changes, st->truncated,
        st->limit_evicted);

    p = ngx_slprintf(p, last,
        "# HELP distill_guard_signals_total Scored requests by the "
        "signals behind the score.\n"
        "# TYPE distill_guard_signals_total counter\n");

    for (i = 0; i < DG_SIG_N; i++) {
        p = ngx_slprintf(p, last,
                         "distill_guard_signals_total{signal=\"%s\"} %uA\n",
                         dg_signal_name(i), st->signals[i]);
    }

    p = ngx_slprintf(p, last,
        "# HELP distill_guard_redis_errors_total Redis failures.\n"
        "# TYPE distill_guard_redis_errors_total counter\n"
        "distill_guard_redis_errors_total{kind=\"error\"} %uA\n"
        "distill_guard_redis_errors_total{kind=\"timeout\"} %uA\n"
        "distill_guard_redis_errors_total{kind=\"unavailable\"} %uA\n"
        "# HELP distill_guard_redis_reconnects_total Reconnect attempts.\n"
        "# TYPE distill_guard_redis_reconnects_total counter\n"
        "distill_guard_redis_reconnects_total %uA\n"
        "# HELP distill_guard_redis_native_total Windows read and written "
        "without the window script.\n"
        "# TYPE distill_guard_redis_native_total counter\n"
        "distill_guard_redis_native_total %uA\n"
        "# HELP distill_guard_redis_commits_total Folds of a key's pending "
        "log the gateway sent back.\n"
        "# TYPE distill_guard_redis_commits_total counter\n"
        "distill_guard_redis_commits_total %uA\n"
        "# HELP distill_guard_redis_tls_handshakes_total TLS handshakes "
        "with Redis, and of them the resumed sessions.\n"
        "# TYPE distill_guard_redis_tls_handshakes_total counter\n"
        "distill_guard_redis_tls_handshakes_total{session=\"new\"} %uA\n"
        "distill_guard_redis_tls_handshakes_total{session=\"reused\"} %uA\n"
        "# HELP distill_guard_redis_workers Workers by connection state.\n"
        "# TYPE distill_guard_redis_workers gauge\n"
        "distill_guard_redis_workers{state=\"ready\"} %ui\n"
        "distill_guard_redis_workers{state=\"connecting\"} %ui\n"
        "distill_guard_redis_workers{state=\"down\"} %ui\n",
        st->redis_errors, st->redis_timeouts, st->redis_unavailable,
        st->redis_reconnects, st->redis_native, st->redis_commits,
        st->redis_tls_handshakes - st->redis_tls_reused,
        st->redis_tls_reused, w[2], w[1], w[0]);

    p = ngx_dg_stats_prom_latency(p, last, st);

    if (p == last) {
        /* cannot happen with DG_SIG_N names: never send a cut exposition */
        return NULL;
    }

    *len = p - start;

    return start;
}


static u_char *
ngx_dg_stats_prom_latency(u_char *p, u_char *last, ngx_dg_stats_t *st)
{
    uint64_t    bound;
    ngx_uint_t  i, n[NGX_DG_LAT_BUCKETS], cum, sum;

    /* one read of each bucket: the exposed counts must add up */
    for (i = 0; i < NGX_DG_LAT_BUCKETS; i++) {
        n[i] = st->lat[i];
    }

    sum = st->lat_sum_us;

    p = ngx_slprintf(p, last,
        "# HELP distill_guard_redis_latency_seconds Round trip of a "
        "request's Redis commands.\n"
        "# TYPE distill_guard_redis_latency_seconds histogram\n");

    cum = 0;
    bound = NGX_DG_LAT_MIN_US;

    for (i = 0; i < NGX_DG_LAT_EXPOSED; i++, bound <<= 1) {
        cum += n[i];
        p = ngx_slprintf(p, last,
                         "distill_guard_redis_latency_seconds_bucket"
                         "{le=\"%uL.%06uL\"} %ui\n",
                         bound / 1000000, bound % 1000000, cum);
    }

    for ( /* void */ ; i < NGX_DG_LAT_BUCKETS; i++) {
        cum += n[i];
    }

    return ngx_slprintf(p, last,
                        "distill_guard_redis_latency_seconds_bucket"
                        "{le=\"+Inf\"} %ui\n"
                        "distill_guard_redis_latency_seconds_sum "
                        "%ui.%06ui\n"
                        "distill_guard_redis_latency_seconds_count %ui\n",
                        cum, sum / 1000000, sum % 1000000, cum);
}
