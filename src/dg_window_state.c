/*
 * distill-guard engine: the decoder of a key's window state (the layout
 * is documented at the top of src/dg_window.lua and in
 * doc/redis-keys.md).  The profile is computed as the script computes
 * it, by plain counting rather than along the back-references: the two
 * agree, which t/50-ctl.t checks on what the real script wrote.
 */

#include <math.h>
#include <string.h>

#include "dg_window_state.h"


#define DG_WS_HDR           15
#define DG_WS_BSZ           10
#define DG_WS_RSZ           29
#define DG_WS_ROFF          (DG_WS_HDR + (DG_WS_SUBW + 1) * DG_WS_BSZ)
#define DG_WS_B32           4294967296ULL
#define DG_WS_HALF          2147483648ULL


static uint64_t
dg_ws_le(const unsigned char *p, unsigned n)
{
    uint64_t  v;

    v = 0;

    while (n-- > 0) {
        v = (v << 8) | p[n];
    }

    return v;
}


static uint64_t
dg_ws_round(double x)
{
    return (uint64_t) floor(x + 0.5);
}


/* the sub-window counters: requests and bytes in the window from them */
static void
dg_ws_counters(dg_window_state_t *ws, const unsigned char *s,
    uint64_t *requests, uint64_t *bytes)
{
    double         f, rq, by;
    uint64_t       w, start, bs, x, from;
    const uint8_t *b;

    w = ws->subwindow_ms;
    start = ws->now_ms - ws->window_ms;
    bs = start / w;
    rq = 0;
    by = 0;

    /* valid sub-windows: last - 32 .. last */
    from = (ws->last_subwindow > DG_WS_SUBW)
           ? ws->last_subwindow - DG_WS_SUBW : 0;

    for (x = (bs > from ? bs : from); x <= ws->last_subwindow; x++) {
        b = s + DG_WS_HDR + (x % (DG_WS_SUBW + 1)) * DG_WS_BSZ;
        f = (x == bs) ? (double) ((bs + 1) * w - 1 - start) / w : 1.0;
        rq += dg_ws_le(b, 4) * f;
        by += dg_ws_le(b + 4, 6) * f;
    }

    *requests = dg_ws_round(rq);
    *bytes = dg_ws_round(by);
}


static void
dg_ws_profile(dg_window_state_t *ws)
{
    double           sum, sumsq, mean, var, g;
    unsigned         i, j, c, nt, nh, nl, ht, lt, single, cot, prov[4],
                     scripted;
    uint64_t         bytes;
    dg_ws_record_t  *r;

    nt = nh = nl = ht = lt = single = cot = scripted = 0;
    prov[0] = prov[1] = prov[2] = prov[3] = 0;
    sum = sumsq = 0;
    bytes = 0;

    for (i = 0; i < ws->nrec; i++) {
        r = &ws->rec[i];
        bytes += r->bytes;
        single += r->single_turn;
        cot += r->cot;
        prov[r->provenance]++;
        scripted += r->scripted;

        if (i > 0) {
            g = (double) (r->ts - ws->rec[i - 1].ts);
            sumsq += g * g;
        }

        /* first of its topic: count it, with every later one */
        for (j = 0; j < i && ws->rec[j].topic != r->topic; j++) {
            /* void */
        }

        if (j == i) {
            nt++;

            for (c = 0, j = i; j < ws->nrec; j++) {
                c += (ws->rec[j].topic == r->topic);
            }

            if (c > 1) {
                sum += c * log((double) c);
            }
        }

        for (j = 0; r->head && j < i && ws->rec[j].head != r->head; j++) {
            /* void */
        }

        if (r->head && j == i) {
            nh++;

            for (c = 0, j = i; j < ws->nrec; j++) {
                c += (ws->rec[j].head == r->head);
            }

            ht = (c > ht) ? c : ht;
        }

        for (j = 0; r->tail && j < i && ws->rec[j].tail != r->tail; j++) {
            /* void */
        }

        if (r->tail && j == i) {
            nl++;

            for (c = 0, j = i; j < ws->nrec; j++) {
                c += (ws->rec[j].tail == r->tail);
            }

            lt = (c > lt) ? c : lt;
        }
    }

    ws->sample = ws->nrec;
    ws->requests = ws->nrec;
    ws->bytes = bytes;
    ws->topics = nt;
    ws->templates = (nh > 0 && nl > 0) ? (nh < nl ? nh : nl) : nh + nl;

    if (ws->nrec == 0) {
        return;
    }

    if (nt > 1) {
        g = (log((double) ws->nrec) - sum / ws->nrec) / log(2.0);
        ws->topic_entropy_milli = dg_ws_round((g > 0 ? g : 0) * 1000);
    }

    ws->top_template_share_milli =
        dg_ws_round((double) (ht > lt ? ht : lt) * 1000 / ws->nrec);
    ws->single_turn_share_milli =
        dg_ws_round((double) single * 1000 / ws->nrec);
    ws->cot_share_milli = dg_ws_round((double) cot * 1000 / ws->nrec);
    ws->verified_milli = dg_ws_round((double) prov[1] * 1000 / ws->nrec);
    ws->fabricated_milli = dg_ws_round((double) prov[2] * 1000 / ws->nrec);
    ws->prefix_milli = dg_ws_round((double) prov[3] * 1000 / ws->nrec);
    ws->scripted_milli = dg_ws_round((double) scripted * 1000 / ws->nrec);

    if (ws->nrec > 1) {
        mean = (double) (ws->rec[ws->nrec - 1].ts - ws->rec[0].ts)
               / (ws->nrec - 1);
        ws->gap_mean_ms = dg_ws_round(mean);

        if (mean > 0) {
            var = sumsq / (ws->nrec - 1) - mean * mean;
            if (var > 0) {
                ws->gap_cv_milli = dg_ws_round(sqrt(var) / mean * 1000);
            }
        }
    }
}


int
dg_window_state_decode(dg_window_state_t *ws, const void *data,
    size_t len, uint64_t now_ms, uint64_t window_ms, const char **err)
{
    int                   k, kfirst, oldest;
    uint64_t              tc, prevm, m, g, start, tf, requests, bytes;
    const unsigned char  *s, *p;
    dg_ws_record_t        tmp[DG_WS_RING];

    memset(ws, 0, sizeof(dg_window_state_t));
    s = data;

    if (len != DG_WS_SIZE) {
        *err = "not a window of this layout (size)";
        return -1;
    }

    ws->version = s[0];
    ws->n = (unsigned) dg_ws_le(s + 1, 2);
    ws->next = (unsigned) dg_ws_le(s + 3, 2);
    ws->subwindow_ms = (uint32_t) dg_ws_le(s + 5, 4);
    ws->last_subwindow = dg_ws_le(s + 9, 6);

    if (ws->version != DG_WS_VERSION) {
        *err = "not a window of this version";
        return -1;
    }

    if (ws->n > DG_WS_RING || ws->next >= DG_WS_RING
        || (ws->n < DG_WS_RING && ws->next != ws->n)
        || ws->subwindow_ms == 0)
    {
        *err = "a window with an inconsistent header";
        return -1;
    }

    ws->window_ms = window_ms ? window_ms
                              : (uint64_t) ws->subwindow_ms * DG_WS_SUBW;
    ws->now_ms = now_ms;
    start = (now_ms > ws->window_ms) ? now_ms - ws->window_ms : 0;

    /* true times from now backwards, one gap at a time, as the script */
    oldest = (ws->n < DG_WS_RING) ? 0 : (int) ws->next;
    kfirst = (int) ws->n + 1;
    tc = now_ms;
    prevm = now_ms % DG_WS_B32;

    for (k = (int) ws->n; k >= 1; k--) {
        p = s + DG_WS_ROFF + ((oldest + k - 1) % DG_WS_RING) * DG_WS_RSZ;
        m = dg_ws_le(p, 4);
        g = (prevm + DG_WS_B32 - m) % DG_WS_B32;

        if (g >= DG_WS_HALF) {
            if (k != (int) ws->n) {
                break;
            }

            /* Redis's clock is behind the newest record (a failover) */
            g = 0;
        }

        if (tc - g <= start) {
            break;
        }

        tc -= g;
        prevm = m;
        kfirst = k;

        tf = dg_ws_le(p + 4, 2);
        tmp[k - 1].ts = tc;
        tmp[k - 1].age_ms = now_ms - tc;
        tmp[k - 1].topic = (uint32_t) (tf % 4096);
        tmp[k - 1].single_turn = (tf >> 12) & 1;
        tmp[k - 1].cot = (tf >> 13) & 1;
        tmp[k - 1].provenance = (tf >> 14) & 3;
        tmp[k - 1].scripted = (dg_ws_le(p + 6, 3) >> 21) & 1;
        tmp[k - 1].head = (uint32_t) dg_ws_le(p + 9, 4);
        tmp[k - 1].tail = (uint32_t) dg_ws_le(p + 13, 4);
        tmp[k - 1].bytes = (uint32_t) dg_ws_le(p + 17, 4);
        tmp[k - 1].sent = (uint32_t) dg_ws_le(p + 21, 4);
        tmp[k - 1].opening = (uint32_t) dg_ws_le(p + 25, 4);
    }

    ws->nrec = (unsigned) ws->n + 1 - (unsigned) kfirst;
    memcpy(ws->rec, tmp + kfirst - 1, ws->nrec * sizeof(dg_ws_record_t));

    dg_ws_profile(ws);

    /* the ring holds the whole window unless it is full of it */
    if (ws->n == DG_WS_RING && kfirst == 1) {
        dg_ws_counters(ws, s, &requests, &bytes);

        if (requests > ws->requests) {
            ws->requests = requests;
            ws->bytes = bytes > ws->bytes ? bytes : ws->bytes;
        }
    }

    return 0;
}
