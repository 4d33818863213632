/*
 * libFuzzer target: the window value that Redis returns, decoded by the
 * gateway (src/dg_profile.c).  The first 12 bytes give the window and
 * the clock; the rest is the value, of any length, so both the fixed
 * size (1,703 bytes: pad the corpus to it) and every other length are
 * tried; and the script's packed reply.  Checks the counts stay in
 * range.
 *
 *   make fuzz && build/fuzz/fuzz_profile -max_total_time=60
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_profile.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *value;
    size_t         len;
    int64_t        now, v[DG_WREPLY_N];
    uint64_t       window;
    dg_profile_t   p;

    if (size < 12) {
        return 0;
    }

    window = (uint64_t) data[0] | (uint64_t) data[1] << 8
             | (uint64_t) data[2] << 16 | (uint64_t) (data[3] & 0x7f) << 24;
    memcpy(&now, data + 4, sizeof(now));
    now &= INT64_C(0x0000ffffffffffff);

    len = size - 12;
    value = malloc(len ? len : 1);
    if (value == NULL) {
        return 0;
    }

    memcpy(value, data + 12, len);
    memset(&p, 0, sizeof(p));

    if (dg_profile_compute(&p, value, len, window, now) == 0) {
        if (p.v[DG_PROF_SAMPLE] < 1 || p.v[DG_PROF_SAMPLE] > DG_WIN_RING
            || p.v[DG_PROF_REQUESTS] < p.v[DG_PROF_SAMPLE]
            || p.v[DG_PROF_TOPICS] > p.v[DG_PROF_SAMPLE]
            || p.v[DG_PROF_BYTES] < 0)
        {
            abort();
        }
    }

    (void) dg_profile_sent_template(value, len, window, now, data[1] % 128,
                                    DG_FANOUT_HEAD, data[0] | 1,
                                    now - (int64_t) window);

    /* the script's packed reply, from the first bytes of the value */
    if (len >= DG_WREPLY_LEN
        && dg_window_unpack(value, DG_WREPLY_LEN, v) == DG_WREPLY_N)
    {
        (void) dg_window_reply(&p, window, value, len, v, DG_WREPLY_N);
    }

    free(value);

    return 0;
}
