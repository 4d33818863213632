/*
 * distill-guard engine: the score of a key's recent profile and the
 * signals behind it.  Plain C, no nginx.
 */

#ifndef DG_SCORE_H
#define DG_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_features.h"
#include "dg_window.h"


typedef enum {
    DG_SIG_COVERAGE = 0,
    DG_SIG_TEMPLATE,
    DG_SIG_FANOUT,
    DG_SIG_SINGLE_TURN,
    DG_SIG_COT,
    DG_SIG_REGULAR,
    DG_SIG_VOLUME,
    DG_SIG_FABRICATED,
    DG_SIG_SCRIPTED,
    DG_SIG_REDIS_UNAVAILABLE,           /* not scored: states and reasons */
    DG_SIG_RATE_LIMIT,                  /* refused by the plain rate */
    DG_SIG_PENALTY,                     /* refused by a penalty's throttle */
    DG_SIG_N
} dg_signal_t;

#define DG_SIG_SCORED       DG_SIG_REDIS_UNAVAILABLE
#define DG_SIGNALS_STR_MAX  160         /* dg_signals_str() never needs more */
#define DG_SHAPE_MIN_REQUESTS  5       /* a key's own profile can shape
                                           the fan-out from this many */


typedef struct {
    uint32_t            weight_milli[DG_SIG_SCORED];
    uint32_t            min_requests;
} dg_score_conf_t;


typedef struct {
    uint32_t            score_milli;    /* 0 .. 1000 */
    uint32_t            signals;        /* bit mask of dg_signal_t */
    uint32_t            strength_milli[DG_SIG_SCORED];
} dg_score_t;


void dg_score_conf_default(dg_score_conf_t *conf);
int dg_signal_by_name(const char *name, size_t len);
const char *dg_signal_name(dg_signal_t sig);

void dg_score_compute(dg_score_t *s, const dg_score_conf_t *conf,
    const dg_profile_t *prof, const dg_features_t *f);

/* comma-separated signal names, NUL-terminated; returns length */
size_t dg_signals_str(uint32_t signals, char *buf, size_t size);


#endif /* DG_SCORE_H */
