/*
 * distill-guard-ctl: the operator's view of what distill-guard keeps in
 * Redis (doc/redis-keys.md): the flagged keys, one key's window and
 * state, the events stream, and releasing a throttled key.
 *
 * It reads the options of distill_guard_redis (and the prefix and the
 * secret) from the command line or from the nginx configuration, and
 * exits 0, 1 on a bad argument or key id, 2 on a Redis error, 3 when the
 * key is not in Redis.
 */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "dg_cluster.h"
#include "dg_key.h"
#include "dg_state.h"
#include "dg_window.h"
#include "dg_window_state.h"
#include "dg_window_log.h"


#define CTL_EXIT_USAGE      1
#define CTL_EXIT_REDIS      2
#define CTL_EXIT_MISSING    3

#define CTL_ARG_MAX         512
#define CTL_CMD_ARGS        24
#define CTL_EVENTS_SCAN     10000       /* the stream's length, at most */


typedef struct {
    char                host[256];
    int                 port;
    char                unix_path[256];
    char                user[128];
    char                password[256];
    int                 db;
    int                 cluster;        /* follow MOVED and ASK */
    char                prefix[65];
    char                secret[256];
    int                 json;
    int                 follow;
    int                 all;
    int                 keep_window;
    int                 key_stdin;
    long                count;
    unsigned long long  window_ms;
    redisContext       *rc;
} ctl_t;


static const char  *ctl_usage_text =
"usage: distill-guard-ctl [options] <command>\n"
"\n"
"commands:\n"
"  top [N]              the N (10) flagged keys by score: state, penalty,\n"
"                       the signals of their last change\n"
"  show <key_id>        a key's window profile, records and state\n"
"  show --key           the same, the raw API key read from stdin and\n"
"                       hashed with the secret (never printed)\n"
"  events [--follow]    the events stream, oldest first (--count N, 20)\n"
"  release <key_id>     end the key's penalty, reset its state and window\n"
"                       (--keep-window keeps the window), add an event\n"
"\n"
"options:\n"
"  -c, --nginx-conf F   read distill_guard_redis, _redis_prefix and\n"
"                       _secret from the nginx file F (no includes)\n"
"  -r, --redis ARGS     the arguments of distill_guard_redis, quoted:\n"
"                       'host:port|unix:/path [password=] [user=] [db=N]\n"
"                       [cluster=on]' (cluster: follows MOVED, ASK)\n"
"  -h, --host H  -p, --port P  -s, --socket PATH  -n, --db N\n"
"  --user U             ACL user (with a password)\n"
"  --password-file F    the password, first line of F (or the\n"
"                       environment's DG_REDIS_PASSWORD)\n"
"  --prefix P           distill_guard_redis_prefix (dg)\n"
"  --secret-file F      distill_guard_secret, first line of F\n"
"  --window T           the window (60s, 1h, ms): else from the stored\n"
"                       sub-window width\n"
"  --json               JSON output (events: one object per line)\n"
"  --all                show: every record, not the newest 20\n"
"\n"
"exit status: 0, 1 bad argument or key id, 2 Redis error, 3 no such key\n";


static void ctl_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));


static void
ctl_fail(int code, const char *fmt, ...)
{
    va_list  ap;

    fputs("distill-guard-ctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);

    exit(code);
}


static void
ctl_copy(char *dst, size_t size, const char *src, size_t len,
    const char *what)
{
    if (len >= size) {
        ctl_fail(CTL_EXIT_USAGE, "%s is too long", what);
    }

    memcpy(dst, src, len);
    dst[len] = '\0';
}


/* the first line of a file: a password or a secret, never echoed */
static void
ctl_read_line(const char *path, char *buf, size_t size, const char *what)
{
    FILE    *f;
    size_t   n;

    f = fopen(path, "r");
    if (f == NULL) {
        ctl_fail(CTL_EXIT_USAGE, "%s file \"%s\": %s", what, path,
                 strerror(errno));
    }

    if (fgets(buf, (int) size, f) == NULL) {
        buf[0] = '\0';
    }

    fclose(f);

    n = strcspn(buf, "\r\n");
    buf[n] = '\0';

    if (n == 0 || n >= size - 1) {
        ctl_fail(CTL_EXIT_USAGE, "%s file \"%s\" has no usable first line",
                 what, path);
    }
}


/* "60s", "1h", "500ms", "60000": as nginx reads a time, into ms */
static unsigned long long
ctl_parse_time(const char *s)
{
    char                *end;
    unsigned long long   v, mul;

    errno = 0;
    v = strtoull(s, &end, 10);

    if (errno || end == s) {
        ctl_fail(CTL_EXIT_USAGE, "invalid time \"%s\"", s);
    }

    if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0) {
        mul = 1;
    } else if (strcmp(end, "s") == 0) {
        mul = 1000;
    } else if (strcmp(end, "m") == 0) {
        mul = 60000;
    } else if (strcmp(end, "h") == 0) {
        mul = 3600000;
    } else if (strcmp(end, "d") == 0) {
        mul = 86400000;
    } else {
        ctl_fail(CTL_EXIT_USAGE, "invalid time \"%s\"", s);
    }

    return v * mul;
}


/* one argument of distill_guard_redis, as the module parses it */
static void
ctl_redis_arg(ctl_t *c, const char *a, int first)
{
    char        *end;
    const char  *colon;

    if (first) {
        if (strncmp(a, "unix:", 5) == 0) {
            ctl_copy(c->unix_path, sizeof(c->unix_path), a + 5,
                     strlen(a + 5), "the socket path");
            return;
        }

        colon = strrchr(a, ':');
        if (colon == NULL) {
            ctl_copy(c->host, sizeof(c->host), a, strlen(a), "the host");
            c->port = 6379;
            return;
        }

        ctl_copy(c->host, sizeof(c->host), a, colon - a, "the host");
        c->port = (int) strtol(colon + 1, &end, 10);

        if (*end != '\0' || c->port <= 0 || c->port > 65535) {
            ctl_fail(CTL_EXIT_USAGE, "invalid redis address \"%s\"", a);
        }

        return;
    }

    if (strchr(a, '=') == NULL && strchr(a, ':') != NULL) {
        /* another seed of a cluster: the first one is asked */
        return;
    }

    if (strcmp(a, "cluster=on") == 0) {
        c->cluster = 1;

    } else if (strcmp(a, "cluster=off") == 0) {
        c->cluster = 0;

    } else if (strcmp(a, "tls=on") == 0) {
        ctl_fail(CTL_EXIT_USAGE, "tls=on: distill-guard-ctl speaks plain "
                 "TCP only (Debian's hiredis 0.14 has no TLS); reach the "
                 "server through a local TLS tunnel (stunnel, socat) and "
                 "give its address with --redis or -h/-p");

    } else if (strncmp(a, "tls", 3) == 0) {
        /* tls=off, tls_verify=, tls_ca= ...: no TLS, nothing to do */

    } else if (strncmp(a, "password=", 9) == 0) {
        ctl_copy(c->password, sizeof(c->password), a + 9, strlen(a + 9),
                 "the password");

    } else if (strncmp(a, "user=", 5) == 0) {
        ctl_copy(c->user, sizeof(c->user), a + 5, strlen(a + 5), "user=");

    } else if (strncmp(a, "db=", 3) == 0) {
        c->db = (int) strtol(a + 3, &end, 10);

        if (*end != '\0' || c->db < 0) {
            ctl_fail(CTL_EXIT_USAGE, "invalid redis parameter \"%s\"", a);
        }

    } else if (strncmp(a, "connect_timeout=", 16) != 0
               && strncmp(a, "timeout=", 8) != 0
               && strncmp(a, "max_inflight=", 13) != 0)
    {
        /* never echo what may be a mistyped password */
        ctl_fail(CTL_EXIT_USAGE, "invalid redis parameter%s%s%s",
                 strncmp(a, "pass", 4) ? " \"" : "",
                 strncmp(a, "pass", 4) ? a : "",
                 strncmp(a, "pass", 4) ? "\"" : "");
    }
}


static void
ctl_redis_args(ctl_t *c, char **argv, int argc)
{
    int  i;

    for (i = 0; i < argc; i++) {
        ctl_redis_arg(c, argv[i], i == 0);
    }
}


/* splits in place on blanks, with nginx's quotes; returns the count */
static int
ctl_split(char *s, char **argv, int max)
{
    int    n;
    char   q, *out;

    n = 0;

    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
            s++;
        }

        if (*s == '\0' || n == max) {
            break;
        }

        argv[n++] = out = s;
        q = 0;

        for ( /* void */ ; *s; s++) {
            if (q) {
                if (*s == '\\' && s[1]) {
                    *out++ = *++s;
                    continue;
                }

                if (*s == q) {
                    q = 0;
                    continue;
                }

            } else if (*s == '"' || *s == '\'') {
                q = *s;
                continue;

            } else if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
                break;
            }

            *out++ = *s;
        }

        if (*s) {
            s++;
        }

        *out = '\0';
    }

    return n;
}


/*
 * The distill_guard_redis, _redis_prefix and _secret directives of an
 * nginx file: enough for the file that holds them (includes are not
 * followed).
 */
static void
ctl_nginx_conf(ctl_t *c, const char *path)
{
    int     argc, found;
    char   *text, *p, *stmt, *semi, *argv[32];
    long    size;
    FILE   *f;

    f = fopen(path, "r");
    if (f == NULL) {
        ctl_fail(CTL_EXIT_USAGE, "nginx configuration \"%s\": %s", path,
                 strerror(errno));
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);

    text = malloc(size + 1);
    if (text == NULL || fread(text, 1, size, f) != (size_t) size) {
        ctl_fail(CTL_EXIT_USAGE, "cannot read \"%s\"", path);
    }

    text[size] = '\0';
    fclose(f);

    /* comments out, then one statement per ';', '{' or '}' */
    for (p = text; *p; p++) {
        if (*p == '#') {
            while (*p && *p != '\n') {
                *p++ = ' ';
            }

            if (*p == '\0') {
                break;
            }
        }
    }

    found = 0;

    for (stmt = text; *stmt; stmt = semi + 1) {
        semi = stmt + strcspn(stmt, ";{}");
        if (*semi == '\0') {
            break;
        }

        *semi = '\0';
        argc = ctl_split(stmt, argv, 32);

        if (argc < 2) {
            continue;
        }

        if (strcmp(argv[0], "distill_guard_redis") == 0) {
            ctl_redis_args(c, argv + 1, argc - 1);
            found = 1;

        } else if (strcmp(argv[0], "distill_guard_redis_prefix") == 0) {
            ctl_copy(c->prefix, sizeof(c->prefix), argv[1],
                     strlen(argv[1]), "the prefix");

        } else if (strcmp(argv[0], "distill_guard_secret") == 0) {
            ctl_copy(c->secret, sizeof(c->secret), argv[1],
                     strlen(argv[1]), "the secret");
        }
    }

    free(text);

    if (!found) {
        ctl_fail(CTL_EXIT_USAGE, "no distill_guard_redis in \"%s\"", path);
    }
}


static void
ctl_connect(ctl_t *c)
{
    int              argc;
    char             db[16];
    const char      *argv[3];
    redisReply      *r;
    struct timeval   tv = { 2, 0 };

    if (c->unix_path[0]) {
        c->rc = redisConnectUnixWithTimeout(c->unix_path, tv);

    } else {
        c->rc = redisConnectWithTimeout(c->host, c->port, tv);
    }

    if (c->rc == NULL || c->rc->err) {
        ctl_fail(CTL_EXIT_REDIS, "cannot connect to redis %s%s%s%d: %s",
                 c->unix_path[0] ? "unix:" : "",
                 c->unix_path[0] ? c->unix_path : c->host,
                 c->unix_path[0] ? "" : ":",
                 c->unix_path[0] ? 0 : c->port,
                 c->rc ? c->rc->errstr : "out of memory");
    }

    redisSetTimeout(c->rc, tv);

    if (c->password[0]) {
        argc = 0;
        argv[argc++] = "AUTH";

        if (c->user[0]) {
            argv[argc++] = c->user;
        }

        argv[argc++] = c->password;

        r = redisCommandArgv(c->rc, argc, argv, NULL);

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            ctl_fail(CTL_EXIT_REDIS, "redis AUTH failed: %s",
                     r ? r->str : c->rc->errstr);
        }

        freeReplyObject(r);
    }

    if (c->db) {
        snprintf(db, sizeof(db), "%d", c->db);
        argv[0] = "SELECT";
        argv[1] = db;

        r = redisCommandArgv(c->rc, 2, argv, NULL);

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            ctl_fail(CTL_EXIT_REDIS, "redis SELECT %d failed: %s", c->db,
                     r ? r->str : c->rc->errstr);
        }

        freeReplyObject(r);
    }
}


/* the connection moved to a cluster node named "ip:port" */
static void
ctl_reconnect(ctl_t *c, const char *addr)
{
    const char  *colon;

    colon = strrchr(addr, ':');

    if (colon == NULL || (size_t) (colon - addr) >= sizeof(c->host)) {
        ctl_fail(CTL_EXIT_REDIS, "redis redirection to \"%s\"", addr);
    }

    memcpy(c->host, addr, colon - addr);
    c->host[colon - addr] = '\0';
    c->port = atoi(colon + 1);
    c->unix_path[0] = '\0';

    redisFree(c->rc);
    c->rc = NULL;
    ctl_connect(c);
}


/*
 * A command from its arguments (NULL-terminated); fails on any error.
 * With cluster=on a command for a key of another node follows MOVED
 * and ASK there.
 */
static redisReply *
ctl_cmd(ctl_t *c, ...)
{
    int              argc, tries;
    va_list          ap;
    const char      *argv[CTL_CMD_ARGS + 1];
    redisReply      *r;
    dg_redirect_t    rd;
    dg_reply_kind_t  kind;

    argc = 0;
    va_start(ap, c);

    while ((argv[argc] = va_arg(ap, const char *)) != NULL) {
        if (++argc > CTL_CMD_ARGS) {
            ctl_fail(CTL_EXIT_USAGE, "redis %s: too many arguments",
                     argv[0]);
        }
    }

    va_end(ap);

    for (tries = 0; /* void */ ; tries++) {
        r = redisCommandArgv(c->rc, argc, argv, NULL);

        if (r == NULL) {
            ctl_fail(CTL_EXIT_REDIS, "redis %s: %s", argv[0],
                     c->rc->errstr);
        }

        if (r->type != REDIS_REPLY_ERROR) {
            return r;
        }

        /* a cluster: the key lives on another node; go there, ask again */
        kind = dg_reply_redirect(r->str, r->len, &rd);

        if (!c->cluster || tries == 3
            || (kind != DG_REPLY_MOVED && kind != DG_REPLY_ASK))
        {
            ctl_fail(CTL_EXIT_REDIS, "redis %s: %s", argv[0], r->str);
        }

        freeReplyObject(r);
        ctl_reconnect(c, rd.addr);

        if (kind == DG_REPLY_ASK) {
            freeReplyObject(ctl_cmd(c, "ASKING", NULL));
        }
    }
}


static unsigned long long
ctl_now_ms(ctl_t *c)
{
    unsigned long long   ms;
    redisReply          *r;

    r = ctl_cmd(c, "TIME", NULL);

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        ctl_fail(CTL_EXIT_REDIS, "redis TIME: unexpected reply");
    }

    ms = strtoull(r->element[0]->str, NULL, 10) * 1000
         + strtoull(r->element[1]->str, NULL, 10) / 1000;

    freeReplyObject(r);

    return ms;
}


static void
ctl_key_name(ctl_t *c, char *buf, size_t size, const char *key_id,
    const char *suffix)
{
    if (key_id) {
        snprintf(buf, size, "%s:{%s}:%s", c->prefix, key_id, suffix);

    } else {
        snprintf(buf, size, "%s:%s", c->prefix, suffix);
    }
}


static void
ctl_check_key_id(const char *id)
{
    size_t  i;

    for (i = 0; id[i]; i++) {
        if (!((id[i] >= '0' && id[i] <= '9')
              || (id[i] >= 'a' && id[i] <= 'f')))
        {
            break;
        }
    }

    if (i != DG_KEY_ID_LEN || id[i] != '\0') {
        ctl_fail(CTL_EXIT_USAGE, "invalid key id \"%s\": %d lowercase hex "
                 "digits expected, as in $distill_guard_key_id",
                 id, DG_KEY_ID_LEN);
    }
}


/* the raw API key from stdin into its id: the key is never printed */
static void
ctl_key_from_stdin(ctl_t *c, char *id)
{
    char         buf[4096];
    size_t       len;
    const char  *key;

    if (c->secret[0] == '\0') {
        ctl_fail(CTL_EXIT_USAGE, "--key needs the secret: --secret-file "
                 "or --nginx-conf");
    }

    if (fgets(buf, sizeof(buf), stdin) == NULL) {
        ctl_fail(CTL_EXIT_USAGE, "--key: no API key on stdin");
    }

    len = strcspn(buf, "\r\n");
    key = dg_key_normalize(buf, &len);

    if (len == 0) {
        ctl_fail(CTL_EXIT_USAGE, "--key: an empty API key");
    }

    if (dg_key_id(c->secret, strlen(c->secret), key, len, id) != 0) {
        ctl_fail(CTL_EXIT_USAGE, "--key: cannot hash the key");
    }

    memset(buf, 0, sizeof(buf));
}


static void
ctl_print_json(json_t *j)
{
    char  *s;

    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        ctl_fail(CTL_EXIT_USAGE, "out of memory");
    }

    puts(s);
    free(s);
    json_decref(j);
}


static const char *
ctl_field(redisReply *fields, const char *name)
{
    size_t  i;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, name) == 0) {
            return fields->element[i + 1]->str;
        }
    }

    return "";
}


static void
ctl_duration(char *buf, size_t size, long long ms)
{
    if (ms <= 0) {
        snprintf(buf, size, "-");
    } else if (ms < 60000) {
        snprintf(buf, size, "%llds", (ms + 999) / 1000);
    } else if (ms < 3600000) {
        snprintf(buf, size, "%lldm%02llds", ms / 60000,
                 (ms % 60000 + 999) / 1000);
    } else {
        snprintf(buf, size, "%lldh%02lldm", ms / 3600000,
                 (ms % 3600000) / 60000);
    }
}


static void
ctl_time(char *buf, size_t size, unsigned long long ms)
{
    time_t     t;
    struct tm  tm;

    t = (time_t) (ms / 1000);
    gmtime_r(&t, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03lluZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ms % 1000);
}


/*
 * The newest event the module wrote for a key, in a reply of XREVRANGE
 * (a release names no signals); NULL if none.
 */
static redisReply *
ctl_last_event(redisReply *events, const char *key_id)
{
    size_t       i;
    redisReply  *e;

    for (i = 0; i < events->elements; i++) {
        e = events->element[i];

        if (e->elements == 2
            && strcmp(ctl_field(e->element[1], "key_id"), key_id) == 0
            && ctl_field(e->element[1], "by")[0] == '\0')
        {
            return e;
        }
    }

    return NULL;
}


typedef struct {
    int                 exists;
    int                 state;
    unsigned long long  penalty_end;
    long long           penalty_left;
} ctl_state_t;


static void
ctl_get_state(ctl_t *c, const char *key_id, unsigned long long now,
    ctl_state_t *st)
{
    char         name[CTL_ARG_MAX];
    redisReply  *r;

    ctl_key_name(c, name, sizeof(name), key_id, "s");
    r = ctl_cmd(c, "HMGET", name, "st", "pu", NULL);

    memset(st, 0, sizeof(ctl_state_t));

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        st->exists = (r->element[0]->type == REDIS_REPLY_STRING
                      || r->element[1]->type == REDIS_REPLY_STRING);

        if (r->element[0]->type == REDIS_REPLY_STRING) {
            st->state = atoi(r->element[0]->str);
        }

        if (r->element[1]->type == REDIS_REPLY_STRING) {
            st->penalty_end = strtoull(r->element[1]->str, NULL, 10);
        }
    }

    freeReplyObject(r);

    st->penalty_left = (st->penalty_end > now)
                       ? (long long) (st->penalty_end - now) : 0;
}


/* a key's state as the module writes it: pass, tag or throttle */

static const char *
ctl_state_str(int state)
{
    return (state == DG_ACTION_TAG || state == DG_ACTION_THROTTLE)
           ? dg_action_name((dg_action_t) state) : "pass";
}


static const char *
ctl_state_name(ctl_state_t *st)
{
    return st->exists ? ctl_state_str(st->state) : "expired";
}


static redisReply *
ctl_events_scan(ctl_t *c)
{
    char  name[CTL_ARG_MAX], count[16];

    ctl_key_name(c, name, sizeof(name), NULL, "events");
    snprintf(count, sizeof(count), "%d", CTL_EVENTS_SCAN);

    return ctl_cmd(c, "XREVRANGE", name, "+", "-", "COUNT", count, NULL);
}


static int
ctl_top(ctl_t *c, long n)
{
    char                 name[CTL_ARG_MAX], stop[32], left[32];
    size_t               i;
    json_t              *arr;
    const char          *id, *sig;
    redisReply          *r, *ev, *e;
    ctl_state_t          st;
    unsigned long long   now;

    now = ctl_now_ms(c);

    ctl_key_name(c, name, sizeof(name), NULL, "flagged");
    snprintf(stop, sizeof(stop), "%ld", n - 1);
    r = ctl_cmd(c, "ZREVRANGE", name, "0", stop, "WITHSCORES", NULL);
    ev = ctl_events_scan(c);

    arr = json_array();

    if (!c->json) {
        printf("%-16s  %-5s  %-8s  %-24s  %-8s  %s\n", "KEY_ID", "SCORE",
               "STATE", "PENALTY_END", "LEFT", "SIGNALS");
    }

    for (i = 0; i + 1 < r->elements; i += 2) {
        id = r->element[i]->str;
        ctl_get_state(c, id, now, &st);
        e = ctl_last_event(ev, id);
        sig = e ? ctl_field(e->element[1], "signals") : "";

        if (c->json) {
            json_array_append_new(arr, json_pack("{s:s, s:f, s:s, s:I, s:I,"
                                                 " s:s}",
                "key_id", id,
                "score", strtod(r->element[i + 1]->str, NULL),
                "state", ctl_state_name(&st),
                "penalty_end_ms", (json_int_t) st.penalty_end,
                "penalty_left_ms", (json_int_t) st.penalty_left,
                "signals", sig));
            continue;
        }

        if (st.penalty_end) {
            ctl_time(name, sizeof(name), st.penalty_end);
        } else {
            snprintf(name, sizeof(name), "-");
        }

        ctl_duration(left, sizeof(left), st.penalty_left);
        printf("%-16s  %.3f  %-8s  %-24s  %-8s  %s\n", id,
               strtod(r->element[i + 1]->str, NULL), ctl_state_name(&st),
               name, left, sig[0] ? sig : "-");
    }

    if (c->json) {
        ctl_print_json(arr);
    } else {
        json_decref(arr);
    }

    freeReplyObject(r);
    freeReplyObject(ev);

    return 0;
}


static const char *
ctl_provenance_name(unsigned p)
{
    static const char  *name[] = { "none", "verified", "fabricated",
                                   "prefix" };

    return name[p & 3];
}


static json_t *
ctl_profile_json(dg_window_state_t *ws)
{
    return json_pack("{s:I, s:I, s:I, s:f, s:I, s:f, s:f, s:f, s:f, s:f,"
                     " s:f, s:f, s:I, s:f, s:I}",
        "requests", (json_int_t) ws->requests,
        "sample", (json_int_t) ws->sample,
        "topics", (json_int_t) ws->topics,
        "topic_entropy", ws->topic_entropy_milli / 1000.0,
        "templates", (json_int_t) ws->templates,
        "top_template_share", ws->top_template_share_milli / 1000.0,
        "single_turn_share", ws->single_turn_share_milli / 1000.0,
        "cot_share", ws->cot_share_milli / 1000.0,
        "verified_share", ws->verified_milli / 1000.0,
        "fabricated_share", ws->fabricated_milli / 1000.0,
        "prefix_share", ws->prefix_milli / 1000.0,
        "scripted_share", ws->scripted_milli / 1000.0,
        "gap_mean_ms", (json_int_t) ws->gap_mean_ms,
        "gap_cv", ws->gap_cv_milli / 1000.0,
        "bytes", (json_int_t) ws->bytes);
}


/*
 * The pending log (doc/redis-keys.md) folded into the window reply w as
 * the gateway and the script fold it; w becomes a window of the records
 * of both.  The log's reply is freed.
 */

static void
ctl_fold_log(ctl_t *c, redisReply *w, redisReply *log)
{
    int         have;
    char       *v;
    unsigned    slot, prov;
    uint64_t    window_ms, t;

    have = (w->type == REDIS_REPLY_STRING && w->len == DG_WIN_SIZE);

    /* the window's length: as given, else 16 of its sub-windows */
    window_ms = c->window_ms;
    if (window_ms == 0 && have) {
        window_ms = dg_le((unsigned char *) w->str + 3, 4) * DG_WIN_SUBW;
    }

    if (log->type != REDIS_REPLY_STRING || log->len < DG_LOG_RSZ
        || window_ms == 0 || (w->type == REDIS_REPLY_STRING && !have))
    {
        freeReplyObject(log);
        return;
    }

    v = malloc(DG_WIN_SIZE);
    if (v == NULL) {
        ctl_fail(CTL_EXIT_USAGE, "out of memory");
    }

    if (have) {
        memcpy(v, w->str, DG_WIN_SIZE);
    }

    (void) dg_window_fold(v, have, log->str, log->len, window_ms, 0, &slot,
                          &t, &prov);

    /* hiredis frees the reply's string with free() */
    free(w->str);
    w->str = v;
    w->len = DG_WIN_SIZE;
    w->type = REDIS_REPLY_STRING;

    freeReplyObject(log);
}


static int
ctl_show(ctl_t *c, const char *key_id)
{
    char                 name[CTL_ARG_MAX], buf[64], left[32];
    unsigned             i, from;
    json_t              *j, *recs;
    const char          *err, *sig;
    redisReply          *w, *ttl, *score, *ev, *e;
    ctl_state_t          st;
    dg_ws_record_t      *rec;
    dg_window_state_t   *ws;
    unsigned long long   now;

    now = ctl_now_ms(c);
    ctl_get_state(c, key_id, now, &st);

    ctl_key_name(c, name, sizeof(name), key_id, "w");
    w = ctl_cmd(c, "GET", name, NULL);
    ttl = ctl_cmd(c, "PTTL", name, NULL);

    /* the records the gateway appended to the pending log belong too */
    ctl_key_name(c, name, sizeof(name), key_id, "p");
    ctl_fold_log(c, w, ctl_cmd(c, "GET", name, NULL));

    ctl_key_name(c, name, sizeof(name), NULL, "flagged");
    score = ctl_cmd(c, "ZSCORE", name, key_id, NULL);

    if (w->type != REDIS_REPLY_STRING && !st.exists
        && score->type != REDIS_REPLY_STRING)
    {
        ctl_fail(CTL_EXIT_MISSING, "key %s: nothing in Redis under prefix "
                 "\"%s\" (no window, no state, not flagged)", key_id,
                 c->prefix);
    }

    ws = calloc(1, sizeof(dg_window_state_t));
    if (ws == NULL) {
        ctl_fail(CTL_EXIT_USAGE, "out of memory");
    }

    err = NULL;

    if (w->type == REDIS_REPLY_STRING
        && dg_window_state_decode(ws, w->str, w->len, now, c->window_ms,
                                  &err)
           != 0)
    {
        ctl_fail(CTL_EXIT_REDIS, "key %s: the window value is %s: this "
                 "distill-guard-ctl does not match the module", key_id, err);
    }

    ev = ctl_events_scan(c);
    e = ctl_last_event(ev, key_id);
    sig = e ? ctl_field(e->element[1], "signals") : "";

    if (c->json) {
        recs = json_array();

        for (i = 0; i < ws->nrec; i++) {
            rec = &ws->rec[i];
            snprintf(buf, 4, "%03x", rec->head);
            snprintf(buf + 4, 4, "%03x", rec->tail);
            snprintf(buf + 8, 5, "%04x", rec->sent);
            snprintf(buf + 16, 5, "%04x", rec->opening);
            json_array_append_new(recs, json_pack(
                "{s:I, s:I, s:i, s:s, s:b, s:b, s:b, s:s, s:s, s:s, s:s}",
                "ts_ms", (json_int_t) rec->ts,
                "age_ms", (json_int_t) rec->age_ms,
                "topic", (int) rec->topic,
                "provenance", ctl_provenance_name(rec->provenance),
                "single_turn", (int) rec->single_turn,
                "scripted", (int) rec->scripted,
                "cot", (int) rec->cot,
                "head", buf,
                "tail", buf + 4,
                "sent", buf + 8,
                "opening", buf + 16));
        }

        j = json_pack("{s:s, s:s, s:I, s:I, s:f, s:s, s:b}",
            "key_id", key_id,
            "state", ctl_state_name(&st),
            "penalty_end_ms", (json_int_t) st.penalty_end,
            "penalty_left_ms", (json_int_t) st.penalty_left,
            "flagged_score", score->type == REDIS_REPLY_STRING
                             ? strtod(score->str, NULL) : 0.0,
            "signals", sig,
            "has_window", w->type == REDIS_REPLY_STRING);

        if (w->type == REDIS_REPLY_STRING) {
            json_object_set_new(j, "window", json_pack(
                "{s:I, s:I, s:I, s:i, s:i, s:I, s:I, s:I, s:o, s:o}",
                "window_ms", (json_int_t) ws->window_ms,
                "ttl_ms", (json_int_t) ttl->integer,
                "now_ms", (json_int_t) now,
                "version", (int) ws->version,
                "ring", (int) ws->n,
                "subwindow_ms", (json_int_t) ws->subwindow_ms,
                "last_subwindow", (json_int_t) ws->last_subwindow,
                "newest_ms", (json_int_t) ws->newest_ms,
                "profile", ctl_profile_json(ws),
                "records", recs));

        } else {
            json_decref(recs);
        }

        ctl_print_json(j);
        goto done;
    }

    ctl_duration(left, sizeof(left), st.penalty_left);
    printf("key_id          %s\n", key_id);
    printf("state           %s\n", ctl_state_name(&st));

    if (st.penalty_end) {
        ctl_time(buf, sizeof(buf), st.penalty_end);
        printf("penalty_end     %s (%s left)\n", buf, left);
    } else {
        printf("penalty_end     -\n");
    }

    if (score->type == REDIS_REPLY_STRING) {
        printf("flagged_score   %.3f\n", strtod(score->str, NULL));
    }

    printf("signals         %s\n", sig[0] ? sig : "-");

    if (w->type != REDIS_REPLY_STRING) {
        printf("window          none (no request for one window)\n");
        goto done;
    }

    printf("window          %llu ms, expires in %lld ms, %u of %d ring "
           "records, sub-windows of %u ms\n",
           (unsigned long long) ws->window_ms, ttl->integer, ws->n, DG_WS_RING,
           ws->subwindow_ms);
    printf("requests        %llu\n", (unsigned long long) ws->requests);
    printf("sample          %llu\n", (unsigned long long) ws->sample);
    printf("topics          %llu (entropy %.3f bits)\n",
           (unsigned long long) ws->topics,
           ws->topic_entropy_milli / 1000.0);
    printf("templates       %llu (top share %.3f)\n",
           (unsigned long long) ws->templates,
           ws->top_template_share_milli / 1000.0);
    printf("single_turn     %.3f\n", ws->single_turn_share_milli / 1000.0);
    printf("cot             %.3f\n", ws->cot_share_milli / 1000.0);
    printf("verified        %.3f\n", ws->verified_milli / 1000.0);
    printf("fabricated      %.3f\n", ws->fabricated_milli / 1000.0);
    printf("prefix          %.3f\n", ws->prefix_milli / 1000.0);
    printf("scripted        %.3f\n", ws->scripted_milli / 1000.0);
    printf("gaps            mean %llu ms, cv %.3f\n",
           (unsigned long long) ws->gap_mean_ms, ws->gap_cv_milli / 1000.0);
    printf("bytes           %llu\n", (unsigned long long) ws->bytes);

    from = (c->all || ws->nrec <= 20) ? 0 : ws->nrec - 20;
    printf("\n%-6s  %-10s  %-5s  %-10s  %-6s  %-3s  %-8s  %-4s  %-4s  "
           "%-4s  %s\n", "#", "AGE_MS", "TOPIC", "PROVENANCE", "SINGLE",
           "COT", "SCRIPTED", "HEAD", "TAIL", "SENT", "OPENING");

    for (i = from; i < ws->nrec; i++) {
        rec = &ws->rec[i];
        printf("%-6u  %-10llu  %-5u  %-10s  %-6s  %-3s  %-8s  %03x   %03x   "
               "%04x  %04x\n", i + 1, (unsigned long long) rec->age_ms,
               rec->topic, ctl_provenance_name(rec->provenance),
               rec->single_turn ? "yes" : "no", rec->cot ? "yes" : "no",
               rec->scripted ? "yes" : "no", rec->head, rec->tail,
               rec->sent, rec->opening);
    }

done:

    free(ws);
    freeReplyObject(w);
    freeReplyObject(ttl);
    freeReplyObject(score);
    freeReplyObject(ev);

    return 0;
}


static void
ctl_print_event(ctl_t *c, redisReply *e)
{
    char                 when[64];
    redisReply          *f;
    unsigned long long   ms;

    f = e->element[1];
    ms = strtoull(e->element[0]->str, NULL, 10);

    if (c->json) {
        ctl_print_json(json_pack("{s:s, s:I, s:s, s:s, s:s, s:f, s:s, s:s}",
            "id", e->element[0]->str,
            "time_ms", (json_int_t) ms,
            "key_id", ctl_field(f, "key_id"),
            "from", ctl_field(f, "from"),
            "to", ctl_field(f, "to"),
            "score", strtod(ctl_field(f, "score"), NULL),
            "signals", ctl_field(f, "signals"),
            "by", ctl_field(f, "by")));
        return;
    }

    ctl_time(when, sizeof(when), ms);
    printf("%s  %s  %-8s -> %-8s  score %s  signals %s%s%s\n", when,
           ctl_field(f, "key_id"), ctl_field(f, "from"),
           ctl_field(f, "to"), ctl_field(f, "score"),
           ctl_field(f, "signals")[0] ? ctl_field(f, "signals") : "-",
           ctl_field(f, "by")[0] ? "  by " : "", ctl_field(f, "by"));
}


static int
ctl_events(ctl_t *c)
{
    char         name[CTL_ARG_MAX], count[32], last[64];
    size_t       i;
    redisReply  *r, *s;

    ctl_key_name(c, name, sizeof(name), NULL, "events");
    snprintf(count, sizeof(count), "%ld", c->count);

    r = ctl_cmd(c, "XREVRANGE", name, "+", "-", "COUNT", count, NULL);

    for (i = r->elements; i > 0; i--) {
        ctl_print_event(c, r->element[i - 1]);
    }

    snprintf(last, sizeof(last), "%s",
             r->elements ? r->element[0]->element[0]->str : "$");
    freeReplyObject(r);

    fflush(stdout);

    while (c->follow) {
        /* block for a second at a time: the read timeout is longer */
        r = ctl_cmd(c, "XREAD", "COUNT", "100", "BLOCK", "1000", "STREAMS",
                    name, last, NULL);

        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            s = r->element[0]->element[1];

            for (i = 0; i < s->elements; i++) {
                ctl_print_event(c, s->element[i]);
                snprintf(last, sizeof(last), "%s",
                         s->element[i]->element[0]->str);
            }

            fflush(stdout);
        }

        freeReplyObject(r);
    }

    return 0;
}


/* EXEC of a release's transaction; fails when anything in it failed */
static void
ctl_release_exec(ctl_t *c, const char *key_id)
{
    size_t       i;
    redisReply  *r;

    r = ctl_cmd(c, "EXEC", NULL);

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
            ctl_fail(CTL_EXIT_REDIS, "redis release of %s: %s", key_id,
                     r->element[i]->str);
        }
    }

    if (r->type != REDIS_REPLY_ARRAY) {
        ctl_fail(CTL_EXIT_REDIS, "redis release of %s: the transaction "
                 "was aborted", key_id);
    }

    freeReplyObject(r);
}


static int
ctl_release(ctl_t *c, const char *key_id)
{
    char          sname[CTL_ARG_MAX], wname[CTL_ARG_MAX];
    char          pname[CTL_ARG_MAX], tname[CTL_ARG_MAX];
    char          fname[CTL_ARG_MAX], ename[CTL_ARG_MAX], score[32];
    char          maxlen[16], ttl[16], bst[16], bpu[16], brt[16];
    redisReply   *r;
    ctl_state_t   st;
    long long     had_window;

    ctl_get_state(c, key_id, ctl_now_ms(c), &st);

    ctl_key_name(c, sname, sizeof(sname), key_id, "s");
    ctl_key_name(c, wname, sizeof(wname), key_id, "w");
    ctl_key_name(c, pname, sizeof(pname), key_id, "p");
    ctl_key_name(c, tname, sizeof(tname), key_id, "t");
    ctl_key_name(c, fname, sizeof(fname), NULL, "flagged");
    ctl_key_name(c, ename, sizeof(ename), NULL, "events");

    r = ctl_cmd(c, "ZSCORE", fname, key_id, NULL);
    snprintf(score, sizeof(score), "%.3f",
             r->type == REDIS_REPLY_STRING ? strtod(r->str, NULL) : 0.0);
    freeReplyObject(r);

    /* last before the transaction: on a cluster, on the key's node */
    r = ctl_cmd(c, "EXISTS", wname, NULL);
    had_window = r->integer;
    freeReplyObject(r);

    if (!st.exists && !had_window) {
        ctl_fail(CTL_EXIT_MISSING, "key %s: no state and no window in "
                 "Redis under prefix \"%s\": nothing to release", key_id,
                 c->prefix);
    }

    snprintf(maxlen, sizeof(maxlen), "%d", DG_EVENTS_MAX);
    snprintf(ttl, sizeof(ttl), "%d", DG_MONITOR_TTL_MS);

    /*
     * one transaction: a node never sees half a release.  On a cluster
     * the events stream lives on another slot, so the transaction holds
     * the key's own keys (the EXISTS above brought the connection to
     * their node) and the event follows it
     */
    freeReplyObject(ctl_cmd(c, "MULTI", NULL));

    if (st.exists) {
        /* the state hash keeps its TTL; the limiters start afresh */
        freeReplyObject(ctl_cmd(c, "HSET", sname, "st", "0", "pu", "0",
                                "rt", "0", NULL));
    }

    /* the throttle's period ends with the penalty */
    freeReplyObject(ctl_cmd(c, "DEL", tname, NULL));

    if (!c->keep_window) {
        /* the window and its pending log (doc/redis-keys.md) */
        freeReplyObject(ctl_cmd(c, "DEL", wname, pname, NULL));

    } else if (had_window) {
        /*
         * the window's header holds the limiter's state too, which the
         * script reads instead of the hash (doc/redis-keys.md): cleared
         */
        snprintf(bst, sizeof(bst), "%d", DG_WIN_STATE_OFF * 8);
        snprintf(bpu, sizeof(bpu), "%d", (DG_WIN_STATE_OFF + 1) * 8);
        snprintf(brt, sizeof(brt), "%d", (DG_WIN_STATE_OFF + 13) * 8);

        freeReplyObject(ctl_cmd(c, "BITFIELD", wname,
                                "SET", "u8", bst, "0",      /* state */
                                "SET", "u48", bpu, "0",     /* pu */
                                "SET", "u48", brt, "0",     /* rt */
                                NULL));
    }

    if (c->cluster) {
        ctl_release_exec(c, key_id);

        /* to the stream's node first: a MOVED inside MULTI would leave
         * the transaction behind */
        freeReplyObject(ctl_cmd(c, "EXISTS", ename, NULL));
        freeReplyObject(ctl_cmd(c, "MULTI", NULL));
    }

    freeReplyObject(ctl_cmd(c, "XADD", ename, "MAXLEN", "~", maxlen, "*",
                            "key_id", key_id,
                            "from", st.exists ? ctl_state_str(st.state)
                                              : "pass",
                            "to", "pass", "score", score, "signals", "",
                            "by", "distill-guard-ctl release", NULL));
    freeReplyObject(ctl_cmd(c, "PEXPIRE", ename, ttl, NULL));

    ctl_release_exec(c, key_id);

    if (c->json) {
        ctl_print_json(json_pack("{s:s, s:s, s:s, s:b}",
            "key_id", key_id,
            "from", st.exists ? ctl_state_str(st.state) : "pass",
            "to", "pass",
            "window_deleted", !c->keep_window && had_window));

    } else {
        printf("released %s: %s -> pass%s\n", key_id,
               st.exists ? ctl_state_str(st.state) : "pass",
               (!c->keep_window && had_window) ? ", window deleted" : "");
    }

    return 0;
}


enum {
    CTL_OPT_USER = 256,
    CTL_OPT_PASSWORD_FILE,
    CTL_OPT_PREFIX,
    CTL_OPT_SECRET_FILE,
    CTL_OPT_WINDOW,
    CTL_OPT_JSON,
    CTL_OPT_FOLLOW,
    CTL_OPT_COUNT,
    CTL_OPT_ALL,
    CTL_OPT_KEEP_WINDOW,
    CTL_OPT_KEY,
    CTL_OPT_HELP
};


static const struct option  ctl_options[] = {
    { "nginx-conf", required_argument, NULL, 'c' },
    { "redis", required_argument, NULL, 'r' },
    { "host", required_argument, NULL, 'h' },
    { "port", required_argument, NULL, 'p' },
    { "socket", required_argument, NULL, 's' },
    { "db", required_argument, NULL, 'n' },
    { "user", required_argument, NULL, CTL_OPT_USER },
    { "password-file", required_argument, NULL, CTL_OPT_PASSWORD_FILE },
    { "prefix", required_argument, NULL, CTL_OPT_PREFIX },
    { "secret-file", required_argument, NULL, CTL_OPT_SECRET_FILE },
    { "window", required_argument, NULL, CTL_OPT_WINDOW },
    { "json", no_argument, NULL, CTL_OPT_JSON },
    { "follow", no_argument, NULL, CTL_OPT_FOLLOW },
    { "count", required_argument, NULL, CTL_OPT_COUNT },
    { "all", no_argument, NULL, CTL_OPT_ALL },
    { "keep-window", no_argument, NULL, CTL_OPT_KEEP_WINDOW },
    { "key", no_argument, NULL, CTL_OPT_KEY },
    { "help", no_argument, NULL, CTL_OPT_HELP },
    { NULL, 0, NULL, 0 }
};


int
main(int argc, char **argv)
{
    int          opt, n;
    char        *end, *args[32], redis[CTL_ARG_MAX], id[DG_KEY_ID_LEN + 1];
    long         top;
    ctl_t        c;
    const char  *cmd, *env;

    memset(&c, 0, sizeof(ctl_t));
    strcpy(c.host, "127.0.0.1");
    c.port = 6379;
    strcpy(c.prefix, "dg");
    c.count = 20;

    /* options may follow the command, as in "events --follow" */
    while ((opt = getopt_long(argc, argv, "c:r:h:p:s:n:", ctl_options, NULL))
           != -1)
    {
        switch (opt) {

        case 'c':
            ctl_nginx_conf(&c, optarg);
            break;

        case 'r':
            ctl_copy(redis, sizeof(redis), optarg, strlen(optarg),
                     "--redis");
            n = ctl_split(redis, args, 32);
            if (n == 0) {
                ctl_fail(CTL_EXIT_USAGE, "--redis: no address");
            }
            ctl_redis_args(&c, args, n);
            break;

        case 'h':
            ctl_copy(c.host, sizeof(c.host), optarg, strlen(optarg),
                     "--host");
            c.unix_path[0] = '\0';
            break;

        case 'p':
            c.port = (int) strtol(optarg, &end, 10);
            if (*end != '\0' || c.port <= 0 || c.port > 65535) {
                ctl_fail(CTL_EXIT_USAGE, "invalid port \"%s\"", optarg);
            }
            break;

        case 's':
            ctl_copy(c.unix_path, sizeof(c.unix_path), optarg,
                     strlen(optarg), "--socket");
            break;

        case 'n':
            c.db = (int) strtol(optarg, &end, 10);
            if (*end != '\0' || c.db < 0) {
                ctl_fail(CTL_EXIT_USAGE, "invalid db \"%s\"", optarg);
            }
            break;

        case CTL_OPT_USER:
            ctl_copy(c.user, sizeof(c.user), optarg, strlen(optarg),
                     "--user");
            break;

        case CTL_OPT_PASSWORD_FILE:
            ctl_read_line(optarg, c.password, sizeof(c.password),
                          "password");
            break;

        case CTL_OPT_PREFIX:
            ctl_copy(c.prefix, sizeof(c.prefix), optarg, strlen(optarg),
                     "--prefix");
            break;

        case CTL_OPT_SECRET_FILE:
            ctl_read_line(optarg, c.secret, sizeof(c.secret), "secret");
            break;

        case CTL_OPT_WINDOW:
            c.window_ms = ctl_parse_time(optarg);
            break;

        case CTL_OPT_JSON:
            c.json = 1;
            break;

        case CTL_OPT_FOLLOW:
            c.follow = 1;
            break;

        case CTL_OPT_COUNT:
            c.count = strtol(optarg, &end, 10);
            if (*end != '\0' || c.count <= 0) {
                ctl_fail(CTL_EXIT_USAGE, "invalid count \"%s\"", optarg);
            }
            break;

        case CTL_OPT_ALL:
            c.all = 1;
            break;

        case CTL_OPT_KEEP_WINDOW:
            c.keep_window = 1;
            break;

        case CTL_OPT_KEY:
            c.key_stdin = 1;
            break;

        case CTL_OPT_HELP:
            fputs(ctl_usage_text, stdout);
            return 0;

        default:
            fputs(ctl_usage_text, stderr);
            return CTL_EXIT_USAGE;
        }
    }

    if (optind >= argc) {
        fputs(ctl_usage_text, stderr);
        return CTL_EXIT_USAGE;
    }

    env = getenv("DG_REDIS_PASSWORD");
    if (c.password[0] == '\0' && env && env[0]) {
        ctl_copy(c.password, sizeof(c.password), env, strlen(env),
                 "DG_REDIS_PASSWORD");
    }

    if (c.user[0] && c.password[0] == '\0') {
        ctl_fail(CTL_EXIT_USAGE, "--user needs a password");
    }

    if (strchr(c.prefix, '{') || strchr(c.prefix, '}') || !c.prefix[0]) {
        ctl_fail(CTL_EXIT_USAGE, "invalid prefix \"%s\"", c.prefix);
    }

    cmd = argv[optind];

    if (strcmp(cmd, "top") == 0) {
        top = 10;

        if (optind + 1 < argc) {
            top = strtol(argv[optind + 1], &end, 10);
            if (*end != '\0' || top <= 0 || top > DG_FLAGGED_MAX) {
                ctl_fail(CTL_EXIT_USAGE, "invalid count \"%s\": 1 to %d",
                         argv[optind + 1], DG_FLAGGED_MAX);
            }
        }

        ctl_connect(&c);
        return ctl_top(&c, top);
    }

    if (strcmp(cmd, "events") == 0) {
        ctl_connect(&c);
        return ctl_events(&c);
    }

    if (strcmp(cmd, "show") == 0 || strcmp(cmd, "release") == 0) {
        if (c.key_stdin) {
            ctl_key_from_stdin(&c, id);

        } else if (optind + 1 < argc) {
            ctl_check_key_id(argv[optind + 1]);
            ctl_copy(id, sizeof(id), argv[optind + 1],
                     strlen(argv[optind + 1]), "the key id");

        } else {
            ctl_fail(CTL_EXIT_USAGE, "%s: a key id, or --key with the raw "
                     "key on stdin", cmd);
        }

        ctl_connect(&c);

        return (cmd[0] == 's') ? ctl_show(&c, id) : ctl_release(&c, id);
    }

    ctl_fail(CTL_EXIT_USAGE, "unknown command \"%s\" (top, show, events, "
             "release)", cmd);
}
