/*
 * distill-guard engine: the jansson reference implementation of the
 * prompt extractor.  Internal: for the unit tests and the differential
 * fuzz target only, never for the nginx module (src/dg_prompt_ref.c).
 */

#ifndef DG_PROMPT_REF_H
#define DG_PROMPT_REF_H

#include "dg_prompt.h"


/* same contract and result as dg_prompt_parse(), parsed with jansson */

void dg_prompt_parse_reference(dg_prompt_t *p, const char *body, size_t len,
    char *scratch, size_t scratch_size);


#endif /* DG_PROMPT_REF_H */
