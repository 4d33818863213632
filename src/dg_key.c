/*
 * distill-guard engine: API key normalisation and its keyed hash.
 */

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dg_key.h"


const char *
dg_key_normalize(const char *key, size_t *len)
{
    const char  *p, *end;

    p = key;
    end = key + *len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    /*
     * "Bearer" followed by a blank, or alone: nginx trims "Bearer " to
     * "Bearer", and the scheme without a token is no key
     */
    if (end - p >= 6 && strncasecmp(p, "Bearer", 6) == 0
        && (end - p == 6 || p[6] == ' ' || p[6] == '\t'))
    {
        p += 6;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    *len = end - p;

    return p;
}


int
dg_key_id(const char *secret, size_t secret_len, const char *key,
    size_t key_len, char *out)
{
    static const char  hex[] = "0123456789abcdef";

    size_t          i;
    unsigned int    md_len;
    unsigned char   md[EVP_MAX_MD_SIZE];

    if (HMAC(EVP_sha256(), secret, (int) secret_len,
             (const unsigned char *) key, key_len, md, &md_len) == NULL
        || md_len * 2 < DG_KEY_ID_LEN)
    {
        return -1;
    }

    for (i = 0; i < DG_KEY_ID_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }

    out[DG_KEY_ID_LEN] = '\0';

    return 0;
}
