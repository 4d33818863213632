/*
 * distill-guard engine: the score of a key's recent profile.
 */

#include <string.h>

#include "dg_score.h"


static uint32_t dg_script_shape(const dg_profile_t *prof);
static uint32_t dg_fanout_strength(const dg_profile_t *prof);


static const char  *dg_signal_names[DG_SIG_N] = {
    "coverage", "template", "fanout", "single_turn", "cot", "regular",
    "volume", "fabricated", "scripted", "redis_unavailable", "rate_limit",
    "penalty"
};


/*
 * Default weights (x1000).  Primary signals are the ones that tell a
 * campaign from a heavy but honest user: the breadth of topics, prompts
 * poured through a few templates, reasoning elicitation, and the same
 * template on many keys.  Supporting signals (single-turn, regular
 * timing, volume) are common in honest API traffic too (a product that
 * answers its users one question at a time), so they only add to a
 * score that a primary signal has started.  See README, "Scoring".
 */

void
dg_score_conf_default(dg_score_conf_t *conf)
{
    memset(conf, 0, sizeof(dg_score_conf_t));

    conf->weight_milli[DG_SIG_COVERAGE] = 600;
    conf->weight_milli[DG_SIG_TEMPLATE] = 500;
    conf->weight_milli[DG_SIG_FANOUT] = 900;
    conf->weight_milli[DG_SIG_COT] = 350;
    conf->weight_milli[DG_SIG_SINGLE_TURN] = 250;
    conf->weight_milli[DG_SIG_REGULAR] = 250;
    conf->weight_milli[DG_SIG_VOLUME] = 150;
    conf->weight_milli[DG_SIG_FABRICATED] = 600;
    conf->weight_milli[DG_SIG_SCRIPTED] = 600;
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


/* 0 at or below lo, 1000 at or above hi, linear between */

static uint32_t
dg_ramp(int64_t x, int64_t lo, int64_t hi)
{
    if (x <= lo) {
        return 0;
    }

    if (x >= hi) {
        return 1000;
    }

    return (uint32_t) ((x - lo) * 1000 / (hi - lo));
}


static uint32_t
dg_max(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}


static uint32_t
dg_min(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}


static uint32_t
dg_ramp_down(int64_t x, int64_t lo, int64_t hi)
{
    return 1000 - dg_ramp(x, lo, hi);
}


/*
 * How much a key's own few requests look like a script sweeping topics
 * through a frame (0 .. 1000): every request one-shot, most asking for
 * reasoning, nearly every one on a new topic, and sent on a machine's
 * clock.  The lowest of the four decides: each alone is common in
 * honest traffic (an app's one-shot users, a tutor's "step by step", a
 * person's varied questions, a batch job), all four together are what
 * a campaign's key does from its first requests, paraphrased wrappers
 * or not.  The clock is judged more strictly than the regular signal's
 * (gap cv 0.3 .. 0.7): over four gaps a person's look regular by chance
 * (lognormal gaps of sigma 1: cv <= 0.3 in 6 % of windows, <= 0.1 in
 * 0.2 %; sigma 0.5: 33 % and 1.6 %), a script's +-5 % jitter gives 0.03,
 * +-20 % 0.12.  Not a signal of its own: it only lowers the keys a
 * frame's fan-out needs (dg_fanout_strength).
 */

static uint32_t
dg_script_shape(const dg_profile_t *prof)
{
    uint32_t        shape;
    const int64_t  *v;

    v = prof->v;

    if (v[DG_PROF_REQUESTS] < DG_SHAPE_MIN_REQUESTS
        || v[DG_PROF_SAMPLE] < DG_SHAPE_MIN_REQUESTS)
    {
        return 0;
    }

    shape = dg_min(dg_ramp(v[DG_PROF_SINGLE_TURN_SHARE_MILLI], 600, 900),
                   dg_ramp(v[DG_PROF_COT_SHARE_MILLI], 200, 600));
    shape = dg_min(shape, dg_ramp(v[DG_PROF_TOPICS] * 1000
                                  / v[DG_PROF_SAMPLE], 300, 700));

    return dg_min(shape, dg_ramp_down(v[DG_PROF_GAP_CV_MILLI], 100, 200));
}


/*
 * The template that many keys share.  Alone it is no proof: a popular
 * tool's frame, an SDK's system prompt or a class assignment is shared
 * too.  What tells a campaign's wrapper apart is what the keys do with
 * it: an app's users hold conversations that open with the frame (the
 * fan-out script counts the keys that did, template_conv), a hydra's keys
 * send one one-shot prompt after another.  So the fan-out counts in full
 * only for a key that has shown itself one-shot (3 requests, 6 when the
 * frame is an app's, and at most 20% of them verified conversations);
 * until then it can tag, and on an app's frame it counts for nothing.
 *
 * Full strength takes 6 keys on the frame; a key whose own requests have
 * the shape of a script sweeping topics (dg_script_shape) needs 4.  A
 * campaign that rewords its wrapper spreads its keys over several
 * frames, and its first keys never find 6 on any one of them; 4 one-shot
 * keys on a frame without that shape (an app's users, a team's tool)
 * are not even tagged.
 */

static uint32_t
dg_fanout_strength(const dg_profile_t *prof)
{
    int64_t   conv, need, hi;
    uint32_t  raw, app, factor;

    hi = DG_FANOUT_KEYS_FULL * 1000
         - (int64_t) (DG_FANOUT_KEYS_FULL - DG_FANOUT_KEYS_SHAPED)
           * dg_script_shape(prof);
    raw = dg_ramp(prof->template_keys * 1000, DG_FANOUT_KEYS_NONE * 1000,
                  hi);

    if (raw == 0) {
        return 0;
    }

    conv = prof->template_conv * 1000 / prof->template_keys;
    app = dg_ramp(conv, 100, 300);
    need = 3 + 3 * (int64_t) app / 1000;

    if (prof->v[DG_PROF_REQUESTS] >= need && prof->verified_milli <= 200) {
        factor = 1000;

    } else {
        factor = (1000 - app) * 600 / 1000;
    }

    return raw * factor / 1000;
}


void
dg_score_compute(dg_score_t *s, const dg_score_conf_t *conf,
    const dg_profile_t *prof, const dg_features_t *f)
{
    int        i;
    int64_t    sample, ratio, top;
    uint32_t   w, primary, rest, support, gate, score, subnet, single, cov;
    const int64_t  *v;

    (void) f;

    memset(s, 0, sizeof(dg_score_t));

    v = prof->v;
    sample = v[DG_PROF_SAMPLE];

    /* cross-key: counted from a key's first request */
    s->strength_milli[DG_SIG_FANOUT] = dg_fanout_strength(prof);
    subnet = dg_ramp(prof->subnet_keys, 20, 100) / 2;

    if (subnet > s->strength_milli[DG_SIG_FANOUT]) {
        s->strength_milli[DG_SIG_FANOUT] = subnet;
    }

    if (v[DG_PROF_REQUESTS] >= (int64_t) conf->min_requests && sample > 0) {

        single = (uint32_t) v[DG_PROF_SINGLE_TURN_SHARE_MILLI];

        /*
         * Coverage: many distinct topics, for the number of requests or
         * in absolute terms (a campaign hidden in a reseller's human
         * traffic still brings dozens of topics).  Topics come from the
         * opening of each conversation, and a key that holds
         * conversations counts them at half strength: campaigns are
         * single-turn, a chat product's users are not.
         */
        ratio = v[DG_PROF_TOPICS] * 1000 / sample;
        cov = dg_max(dg_ramp(ratio, 300, 700),
                     dg_ramp(v[DG_PROF_TOPICS], 16, 32));
        s->strength_milli[DG_SIG_COVERAGE] =
                      cov * (500 + dg_ramp(single, 200, 600) / 2) / 1000;

        /* template: by share, or by how many requests share the top one */
        top = v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI] * sample / 1000;
        s->strength_milli[DG_SIG_TEMPLATE] =
                      dg_max(dg_ramp(v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI],
                                     300, 700),
                             dg_ramp(top, 10, 30));

        s->strength_milli[DG_SIG_COT] =
                      dg_ramp(v[DG_PROF_COT_SHARE_MILLI], 200, 600);
        s->strength_milli[DG_SIG_SINGLE_TURN] = dg_ramp(single, 600, 900);
        s->strength_milli[DG_SIG_REGULAR] =
                      dg_ramp_down(v[DG_PROF_GAP_CV_MILLI], 300, 700);
        s->strength_milli[DG_SIG_VOLUME] =
                      dg_ramp(v[DG_PROF_REQUESTS], 120, 600);

        /*
         * Histories this key never sent: a restored chat or a trimmed one
         * makes a few, a campaign dressing its prompts as conversations
         * makes nearly all of them
         */
        s->strength_milli[DG_SIG_FABRICATED] =
                      dg_ramp(prof->fabricated_milli, 150, 500);

        /*
         * Real conversations whose follow-ups are the same few messages
         * sent again and again, conversation after conversation: a
         * script holding conversations, not people
         */
        s->strength_milli[DG_SIG_SCRIPTED] =
                      dg_ramp(prof->scripted_milli, 100, 350);
    }

    /* primary signals combine as a noisy-or: each can flag on its own */
    rest = 1000;

    for (i = 0; i < DG_SIG_SCORED; i++) {
        if (i == DG_SIG_SINGLE_TURN || i == DG_SIG_REGULAR
            || i == DG_SIG_VOLUME)
        {
            continue;
        }

        w = conf->weight_milli[i] * s->strength_milli[i] / 1000;
        rest = rest * (1000 - (w > 1000 ? 1000 : w)) / 1000;
    }

    primary = 1000 - rest;

    support = 0;
    support += conf->weight_milli[DG_SIG_SINGLE_TURN]
               * s->strength_milli[DG_SIG_SINGLE_TURN] / 1000;
    support += conf->weight_milli[DG_SIG_REGULAR]
               * s->strength_milli[DG_SIG_REGULAR] / 1000;
    support += conf->weight_milli[DG_SIG_VOLUME]
               * s->strength_milli[DG_SIG_VOLUME] / 1000;

    /* supporting signals count in full once a primary one reaches 0.3 */
    gate = primary >= 300 ? 1000 : primary * 1000 / 300;

    score = primary + support * gate / 1000;
    s->score_milli = score > 1000 ? 1000 : score;

    for (i = 0; i < DG_SIG_SCORED; i++) {
        if (s->strength_milli[i] >= 500 && conf->weight_milli[i] > 0) {
            s->signals |= 1u << i;
        }
    }
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
