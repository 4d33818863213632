/*
 * distill-guard engine: prompt extraction from LLM API request bodies.
 *
 * The body is read with the dg_json scanner: no tree, no allocation, and
 * text that needs no unescaping is copied straight from the body.  Two
 * steps: dg_scan() reads the whole document once, which checks all of it
 * (whatever jansson would refuse, or nesting deeper than
 * DG_JSON_MAX_DEPTH, makes the body raw), and keeps a cursor at the value
 * of each top-level member the rules below use, the last of duplicate
 * keys winning as in jansson.  Then only those values are read again,
 * with trusted cursors that just look for the end of each string, and
 * the text of system messages and of the first and last user messages
 * once more to copy it, so that scratch holds system, first_user and
 * user one after the other.
 *
 * Extracted text is copied into the caller's scratch buffer, or, for a
 * raw body, points into the body.  A decoded JSON string is never longer
 * than its quoted, escaped form, and each JSON string feeds at most one
 * output, so len + 1 bytes of scratch always hold system, first_user and
 * user together (every copy is still bounds-checked).
 *
 * src/dg_prompt_ref.c is the same extractor on jansson, kept as the
 * reference: the fuzz target checks that both give the same result.
 *
 * Formats, tried in this order on a top-level JSON object:
 *
 *   "messages"  an array: Anthropic messages or OpenAI chat completions.
 *               It is Anthropic when no message has role "system" or
 *               "developer" (Anthropic rejects those roles) and either
 *               there is a top-level "system" or "anthropic_version", or a
 *               content block has a type only Anthropic defines ("image",
 *               "document", "tool_use", "tool_result", "thinking",
 *               "redacted_thinking"; OpenAI says "image_url", "file" and
 *               has no tool blocks).  Otherwise it is OpenAI chat.
 *               "max_tokens" is no signal: both APIs take it.  A plain
 *               Anthropic request with user text only is thus labelled
 *               openai_chat; the extracted text is the same either way.
 *
 *   "input"     a string or an array of items: OpenAI Responses.
 *               "instructions" and system/developer items are the system
 *               text; items without a role (function_call, reasoning...)
 *               count as turns but carry no text for us.
 *
 *   "prompt"    a string or an array of strings: OpenAI legacy
 *               completions.  An array is a batch of independent prompts
 *               sent in one request: they are joined with "\n" into user
 *               (first_user is the same), turns = 1, so no text of the
 *               batch escapes the detector and a batch does not look like
 *               a conversation.
 *
 * The history a request claims: prior is the last user message that an
 * assistant, tool or role-less item follows ([u1, a1, u2]: u1; an agent's
 * [u1, a1, tool]: u1 too), and has_prior says there is one.  It points at
 * first_user or user when it is the same message, else it is copied like
 * them: a different message, so different JSON strings, and scratch still
 * holds it.
 *
 * Text parts are "text", "input_text" and "output_text" blocks, joined
 * with "\n" (empty pieces add no separator); other parts (images, audio,
 * tool results) are skipped.  Where text is read, a value of a type no
 * API sends (a message that is not an object, a role that is not a
 * string, content that is a number, a text that is not a string, a prompt
 * array holding token ids) makes the whole body raw: a request upstream
 * would reject is not worth a guess, and its raw text is still scored.
 * model, max_tokens and temperature of the wrong type are just ignored.
 */

#include <string.h>

#include "dg_json.h"
#include "dg_prompt.h"


/* the top-level members the rules use: indexes into dg_fields[] */

enum {
    DG_MESSAGES = 0,
    DG_INPUT,
    DG_PROMPT,
    DG_SYSTEM,
    DG_ANTHROPIC_VERSION,
    DG_INSTRUCTIONS,
    DG_MODEL,
    DG_MAX_TOKENS,              /* the three in order of precedence */
    DG_MAX_COMPLETION_TOKENS,
    DG_MAX_OUTPUT_TOKENS,
    DG_TEMPERATURE,
    DG_NFIELDS
};


typedef struct {
    const char         *name;
    size_t              len;
} dg_name_t;


typedef struct {
    dg_json_t           at[DG_NFIELDS];     /* cursors at the values */
    unsigned            found;              /* bit i: at[i] is set */
} dg_top_t;


typedef struct {
    char               *pos;            /* next free byte of scratch */
    char               *end;
    unsigned            system_role;    /* a system/developer message */
    unsigned            anthropic;      /* an Anthropic-only block type */
} dg_ctx_t;


#define dg_name(s)      { s, sizeof(s) - 1 }

/* the length first: most names are told apart without a call */

#define dg_is(v, s)                                                           \
    ((v)->len == sizeof(s) - 1 && dg_json_string_eq(v, s, sizeof(s) - 1))


static int dg_scan(dg_top_t *top, const char *body, size_t len);
static int dg_get(dg_top_t *top, int i, dg_json_t *js, dg_json_value_t *v);
static int dg_chat(dg_ctx_t *ctx, dg_prompt_t *p, dg_top_t *top,
    dg_json_t *js, dg_json_value_t *msgs);
static int dg_responses(dg_ctx_t *ctx, dg_prompt_t *p, dg_top_t *top,
    dg_json_t *js, dg_json_value_t *input);
static int dg_completions(dg_ctx_t *ctx, dg_prompt_t *p, dg_json_t *js,
    dg_json_value_t *prompt);
static int dg_messages(dg_ctx_t *ctx, dg_prompt_t *p, dg_json_t *js,
    int items);
static int dg_top_content(dg_ctx_t *ctx, dg_top_t *top, int i,
    dg_str_t *s);
static int dg_content(dg_ctx_t *ctx, dg_json_t *js, dg_str_t *s,
    unsigned *anthropic);
static int dg_append(dg_ctx_t *ctx, dg_str_t *s, const dg_json_value_t *str);
static void dg_meta(dg_prompt_t *p, dg_top_t *top);
static void dg_raw(dg_prompt_t *p, const char *body, size_t len);


static const char  dg_empty[] = "";

static const dg_name_t  dg_fields[DG_NFIELDS] = {
    dg_name("messages"),
    dg_name("input"),
    dg_name("prompt"),
    dg_name("system"),
    dg_name("anthropic_version"),
    dg_name("instructions"),
    dg_name("model"),
    dg_name("max_tokens"),
    dg_name("max_completion_tokens"),
    dg_name("max_output_tokens"),
    dg_name("temperature")
};


void
dg_prompt_parse(dg_prompt_t *p, const char *body, size_t len,
    char *scratch, size_t scratch_size)
{
    int              rc;
    dg_ctx_t         ctx;
    dg_top_t         top;
    dg_json_t        js;
    dg_json_value_t  v;

    memset(p, 0, sizeof(dg_prompt_t));
    p->format = DG_FORMAT_RAW;
    p->user.data = dg_empty;
    p->first_user.data = dg_empty;
    p->prior.data = dg_empty;
    p->system.data = dg_empty;

    if (body == NULL || len == 0) {
        return;
    }

    if (scratch == NULL || scratch_size <= len
        || dg_scan(&top, body, len) != 0)
    {
        dg_raw(p, body, len);
        return;
    }

    ctx.pos = scratch;
    ctx.end = scratch + scratch_size;
    ctx.system_role = 0;
    ctx.anthropic = 0;

    p->system.data = ctx.pos;

    rc = -1;

    if (dg_get(&top, DG_MESSAGES, &js, &v) && v.type != DG_JSON_NULL) {
        rc = dg_chat(&ctx, p, &top, &js, &v);

    } else if (dg_get(&top, DG_INPUT, &js, &v) && v.type != DG_JSON_NULL) {
        rc = dg_responses(&ctx, p, &top, &js, &v);

    } else if (dg_get(&top, DG_PROMPT, &js, &v) && v.type != DG_JSON_NULL) {
        rc = dg_completions(&ctx, p, &js, &v);
    }

    if (rc != 0) {
        dg_raw(p, body, len);
        return;
    }

    dg_meta(p, &top);
}


const char *
dg_format_name(dg_format_t format)
{
    switch (format) {

    case DG_FORMAT_OPENAI_CHAT:
        return "openai_chat";

    case DG_FORMAT_OPENAI_COMPLETIONS:
        return "openai_completions";

    case DG_FORMAT_OPENAI_RESPONSES:
        return "openai_responses";

    case DG_FORMAT_ANTHROPIC:
        return "anthropic";

    default:
        return "raw";
    }
}


/*
 * Reads the whole document: it must be one object and nothing else.
 * The cursors kept are trusted, which is right only once this returns 0.
 */

static int
dg_scan(dg_top_t *top, const char *body, size_t len)
{
    int              i, rc;
    dg_json_t        js;
    dg_json_value_t  key;

    top->found = 0;

    dg_json_init(&js, body, len);

    if (dg_json_next(&js, &key) != 0 || key.type != DG_JSON_OBJECT) {
        return -1;
    }

    while ((rc = dg_json_member(&js, &key)) == 1) {

        for (i = 0; i < DG_NFIELDS; i++) {
            if (key.len == dg_fields[i].len
                && dg_json_string_eq(&key, dg_fields[i].name,
                                     dg_fields[i].len))
            {
                top->at[i] = js;
                dg_json_trust(&top->at[i]);
                top->found |= 1u << i;
                break;
            }
        }

        if (dg_json_skip(&js) != 0) {
            return -1;
        }
    }

    if (rc != 0 || dg_json_end(&js) != 0) {
        return -1;
    }

    return 0;
}


/*
 * Reads the value of top-level member i into v, js then being inside it
 * if it is an object or array.  Returns 0 if there is no such member.
 */

static int
dg_get(dg_top_t *top, int i, dg_json_t *js, dg_json_value_t *v)
{
    if ((top->found & (1u << i)) == 0) {
        return 0;
    }

    *js = top->at[i];

    /* cannot fail once dg_scan() has read it: DG_JSON_ERROR fits no rule */

    (void) dg_json_next(js, v);

    return 1;
}


static int
dg_chat(dg_ctx_t *ctx, dg_prompt_t *p, dg_top_t *top, dg_json_t *js,
    dg_json_value_t *msgs)
{
    int              sys;
    dg_json_t        sys_js;
    dg_json_value_t  v;

    if (msgs->type != DG_JSON_ARRAY) {
        return -1;
    }

    sys = dg_get(top, DG_SYSTEM, &sys_js, &v) && v.type != DG_JSON_NULL;

    if (sys && dg_top_content(ctx, top, DG_SYSTEM, &p->system) != 0) {
        return -1;
    }

    if (dg_messages(ctx, p, js, 0) != 0) {
        return -1;
    }

    if (!ctx->system_role
        && (sys
            || (top->found & (1u << DG_ANTHROPIC_VERSION))
            || ctx->anthropic))
    {
        p->format = DG_FORMAT_ANTHROPIC;

    } else {
        p->format = DG_FORMAT_OPENAI_CHAT;
    }

    return 0;
}


static int
dg_responses(dg_ctx_t *ctx, dg_prompt_t *p, dg_top_t *top, dg_json_t *js,
    dg_json_value_t *input)
{
    p->format = DG_FORMAT_OPENAI_RESPONSES;

    if (dg_top_content(ctx, top, DG_INSTRUCTIONS, &p->system) != 0) {
        return -1;
    }

    if (input->type == DG_JSON_ARRAY) {
        return dg_messages(ctx, p, js, 1);
    }

    if (input->type != DG_JSON_STRING) {
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
dg_completions(dg_ctx_t *ctx, dg_prompt_t *p, dg_json_t *js,
    dg_json_value_t *prompt)
{
    int              rc;
    dg_json_value_t  v;

    p->format = DG_FORMAT_OPENAI_COMPLETIONS;
    p->turns = 1;
    p->user.data = ctx->pos;

    if (prompt->type == DG_JSON_STRING) {
        if (dg_append(ctx, &p->user, prompt) != 0) {
            return -1;
        }

    } else if (prompt->type == DG_JSON_ARRAY) {

        while ((rc = dg_json_element(js)) == 1) {

            /* token id arrays carry no text we can read */

            if (dg_json_next(js, &v) != 0
                || v.type != DG_JSON_STRING
                || dg_append(ctx, &p->user, &v) != 0)
            {
                return -1;
            }
        }

        if (rc != 0) {
            return -1;
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
 * without a role are not messages); js is inside the array.  A first pass
 * checks types, counts turns, appends system text and keeps cursors at
 * the contents of the first and last user messages; only those two are
 * then copied, so scratch holds system, first_user and user one after
 * the other.
 *
 * A content is checked as it is stepped over, but the check counts only
 * once the role is known (the last "role" key may follow it): an item
 * without a role may have any content.
 */

static int
dg_messages(dg_ctx_t *ctx, dg_prompt_t *p, dg_json_t *js, int items)
{
    int              rc, has_role, has_content, checked, first_has, last_has,
                     cand_has, prior_has;
    size_t           users, cand_n, prior_n;
    unsigned         anthropic;
    dg_json_t        content, first, last, cand, prior, c;
    dg_json_value_t  v, role;

    users = 0;
    first_has = 0;
    last_has = 0;
    cand_has = 0;
    prior_has = 0;
    cand_n = 0;
    prior_n = 0;

    while ((rc = dg_json_element(js)) == 1) {

        if (dg_json_next(js, &v) != 0 || v.type != DG_JSON_OBJECT) {
            return -1;
        }

        has_role = 0;
        has_content = 0;
        checked = 0;
        anthropic = 0;

        while ((rc = dg_json_member(js, &v)) == 1) {

            if (dg_is(&v, "role")) {
                has_role = 1;
                rc = dg_json_read(js, &role);

            } else if (dg_is(&v, "content")) {
                has_content = 1;
                content = *js;
                anthropic = 0;

                /* a content that fails its check is not read through */

                checked = dg_content(ctx, js, NULL, &anthropic);
                rc = 0;

                if (checked != 0) {
                    *js = content;
                    rc = dg_json_skip(js);
                }

            } else {
                rc = dg_json_skip(js);
            }

            if (rc != 0) {
                return -1;
            }
        }

        if (rc != 0) {
            return -1;
        }

        if (!has_role && items) {
            p->turns += (p->turns < UINT32_MAX);

            if (cand_n) {
                prior = cand;
                prior_has = cand_has;
                prior_n = cand_n;
            }

            continue;
        }

        if (!has_role || role.type != DG_JSON_STRING) {
            return -1;
        }

        if (dg_is(&role, "system") || dg_is(&role, "developer")) {
            ctx->system_role = 1;

            c = content;

            if (dg_content(ctx, has_content ? &c : NULL, &p->system,
                           &ctx->anthropic)
                != 0)
            {
                return -1;
            }

            continue;
        }

        if (checked != 0) {
            return -1;
        }

        ctx->anthropic |= anthropic;
        p->turns += (p->turns < UINT32_MAX);

        if (dg_is(&role, "user")) {
            if (users++ == 0) {
                first = content;
                first_has = has_content;
            }

            last = content;
            last_has = has_content;
            cand = content;
            cand_has = has_content;
            cand_n = users;

        } else if (cand_n) {
            prior = cand;
            prior_has = cand_has;
            prior_n = cand_n;
        }
    }

    if (rc != 0) {
        return -1;
    }

    if (users == 0) {
        return 0;
    }

    p->first_user.data = ctx->pos;

    if (dg_content(ctx, first_has ? &first : NULL, &p->first_user,
                   &ctx->anthropic)
        != 0)
    {
        return -1;
    }

    if (users == 1) {
        p->user = p->first_user;
        p->one_user = 1;

    } else {
        p->user.data = ctx->pos;

        if (dg_content(ctx, last_has ? &last : NULL, &p->user,
                       &ctx->anthropic)
            != 0)
        {
            return -1;
        }
    }

    if (prior_n == 0) {
        return 0;
    }

    p->has_prior = 1;

    if (prior_n == 1) {
        p->prior = p->first_user;
        p->prior_first = 1;
        return 0;
    }

    if (prior_n == users) {
        p->prior = p->user;
        return 0;
    }

    p->prior.data = ctx->pos;

    return dg_content(ctx, prior_has ? &prior : NULL, &p->prior,
                      &ctx->anthropic);
}


/* the content of top-level member i, if there is one */

static int
dg_top_content(dg_ctx_t *ctx, dg_top_t *top, int i, dg_str_t *s)
{
    dg_json_t  js;

    if ((top->found & (1u << i)) == 0) {
        return 0;
    }

    js = top->at[i];

    return dg_content(ctx, &js, s, &ctx->anthropic);
}


/*
 * A content at cursor js (NULL: absent): a string, an array of parts or
 * null.  Appends its text to s, or only checks it when s is NULL; sets
 * *anthropic on an Anthropic-only block type.  On success js is past the
 * content.
 */

static int
dg_content(dg_ctx_t *ctx, dg_json_t *js, dg_str_t *s, unsigned *anthropic)
{
    int              rc, rc2;
    dg_json_value_t  v, type, text;

    if (js == NULL) {
        return 0;
    }

    if (dg_json_next(js, &v) != 0) {
        return -1;
    }

    switch (v.type) {

    case DG_JSON_NULL:
        return 0;

    case DG_JSON_STRING:
        return (s != NULL) ? dg_append(ctx, s, &v) : 0;

    case DG_JSON_ARRAY:
        break;

    default:
        return -1;
    }

    while ((rc = dg_json_element(js)) == 1) {

        if (dg_json_next(js, &v) != 0 || v.type != DG_JSON_OBJECT) {
            return -1;
        }

        /* DG_JSON_ERROR stands for absent: neither is a string */

        type.type = DG_JSON_ERROR;
        text.type = DG_JSON_ERROR;

        while ((rc = dg_json_member(js, &v)) == 1) {

            if (dg_is(&v, "type")) {
                rc2 = dg_json_read(js, &type);

            } else if (dg_is(&v, "text")) {
                rc2 = dg_json_read(js, &text);

            } else {
                rc2 = dg_json_skip(js);
            }

            if (rc2 != 0) {
                return -1;
            }
        }

        if (rc != 0) {
            return -1;
        }

        /* a part without a type is unknown to every API: skipped */

        if (type.type != DG_JSON_STRING) {
            continue;
        }

        if (dg_is(&type, "text")
            || dg_is(&type, "input_text")
            || dg_is(&type, "output_text"))
        {
            if (text.type != DG_JSON_STRING) {
                return -1;
            }

            if (s != NULL && dg_append(ctx, s, &text) != 0) {
                return -1;
            }

            continue;
        }

        if (dg_is(&type, "image")
            || dg_is(&type, "document")
            || dg_is(&type, "tool_use")
            || dg_is(&type, "tool_result")
            || dg_is(&type, "thinking")
            || dg_is(&type, "redacted_thinking"))
        {
            *anthropic = 1;
        }
    }

    return (rc == 0) ? 0 : -1;
}


/*
 * Appends a JSON string to s, which must end at ctx->pos, after a "\n" if
 * s is not empty.  Running out of scratch cannot happen when it holds
 * len + 1 bytes (see the top of the file), but it is checked anyway.
 */

static int
dg_append(dg_ctx_t *ctx, dg_str_t *s, const dg_json_value_t *str)
{
    size_t  n, sep;

    n = str->len;

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

    if (dg_json_string_copy(str, ctx->pos, n) != n) {
        return -1;
    }

    ctx->pos += n;
    s->len += n + sep;

    return 0;
}


static void
dg_meta(dg_prompt_t *p, dg_top_t *top)
{
    int              i;
    size_t           n;
    int32_t          milli;
    dg_json_t        js;
    dg_json_value_t  v;

    if (dg_get(top, DG_MODEL, &js, &v) && v.type == DG_JSON_STRING) {

        /* DG_MODEL_MAX bytes copied: the model is longer, cut it */

        n = dg_json_string_copy(&v, p->model, DG_MODEL_MAX);

        if (n == DG_MODEL_MAX) {
            n = DG_MODEL_MAX - 1;

            /* on a character boundary: the scanner checked the UTF-8 */

            while (n > 0 && ((unsigned char) p->model[n] & 0xc0) == 0x80) {
                n--;
            }
        }

        p->model[n] = '\0';
    }

    for (i = DG_MAX_TOKENS; i <= DG_MAX_OUTPUT_TOKENS; i++) {
        if (dg_get(top, i, &js, &v)
            && dg_json_number_int64(&v, &p->max_tokens) == 0)
        {
            p->has_max_tokens = 1;
            break;
        }
    }

    if (dg_get(top, DG_TEMPERATURE, &js, &v)
        && dg_json_number_milli(&v, &milli) == 0)
    {
        p->temperature_milli = milli;
        p->has_temperature = 1;
    }
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
