/*
 * unit tests: a window value written the way src/dg_window.lua writes
 * it, little-endian fields and the sub-window counters, for the tests
 * of the decoder (test_profile.c, test_window_state.c)
 */

#ifndef DG_TEST_WINDOW_H
#define DG_TEST_WINDOW_H

#include <stdint.h>
#include <string.h>

#include "dg_profile.h"


static inline void
t_put(unsigned char *p, uint64_t v, unsigned bytes)
{
    while (bytes--) {
        *p++ = (unsigned char) (v & 0xff);
        v >>= 8;
    }
}


static inline uint64_t
t_get(const unsigned char *p, unsigned bytes)
{
    uint64_t  v;

    v = 0;

    while (bytes--) {
        v = (v << 8) | p[bytes];
    }

    return v;
}


/*
 * A request of bytes in sub-window b counted as the script counts it:
 * when b starts, the newest sub-window closes into its slot and those
 * between are emptied; then b's counters, beside the header, grow
 */
static inline void
t_win_count(unsigned char *v, uint64_t b, uint64_t bytes)
{
    uint64_t        w, last, x;
    unsigned char  *bk;

    w = t_get(v + 3, 4);
    last = t_get(v + 7, 6) / w;

    if (v[1] > 0 && b > last) {
        if (b - last <= DG_WIN_SUBW) {
            memcpy(v + DG_WIN_FRONT + (last % DG_WIN_SUBW) * DG_WIN_BSZ,
                   v + DG_WIN_HDR, DG_WIN_BSZ);
        }

        for (x = last + 1; x < b && x <= last + DG_WIN_SUBW; x++) {
            memset(v + DG_WIN_FRONT + (x % DG_WIN_SUBW) * DG_WIN_BSZ, 0,
                   DG_WIN_BSZ);
        }

        memset(v + DG_WIN_HDR, 0, DG_WIN_BSZ);
    }

    bk = v + DG_WIN_HDR;
    t_put(bk, t_get(bk, 4) + 1, 4);
    t_put(bk + 4, t_get(bk + 4, 5) + bytes, 5);
}


#endif /* DG_TEST_WINDOW_H */
