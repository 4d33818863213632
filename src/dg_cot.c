/*
 * distill-guard engine: reasoning-elicitation lexicon.
 *
 * Distillation campaigns want the teacher's reasoning, not only its
 * answers, so their prompts ask for it.  Built-in phrases are matched
 * case-insensitively at word starts and must end at a word end; a blank
 * in a phrase matches any run of blanks or one '-' ("step-by-step",
 * "chain-of-thought"), an apostrophe matches ', U+2019 or nothing
 * ("lets think").  Matches are counted without overlap.  The operator's
 * own patterns (distill_guard_cot_pattern) are nginx regexes, matched by
 * the module on the same text.
 */

#include <pthread.h>
#include <string.h>

#include "dg_features.h"


#define DG_COT_BATCH    256             /* word starts tried at once */



/* at one position the first phrase that matches wins: longer first */
static const char  *dg_cot_phrases[] = {
    "let's think step by step",
    "let's think",
    "step by step",
    "show your reasoning",
    "show your work",
    "show your thinking",
    "show your steps",
    "show all steps",
    "show all the steps",
    "show the steps",
    "explain your thought process",
    "explain your reasoning",
    "explain the reasoning",
    "explain each step",
    "explain how you arrived",
    "your thought process",
    "thinking process",
    "reasoning process",
    "detailed reasoning",
    "provide your reasoning",
    "think out loud",
    "think carefully",
    "think it through",
    "think through",
    "think before you answer",
    "walk me through",
    "reason through",
    "chain of thought",
    "justify your answer",
    "break it down",
    "before answering",
    NULL
};


_Static_assert(sizeof(dg_cot_phrases) / sizeof(dg_cot_phrases[0]) - 1 <= 32,
               "a phrase is a bit of a uint32_t");


/*
 * Lookup tables, set up once: the phrases that start with a byte (a bit
 * each, both cases); whether a byte is part of a word (a phrase starts
 * only where the byte before is not); and a filter of the first three
 * letters of the phrases, which rules out most word starts at once.
 */
static uint32_t         dg_cot_initial[256];
static uint8_t          dg_cot_word[256];
static uint8_t          dg_cot_start[256];
static uint64_t         dg_cot_tri[(1 << 15) / 64];
static pthread_once_t   dg_cot_once = PTHREAD_ONCE_INIT;


static unsigned
dg_cot_tri_key(const unsigned char *p)
{
    /* & 31 folds case: 'a' and 'A' are both 1 */
    return (p[0] & 31) | (p[1] & 31) << 5 | (p[2] & 31) << 10;
}


static void
dg_cot_init(void)
{
    unsigned  i, c, key;

    for (i = 0; dg_cot_phrases[i] != NULL; i++) {
        c = (unsigned char) dg_cot_phrases[i][0];
        dg_cot_initial[c] |= (uint32_t) 1 << i;
        dg_cot_initial[c & ~0x20u] |= (uint32_t) 1 << i;
        dg_cot_start[c] = 1;
        dg_cot_start[c & ~0x20u] = 1;

        key = dg_cot_tri_key((const unsigned char *) dg_cot_phrases[i]);
        dg_cot_tri[key >> 6] |= (uint64_t) 1 << (key & 63);
    }

    for (c = 0; c < 256; c++) {
        dg_cot_word[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
                         || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    }
}


static int
dg_cot_blank(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}


/* length of the phrase at s, 0 if it is not there */
static size_t
dg_cot_match(const char *ph, const unsigned char *s, const unsigned char *end)
{
    unsigned              c;
    const unsigned char  *p;

    p = s;

    for ( ; *ph != '\0'; ph++) {

        if (*ph == ' ') {
            if (p < end && *p == '-') {
                p++;
                continue;
            }

            if (p == end || !dg_cot_blank(*p)) {
                return 0;
            }

            while (p < end && dg_cot_blank(*p)) {
                p++;
            }

            continue;
        }

        if (*ph == '\'') {
            if (p < end && *p == '\'') {
                p++;

            } else if (end - p >= 3 && p[0] == 0xe2 && p[1] == 0x80
                       && p[2] == 0x99)
            {
                p += 3;
            }

            continue;
        }

        if (p == end) {
            return 0;
        }

        c = *p++;

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c != (unsigned char) *ph) {
            return 0;
        }
    }

    if (p < end && dg_cot_word[*p]) {
        return 0;
    }

    return p - s;
}


/*
 * Word starts that may begin a phrase are collected without a branch per
 * byte (branches on text mispredict at every word), then tried.
 */
static uint32_t
dg_cot_count_builtin(const unsigned char *text, size_t len)
{
    size_t                i, j, m, nc, pos, next;
    uint32_t              n, set, cand[DG_COT_BATCH];
    unsigned              c, k, key, prev;
    const unsigned char  *end;

    end = text + len;
    n = 0;
    prev = 0;
    next = 0;
    i = 0;

    while (i < len) {
        nc = 0;

        for ( ; i < len && nc < DG_COT_BATCH; i++) {
            c = text[i];
            cand[nc] = (uint32_t) i;
            nc += dg_cot_start[c] & (prev ^ 1);
            prev = dg_cot_word[c];
        }

        for (j = 0; j < nc; j++) {
            pos = cand[j];

            if (pos < next || end - (text + pos) < 3) {
                continue;
            }

            key = dg_cot_tri_key(text + pos);

            if (!((dg_cot_tri[key >> 6] >> (key & 63)) & 1)) {
                continue;
            }

            set = dg_cot_initial[text[pos]];

            while (set != 0) {
                k = __builtin_ctz(set);
                set &= set - 1;

                m = dg_cot_match(dg_cot_phrases[k], text + pos, end);

                if (m) {
                    n++;
                    next = pos + m;
                    break;
                }
            }
        }
    }

    return n;
}


uint32_t
dg_cot_count(const char *text, size_t len)
{
    if (len == 0) {
        return 0;
    }

    pthread_once(&dg_cot_once, dg_cot_init);

    return dg_cot_count_builtin((const unsigned char *) text, len);
}
