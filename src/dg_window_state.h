/*
 * distill-guard engine: a key's window state, the binary STRING
 * <prefix>:{<key_id>}:w that src/dg_window.lua writes, decoded for the
 * operator's tools.  A thin layer over src/dg_profile.c, the one place
 * in C that knows the layout: the records are decoded and the profile
 * computed there, as the gateway does.  t/50-ctl.t compares what the
 * CLI shows with what the real script was sent and what the engine
 * computed.  Plain C, no nginx, no Redis client.
 */

#ifndef DG_WINDOW_STATE_H
#define DG_WINDOW_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_profile.h"


#define DG_WS_RING          DG_WIN_RING


typedef struct {
    uint64_t            ts;             /* ms since the epoch, rebuilt */
    uint64_t            age_ms;
    uint32_t            topic;          /* bucket, 0 .. 4095 */
    uint32_t            head;           /* template fingerprints folded
                                           to 12 bits, 0: none */
    uint32_t            tail;
    uint32_t            sent;           /* last user turn, 16 bits */
    uint32_t            opening;        /* the conversation's first user
                                           turn, 16 bits */
    unsigned            provenance:2;   /* dg_provenance_t */
    unsigned            single_turn:1;  /* one-shot: provenance none or
                                           fabricated */
    unsigned            cot:1;
    unsigned            scripted:1;
} dg_ws_record_t;


typedef struct {
    /* the header, as stored */
    unsigned            version;
    unsigned            n;              /* records in the ring */
    unsigned            next;           /* the slot written next */
    unsigned            has_state;
    uint32_t            subwindow_ms;
    uint64_t            last_subwindow;
    uint64_t            newest_ms;

    uint64_t            window_ms;      /* as given, or subwindow_ms * 16 */
    uint64_t            now_ms;

    /* the records inside the window, oldest first */
    unsigned            nrec;
    dg_ws_record_t      rec[DG_WS_RING];

    /* the profile over them, as the gateway computes it (DG_PROF_*) */
    uint64_t            requests;       /* with the sub-window counters */
    uint64_t            sample;
    uint64_t            topics;
    uint64_t            topic_entropy_milli;
    uint64_t            templates;
    uint64_t            top_template_share_milli;
    uint64_t            single_turn_share_milli;
    uint64_t            cot_share_milli;
    uint64_t            gap_mean_ms;
    uint64_t            gap_cv_milli;
    uint64_t            bytes;
    uint64_t            verified_milli;
    uint64_t            fabricated_milli;
    uint64_t            prefix_milli;
    uint64_t            scripted_milli;
} dg_window_state_t;


/*
 * Decodes the value of a window key as of now_ms (Redis's clock);
 * window_ms 0 takes it from the stored sub-window width (exact when the
 * window is a multiple of 16 ms).  Returns 0, or -1 with *err set when
 * the value is not of this layout and version.
 */
int dg_window_state_decode(dg_window_state_t *ws, const void *data,
    size_t len, uint64_t now_ms, uint64_t window_ms, const char **err);


#endif /* DG_WINDOW_STATE_H */
