/*
 * distill-guard engine: hash slots, routing keys, redirections and the
 * slot map of Redis Cluster.
 */

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dg_cluster.h"


/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis uses it */

static uint16_t
dg_crc16(const char *p, size_t len)
{
    size_t    i;
    unsigned  b;
    uint16_t  crc;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) ((unsigned char) p[i] << 8);

        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


unsigned
dg_slot(const char *key, size_t len)
{
    size_t  s, e;

    /* the hash tag: from the first '{' to the next '}', when not empty */
    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        if (e < len && e > s + 1) {
            return dg_crc16(key + s + 1, e - s - 1) & (DG_SLOTS - 1);
        }
    }

    return dg_crc16(key, len) & (DG_SLOTS - 1);
}


static int
dg_cmd_is(const char *arg, size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp(arg, name, len) == 0;
}


const char *
dg_cmd_key(int argc, const char **argv, const size_t *argvlen, size_t *len)
{
    if (argc >= 4
        && (dg_cmd_is(argv[0], argvlen[0], "EVALSHA")
            || dg_cmd_is(argv[0], argvlen[0], "EVAL")))
    {
        /* EVAL script numkeys key...: no key when numkeys is 0 */
        if (argvlen[2] == 1 && argv[2][0] == '0') {
            return NULL;
        }

        *len = argvlen[3];
        return argv[3];
    }

    if (argc < 2
        || dg_cmd_is(argv[0], argvlen[0], "AUTH")
        || dg_cmd_is(argv[0], argvlen[0], "SELECT")
        || dg_cmd_is(argv[0], argvlen[0], "SCRIPT")
        || dg_cmd_is(argv[0], argvlen[0], "CLUSTER"))
    {
        return NULL;
    }

    *len = argvlen[1];
    return argv[1];
}


static int
dg_prefix(const char *str, size_t len, const char *p)
{
    size_t  n;

    n = strlen(p);

    return len >= n && memcmp(str, p, n) == 0;
}


/* "<slot> <ip>:<port>" after MOVED or ASK */

static dg_reply_kind_t
dg_redirect_target(const char *p, size_t len, dg_reply_kind_t kind,
    dg_redirect_t *rd)
{
    size_t    i, n;
    unsigned  slot;

    slot = 0;

    for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        slot = slot * 10 + (unsigned) (p[i] - '0');

        if (slot >= DG_SLOTS) {
            return DG_REPLY_ERROR;
        }
    }

    if (i == 0 || i == len || p[i] != ' ') {
        return DG_REPLY_ERROR;
    }

    p += i + 1;
    len -= i + 1;

    /* the address: up to the end or a blank, with a port */
    for (n = 0; n < len && p[n] != ' ' && p[n] != '\r' && p[n] != '\n';
         n++)
    {
        /* void */
    }

    if (n == 0 || n >= DG_ADDR_LEN || memchr(p, ':', n) == NULL) {
        return DG_REPLY_ERROR;
    }

    memcpy(rd->addr, p, n);
    rd->addr[n] = '\0';
    rd->slot = slot;
    rd->kind = kind;

    return kind;
}


dg_reply_kind_t
dg_reply_redirect(const char *str, size_t len, dg_redirect_t *rd)
{
    memset(rd, 0, sizeof(dg_redirect_t));

    if (dg_prefix(str, len, "MOVED ")) {
        return dg_redirect_target(str + 6, len - 6, DG_REPLY_MOVED, rd);
    }

    if (dg_prefix(str, len, "ASK ")) {
        return dg_redirect_target(str + 4, len - 4, DG_REPLY_ASK, rd);
    }

    if (dg_prefix(str, len, "NOSCRIPT")) {
        rd->kind = DG_REPLY_NOSCRIPT;

    } else if (dg_prefix(str, len, "TRYAGAIN")) {
        rd->kind = DG_REPLY_TRYAGAIN;

    } else if (dg_prefix(str, len, "CLUSTERDOWN")) {
        rd->kind = DG_REPLY_CLUSTERDOWN;
    }

    return rd->kind;
}


static int
dg_reply_uint(const redisReply *r, unsigned *v)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0
        || r->integer >= DG_SLOTS)
    {
        return -1;
    }

    *v = (unsigned) r->integer;

    return 0;
}


int
dg_cluster_slots(const redisReply *reply, const char *self,
    dg_slot_range_t *ranges, int max)
{
    int                n;
    size_t             i;
    const char        *ip;
    const redisReply  *e, *node;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }

    n = 0;

    for (i = 0; i < reply->elements && n < max; i++) {
        e = reply->element[i];

        /* [first, last, [ip, port, id, ...], replicas...] */
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) {
            return -1;
        }

        node = e->element[2];

        if (dg_reply_uint(e->element[0], &ranges[n].first) != 0
            || dg_reply_uint(e->element[1], &ranges[n].last) != 0
            || ranges[n].first > ranges[n].last
            || node->type != REDIS_REPLY_ARRAY || node->elements < 2
            || node->element[0]->type != REDIS_REPLY_STRING
            || node->element[1]->type != REDIS_REPLY_INTEGER
            || node->element[1]->integer <= 0
            || node->element[1]->integer > 65535)
        {
            return -1;
        }

        ip = node->element[0]->str;

        if (node->element[0]->len == 0 || strcmp(ip, "?") == 0) {
            /* the node knows no address of its own: the one we asked */
            if (self == NULL || strlen(self) >= DG_ADDR_LEN) {
                return -1;
            }

            snprintf(ranges[n].addr, DG_ADDR_LEN, "%s", self);

        } else {
            if (node->element[0]->len + 7 > DG_ADDR_LEN) {
                return -1;
            }

            snprintf(ranges[n].addr, DG_ADDR_LEN, "%s:%lld", ip,
                     (long long) node->element[1]->integer);
        }

        n++;
    }

    return n;
}
