/*
 * distill-guard engine: the per-key sliding window kept in Redis.
 *
 * The module sends, pipelined on one connection, one EVALSHA of the
 * window script (every key it touches carries the hash tag {key_id}) and
 * the EVALSHA of the fan-out script for the cross-key counters (template
 * head, template tail, client network) whose count it does not hold
 * (src/dg_fanout.c).  This file builds those commands and reads the
 * fan-out replies; src/dg_profile.c reads the window's.  It knows no
 * nginx and no hiredis.
 */

#ifndef DG_WINDOW_H
#define DG_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "dg_features.h"


#define DG_CMD_ARGV_MAX     24
#define DG_SHA1_HEX_LEN     40
#define DG_KEY_ID_LEN       16          /* hex digits of the keyed hash */
#define DG_PROFILE_JSON_MAX 768         /* dg_profile_json() needs no more */
#define DG_MESSAGE_TOKENS   6           /* a follow-up this long is a
                                           message, not an "ok, thanks" */


/* the fields of a window profile, in dg_profile_t.v */
enum {
    DG_PROF_REQUESTS = 0,               /* sliding count */
    DG_PROF_SAMPLE,                     /* requests the shares are over */
    DG_PROF_TOPICS,
    DG_PROF_TOPIC_ENTROPY_MILLI,
    DG_PROF_TEMPLATES,
    DG_PROF_TOP_TEMPLATE_SHARE_MILLI,
    DG_PROF_SINGLE_TURN_SHARE_MILLI,
    DG_PROF_COT_SHARE_MILLI,
    DG_PROF_GAP_MEAN_MS,
    DG_PROF_GAP_CV_MILLI,
    DG_PROF_BYTES,
    DG_PROF_NFIELDS
};


/*
 * The window script's one argument after the keys: these values, packed
 * little-endian in DG_WARGS_LEN bytes (doc/redis-keys.md, "The script's
 * arguments and reply"): one argument is parsed by one struct.unpack,
 * where fifteen cost the script a third of its time.
 */
enum {
    DG_WARG_WINDOW_MS = 0,              /* u32 */
    DG_WARG_TOPIC,                      /* u16 */
    DG_WARG_HEAD,                       /* u16, folded to 12 bits */
    DG_WARG_TAIL,                       /* u16, folded to 12 bits */
    DG_WARG_FLAGS,                      /* u8: 1 one-shot, 2 cot, 4 a
                                           message of DG_MESSAGE_TOKENS */
    DG_WARG_BYTES,                      /* u40 */
    DG_WARG_NOW_MS,                     /* u48: 0, or the tests' clock */
    DG_WARG_THROTTLE_MS,                /* u32 */
    DG_WARG_RATE_MS,                    /* u32 */
    DG_WARG_RATE_BURST,                 /* u32 */
    DG_WARG_SHADOW,                     /* u8 */
    DG_WARG_TOPIC_LAST,                 /* u16 */
    DG_WARG_SENT,                       /* u16, folded */
    DG_WARG_PRIOR,                      /* u16, folded */
    DG_WARG_OPENING,                    /* u16, folded */
    DG_WARG_N
};

#define DG_WARGS_LEN        43


/* packs v[DG_WARG_N] into buf (DG_WARGS_LEN bytes); returns the length */
size_t dg_window_pack(char *buf, const uint64_t *v);


/* what a request's claimed history is (see src/dg_window.lua) */
typedef enum {
    DG_PROVENANCE_NONE = 0,             /* no history: one-shot */
    DG_PROVENANCE_VERIFIED,             /* continues what this key sent */
    DG_PROVENANCE_FABRICATED,           /* never sent by this key */
    DG_PROVENANCE_PREFIX                /* a preamble the key repeats */
} dg_provenance_t;


/* the limiter's verdict in the reply, DG_LIM_REFUSED */
typedef enum {
    DG_REFUSED_NONE = 0,
    DG_REFUSED_THROTTLE,                /* the penalty's throttle */
    DG_REFUSED_RATE                     /* the plain per-key rate */
} dg_refused_t;


typedef enum {
    DG_FANOUT_HEAD = 0,
    DG_FANOUT_TAIL,
    DG_FANOUT_SUBNET,
    DG_FANOUT_N
} dg_fanout_t;

/*
 * Keys on a template: the fan-out's ramp in the score (src/dg_score.c),
 * from nothing at DG_FANOUT_KEYS_NONE to full strength at _FULL, or at
 * _SHAPED for a key that behaves like a script; a worker asks Redis
 * afresh for a count inside it (src/dg_fanout.c)
 */
#define DG_FANOUT_KEYS_NONE     2
#define DG_FANOUT_KEYS_SHAPED   4
#define DG_FANOUT_KEYS_FULL     6


typedef struct {
    int64_t             v[DG_PROF_NFIELDS];
    int64_t             fanout_keys[DG_FANOUT_N];  /* what each counter
                                                      answered */
    int64_t             fanout_conv[DG_FANOUT_N];
    int64_t             template_keys;  /* distinct keys on this template */
    int64_t             template_conv;  /* of them, keys that held verified
                                           conversations opened with it */
    int64_t             subnet_keys;    /* distinct keys on this network */

    int64_t             verified_milli; /* shares of the sample */
    int64_t             scripted_milli; /* verified follow-ups this key
                                           sent in another conversation */
    int64_t             fabricated_milli;
    int64_t             prefix_milli;
    int64_t             provenance;

    int64_t             state;          /* the limiter's reply */
    int64_t             penalty_ms;
    int64_t             refused;
    int64_t             retry_ms;
    int64_t             remaining;
    int64_t             now_ms;
} dg_profile_t;


typedef struct {
    const char         *prefix;         /* key prefix, "dg" by default */
    size_t              prefix_len;
    const char         *key_id;         /* DG_KEY_ID_LEN hex digits */
    uint64_t            window_ms;
    uint64_t            now_ms;         /* gateway clock: names the buckets
                                           of the cross-key counters */
    uint64_t            clock_ms;       /* tests only: the window script's
                                           clock instead of Redis's TIME;
                                           0: TIME */
    const dg_features_t *features;
    const char         *subnet;         /* "192.0.2" or "2001:db8:1"; may be
                                           NULL */
    uint64_t            throttle_ms;    /* a throttled key: one request per
                                           throttle_ms; 0: none */
    uint64_t            rate_ms;        /* plain per-key rate; 0: none */
    uint32_t            rate_burst;
    unsigned            shadow:1;       /* report refusals, refuse nothing */
} dg_window_req_t;


/* one Redis command as an argument vector over its own storage */
typedef struct {
    int                 argc;
    const char         *argv[DG_CMD_ARGV_MAX];
    size_t              argvlen[DG_CMD_ARGV_MAX];
    size_t              used;
    char                buf[640];
} dg_cmd_t;


/* the scripts' source text, embedded at build time */
extern const char       dg_window_lua[];
extern const size_t     dg_window_lua_len;
extern const char       dg_fanout_lua[];
extern const size_t     dg_fanout_lua_len;


/*
 * Fill cmd with EVALSHA (sha != NULL) or EVAL (sha == NULL, sends the
 * script text: loads it after a NOSCRIPT) of the window script: keys
 * <prefix>:{<key_id>}:w and :s; fingerprints are sent folded as the
 * window stores them (dg_fold12, dg_fold16, dg_fold16_opening in
 * src/dg_profile.h).  The strings are copied into cmd->buf, except the
 * script text, which is referred to.  Returns 0, or -1 when the
 * arguments do not fit or are invalid (no features, window_ms 0 or
 * >= 2^31, a brace in the prefix or key id).
 */
int dg_window_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *sha);

/*
 * GET <prefix>:{<key_id>}:w: the window as the script left it, sent right
 * after the script in the same pipeline.  0, or -1 on bad arguments.
 */
int dg_window_get_cmd(dg_cmd_t *cmd, const dg_window_req_t *req);

/*
 * EVALSHA sha numkeys (sha != NULL), or EVAL script numkeys; checks what
 * every key name is built from.  0, or -1 on bad arguments.
 */
int dg_window_start(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *sha, const char *script, size_t script_len,
    unsigned numkeys);

/*
 * "<verb> <prefix>:{<key_id>}:<suffix>", the start of a command on one
 * of the key's own keys (w, s, p, t); 0, or -1 on bad arguments.
 */
int dg_window_key_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    const char *verb, char suffix);

/* adds the argument <prefix>:{<key_id>}:<suffix>; 0, or -1 if too long */
int dg_window_key_add(dg_cmd_t *cmd, const dg_window_req_t *req,
    char suffix);

/*
 * The same for one cross-key counter; returns 1 when there is nothing to
 * count (no template fingerprint, no subnet), 0 when cmd is filled, -1 as
 * above.  Keys <prefix>:{h:<head hex>}:<b> and :<b + 1>, b = now_ms /
 * window_ms (t: tail, n: subnet); the reply counts the distinct keys of
 * the last one to two windows.
 */
int dg_fanout_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    dg_fanout_t which, const char *sha);

/*
 * A verified conversation opened with the request's first-turn template
 * (features conv_head, conv_tail): adds the key to the template's
 * conversation count.  Returns 1 when there is nothing to add, 0 when cmd
 * is filled, -1 on bad arguments.
 */
int dg_fanout_conv_cmd(dg_cmd_t *cmd, const dg_window_req_t *req,
    dg_fanout_t which, const char *sha);

/*
 * Stores a count-mode fan-out reply { keys, conversation keys } of which:
 * the template that the most keys share is the one kept.  -1 if n < 1.
 */
int dg_fanout_reply(dg_profile_t *prof, dg_fanout_t which, const int64_t *v,
    size_t n);

/* compact JSON object of the profile, NUL-terminated; returns length */
size_t dg_profile_json(const dg_profile_t *prof, char *buf, size_t size);


#endif /* DG_WINDOW_H */
