/*
 * distill-guard engine: prompt extraction from LLM API request bodies.
 * Plain C, no nginx.
 */

#ifndef DG_PROMPT_H
#define DG_PROMPT_H

#include <stddef.h>
#include <stdint.h>


#define DG_JSON_MAX_DEPTH   32      /* deeper bodies fall back to raw text */
#define DG_MODEL_MAX        64


typedef enum {
    DG_FORMAT_RAW = 0,
    DG_FORMAT_OPENAI_CHAT,
    DG_FORMAT_OPENAI_COMPLETIONS,
    DG_FORMAT_OPENAI_RESPONSES,
    DG_FORMAT_ANTHROPIC
} dg_format_t;


typedef struct {
    const char         *data;
    size_t              len;
} dg_str_t;


typedef struct {
    dg_format_t         format;
    unsigned            fallback:1;         /* not recognised: raw body text */
    unsigned            has_max_tokens:1;
    unsigned            has_temperature:1;
    unsigned            has_prior:1;        /* an assistant (or tool) turn
                                               follows some user turn: the
                                               request claims a history */
    unsigned            prior_first:1;      /* prior is the first user turn */
    unsigned            one_user:1;         /* first_user is user: one user
                                               turn (not a pointer test:
                                               empty texts share one) */

    dg_str_t            user;               /* text of the last user turn */
    dg_str_t            first_user;         /* text of the first user turn */
    dg_str_t            prior;              /* the last user turn answered in
                                               the history: see has_prior */
    dg_str_t            system;             /* system prompt text */

    uint32_t            turns;              /* conversation messages, system
                                               excluded; 1 for a plain prompt */
    int64_t             max_tokens;
    int32_t             temperature_milli;  /* temperature * 1000 */
    char                model[DG_MODEL_MAX];    /* NUL-terminated, cut */
} dg_prompt_t;


/*
 * Parses body[0..len) and fills p.  Extracted strings point either into
 * body or into scratch, which must hold at least len + 1 bytes; they stay
 * valid as long as both do.  Never fails: anything that is not a
 * recognised JSON request (or is malformed, too deep, or not UTF-8 text)
 * yields format RAW with fallback set and user = the raw body.
 */
void dg_prompt_parse(dg_prompt_t *p, const char *body, size_t len,
    char *scratch, size_t scratch_size);

const char *dg_format_name(dg_format_t format);


#endif /* DG_PROMPT_H */
