/*
 * distill-guard engine: API key normalisation and its keyed hash.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>
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


#define DG_HMAC_BLOCK       64          /* SHA-256's block */


struct dg_key_hmac_s {
    EVP_MD_CTX         *inner;          /* the key ^ ipad digested */
    EVP_MD_CTX         *outer;          /* the key ^ opad digested */
    EVP_MD_CTX         *tmp;
};


static void dg_key_hex(const unsigned char *md, char *out);


int
dg_key_id(const char *secret, size_t secret_len, const char *key,
    size_t key_len, char *out)
{
    unsigned int    md_len;
    unsigned char   md[EVP_MAX_MD_SIZE];

    if (HMAC(EVP_sha256(), secret, (int) secret_len,
             (const unsigned char *) key, key_len, md, &md_len) == NULL
        || md_len * 2 < DG_KEY_ID_LEN)
    {
        return -1;
    }

    dg_key_hex(md, out);

    return 0;
}


dg_key_hmac_t *
dg_key_hmac_create(const char *secret, size_t secret_len)
{
    size_t          i;
    unsigned int    len;
    unsigned char   k[DG_HMAC_BLOCK], pad[DG_HMAC_BLOCK];
    dg_key_hmac_t  *h;

    h = calloc(1, sizeof(dg_key_hmac_t));
    if (h == NULL) {
        return NULL;
    }

    memset(k, 0, sizeof(k));

    /* RFC 2104: a key longer than the block is hashed first */
    if (secret_len > DG_HMAC_BLOCK) {
        if (EVP_Digest(secret, secret_len, k, &len, EVP_sha256(), NULL)
            != 1)
        {
            free(h);
            return NULL;
        }

    } else {
        memcpy(k, secret, secret_len);
    }

    h->inner = EVP_MD_CTX_new();
    h->outer = EVP_MD_CTX_new();
    h->tmp = EVP_MD_CTX_new();

    if (h->inner == NULL || h->outer == NULL || h->tmp == NULL) {
        goto failed;
    }

    for (i = 0; i < DG_HMAC_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }

    if (EVP_DigestInit_ex(h->inner, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(h->inner, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    for (i = 0; i < DG_HMAC_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }

    if (EVP_DigestInit_ex(h->outer, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(h->outer, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));

    return h;

failed:

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    dg_key_hmac_free(h);

    return NULL;
}


void
dg_key_hmac_free(dg_key_hmac_t *h)
{
    if (h == NULL) {
        return;
    }

    EVP_MD_CTX_free(h->inner);
    EVP_MD_CTX_free(h->outer);
    EVP_MD_CTX_free(h->tmp);
    free(h);
}


int
dg_key_hmac_id(dg_key_hmac_t *h, const char *key, size_t key_len,
    char *out)
{
    unsigned int   len;
    unsigned char  md[EVP_MAX_MD_SIZE];

    if (EVP_MD_CTX_copy_ex(h->tmp, h->inner) != 1
        || EVP_DigestUpdate(h->tmp, key, key_len) != 1
        || EVP_DigestFinal_ex(h->tmp, md, &len) != 1
        || EVP_MD_CTX_copy_ex(h->tmp, h->outer) != 1
        || EVP_DigestUpdate(h->tmp, md, len) != 1
        || EVP_DigestFinal_ex(h->tmp, md, &len) != 1
        || len * 2 < DG_KEY_ID_LEN)
    {
        return -1;
    }

    dg_key_hex(md, out);

    return 0;
}


static void
dg_key_hex(const unsigned char *md, char *out)
{
    size_t  i;

    static const char  hex[] = "0123456789abcdef";

    for (i = 0; i < DG_KEY_ID_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }

    out[DG_KEY_ID_LEN] = '\0';
}
