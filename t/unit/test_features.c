/* unit tests: per-request prompt features (dg_features, dg_cot, dg_topic) */

#include "dg_test.h"

#include "dg_features.h"
#include "dg_topic.h"


static char  scratch[1 << 16];


static void
features_of(dg_features_t *f, const char *user, const char *system)
{
    dg_prompt_t  p;

    memset(&p, 0, sizeof(p));
    p.format = DG_FORMAT_OPENAI_CHAT;
    p.user.data = user;
    p.user.len = strlen(user);
    p.first_user = p.user;
    p.turns = 1;

    if (system != NULL) {
        p.system.data = system;
        p.system.len = strlen(system);
    }

    dg_features_compute(f, &p);
}


static void
wrap(char *buf, size_t size, const char *tmpl, const char *x)
{
    const char  *at;

    at = strstr(tmpl, "{x}");
    assert_non_null(at);
    snprintf(buf, size, "%.*s%s%s", (int) (at - tmpl), tmpl, x, at + 3);
}


static unsigned
hamming(uint64_t a, uint64_t b)
{
    return (unsigned) __builtin_popcountll(a ^ b);
}


static void
test_entropy(void **state)
{
    char           all[256], *big;
    unsigned       i;
    dg_prompt_t    p;
    dg_features_t  f;

    (void) state;

    features_of(&f, "aaaa", NULL);
    assert_int_equal(f.entropy_milli, 0);
    assert_int_equal(f.bytes, 4);

    features_of(&f, "abab", NULL);
    assert_int_equal(f.entropy_milli, 1000);

    features_of(&f, "", NULL);
    assert_int_equal(f.entropy_milli, 0);
    assert_int_equal(f.bytes, 0);
    assert_int_equal(f.tokens, 0);

    for (i = 0; i < 256; i++) {
        all[i] = (char) i;
    }

    memset(&p, 0, sizeof(p));
    p.user.data = all;
    p.user.len = sizeof(all);
    dg_features_compute(&f, &p);
    assert_int_equal(f.entropy_milli, 8000);
    assert_int_equal(f.bytes, 256);

    /* counts of 256 and more take another path */
    big = malloc(4096);
    assert_non_null(big);

    for (i = 0; i < 4096; i++) {
        big[i] = (char) (i & 1 ? 'b' : 'a');
    }

    p.user.data = big;
    p.user.len = 4096;
    dg_features_compute(&f, &p);
    assert_int_equal(f.entropy_milli, 1000);

    for (i = 0; i < 4096; i++) {
        big[i] = (char) i;
    }

    dg_features_compute(&f, &p);
    assert_int_equal(f.entropy_milli, 8000);

    memset(big, 'x', 4096);
    dg_features_compute(&f, &p);
    assert_int_equal(f.entropy_milli, 0);

    /* 3 values, 1/2 1/4 1/4: 1.5 bits */
    p.user.data = "aabc";
    p.user.len = 4;
    dg_features_compute(&f, &p);
    assert_int_equal(f.entropy_milli, 1500);

    free(big);
}


static void
test_tokens(void **state)
{
    dg_features_t  f;

    (void) state;

    /* 9 words of at most 6 letters, one of 9 letters, 2 punctuation */
    features_of(&f, "The quick brown fox jumps over the lazy dog, "
                "following.", NULL);
    assert_int_equal(f.tokens, 9 + 2 + 2);

    /* 12345 is two tokens (3 digits each), "é" one more */
    features_of(&f, "12345 caf\xc3\xa9", NULL);
    assert_int_equal(f.tokens, 2 + 1 + 1);
}


static void
test_simhash(void **state)
{
    dg_features_t  a, b, c, d;

    static const char  t1[] =
        "Write a short story about a lighthouse keeper who discovers a "
        "message in a bottle washed up on the rocky shore after a storm, "
        "and decides to find the sender across the cold northern sea.";
    static const char  t2[] =
        "Write a short story about a lighthouse keeper who discovers a "
        "letter in a bottle washed up on the rocky shore after a storm, "
        "and decides to find the sender across the cold northern sea.";
    static const char  t3[] =
        "How do I configure nginx as a reverse proxy with TLS termination "
        "and HTTP/2 for several upstream servers, and how should the "
        "health checks and timeouts be tuned for long-polling clients?";

    (void) state;

    features_of(&a, t1, NULL);
    features_of(&b, t1, NULL);
    assert_true(a.simhash != 0);
    assert_true(a.simhash == b.simhash);

    /* case and digits do not matter: words are normalised */
    features_of(&c, "Hello World 123", NULL);
    features_of(&d, "hello world 7", NULL);
    assert_true(c.simhash == d.simhash);

    features_of(&b, t2, NULL);
    features_of(&c, t3, NULL);
    assert_in_range(hamming(a.simhash, b.simhash), 0, 10);
    assert_in_range(hamming(a.simhash, c.simhash), 18, 64);
    assert_true(hamming(a.simhash, b.simhash)
                < hamming(a.simhash, c.simhash));
}


/* over 255 shingles the counters spill: long texts behave the same */
static void
test_simhash_long(void **state)
{
    char           *t1, *t2, *t3;
    size_t          i, n;
    dg_features_t   a, b, c;

    static const char  *w1[] = { "river", "stone", "cloud", "maple",
                                 "lantern", "harbor", "quiet", "amber" };
    static const char  *w2[] = { "socket", "buffer", "kernel", "thread",
                                 "packet", "cache", "mutex", "signal" };

    (void) state;

    t1 = malloc(8192);
    t2 = malloc(8192);
    t3 = malloc(8192);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_non_null(t3);

    for (i = 0, n = 0; i < 600; i++) {
        n += sprintf(t1 + n, "%s ", w1[(i * 7 + i / 8) % 8]);
    }

    memcpy(t2, t1, n + 1);
    memcpy(t2 + 60, "ZEBRA", 5);

    for (i = 0, n = 0; i < 600; i++) {
        n += sprintf(t3 + n, "%s ", w2[(i * 5 + i / 8) % 8]);
    }

    features_of(&a, t1, NULL);
    features_of(&b, t1, NULL);
    assert_true(a.simhash == b.simhash);

    features_of(&b, t2, NULL);
    features_of(&c, t3, NULL);
    assert_in_range(hamming(a.simhash, b.simhash), 0, 6);
    assert_in_range(hamming(a.simhash, c.simhash), 18, 64);

    free(t1);
    free(t2);
    free(t3);
}


static void
test_template_prefix(void **state)
{
    char           b1[512], b2[512];
    unsigned       i;
    dg_features_t  f1, f2;

    static const char  *tmpl[] = {
        "Answer the following and explain your reasoning step by step:"
            "\n\n{x}",
        "Q: {x}\nA:",
        "### Instruction:\n{x}\n\n### Response:",
        "You are a helpful assistant. {x}",
        NULL
    };

    (void) state;

    for (i = 0; tmpl[i] != NULL; i++) {
        wrap(b1, sizeof(b1), tmpl[i],
             "Name three countries in South America.");
        wrap(b2, sizeof(b2), tmpl[i],
             "Write a haiku about autumn leaves falling in the park."
             "\n\nUse the word crimson.");
        features_of(&f1, b1, NULL);
        features_of(&f2, b2, NULL);

        assert_true(f1.template_head != 0);
        assert_int_equal(f1.template_head, f2.template_head);
        assert_true(f1.template_tail != 0);
    }

    /* the variable part is at the end: tails differ */
    wrap(b1, sizeof(b1), tmpl[0], "Name three countries in South America.");
    wrap(b2, sizeof(b2), tmpl[0], "Why is the sky blue during the day?");
    features_of(&f1, b1, NULL);
    features_of(&f2, b2, NULL);
    assert_int_not_equal(f1.template_tail, f2.template_tail);

    /* numbers are folded: "Question 1:" and "Question 27:" are the same */
    features_of(&f1, "Question 1: what is the boiling point of water?",
                NULL);
    features_of(&f2, "Question 27: who painted the Mona Lisa?", NULL);
    assert_true(f1.template_head != 0);
    assert_int_equal(f1.template_head, f2.template_head);
}


static void
test_template_suffix(void **state)
{
    char           b1[512], b2[512];
    unsigned       i;
    dg_features_t  f1, f2;

    static const char  *tmpl[] = {
        "{x}\n\nExplain step by step.",
        "{x}\nA:",
        "{x}\n\nRespond in JSON with the keys answer and rationale.",
        "Q: {x}\nA:",
        NULL
    };

    (void) state;

    for (i = 0; tmpl[i] != NULL; i++) {
        wrap(b1, sizeof(b1), tmpl[i],
             "Name three countries in South America.");
        wrap(b2, sizeof(b2), tmpl[i],
             "Classify the animal as a mammal or a reptile.\n\nTiger");
        features_of(&f1, b1, NULL);
        features_of(&f2, b2, NULL);

        assert_true(f1.template_tail != 0);
        assert_int_equal(f1.template_tail, f2.template_tail);
    }

    /* the variable part is at the start: heads differ */
    wrap(b1, sizeof(b1), tmpl[0], "Name three countries in South America.");
    wrap(b2, sizeof(b2), tmpl[0], "Why is the sky blue during the day?");
    features_of(&f1, b1, NULL);
    features_of(&f2, b2, NULL);
    assert_true(f1.template_head != 0);
    assert_int_not_equal(f1.template_head, f2.template_head);
}


static void
test_template_short(void **state)
{
    dg_features_t  f;

    (void) state;

    features_of(&f, "hello", NULL);
    assert_int_equal(f.template_head, 0);
    assert_int_equal(f.template_tail, 0);

    features_of(&f, "", NULL);
    assert_int_equal(f.template_head, 0);
    assert_int_equal(f.template_tail, 0);

    /* one segment of fewer than twice 10 words: the ends would overlap */
    features_of(&f, "What is the capital city of France and why is it "
                "famous", NULL);
    assert_int_equal(f.template_head, 0);
    assert_int_equal(f.template_tail, 0);

    /* "Hi!" is too short to be a segment of its own */
    features_of(&f, "Hi!\nThanks", NULL);
    assert_int_equal(f.template_head, 0);
    assert_int_equal(f.template_tail, 0);
}


static void
test_topic(void **state)
{
    dg_features_t  a, b, c, d;

    (void) state;

    assert_int_equal(dg_topic_check(), 0);

    features_of(&a, "How do I read a CSV file into a pandas DataFrame in "
                "Python and skip the first row?", NULL);
    features_of(&b, "Write a Python function that checks whether a string "
                "is a palindrome, with a unit test.", NULL);
    features_of(&c, "What is a good recipe for banana bread? I have three "
                "ripe bananas, flour and butter.", NULL);
    features_of(&d, "How long should I bake chicken thighs in the oven, "
                "and at what temperature?", NULL);

    assert_int_equal(a.topic, b.topic);
    assert_string_equal(dg_topic_name(a.topic), "python");
    assert_int_equal(c.topic, d.topic);
    assert_int_not_equal(a.topic, c.topic);
    assert_true(a.topic < DG_TOPIC_BUCKETS);

    /* stems across 8-byte blocks, after digits, in upper case */
    features_of(&a, "PSYCHOLOGICAL", NULL);
    assert_string_equal(dg_topic_name(a.topic), "psychology");
    features_of(&a, "cryptocurrencies", NULL);
    assert_string_equal(dg_topic_name(a.topic), "crypto");
    features_of(&a, "Lyric1 and lyric2", NULL);
    assert_string_equal(dg_topic_name(a.topic), "music");
    features_of(&a, "python3", NULL);
    assert_string_equal(dg_topic_name(a.topic), "python");

    /* no lexicon word: a min-hash bucket; no content word: 0 */
    features_of(&a, "Zorblax quibbles vendiferous.", NULL);
    assert_in_range(a.topic, DG_TOPIC_FALLBACK, DG_TOPIC_BUCKETS - 1);
    assert_string_equal(dg_topic_name(a.topic), "other");

    features_of(&a, "", NULL);
    assert_int_equal(a.topic, 0);
}


/* a follow-up takes its conversation's topic, its own template */

static void
test_topic_conversation(void **state)
{
    dg_prompt_t    p;
    dg_features_t  first, follow, alone;

    (void) state;

    features_of(&first, "What is a good recipe for banana bread? I have "
                "three ripe bananas, flour and butter.", NULL);
    features_of(&alone, "why?", NULL);

    memset(&p, 0, sizeof(p));
    p.format = DG_FORMAT_OPENAI_CHAT;
    p.first_user.data = "What is a good recipe for banana bread? I have "
                        "three ripe bananas, flour and butter.";
    p.first_user.len = strlen(p.first_user.data);
    p.user.data = "why?";
    p.user.len = 4;
    p.turns = 3;

    dg_features_compute(&follow, &p);

    assert_int_not_equal(alone.topic, first.topic);
    assert_int_equal(follow.topic, first.topic);

    /* everything else is the last turn's */
    assert_int_equal(follow.bytes, 4);
    assert_int_equal(follow.simhash, alone.simhash);
    assert_int_equal(follow.template_head, alone.template_head);
    assert_int_equal(follow.turns, 3);
}


/* the features of a parsed request body */
static void
features_body(dg_features_t *f, dg_prompt_t *p, const char *body)
{
    dg_prompt_parse(p, body, strlen(body), scratch, sizeof(scratch));
    assert_false(p->fallback);
    dg_features_compute(f, p);
}


static void
test_text_fp(void **state)
{
    (void) state;

    /* blanks do not count: clients re-wrap what they send back */
    assert_int_equal(dg_text_fp("abc", 3), dg_text_fp(" a b\tc\n", 8));
    assert_int_equal(dg_text_fp("Hello, world.", 13),
                     dg_text_fp("Hello,\r\n  world.  ", 19));
    assert_int_equal(dg_text_fp("", 0), dg_text_fp(" \n\t\r", 4));

    /* the rest does: case, punctuation, order, length */
    assert_int_not_equal(dg_text_fp("abc", 3), dg_text_fp("Abc", 3));
    assert_int_not_equal(dg_text_fp("abc", 3), dg_text_fp("acb", 3));
    assert_int_not_equal(dg_text_fp("abc", 3), dg_text_fp("abc.", 4));
    assert_int_not_equal(dg_text_fp("abc", 3), dg_text_fp("ab", 2));
    assert_int_not_equal(dg_text_fp("", 0), dg_text_fp("a", 1));

    /* the length is what counts, not a NUL */
    assert_int_equal(dg_text_fp("abc\0def", 3), dg_text_fp("abc", 3));
    assert_int_not_equal(dg_text_fp("abc\0def", 7), dg_text_fp("abc", 3));

    /* never 0: nothing, and a text whose hash is 0 (found by search) */
    assert_int_not_equal(dg_text_fp("", 0), 0);
    assert_int_not_equal(dg_text_fp(NULL, 0), 0);
    assert_int_equal(dg_text_fp("!pkmPo", 6), 1);
    assert_int_equal(dg_text_fp("!pk mPo\n", 8), 1);
}


/* a one-shot request: no history, what it sends */
static void
test_history_none(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f;

    (void) state;

    features_body(&f, &p, "{\"messages\":[{\"role\":\"user\",\"content\":"
                  "\"What is a good recipe for banana bread?\"}]}");

    assert_int_equal(f.sent, dg_text_fp(p.user.data, p.user.len));
    assert_int_not_equal(f.sent, 0);
    assert_int_equal(f.prior, 0);
    assert_int_equal(f.opening, f.sent);
    assert_int_equal(f.conv_head, 0);
    assert_int_equal(f.conv_tail, 0);
    assert_false(f.prior_first);
    assert_int_equal(f.topic_last, f.topic);

    /* [u1, u2]: two user turns, no history claimed */
    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"What is a good "
                  "recipe for banana bread?\"},"
                  "{\"role\":\"user\",\"content\":\"How do I read a CSV "
                  "file into a pandas DataFrame in Python?\"}]}");

    assert_int_equal(f.turns, 2);
    assert_int_equal(f.prior, 0);
    assert_int_equal(f.opening, dg_text_fp(p.first_user.data,
                                           p.first_user.len));
    assert_int_equal(f.conv_head, 0);
    assert_false(f.prior_first);
    assert_string_equal(dg_topic_name(f.topic_last), "python");

    /* an empty prompt still sends something */
    features_of(&f, "", NULL);
    assert_int_equal(f.sent, dg_text_fp("", 0));
    assert_int_not_equal(f.sent, 0);
}


/* [u1, a1, u2]: a conversation's first follow-up */
static void
test_history_first(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f, one, u2;

    (void) state;

    features_of(&one, "Answer the following and explain your reasoning step "
                "by step:\n\nWhat is a good recipe for banana bread?", NULL);
    features_of(&u2, "why?", NULL);

    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"Answer the following "
                  "and explain your reasoning step by step:\\n\\nWhat is a "
                  "good recipe for banana bread?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Mash them.\"},"
                  "{\"role\":\"user\",\"content\":\"why?\"}]}");

    assert_true(p.has_prior);
    assert_int_equal(f.turns, 3);

    /* it sends u2 and claims that u1 was answered */
    assert_int_equal(f.sent, dg_text_fp("why?", 4));
    assert_int_equal(f.prior, one.sent);
    assert_true(f.prior_first);
    assert_int_equal(f.opening, one.sent);

    /* the topic of the opening, the last turn's kept apart */
    assert_int_equal(f.topic, one.topic);
    assert_int_equal(f.topic_last, u2.topic);

    /* its own template is the last turn's; the frame is the first's */
    assert_int_equal(f.template_head, u2.template_head);
    assert_true(one.template_head != 0);
    assert_int_equal(f.conv_head, one.template_head);
    assert_int_equal(f.conv_tail, one.template_tail);

    /*
     * What the client sent before is what it claims now: the u1 of this
     * request is the sent of the one-shot request that opened it, blanks
     * aside
     */
    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"  Answer the "
                  "following and explain your reasoning step by step:\\n"
                  "What is a good recipe for banana bread?\\n\"},"
                  "{\"role\":\"assistant\",\"content\":\"Mash them.\"},"
                  "{\"role\":\"user\",\"content\":\"why?\"}]}");

    assert_int_equal(f.prior, one.sent);
}


/* [u1, a1, u2, a2, u3]: a later follow-up */
static void
test_history_later(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f, g;

    static const char  *u1 = "What is a good recipe for banana bread?";

    (void) state;

    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"What is a good recipe "
                  "for banana bread?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Mash them.\"},"
                  "{\"role\":\"user\",\"content\":\"why?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Sweeter.\"},"
                  "{\"role\":\"user\",\"content\":\"and the oven?\"}]}");

    assert_int_equal(f.turns, 5);
    assert_int_equal(f.sent, dg_text_fp("and the oven?", 13));
    assert_int_equal(f.prior, dg_text_fp("why?", 4));
    assert_false(f.prior_first);
    assert_int_not_equal(f.opening, 0);

    /* the frame is the first turn's, as for the first follow-up */
    features_of(&g, u1, NULL);
    assert_int_equal(f.conv_head, g.template_head);
    assert_int_equal(f.conv_tail, g.template_tail);
    assert_int_equal(f.topic, g.topic);

    /* the opening: the first user turn, whatever follows it */
    features_body(&g, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"What is a good recipe "
                  "for banana bread?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Other words.\"},"
                  "{\"role\":\"user\",\"content\":\"why?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Still other.\"},"
                  "{\"role\":\"user\",\"content\":\"something else\"}]}");

    assert_int_equal(g.opening, f.opening);
    assert_int_equal(g.prior, f.prior);
    assert_int_not_equal(g.sent, f.sent);

    features_body(&g, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"What is a good recipe "
                  "for banana bread?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Mash them.\"},"
                  "{\"role\":\"user\",\"content\":\"why not?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Sweeter.\"},"
                  "{\"role\":\"user\",\"content\":\"and the oven?\"}]}");

    assert_int_equal(g.opening, f.opening);
    assert_int_not_equal(g.prior, f.prior);

    features_body(&g, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"What is a good recipe "
                  "for banana bread?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Mash them.\"},"
                  "{\"role\":\"user\",\"content\":\"why?\"},"
                  "{\"role\":\"assistant\",\"content\":\"Sweeter.\"},"
                  "{\"role\":\"tool\",\"content\":\"42\"},"
                  "{\"role\":\"user\",\"content\":\"and the oven?\"}]}");

    assert_int_equal(g.prior, f.prior);
    assert_int_equal(g.opening, f.opening);
}


/* [u1, a1, tool]: an agent loop, the user turn is the prior */
static void
test_history_agent(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f, one;

    static const char  *u1 = "Answer the following and explain your "
                             "reasoning step by step:\n\nWhat is a good "
                             "recipe for banana bread?";

    (void) state;

    features_of(&one, u1, NULL);

    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":\"Answer the following "
                  "and explain your reasoning step by step:\\n\\nWhat is a "
                  "good recipe for banana bread?\"},"
                  "{\"role\":\"assistant\",\"content\":null,"
                  "\"tool_calls\":[{\"id\":\"1\"}]},"
                  "{\"role\":\"tool\",\"content\":\"42\"}]}");

    assert_true(p.has_prior);
    assert_int_equal(f.sent, one.sent);
    assert_int_equal(f.prior, one.sent);
    assert_true(f.prior_first);
    assert_int_equal(f.opening, one.sent);
    assert_int_equal(f.conv_head, one.template_head);
    assert_int_equal(f.conv_tail, one.template_tail);
    assert_int_equal(f.template_head, one.template_head);
    assert_int_equal(f.topic, one.topic);
    assert_int_equal(f.topic_last, one.topic);
}


/*
 * An image-only first and last user turn: empty texts all start at one
 * address in scratch, so which user turn the prior is comes from the
 * parser, not from comparing pointers.  [u1 (image), a1, u2 "text", a2,
 * u3 (image)] claims u2, the third turn: no first follow-up.
 */
static void
test_history_empty_first(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f;

    (void) state;

    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":[{\"type\":"
                  "\"image_url\",\"image_url\":{\"url\":\"x\"}}]},"
                  "{\"role\":\"assistant\",\"content\":\"a cat\"},"
                  "{\"role\":\"user\",\"content\":\"what breed?\"},"
                  "{\"role\":\"assistant\",\"content\":\"a tabby\"},"
                  "{\"role\":\"user\",\"content\":[{\"type\":"
                  "\"image_url\",\"image_url\":{\"url\":\"y\"}}]}]}");

    assert_true(p.has_prior);
    assert_int_equal(p.first_user.len, 0);
    assert_int_equal(p.user.len, 0);
    assert_int_equal(f.prior, dg_text_fp("what breed?", 11));

    /* the prior is the third turn, though the texts share an address */
    assert_false(f.prior_first);
}


/*
 * The frame a conversation opened with is its first user turn's
 * template: an image-only first turn has none, and the follow-up's
 * template is not taken instead.
 */
static void
test_history_conv_empty_first(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f;

    (void) state;

    features_body(&f, &p, "{\"messages\":["
                  "{\"role\":\"user\",\"content\":[{\"type\":"
                  "\"image_url\",\"image_url\":{\"url\":\"x\"}}]},"
                  "{\"role\":\"assistant\",\"content\":\"a cat\"},"
                  "{\"role\":\"user\",\"content\":\"Answer the following "
                  "and explain your reasoning step by step:\\n\\nWhat is a "
                  "good recipe for banana bread?\"}]}");

    assert_true(p.has_prior);
    assert_true(f.prior_first);
    assert_true(f.template_head != 0);

    /* the first turn has no text: no frame */
    assert_int_equal(f.conv_head, 0);
    assert_int_equal(f.conv_tail, 0);
}


/* the other shapes claim their histories the same way */
static void
test_history_shapes(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f, g;

    (void) state;

    features_body(&f, &p, "{\"system\":\"s\",\"max_tokens\":9,"
                  "\"messages\":["
                  "{\"role\":\"user\",\"content\":\"q1\"},"
                  "{\"role\":\"assistant\",\"content\":[{\"type\":"
                  "\"text\",\"text\":\"a1\"}]},"
                  "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                  "\"text\":\"q2\"}]}]}");

    assert_int_equal(f.format, DG_FORMAT_ANTHROPIC);
    assert_int_equal(f.sent, dg_text_fp("q2", 2));
    assert_int_equal(f.prior, dg_text_fp("q1", 2));
    assert_true(f.prior_first);

    /* the same conversation through the Responses API */
    features_body(&g, &p, "{\"input\":["
                  "{\"role\":\"user\",\"content\":\"q1\"},"
                  "{\"role\":\"assistant\",\"content\":[{\"type\":"
                  "\"output_text\",\"text\":\"a1\"}]},"
                  "{\"role\":\"user\",\"content\":[{\"type\":"
                  "\"input_text\",\"text\":\"q2\"}]}]}");

    assert_int_equal(g.format, DG_FORMAT_OPENAI_RESPONSES);
    assert_int_equal(g.sent, f.sent);
    assert_int_equal(g.prior, f.prior);
    assert_int_equal(g.opening, f.opening);
    assert_true(g.prior_first);

    /* a function call's output, role-less, follows q1 */
    features_body(&g, &p, "{\"input\":["
                  "{\"role\":\"user\",\"content\":\"q1\"},"
                  "{\"type\":\"function_call_output\",\"call_id\":\"c\","
                  "\"output\":\"{}\"}]}");

    assert_int_equal(g.prior, dg_text_fp("q1", 2));
    assert_int_equal(g.sent, g.prior);
    assert_true(g.prior_first);

    /* a string input and a completion: none */
    features_body(&g, &p, "{\"input\":\"q1\"}");
    assert_int_equal(g.prior, 0);
    assert_int_equal(g.opening, g.sent);
    assert_int_equal(g.sent, dg_text_fp("q1", 2));

    features_body(&g, &p, "{\"prompt\":\"q1\"}");
    assert_int_equal(g.prior, 0);
    assert_int_equal(g.opening, g.sent);
    assert_false(g.prior_first);
}


static void
test_cot_builtin(void **state)
{
    dg_features_t  f;

    (void) state;

    assert_int_equal(dg_cot_count("", 0), 0);

#define COT(s)  dg_cot_count(s, sizeof(s) - 1)

    assert_int_equal(COT("Let's think step by step."), 1);
    assert_int_equal(COT("Lets think about it"), 1);
    assert_int_equal(COT("Let\xe2\x80\x99s think"), 1);
    assert_int_equal(COT("Explain your reasoning step-by-step"), 2);
    assert_int_equal(COT("STEP   BY\n\tSTEP"), 1);
    assert_int_equal(COT("Use a chain-of-thought; show your work."), 2);
    assert_int_equal(COT("Walk me through it, then justify your answer"),
                     2);
    assert_int_equal(COT("stepbystep, footstep by step, step by steps"), 0);
    assert_int_equal(COT("What is the capital of France?"), 0);
    /* not NUL-terminated: the length is the limit */
    assert_int_equal(dg_cot_count("step by stepX", 12), 1);

#undef COT

    /* the system prompt counts too */
    features_of(&f, "Solve 2x + 3 = 7 step by step.",
                "You are a tutor. Think carefully and show your work.");
    assert_int_equal(f.cot, 3);
    assert_true(f.has_system);
}


static void
test_fields(void **state)
{
    dg_prompt_t    p;
    dg_features_t  f;

    (void) state;

    memset(&p, 0, sizeof(p));
    p.format = DG_FORMAT_ANTHROPIC;
    p.fallback = 1;
    p.turns = 5;
    p.user.data = "hi";
    p.user.len = 2;

    dg_features_compute(&f, &p);
    assert_int_equal(f.turns, 5);
    assert_int_equal(f.format, DG_FORMAT_ANTHROPIC);
    assert_true(f.fallback);
    assert_false(f.has_system);
    assert_false(f.truncated);
}


static void
test_json(void **state)
{
    char           buf[DG_FEATURES_JSON_MAX], full[DG_FEATURES_JSON_MAX];
    char           small[DG_FEATURES_JSON_MAX];
    size_t         n, len, size;
    dg_features_t  f;

    static const char  expect[] =
        "{\"bytes\":123,\"tokens\":30,\"entropy\":4.213,"
        "\"simhash\":\"0123456789abcdef\",\"template\":\"89abcdef\","
        "\"template_tail\":\"01234567\",\"topic\":17,\"turns\":1,\"cot\":0,"
        "\"format\":\"openai_chat\",\"truncated\":false}";

    (void) state;

    memset(&f, 0, sizeof(f));
    f.bytes = 123;
    f.tokens = 30;
    f.entropy_milli = 4213;
    f.simhash = 0x0123456789abcdefULL;
    f.template_head = 0x89abcdef;
    f.template_tail = 0x01234567;
    f.topic = 17;
    f.turns = 1;
    f.format = DG_FORMAT_OPENAI_CHAT;

    n = dg_features_json(&f, NULL, buf, sizeof(buf));
    assert_string_equal(buf, expect);
    assert_int_equal(n, strlen(expect));

    /* no templates, truncated, small entropy, window */
    f.template_head = 0;
    f.template_tail = 0;
    f.truncated = 1;
    f.entropy_milli = 7;
    f.simhash = 0xf;
    f.format = DG_FORMAT_RAW;
    f.cot = 2;

    n = dg_features_json(&f, "{\"requests\":3}", full, sizeof(full));
    assert_string_equal(full,
        "{\"bytes\":123,\"tokens\":30,\"entropy\":0.007,"
        "\"simhash\":\"000000000000000f\",\"template\":\"\","
        "\"template_tail\":\"\",\"topic\":17,\"turns\":1,\"cot\":2,"
        "\"format\":\"raw\",\"truncated\":true,"
        "\"window\":{\"requests\":3}}");
    assert_int_equal(n, strlen(full));

    /* every buffer size: a NUL-terminated prefix, nothing written past */
    len = n;

    for (size = 1; size <= len + 1; size++) {
        memset(small, 'X', sizeof(small));
        n = dg_features_json(&f, "{\"requests\":3}", small, size);
        assert_int_equal(n, size - 1);
        assert_int_equal(small[n], '\0');
        assert_memory_equal(small, full, n);
        assert_int_equal(small[size], 'X');
    }

    /* the largest object without window fits */
    memset(&f, 0xff, sizeof(f));
    f.format = DG_FORMAT_OPENAI_COMPLETIONS;
    n = dg_features_json(&f, NULL, buf, sizeof(buf));
    assert_true(n < DG_FEATURES_JSON_MAX - 1);
    assert_int_equal(buf[n - 1], '}');
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_simhash),
        cmocka_unit_test(test_simhash_long),
        cmocka_unit_test(test_topic_conversation),
        cmocka_unit_test(test_text_fp),
        cmocka_unit_test(test_history_none),
        cmocka_unit_test(test_history_first),
        cmocka_unit_test(test_history_later),
        cmocka_unit_test(test_history_agent),
        cmocka_unit_test(test_history_shapes),
        cmocka_unit_test(test_history_empty_first),
        cmocka_unit_test(test_history_conv_empty_first),
        cmocka_unit_test(test_template_prefix),
        cmocka_unit_test(test_template_suffix),
        cmocka_unit_test(test_template_short),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_cot_builtin),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
