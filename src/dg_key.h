/*
 * distill-guard engine: API key normalisation and its keyed hash.
 */

#ifndef DG_KEY_H
#define DG_KEY_H

#include <stddef.h>

#include "dg_window.h"


/*
 * Strips a leading "Bearer" (any case) followed by a blank or alone, and
 * surrounding blanks; returns the start of the key and sets *len.
 * *len == 0: no key ("", blanks, "Bearer", "Bearer   ").
 */
const char *dg_key_normalize(const char *key, size_t *len);

/*
 * out = first DG_KEY_ID_LEN hex digits of HMAC-SHA256(secret, key),
 * NUL-terminated (out holds DG_KEY_ID_LEN + 1).  Returns 0 or -1.
 */
int dg_key_id(const char *secret, size_t secret_len, const char *key,
    size_t key_len, char *out);


#endif /* DG_KEY_H */
