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
    uint16_t            topic;          /* 0 .. DG_TOPIC_BUCKETS - 1 */
    uint32_t            turns;
    uint32_t            cot;            /* reasoning-elicitation matches */
    dg_format_t         format;
    unsigned            truncated:1;
    unsigned            fallback:1;
    unsigned            has_system:1;
} dg_features_t;


/* matches of the built-in reasoning-elicitation lexicon in text */
uint32_t dg_cot_count(const char *text, size_t len);

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
