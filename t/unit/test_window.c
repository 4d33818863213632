/*
 * Unit tests of src/dg_window.c: the window and fan-out commands (argv,
 * hash tags, EVAL / EVALSHA, what is refused) and the window profile.
 */

#include "dg_test.h"

#include <inttypes.h>

#include <jansson.h>

#include "dg_profile.h"
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


/* the packed argument i of a window command */
static void
t_unpack(const dg_cmd_t *cmd, int i, uint64_t *v)
{
    int                   k, j;
    const unsigned char  *p;

    static const unsigned char  size[DG_WARG_N] = {
        4, 2, 2, 2, 1, 5, 6, 4, 4, 4, 1, 2, 2, 2, 2
    };

    assert_int_equal(cmd->argvlen[i], DG_WARGS_LEN);
    p = (const unsigned char *) cmd->argv[i];

    for (k = 0; k < DG_WARG_N; k++) {
        v[k] = 0;

        for (j = size[k] - 1; j >= 0; j--) {
            v[k] = v[k] << 8 | p[j];
        }

        p += size[k];
    }
}


static void
test_window_cmd_evalsha(void **state)
{
    int       i;
    t_req_t   t;
    uint64_t  v[DG_WARG_N];
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);

    t.req.throttle_ms = 10000;
    t.req.rate_ms = 500;
    t.req.rate_burst = 3;
    t.req.shadow = 1;
    t.f.topic_last = 17;
    t.f.sent = 0x12345678;
    t.f.prior = 0;
    t.f.opening = 0x12345678;

    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
    assert_int_equal(cmd.argc, 8);

    t_arg_eq(&cmd, 0, "EVALSHA");
    t_arg_eq(&cmd, 1, T_SHA);
    t_arg_eq(&cmd, 2, "4");
    t_arg_eq(&cmd, 3, "dg:{" T_KEY_ID "}:w");
    t_arg_eq(&cmd, 4, "dg:{" T_KEY_ID "}:s");
    t_arg_eq(&cmd, 5, "dg:{" T_KEY_ID "}:p");
    t_arg_eq(&cmd, 6, "dg:{" T_KEY_ID "}:t");

    /* one packed argument */
    t_unpack(&cmd, 7, v);
    assert_int_equal(v[DG_WARG_WINDOW_MS], 60000);
    assert_int_equal(v[DG_WARG_TOPIC], 4095);
    /* the fingerprints folded as the window stores them */
    assert_int_equal(v[DG_WARG_HEAD], 3015);     /* 0xabcd: 0xbcd ^ 0xa */
    assert_int_equal(v[DG_WARG_TAIL], 1965);     /* 0xa98 ^ 0xdcb ^ 0xfe */
    assert_int_equal(v[DG_WARG_FLAGS], 1);
    assert_int_equal(v[DG_WARG_BYTES], 1234);
    assert_int_equal(v[DG_WARG_NOW_MS], 0);
    assert_int_equal(v[DG_WARG_THROTTLE_MS], 10000);
    assert_int_equal(v[DG_WARG_RATE_MS], 500);
    assert_int_equal(v[DG_WARG_RATE_BURST], 3);
    assert_int_equal(v[DG_WARG_SHADOW], 1);
    assert_int_equal(v[DG_WARG_TOPIC_LAST], 17);
    assert_int_equal(v[DG_WARG_SENT], 17484);    /* 0x5678 ^ 0x1234 */
    assert_int_equal(v[DG_WARG_PRIOR], 0);
    /* one user turn: the opening is what it sent, folded the other way */
    assert_int_equal(v[DG_WARG_OPENING], dg_fold16_opening(0x12345678));
    assert_true(v[DG_WARG_OPENING] != v[DG_WARG_SENT]);

    /* the tests' clock replaces TIME */
    t.req.clock_ms = T_NOW_MS;
    assert_int_equal(dg_window_cmd(&cmd, &t.req, T_SHA), 0);
    t_unpack(&cmd, 7, v);
    assert_true(v[DG_WARG_NOW_MS] == T_NOW_MS);

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
    assert_int_equal(cmd.argc, 8);

    t_arg_eq(&cmd, 0, "EVAL");
    assert_ptr_equal(cmd.argv[1], dg_window_lua);
    assert_int_equal(cmd.argvlen[1], dg_window_lua_len);
    assert_true(dg_window_lua_len > 0);
    assert_int_equal(strlen(dg_window_lua), dg_window_lua_len);
    assert_non_null(strstr(dg_window_lua, "redis.call('TIME')"));
    t_arg_eq(&cmd, 2, "4");
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
    uint64_t  v[DG_WARG_N];
    dg_cmd_t  cmd;

    /* one-shot: no history claimed (prior 0), whatever the turns */
    static const struct {
        uint32_t     turns;
        uint32_t     prior;
        uint32_t     cot;
        uint64_t     flags;
    } cases[] = {
        { 0, 0, 0, 1 },
        { 1, 0, 0, 1 },
        { 2, 77, 0, 0 },
        { 7, 77, 0, 0 },
        { 3, 0, 0, 1 },
        { 1, 0, 1, 3 },
        { 2, 77, 5, 2 },
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
        t_unpack(&cmd, 7, v);
        assert_int_equal(v[DG_WARG_TOPIC], 0);
        assert_int_equal(v[DG_WARG_HEAD], 0);
        assert_int_equal(v[DG_WARG_TAIL], 0);
        assert_int_equal(v[DG_WARG_FLAGS], cases[i].flags);
        assert_int_equal(v[DG_WARG_BYTES], 0);
    }
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

    /* the four keys carry the prefix: about a quarter of it each */
    assert_true(len > 100);
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
    uint64_t  v[DG_WARG_N];
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
    t_unpack(&cmd, 7, v);
    assert_true(v[DG_WARG_WINDOW_MS] == UINT64_C(2147483647));
}


static void
test_fanout_cmd_head_tail(void **state)
{
    int       i;
    char      cur[64], next[64];
    t_req_t   t;
    dg_cmd_t  cmd;

    (void) state;

    t_req_init(&t);

    /* bucket = now / window */
    snprintf(cur, sizeof(cur), "dg:{h:0000abcd}:%" PRIu64,
             T_NOW_MS / 60000);
    snprintf(next, sizeof(next), "dg:{h:0000abcd}:%" PRIu64,
             T_NOW_MS / 60000 + 1);

    assert_int_equal(dg_fanout_cmd(&cmd, &t.req, DG_FANOUT_HEAD, T_SHA), 0);
    assert_int_equal(cmd.argc, 8);
    t_arg_eq(&cmd, 0, "EVALSHA");
    t_arg_eq(&cmd, 1, T_SHA);
    t_arg_eq(&cmd, 2, "3");
    t_arg_eq(&cmd, 3, cur);
    t_arg_eq(&cmd, 4, next);
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
    assert_string_equal(t_hash_tag(&cmd, 3), "t:fedcba98");
    assert_string_equal(t_hash_tag(&cmd, 4), "t:fedcba98");

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

    /* a turn of a conversation: its network counts, its template not */
    t_req_init(&t);
    t.f.turns = 3;
    t.f.prior = 77;
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
test_profile_json(void **state)
{
    char          buf[DG_PROFILE_JSON_MAX];
    size_t        len;
    json_t       *root;
    dg_profile_t  prof;
    json_error_t  err;

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
    for (i = 0; i < DG_PROF_NFIELDS; i++) {
        prof.v[i] = INT64_MIN;
    }
    prof.template_keys = INT64_MIN;
    prof.subnet_keys = INT64_MIN;

    len = dg_profile_json(&prof, buf, sizeof(buf));
    assert_true(len < sizeof(buf) - 1);
    assert_int_equal(len, strlen(buf));
    assert_non_null(strstr(buf, "\"gap_cv\":-9223372036854775.808,"));

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
        cmocka_unit_test(test_window_cmd_prefix),
        cmocka_unit_test(test_window_cmd_invalid),
        cmocka_unit_test(test_fanout_cmd_head_tail),
        cmocka_unit_test(test_fanout_cmd_subnet),
        cmocka_unit_test(test_fanout_cmd_nothing),
        cmocka_unit_test(test_fanout_cmd_prefix),
        cmocka_unit_test(test_profile_json),
        cmocka_unit_test(test_profile_json_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
