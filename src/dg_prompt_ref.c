/*
 * distill-guard engine: the jansson prompt extractor, kept as the
 * reference implementation of dg_prompt_parse() (src/dg_prompt.c).  Only
 * the unit tests and the differential fuzz target use it, as an oracle:
 * both must give the same result for every body.  The rules are those at
 * the top of dg_prompt.c; this file is the slow, obviously right version.
 *
 * The body is parsed with jansson and the tree is freed before returning,
 * so nothing points into jansson memory: extracted text is copied into the
 * caller's scratch buffer, or, for a raw body, points into the body.  A
 * decoded JSON string is never longer than its quoted, escaped form, and
 * each JSON string feeds at most one output, so len + 1 bytes of scratch
 * always hold system, first_user and user together (every copy is still
 * bounds-checked).
 */

#include <string.h>

#include <jansson.h>

#include "dg_prompt_ref.h"


typedef struct {
    char               *pos;            /* next free byte of scratch */
    char               *end;
    unsigned            system_role:1;  /* a system/developer message */
    unsigned            anthropic:1;    /* an Anthropic-only block type */
} dg_ctx_t;


static int dg_depth_ok(const unsigned char *p, const unsigned char *end);
static int dg_chat(dg_ctx_t *ctx, dg_prompt_t *p, json_t *root,
    json_t *msgs);
static int dg_responses(dg_ctx_t *ctx, dg_prompt_t *p, json_t *root,
    json_t *input);
static int dg_completions(dg_ctx_t *ctx, dg_prompt_t *p, json_t *prompt);
static int dg_messages(dg_ctx_t *ctx, dg_prompt_t *p, json_t *msgs,
    int items);
static int dg_content(dg_ctx_t *ctx, json_t *content, dg_str_t *s);
static int dg_append(dg_ctx_t *ctx, dg_str_t *s, json_t *str);
static void dg_meta(dg_prompt_t *p, json_t *root);
static int32_t dg_milli(double v);
static void dg_raw(dg_prompt_t *p, const char *body, size_t len);


static const char  dg_empty[] = "";


void
dg_prompt_parse_reference(dg_prompt_t *p, const char *body, size_t len,
    char *scratch, size_t scratch_size)
{
    int             rc;
    json_t         *root, *v;
    dg_ctx_t        ctx;
    const char     *c, *end;
    json_error_t    err;

    memset(p, 0, sizeof(dg_prompt_t));
    p->format = DG_FORMAT_RAW;
    p->user.data = dg_empty;
    p->first_user.data = dg_empty;
    p->prior.data = dg_empty;
    p->system.data = dg_empty;

    if (body == NULL || len == 0) {
        return;
    }

    if (scratch == NULL || scratch_size <= len) {
        dg_raw(p, body, len);
        return;
    }

    /* only an object can be a request: spare jansson anything else */

    end = body + len;

    for (c = body; c < end; c++) {
        if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n') {
            break;
        }
    }

    if (c == end || *c != '{'
        || !dg_depth_ok((const unsigned char *) c,
                        (const unsigned char *) end))
    {
        dg_raw(p, body, len);
        return;
    }

    /* flags 0: duplicate keys are allowed (the last wins), "\u0000" not */

    root = json_loadb(body, len, 0, &err);
    if (root == NULL) {
        dg_raw(p, body, len);
        return;
    }

    ctx.pos = scratch;
    ctx.end = scratch + scratch_size;
    ctx.system_role = 0;
    ctx.anthropic = 0;

    p->system.data = ctx.pos;

    rc = -1;

    if (!json_is_object(root)) {
        /* void */

    } else if ((v = json_object_get(root, "messages")) != NULL
               && !json_is_null(v))
    {
        rc = dg_chat(&ctx, p, root, v);

    } else if ((v = json_object_get(root, "input")) != NULL
               && !json_is_null(v))
    {
        rc = dg_responses(&ctx, p, root, v);

    } else if ((v = json_object_get(root, "prompt")) != NULL
               && !json_is_null(v))
    {
        rc = dg_completions(&ctx, p, v);
    }

    if (rc == 0) {
        dg_meta(p, root);
    }

    json_decref(root);

    if (rc != 0) {
        dg_raw(p, body, len);
    }
}


/*
 * jansson recurses once per nesting level and a deep body is no real
 * request, so one pass counts the nesting of [ and { outside strings
 * first.  Strings are skipped with memchr: they are most of the body.
 * Returns 0 if too deep (or plainly unbalanced), 1 otherwise.
 */

static int
dg_depth_ok(const unsigned char *p, const unsigned char *end)
{
    int                   depth;
    const unsigned char  *q, *b;

    depth = 0;

    while (p < end) {

        switch (*p++) {

        case '"':
            for ( ;; ) {
                q = memchr(p, '"', end - p);
                if (q == NULL) {
                    /* unterminated: jansson will reject it */
                    return 1;
                }

                /* the quote is escaped if an odd run of \ precedes it */

                for (b = q; b > p && b[-1] == '\\'; b--) {
                    /* void */
                }

                p = q + 1;

                if (((q - b) & 1) == 0) {
                    break;
                }
            }

            break;

        case '{':
        case '[':
            if (++depth > DG_JSON_MAX_DEPTH) {
                return 0;
            }

            break;

        case '}':
        case ']':
            /* more closed than opened: malformed, jansson would say so */

            if (--depth < 0) {
                return 0;
            }

            break;

        default:
            break;
        }
    }

    return 1;
}


static int
dg_chat(dg_ctx_t *ctx, dg_prompt_t *p, json_t *root, json_t *msgs)
{
    json_t  *sys;

    if (!json_is_array(msgs)) {
        return -1;
    }

    sys = json_object_get(root, "system");
    if (sys != NULL && json_is_null(sys)) {
        sys = NULL;
    }

    if (sys != NULL && dg_content(ctx, sys, &p->system) != 0) {
        return -1;
    }

    if (dg_messages(ctx, p, msgs, 0) != 0) {
        return -1;
    }

    if (!ctx->system_role
        && (sys != NULL
            || json_object_get(root, "anthropic_version") != NULL
            || ctx->anthropic))
    {
        p->format = DG_FORMAT_ANTHROPIC;

    } else {
        p->format = DG_FORMAT_OPENAI_CHAT;
    }

    return 0;
}


static int
dg_responses(dg_ctx_t *ctx, dg_prompt_t *p, json_t *root, json_t *input)
{
    p->format = DG_FORMAT_OPENAI_RESPONSES;

    if (dg_content(ctx, json_object_get(root, "instructions"), &p->system)
        != 0)
    {
        return -1;
    }

    if (json_is_array(input)) {
        return dg_messages(ctx, p, input, 1);
    }

    if (!json_is_string(input)) {
        return -1;
    }

    p->user.data = ctx->pos;

    if (dg_append(ctx, &p->user, input) != 0) {
        return -1;
    }

    p->first_user = p->user;
    p->one_user = 1;
    p->turns = 1;

    return 0;
}


static int
dg_completions(dg_ctx_t *ctx, dg_prompt_t *p, json_t *prompt)
{
    size_t   i, n;
    json_t  *v;

    p->format = DG_FORMAT_OPENAI_COMPLETIONS;
    p->turns = 1;
    p->user.data = ctx->pos;

    if (json_is_string(prompt)) {
        if (dg_append(ctx, &p->user, prompt) != 0) {
            return -1;
        }

    } else if (json_is_array(prompt)) {
        n = json_array_size(prompt);

        for (i = 0; i < n; i++) {
            v = json_array_get(prompt, i);

            /* token id arrays carry no text we can read */

            if (!json_is_string(v) || dg_append(ctx, &p->user, v) != 0) {
                return -1;
            }
        }

    } else {
        return -1;
    }

    p->first_user = p->user;
    p->one_user = 1;

    return 0;
}


/*
 * messages[] of chat and Anthropic, or input[] of Responses (items: items
 * without a role are not messages).  A first pass checks types, counts
 * turns, appends system text and finds the first and last user messages;
 * only those two are then copied, so scratch holds system, first_user and
 * user one after the other.
 */

static int
dg_messages(dg_ctx_t *ctx, dg_prompt_t *p, json_t *msgs, int items)
{
    size_t       i, n, first, last, cand, prior;
    json_t      *msg, *role, *content;
    const char  *r;

    n = json_array_size(msgs);
    first = n;
    last = n;
    cand = n;
    prior = n;

    for (i = 0; i < n; i++) {
        msg = json_array_get(msgs, i);

        if (!json_is_object(msg)) {
            return -1;
        }

        role = json_object_get(msg, "role");

        if (role == NULL && items) {
            p->turns += (p->turns < UINT32_MAX);
            prior = (cand != n) ? cand : prior;
            continue;
        }

        if (!json_is_string(role)) {
            return -1;
        }

        r = json_string_value(role);
        content = json_object_get(msg, "content");

        if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
            ctx->system_role = 1;

            if (dg_content(ctx, content, &p->system) != 0) {
                return -1;
            }

            continue;
        }

        if (dg_content(ctx, content, NULL) != 0) {
            return -1;
        }

        p->turns += (p->turns < UINT32_MAX);

        if (strcmp(r, "user") == 0) {
            if (first == n) {
                first = i;
            }

            last = i;
            cand = i;

        } else if (cand != n) {
            prior = cand;
        }
    }

    if (first == n) {
        return 0;
    }

    p->first_user.data = ctx->pos;

    msg = json_array_get(msgs, first);
    if (dg_content(ctx, json_object_get(msg, "content"), &p->first_user)
        != 0)
    {
        return -1;
    }

    if (last == first) {
        p->user = p->first_user;
        p->one_user = 1;

    } else {
        p->user.data = ctx->pos;

        msg = json_array_get(msgs, last);

        if (dg_content(ctx, json_object_get(msg, "content"), &p->user)
            != 0)
        {
            return -1;
        }
    }

    if (prior == n) {
        return 0;
    }

    p->has_prior = 1;

    if (prior == first) {
        p->prior = p->first_user;
        p->prior_first = 1;
        return 0;
    }

    if (prior == last) {
        p->prior = p->user;
        return 0;
    }

    p->prior.data = ctx->pos;

    msg = json_array_get(msgs, prior);

    return dg_content(ctx, json_object_get(msg, "content"), &p->prior);
}


/*
 * A content: a string, an array of parts, null or absent.  Appends its
 * text to s, or only checks it when s is NULL; notes Anthropic-only block
 * types on the way.
 */

static int
dg_content(dg_ctx_t *ctx, json_t *content, dg_str_t *s)
{
    size_t       i, n;
    json_t      *part, *type, *text;
    const char  *t;

    if (content == NULL || json_is_null(content)) {
        return 0;
    }

    if (json_is_string(content)) {
        return (s != NULL) ? dg_append(ctx, s, content) : 0;
    }

    if (!json_is_array(content)) {
        return -1;
    }

    n = json_array_size(content);

    for (i = 0; i < n; i++) {
        part = json_array_get(content, i);

        if (!json_is_object(part)) {
            return -1;
        }

        /* a part without a type is unknown to every API: skipped */

        type = json_object_get(part, "type");
        if (!json_is_string(type)) {
            continue;
        }

        t = json_string_value(type);

        if (strcmp(t, "text") == 0
            || strcmp(t, "input_text") == 0
            || strcmp(t, "output_text") == 0)
        {
            text = json_object_get(part, "text");

            if (!json_is_string(text)) {
                return -1;
            }

            if (s != NULL && dg_append(ctx, s, text) != 0) {
                return -1;
            }

            continue;
        }

        if (strcmp(t, "image") == 0
            || strcmp(t, "document") == 0
            || strcmp(t, "tool_use") == 0
            || strcmp(t, "tool_result") == 0
            || strcmp(t, "thinking") == 0
            || strcmp(t, "redacted_thinking") == 0)
        {
            ctx->anthropic = 1;
        }
    }

    return 0;
}


/*
 * Appends a JSON string to s, which must end at ctx->pos, after a "\n" if
 * s is not empty.  Running out of scratch cannot happen when it holds
 * len + 1 bytes (see the top of the file), but it is checked anyway.
 */

static int
dg_append(dg_ctx_t *ctx, dg_str_t *s, json_t *str)
{
    size_t  n, sep;

    n = json_string_length(str);

    if (n == 0) {
        return 0;
    }

    sep = (s->len > 0);

    if ((size_t) (ctx->end - ctx->pos) < n + sep) {
        return -1;
    }

    if (sep) {
        *ctx->pos++ = '\n';
    }

    memcpy(ctx->pos, json_string_value(str), n);
    ctx->pos += n;
    s->len += n + sep;

    return 0;
}


static void
dg_meta(dg_prompt_t *p, json_t *root)
{
    size_t        i, n;
    json_t       *v;
    const char   *s;

    static const char  *max[] = {
        "max_tokens", "max_completion_tokens", "max_output_tokens"
    };

    v = json_object_get(root, "model");

    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);

        if (n >= DG_MODEL_MAX) {
            n = DG_MODEL_MAX - 1;

            /* cut on a character boundary: jansson checked the UTF-8 */

            while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
                n--;
            }
        }

        memcpy(p->model, s, n);
        p->model[n] = '\0';
    }

    for (i = 0; i < sizeof(max) / sizeof(max[0]); i++) {
        v = json_object_get(root, max[i]);

        if (json_is_integer(v)) {
            p->max_tokens = json_integer_value(v);
            p->has_max_tokens = 1;
            break;
        }
    }

    v = json_object_get(root, "temperature");

    if (json_is_number(v)) {
        p->temperature_milli = dg_milli(json_number_value(v));
        p->has_temperature = 1;
    }
}


/* v * 1000 rounded half away from zero, clamped to int32 */

static int32_t
dg_milli(double v)
{
    v *= 1000.0;

    if (v != v) {
        return 0;
    }

    if (v >= 2147483647.0) {
        return INT32_MAX;
    }

    if (v <= -2147483648.0) {
        return INT32_MIN;
    }

    return (int32_t) (v < 0 ? v - 0.5 : v + 0.5);
}


static void
dg_raw(dg_prompt_t *p, const char *body, size_t len)
{
    memset(p, 0, sizeof(dg_prompt_t));

    p->format = DG_FORMAT_RAW;
    p->fallback = 1;
    p->user.data = body;
    p->user.len = len;
    p->first_user = p->user;
    p->prior.data = dg_empty;
    p->system.data = dg_empty;
    p->turns = 1;
    p->one_user = 1;
}
