/*
 * distill-guard: configuration: the directive handlers, the creation and
 * merging of the configuration structures, and their checks.  The one
 * directive table is in ngx_distill_guard_module.c.
 */

#include <openssl/sha.h>

#include "ngx_distill_guard_module.h"


static ngx_int_t ngx_http_distill_guard_parse_milli(ngx_str_t *value,
    ngx_uint_t max);
static ngx_int_t ngx_dg_conf_flag(ngx_str_t *v, size_t skip,
    ngx_flag_t *flag);
static char *ngx_dg_redis_tls(ngx_conf_t *cf, ngx_dg_redis_conf_t *rc);


void *
ngx_http_distill_guard_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_distill_guard_main_conf_t  *dmcf;

    dmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_distill_guard_main_conf_t));
    if (dmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dmcf->secret = { 0, NULL };
     *     dmcf->prefix = { 0, NULL };
     *     dmcf->redis_set = 0;
     */

    dmcf->window = NGX_CONF_UNSET_MSEC;
    dmcf->zone_size = NGX_CONF_UNSET_SIZE;
    dmcf->redis.db = NGX_CONF_UNSET;
    dmcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;
    dmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    dmcf->redis.max_inflight = NGX_CONF_UNSET_UINT;
    dmcf->redis.cluster = NGX_CONF_UNSET;
    dmcf->redis.native = NGX_CONF_UNSET;
    dmcf->redis.tls = NGX_CONF_UNSET;

    return dmcf;
}


static void
ngx_http_distill_guard_sha1(const char *text, size_t len, char *out)
{
    u_char  md[SHA_DIGEST_LENGTH];

    SHA1((const u_char *) text, len, md);
    ngx_hex_dump((u_char *) out, md, SHA_DIGEST_LENGTH);
    out[DG_SHA1_HEX_LEN] = '\0';
}


char *
ngx_http_distill_guard_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_distill_guard_main_conf_t  *dmcf = conf;

    if (dmcf->prefix.data == NULL) {
        ngx_str_set(&dmcf->prefix, "dg");
    }

    ngx_conf_init_msec_value(dmcf->window, 3600 * 1000);
    ngx_conf_init_size_value(dmcf->zone_size, 1024 * 1024);
    ngx_conf_init_value(dmcf->redis.db, 0);
    ngx_conf_init_msec_value(dmcf->redis.connect_timeout, 100);
    ngx_conf_init_msec_value(dmcf->redis.timeout, 50);
    ngx_conf_init_uint_value(dmcf->redis.max_inflight, 4096);
    ngx_conf_init_value(dmcf->redis.cluster, 0);
    ngx_conf_init_value(dmcf->redis.native, 1);
    ngx_conf_init_value(dmcf->redis.tls, 0);

    if (dmcf->window < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"distill_guard_window\" must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (dmcf->prefix.len == 0 || dmcf->prefix.len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"distill_guard_redis_prefix\" must be 1 to 64 "
                           "characters");
        return NGX_CONF_ERROR;
    }

    /* EVALSHA needs no SCRIPT LOAD reply: the digest is known here */
    ngx_http_distill_guard_sha1(dg_window_lua, dg_window_lua_len,
                                dmcf->window_sha);
    ngx_http_distill_guard_sha1(dg_fanout_lua, dg_fanout_lua_len,
                                dmcf->fanout_sha);

    return NGX_CONF_OK;
}


void *
ngx_http_distill_guard_create_loc_conf(ngx_conf_t *cf)
{
    ngx_uint_t                          i;
    ngx_http_distill_guard_loc_conf_t  *dlcf;

    dlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_distill_guard_loc_conf_t));
    if (dlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dlcf->key = NULL;
     *     dlcf->cot_patterns = NULL;
     *     dlcf->cot = NULL;
     *     dlcf->bypass = NULL;
     */

    dlcf->enable = NGX_CONF_UNSET;
    dlcf->body_max = NGX_CONF_UNSET_SIZE;
    dlcf->fail = NGX_CONF_UNSET_UINT;
    dlcf->min_requests = NGX_CONF_UNSET_UINT;
    dlcf->tag_threshold = NGX_CONF_UNSET_UINT;
    dlcf->throttle_threshold = NGX_CONF_UNSET_UINT;
    dlcf->throttle.period = NGX_CONF_UNSET_MSEC;
    dlcf->rate.period = NGX_CONF_UNSET_MSEC;
    dlcf->penalty = NGX_CONF_UNSET_MSEC;
    dlcf->reject_status = NGX_CONF_UNSET_UINT;
    dlcf->mode = NGX_CONF_UNSET_UINT;
    dlcf->headers = NGX_CONF_UNSET;
    dlcf->log_level = NGX_CONF_UNSET_UINT;

    for (i = 0; i < DG_SIG_SCORED; i++) {
        dlcf->weight[i] = NGX_CONF_UNSET;
    }

    return dlcf;
}


char *
ngx_http_distill_guard_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_distill_guard_loc_conf_t  *prev = parent;
    ngx_http_distill_guard_loc_conf_t  *conf = child;

    ngx_uint_t                            i;
    ngx_array_t                          *all;
    ngx_regex_t                         **re;
    ngx_http_distill_guard_main_conf_t   *dmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_size_value(conf->body_max, prev->body_max, 64 * 1024);
    ngx_conf_merge_uint_value(conf->fail, prev->fail, NGX_DG_FAIL_OPEN);
    ngx_conf_merge_uint_value(conf->min_requests, prev->min_requests, 20);
    ngx_conf_merge_uint_value(conf->tag_threshold, prev->tag_threshold, 500);
    ngx_conf_merge_uint_value(conf->throttle_threshold,
                              prev->throttle_threshold, 800);
    ngx_conf_merge_uint_value(conf->reject_status, prev->reject_status,
                              NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_DG_MODE_ENFORCE);
    ngx_conf_merge_value(conf->headers, prev->headers, 1);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_NOTICE);

    if (conf->bypass == NULL) {
        conf->bypass = prev->bypass;
    }

    if (conf->throttle.period == NGX_CONF_UNSET_MSEC) {
        if (prev->throttle.period == NGX_CONF_UNSET_MSEC) {
            /* 6r/m */
            prev->throttle.period = 10000;
            prev->throttle.burst = 0;
            prev->throttle.rate = 6;
            prev->throttle.per = 60;
        }

        conf->throttle = prev->throttle;
    }

    if (conf->rate.period == NGX_CONF_UNSET_MSEC) {
        if (prev->rate.period == NGX_CONF_UNSET_MSEC) {
            ngx_memzero(&prev->rate, sizeof(ngx_dg_rate_t));
        }

        conf->rate = prev->rate;
    }

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_distill_guard_module);

    ngx_conf_merge_msec_value(conf->penalty, prev->penalty,
                              dmcf->window != NGX_CONF_UNSET_MSEC
                              ? dmcf->window : 3600 * 1000);

    if (conf->tag_threshold > conf->throttle_threshold) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"distill_guard_tag_threshold\" %ui.%03ui is "
                           "above \"distill_guard_throttle_threshold\" "
                           "%ui.%03ui",
                           conf->tag_threshold / 1000,
                           conf->tag_threshold % 1000,
                           conf->throttle_threshold / 1000,
                           conf->throttle_threshold % 1000);
        return NGX_CONF_ERROR;
    }

    dg_score_conf_default(&conf->score);

    for (i = 0; i < DG_SIG_SCORED; i++) {
        ngx_conf_merge_value(conf->weight[i], prev->weight[i],
                             (ngx_int_t) conf->score.weight_milli[i]);
        conf->score.weight_milli[i] = (uint32_t) conf->weight[i];
    }

    conf->score.min_requests = (uint32_t) conf->min_requests;

    /* NULL: the built-in default, Authorization or else X-Api-Key */
    if (conf->key == NULL) {
        conf->key = prev->key;
    }

    /*
     * A level's own patterns add to those it inherits, so a pattern set at
     * http level still counts in a location that adds one more.
     */

    if (conf->cot_patterns == NULL) {
        conf->cot_patterns = prev->cot_patterns;

    } else if (prev->cot_patterns) {
        all = ngx_array_create(cf->pool, prev->cot_patterns->nelts
                               + conf->cot_patterns->nelts,
                               sizeof(ngx_regex_t *));
        if (all == NULL) {
            return NGX_CONF_ERROR;
        }

        /* preallocated above: the pushes cannot fail */
        re = ngx_array_push_n(all, prev->cot_patterns->nelts);
        ngx_memcpy(re, prev->cot_patterns->elts,
                   prev->cot_patterns->nelts * sizeof(ngx_regex_t *));

        re = ngx_array_push_n(all, conf->cot_patterns->nelts);
        ngx_memcpy(re, conf->cot_patterns->elts,
                   conf->cot_patterns->nelts * sizeof(ngx_regex_t *));

        conf->cot_patterns = all;
    }

    if (conf->enable) {
        if (dmcf->secret.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"distill_guard\" is on but "
                               "\"distill_guard_secret\" is not set");
            return NGX_CONF_ERROR;
        }

        dmcf->enabled = 1;

        if (conf->body_max > NGX_DG_EXAMINE_INLINE_MAX) {
            dmcf->examine_large = 1;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_distill_guard_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_distill_guard_main_conf_t  *dmcf = conf;

    if (dmcf->redis_set) {
        return "is duplicate";
    }

    dmcf->redis_set = 1;

    return ngx_dg_redis_parse(cf, &dmcf->redis, cf->args->elts,
                              cf->args->nelts);
}


/* compiled as every nginx regex is: PCRE, here caseless */

char *
ngx_http_distill_guard_cot_pattern(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_distill_guard_loc_conf_t  *dlcf = conf;

    u_char                err[NGX_MAX_CONF_ERRSTR];
    ngx_str_t            *value;
    ngx_regex_t         **re;
    ngx_regex_compile_t   rc;

    value = cf->args->elts;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = value[1];
    rc.pool = cf->pool;
    rc.options = NGX_REGEX_CASELESS;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = err;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid regex \"%V\" in \"%V\": %V",
                           &value[1], &cmd->name, &rc.err);
        return NGX_CONF_ERROR;
    }

    if (dlcf->cot_patterns == NULL) {
        dlcf->cot_patterns = ngx_array_create(cf->pool, 4,
                                              sizeof(ngx_regex_t *));
        if (dlcf->cot_patterns == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    re = ngx_array_push(dlcf->cot_patterns);
    if (re == NULL) {
        return NGX_CONF_ERROR;
    }

    *re = rc.regex;

    return NGX_CONF_OK;
}


char *
ngx_http_distill_guard_weight(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_distill_guard_loc_conf_t  *dlcf = conf;

    int         sig;
    ngx_int_t   w;
    ngx_str_t  *value;

    value = cf->args->elts;

    sig = dg_signal_by_name((char *) value[1].data, value[1].len);

    if (sig < 0 || sig >= DG_SIG_SCORED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown signal \"%V\" in \"%V\", it must be one "
                           "of coverage, template, fanout, single_turn, cot, "
                           "regular, volume", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (dlcf->weight[sig] != NGX_CONF_UNSET) {
        return "is duplicate for this signal";
    }

    w = ngx_http_distill_guard_parse_milli(&value[2], 10000);

    if (w == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid weight \"%V\" in \"%V\", it must be a "
                           "number from 0 to 10", &value[2], &cmd->name);
        return NGX_CONF_ERROR;
    }

    dlcf->weight[sig] = w;

    return NGX_CONF_OK;
}


char *
ngx_http_distill_guard_threshold(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_int_t    t;
    ngx_str_t   *value;
    ngx_uint_t  *fp;

    fp = (ngx_uint_t *) (p + cmd->offset);

    if (*fp != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    t = ngx_http_distill_guard_parse_milli(&value[1], 1000);

    if (t == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid threshold \"%V\" in \"%V\", it must be "
                           "a number from 0 to 1", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    *fp = t;

    return NGX_CONF_OK;
}


/* "0.35" -> 350 with nginx's ngx_atofp: more than three decimals fail */

static ngx_int_t
ngx_http_distill_guard_parse_milli(ngx_str_t *value, ngx_uint_t max)
{
    ngx_int_t  n;

    n = ngx_atofp(value->data, value->len, 3);

    if (n == NGX_ERROR || (ngx_uint_t) n > max) {
        return NGX_ERROR;
    }

    return n;
}


/* "6r/m" or "10r/s", and burst=N for the plain rate */

char *
ngx_http_distill_guard_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    size_t          len;
    ngx_int_t       n, burst;
    ngx_str_t      *value;
    ngx_uint_t      per;
    ngx_dg_rate_t  *rate;

    rate = (ngx_dg_rate_t *) (p + cmd->offset);

    if (rate->period != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;
    len = value[1].len;
    per = 0;

    if (len > 3 && ngx_strncmp(value[1].data + len - 3, "r/s", 3) == 0) {
        per = 1;

    } else if (len > 3
               && ngx_strncmp(value[1].data + len - 3, "r/m", 3) == 0)
    {
        per = 60;
    }

    n = per ? ngx_atoi(value[1].data, len - 3) : NGX_ERROR;

    if (n <= 0 || (ngx_uint_t) n > per * 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\" in \"%V\", it must look "
                           "like 6r/m or 10r/s, at most 1000r/s",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    burst = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(cmd->name.data, "distill_guard_rate") != 0
            || ngx_strncmp(value[2].data, "burst=", 6) != 0
            || (burst = ngx_atoi(value[2].data + 6, value[2].len - 6))
               == NGX_ERROR)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\"",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    rate->period = per * 1000 / n;
    rate->burst = burst;
    rate->rate = n;
    rate->per = per;

    return NGX_CONF_OK;
}


char *
ngx_http_distill_guard_secret_check(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *s = data;

    if (s->len == 0) {
        return "must not be empty";
    }

    return NGX_CONF_OK;
}


char *
ngx_http_distill_guard_body_max(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_distill_guard_loc_conf_t  *dlcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (dlcf->body_max != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = ngx_parse_size(&value[1]);

    if (size <= 0 || size > NGX_DG_BODY_MAX_LIMIT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"%V\", it must be "
                           "between 1 and 16m", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    dlcf->body_max = (size_t) size;

    return NGX_CONF_OK;
}


/* distill_guard_zone 10m: sized as limit_req_zone's zone= is */

char *
ngx_http_distill_guard_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_distill_guard_main_conf_t  *dmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (dmcf->zone_size != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"%V\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "size \"%V\" in \"%V\" is too small, it must "
                           "be at least %uzk", &value[1], &cmd->name,
                           8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    dmcf->zone_size = (size_t) size;

    return NGX_CONF_OK;
}


/*
 * distill_guard_redis <host:port | unix:path> [param=value ...]: the
 * address is resolved here, once (a worker must not resolve).
 */

char *
ngx_dg_redis_parse(ngx_conf_t *cf, ngx_dg_redis_conf_t *rc, ngx_str_t *value,
    ngx_uint_t n)
{
    ngx_int_t             num;
    ngx_str_t             s, host;
    ngx_url_t             u;
    ngx_uint_t            i, k, tls_opts, unix_addr;
    ngx_dg_redis_addr_t  *a;

    rc->tls_verify = NGX_CONF_UNSET;
    tls_opts = 0;
    unix_addr = 0;
    ngx_str_null(&host);

    if (ngx_array_init(&rc->addrs, cf->pool, 2, sizeof(ngx_dg_redis_addr_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /*
     * The addresses: the first argument, and the host:port ones after it
     * (a cluster's seeds); a name that resolves to several addresses
     * gives them all
     */
    for (i = 1; i < n; i++) {

        if (i > 1
            && (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
                || ngx_strlchr(value[i].data, value[i].data + value[i].len,
                               ':')
                   == NULL))
        {
            break;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = value[i];
        u.default_port = 6379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid redis address \"%V\"%s%s",
                               &value[i], u.err ? ": " : "",
                               u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        if (u.family == AF_UNIX) {
            unix_addr = 1;
        }

        if (host.len == 0) {
            host = u.host;
        }

        for (k = 0; k < u.naddrs; k++) {
            a = ngx_array_push(&rc->addrs);
            if (a == NULL) {
                return NGX_CONF_ERROR;
            }

            /* the name as written for the first, so logs read as the
             * configuration does; the address itself for the others */
            if (k == 0) {
                a->name = value[i];

            } else {
                a->name = u.addrs[k].name;
            }

            a->host = u.host;
            ngx_memcpy(&a->sockaddr, u.addrs[k].sockaddr,
                       u.addrs[k].socklen);
            a->socklen = u.addrs[k].socklen;
        }
    }

    rc->name = value[1];

    if (rc->addrs.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"distill_guard_redis\" needs an address first");
        return NGX_CONF_ERROR;
    }

    if (rc->addrs.nelts > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many redis addresses (at most 64)");
        return NGX_CONF_ERROR;
    }

    for ( /* void */ ; i < n; i++) {

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

        if (ngx_strncmp(value[i].data, "cluster=", 8) == 0) {
            if (ngx_dg_conf_flag(&value[i], 8, &rc->cluster) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "native=", 7) == 0) {
            if (ngx_dg_conf_flag(&value[i], 7, &rc->native) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "tls=", 4) == 0) {
            if (ngx_dg_conf_flag(&value[i], 4, &rc->tls) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        tls_opts++;

        if (ngx_strncmp(value[i].data, "tls_verify=", 11) == 0) {
            if (ngx_dg_conf_flag(&value[i], 11, &rc->tls_verify) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_ca=", 7) == 0
            && value[i].len > 7)
        {
            rc->tls_ca.data = value[i].data + 7;
            rc->tls_ca.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_name=", 9) == 0
            && value[i].len > 9)
        {
            rc->tls_name.data = value[i].data + 9;
            rc->tls_name.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_cert=", 9) == 0
            && value[i].len > 9)
        {
            rc->tls_cert.data = value[i].data + 9;
            rc->tls_cert.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_key=", 8) == 0
            && value[i].len > 8)
        {
            rc->tls_key.data = value[i].data + 8;
            rc->tls_key.len = value[i].len - 8;
            continue;
        }

        goto invalid;
    }

    if (rc->user.len && rc->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"user=\" needs \"password=\"");
        return NGX_CONF_ERROR;
    }

    if (rc->cluster == 1 && (unix_addr || rc->db > 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"cluster=on\" takes host:port seeds "
                           "and no \"db=\" (a cluster has database 0 only)");
        return NGX_CONF_ERROR;
    }

    if (rc->cluster != 1 && rc->addrs.nelts > 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"distill_guard_redis\" has %ui addresses: "
                           "more than one is for \"cluster=on\" (its "
                           "seeds)", rc->addrs.nelts);
        return NGX_CONF_ERROR;
    }

    if (rc->tls != 1) {
        if (tls_opts) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "redis \"tls_*\" parameters need \"tls=on\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (unix_addr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"tls=on\" takes a host:port, not a unix "
                           "socket");
        return NGX_CONF_ERROR;
    }

    if ((rc->tls_cert.len == 0) != (rc->tls_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"tls_cert=\" and \"tls_key=\" go "
                           "together");
        return NGX_CONF_ERROR;
    }

    if (rc->tls_verify == NGX_CONF_UNSET) {
        rc->tls_verify = 1;
    }

    return ngx_dg_redis_tls(cf, rc);

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


static ngx_int_t
ngx_dg_conf_flag(ngx_str_t *v, size_t skip, ngx_flag_t *flag)
{
    if (v->len - skip == 2 && ngx_strncmp(v->data + skip, "on", 2) == 0) {
        *flag = 1;
        return NGX_OK;
    }

    if (v->len - skip == 3 && ngx_strncmp(v->data + skip, "off", 3) == 0) {
        *flag = 0;
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* an IP address, which a certificate names apart from host names */

ngx_uint_t
ngx_dg_conf_is_ip(u_char *name, size_t len)
{
#if (NGX_HAVE_INET6)
    u_char  buf[sizeof(struct in6_addr)];

    if (ngx_inet6_addr(name, len, buf) == NGX_OK) {
        return 1;
    }
#endif

    return ngx_inet_addr(name, len) != INADDR_NONE;
}


#if (NGX_SSL)

static void
ngx_dg_redis_tls_cleanup(void *data)
{
    SSL_CTX_free(data);
}


/* a file of the configuration, as a NUL-terminated full path */

static char *
ngx_dg_redis_tls_file(ngx_conf_t *cf, ngx_str_t *name, const char *what)
{
    ngx_str_t  full;

    full = *name;

    if (ngx_conf_full_name(cf->cycle, &full, 1) != NGX_OK) {
        return NULL;
    }

    if (access((char *) full.data, R_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "redis \"%s\" file \"%s\" cannot be read", what,
                           full.data);
        return NULL;
    }

    return (char *) full.data;
}


static char *
ngx_dg_redis_tls(ngx_conf_t *cf, ngx_dg_redis_conf_t *rc)
{
    u_char              *name;
    char                *ca, *cert, *key;
    SSL_CTX             *ctx;
    ngx_pool_cleanup_t  *cln;

    /* X509_VERIFY_PARAM and SNI take C strings; without tls_name= each
     * node is checked against its own host (the transport) */
    if (rc->tls_name.len) {
        name = ngx_pnalloc(cf->pool, rc->tls_name.len + 1);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(name, rc->tls_name.data, rc->tls_name.len);
        name[rc->tls_name.len] = '\0';
        rc->tls_name.data = name;

        rc->tls_name_ip = ngx_dg_conf_is_ip(name, rc->tls_name.len);
    }

    ca = NULL;
    cert = NULL;
    key = NULL;

    if ((rc->tls_ca.len
         && (ca = ngx_dg_redis_tls_file(cf, &rc->tls_ca, "tls_ca")) == NULL)
        || (rc->tls_cert.len
            && ((cert = ngx_dg_redis_tls_file(cf, &rc->tls_cert, "tls_cert"))
                == NULL
                || (key = ngx_dg_redis_tls_file(cf, &rc->tls_key, "tls_key"))
                   == NULL)))
    {
        return NGX_CONF_ERROR;
    }

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0, "SSL_CTX_new() failed");
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        SSL_CTX_free(ctx);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_dg_redis_tls_cleanup;
    cln->data = ctx;

    (void) SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);

    /* a reply in one read() rather than a header, then a record */
    SSL_CTX_set_read_ahead(ctx, 1);

    /* a session per node is kept by hand (SSL_get1_session) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT
                                        | SSL_SESS_CACHE_NO_INTERNAL_STORE);

    if (rc->tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

        if ((ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
            || (ca == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1))
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "redis \"tls_ca\": cannot load \"%s\"",
                          ca ? ca : "the system's CA certificates");
            return NGX_CONF_ERROR;
        }

    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }

    if (cert
        && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
            || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx) != 1))
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "redis \"tls_cert\" \"%s\" and \"tls_key\" \"%s\" "
                      "cannot be used", cert, key);
        return NGX_CONF_ERROR;
    }

    rc->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rc->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->ssl->ctx = ctx;
    rc->ssl->log = cf->log;

    return NGX_CONF_OK;
}

#else

static char *
ngx_dg_redis_tls(ngx_conf_t *cf, ngx_dg_redis_conf_t *rc)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "redis \"tls=on\" needs nginx built with OpenSSL");

    return NGX_CONF_ERROR;
}

#endif
