/*
 * distill-guard engine: per-request prompt features.
 *
 * Two tight passes over the user turn: a byte histogram (entropy), then
 * words, 8 bytes at a time, which feed the token estimate, the SimHash
 * shingles, the template head and tail, and the topic lexicon.  No
 * allocation: the state lives on the stack.
 *
 * Words are runs of ASCII letters, digits, '_' and non-ASCII bytes,
 * lower-cased, each run of digits folded to one '0' (so "Question 12"
 * and "question 3" are the same words), hashed as dg_topic.h says.
 * SimHash is over the 2-word shingles.
 *
 * Template fingerprints.  A campaign wraps varying content in a fixed
 * text; the fixed part is almost always cut off from the content by a
 * line break, a label colon ("Q:", "### Instruction:") or the end of a
 * sentence.  So the text is cut into segments at those boundaries; a
 * segment of fewer than DG_TMPL_SEG_MIN words that does not end in a
 * label colon is not a boundary of its own ("Hi,\n", "Thanks!") but
 * joins its neighbour (the next one for the head, the previous one for
 * the tail).  The head is the first segment, at most DG_TMPL_WORDS words;
 * the tail is the last segment, at most its last DG_TMPL_WORDS words.
 * A one-segment prompt gets fingerprints only when it has at least
 * 2 * DG_TMPL_WORDS words (head and tail must not overlap), so short
 * prompts have none.  N = 10 was chosen on the corpora (bench/features.md):
 * with 8, "I want you to act as a ..." prompts share heads; above 10,
 * fewer human prompts get a fingerprint and collisions barely drop.
 *
 * Token estimate (cl100k-like, about 4 bytes a token in English): a
 * word costs one token per 6 letters begun, one per 3 digits begun and
 * one per non-ASCII character; punctuation one per run plus one per two
 * further bytes; a line break run and a run of 2+ blanks one each.
 */

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "dg_features.h"
#include "dg_topic.h"


/* tunable at build time for tools/eval_features.c sweeps */
#ifndef DG_TMPL_WORDS
#define DG_TMPL_WORDS       10
#endif
#ifndef DG_TMPL_SEG_MIN
#define DG_TMPL_SEG_MIN     3
#endif
#define DG_TMPL_RING        16          /* >= DG_TMPL_WORDS, a power of 2 */

_Static_assert(DG_TMPL_WORDS <= DG_TMPL_RING, "the ring holds the tail");

#define DG_SEED_HEAD        0x6a09e667f3bcc908ULL
#define DG_SEED_TAIL        0xbb67ae8584caa73bULL
#define DG_SHINGLE_MUL      0x9e3779b97f4a7c15ULL
#define DG_ONES             0x0101010101010101ULL
#define DG_HIGHS            0x8080808080808080ULL
#define DG_CLOG_MAX         256
#define DG_CLOG_SHIFT       24

/* byte classes */
#define DG_C_SPACE          0
#define DG_C_LETTER         1
#define DG_C_DIGIT          2
#define DG_C_HIGH           3           /* non-ASCII, part of words */
#define DG_C_NL             4
#define DG_C_PUNCT          5
#define DG_C_STOP           6           /* . ? ! : end a segment */

/* what lies between two words: bits */
#define DG_GAP_NONE         0
#define DG_GAP_BREAK        1           /* line break, sentence end */
#define DG_GAP_LABEL        2           /* "word:" before a blank */


typedef struct {
    uint32_t            words;
    uint64_t            prev;           /* previous word, for shingles */
    unsigned            gap;            /* DG_GAP_* since the last word */

    /* SimHash: 8 bit counters packed 8 to a word, spilled every 255 */
    uint64_t            packed[8];
    uint32_t            pending;        /* shingles since the last spill */
    unsigned            spilled;

    /* template */
    uint64_t            head;
    uint32_t            head_n;
    uint32_t            head_end;       /* end of the head segment; 0: not
                                           found yet */
    uint32_t            seg_start;      /* tail: the current segment */
    uint32_t            qual_start;     /* tail: last full segment */
    unsigned            has_qual;

    /* token estimate */
    uint32_t            tokens;
    uint32_t            digits;
    uint32_t            digit_runs;
    uint32_t            punct;
    uint32_t            punct_runs;

    /* from here on not cleared: each is set before it is read */
    uint32_t            ones[64];       /* SimHash spills */
    uint64_t            ring[DG_TMPL_RING];     /* the last words */
    dg_topic_acc_t      topic;          /* dg_topic_begin() */
} dg_scan_t;


/* bit i of a byte b moved to bit 8 i of a 64-bit word */
#define DG_SPREAD(b)                                                          \
    (((((uint64_t) (b) & 0x7f) * 0x0002040810204081ULL)                       \
      & 0x0101010101010101ULL)                                                \
     | ((uint64_t) ((b) >> 7) << 56))
#define DG_SPREAD4(b)                                                         \
    DG_SPREAD(b), DG_SPREAD((b) + 1), DG_SPREAD((b) + 2), DG_SPREAD((b) + 3)
#define DG_SPREAD16(b)                                                        \
    DG_SPREAD4(b), DG_SPREAD4((b) + 4), DG_SPREAD4((b) + 8),                  \
    DG_SPREAD4((b) + 12)
#define DG_SPREAD64(b)                                                        \
    DG_SPREAD16(b), DG_SPREAD16((b) + 16), DG_SPREAD16((b) + 32),             \
    DG_SPREAD16((b) + 48)

static const uint64_t  dg_spread[256] = {
    DG_SPREAD64(0), DG_SPREAD64(64), DG_SPREAD64(128), DG_SPREAD64(192)
};


static const uint8_t  dg_class[256] = {
    /* control bytes: blanks, except the line feed */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /*  ! " # $ % & ' ( ) * + , - . / */
    0, 6, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 5,
    /* 0 - 9 : ; < = > ? */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 6, 5, 5, 5, 5, 6,
    /* @ A - O */
    5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* P - Z [ \ ] ^ _ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 1,
    /* ` a - o */
    5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* p - z { | } ~ DEL */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 0,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3
};


static uint32_t
dg_fold32(uint64_t x)
{
    uint32_t  v;

    v = (uint32_t) (x >> 32) ^ (uint32_t) x;

    return v ? v : 1;
}


static void
dg_simhash_spill(dg_scan_t *s)
{
    unsigned  i, j;

    if (!s->spilled) {
        memset(s->ones, 0, sizeof(s->ones));
        s->spilled = 1;
    }

    for (i = 0; i < 8; i++) {
        for (j = 0; j < 8; j++) {
            s->ones[i * 8 + j] += (s->packed[i] >> (j * 8)) & 0xff;
        }

        s->packed[i] = 0;
    }

    s->pending = 0;
}


static inline void
dg_simhash_add(dg_scan_t *s, uint64_t x)
{
    /* unrolled: -O2 keeps the loop, and it runs for every word */
    s->packed[0] += dg_spread[x & 0xff];
    s->packed[1] += dg_spread[(x >> 8) & 0xff];
    s->packed[2] += dg_spread[(x >> 16) & 0xff];
    s->packed[3] += dg_spread[(x >> 24) & 0xff];
    s->packed[4] += dg_spread[(x >> 32) & 0xff];
    s->packed[5] += dg_spread[(x >> 40) & 0xff];
    s->packed[6] += dg_spread[(x >> 48) & 0xff];
    s->packed[7] += dg_spread[x >> 56];

    if (++s->pending == 255) {
        dg_simhash_spill(s);
    }
}


static uint64_t
dg_simhash_end(dg_scan_t *s)
{
    unsigned  i;
    uint64_t  v, x, add, shingles;

    /* a shingle per word after the first; a lone word is one */
    shingles = (s->words > 1) ? s->words - 1 : s->words;
    v = 0;

    if (!s->spilled) {
        /*
         * Nothing spilled: the packed counters are the counts, and there
         * are fewer than 255.  Adding 127 - shingles / 2 to each byte (it
         * cannot carry) sets its top bit just when the count is a
         * majority; the multiply gathers the 8 top bits of a word.
         */
        add = DG_ONES * (127 - shingles / 2);

        for (i = 0; i < 8; i++) {
            x = ((s->packed[i] + add) >> 7) & DG_ONES;
            v |= ((x * 0x0102040810204080ULL) >> 56) << (i * 8);
        }

        return v;
    }

    dg_simhash_spill(s);

    for (i = 0; i < 64; i++) {
        if ((uint64_t) s->ones[i] * 2 > shingles) {
            v |= (uint64_t) 1 << i;
        }
    }

    return v;
}


/* a boundary between two words: closes a segment */
static inline void
dg_tmpl_boundary(dg_scan_t *s, unsigned gap)
{
    unsigned  label;

    label = (gap & DG_GAP_LABEL) != 0;

    if (s->head_end == 0 && (s->words >= DG_TMPL_SEG_MIN || label)) {
        s->head_end = s->words;
    }

    if (s->words - s->seg_start >= DG_TMPL_SEG_MIN || label) {
        s->qual_start = s->seg_start;
        s->has_qual = 1;
    }

    s->seg_start = s->words;
}


/* a word is complete: v its value and h its hash (dg_topic.h) */
static inline void
dg_word_end(dg_scan_t *s, uint64_t v, uint64_t h, size_t raw, int stem)
{
    if (s->gap != DG_GAP_NONE && s->words > 0) {
        dg_tmpl_boundary(s, s->gap);
    }

    s->gap = DG_GAP_NONE;

    dg_topic_word(&s->topic, v, h, raw, stem);

    if (s->words > 0) {
        dg_simhash_add(s, dg_mix64(s->prev * DG_SHINGLE_MUL + h));
    }

    if (s->head_end == 0 && s->head_n < DG_TMPL_WORDS) {
        s->head = dg_mix64(s->head ^ h);
        s->head_n++;
    }

    s->ring[s->words & (DG_TMPL_RING - 1)] = h;
    s->prev = h;
    s->words++;
}


/*
 * SWAR: 8 bytes of text in a 64-bit word, the first byte lowest, looked
 * at all at once: fewer instructions and branches than byte by byte.
 */

static inline uint64_t
dg_load8(const unsigned char *text, size_t i, size_t n)
{
    size_t    k;
    uint64_t  x;

    if (n - i >= 8) {
        memcpy(&x, text + i, 8);

    } else if (n >= 8) {
        /* the last 8 bytes, shifted: zero bytes are no word bytes */
        memcpy(&x, text + n - 8, 8);

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        x = __builtin_bswap64(x);
#endif

        return x >> (8 * (8 - (n - i)));

    } else {
        x = 0;

        for (k = 0; i + k < n; k++) {
            x |= (uint64_t) text[i + k] << (8 * k);
        }

        return x;
    }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif

    return x;
}


/* top bit of each byte of t (all bytes < 0x80) that is in lo .. hi */
static inline uint64_t
dg_swar_in(uint64_t t, unsigned lo, unsigned hi)
{
    return (t + DG_ONES * (0x80 - lo)) & ~(t + DG_ONES * (0x7f - hi))
           & DG_HIGHS;
}


/* top bit of each word byte: letters, digits, '_', non-ASCII */
static inline uint64_t
dg_swar_word(uint64_t x)
{
    uint64_t  t;

    t = x & ~DG_HIGHS;

    return (x & DG_HIGHS) | dg_swar_in(t | DG_ONES * 0x20, 'a', 'z')
           | dg_swar_in(t, '0', '9') | dg_swar_in(t, '_', '_');
}


/* bytes set in a mask of top bits */
static inline unsigned
dg_swar_count(uint64_t m)
{
    return (unsigned) (((m >> 7) * DG_ONES) >> 56);
}


static void
dg_tmpl_end(dg_scan_t *s, dg_features_t *f)
{
    uint32_t  w, h0, ts, t, i;
    uint64_t  x;

    w = s->words;

    if (w == 0) {
        return;
    }

    h0 = s->head_end ? s->head_end : w;

    /* the last segment, or the last full one the short tail joins */
    if (w - s->seg_start >= DG_TMPL_SEG_MIN || (s->gap & DG_GAP_LABEL)) {
        ts = s->seg_start;

    } else {
        ts = s->has_qual ? s->qual_start : 0;
    }

    t = (w > DG_TMPL_WORDS) ? w - DG_TMPL_WORDS : 0;

    if (ts > t) {
        t = ts;
    }

    if (s->head_n > t) {
        if (h0 >= w) {
            return;             /* one segment, too short for two ends */
        }

        /* the tail joined the head segment: it starts after it */
        t = h0;

        if (w > DG_TMPL_WORDS && w - DG_TMPL_WORDS > t) {
            t = w - DG_TMPL_WORDS;
        }
    }

    x = DG_SEED_TAIL;

    for (i = t; i < w; i++) {
        x = dg_mix64(x ^ s->ring[i & (DG_TMPL_RING - 1)]);
    }

    f->template_head = dg_fold32(s->head);
    f->template_tail = dg_fold32(x);
}


/*
 * c * log2(c) * 2^DG_CLOG_SHIFT for the small counts, set up once:
 * log2() per byte value was most of the entropy cost, and integer sums
 * do not wait on each other as double ones do.  Exact for the counts
 * that are powers of two.
 */
static uint64_t         dg_clog2c[DG_CLOG_MAX];
static pthread_once_t   dg_clog_once = PTHREAD_ONCE_INIT;


static void
dg_clog_init(void)
{
    unsigned  c;

    for (c = 1; c < DG_CLOG_MAX; c++) {
        dg_clog2c[c] = (uint64_t) (c * log2(c) * (1 << DG_CLOG_SHIFT) + 0.5);
    }
}


static uint32_t
dg_entropy_milli(const uint32_t *hist, size_t n)
{
    double    big, e;
    uint64_t  small;
    unsigned  i, j;

    if (n == 0) {
        return 0;
    }

    pthread_once(&dg_clog_once, dg_clog_init);

    /*
     * H = log2 n - sum(c log2 c) / n.  Text leaves most groups of 8 byte
     * values empty; below DG_CLOG_MAX bytes no count needs log2().
     */
    small = 0;
    big = 0;

    for (i = 0; i < 256; i += 8) {
        if ((hist[i] | hist[i + 1] | hist[i + 2] | hist[i + 3] | hist[i + 4]
             | hist[i + 5] | hist[i + 6] | hist[i + 7]) == 0)
        {
            continue;
        }

        if (n < DG_CLOG_MAX) {
            for (j = i; j < i + 8; j++) {
                small += dg_clog2c[hist[j]];
            }

            continue;
        }

        for (j = i; j < i + 8; j++) {
            if (hist[j] < DG_CLOG_MAX) {
                small += dg_clog2c[hist[j]];

            } else {
                big += hist[j] * log2(hist[j]);
            }
        }
    }

    e = log2((double) n)
        - ((double) small / (1 << DG_CLOG_SHIFT) + big) / n;

    if (e <= 0) {
        return 0;
    }

    return (uint32_t) (e * 1000 + 0.5);
}


/* the bytes between two words: boundaries and tokens */
static void
dg_gap_byte(dg_scan_t *s, const unsigned char *text, size_t i, size_t n)
{
    unsigned  c, next;

    c = text[i];

    switch (dg_class[c]) {

    case DG_C_NL:
        s->gap |= DG_GAP_BREAK;

        if (i == 0 || text[i - 1] != '\n') {
            s->tokens++;
        }

        break;

    case DG_C_STOP:
        next = (i + 1 < n) ? dg_class[text[i + 1]] : DG_C_SPACE;

        if (next == DG_C_SPACE || next == DG_C_NL) {
            s->gap |= (c == ':') ? DG_GAP_LABEL : DG_GAP_BREAK;
        }

        /* fall through */

    case DG_C_PUNCT:
        s->punct++;

        if (i == 0 || dg_class[text[i - 1]] < DG_C_PUNCT) {
            s->punct_runs++;
        }

        break;

    default:    /* blank: a run of 2+ spaces is a token */
        if (c == ' ' && i >= 1 && text[i - 1] == ' '
            && (i < 2 || text[i - 2] != ' '))
        {
            s->tokens++;
        }

        break;
    }
}


/*
 * One word starting at text[i], 8 bytes at a time; words with digits
 * (folded) go to dg_word_hash().  Returns the index after the word.
 */
static size_t
dg_word(dg_scan_t *s, const unsigned char *text, size_t i, size_t n,
    uint64_t x, uint64_t wm)
{
    static const uint64_t  keep[9] = {
        0, 0xff, 0xffff, 0xffffff, 0xffffffffULL, 0xffffffffffULL,
        0xffffffffffffULL, 0xffffffffffffffULL, 0xffffffffffffffffULL
    };

    int        stem, d;
    size_t     start, len;
    unsigned   blen, q, letters, leads;
    uint32_t   lens, hits;
    uint64_t   b, state, v, up;
    dg_word_t  w;

    start = i;
    len = 0;
    state = DG_WORD_SEED;
    stem = 0;
    letters = 0;
    leads = 0;
    lens = 0;

    for ( ;; ) {
        b = ~wm & DG_HIGHS;
        blen = b ? (unsigned) __builtin_ctzll(b) >> 3 : 8;
        b = x & keep[blen];

        if (dg_swar_in(b & ~DG_HIGHS, '0', '9') & ~b) {
            goto digits;
        }

        up = dg_swar_in(b & ~DG_HIGHS, 'A', 'Z') & ~b;
        b |= up >> 2;
        letters += blen - dg_swar_count(b & DG_HIGHS);
        leads += dg_swar_count(b & (b << 1) & DG_HIGHS);

        /*
         * Stems: the proper prefixes of the lengths that stems starting
         * with the first 4 bytes have, the longest first.
         */
        if (len == 0) {
            lens = dg_topic_stem_lens(b);
        }

        hits = (len <= DG_TOPIC_STEM_MAX) ? (lens >> len) & ((1u << blen) - 1)
                                          : 0;

        while (hits) {
            q = 31 - __builtin_clz(hits);
            hits &= ~(1u << q);
            v = dg_word_v(state, b & keep[q], len + q);

            if (dg_topic_maybe(dg_word_key(v))
                && (d = dg_topic_lookup(dg_mix64(v), 1)) != 0)
            {
                stem = d;
                break;
            }
        }

        len += blen;
        i += blen;

        if (blen < 8) {
            break;
        }

        state = dg_mix64(state ^ b);
        b = 0;

        if (i == n) {
            break;
        }

        x = dg_load8(text, i, n);
        wm = dg_swar_word(x);

        if (!(wm & 0x80)) {
            break;
        }
    }

    v = dg_word_v(state, b, len);
    s->tokens += (letters + 5) / 6 + leads;
    dg_word_end(s, v, dg_mix64(v), i - start, stem);

    return i;

digits:

    len = dg_word_hash(text + start, text + n, &w);

    s->tokens += (w.letters + 5) / 6 + w.leads;
    s->digits += w.digits;
    s->digit_runs += w.digit_runs;
    dg_word_end(s, w.v, w.hash, len, w.stem);

    return start + len;
}


/* one pass of the word scanner over a text */

static void
dg_scan_text(dg_scan_t *s, const unsigned char *text, size_t n)
{
    size_t    i, g;
    uint64_t  x, wm;

    memset(s, 0, offsetof(dg_scan_t, ones));

    s->head = DG_SEED_HEAD;
    dg_topic_begin(&s->topic);

    i = 0;

    while (i < n) {
        x = dg_load8(text, i, n);
        wm = dg_swar_word(x);

        if (wm & 0x80) {
            i = dg_word(s, text, i, n, x, wm);
            continue;
        }

        /* the gap up to the next word byte, mostly one blank */
        g = wm ? (size_t) __builtin_ctzll(wm) >> 3 : 8;
        g = (g < n - i) ? i + g : n;

        do {
            dg_gap_byte(s, text, i, n);
        } while (++i < g);
    }
}


void
dg_features_compute(dg_features_t *f, const dg_prompt_t *p)
{
    size_t                i, n;
    uint32_t              hist[256];
    dg_scan_t             s;
    dg_features_t         conv;
    const unsigned char  *text;

    memset(f, 0, sizeof(dg_features_t));
    memset(&conv, 0, sizeof(dg_features_t));
    memset(hist, 0, sizeof(hist));

    text = (const unsigned char *) p->user.data;
    n = p->user.len;

    for (i = 0; i < n; i++) {
        hist[text[i]]++;
    }

    dg_scan_text(&s, text, n);

    if (s.words == 1) {
        dg_simhash_add(&s, dg_mix64(s.prev));
    }

    f->bytes = (uint32_t) (n > UINT32_MAX ? UINT32_MAX : n);
    f->tokens = s.tokens + s.digit_runs + (s.digits - s.digit_runs) / 3
                + s.punct_runs + (s.punct - s.punct_runs) / 2;
    f->entropy_milli = dg_entropy_milli(hist, n);
    f->simhash = dg_simhash_end(&s);
    f->topic = dg_topic_end(&s.topic);

    dg_tmpl_end(&s, f);

    f->topic_last = f->topic;
    f->sent = dg_text_fp(p->user.data, p->user.len);

    /*
     * A conversation is about what it opened with: "why?" or "make it
     * shorter" carry no topic of their own.  Taking every turn's topic
     * from the first user turn keeps a person holding a few
     * conversations on a few topics, however many follow-ups they send.
     * The window script takes this topic only when the history is
     * verified or fabricated: topic_last is kept for the others.  The
     * first turn's template is the frame the conversation opened with.
     */
    if (!p->one_user && p->first_user.len > 0) {
        dg_scan_text(&s, (const unsigned char *) p->first_user.data,
                     p->first_user.len);
        f->topic = dg_topic_end(&s.topic);

        if (p->has_prior) {
            dg_tmpl_end(&s, &conv);
            f->conv_head = conv.template_head;
            f->conv_tail = conv.template_tail;
        }

    } else if (p->one_user && p->has_prior) {
        f->conv_head = f->template_head;
        f->conv_tail = f->template_tail;
    }

    f->opening = p->one_user ? f->sent
                             : dg_text_fp(p->first_user.data,
                                          p->first_user.len);

    /* the prior turn is most often the first one: hashed once */
    if (p->has_prior) {
        f->prior = p->prior_first ? f->opening
                                  : dg_text_fp(p->prior.data, p->prior.len);
        f->prior_first = p->prior_first;
    }

    f->turns = p->turns;
    f->format = p->format;
    f->fallback = p->fallback;
    f->has_system = (p->system.len > 0);

    f->cot = dg_cot_count(p->user.data, p->user.len);

    if (p->system.len > 0) {
        f->cot += dg_cot_count(p->system.data, p->system.len);
    }
}


uint32_t
dg_text_fp(const char *text, size_t len)
{
    size_t          i;
    uint64_t        h;
    unsigned char   c;

    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < len; i++) {
        c = (unsigned char) text[i];

        if (c <= ' ') {
            continue;
        }

        h = (h ^ c) * 0x100000001b3ULL;
    }

    h = dg_mix64(h);

    return (uint32_t) (h >> 32) ? (uint32_t) (h >> 32) : 1;
}


/* JSON output: appends clip at end, which leaves room for the NUL */

typedef struct {
    char               *p;
    char               *end;
} dg_out_t;


static void
dg_out_str(dg_out_t *o, const char *s, size_t len)
{
    if (len > (size_t) (o->end - o->p)) {
        len = o->end - o->p;
    }

    memcpy(o->p, s, len);
    o->p += len;
}


static void
dg_out_cstr(dg_out_t *o, const char *s)
{
    dg_out_str(o, s, strlen(s));
}


static void
dg_out_uint(dg_out_t *o, uint64_t v)
{
    char  tmp[20], *p;

    p = tmp + sizeof(tmp);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    dg_out_str(o, p, tmp + sizeof(tmp) - p);
}


/* digits hex digits of v, lower case; "" when digits is 0 */
static void
dg_out_hex(dg_out_t *o, uint64_t v, unsigned digits)
{
    static const char  hex[] = "0123456789abcdef";

    char      tmp[16];
    unsigned  i;

    for (i = 0; i < digits; i++) {
        tmp[digits - 1 - i] = hex[(v >> (4 * i)) & 0xf];
    }

    dg_out_cstr(o, "\"");
    dg_out_str(o, tmp, digits);
    dg_out_cstr(o, "\"");
}


size_t
dg_features_json(const dg_features_t *f, const char *window, char *buf,
    size_t size)
{
    char      frac[3];
    dg_out_t  o;

    if (size == 0) {
        return 0;
    }

    o.p = buf;
    o.end = buf + size - 1;

    dg_out_cstr(&o, "{\"bytes\":");
    dg_out_uint(&o, f->bytes);
    dg_out_cstr(&o, ",\"tokens\":");
    dg_out_uint(&o, f->tokens);

    dg_out_cstr(&o, ",\"entropy\":");
    dg_out_uint(&o, f->entropy_milli / 1000);
    frac[0] = (char) ('0' + f->entropy_milli / 100 % 10);
    frac[1] = (char) ('0' + f->entropy_milli / 10 % 10);
    frac[2] = (char) ('0' + f->entropy_milli % 10);
    dg_out_cstr(&o, ".");
    dg_out_str(&o, frac, 3);

    dg_out_cstr(&o, ",\"simhash\":");
    dg_out_hex(&o, f->simhash, 16);
    dg_out_cstr(&o, ",\"template\":");
    dg_out_hex(&o, f->template_head, f->template_head ? 8 : 0);
    dg_out_cstr(&o, ",\"template_tail\":");
    dg_out_hex(&o, f->template_tail, f->template_tail ? 8 : 0);

    dg_out_cstr(&o, ",\"topic\":");
    dg_out_uint(&o, f->topic);
    dg_out_cstr(&o, ",\"turns\":");
    dg_out_uint(&o, f->turns);
    dg_out_cstr(&o, ",\"cot\":");
    dg_out_uint(&o, f->cot);
    dg_out_cstr(&o, ",\"format\":\"");
    dg_out_cstr(&o, dg_format_name(f->format));
    dg_out_cstr(&o, f->truncated ? "\",\"truncated\":true"
                                 : "\",\"truncated\":false");

    if (window != NULL) {
        dg_out_cstr(&o, ",\"window\":");
        dg_out_cstr(&o, window);
    }

    dg_out_cstr(&o, "}");

    *o.p = '\0';

    return o.p - buf;
}
