/*
 * libFuzzer target of the prompt extractor: any body, exact-size buffers
 * (so ASan sees a read past the end), and the invariants of dg_prompt_t.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_prompt.h"


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


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char               *body, *scratch;
    volatile char       sink;
    size_t              i;
    dg_prompt_t         p;
    const dg_str_t     *s[3];

    body = malloc(size ? size : 1);
    scratch = malloc(size + 1);
    if (body == NULL || scratch == NULL) {
        abort();
    }

    if (size) {
        memcpy(body, data, size);
    }

    dg_prompt_parse(&p, body, size, scratch, size + 1);

    s[0] = &p.user;
    s[1] = &p.first_user;
    s[2] = &p.system;

    for (i = 0; i < 3; i++) {
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

    free(body);
    free(scratch);

    return 0;
}
