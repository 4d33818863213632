/*
 * distill-guard engine: a key's window state for the operator's tools.
 * The layout is decoded in src/dg_profile.c only (dg_profile_header,
 * dg_profile_records) and the profile is dg_profile_compute's, so what
 * the CLI shows is what the gateway saw.
 */

#include <string.h>

#include "dg_window_state.h"


int
dg_window_state_decode(dg_window_state_t *ws, const void *data,
    size_t len, uint64_t now_ms, uint64_t window_ms, const char **err)
{
    int               rc, i;
    dg_profile_t      prof;
    dg_ws_record_t   *r;
    dg_win_header_t   hdr;
    dg_win_record_t   rec[DG_WS_RING];

    memset(ws, 0, sizeof(dg_window_state_t));

    rc = dg_profile_header(&hdr, data, len);

    switch (rc) {

    case 0:
        break;

    case DG_WIN_ESIZE:
        *err = "not a window of this layout (size)";
        return -1;

    case DG_WIN_EVERSION:
        *err = "not a window of this version";
        return -1;

    default:
        *err = "a window with an inconsistent header";
        return -1;
    }

    ws->version = hdr.version;
    ws->n = hdr.n;
    ws->next = hdr.next;
    ws->has_state = hdr.has_state;
    ws->subwindow_ms = (uint32_t) hdr.subwindow_ms;
    ws->newest_ms = (uint64_t) hdr.newest_ms;
    ws->last_subwindow = ws->newest_ms / hdr.subwindow_ms;
    ws->window_ms = window_ms ? window_ms : hdr.window_ms;
    ws->now_ms = now_ms;

    rc = dg_profile_records(rec, data, len, ws->window_ms, (int64_t) now_ms);
    if (rc < 0) {
        *err = "a window with an inconsistent header";
        return -1;
    }

    ws->nrec = (unsigned) rc;

    for (i = 0; i < rc; i++) {
        r = &ws->rec[i];
        r->ts = (uint64_t) rec[i].ts_ms;

        /* Redis's clock behind the newest record (a failover): age 0 */
        r->age_ms = (now_ms > r->ts) ? now_ms - r->ts : 0;
        r->topic = rec[i].topic;
        r->head = rec[i].head;
        r->tail = rec[i].tail;
        r->sent = rec[i].sent;
        r->opening = rec[i].opening;
        r->provenance = rec[i].provenance;
        r->single_turn = rec[i].one_shot;
        r->cot = rec[i].cot;
        r->scripted = rec[i].scripted;
    }

    /* no record inside the window: an empty profile */
    memset(&prof, 0, sizeof(dg_profile_t));

    if (dg_profile_compute(&prof, data, len, ws->window_ms,
                           (int64_t) now_ms)
        != 0)
    {
        return 0;
    }

    ws->requests = (uint64_t) prof.v[DG_PROF_REQUESTS];
    ws->sample = (uint64_t) prof.v[DG_PROF_SAMPLE];
    ws->topics = (uint64_t) prof.v[DG_PROF_TOPICS];
    ws->topic_entropy_milli = (uint64_t) prof.v[DG_PROF_TOPIC_ENTROPY_MILLI];
    ws->templates = (uint64_t) prof.v[DG_PROF_TEMPLATES];
    ws->top_template_share_milli =
                    (uint64_t) prof.v[DG_PROF_TOP_TEMPLATE_SHARE_MILLI];
    ws->single_turn_share_milli =
                    (uint64_t) prof.v[DG_PROF_SINGLE_TURN_SHARE_MILLI];
    ws->cot_share_milli = (uint64_t) prof.v[DG_PROF_COT_SHARE_MILLI];
    ws->gap_mean_ms = (uint64_t) prof.v[DG_PROF_GAP_MEAN_MS];
    ws->gap_cv_milli = (uint64_t) prof.v[DG_PROF_GAP_CV_MILLI];
    ws->bytes = (uint64_t) prof.v[DG_PROF_BYTES];
    ws->verified_milli = (uint64_t) prof.verified_milli;
    ws->fabricated_milli = (uint64_t) prof.fabricated_milli;
    ws->prefix_milli = (uint64_t) prof.prefix_milli;
    ws->scripted_milli = (uint64_t) prof.scripted_milli;

    return 0;
}
