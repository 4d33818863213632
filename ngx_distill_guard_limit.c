/*
 * distill-guard: the node-local fallback limiter.
 *
 * While Redis answers, it is the one place that holds a key's penalty and
 * rate state.  Each node mirrors here the penalties Redis reports, so that
 * when Redis goes away a throttled key stays throttled and the plain
 * per-key rate stays in force on every node, each node on its own.  The
 * tree lives in the module's shared zone, bounded by it: when the zone is
 * full the least recently used key is evicted.
 */

#include "ngx_distill_guard_module.h"


typedef struct {
    u_char                      color;
    u_char                      dummy;
    u_short                     len;
    ngx_queue_t                 queue;
    ngx_msec_t                  last;
    ngx_msec_t                  penalty_until;
    ngx_msec_t                  tat_throttle;
    ngx_msec_t                  tat_rate;
    u_char                      key_id[DG_KEY_ID_LEN];
} ngx_dg_limit_node_t;


static void ngx_dg_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_dg_limit_node_t *ngx_dg_limit_lookup(const char *key_id,
    ngx_uint_t create);
static void ngx_dg_limit_expire(ngx_uint_t force);
static ngx_int_t ngx_dg_limit_gcra(ngx_msec_t *tat, ngx_dg_rate_t *rate,
    ngx_msec_t now, ngx_msec_t *retry, ngx_uint_t *remaining);


static ngx_slab_pool_t    *ngx_dg_limit_pool;
static ngx_dg_limit_sh_t  *ngx_dg_limit_sh;


/* the zone is the module's (ngx_distill_guard_stats.c); this part ours */

void
ngx_dg_limit_init_zone(ngx_slab_pool_t *shpool, ngx_dg_limit_sh_t *sh,
    ngx_uint_t fresh)
{
    if (fresh) {
        ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                        ngx_dg_limit_rbtree_insert_value);
        ngx_queue_init(&sh->queue);
    }

    ngx_dg_limit_pool = shpool;
    ngx_dg_limit_sh = sh;
}


static void
ngx_dg_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t    **p;
    ngx_dg_limit_node_t   *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            n = (ngx_dg_limit_node_t *) &node->color;
            t = (ngx_dg_limit_node_t *) &temp->color;

            p = (ngx_memcmp(n->key_id, t->key_id, DG_KEY_ID_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


void
ngx_dg_limit_mirror(const char *key_id, ngx_msec_t penalty_left,
    ngx_msec_t next)
{
    ngx_dg_limit_node_t  *lr;

    if (ngx_dg_limit_sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&ngx_dg_limit_pool->mutex);

    lr = ngx_dg_limit_lookup(key_id, penalty_left > 0);

    if (lr) {
        lr->penalty_until = penalty_left ? ngx_current_msec + penalty_left
                                         : 0;

        /* where Redis's throttle stands, so a refused key stays refused */
        lr->tat_throttle = ngx_current_msec + next;
    }

    ngx_shmtx_unlock(&ngx_dg_limit_pool->mutex);
}


/*
 * NGX_OK: allowed; NGX_BUSY: refused by the throttle of a penalised key;
 * NGX_DECLINED: refused by the plain rate.
 */

ngx_int_t
ngx_dg_limit_check(const char *key_id, ngx_dg_rate_t *throttle,
    ngx_dg_rate_t *rate, ngx_msec_t *retry, ngx_uint_t *remaining)
{
    ngx_int_t             rc;
    ngx_msec_t            now;
    ngx_dg_limit_node_t  *lr;

    *retry = 0;
    *remaining = 0;

    if (ngx_dg_limit_sh == NULL) {
        return NGX_OK;
    }

    now = ngx_current_msec;
    rc = NGX_OK;

    ngx_shmtx_lock(&ngx_dg_limit_pool->mutex);

    ngx_dg_limit_expire(0);

    /* only a plain rate needs a node for a key never penalised */
    lr = ngx_dg_limit_lookup(key_id, rate->period != 0);

    if (lr == NULL) {
        goto done;
    }

    if (rate->period
        && ngx_dg_limit_gcra(&lr->tat_rate, rate, now, retry, remaining)
           != NGX_OK)
    {
        rc = NGX_DECLINED;
        goto done;
    }

    if (lr->penalty_until && (ngx_msec_int_t) (lr->penalty_until - now) > 0
        && ngx_dg_limit_gcra(&lr->tat_throttle, throttle, now, retry,
                             remaining)
           != NGX_OK)
    {
        rc = NGX_BUSY;
    }

done:

    ngx_shmtx_unlock(&ngx_dg_limit_pool->mutex);

    return rc;
}


/* the generic cell rate algorithm on a theoretical arrival time */

static ngx_int_t
ngx_dg_limit_gcra(ngx_msec_t *tat, ngx_dg_rate_t *rate, ngx_msec_t now,
    ngx_msec_t *retry, ngx_uint_t *remaining)
{
    ngx_msec_t      t, allow;
    ngx_msec_int_t  ahead;

    t = (*tat && (ngx_msec_int_t) (*tat - now) > 0) ? *tat : now;
    allow = rate->period * rate->burst;
    ahead = (ngx_msec_int_t) (t - now);

    if ((ngx_msec_t) ahead > allow) {
        *retry = ahead - allow;
        *remaining = 0;
        return NGX_BUSY;
    }

    *tat = t + rate->period;
    *remaining = (allow - ahead) / rate->period;

    return NGX_OK;
}


static ngx_dg_limit_node_t *
ngx_dg_limit_lookup(const char *key_id, ngx_uint_t create)
{
    size_t                n;
    uint32_t              hash;
    ngx_int_t             rc;
    ngx_rbtree_node_t    *node, *sentinel;
    ngx_dg_limit_node_t  *lr;

    hash = ngx_crc32_short((u_char *) key_id, DG_KEY_ID_LEN);

    node = ngx_dg_limit_sh->rbtree.root;
    sentinel = ngx_dg_limit_sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        lr = (ngx_dg_limit_node_t *) &node->color;
        rc = ngx_memcmp(key_id, lr->key_id, DG_KEY_ID_LEN);

        if (rc == 0) {
            ngx_queue_remove(&lr->queue);
            ngx_queue_insert_head(&ngx_dg_limit_sh->queue, &lr->queue);
            lr->last = ngx_current_msec;
            return lr;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    if (!create) {
        return NULL;
    }

    n = offsetof(ngx_rbtree_node_t, color) + sizeof(ngx_dg_limit_node_t);

    node = ngx_slab_alloc_locked(ngx_dg_limit_pool, n);

    if (node == NULL) {
        ngx_dg_limit_expire(1);

        node = ngx_slab_alloc_locked(ngx_dg_limit_pool, n);
        if (node == NULL) {
            return NULL;
        }
    }

    node->key = hash;
    lr = (ngx_dg_limit_node_t *) &node->color;
    ngx_memzero(&lr->queue, sizeof(ngx_dg_limit_node_t)
                            - offsetof(ngx_dg_limit_node_t, queue));
    ngx_memcpy(lr->key_id, key_id, DG_KEY_ID_LEN);
    lr->last = ngx_current_msec;

    ngx_rbtree_insert(&ngx_dg_limit_sh->rbtree, node);
    ngx_queue_insert_head(&ngx_dg_limit_sh->queue, &lr->queue);

    return lr;
}


/*
 * Drops up to two least recently used keys that no longer limit anything
 * (or, when forced because the zone is full, the oldest one regardless).
 */

static void
ngx_dg_limit_expire(ngx_uint_t force)
{
    ngx_uint_t            i;
    ngx_msec_t            now;
    ngx_queue_t          *q;
    ngx_rbtree_node_t    *node;
    ngx_dg_limit_node_t  *lr;

    now = ngx_current_msec;

    for (i = 0; i < 2; i++) {

        if (ngx_queue_empty(&ngx_dg_limit_sh->queue)) {
            return;
        }

        q = ngx_queue_last(&ngx_dg_limit_sh->queue);
        lr = ngx_queue_data(q, ngx_dg_limit_node_t, queue);

        if (!force
            && ((ngx_msec_int_t) (lr->penalty_until - now) > 0
                || (ngx_msec_int_t) (lr->tat_rate - now) > 0
                || (ngx_msec_int_t) (now - lr->last) < 60000))
        {
            return;
        }

        if (force) {
            ngx_dg_count(limit_evicted);

            /* at most once a minute: the stats count every eviction */
            if (ngx_dg_limit_sh->evicted_logged == 0
                || now - ngx_dg_limit_sh->evicted_logged >= 60000)
            {
                ngx_dg_limit_sh->evicted_logged = now ? now : 1;

                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "distill_guard: zone \"distill_guard\" of "
                              "%uzK is full, the fallback limiter evicts "
                              "the keys used least recently; raise "
                              "\"distill_guard_zone\" (logged at most once "
                              "a minute, the stats count "
                              "\"limit_evicted\")",
                              (size_t) (ngx_dg_limit_pool->end
                                        - (u_char *) ngx_dg_limit_pool) / 1024);
            }
        }

        force = 0;

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) lr - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&ngx_dg_limit_sh->rbtree, node);
        ngx_slab_free_locked(ngx_dg_limit_pool, node);
    }
}
