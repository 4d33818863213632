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

/*
 * The same HMAC with its key schedule made once: the pads digested in
 * two contexts that each call copies.  OpenSSL 3's one-shot HMAC()
 * fetches the algorithm and builds a MAC context every call, 1.9 us
 * where this takes 0.2.  NULL on failure (use dg_key_id then).
 */
typedef struct dg_key_hmac_s  dg_key_hmac_t;

dg_key_hmac_t *dg_key_hmac_create(const char *secret, size_t secret_len);
void dg_key_hmac_free(dg_key_hmac_t *h);
int dg_key_hmac_id(dg_key_hmac_t *h, const char *key, size_t key_len,
    char *out);


#endif /* DG_KEY_H */
