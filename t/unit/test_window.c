/*
 * Unit tests of src/dg_window.c: the window and fan-out commands (argv,
 * hash tags, EVAL / EVALSHA, what is refused) and the window profile.
 */

#include "dg_test.h"

#include <inttypes.h>

#include <jansson.h>

#include "dg_window.h"


#define T_SHA       "0123456789abcdef0123456789abcdef01234567"
#define T_KEY_ID    "0a1b2c3d4e5f6789"
#define T_NOW_MS    UINT64_C(1700000012345)


typedef struct {
    dg_features_t       f;
    dg_window_req_t     req;
} t_req_t;


static void
t_req_init(t_req_t *t)
{
    memset(t, 0, sizeof(*t));

    t->f.bytes = 1234;
    t->f.topic = 4095;
    t->f.template_head = 0xabcd;
    t->f.template_tail = 0xfedcba98;
    t->f.topic_last = 17;
    t->f.sent = 0x89abcdef;
    t->f.turns = 1;
    t->f.cot = 0;

    t->req.prefix = "dg";
    t->req.prefix_len = 2;
    t->req.key_id = T_KEY_ID;
    t->req.window_ms = 60000;
    t->req.now_ms = T_NOW_MS;
    t->req.features = &t->f;
    t->req.subnet = "192.0.2";
}


/* argument i as a NUL-terminated string (test arguments are short) */
static const char *
t_arg(const dg_cmd_t *cmd, int i)
{
    static char  buf[1024];

    assert_true(i < cmd->argc);
    assert_true(cmd->argvlen[i] < sizeof(buf));

    memcpy(buf, cmd->argv[i], cmd->argvlen[i]);
    buf[cmd->argvlen[i]] = '\0';

    return buf;
}


static void
t_arg_eq(const dg_cmd_t *cmd, int i, const char *expect)
{
    assert_string_equal(t_arg(cmd, i), expect);
}


/* what Redis Cluster hashes: between the first '{' and the next '}' */
static const char *
t_hash_tag(const dg_cmd_t *cmd, int i)
{
    char        *open, *close;
    const char  *s;

    s = t_arg(cmd, i);
    open = strchr(s, '{');
    assert_non_null(open);
    close = strchr(open + 1, '}');
    assert_non_null(close);

    *close = '\0';

    return open + 1;
}


static int
t_in_buf(const dg_cmd_t *cmd, int i)
{
    return cmd->argv[i] >= cmd->buf
           && cmd->argv[i] + cmd->argvlen[i] <= cmd->buf + cmd->used
           && cmd->used <= sizeof(cmd->buf);
}


static void
test_window_cmd_evalsha(void **state)
{
    int       i;
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);

    t.req.throttle_ms = 10000;
    t.req.rate_ms = 500;
    t.req.rate_burst = 3;
    t.req.shadow = 1;

    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
    assert_int_equal(cmd.argc, 20);

    t_arg_eq(&cmd, 0, "EVALSHA");
    t_arg_eq(&cmd, 1, T_SHA);
    t_arg_eq(&cmd, 2, "2");
    t_arg_eq(&cmd, 3, "dg:{" T_KEY_ID "}:w");
    t_arg_eq(&cmd, 4, "dg:{" T_KEY_ID "}:s");
    t_arg_eq(&cmd, 5, "60000");
    t_arg_eq(&cmd, 6, "4095");
    t_arg_eq(&cmd, 7, "43981");
    t_arg_eq(&cmd, 8, "4275878552");
    t_arg_eq(&cmd, 9, "1");
    t_arg_eq(&cmd, 10, "1234");
    t_arg_eq(&cmd, 11, "");
    t_arg_eq(&cmd, 12, "10000");
    t_arg_eq(&cmd, 13, "500");
    t_arg_eq(&cmd, 14, "3");
    t_arg_eq(&cmd, 15, "1");
    t_arg_eq(&cmd, 16, "17");
    t_arg_eq(&cmd, 17, "2309737967");
    t_arg_eq(&cmd, 18, "0");
    t_arg_eq(&cmd, 19, "0");

    assert_string_equal(t_hash_tag(&cmd, 3), T_KEY_ID);
    assert_string_equal(t_hash_tag(&cmd, 4), T_KEY_ID);

    /* no pointer into the caller's strings: all of it in cmd->buf */
    for (i = 0; i < cmd.argc; i++) {
        assert_true(t_in_buf(&cmd, i));
    }
}


static void
test_window_cmd_eval(void **state)
{
    int       i;
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);

    assert_int_equal(dg_window_cmd(&cmd, &t.req, NULL), 0);
    assert_int_equal(cmd.argc, 20);

    t_arg_eq(&cmd, 0, "EVAL");
    assert_ptr_equal(cmd.argv[1], dg_window_lua);
    assert_int_equal(cmd.argvlen[1], dg_window_lua_len);
    assert_true(dg_window_lua_len > 0);
    assert_int_equal(strlen(dg_window_lua), dg_window_lua_len);
    assert_non_null(strstr(dg_window_lua, "redis.call('TIME')"));
    t_arg_eq(&cmd, 2, "2");
    t_arg_eq(&cmd, 3, "dg:{" T_KEY_ID "}:w");

    for (i = 0; i < cmd.argc; i++) {
        if (i != 1) {
            assert_true(t_in_buf(&cmd, i));
        }
    }
}


static void
test_window_cmd_flags(void **state)
{
    size_t    i;
    t_req_t   t;
    dg_cmd_t  cmd;

    /*
     * bit 0, one-shot, is "no history claimed" (prior 0), whatever the
     * turn count: [u1, u2] is one-shot, [u1, a1, tool] is not
     */
    static const struct {
        uint32_t     turns;
        uint32_t     prior;
        uint32_t     cot;
        const char  *flags;
    } cases[] = {
        { 0, 0, 0, "1" },
        { 1, 0, 0, "1" },
        { 2, 0, 0, "1" },
        { 7, 0, 0, "1" },
        { 3, 1, 0, "0" },
        { 1, 0xffffffff, 0, "0" },
        { 1, 0, 1, "3" },
        { 2, 0, 5, "3" },
        { 2, 5, 5, "2" },
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t_req_init(&t);
        t.f.turns = cases[i].turns;
        t.f.prior = cases[i].prior;
        t.f.cot = cases[i].cot;
        t.f.template_head = 0;
        t.f.template_tail = 0;
        t.f.topic = 0;
        t.f.bytes = 0;

        assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
        t_arg_eq(&cmd, 6, "0");
        t_arg_eq(&cmd, 7, "0");
        t_arg_eq(&cmd, 8, "0");
        t_arg_eq(&cmd, 9, cases[i].flags);
        t_arg_eq(&cmd, 10, "0");
    }
}


/* ARGV[12..15]: topic_last, sent, prior, history (src/dg_window.lua) */

static void
test_window_cmd_history(void **state)
{
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);
    t.f.turns = 5;
    t.f.topic = 12;
    t.f.topic_last = 4095;
    t.f.sent = 1;
    t.f.prior = 0xffffffff;
    t.f.opening = 0x80000000;

    assert_int_equal(dg_window_cmd(&cmd, &t.req, NULL), 0);
    assert_int_equal(cmd.argc, 20);
    t_arg_eq(&cmd, 6, "12");
    t_arg_eq(&cmd, 9, "0");
    t_arg_eq(&cmd, 16, "4095");
    t_arg_eq(&cmd, 17, "1");
    t_arg_eq(&cmd, 18, "4294967295");
    t_arg_eq(&cmd, 19, "2147483648");

    /* the longest numbers and a long prefix still fit cmd->buf */
    t.f.bytes = UINT32_MAX;
    t.f.template_head = UINT32_MAX;
    t.f.template_tail = UINT32_MAX;
    t.f.sent = UINT32_MAX;
    t.f.opening = UINT32_MAX;
    t.f.cot = 1;
    t.req.throttle_ms = UINT64_MAX;
    t.req.rate_ms = UINT64_MAX;
    t.req.rate_burst = UINT32_MAX;
    t.req.window_ms = UINT64_C(2147483647);
    t.req.prefix = "distill-guard:production:eu-west-1";
    t.req.prefix_len = strlen(t.req.prefix);

    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
    assert_int_equal(cmd.argc, 20);
    assert_true(cmd.used <= sizeof(cmd.buf));
    t_arg_eq(&cmd, 9, "2");
    t_arg_eq(&cmd, 12, "18446744073709551615");
    t_arg_eq(&cmd, 19, "4294967295");
}


static void
test_window_cmd_prefix(void **state)
{
    char      prefix[700];
    size_t    len;
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);

    /* the prefix need not be NUL-terminated: prefix_len counts */
    t.req.prefix = "distill-guard:prod-xyz";
    t.req.prefix_len = 18;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
    t_arg_eq(&cmd, 3, "distill-guard:prod:{" T_KEY_ID "}:w");

    memset(prefix, 'p', sizeof(prefix));
    t.req.prefix = prefix;

    /* too long for cmd->buf */
    t.req.prefix_len = sizeof(prefix);
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    /* the longest that fits works, one more byte does not */
    for (len = sizeof(prefix); len > 0; len--) {
        t.req.prefix_len = len;
        if (dg_window_cmd(&cmd, &t.req, T_SHA) == 0) {
            break;
        }
    }

    /* both keys carry the prefix: about half the storage each */
    assert_true(len > 200);
    assert_true(cmd.used <= sizeof(cmd.buf));
    assert_int_equal(cmd.argvlen[3], len + sizeof(":{" T_KEY_ID "}:w") - 1);

    t.req.prefix_len = len + 1;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    /* a brace would move the hash tag off the key id */
    t.req.prefix = "dg{x}";
    t.req.prefix_len = 5;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    t.req.prefix = "dg";
    t.req.prefix_len = 2;
    t.req.key_id = "ab}cd";
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);
}


static void
test_window_cmd_invalid(void **state)
{
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);
    t.req.features = NULL;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    t_req_init(&t);
    t.req.key_id = NULL;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    t_req_init(&t);
    t.req.key_id = "";
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    t_req_init(&t);
    t.req.prefix = NULL;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);

    t_req_init(&t);
    t.req.window_ms = 0;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), -1);

    /* the script keeps 32-bit timestamps: window < 2^31 ms */
    t.req.window_ms = UINT64_C(2147483648);
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), -1);
    t.req.window_ms = UINT64_C(2147483647);
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
    t_arg_eq(&cmd, 5, "2147483647");
}


static void
test_fanout_cmd_head_tail(void **state)
{
    int       i;
    char      cur[64], next[64], conv[64];
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);

    /* bucket = now / window */
    snprintf(cur, sizeof(cur), "dg:{h:0000abcd}:%" PRIu64,
             T_NOW_MS / 60000);
    snprintf(next, sizeof(next), "dg:{h:0000abcd}:%" PRIu64,
             T_NOW_MS / 60000 + 1);
    snprintf(conv, sizeof(conv), "dg:{h:0000abcd}:c%" PRIu64,
             T_NOW_MS / 60000);

    /* count mode: the third key is the conversation HLL, read only */
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), 0);
    assert_int_equal(cmd.argc, 8);
    t_arg_eq(&cmd, 0, "EVALSHA");
    t_arg_eq(&cmd, 1, T_SHA);
    t_arg_eq(&cmd, 2, "3");
    t_arg_eq(&cmd, 3, cur);
    t_arg_eq(&cmd, 4, next);
    t_arg_eq(&cmd, 5, conv);
    t_arg_eq(&cmd, 6, T_KEY_ID);
    t_arg_eq(&cmd, 7, "60000");
    assert_string_equal(t_hash_tag(&cmd, 3), "h:0000abcd");
    assert_string_equal(t_hash_tag(&cmd, 4), "h:0000abcd");
    assert_string_equal(t_hash_tag(&cmd, 5), "h:0000abcd");

    for (i = 0; i < cmd.argc; i++) {
        assert_true(t_in_buf(&cmd, i));
    }

    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), 0);
    assert_int_equal(cmd.argc, 8);
    t_arg_eq(&cmd, 2, "3");
    assert_string_equal(t_hash_tag(&cmd, 3), "t:fedcba98");
    assert_string_equal(t_hash_tag(&cmd, 4), "t:fedcba98");
    assert_string_equal(t_hash_tag(&cmd, 5), "t:fedcba98");

    /* a bucket boundary: the names move on by one */
    t.req.window_ms = 1000;
    t.req.now_ms = 5999;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), 0);
    t_arg_eq(&cmd, 3, "dg:{t:fedcba98}:5");
    t_arg_eq(&cmd, 4, "dg:{t:fedcba98}:6");
    t_arg_eq(&cmd, 5, "dg:{t:fedcba98}:c5");
    t_arg_eq(&cmd, 7, "1000");
    t.req.now_ms = 6000;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), 0);
    t_arg_eq(&cmd, 3, "dg:{t:fedcba98}:6");
    t_arg_eq(&cmd, 4, "dg:{t:fedcba98}:7");
    t_arg_eq(&cmd, 5, "dg:{t:fedcba98}:c6");

    /* the old one-shot test (turns <= 1) is gone: [u1, u2] counts */
    t.f.turns = 2;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), 0);
    assert_int_equal(cmd.argc, 8);
}


static void
test_fanout_cmd_subnet(void **state)
{
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);
    t.req.window_ms = 10000;
    t.req.now_ms = 123456;

    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, NULL), 0);
    assert_int_equal(cmd.argc, 7);
    t_arg_eq(&cmd, 0, "EVAL");
    assert_ptr_equal(cmd.argv[1], dg_fanout_lua);
    assert_int_equal(cmd.argvlen[1], dg_fanout_lua_len);
    assert_non_null(strstr(dg_fanout_lua, "PFADD"));
    t_arg_eq(&cmd, 2, "2");
    t_arg_eq(&cmd, 3, "dg:{n:192.0.2}:12");
    t_arg_eq(&cmd, 4, "dg:{n:192.0.2}:13");
    t_arg_eq(&cmd, 5, T_KEY_ID);
    t_arg_eq(&cmd, 6, "10000");

    t.req.subnet = "2001:db8:1";
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA), 0);
    assert_string_equal(t_hash_tag(&cmd, 3), "n:2001:db8:1");
    assert_string_equal(t_hash_tag(&cmd, 4), "n:2001:db8:1");

    t.req.subnet = "10.{0}";
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA),
                     -1);
}


static void
test_fanout_cmd_nothing(void **state)
{
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);
    t.f.template_head = 0;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), 1);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), 0);

    t_req_init(&t);
    t.f.template_tail = 0;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, NULL), 1);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, NULL), 0);

    /* a claimed history: its network counts, its template not */
    t_req_init(&t);
    t.f.turns = 3;
    t.f.prior = 0x1234;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), 1);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), 1);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA), 0);

    t_req_init(&t);
    t.req.subnet = NULL;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA), 1);
    t.req.subnet = "";
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA), 1);

    /* no features: no fingerprint; the subnet does not need them */
    t_req_init(&t);
    t.req.features = NULL;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA), 0);

    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_N, T_SHA), -1);
}


static void
test_fanout_cmd_prefix(void **state)
{
    char      prefix[400];
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);
    memset(prefix, 'p', sizeof(prefix));
    t.req.prefix = prefix;

    /* two key names of it do not fit */
    t.req.prefix_len = sizeof(prefix);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), -1);
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_SUBNET, T_SHA),
                     -1);

    /* nothing to count wins over a bad prefix: nothing is sent */
    t.f.template_head = 0;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), 1);

    t.req.prefix_len = 100;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), 0);
    assert_true(cmd.used <= sizeof(cmd.buf));

    t.req.prefix = "a}b";
    t.req.prefix_len = 3;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, T_SHA), -1);
}


/* conv mode: a verified conversation opened with this template */

static void
test_fanout_conv_cmd(void **state)
{
    int       i;
    char      cur[64], next[64];
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);
    t.f.turns = 3;
    t.f.prior = 0x1234;
    t.f.conv_head = 0x1f;
    t.f.conv_tail = 0xc0ffee00;

    snprintf(cur, sizeof(cur), "dg:{h:0000001f}:c%" PRIu64,
             T_NOW_MS / 60000);
    snprintf(next, sizeof(next), "dg:{h:0000001f}:c%" PRIu64,
             T_NOW_MS / 60000 + 1);

    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), 0);
    assert_int_equal(cmd.argc, 8);
    t_arg_eq(&cmd, 0, "EVALSHA");
    t_arg_eq(&cmd, 1, T_SHA);
    t_arg_eq(&cmd, 2, "2");
    t_arg_eq(&cmd, 3, cur);
    t_arg_eq(&cmd, 4, next);
    t_arg_eq(&cmd, 5, T_KEY_ID);
    t_arg_eq(&cmd, 6, "60000");
    t_arg_eq(&cmd, 7, "conv");
    assert_string_equal(t_hash_tag(&cmd, 3), "h:0000001f");
    assert_string_equal(t_hash_tag(&cmd, 4), "h:0000001f");

    for (i = 0; i < cmd.argc; i++) {
        assert_true(t_in_buf(&cmd, i));
    }

    /* the tail, by EVAL; a bucket boundary moves the names on */
    t.req.window_ms = 1000;
    t.req.now_ms = 5999;
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_TAIL, NULL),
                     0);
    assert_int_equal(cmd.argc, 8);
    t_arg_eq(&cmd, 0, "EVAL");
    assert_ptr_equal(cmd.argv[1], dg_fanout_lua);
    assert_int_equal(cmd.argvlen[1], dg_fanout_lua_len);
    t_arg_eq(&cmd, 3, "dg:{t:c0ffee00}:c5");
    t_arg_eq(&cmd, 4, "dg:{t:c0ffee00}:c6");
    t_arg_eq(&cmd, 6, "1000");
    t_arg_eq(&cmd, 7, "conv");

    /* the conversation's frame, not the request's own template */
    t.f.template_head = 0xabcd;
    t.f.template_tail = 0;
    t.f.conv_tail = 0xabcd;
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_TAIL, NULL),
                     0);
    t_arg_eq(&cmd, 3, "dg:{t:0000abcd}:c5");

    /* the count mode reads what conv mode writes: the same names */
    t.f.prior = 0;
    t.f.template_tail = 0xabcd;
    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_TAIL, NULL), 0);
    t_arg_eq(&cmd, 5, "dg:{t:0000abcd}:c5");
}


static void
test_fanout_conv_cmd_nothing(void **state)
{
    char      prefix[400];
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    /* no conversation frame: nothing to add */
    t_req_init(&t);
    assert_int_equal(t.f.conv_head, 0);
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), 1);
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_TAIL,
                                        T_SHA), 1);

    t.f.conv_head = 7;
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), 0);
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_TAIL,
                                        T_SHA), 1);

    /* networks have no conversations */
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_SUBNET,
                                        T_SHA), -1);
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_N, T_SHA),
                     -1);

    /* invalid requests */
    t_req_init(&t);
    t.f.conv_head = 7;
    t.req.features = NULL;
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), -1);

    t_req_init(&t);
    t.f.conv_head = 7;
    t.req.window_ms = 0;
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), -1);

    t_req_init(&t);
    t.f.conv_head = 7;
    t.req.key_id = "a{b";
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), -1);

    t_req_init(&t);
    t.f.conv_head = 7;
    memset(prefix, 'p', sizeof(prefix));
    t.req.prefix = prefix;
    t.req.prefix_len = sizeof(prefix);
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), -1);

    t.req.prefix_len = 200;
    assert_int_equal(dg_fanout_conv_cmd(&cmd, &t.req, DG_FANOUT_HEAD,
                                        T_SHA), 0);
    assert_true(cmd.used <= sizeof(cmd.buf));
}


/* count-mode replies { keys, conversation keys } */

static void
test_fanout_reply(void **state)
{
    int64_t       v[2];
    dg_profile_t  prof;

    (void) state;

    memset(&prof, 0, sizeof(prof));

    /* the head's template: 5 keys, 1 with conversations */
    v[0] = 5;
    v[1] = 1;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_HEAD, v, 2), 0);
    assert_int_equal(prof.template_keys, 5);
    assert_int_equal(prof.template_conv, 1);

    /* the tail's, shared by more keys: it is the one kept, whole */
    v[0] = 9;
    v[1] = 0;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_TAIL, v, 2), 0);
    assert_int_equal(prof.template_keys, 9);
    assert_int_equal(prof.template_conv, 0);

    /* fewer keys: not taken, whatever its conversations */
    v[0] = 8;
    v[1] = 8;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_HEAD, v, 2), 0);
    assert_int_equal(prof.template_keys, 9);
    assert_int_equal(prof.template_conv, 0);

    /* as many keys: the one with more conversations */
    v[0] = 9;
    v[1] = 4;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_HEAD, v, 2), 0);
    assert_int_equal(prof.template_keys, 9);
    assert_int_equal(prof.template_conv, 4);

    /* the network is kept apart: the template stays */
    v[0] = 50;
    v[1] = 7;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_SUBNET, v, 2), 0);
    assert_int_equal(prof.subnet_keys, 50);
    assert_int_equal(prof.template_keys, 9);
    assert_int_equal(prof.template_conv, 4);

    v[0] = 3;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_SUBNET, v, 1), 0);
    assert_int_equal(prof.subnet_keys, 3);

    /* a template never makes subnet_keys */
    v[0] = 60;
    v[1] = 0;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_TAIL, v, 2), 0);
    assert_int_equal(prof.template_keys, 60);
    assert_int_equal(prof.subnet_keys, 3);

    /* one element (an older script): no conversation count */
    memset(&prof, 0, sizeof(prof));
    v[0] = 4;
    v[1] = 99;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_TAIL, v, 1), 0);
    assert_int_equal(prof.template_keys, 4);
    assert_int_equal(prof.template_conv, 0);

    /* a negative count is none */
    memset(&prof, 0, sizeof(prof));
    v[0] = 4;
    v[1] = -3;
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_TAIL, v, 2), 0);
    assert_int_equal(prof.template_conv, 0);

    /* nothing to read */
    memset(&prof, 0, sizeof(prof));
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_HEAD, v, 0), -1);
    assert_int_equal(dg_fanout_reply(&prof, DG_FANOUT_SUBNET, v, 0), -1);
    assert_int_equal(prof.template_keys, 0);
    assert_int_equal(prof.subnet_keys, 0);
}


static void
t_profile_fill(int64_t *v)
{
    v[DG_PROF_REQUESTS] = 1500;
    v[DG_PROF_SAMPLE] = 128;
    v[DG_PROF_TOPICS] = 12;
    v[DG_PROF_TOPIC_ENTROPY_MILLI] = 3140;
    v[DG_PROF_TEMPLATES] = 2;
    v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI] = 500;
    v[DG_PROF_SINGLE_TURN_SHARE_MILLI] = 1000;
    v[DG_PROF_COT_SHARE_MILLI] = 0;
    v[DG_PROF_GAP_MEAN_MS] = 40;
    v[DG_PROF_GAP_CV_MILLI] = 123;
    v[DG_PROF_BYTES] = 98765;
}


static void
test_profile_set(void **state)
{
    size_t        i;
    int64_t       v[DG_PROF_NFIELDS + 3];
    dg_profile_t  prof;

    (void) state;

    memset(&prof, 0, sizeof(prof));
    prof.template_keys = 7;
    prof.subnet_keys = 9;

    t_profile_fill(v);

    /* too short: refused, nothing changed */
    assert_int_equal(dg_profile_set(&prof, v, DG_PROF_NFIELDS - 1), -1);
    assert_int_equal(prof.v[DG_PROF_REQUESTS], 0);
    assert_int_equal(dg_profile_set(&prof, v, 0), -1);

    assert_int_equal(dg_profile_set(&prof, v, DG_PROF_NFIELDS), 0);

    for (i = 0; i < DG_PROF_NFIELDS; i++) {
        assert_int_equal(prof.v[i], v[i]);
    }

    /* the fan-out replies may have come first (a NOSCRIPT retry) */
    assert_int_equal(prof.template_keys, 7);
    assert_int_equal(prof.subnet_keys, 9);

    /* later fields trail: ignored */
    v[DG_PROF_NFIELDS] = -1;
    v[DG_PROF_NFIELDS + 1] = 42;
    v[DG_PROF_NFIELDS + 2] = 43;
    v[DG_PROF_REQUESTS] = 1501;
    assert_int_equal(dg_profile_set(&prof, v, DG_PROF_NFIELDS + 3), 0);
    assert_int_equal(prof.v[DG_PROF_REQUESTS], 1501);
    assert_int_equal(prof.v[DG_PROF_BYTES], 98765);
    assert_int_equal(prof.template_keys, 7);

    /* the limiter's fields, as far as they came */
    assert_int_equal(prof.state, -1);
    assert_int_equal(prof.penalty_ms, 42);
    assert_int_equal(prof.refused, 43);
    assert_int_equal(prof.retry_ms, 0);
    assert_int_equal(prof.now_ms, 0);
    assert_int_equal(prof.verified_milli, 0);
    assert_int_equal(prof.provenance, 0);
}


/* the whole reply: profile, limiter and provenance (DG_PROV_*) */

static void
test_profile_set_provenance(void **state)
{
    size_t        i;
    int64_t       v[DG_REPLY_NFIELDS + 2];
    dg_profile_t  prof;

    (void) state;

    memset(&prof, 0, sizeof(prof));
    prof.template_keys = 7;
    prof.template_conv = 2;
    prof.subnet_keys = 9;

    t_profile_fill(v);

    for (i = DG_PROF_NFIELDS; i < sizeof(v) / sizeof(v[0]); i++) {
        v[i] = 100 + (int64_t) i;
    }

    v[DG_PROV_VERIFIED_MILLI] = 250;
    v[DG_PROV_FABRICATED_MILLI] = 700;
    v[DG_PROV_PREFIX_MILLI] = 50;
    v[DG_PROV_THIS] = DG_PROVENANCE_FABRICATED;

    assert_int_equal(dg_profile_set(&prof, v, DG_REPLY_NFIELDS), 0);
    assert_int_equal(prof.v[DG_PROF_REQUESTS], 1500);
    assert_int_equal(prof.state, 100 + DG_LIM_STATE);
    assert_int_equal(prof.now_ms, 100 + DG_LIM_NOW_MS);
    assert_int_equal(prof.verified_milli, 250);
    assert_int_equal(prof.fabricated_milli, 700);
    assert_int_equal(prof.prefix_milli, 50);
    assert_int_equal(prof.provenance, DG_PROVENANCE_FABRICATED);

    /* from the fan-out replies: kept */
    assert_int_equal(prof.template_keys, 7);
    assert_int_equal(prof.template_conv, 2);
    assert_int_equal(prof.subnet_keys, 9);

    /* later fields trail: ignored */
    assert_int_equal(dg_profile_set(&prof, v, DG_REPLY_NFIELDS + 2), 0);
    assert_int_equal(prof.provenance, DG_PROVENANCE_FABRICATED);
    assert_int_equal(prof.verified_milli, 250);

    /* an older script: the fields that did not come are 0, not kept */
    assert_int_equal(dg_profile_set(&prof, v, DG_PROV_PREFIX_MILLI), 0);
    assert_int_equal(prof.verified_milli, 250);
    assert_int_equal(prof.fabricated_milli, 700);
    assert_int_equal(prof.prefix_milli, 0);
    assert_int_equal(prof.provenance, 0);

    assert_int_equal(dg_profile_set(&prof, v, DG_LIM_END), 0);
    assert_int_equal(prof.now_ms, 100 + DG_LIM_NOW_MS);
    assert_int_equal(prof.verified_milli, 0);
    assert_int_equal(prof.fabricated_milli, 0);

    assert_int_equal(dg_profile_set(&prof, v, DG_PROF_NFIELDS), 0);
    assert_int_equal(prof.state, 0);
    assert_int_equal(prof.now_ms, 0);

    /* too short: refused, nothing changed */
    prof.verified_milli = 1;
    assert_int_equal(dg_profile_set(&prof, v, DG_PROF_NFIELDS - 1), -1);
    assert_int_equal(prof.verified_milli, 1);
}


static void
test_profile_json(void **state)
{
    char          buf[DG_PROFILE_JSON_MAX];
    size_t        i, len;
    json_t       *root;
    dg_profile_t  prof;
    json_error_t  err;

    /* out of range: none */
    static const struct {
        int64_t      provenance;
        const char  *json;
    } hist[] = {
        { DG_PROVENANCE_NONE, ",\"history\":\"none\"}" },
        { DG_PROVENANCE_VERIFIED, ",\"history\":\"verified\"}" },
        { DG_PROVENANCE_FABRICATED, ",\"history\":\"fabricated\"}" },
        { DG_PROVENANCE_PREFIX, ",\"history\":\"prefix\"}" },
        { 4, ",\"history\":\"none\"}" },
        { -1, ",\"history\":\"none\"}" },
        { INT64_MAX, ",\"history\":\"none\"}" },
    };

    (void) state;

    memset(&prof, 0, sizeof(prof));
    t_profile_fill(prof.v);
    prof.template_keys = 3;
    prof.subnet_keys = 1;

    len = dg_profile_json(&prof, buf, sizeof(buf));

    assert_string_equal(buf,
        "{\"requests\":1500,\"sample\":128,\"topics\":12,"
        "\"topic_entropy\":3.140,\"templates\":2,"
        "\"top_template_share\":0.500,\"single_turn_share\":1.000,"
        "\"cot_share\":0.000,\"gap_mean_ms\":40,\"gap_cv\":0.123,"
        "\"bytes\":98765,\"template_keys\":3,\"template_conv\":0,"
        "\"subnet_keys\":1,\"verified_share\":0.000,"
        "\"fabricated_share\":0.000,\"prefix_share\":0.000,"
        "\"scripted_share\":0.000,\"history\":\"none\"}");
    assert_int_equal(len, strlen(buf));

    root = json_loads(buf, 0, &err);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "requests")),
                     1500);
    assert_true(json_real_value(json_object_get(root, "topic_entropy"))
                == 3.14);
    json_decref(root);

    /* three decimals, small and negative values */
    prof.v[DG_PROF_TOPIC_ENTROPY_MILLI] = 7;
    prof.v[DG_PROF_GAP_CV_MILLI] = 12345;
    prof.v[DG_PROF_COT_SHARE_MILLI] = -5;
    prof.v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI] = -1250;

    (void) dg_profile_json(&prof, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"topic_entropy\":0.007,"));
    assert_non_null(strstr(buf, "\"gap_cv\":12.345,"));
    assert_non_null(strstr(buf, "\"cot_share\":-0.005,"));
    assert_non_null(strstr(buf, "\"top_template_share\":-1.250,"));

    /* the provenance of histories */
    prof.template_conv = 2;
    prof.verified_milli = 125;
    prof.fabricated_milli = 1000;
    prof.prefix_milli = 5;

    for (i = 0; i < sizeof(hist) / sizeof(hist[0]); i++) {
        prof.provenance = hist[i].provenance;

        (void) dg_profile_json(&prof, buf, sizeof(buf));
        assert_non_null(strstr(buf, "\"template_keys\":3,"
                                    "\"template_conv\":2,"
                                    "\"subnet_keys\":1,"
                                    "\"verified_share\":0.125,"
                                    "\"fabricated_share\":1.000,"
                                    "\"prefix_share\":0.005,"));
        assert_non_null(strstr(buf, hist[i].json));
        assert_int_equal(buf[strlen(buf) - 1], '}');

        root = json_loads(buf, 0, &err);
        assert_non_null(root);
        json_decref(root);
    }
}


static void
test_profile_json_limits(void **state)
{
    char          buf[DG_PROFILE_JSON_MAX], small[40];
    size_t        i, len;
    json_t       *root;
    dg_profile_t  prof;
    json_error_t  err;

    (void) state;

    /* the longest numbers still fit DG_PROFILE_JSON_MAX and parse */
    memset(&prof, 0, sizeof(prof));

    for (i = 0; i < DG_PROF_NFIELDS; i++) {
        prof.v[i] = INT64_MIN;
    }
    prof.template_keys = INT64_MIN;
    prof.template_conv = INT64_MIN;
    prof.subnet_keys = INT64_MIN;
    prof.verified_milli = INT64_MIN;
    prof.fabricated_milli = INT64_MIN;
    prof.prefix_milli = INT64_MIN;
    prof.provenance = DG_PROVENANCE_FABRICATED;

    len = dg_profile_json(&prof, buf, sizeof(buf));
    assert_true(len < sizeof(buf) - 1);
    assert_int_equal(len, strlen(buf));
    assert_non_null(strstr(buf, "\"gap_cv\":-9223372036854775.808,"));
    assert_non_null(strstr(buf,
                    "\"prefix_share\":-9223372036854775.808,"));
    assert_non_null(strstr(buf, "\"history\":\"fabricated\"}"));

    root = json_loads(buf, 0, &err);
    assert_non_null(root);
    json_decref(root);

    /* cut short: NUL-terminated, the length of what is there */
    len = dg_profile_json(&prof, small, sizeof(small));
    assert_int_equal(len, sizeof(small) - 1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, buf, sizeof(small) - 1);

    small[0] = 'x';
    assert_int_equal(dg_profile_json(&prof, small, 1), 0);
    assert_int_equal(small[0], '\0');

    assert_int_equal(dg_profile_json(&prof, small, 0), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_cmd_evalsha),
        cmocka_unit_test(test_window_cmd_eval),
        cmocka_unit_test(test_window_cmd_flags),
        cmocka_unit_test(test_window_cmd_history),
        cmocka_unit_test(test_window_cmd_prefix),
        cmocka_unit_test(test_window_cmd_invalid),
        cmocka_unit_test(test_fanout_cmd_head_tail),
        cmocka_unit_test(test_fanout_cmd_subnet),
        cmocka_unit_test(test_fanout_cmd_nothing),
        cmocka_unit_test(test_fanout_cmd_prefix),
        cmocka_unit_test(test_fanout_conv_cmd),
        cmocka_unit_test(test_fanout_conv_cmd_nothing),
        cmocka_unit_test(test_fanout_reply),
        cmocka_unit_test(test_profile_set_provenance),
        cmocka_unit_test(test_profile_set),
        cmocka_unit_test(test_profile_json),
        cmocka_unit_test(test_profile_json_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
