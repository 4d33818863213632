/*
 * distill-guard engine: word hashing and the coarse topic of a prompt
 * (internal to the features pass).
 *
 * A built-in lexicon maps topical words and stems to about a hundred
 * coarse domains; the topic is the domain with the most hits.  Buckets:
 *
 *   0                      no content word at all
 *   1 .. DG_TOPIC_DOMAINS  a lexicon domain
 *   256 .. 4095            no lexicon word: a min-hash of the content
 *                          words, so that prompts sharing their rarest
 *                          word tend to share the bucket
 *
 * Words are runs of ASCII letters, digits, '_' and non-ASCII bytes.  A
 * word is normalised (ASCII lower-cased, each run of digits one '0') and
 * its bytes packed 8 to a 64-bit block, first byte lowest; the state is
 * DG_WORD_SEED, then dg_mix64(state ^ block) per full block.  A word
 * or prefix of l bytes, partial its last incomplete block (0 if none),
 * ends with v = state ^ partial ^ l << 56: its hash is dg_mix64(v),
 * its filter key dg_word_key(v).  The features pass computes this 8
 * bytes at a time; the lexicon and words with digits go through
 * dg_word_hash(), byte by byte; both give the same hashes.
 */

#ifndef DG_TOPIC_H
#define DG_TOPIC_H

#include <stddef.h>
#include <stdint.h>


#define DG_TOPIC_DOMAINS        128     /* room for the domain ids */
#define DG_TOPIC_FALLBACK       256     /* first min-hash bucket */
#define DG_TOPIC_STEM_MIN       4       /* shortest stem matched as prefix */
#define DG_TOPIC_STOP           255     /* a stop word: no topic, no content */
#define DG_TOPIC_TOUCHED        32      /* distinct domains kept in a list */
#define DG_TOPIC_FILTER_BITS    16      /* lexicon filter: 8 KB, 3% false */
#define DG_TOPIC_LENS_BITS      12      /* stem lengths by 4 bytes: 8 KB */
#define DG_TOPIC_STEM_MAX       19      /* DG_TOPIC_STEM_MIN + 15 */

#define DG_WORD_SEED            0x243f6a8885a308d3ULL
#define DG_WORD_KEY_MUL         0x9e3779b97f4a7c15ULL


typedef struct {
    uint16_t            hits[DG_TOPIC_DOMAINS];
    uint8_t             touched[DG_TOPIC_TOUCHED];  /* domains with hits */
    unsigned            ntouched;       /* > DG_TOPIC_TOUCHED: scan all */
    unsigned            matched;        /* words that hit a domain */
    unsigned            content;        /* other words of 4+ bytes */
    uint64_t            minhash;        /* over those */
} dg_topic_acc_t;


/* one word hashed byte by byte: dg_word_hash() */
typedef struct {
    uint64_t            v;
    uint64_t            hash;           /* dg_mix64(v) */
    int                 stem;           /* domain of the longest stem */
    uint32_t            letters;        /* ASCII letters and '_' */
    uint32_t            digits;
    uint32_t            digit_runs;
    uint32_t            leads;          /* UTF-8 lead bytes */
} dg_word_t;


/*
 * Set up by dg_topic_begin(): a filter over the keys of the lexicon words
 * and stems; and by the first 4 bytes of a stem, a mask of the lengths of
 * the stems (bit l - DG_TOPIC_STEM_MIN), so that a word is looked up at
 * the few lengths that may be stems of it, mostly none.
 */
extern uint64_t  dg_topic_filter[];
extern uint16_t  dg_topic_lens[];


void dg_topic_begin(dg_topic_acc_t *acc);

/*
 * The domain of the lexicon word hashed h (DG_TOPIC_STOP for a stop
 * word), 0 if none; with stem set only stems are looked at: h is then
 * the hash of a proper prefix of the word.
 */
int dg_topic_lookup(uint64_t h, int stem);

/*
 * Hashes the word that starts at p (up to the first byte that is no word
 * byte, or end) and finds its longest stem; returns its length in bytes.
 */
size_t dg_word_hash(const unsigned char *p, const unsigned char *end,
    dg_word_t *w);

/* the bucket, 0 .. 4095 */
uint16_t dg_topic_end(const dg_topic_acc_t *acc);

/* name of a bucket's domain: "other" for min-hash buckets */
const char *dg_topic_name(uint16_t topic);

/* lexicon self-check: duplicate words (must be 0) */
unsigned dg_topic_check(void);


static inline uint64_t
dg_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;

    return x;
}


static inline uint64_t
dg_word_v(uint64_t state, uint64_t partial, size_t len)
{
    return state ^ partial ^ ((uint64_t) len << 56);
}


static inline unsigned
dg_word_key(uint64_t v)
{
    return (unsigned) ((v * DG_WORD_KEY_MUL) >> (64 - DG_TOPIC_FILTER_BITS));
}


/* 0: the key is certainly no lexicon word's or stem's */
static inline unsigned
dg_topic_maybe(unsigned key)
{
    return (dg_topic_filter[key >> 6] >> (key & 63)) & 1;
}


/* the lengths of the stems that may start with the 4 lowest bytes of b */
static inline uint32_t
dg_topic_stem_lens(uint64_t b)
{
    unsigned  key;

    key = (unsigned) (((b & 0xffffffff) * DG_WORD_KEY_MUL)
                      >> (64 - DG_TOPIC_LENS_BITS));

    return (uint32_t) dg_topic_lens[key] << DG_TOPIC_STEM_MIN;
}


/*
 * A word is complete: v its final value (h = dg_mix64(v)), len its
 * length, stem the domain of its longest stem (0: none).  Inline: it
 * runs for every word.
 */
static inline void
dg_topic_word(dg_topic_acc_t *acc, uint64_t v, uint64_t h, size_t len,
    int stem)
{
    int  d;

    if (dg_topic_maybe(dg_word_key(v))) {
        d = dg_topic_lookup(h, 0);

        if (d == DG_TOPIC_STOP) {
            return;
        }

        if (d != 0) {
            stem = d;
        }
    }

    if (stem != 0) {
        if (acc->hits[stem] == 0) {
            if (acc->ntouched < DG_TOPIC_TOUCHED) {
                acc->touched[acc->ntouched] = (uint8_t) stem;
            }

            acc->ntouched++;
        }

        if (acc->hits[stem] < UINT16_MAX) {
            acc->hits[stem]++;
        }

        acc->matched++;
        return;
    }

    if (len >= DG_TOPIC_STEM_MIN) {
        if (h < acc->minhash) {
            acc->minhash = h;
        }

        acc->content++;
    }
}


#endif /* DG_TOPIC_H */
