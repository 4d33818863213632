/*
 * distill-guard engine: cheap per-request features of a prompt.
 * Plain C, no nginx.
 */

#ifndef DG_FEATURES_H
#define DG_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "dg_prompt.h"


#define DG_TOPIC_BUCKETS    4096
#define DG_FEATURES_JSON_MAX 1024   /* dg_features_json() never needs more */


typedef struct {
    uint32_t            bytes;          /* extracted prompt bytes (user turn) */
    uint32_t            tokens;         /* token estimate */
    uint32_t            entropy_milli;  /* bits per byte of the user turn,
                                           * 1000 */
    uint64_t            simhash;        /* 64-bit SimHash, word shingles */
    uint32_t            template_head;  /* fingerprint of the fixed head of a
                                           templated prompt; 0: none */
    uint32_t            template_tail;  /* same for the fixed tail; 0: none */
    uint16_t            topic;          /* 0 .. DG_TOPIC_BUCKETS - 1, of
                                           the first user turn */
    uint16_t            topic_last;     /* of the last user turn */
    uint32_t            sent;           /* fingerprint of the last user
                                           turn, never 0 */
    uint32_t            prior;          /* of the user turn the claimed
                                           history was last answered on;
                                           0: no history claimed */
    uint32_t            opening;        /* fingerprint of the first user
                                           turn: the conversation the
                                           request belongs to; never 0 */
    uint32_t            conv_head;      /* template fingerprints of the
                                           first user turn of a request */
    uint32_t            conv_tail;      /* with history; 0: none */
    uint32_t            turns;
    uint32_t            cot;            /* reasoning-elicitation matches */
    dg_format_t         format;
    unsigned            truncated:1;
    unsigned            fallback:1;
    unsigned            has_system:1;
    unsigned            prior_first:1;  /* the prior turn is the first user
                                           turn: a conversation's first
                                           follow-up */
} dg_features_t;


/* matches of the built-in reasoning-elicitation lexicon in text */
uint32_t dg_cot_count(const char *text, size_t len);

/*
 * The fingerprint of a text as a conversation carries it: blanks are
 * left out (clients re-wrap and trim what they send back); never 0.
 */
uint32_t dg_text_fp(const char *text, size_t len);

/* fills f from an extracted prompt */
void dg_features_compute(dg_features_t *f, const dg_prompt_t *p);

/*
 * Writes the compact JSON object of f into buf (NUL-terminated) and
 * returns its length without the NUL; window, when not NULL, is a JSON
 * object text appended as "window":{...}.  Truncates safely to size.
 */
size_t dg_features_json(const dg_features_t *f, const char *window,
    char *buf, size_t size);


#endif /* DG_FEATURES_H */
