/*
 * distill-guard engine: the window profile, computed from the window
 * value in the gateway.  Redis only stores the value (src/dg_window.lua);
 * every statistic is one pass over at most 128 records here, which costs
 * about a microsecond where the same pass in Redis's Lua cost 50.
 */

#include <math.h>
#include <string.h>

#include "dg_profile.h"


#define DG_B24              16777216


typedef struct {
    unsigned            n;              /* records in the ring */
    unsigned            oldest;         /* slot of the oldest record */
    uint64_t            w;              /* sub-window width, ms */
    uint64_t            last;           /* newest sub-window */
    uint64_t            tu;             /* unit of the timestamps, ms */
    int64_t             newest;         /* time of the newest record */
    const unsigned char       *p;
} dg_win_t;


typedef struct {
    unsigned            sample;         /* records inside the window */
    unsigned            all;            /* every record was inside */
    int64_t             ts[DG_WIN_RING];    /* ms, oldest first */
    uint16_t            tf[DG_WIN_RING];
    uint32_t            ht[DG_WIN_RING];
    uint8_t             slot[DG_WIN_RING];
} dg_recs_t;


/*
 * Counts of at most DG_WIN_RING values of 12 bits: open addressing in
 * twice as many slots, so that only 512 bytes are cleared per field (a
 * table indexed by value would clear 4 KB)
 */
typedef struct {
    uint16_t            key[2 * DG_WIN_RING];   /* value + 1; 0: empty */
    uint8_t             count[2 * DG_WIN_RING];
} dg_count_t;


static int dg_win_open(dg_win_t *win, const char *value, size_t len,
    uint64_t window_ms);
static void dg_win_records(const dg_win_t *win, dg_recs_t *r,
    int64_t now_ms, int64_t start);
static void dg_win_counts(const dg_win_t *win, const dg_recs_t *r,
    int64_t start, dg_profile_t *prof);
static void dg_win_sample(const dg_recs_t *r, dg_profile_t *prof);
static unsigned dg_count_add(dg_count_t *c, unsigned v);
static int64_t dg_round(double x);


uint32_t
dg_fold12(uint32_t fp)
{
    uint32_t  v;

    if (fp == 0) {
        return 0;
    }

    v = (fp ^ (fp >> 12) ^ (fp >> 24)) & 0xfff;

    return v ? v : 1;
}


uint32_t
dg_fold16_opening(uint32_t fp)
{
    /* a multiplication by an odd constant: 0 stays 0, others spread */
    return dg_fold16(fp * 2654435761u);
}


uint32_t
dg_fold16(uint32_t fp)
{
    uint32_t  v;

    if (fp == 0) {
        return 0;
    }

    v = (fp ^ (fp >> 16)) & 0xffff;

    return v ? v : 1;
}


int
dg_profile_compute(dg_profile_t *prof, const char *value, size_t len,
    uint64_t window_ms, int64_t now_ms)
{
    int64_t    start;
    dg_win_t   win;
    dg_recs_t  r;

    if (dg_win_open(&win, value, len, window_ms) != 0) {
        return -1;
    }

    start = now_ms - (int64_t) window_ms;

    dg_win_records(&win, &r, now_ms, start);

    if (r.sample == 0) {
        return -1;
    }

    memset(prof->v, 0, sizeof(prof->v));

    dg_win_counts(&win, &r, start, prof);
    dg_win_sample(&r, prof);

    return 0;
}


size_t
dg_window_unpack(const char *reply, size_t len, int64_t *v)
{
    int                   i;
    const unsigned char  *p;

    static const unsigned char  size[DG_WREPLY_N] = {
        6, 1, 1, 1, 1, 6, 6, 4
    };

    if (reply == NULL || len != DG_WREPLY_LEN) {
        return 0;
    }

    p = (const unsigned char *) reply;

    for (i = 0; i < DG_WREPLY_N; i++) {
        v[i] = (int64_t) dg_le(p, size[i]);
        p += size[i];
    }

    return DG_WREPLY_N;
}


int
dg_window_reply(dg_profile_t *prof, uint64_t window_ms, const char *value,
    size_t len, const int64_t *v, size_t n)
{
    if (n < DG_WREPLY_N || v[DG_WREPLY_NOW_MS] <= 0) {
        return -1;
    }

    if (dg_profile_compute(prof, value, len, window_ms,
                           v[DG_WREPLY_NOW_MS])
        != 0)
    {
        return -1;
    }

    prof->now_ms = v[DG_WREPLY_NOW_MS];
    prof->provenance = v[DG_WREPLY_PROVENANCE];
    prof->state = v[DG_WREPLY_STATE];
    prof->penalty_ms = v[DG_WREPLY_PENALTY_MS];
    prof->refused = v[DG_WREPLY_REFUSED];
    prof->retry_ms = v[DG_WREPLY_RETRY_MS];
    prof->remaining = v[DG_WREPLY_REMAINING];

    return 0;
}


int
dg_profile_sent_template(const char *value, size_t len, uint64_t window_ms,
    int64_t now_ms, unsigned slot, dg_fanout_t which, uint32_t fp,
    int64_t since_ms)
{
    unsigned   k;
    uint32_t   v;
    dg_win_t   win;
    dg_recs_t  r;

    if (fp == 0 || dg_win_open(&win, value, len, window_ms) != 0) {
        return 0;
    }

    dg_win_records(&win, &r, now_ms, since_ms - 1);

    for (k = 0; k < r.sample; k++) {
        /* this request's record; and requests with a history, which
         * are not counted in the fan-out */
        if (r.slot[k] == slot || (r.tf[k] >> 14)) {
            continue;
        }

        v = (which == DG_FANOUT_HEAD) ? (r.ht[k] & 0xfff) : (r.ht[k] >> 12);

        if (v == fp) {
            return 1;
        }
    }

    return 0;
}


int
dg_profile_header(dg_win_header_t *hdr, const char *value, size_t len)
{
    const unsigned char  *p;

    p = (const unsigned char *) value;

    if (value == NULL || len != DG_WIN_SIZE) {
        return DG_WIN_ESIZE;
    }

    memset(hdr, 0, sizeof(dg_win_header_t));

    hdr->version = p[0];
    hdr->n = p[1];
    hdr->next = p[2];
    hdr->subwindow_ms = dg_le(p + 3, 4);
    hdr->newest_ms = (int64_t) dg_le(p + 7, 6);
    hdr->has_state = p[13];
    hdr->window_ms = hdr->subwindow_ms * DG_WIN_SUBW;
    hdr->ring = DG_WIN_RING;

    if (hdr->version != DG_WIN_VERSION) {
        return DG_WIN_EVERSION;
    }

    /* what dg_win_open refuses */
    if (hdr->n == 0 || hdr->n > DG_WIN_RING || hdr->next >= DG_WIN_RING
        || (hdr->n < DG_WIN_RING && hdr->next != hdr->n)
        || hdr->subwindow_ms == 0)
    {
        return DG_WIN_EHEADER;
    }

    return 0;
}


int
dg_profile_records(dg_win_record_t *rec, const char *value, size_t len,
    uint64_t window_ms, int64_t now_ms)
{
    int                   rc;
    unsigned              k, tf;
    dg_win_t              win;
    dg_recs_t             r;
    dg_win_header_t       hdr;
    const unsigned char  *p;

    rc = dg_profile_header(&hdr, value, len);
    if (rc != 0) {
        return rc;
    }

    if (dg_win_open(&win, value, len, window_ms) != 0) {
        return DG_WIN_EHEADER;
    }

    dg_win_records(&win, &r, now_ms, now_ms - (int64_t) window_ms);

    for (k = 0; k < r.sample; k++) {
        p = win.p + DG_WIN_ROFF + r.slot[k] * DG_WIN_RSZ;
        tf = r.tf[k];

        rec[k].ts_ms = r.ts[k];
        rec[k].slot = r.slot[k];
        rec[k].topic = tf & 0xfff;
        rec[k].head = r.ht[k] & 0xfff;
        rec[k].tail = r.ht[k] >> 12;
        rec[k].sent = (unsigned) dg_le(p + 8, 2);
        rec[k].opening = (unsigned) dg_le(p + 10, 2);
        rec[k].provenance = tf >> 14;
        rec[k].one_shot = (rec[k].provenance == DG_PROVENANCE_NONE
                           || rec[k].provenance == DG_PROVENANCE_FABRICATED);
        rec[k].cot = (tf >> 13) & 1;

        /* as dg_win_sample counts it */
        rec[k].scripted = (rec[k].provenance == DG_PROVENANCE_VERIFIED
                           && ((tf >> 12) & 1));
    }

    return (int) r.sample;
}


static int
dg_win_open(dg_win_t *win, const char *value, size_t len, uint64_t window_ms)
{
    const unsigned char  *p;

    p = (const unsigned char *) value;

    if (value == NULL || len != DG_WIN_SIZE || p[0] != DG_WIN_VERSION
        || window_ms == 0)
    {
        return -1;
    }

    win->p = p;
    win->n = p[1];

    if (win->n == 0 || win->n > DG_WIN_RING || p[2] >= DG_WIN_RING
        || (win->n < DG_WIN_RING && p[2] != win->n))
    {
        return -1;
    }

    win->oldest = (win->n < DG_WIN_RING) ? 0 : p[2];
    win->w = dg_le(p + 3, 4);
    win->newest = (int64_t) dg_le(p + 7, 6);
    win->tu = (window_ms + 4194303) / 4194304;

    if (win->w == 0) {
        return -1;
    }

    win->last = (uint64_t) win->newest / win->w;

    return 0;
}


/*
 * The records inside the window (newer than start), oldest first, with
 * their true times rebuilt from the newest backwards (the header's time:
 * this request, or a request of the same key that another connection
 * added before the gateway read the value); each older one lies its
 * 24-bit gap before the next.
 */

static void
dg_win_records(const dg_win_t *win, dg_recs_t *r, int64_t now_ms,
    int64_t start)
{
    int             k, i;
    int64_t         tc;
    uint64_t        m, prevm, g;
    const unsigned char   *rec;

    (void) now_ms;

    tc = win->newest / (int64_t) win->tu;
    prevm = (uint64_t) tc % DG_B24;
    i = DG_WIN_RING;
    r->all = 1;

    for (k = (int) win->n - 1; k >= 0; k--) {
        rec = win->p + DG_WIN_ROFF
              + ((win->oldest + (unsigned) k) % DG_WIN_RING) * DG_WIN_RSZ;
        m = dg_le(rec, 3);
        g = (prevm - m) % DG_B24;

        if (g >= DG_B24 / 2 || (tc - (int64_t) g) * (int64_t) win->tu
                               <= start)
        {
            r->all = 0;
            break;
        }

        tc -= (int64_t) g;
        prevm = m;

        i--;
        r->ts[i] = tc * (int64_t) win->tu;
        r->tf[i] = (uint16_t) dg_le(rec + 3, 2);
        r->ht[i] = (uint32_t) dg_le(rec + 5, 3);
        r->slot[i] = (uint8_t) ((win->oldest + (unsigned) k) % DG_WIN_RING);
    }

    r->sample = DG_WIN_RING - i;

    if (i > 0 && r->sample) {
        memmove(r->ts, r->ts + i, r->sample * sizeof(r->ts[0]));
        memmove(r->tf, r->tf + i, r->sample * sizeof(r->tf[0]));
        memmove(r->ht, r->ht + i, r->sample * sizeof(r->ht[0]));
        memmove(r->slot, r->slot + i, r->sample * sizeof(r->slot[0]));
    }
}


/*
 * requests and bytes.  Exact while the ring holds every request of the
 * window.  Beyond, the requests the ring dropped are counted from the
 * sub-window counters: those of the sub-window of the oldest record in
 * the ring exactly (its count less the ring's records in it), prorated
 * over the part of its span inside the window when it holds the
 * window's start, and the sub-windows between in full
 * (doc/redis-keys.md, "Approximations").
 * Bytes: the sub-windows after the one holding the start in full, and
 * that one in proportion of its requests inside the window.
 */

static void
dg_win_counts(const dg_win_t *win, const dg_recs_t *r, int64_t start,
    dg_profile_t *prof)
{
    unsigned   k, c_in_eb;
    int64_t    e;
    uint64_t   x, bs, eb, c[DG_WIN_NB], by[DG_WIN_NB], later, later_bytes,
               in_bs;
    double     extra, f;
    const unsigned char  *b;

    /*
     * c[] and by[] of sub-window x in x mod 17, for the newest (last)
     * and the 16 before it: the newest's counter follows the header, the
     * others are in slot x mod 16 after it
     */
    x = (win->last >= DG_WIN_SUBW) ? win->last - DG_WIN_SUBW : 0;

    for ( /* void */ ; x <= win->last; x++) {
        b = (x == win->last)
            ? win->p + DG_WIN_HDR
            : win->p + DG_WIN_FRONT + (x % DG_WIN_SUBW) * DG_WIN_BSZ;
        c[x % DG_WIN_NB] = dg_le(b, 4);
        by[x % DG_WIN_NB] = dg_le(b + 4, 5);
    }

    /* sub-windows older than last - 16 are gone: count them as empty */
    bs = start < 0 ? 0 : (uint64_t) start / win->w;
    if (bs + DG_WIN_SUBW < win->last) {
        bs = win->last - DG_WIN_SUBW;
    }

    prof->v[DG_PROF_REQUESTS] = r->sample;

    /*
     * Some requests the ring dropped may be inside the window when the
     * ring is full and all of it is: they are no newer than its oldest
     * record
     */
    e = (win->n == DG_WIN_RING && r->all) ? r->ts[0] : -1;

    if (e > start) {
        eb = (uint64_t) e / win->w;

        c_in_eb = 0;
        for (k = 0; k < r->sample && (uint64_t) r->ts[k] / win->w == eb;
             k++)
        {
            c_in_eb++;
        }

        if (eb >= bs && eb <= win->last) {
            f = (double) c[eb % DG_WIN_NB];
            extra = f > c_in_eb ? f - c_in_eb : 0;

            if (eb == bs) {
                /* the dropped records of this sub-window: [eb * w, e] */
                extra *= (double) (e - start)
                         / (double) (e - (int64_t) (eb * win->w) + 1);

            } else {
                for (x = bs + 1; x < eb; x++) {
                    extra += (double) c[x % DG_WIN_NB];
                }

                extra += (double) c[bs % DG_WIN_NB]
                         * (double) ((int64_t) ((bs + 1) * win->w) - 1
                                     - start)
                         / (double) win->w;
            }

            prof->v[DG_PROF_REQUESTS] += dg_round(extra);
        }
    }

    later = 0;
    later_bytes = 0;

    for (x = bs + 1; x <= win->last; x++) {
        later += c[x % DG_WIN_NB];
        later_bytes += by[x % DG_WIN_NB];
    }

    in_bs = (uint64_t) prof->v[DG_PROF_REQUESTS] > later
            ? (uint64_t) prof->v[DG_PROF_REQUESTS] - later : 0;

    if (in_bs > c[bs % DG_WIN_NB]) {
        in_bs = c[bs % DG_WIN_NB];
    }

    prof->v[DG_PROF_BYTES] = (int64_t) later_bytes;

    if (in_bs) {
        prof->v[DG_PROF_BYTES] += dg_round((double) by[bs % DG_WIN_NB]
                                           * (double) in_bs
                                           / (double) c[bs % DG_WIN_NB]);
    }
}


/* the statistics of the sample: distinct values, shares, entropy, gaps */

static void
dg_win_sample(const dg_recs_t *r, dg_profile_t *prof)
{
    unsigned    k, n, c, p, ntopics, nheads, ntails, htop, ltop, single,
                cot, scripted, prov[4];
    double      sum, entropy, g, sumsq, mean, var, cv;
    dg_count_t  tc, hc, lc;

    n = r->sample;

    memset(tc.key, 0, sizeof(tc.key));
    memset(hc.key, 0, sizeof(hc.key));
    memset(lc.key, 0, sizeof(lc.key));
    memset(prov, 0, sizeof(prov));

    ntopics = nheads = ntails = htop = ltop = single = cot = scripted = 0;
    sumsq = 0;

    for (k = 0; k < n; k++) {
        if (dg_count_add(&tc, r->tf[k] & 0xfff) == 1) {
            ntopics++;
        }

        if (r->ht[k] & 0xfff) {
            c = dg_count_add(&hc, r->ht[k] & 0xfff);
            nheads += (c == 1);
            htop = c > htop ? c : htop;
        }

        if (r->ht[k] >> 12) {
            c = dg_count_add(&lc, r->ht[k] >> 12);
            ntails += (c == 1);
            ltop = c > ltop ? c : ltop;
        }

        /* one-shot: no history, or a fabricated one; bit 12 of a
         * verified one: a scripted follow-up */
        p = r->tf[k] >> 14;
        single += (p == DG_PROVENANCE_NONE || p == DG_PROVENANCE_FABRICATED);
        scripted += (p == DG_PROVENANCE_VERIFIED && ((r->tf[k] >> 12) & 1));
        cot += (r->tf[k] >> 13) & 1;
        prov[p]++;

        if (k > 0) {
            g = (double) (r->ts[k] - r->ts[k - 1]);
            sumsq += g * g;
        }
    }

    entropy = 0;

    if (ntopics > 1) {
        sum = 0;

        for (k = 0; k < 2 * DG_WIN_RING; k++) {
            if (tc.key[k] && tc.count[k] > 1) {
                sum += tc.count[k] * log((double) tc.count[k]);
            }
        }

        entropy = (log((double) n) - sum / n) / log(2.0);

        if (entropy < 0) {
            entropy = 0;
        }
    }

    mean = 0;
    cv = 0;

    if (n > 1) {
        mean = (double) (r->ts[n - 1] - r->ts[0]) / (n - 1);

        if (mean > 0) {
            var = sumsq / (n - 1) - mean * mean;

            if (var > 0) {
                cv = sqrt(var) / mean;
            }
        }
    }

    prof->v[DG_PROF_SAMPLE] = n;
    prof->v[DG_PROF_TOPICS] = ntopics;
    prof->v[DG_PROF_TOPIC_ENTROPY_MILLI] = dg_round(entropy * 1000);
    prof->v[DG_PROF_TEMPLATES] = (nheads && ntails)
                                 ? (nheads < ntails ? nheads : ntails)
                                 : nheads + ntails;
    prof->v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI] =
                  dg_round((double) (htop > ltop ? htop : ltop) * 1000 / n);
    prof->v[DG_PROF_SINGLE_TURN_SHARE_MILLI] =
                  dg_round((double) single * 1000 / n);
    prof->v[DG_PROF_COT_SHARE_MILLI] = dg_round((double) cot * 1000 / n);
    prof->v[DG_PROF_GAP_MEAN_MS] = dg_round(mean);
    prof->v[DG_PROF_GAP_CV_MILLI] = dg_round(cv * 1000);

    prof->verified_milli = dg_round((double) prov[DG_PROVENANCE_VERIFIED]
                                    * 1000 / n);
    prof->fabricated_milli =
                  dg_round((double) prov[DG_PROVENANCE_FABRICATED] * 1000 / n);
    prof->prefix_milli = dg_round((double) prov[DG_PROVENANCE_PREFIX]
                                  * 1000 / n);
    prof->scripted_milli = dg_round((double) scripted * 1000 / n);
}


/* the value's count after one more */

static unsigned
dg_count_add(dg_count_t *c, unsigned v)
{
    unsigned  i;

    i = (v * 2654435761u) >> 24;

    while (c->key[i] && c->key[i] != v + 1) {
        i = (i + 1) & (2 * DG_WIN_RING - 1);
    }

    if (c->key[i] == 0) {
        c->key[i] = (uint16_t) (v + 1);
        c->count[i] = 0;
    }

    return ++c->count[i];
}


/*
 * To the nearest integer, held within +-2^53: a value read from Redis is
 * not trusted to keep its counts sane, and what is added to a result
 * must not overflow
 */
static int64_t
dg_round(double x)
{
    if (x != x) {
        return 0;
    }

    if (x >= 9007199254740992.0) {
        return INT64_C(9007199254740992);
    }

    if (x <= -9007199254740992.0) {
        return -INT64_C(9007199254740992);
    }

    return (int64_t) floor(x + 0.5);
}
