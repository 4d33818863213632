/* unit tests of the prompt extractor (src/dg_prompt.c) */

#include "dg_test.h"

#include "dg_prompt.h"
#include "dg_prompt_ref.h"


static char  scratch[1 << 16];


static void
parse(dg_prompt_t *p, const char *body)
{
    dg_prompt_parse(p, body, strlen(body), scratch, sizeof(scratch));
}


static void
assert_text(dg_str_t s, const char *expect)
{
    assert_non_null(s.data);
    assert_int_equal(s.len, strlen(expect));
    assert_memory_equal(s.data, expect, s.len);
}


/* a raw fallback: user and first_user are the body itself, not a copy */

static void
assert_raw(const char *body, size_t len, char *scr, size_t scr_size)
{
    dg_prompt_t  p;

    dg_prompt_parse(&p, body, len, scr, scr_size);

    assert_int_equal(p.format, DG_FORMAT_RAW);
    assert_true(p.fallback);
    assert_ptr_equal(p.user.data, body);
    assert_int_equal(p.user.len, len);
    assert_ptr_equal(p.first_user.data, body);
    assert_int_equal(p.first_user.len, len);
    assert_int_equal(p.system.len, 0);
    assert_int_equal(p.turns, 1);
    assert_int_equal(p.model[0], '\0');
    assert_false(p.has_max_tokens);
    assert_false(p.has_temperature);
}


static void
assert_raw_str(const char *body)
{
    assert_raw(body, strlen(body), scratch, sizeof(scratch));
}


static void
test_chat_string(void **state)
{
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"model\":\"gpt-4o\",\"messages\":"
              "[{\"role\":\"user\",\"content\":\"Hello \\\"you\\\"\\n\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_false(p.fallback);
    assert_text(p.user, "Hello \"you\"\n");
    assert_ptr_equal(p.first_user.data, p.user.data);
    assert_int_equal(p.first_user.len, p.user.len);
    assert_int_equal(p.system.len, 0);
    assert_int_equal(p.turns, 1);
    assert_string_equal(p.model, "gpt-4o");
}


static void
test_chat_parts(void **state)
{
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"text\",\"text\":\"one\"},"
              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
              "{\"type\":\"text\",\"text\":\"\"},"
              "{\"type\":\"text\",\"text\":\"two\"}]}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.user, "one\ntwo");
    assert_int_equal(p.turns, 1);

    /* image only: a turn without text */

    parse(&p, "{\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_int_equal(p.user.len, 0);
    assert_int_equal(p.turns, 1);
}


static void
test_chat_multi_turn(void **state)
{
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"messages\":["
              "{\"role\":\"system\",\"content\":\"Be brief.\"},"
              "{\"role\":\"user\",\"content\":\"first\"},"
              "{\"role\":\"assistant\",\"content\":null,"
              "\"tool_calls\":[{\"id\":\"1\"}]},"
              "{\"role\":\"tool\",\"content\":\"42\"},"
              "{\"role\":\"assistant\",\"content\":\"ok\"},"
              "{\"role\":\"developer\",\"content\":"
              "[{\"type\":\"text\",\"text\":\"Be kind.\"}]},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"last\"}]}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.first_user, "first");
    assert_text(p.user, "last");
    assert_ptr_not_equal(p.first_user.data, p.user.data);
    assert_text(p.system, "Be brief.\nBe kind.");
    assert_int_equal(p.turns, 5);

    /* no user turn at all */

    parse(&p, "{\"messages\":[{\"role\":\"assistant\",\"content\":\"hi\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_false(p.fallback);
    assert_int_equal(p.user.len, 0);
    assert_int_equal(p.first_user.len, 0);
    assert_int_equal(p.turns, 1);

    parse(&p, "{\"messages\":[]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_int_equal(p.turns, 0);
}


static void
test_completions(void **state)
{
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"Say hi\","
              "\"max_tokens\":16,\"temperature\":0}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
    assert_text(p.user, "Say hi");
    assert_ptr_equal(p.first_user.data, p.user.data);
    assert_int_equal(p.turns, 1);
    assert_true(p.has_max_tokens);
    assert_int_equal(p.max_tokens, 16);
    assert_true(p.has_temperature);
    assert_int_equal(p.temperature_milli, 0);

    /* a batch is joined, and stays one turn */

    parse(&p, "{\"prompt\":[\"a\",\"b\",\"\",\"c\"]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
    assert_text(p.user, "a\nb\nc");
    assert_text(p.first_user, "a\nb\nc");
    assert_int_equal(p.turns, 1);

    /* token ids: no text */

    assert_raw_str("{\"prompt\":[1,2,3]}");
    assert_raw_str("{\"prompt\":[[1,2],[3]]}");
    assert_raw_str("{\"prompt\":[\"a\",7]}");
}


static void
test_responses(void **state)
{
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"model\":\"gpt-4.1\",\"instructions\":\"Talk like a pirate.\","
              "\"input\":\"Are semicolons optional?\","
              "\"max_output_tokens\":300}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_RESPONSES);
    assert_text(p.user, "Are semicolons optional?");
    assert_ptr_equal(p.first_user.data, p.user.data);
    assert_text(p.system, "Talk like a pirate.");
    assert_int_equal(p.turns, 1);
    assert_int_equal(p.max_tokens, 300);

    parse(&p, "{\"input\":["
              "{\"role\":\"developer\",\"content\":\"dev rules\"},"
              "{\"type\":\"message\",\"role\":\"user\",\"content\":["
              "{\"type\":\"input_text\",\"text\":\"what is in\"},"
              "{\"type\":\"input_image\",\"image_url\":\"https://x\"},"
              "{\"type\":\"input_text\",\"text\":\"this image?\"}]},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
              "\"text\":\"a cat\"}]},"
              "{\"type\":\"function_call_output\",\"call_id\":\"c\","
              "\"output\":\"{}\"},"
              "{\"role\":\"user\",\"content\":\"and now?\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_RESPONSES);
    assert_text(p.first_user, "what is in\nthis image?");
    assert_text(p.user, "and now?");
    assert_text(p.system, "dev rules");
    assert_int_equal(p.turns, 4);

    assert_raw_str("{\"input\":42}");
    assert_raw_str("{\"input\":[\"a\"]}");
    assert_raw_str("{\"input\":\"x\",\"instructions\":5}");
}


static void
test_anthropic(void **state)
{
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"model\":\"claude-sonnet-4\",\"max_tokens\":1024,"
              "\"system\":\"You are terse.\",\"messages\":["
              "{\"role\":\"user\",\"content\":\"q1\"},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
              "\"text\":\"a1\"}]},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"q2\"},{\"type\":\"text\",\"text\":\"more\"}]}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_text(p.system, "You are terse.");
    assert_text(p.first_user, "q1");
    assert_text(p.user, "q2\nmore");
    assert_int_equal(p.turns, 3);
    assert_int_equal(p.max_tokens, 1024);
    assert_string_equal(p.model, "claude-sonnet-4");

    /* system as blocks */

    parse(&p, "{\"system\":[{\"type\":\"text\",\"text\":\"s1\","
              "\"cache_control\":{\"type\":\"ephemeral\"}},"
              "{\"type\":\"text\",\"text\":\"s2\"}],"
              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_text(p.system, "s1\ns2");
    assert_text(p.user, "hi");

    /* Bedrock / Vertex style */

    parse(&p, "{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":9,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_int_equal(p.system.len, 0);

    /* an Anthropic-only block type */

    parse(&p, "{\"max_tokens\":9,\"messages\":["
              "{\"role\":\"user\",\"content\":\"hi\"},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
              "\"id\":\"t\",\"name\":\"f\",\"input\":{}}]},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
              "\"tool_use_id\":\"t\",\"content\":\"1\"},"
              "{\"type\":\"text\",\"text\":\"go on\"}]}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_text(p.user, "go on");
    assert_int_equal(p.turns, 3);

    /* max_tokens alone is no signal */

    parse(&p, "{\"max_tokens\":9,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);

    /* a system role message: Anthropic rejects it, so OpenAI chat */

    parse(&p, "{\"system\":\"top\",\"messages\":["
              "{\"role\":\"system\",\"content\":\"inner\"},"
              "{\"role\":\"user\",\"content\":\"hi\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.system, "top\ninner");

    /* null system is absent */

    parse(&p, "{\"system\":null,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);

    assert_raw_str("{\"system\":3,\"messages\":[]}");
}


/*
 * The history a request claims: prior is the last user turn that an
 * assistant, tool or role-less item follows
 */

static void
test_prior_chat(void **state)
{
    dg_prompt_t  p;

    (void) state;

    /* [u1, a1, u2]: the first follow-up, prior is first_user itself */
    parse(&p, "{\"messages\":["
              "{\"role\":\"system\",\"content\":\"sys\"},"
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"assistant\",\"content\":\"a1\"},"
              "{\"role\":\"user\",\"content\":\"u2\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_true(p.has_prior);
    assert_text(p.prior, "u1");
    assert_ptr_equal(p.prior.data, p.first_user.data);
    assert_text(p.user, "u2");
    assert_int_equal(p.turns, 3);

    /* [u1, a1, u2, a2, u3]: u2, a message of its own, copied */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"assistant\",\"content\":\"a1\"},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"u2\"},{\"type\":\"text\",\"text\":\"more\"}]},"
              "{\"role\":\"assistant\",\"content\":\"a2\"},"
              "{\"role\":\"user\",\"content\":\"u3\"}]}");

    assert_true(p.has_prior);
    assert_text(p.first_user, "u1");
    assert_text(p.prior, "u2\nmore");
    assert_text(p.user, "u3");
    assert_ptr_not_equal(p.prior.data, p.first_user.data);
    assert_ptr_not_equal(p.prior.data, p.user.data);
    assert_true(p.prior.data >= scratch
                && p.prior.data + p.prior.len <= scratch + sizeof(scratch));
    assert_int_equal(p.turns, 5);

    /* an agent loop, [u1, a1, tool]: the user turn, also the first */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"assistant\",\"content\":null,"
              "\"tool_calls\":[{\"id\":\"1\"}]},"
              "{\"role\":\"tool\",\"content\":\"42\"}]}");

    assert_true(p.has_prior);
    assert_text(p.prior, "u1");
    assert_ptr_equal(p.prior.data, p.user.data);
    assert_ptr_equal(p.prior.data, p.first_user.data);

    /* [u1, a1, u2, tool]: u2, the last user turn */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"assistant\",\"content\":\"a1\"},"
              "{\"role\":\"user\",\"content\":\"u2\"},"
              "{\"role\":\"tool\",\"content\":\"42\"}]}");

    assert_true(p.has_prior);
    assert_text(p.prior, "u2");
    assert_ptr_equal(p.prior.data, p.user.data);

    /* an assistant prefill after the last user turn: that turn */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"assistant\",\"content\":\"{\"}]}");

    assert_true(p.has_prior);
    assert_ptr_equal(p.prior.data, p.user.data);

    /* [u1, u2]: nothing answered, no history */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"user\",\"content\":\"u2\"}]}");

    assert_false(p.has_prior);
    assert_int_equal(p.prior.len, 0);
    assert_non_null(p.prior.data);
    assert_int_equal(p.turns, 2);

    /* system and developer messages answer nothing */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"developer\",\"content\":\"d\"},"
              "{\"role\":\"system\",\"content\":\"s\"}]}");

    assert_false(p.has_prior);

    /* an assistant before any user turn: no history of a user turn */
    parse(&p, "{\"messages\":["
              "{\"role\":\"assistant\",\"content\":\"hello\"},"
              "{\"role\":\"user\",\"content\":\"u1\"}]}");

    assert_false(p.has_prior);
    assert_int_equal(p.prior.len, 0);

    /* a plain prompt */
    parse(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
    assert_false(p.has_prior);
    assert_int_equal(p.prior.len, 0);

    parse(&p, "{\"prompt\":\"q\"}");
    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
    assert_false(p.has_prior);
    assert_int_equal(p.prior.len, 0);

    /* a raw body */
    parse(&p, "tell me about [u1, a1, u2]");
    assert_true(p.fallback);
    assert_false(p.has_prior);
    assert_int_equal(p.prior.len, 0);
    assert_non_null(p.prior.data);

    /* a malformed body after a history: nothing of it is kept */
    parse(&p, "{\"messages\":["
              "{\"role\":\"user\",\"content\":\"u1\"},"
              "{\"role\":\"assistant\",\"content\":\"a1\"},"
              "{\"role\":\"user\",\"content\":\"u2\"}],}");
    assert_true(p.fallback);
    assert_false(p.has_prior);
    assert_int_equal(p.prior.len, 0);
}


static void
test_prior_anthropic(void **state)
{
    dg_prompt_t  p;

    (void) state;

    /* a tool result in a user turn: still a user turn */
    parse(&p, "{\"max_tokens\":9,\"system\":\"s\",\"messages\":["
              "{\"role\":\"user\",\"content\":\"q1\"},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":"
              "\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
              "\"tool_use_id\":\"t\",\"content\":\"1\"},"
              "{\"type\":\"text\",\"text\":\"go on\"}]}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_true(p.has_prior);
    assert_text(p.prior, "q1");
    assert_ptr_equal(p.prior.data, p.first_user.data);
    assert_text(p.user, "go on");

    parse(&p, "{\"anthropic_version\":\"vertex-2023-10-16\","
              "\"max_tokens\":9,\"messages\":["
              "{\"role\":\"user\",\"content\":\"q1\"},"
              "{\"role\":\"assistant\",\"content\":\"a1\"},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"q2\",\"cache_control\":{\"type\":"
              "\"ephemeral\"}}]},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
              "\"text\":\"a2\"}]},"
              "{\"role\":\"user\",\"content\":\"q3\"}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_true(p.has_prior);
    assert_text(p.prior, "q2");
    assert_ptr_not_equal(p.prior.data, p.first_user.data);
    assert_ptr_not_equal(p.prior.data, p.user.data);
    assert_text(p.user, "q3");

    parse(&p, "{\"max_tokens\":9,\"system\":\"s\",\"messages\":["
              "{\"role\":\"user\",\"content\":\"q1\"}]}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_false(p.has_prior);
}


static void
test_prior_responses(void **state)
{
    dg_prompt_t  p;

    (void) state;

    /* a string input: a plain prompt */
    parse(&p, "{\"input\":\"q\",\"instructions\":\"i\"}");
    assert_int_equal(p.format, DG_FORMAT_OPENAI_RESPONSES);
    assert_false(p.has_prior);

    /* role-less items (a function call's output) follow a user turn */
    parse(&p, "{\"input\":["
              "{\"role\":\"user\",\"content\":\"q1\"},"
              "{\"type\":\"function_call\",\"call_id\":\"c\","
              "\"name\":\"f\",\"arguments\":\"{}\"},"
              "{\"type\":\"function_call_output\",\"call_id\":\"c\","
              "\"output\":\"{}\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_RESPONSES);
    assert_true(p.has_prior);
    assert_text(p.prior, "q1");
    assert_ptr_equal(p.prior.data, p.user.data);
    assert_int_equal(p.turns, 3);

    /* [dev, u1, a1, output, u2]: u1 */
    parse(&p, "{\"input\":["
              "{\"role\":\"developer\",\"content\":\"dev rules\"},"
              "{\"type\":\"message\",\"role\":\"user\",\"content\":["
              "{\"type\":\"input_text\",\"text\":\"what is in\"},"
              "{\"type\":\"input_image\",\"image_url\":\"https://x\"},"
              "{\"type\":\"input_text\",\"text\":\"this image?\"}]},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":"
              "\"output_text\",\"text\":\"a cat\"}]},"
              "{\"type\":\"function_call_output\",\"call_id\":\"c\","
              "\"output\":\"{}\"},"
              "{\"role\":\"user\",\"content\":\"and now?\"}]}");

    assert_true(p.has_prior);
    assert_text(p.prior, "what is in\nthis image?");
    assert_ptr_equal(p.prior.data, p.first_user.data);
    assert_text(p.user, "and now?");

    /* [u1, output, u2, output, u3]: u2, copied */
    parse(&p, "{\"input\":["
              "{\"role\":\"user\",\"content\":\"q1\"},"
              "{\"type\":\"reasoning\",\"summary\":[]},"
              "{\"role\":\"user\",\"content\":[{\"type\":"
              "\"input_text\",\"text\":\"q2\"}]},"
              "{\"type\":\"function_call_output\",\"call_id\":\"c\","
              "\"output\":\"{}\"},"
              "{\"role\":\"user\",\"content\":\"q3\"}]}");

    assert_true(p.has_prior);
    assert_text(p.prior, "q2");
    assert_ptr_not_equal(p.prior.data, p.user.data);
    assert_ptr_not_equal(p.prior.data, p.first_user.data);

    /* user items only */
    parse(&p, "{\"input\":["
              "{\"role\":\"user\",\"content\":\"q1\"},"
              "{\"role\":\"user\",\"content\":\"q2\"}]}");

    assert_false(p.has_prior);
}


/* the copied prior stays inside a scratch of len + 1 bytes */

static void
test_prior_scratch(void **state)
{
    static const char  body[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9a\"},"
        "{\"role\":\"assistant\",\"content\":\"x\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"b\"},{\"type\":\"text\",\"text\":\"c\"}]},"
        "{\"role\":\"tool\",\"content\":\"y\"},"
        "{\"role\":\"user\",\"content\":\"\\ud83d\\ude00\"}]}";

    char         scr[sizeof(body)];
    dg_prompt_t  p;

    (void) state;

    memset(scr, 0x55, sizeof(scr));

    dg_prompt_parse(&p, body, sizeof(body) - 1, scr, sizeof(body));

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.first_user, "\xc3\xa9" "a");
    assert_text(p.user, "\xf0\x9f\x98\x80");
    assert_true(p.has_prior);
    assert_text(p.prior, "b\nc");
    assert_true(p.prior.data >= scr);
    assert_true(p.prior.data + p.prior.len <= scr + sizeof(scr));
}


static void
test_meta(void **state)
{
    int          i;
    char         body[256];
    dg_prompt_t  p;

    (void) state;

    parse(&p, "{\"model\":\"m\",\"max_completion_tokens\":4096,"
              "\"temperature\":0.7,\"messages\":[]}");

    assert_true(p.has_max_tokens);
    assert_int_equal(p.max_tokens, 4096);
    assert_true(p.has_temperature);
    assert_int_equal(p.temperature_milli, 700);

    /* max_tokens wins over the others */

    parse(&p, "{\"max_output_tokens\":1,\"max_tokens\":2,\"messages\":[]}");
    assert_int_equal(p.max_tokens, 2);

    parse(&p, "{\"max_tokens\":9007199254740993,\"temperature\":-1.5,"
              "\"messages\":[]}");
    assert_int_equal(p.max_tokens, 9007199254740993LL);
    assert_int_equal(p.temperature_milli, -1500);

    parse(&p, "{\"temperature\":1e10,\"messages\":[]}");
    assert_int_equal(p.temperature_milli, INT32_MAX);

    parse(&p, "{\"temperature\":-1e300,\"messages\":[]}");
    assert_int_equal(p.temperature_milli, INT32_MIN);

    parse(&p, "{\"temperature\":2,\"messages\":[]}");
    assert_int_equal(p.temperature_milli, 2000);

    parse(&p, "{\"temperature\":0.0004,\"messages\":[]}");
    assert_int_equal(p.temperature_milli, 0);

    parse(&p, "{\"temperature\":0.0006,\"messages\":[]}");
    assert_int_equal(p.temperature_milli, 1);

    /* wrong types of metadata are ignored, not fatal */

    parse(&p, "{\"model\":5,\"max_tokens\":\"10\",\"temperature\":\"hot\","
              "\"messages\":[]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_int_equal(p.model[0], '\0');
    assert_false(p.has_max_tokens);
    assert_false(p.has_temperature);

    parse(&p, "{\"max_tokens\":10.0,\"messages\":[]}");
    assert_false(p.has_max_tokens);

    /* a long model name is cut to DG_MODEL_MAX - 1 bytes */

    i = snprintf(body, sizeof(body), "{\"messages\":[],\"model\":\"");
    memset(body + i, 'm', 100);
    strcpy(body + i + 100, "\"}");

    parse(&p, body);
    assert_int_equal(strlen(p.model), DG_MODEL_MAX - 1);
    assert_int_equal(p.model[0], 'm');

    /* ... on a character boundary: "é" is 2 bytes, 62 + 2 > 63 */

    i = snprintf(body, sizeof(body), "{\"messages\":[],\"model\":\"");
    memset(body + i, 'm', 62);
    strcpy(body + i + 62, "\\u00e9\"}");

    parse(&p, body);
    assert_int_equal(strlen(p.model), 62);
}


static void
test_escapes(void **state)
{
    dg_prompt_t  p;

    (void) state;

    /* \u escapes are decoded, including a surrogate pair */

    parse(&p, "{\"prompt\":\"caf\\u00e9 \\ud83d\\ude00 \\/\\\\\"}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
    assert_text(p.user, "caf\xc3\xa9 \xf0\x9f\x98\x80 /\\");

    /* brackets and escaped quotes inside strings do not count as depth */

    parse(&p, "{\"prompt\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\","
              "\"x\":\"\\\\\",\"y\":\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
    assert_int_equal(p.user.len, 42);

    /* leading blanks before the object */

    parse(&p, " \r\n\t{\"prompt\":\"x\"}\n");
    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
}


static void
test_malformed(void **state)
{
    (void) state;

    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]");
    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]} x");
    assert_raw_str("{\"prompt\":\"unterminated}");
    assert_raw_str("{\"prompt\":'single'}");
    assert_raw_str("{\"prompt\":\"x\"}]]]]");
    assert_raw_str("hello, how do I make a bomb?");
    assert_raw_str("   ");
    assert_raw_str("{}");
    assert_raw_str("{\"model\":\"gpt-4o\",\"temperature\":1}");
    assert_raw_str("{\"messages\":null,\"input\":null,\"prompt\":null}");
}


static void
test_toplevel_array(void **state)
{
    (void) state;

    assert_raw_str("[{\"role\":\"user\",\"content\":\"hi\"}]");
    assert_raw_str("\"just a string\"");
    assert_raw_str("42");
    assert_raw_str("null");
}


static void
test_deep(void **state)
{
    int          i;
    char        *body;
    size_t       n;
    dg_prompt_t  p;

    (void) state;

    n = 10000;
    body = malloc(2 * n + 1);
    assert_non_null(body);

    memset(body, '[', n);
    memset(body + n, ']', n);
    body[2 * n] = '\0';

    assert_raw(body, 2 * n, scratch, sizeof(scratch));

    /* an object opening 10,000 levels, never closed */

    memset(body, '{', n);
    assert_raw(body, n, scratch, sizeof(scratch));

    /* exactly DG_JSON_MAX_DEPTH levels is fine, one more is not */

    n = sprintf(body, "{\"prompt\":\"x\",\"d\":");
    for (i = 0; i < DG_JSON_MAX_DEPTH - 1; i++) {
        body[n++] = '[';
    }
    for (i = 0; i < DG_JSON_MAX_DEPTH - 1; i++) {
        body[n++] = ']';
    }
    body[n++] = '}';
    body[n] = '\0';

    parse(&p, body);
    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);

    n = sprintf(body, "{\"prompt\":\"x\",\"d\":");
    for (i = 0; i < DG_JSON_MAX_DEPTH; i++) {
        body[n++] = '[';
    }
    for (i = 0; i < DG_JSON_MAX_DEPTH; i++) {
        body[n++] = ']';
    }
    body[n++] = '}';
    body[n] = '\0';

    assert_raw_str(body);

    free(body);
}


static void
test_huge_string(void **state)
{
    char        *body, *scr;
    size_t       n, len, i;
    dg_prompt_t  p;

    (void) state;

    n = 4 * 1024 * 1024;
    body = malloc(n + 64);
    scr = malloc(n + 64);
    assert_non_null(body);
    assert_non_null(scr);

    len = sprintf(body, "{\"prompt\":\"");
    for (i = 0; i < n; i++) {
        body[len++] = 'a' + i % 26;
    }
    len += sprintf(body + len, "\"}");

    dg_prompt_parse(&p, body, len, scr, len + 1);

    assert_int_equal(p.format, DG_FORMAT_OPENAI_COMPLETIONS);
    assert_int_equal(p.user.len, n);
    assert_ptr_equal(p.user.data, scr);
    assert_memory_equal(p.user.data, body + 11, n);

    free(body);
    free(scr);
}


static void
test_invalid_utf8(void **state)
{
    (void) state;

    assert_raw_str("{\"prompt\":\"\xff\xfe bad\"}");
    assert_raw_str("{\"prompt\":\"\xc3\"}");                /* truncated */
    assert_raw_str("{\"prompt\":\"\xc0\xaf\"}");            /* overlong */
    assert_raw_str("{\"prompt\":\"\xed\xa0\x80\"}");        /* surrogate */
    assert_raw_str("{\"prompt\":\"\\ud800\"}");     /* lone surrogate */
}


static void
test_nul(void **state)
{
    static const char  body[] = "{\"prompt\":\"a\\u0000b\"}";
    static const char  key[] = "{\"prompt\":\"a\",\"k\\u0000\":1}";
    static const char  raw[] = "{\"prompt\":\"a\0b\"}";

    (void) state;

    assert_raw(body, sizeof(body) - 1, scratch, sizeof(scratch));
    assert_raw(key, sizeof(key) - 1, scratch, sizeof(scratch));
    assert_raw(raw, sizeof(raw) - 1, scratch, sizeof(scratch));
}


static void
test_empty(void **state)
{
    dg_prompt_t  p;

    (void) state;

    dg_prompt_parse(&p, "", 0, scratch, sizeof(scratch));

    assert_int_equal(p.format, DG_FORMAT_RAW);
    assert_false(p.fallback);
    assert_non_null(p.user.data);
    assert_int_equal(p.user.len, 0);
    assert_int_equal(p.first_user.len, 0);
    assert_int_equal(p.system.len, 0);
    assert_int_equal(p.turns, 0);

    dg_prompt_parse(&p, NULL, 0, NULL, 0);

    assert_int_equal(p.format, DG_FORMAT_RAW);
    assert_false(p.fallback);
    assert_int_equal(p.turns, 0);
}


static void
test_wrong_types(void **state)
{
    (void) state;

    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":42}]}");
    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":{}}]}");
    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":true}]}");
    assert_raw_str("{\"messages\":{\"role\":\"user\",\"content\":\"hi\"}}");
    assert_raw_str("{\"messages\":\"hi\"}");
    assert_raw_str("{\"messages\":[\"hi\"]}");
    assert_raw_str("{\"messages\":[{\"role\":1,\"content\":\"hi\"}]}");
    assert_raw_str("{\"messages\":[{\"content\":\"hi\"}]}");
    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":"
                   "[{\"type\":\"text\",\"text\":5}]}]}");
    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}");

    /* checked in every message, not only the user ones */

    assert_raw_str("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                   "{\"role\":\"assistant\",\"content\":7}]}");
    assert_raw_str("{\"messages\":[{\"role\":\"system\",\"content\":7},"
                   "{\"role\":\"user\",\"content\":\"hi\"}]}");

    assert_raw_str("{\"prompt\":42}");
    assert_raw_str("{\"prompt\":{}}");
}


static void
test_scratch_small(void **state)
{
    static const char  body[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    char         scr[sizeof(body)];
    dg_prompt_t  p;

    (void) state;

    assert_raw(body, sizeof(body) - 1, scr, sizeof(body) - 1);
    assert_raw(body, sizeof(body) - 1, scr, 0);
    assert_raw(body, sizeof(body) - 1, NULL, sizeof(scratch));

    /* len + 1 is enough */

    dg_prompt_parse(&p, body, sizeof(body) - 1, scr, sizeof(body));
    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.user, "hi");
}


static void
test_not_terminated(void **state)
{
    static const char  text[] =
        "{\"model\":\"gpt-4o-mini\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"sys\"},"
        "{\"role\":\"user\",\"content\":\"tail\"}]}";
    static const char  bad[] = "{\"prompt\":\"abc";

    char        *body, *scr;
    size_t       len;
    dg_prompt_t  p;

    (void) state;

    len = sizeof(text) - 1;
    body = malloc(len);
    scr = malloc(len + 1);
    assert_non_null(body);
    assert_non_null(scr);
    memcpy(body, text, len);

    dg_prompt_parse(&p, body, len, scr, len + 1);

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.user, "tail");
    assert_text(p.system, "sys");
    assert_string_equal(p.model, "gpt-4o-mini");

    free(body);

    /* a body cut inside a string, right at the end of the buffer */

    len = sizeof(bad) - 1;
    body = malloc(len);
    assert_non_null(body);
    memcpy(body, bad, len);

    assert_raw(body, len, scr, len + 1);

    /* cut right after a backslash */

    body[len - 1] = '\\';
    assert_raw(body, len, scr, len + 1);

    free(body);
    free(scr);
}


static void
test_format_names(void **state)
{
    (void) state;

    assert_string_equal(dg_format_name(DG_FORMAT_RAW), "raw");
    assert_string_equal(dg_format_name(DG_FORMAT_OPENAI_CHAT), "openai_chat");
    assert_string_equal(dg_format_name(DG_FORMAT_OPENAI_COMPLETIONS),
                        "openai_completions");
    assert_string_equal(dg_format_name(DG_FORMAT_OPENAI_RESPONSES),
                        "openai_responses");
    assert_string_equal(dg_format_name(DG_FORMAT_ANTHROPIC), "anthropic");
    assert_string_equal(dg_format_name((dg_format_t) 99), "raw");
}


/* strings never leave scratch or body, whatever the body */

static void
test_scratch_bound(void **state)
{
    static const char  body[] =
        "{\"system\":[{\"type\":\"text\",\"text\":\"\\n\\n\"},"
        "{\"type\":\"text\",\"text\":\"\\u00e9\"}],\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"user\",\"content\":\"\\ud83d\\ude00\"}]}";

    char         scr[sizeof(body)];
    dg_prompt_t  p;

    (void) state;

    memset(scr, 0x55, sizeof(scr));

    dg_prompt_parse(&p, body, sizeof(body) - 1, scr, sizeof(body));

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_text(p.system, "\n\n\n\xc3\xa9");
    assert_text(p.first_user, "a\nb");
    assert_text(p.user, "\xf0\x9f\x98\x80");
    assert_true(p.system.data >= scr);
    assert_true(p.user.data + p.user.len <= scr + sizeof(scr));
}


/*
 * Members are found wherever they are, and the last of duplicate keys
 * wins, as in jansson; keys may be escaped.
 */

static void
test_key_order(void **state)
{
    dg_prompt_t  p;

    (void) state;

    /* system and the metadata after messages; role after content */

    parse(&p, "{\"messages\":[{\"content\":\"q\",\"role\":\"user\"}],"
              "\"temperature\":0.5,\"system\":\"s\",\"model\":\"m\"}");

    assert_int_equal(p.format, DG_FORMAT_ANTHROPIC);
    assert_text(p.system, "s");
    assert_text(p.user, "q");
    assert_int_equal(p.temperature_milli, 500);
    assert_string_equal(p.model, "m");

    /* duplicates: the last one counts, at the top and in a message */

    parse(&p, "{\"prompt\":\"one\",\"model\":\"a\",\"prompt\":\"two\","
              "\"model\":\"b\"}");

    assert_text(p.user, "two");
    assert_string_equal(p.model, "b");

    parse(&p, "{\"messages\":[{\"role\":\"user\",\"content\":7,"
              "\"role\":\"assistant\",\"content\":\"a\",\"content\":\"b\"},"
              "{\"role\":\"system\",\"content\":\"s\",\"role\":\"user\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.user, "s");
    assert_int_equal(p.system.len, 0);
    assert_int_equal(p.turns, 2);

    /* a bad content checked as it is read does not count for an item */

    parse(&p, "{\"input\":[{\"content\":7},{\"type\":\"reasoning\","
              "\"content\":[1]},{\"role\":\"user\",\"content\":\"x\"}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_RESPONSES);
    assert_text(p.user, "x");
    assert_int_equal(p.turns, 3);

    /* a later null messages gives way to input */

    parse(&p, "{\"messages\":[],\"input\":\"i\",\"messages\":null}");
    assert_int_equal(p.format, DG_FORMAT_OPENAI_RESPONSES);

    /* escaped keys and role names */

    parse(&p, "{\"m\\u0065ssages\":[{\"r\\u006fle\":\"\\u0075ser\","
              "\"content\":[{\"typ\\u0065\":\"t\\u0065xt\","
              "\"t\\u0065xt\":\"hi\"}]}]}");

    assert_int_equal(p.format, DG_FORMAT_OPENAI_CHAT);
    assert_text(p.user, "hi");
}


/* the jansson reference gives the same for every body here */

static void
test_reference(void **state)
{
    size_t       i, len;
    dg_prompt_t  p, r;

    static char  ref_scratch[1 << 16];

    static const char  *bodies[] = {
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"c\\n\\u00e9\"}]}],"
        "\"max_tokens\":100,\"temperature\":1.25}",
        "{\"max_tokens\":9,\"system\":[{\"type\":\"text\",\"text\":\"s\"}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\","
        "\"source\":{}},{\"type\":\"text\",\"text\":\"x\"}]}]}",
        "{\"input\":[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"type\":\"function_call\",\"name\":\"f\"}],"
        "\"instructions\":null,\"max_output_tokens\":5}",
        "{\"prompt\":[\"a\",\"\",\"b\"],\"temperature\":0.0005}",
        "{\"prompt\":\"x\",\"temperature\":1e-400}",
        ("{\"prompt\":\"x\",\"temperature\":"
         "0.00000000000000000000000000000000000000000000000000000000001}"),
        "{\"prompt\":\"x\",\"max_tokens\":-9223372036854775808}",
        "{\"prompt\":\"x\",\"max_tokens\":9223372036854775808}",
        "{\"prompt\":\"x\",\"t\":1e309}",
        "{\"prompt\":\"x\",\"t\":1.7976931348623157e308}",
        "{\"prompt\":\"\\ud83d\\ude00\\ud83d\"}",
        "{\"prompt\":\"x\",\"y\":\"\\u0000\"}",
        "{\"prompt\":\"x\"} {}",
        "{\"prompt\":\"x\",}",
        "[\"x\"]",
        "{\"messages\":[{\"role\":\"user\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":5}]}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},"
        "{\"role\":\"assistant\",\"content\":\"a1\"},"
        "{\"role\":\"user\",\"content\":\"u2\"},"
        "{\"role\":\"assistant\",\"content\":\"a2\"},"
        "{\"role\":\"user\",\"content\":\"u3\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"tool\",\"content\":\"t\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},"
        "{\"role\":\"user\",\"content\":\"u2\"}]}",
        "{\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
        "\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"a\"}]},{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"u2\"}]},"
        "{\"role\":\"assistant\",\"content\":\"b\"},"
        "{\"role\":\"user\",\"content\":\"u3\"}]}",
        "{\"input\":[{\"role\":\"user\",\"content\":\"q1\"},"
        "{\"type\":\"function_call_output\",\"output\":\"o\"},"
        "{\"role\":\"user\",\"content\":\"q2\"},"
        "{\"type\":\"function_call_output\",\"output\":\"o\"},"
        "{\"role\":\"user\",\"content\":\"q3\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},"
        "{\"role\":\"assistant\",\"content\":\"a1\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]},"
        "{\"role\":\"assistant\",\"content\":\"a2\"},"
        "{\"role\":\"user\",\"content\":\"u3\"}]}",
    };

    (void) state;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        len = strlen(bodies[i]);

        dg_prompt_parse(&p, bodies[i], len, scratch, sizeof(scratch));
        dg_prompt_parse_reference(&r, bodies[i], len, ref_scratch,
                                  sizeof(ref_scratch));

        assert_int_equal(p.format, r.format);
        assert_int_equal(p.fallback, r.fallback);
        assert_int_equal(p.turns, r.turns);
        assert_string_equal(p.model, r.model);
        assert_int_equal(p.has_max_tokens, r.has_max_tokens);
        assert_true(p.max_tokens == r.max_tokens);
        assert_int_equal(p.has_temperature, r.has_temperature);
        assert_int_equal(p.temperature_milli, r.temperature_milli);
        assert_int_equal(p.user.len, r.user.len);
        assert_memory_equal(p.user.data, r.user.data, p.user.len);
        assert_int_equal(p.first_user.len, r.first_user.len);
        assert_memory_equal(p.first_user.data, r.first_user.data,
                            p.first_user.len);
        assert_int_equal(p.system.len, r.system.len);
        assert_memory_equal(p.system.data, r.system.data, p.system.len);
        assert_int_equal(p.has_prior, r.has_prior);
        assert_int_equal(p.prior.len, r.prior.len);
        assert_memory_equal(p.prior.data, r.prior.data, p.prior.len);

        /* the same message is the same pointer, in both */
        assert_int_equal(p.prior.data == p.first_user.data,
                         r.prior.data == r.first_user.data);
        assert_int_equal(p.prior.data == p.user.data,
                         r.prior.data == r.user.data);
    }
}


/*
 * The one known difference: jansson skips a NUL byte right after a
 * number or a literal; that is no JSON, and the body stays raw here.
 */

static void
test_nul_after_number(void **state)
{
    dg_prompt_t        r;
    static const char  body[] = "{\"prompt\":\"x\",\"max_tokens\":5\0}";

    (void) state;

    assert_raw(body, sizeof(body) - 1, scratch, sizeof(scratch));

    dg_prompt_parse_reference(&r, body, sizeof(body) - 1, scratch,
                              sizeof(scratch));
    assert_int_equal(r.format, DG_FORMAT_OPENAI_COMPLETIONS);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_chat_string),
        cmocka_unit_test(test_chat_parts),
        cmocka_unit_test(test_chat_multi_turn),
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_anthropic),
        cmocka_unit_test(test_prior_chat),
        cmocka_unit_test(test_prior_anthropic),
        cmocka_unit_test(test_prior_responses),
        cmocka_unit_test(test_prior_scratch),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_toplevel_array),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_huge_string),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_scratch_small),
        cmocka_unit_test(test_not_terminated),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_scratch_bound),
        cmocka_unit_test(test_key_order),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_nul_after_number),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
