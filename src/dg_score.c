/*
 * distill-guard engine: the score of a key's recent profile.
 */

#include <string.h>

#include "dg_score.h"


static const char  *dg_signal_names[DG_SIG_N] = {
    "coverage", "template", "fanout", "single_turn", "cot", "regular",
    "volume", "redis_unavailable"
};


void
dg_score_conf_default(dg_score_conf_t *conf)
{
    memset(conf, 0, sizeof(dg_score_conf_t));
    conf->min_requests = 20;
}


int
dg_signal_by_name(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < DG_SIG_N; i++) {
        if (strlen(dg_signal_names[i]) == len
            && memcmp(dg_signal_names[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


const char *
dg_signal_name(dg_signal_t sig)
{
    return (sig < DG_SIG_N) ? dg_signal_names[sig] : "";
}


void
dg_score_compute(dg_score_t *s, const dg_score_conf_t *conf,
    const dg_profile_t *prof, const dg_features_t *f)
{
    (void) conf;
    (void) prof;
    (void) f;

    memset(s, 0, sizeof(dg_score_t));
}


size_t
dg_signals_str(uint32_t signals, char *buf, size_t size)
{
    int      i;
    size_t   len, n;

    len = 0;

    if (size == 0) {
        return 0;
    }

    for (i = 0; i < DG_SIG_N; i++) {
        if (!(signals & (1u << i))) {
            continue;
        }

        n = strlen(dg_signal_names[i]);

        if (len + n + (len ? 1 : 0) >= size) {
            break;
        }

        if (len) {
            buf[len++] = ',';
        }

        memcpy(buf + len, dg_signal_names[i], n);
        len += n;
    }

    buf[len] = '\0';

    return len;
}
