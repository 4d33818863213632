/*
 * distill-guard engine: what Redis Cluster routing needs to know of keys
 * and replies: a key's hash slot, the key a command is routed by, the
 * redirections (MOVED, ASK) and the slot map of CLUSTER SLOTS.
 */

#ifndef DG_CLUSTER_H
#define DG_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>


#define DG_SLOTS            16384
#define DG_ADDR_LEN         64      /* "ip:port" of a node, with its NUL */


/* what an error reply asks of the client */
typedef enum {
    DG_REPLY_ERROR = 0,             /* a plain error: the command failed */
    DG_REPLY_MOVED,                 /* the slot lives elsewhere for good */
    DG_REPLY_ASK,                   /* this once, there, after ASKING */
    DG_REPLY_NOSCRIPT,              /* load the scripts and send again */
    DG_REPLY_TRYAGAIN,              /* keys of the slot are moving */
    DG_REPLY_CLUSTERDOWN
} dg_reply_kind_t;


typedef struct {
    dg_reply_kind_t     kind;
    unsigned            slot;                   /* MOVED, ASK */
    char                addr[DG_ADDR_LEN];      /* MOVED, ASK: ip:port */
} dg_redirect_t;


/* one range of the slot map, and the master that serves it */
typedef struct {
    unsigned            first;
    unsigned            last;
    char                addr[DG_ADDR_LEN];      /* ip:port */
} dg_slot_range_t;


/* the slot of a key: CRC16 of its hash tag ({...}) or of the whole key */
unsigned dg_slot(const char *key, size_t len);

/*
 * The key a command is routed by: the first key of EVAL and EVALSHA,
 * else the first argument; NULL for a command without one (AUTH, PING).
 */
const char *dg_cmd_key(int argc, const char **argv, const size_t *argvlen,
    size_t *len);

/* classifies an error reply's text; fills addr and slot for MOVED, ASK */
dg_reply_kind_t dg_reply_redirect(const char *str, size_t len,
    dg_redirect_t *rd);

/*
 * The ranges of a CLUSTER SLOTS reply, at most max of them; a master
 * without an address of its own ("" or "?") is the node that answered,
 * self.  Returns the number of ranges, or -1 for a malformed reply.
 */
int dg_cluster_slots(const redisReply *reply, const char *self,
    dg_slot_range_t *ranges, int max);


#endif /* DG_CLUSTER_H */
