/*
 * distill-guard engine: the decoder of a key's window state, the binary
 * STRING <prefix>:{<key_id>}:w that src/dg_window.lua writes, for the
 * operator's tools.  The one place outside the script that knows its
 * layout: t/50-ctl.t decodes what the real script wrote and compares it
 * with the script's own reply, so a change of layout fails a test.
 * Plain C, no nginx, no Redis client.
 */

#ifndef DG_WINDOW_STATE_H
#define DG_WINDOW_STATE_H

#include <stddef.h>
#include <stdint.h>


#define DG_WS_VERSION       4
#define DG_WS_RING          128
#define DG_WS_SUBW          32
#define DG_WS_SIZE          (15 + (DG_WS_SUBW + 1) * 10 + DG_WS_RING * 29)


typedef struct {
    uint64_t            ts;             /* ms since the epoch, rebuilt */
    uint64_t            age_ms;
    uint32_t            topic;
    uint32_t            head;           /* template fingerprints, 0: none */
    uint32_t            tail;
    uint32_t            bytes;
    uint32_t            sent;           /* provenance fingerprints */
    uint32_t            opening;
    unsigned            provenance:2;   /* dg_provenance_t */
    unsigned            single_turn:1;  /* one-shot */
    unsigned            cot:1;
    unsigned            scripted:1;
} dg_ws_record_t;


typedef struct {
    /* the header, as stored */
    unsigned            version;
    unsigned            n;              /* records in the ring */
    unsigned            next;           /* the slot written next */
    uint32_t            subwindow_ms;
    uint64_t            last_subwindow;

    uint64_t            window_ms;      /* as given, or subwindow_ms * 32 */
    uint64_t            now_ms;

    /* the records inside the window, oldest first */
    unsigned            nrec;
    dg_ws_record_t      rec[DG_WS_RING];

    /* the profile over them, as the script computes it (DG_PROF_*) */
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
 * window is a multiple of 32 ms).  Returns 0, or -1 with *err set when
 * the value is not of this layout and version.
 */
int dg_window_state_decode(dg_window_state_t *ws, const void *data,
    size_t len, uint64_t now_ms, uint64_t window_ms, const char **err);


#endif /* DG_WINDOW_STATE_H */
