/*
 * libFuzzer target of the prompt extractor: any body, exact-size buffers
 * (so ASan sees a read past the end), and the invariants of dg_prompt_t.
 *
 * It is also a differential fuzzer.  dg_prompt_parse() (the dg_json
 * scanner) must give exactly what dg_prompt_parse_reference() (jansson)
 * gives: format, fallback, turns, model, max_tokens, temperature and the
 * bytes of user, first_user and system.  And the scanner alone must
 * accept exactly the documents of any type that jansson accepts, but for
 * nesting deeper than DG_JSON_MAX_DEPTH, and read a lone number as the
 * same double.  Any difference aborts.
 *
 * One difference is deliberate: jansson skips a NUL byte that directly
 * follows a number or true/false/null (its stream_unget() of a NUL is
 * lost, as a NUL also marks its look-ahead buffer empty), so it takes
 * {"prompt":"x","n":1\0} for {"prompt":"x","n":1}.  That is no JSON, and
 * the scanner refuses it (the body is raw).  When jansson accepts a body
 * the scanner refuses and the body has a NUL, every NUL must be one of
 * those, as any other is an error for jansson too: the body without its
 * NULs must then give exactly what jansson gave.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dg_json.h"
#include "dg_prompt.h"
#include "dg_prompt_ref.h"


static void
dg_fuzz_check_str(const dg_str_t *s, const char *body, size_t len,
    const char *scratch, size_t scratch_size)
{
    if (s->data == NULL) {
        abort();
    }

    if (s->len == 0) {
        return;
    }

    if (s->data >= body && s->len <= len
        && (size_t) (s->data - body) <= len - s->len)
    {
        return;
    }

    if (s->data >= scratch && s->len <= scratch_size
        && (size_t) (s->data - scratch) <= scratch_size - s->len)
    {
        return;
    }

    abort();
}


static void
dg_fuzz_same_str(const dg_str_t *a, const dg_str_t *b)
{
    if (a->len != b->len
        || (a->len != 0 && memcmp(a->data, b->data, a->len) != 0))
    {
        abort();
    }
}


static void
dg_fuzz_same(const dg_prompt_t *p, const dg_prompt_t *r)
{
    if (p->format != r->format
        || p->fallback != r->fallback
        || p->turns != r->turns
        || strcmp(p->model, r->model) != 0
        || p->has_max_tokens != r->has_max_tokens
        || p->max_tokens != r->max_tokens
        || p->has_temperature != r->has_temperature
        || p->temperature_milli != r->temperature_milli
        || p->has_prior != r->has_prior
        || p->prior_first != r->prior_first
        || p->one_user != r->one_user
        || (p->first_user.data == p->user.data)
           != (r->first_user.data == r->user.data))
    {
        abort();
    }

    dg_fuzz_same_str(&p->user, &r->user);
    dg_fuzz_same_str(&p->first_user, &r->first_user);
    dg_fuzz_same_str(&p->prior, &r->prior);
    dg_fuzz_same_str(&p->system, &r->system);
}


/* a copy of body without its NUL bytes, of exactly *n bytes for ASan */

static char *
dg_fuzz_strip_nul(const char *body, size_t size, size_t *n)
{
    char    *out;
    size_t   i;

    out = malloc(size);
    if (out == NULL) {
        abort();
    }

    *n = 0;

    for (i = 0; i < size; i++) {
        if (body[i] != '\0') {
            out[(*n)++] = body[i];
        }
    }

    return realloc(out, *n ? *n : 1);
}


static size_t
dg_fuzz_depth(json_t *v)
{
    size_t       i, d, max;
    json_t      *e;
    const char  *k;

    if (!json_is_object(v) && !json_is_array(v)) {
        return 0;
    }

    max = 0;

    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            d = dg_fuzz_depth(e);
            max = (d > max) ? d : max;
        }

    } else {
        json_object_foreach(v, k, e) {
            d = dg_fuzz_depth(e);
            max = (d > max) ? d : max;
        }
    }

    return max + 1;
}


/* the scanner on any document against jansson with JSON_DECODE_ANY */

static void
dg_fuzz_scanner(const char *body, size_t size)
{
    int              ok;
    char            *stripped;
    double           d, ref;
    size_t           len;
    int64_t          n;
    json_t          *root;
    dg_json_t        js, at;
    json_error_t     err;
    dg_json_value_t  v;

    stripped = NULL;

    dg_json_init(&js, body, size);
    at = js;

    ok = (dg_json_skip(&js) == 0 && dg_json_end(&js) == 0);

    root = json_loadb(body, size, JSON_DECODE_ANY, &err);

    if (!ok && root != NULL && memchr(body, '\0', size) != NULL) {
        stripped = dg_fuzz_strip_nul(body, size, &len);

        dg_json_init(&js, stripped, len);
        at = js;

        ok = (dg_json_skip(&js) == 0 && dg_json_end(&js) == 0);
    }

    if (ok != (root != NULL)) {
        if (ok || dg_fuzz_depth(root) <= DG_JSON_MAX_DEPTH) {
            abort();
        }
    }

    if (ok && json_is_number(root)) {
        if (dg_json_next(&at, &v) != 0 || v.type != DG_JSON_NUMBER
            || v.is_int != json_is_integer(root))
        {
            abort();
        }

        if (v.is_int
            && (dg_json_number_int64(&v, &n) != 0
                || n != json_integer_value(root)))
        {
            abort();
        }

        /* a long real ending the buffer is the documented exception */

        ref = json_number_value(root);

        if (dg_json_number_double(&v, &d) == 0) {
            if (memcmp(&d, &ref, sizeof(double)) != 0) {
                abort();
            }

        } else if (v.is_int || v.delimited || v.raw_len < 64) {
            abort();
        }
    }

    json_decref(root);
    free(stripped);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char               *body, *scratch, *ref_scratch, *stripped;
    volatile char       sink;
    size_t              i, len;
    dg_prompt_t         p, r;
    const dg_str_t     *s[4];

    body = malloc(size ? size : 1);
    scratch = malloc(size + 1);
    ref_scratch = malloc(size + 1);
    if (body == NULL || scratch == NULL || ref_scratch == NULL) {
        abort();
    }

    if (size) {
        memcpy(body, data, size);
    }

    dg_prompt_parse(&p, body, size, scratch, size + 1);

    s[0] = &p.user;
    s[1] = &p.first_user;
    s[2] = &p.system;
    s[3] = &p.prior;

    for (i = 0; i < 4; i++) {
        dg_fuzz_check_str(s[i], body, size, scratch, size + 1);

        /* touch every byte: ASan catches what the bounds check missed */

        if (s[i]->len) {
            sink = s[i]->data[0];
            sink = s[i]->data[s[i]->len - 1];
        }
    }

    (void) sink;

    if (memchr(p.model, '\0', DG_MODEL_MAX) == NULL) {
        abort();
    }

    if ((unsigned) p.format > DG_FORMAT_ANTHROPIC
        || dg_format_name(p.format) == NULL)
    {
        abort();
    }

    /* scratch holds all the copied text: system, first_user and user */

    if (p.format != DG_FORMAT_RAW) {
        if (p.fallback
            || p.system.len + p.user.len
               + (p.first_user.data != p.user.data ? p.first_user.len : 0)
               + (p.prior.data != p.user.data
                  && p.prior.data != p.first_user.data ? p.prior.len : 0)
               > size + 1)
        {
            abort();
        }

    } else if (size == 0) {
        if (p.fallback || p.turns != 0 || p.user.len != 0) {
            abort();
        }

    } else if (!p.fallback || p.user.data != body || p.user.len != size
               || p.first_user.data != body || p.turns != 1
               || p.system.len != 0)
    {
        abort();
    }

    /* a plain prompt is one turn, and first_user then is user */

    if (p.format == DG_FORMAT_OPENAI_COMPLETIONS
        && (p.turns != 1 || p.first_user.data != p.user.data
            || p.first_user.len != p.user.len))
    {
        abort();
    }

    /* the jansson reference must agree on everything */

    dg_prompt_parse_reference(&r, body, size, ref_scratch, size + 1);

    if (p.fallback && !r.fallback && memchr(body, '\0', size) != NULL) {
        stripped = dg_fuzz_strip_nul(body, size, &len);

        /* len < size, and p is raw: nothing points into scratch */

        dg_prompt_parse(&p, stripped, len, scratch, len + 1);
        dg_fuzz_same(&p, &r);

        free(stripped);

    } else {
        dg_fuzz_same(&p, &r);
    }

    if (size) {
        dg_fuzz_scanner(body, size);
    }

    free(body);
    free(scratch);
    free(ref_scratch);

    return 0;
}
