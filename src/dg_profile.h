/*
 * distill-guard engine: a key's window profile, computed in the gateway
 * from the window value the window script returns (src/dg_window.lua).
 * The layout of that value is documented in doc/redis-keys.md ("The
 * window value"); these constants must agree with it and with the
 * script.
 */

#ifndef DG_PROFILE_H
#define DG_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_window.h"


#define DG_WIN_VERSION      7
#define DG_WIN_RING         128         /* records */
#define DG_WIN_SUBW         16          /* sub-windows of the window */
#define DG_WIN_NB           (DG_WIN_SUBW + 1)   /* counted: the newest
                                                   and the 16 before */
#define DG_WIN_HDR          32          /* from byte 13: the limiter's
                                           state (DG_WIN_STATE_OFF) */
#define DG_WIN_STATE_OFF    13          /* state byte, pu u48, tt u48,
                                           rt u48 */
#define DG_WIN_BSZ          9           /* sub-window counter */
#define DG_WIN_FRONT        (DG_WIN_HDR + DG_WIN_BSZ)   /* the header and
                                           the newest sub-window's
                                           counter; then the 16 before,
                                           sub-window x in slot x mod 16 */
#define DG_WIN_RSZ          12          /* ring record */
#define DG_WIN_ROFF         (DG_WIN_FRONT + DG_WIN_SUBW * DG_WIN_BSZ)
#define DG_WIN_SIZE         (DG_WIN_ROFF + DG_WIN_RING * DG_WIN_RSZ)


/* the window script's reply: one string of these, packed */
enum {
    DG_WREPLY_NOW_MS = 0,               /* u48 */
    DG_WREPLY_PROVENANCE,               /* u8 */
    DG_WREPLY_SLOT,                     /* u8: where the record went */
    DG_WREPLY_STATE,                    /* u8 */
    DG_WREPLY_REFUSED,                  /* u8 */
    DG_WREPLY_PENALTY_MS,               /* u48 */
    DG_WREPLY_RETRY_MS,                 /* u48 */
    DG_WREPLY_REMAINING,                /* u32 */
    DG_WREPLY_N
};

#define DG_WREPLY_LEN       26


/*
 * The window script's reply string unpacked into v[DG_WREPLY_N]; returns
 * DG_WREPLY_N, or 0 when it is not such a reply.
 */
size_t dg_window_unpack(const char *reply, size_t len, int64_t *v);


/*
 * What the ring stores of a fingerprint: template heads and tails in 12
 * bits, conversation fingerprints (sent, prior, history) in 16; 0 stays
 * 0 ("none") and nothing else becomes 0.
 */
uint32_t dg_fold12(uint32_t fp);
uint32_t dg_fold16(uint32_t fp);

/*
 * A conversation's opening folded to 16 bits another way than sent and
 * prior: the same text stored as a record's opening does not match a
 * search for what a record sent (the script's provenance check finds the
 * prior turn among the sent fields with one plain find per match; an
 * opening equal to the prior, every second turn, would match every
 * record of the conversation).  0 stays 0.
 */
uint32_t dg_fold16_opening(uint32_t fp);

/*
 * The value's little-endian fields of 1 to 8 bytes: read, write.  Inline:
 * the profile reads five a record, 128 records a request
 */

static inline uint64_t
dg_le(const unsigned char *p, unsigned bytes)
{
    uint64_t  v;

    v = 0;

    while (bytes--) {
        v = (v << 8) | p[bytes];
    }

    return v;
}


static inline void
dg_le_put(unsigned char *p, uint64_t v, unsigned bytes)
{
    unsigned  k;

    for (k = 0; k < bytes; k++) {
        p[k] = (unsigned char) (v >> (8 * k));
    }
}


/* a sub-window's width for a window, as the script takes it */

static inline uint64_t
dg_win_subw(uint64_t window_ms)
{
    return (window_ms + DG_WIN_SUBW - 1) / DG_WIN_SUBW;
}


/*
 * Decodes a window value and computes the profile fields (prof->v, and
 * the provenance shares) as of now_ms on Redis's clock.  Returns -1 when
 * the value is not a window of this version holding at least one record;
 * prof is then left as it was.
 */
int dg_profile_compute(dg_profile_t *prof, const char *value, size_t len,
    uint64_t window_ms, int64_t now_ms);

/*
 * The window script's reply, n integers in DG_WREPLY_* order, and the
 * value that the GET after it read.  Fills the profile and the
 * limiter fields; -1 if it is not a valid reply.  template_keys,
 * template_conv and subnet_keys are left as they are (the fan-out
 * replies set them).
 */
int dg_window_reply(dg_profile_t *prof, uint64_t window_ms,
    const char *value, size_t len, const int64_t *v, size_t n);

/*
 * Whether the window holds, besides this request's record (in slot),
 * a one-shot request of this key with the same folded template head
 * (which: DG_FANOUT_HEAD) or tail at or after since_ms: that request
 * added the key to the template's fan-out counter already.
 */
int dg_profile_sent_template(const char *value, size_t len,
    uint64_t window_ms, int64_t now_ms, unsigned slot, dg_fanout_t which,
    uint32_t fp, int64_t since_ms);


/*
 * The header of a window value, and a record of it decoded, for the
 * operator's tools (src/dg_window_state.c): the layout stays known here
 * only.
 */
typedef struct {
    unsigned            version;
    unsigned            n;              /* records in the ring */
    unsigned            next;           /* the slot written next */
    unsigned            has_state;      /* the state byte: 0 none, else
                                           8 + st * 2 */
    uint64_t            subwindow_ms;
    int64_t             newest_ms;      /* time of the newest record */
    uint64_t            window_ms;      /* subwindow_ms * DG_WIN_SUBW: the
                                           window, to a sub-window */
    unsigned            ring;           /* DG_WIN_RING */
} dg_win_header_t;

typedef struct {
    int64_t             ts_ms;          /* rebuilt, Redis's clock */
    unsigned            slot;
    unsigned            topic;          /* bucket, 0 .. 4095 */
    unsigned            head;           /* folded to 12 bits; 0: none */
    unsigned            tail;
    unsigned            sent;           /* folded to 16 bits */
    unsigned            opening;
    unsigned            provenance;     /* dg_provenance_t */
    unsigned            one_shot:1;     /* provenance none or fabricated */
    unsigned            cot:1;
    unsigned            scripted:1;     /* a verified follow-up this key
                                           sent in another conversation */
} dg_win_record_t;

#define DG_WIN_ESIZE        -1
#define DG_WIN_EVERSION     -2
#define DG_WIN_EHEADER      -3

/*
 * The header of a window value; 0, or DG_WIN_ESIZE, DG_WIN_EVERSION or
 * DG_WIN_EHEADER (a header the script never writes).
 */
int dg_profile_header(dg_win_header_t *hdr, const char *value, size_t len);

/*
 * The records inside the window as of now_ms (newer than now_ms -
 * window_ms), oldest first, into rec[DG_WIN_RING], decoded as
 * dg_profile_compute reads them; returns their number, or a
 * dg_profile_header error.
 */
int dg_profile_records(dg_win_record_t *rec, const char *value, size_t len,
    uint64_t window_ms, int64_t now_ms);


#endif /* DG_PROFILE_H */
