/*
 * distill-guard engine: a strict, zero-copy, non-allocating JSON scanner
 * (see dg_json.h).
 *
 * Nothing recurses: the open containers are a depth and a bit mask of
 * which of them are objects, and skipping a value is a loop over the
 * same cursor calls a caller makes.
 *
 * Strings are most of a request body, so their bytes are tested 8 at a
 * time (one 64-bit word) for the only bytes that need a look: a quote, a
 * backslash, a control character or a non-ASCII byte.  A trusted cursor
 * (in a document already read whole) only looks for quotes and
 * backslashes.
 *
 * The limits that go beyond RFC 8259 are jansson's (see dg_json.h): the
 * reference extractor parses with jansson and both must reject exactly
 * the same bodies.
 */

#include <stdlib.h>
#include <string.h>

#include "dg_json.h"


#define DG_JSON_ONES        0x0101010101010101ULL
#define DG_JSON_HIGHS       0x8080808080808080ULL

/*
 * Exponents are clamped to this: more than the digits of any body can
 * make up for, and far from overflowing an int64 once they are added.
 */
#define DG_JSON_EXP_MAX     1000000000000000LL

#define dg_json_digit(c)    ((unsigned) ((c) - '0') < 10)

/*
 * The first flagged byte of a word is at its lowest set bit where the
 * word's low end is the first byte in memory; elsewhere the byte loop
 * after the word loop finds it.
 */

#if defined(__GNUC__) && defined(__BYTE_ORDER__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define dg_json_ctz64(m)    ((unsigned) __builtin_ctzll(m))
#else
#define dg_json_ctz64(m)    0
#endif


static const unsigned char *dg_json_ws(const unsigned char *p,
    const unsigned char *end);
static void dg_json_value_init(dg_json_value_t *v);
static int dg_json_fail(dg_json_t *js, dg_json_value_t *v);
static int dg_json_item(dg_json_t *js, unsigned object,
    const unsigned char **pp);
static int dg_json_close_to(dg_json_t *js, unsigned depth);
static int dg_json_literal(dg_json_t *js, const unsigned char *p,
    const char *lit, size_t n, dg_json_type_t type, dg_json_value_t *v);
static int dg_json_string(dg_json_t *js, const unsigned char *p,
    dg_json_value_t *v);
static int dg_json_string_trusted(dg_json_t *js, const unsigned char *p,
    dg_json_value_t *v);
static size_t dg_json_escape(const unsigned char *p,
    const unsigned char *end, unsigned char *out, size_t *n);
static int32_t dg_json_hex4(const unsigned char *p);
static size_t dg_json_utf8(const unsigned char *p, const unsigned char *end);
static int dg_json_number(dg_json_t *js, const unsigned char *p,
    dg_json_value_t *v);
static int dg_json_overflows(const unsigned char *p,
    const unsigned char *end);
static int64_t dg_json_exponent(const unsigned char *p,
    const unsigned char *end);


/*
 * strtod() overflows, and jansson gives up, from DBL_MAX + ulp / 2 =
 * (2^54 - 1) * 2^970 on (round to nearest even rounds that tie up):
 * this 309-digit integer.
 */

static const char  dg_json_dbl_limit[] =
    "179769313486231580793728971405303415079934132710037826936173778980"
    "444968292764750946649017977587207096330286416692887910946555547851"
    "940402630657488671505820681908902000708383676273854845817711531764"
    "475730270069855571366959622842914819860834936475292719074168444365"
    "510704342711559699508093042880177904174497792";

static const double  dg_json_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};


void
dg_json_init(dg_json_t *js, const char *data, size_t len)
{
    js->pos = (const unsigned char *) data;
    js->end = (len != 0) ? js->pos + len : js->pos;
    js->objects = 0;
    js->depth = 0;
    js->first = 0;
    js->error = 0;
    js->trusted = 0;
}


void
dg_json_trust(dg_json_t *js)
{
    js->trusted = 1;
}


static const unsigned char *
dg_json_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


int
dg_json_next(dg_json_t *js, dg_json_value_t *v)
{
    const unsigned char  *p;

    dg_json_value_init(v);

    if (js->error) {
        return -1;
    }

    /* a value is read: its container is no longer at its first place */

    js->first = 0;

    p = dg_json_ws(js->pos, js->end);
    if (p == js->end) {
        return dg_json_fail(js, v);
    }

    v->data = (const char *) p;

    switch (*p) {

    case '"':
        if (js->trusted) {
            return dg_json_string_trusted(js, p, v);
        }

        return dg_json_string(js, p, v);

    case '{':
    case '[':
        if (js->depth >= DG_JSON_MAX_DEPTH) {
            return dg_json_fail(js, v);
        }

        if (*p == '{') {
            js->objects |= (uint64_t) 1 << js->depth;
            v->type = DG_JSON_OBJECT;

        } else {
            js->objects &= ~((uint64_t) 1 << js->depth);
            v->type = DG_JSON_ARRAY;
        }

        v->raw_len = 1;
        js->depth++;
        js->first = 1;
        js->pos = p + 1;

        return 0;

    case 't':
        return dg_json_literal(js, p, "true", 4, DG_JSON_TRUE, v);

    case 'f':
        return dg_json_literal(js, p, "false", 5, DG_JSON_FALSE, v);

    case 'n':
        return dg_json_literal(js, p, "null", 4, DG_JSON_NULL, v);

    default:
        if (*p == '-' || dg_json_digit(*p)) {
            return dg_json_number(js, p, v);
        }

        return dg_json_fail(js, v);
    }
}


/*
 * The step that starts every item of a container, which must be of the
 * kind asked for (object or array): 0 when it closes here, 1 with *pp
 * past the comma that separates items, -1 on an error.
 */

static int
dg_json_item(dg_json_t *js, unsigned object, const unsigned char **pp)
{
    const unsigned char  *p;

    if (js->error || js->depth == 0
        || ((js->objects >> (js->depth - 1)) & 1) != object)
    {
        return -1;
    }

    p = dg_json_ws(js->pos, js->end);
    if (p == js->end) {
        return -1;
    }

    if (*p == (object ? '}' : ']')) {
        js->depth--;
        js->first = 0;
        js->pos = p + 1;
        return 0;
    }

    if (!js->first) {
        if (*p != ',') {
            return -1;
        }

        p++;
    }

    *pp = p;

    return 1;
}


int
dg_json_member(dg_json_t *js, dg_json_value_t *key)
{
    int                   rc;
    const unsigned char  *p;

    dg_json_value_init(key);

    rc = dg_json_item(js, 1, &p);
    if (rc <= 0) {
        return rc == 0 ? 0 : dg_json_fail(js, key);
    }

    p = dg_json_ws(p, js->end);

    if (p == js->end || *p != '"') {
        return dg_json_fail(js, key);
    }

    js->first = 0;

    if ((js->trusted ? dg_json_string_trusted(js, p, key)
                     : dg_json_string(js, p, key))
        != 0)
    {
        return -1;
    }

    p = dg_json_ws(js->pos, js->end);
    if (p == js->end || *p != ':') {
        return dg_json_fail(js, key);
    }

    js->pos = p + 1;

    return 1;
}


int
dg_json_element(dg_json_t *js)
{
    int                   rc;
    const unsigned char  *p;

    /* "[," and "[1,]" are caught by dg_json_next(): no value there */

    rc = dg_json_item(js, 0, &p);
    if (rc <= 0) {
        return rc == 0 ? 0 : dg_json_fail(js, NULL);
    }

    js->first = 0;
    js->pos = p;

    return 1;
}


int
dg_json_skip(dg_json_t *js)
{
    unsigned         depth;
    dg_json_value_t  v;

    depth = js->depth;

    if (dg_json_next(js, &v) != 0) {
        return -1;
    }

    return dg_json_close_to(js, depth);
}


int
dg_json_leave(dg_json_t *js)
{
    if (js->error || js->depth == 0) {
        return dg_json_fail(js, NULL);
    }

    return dg_json_close_to(js, js->depth - 1);
}


int
dg_json_read(dg_json_t *js, dg_json_value_t *v)
{
    if (dg_json_next(js, v) != 0) {
        return -1;
    }

    if (v->type == DG_JSON_OBJECT || v->type == DG_JSON_ARRAY) {
        return dg_json_close_to(js, js->depth - 1);
    }

    return 0;
}


int
dg_json_end(dg_json_t *js)
{
    if (js->error || js->depth != 0) {
        return -1;
    }

    if (dg_json_ws(js->pos, js->end) != js->end) {
        return dg_json_fail(js, NULL);
    }

    return 0;
}


/* reads on until only depth containers are open: the skip loop */

static int
dg_json_close_to(dg_json_t *js, unsigned depth)
{
    int              rc;
    dg_json_value_t  v;

    while (js->depth > depth) {

        if ((js->objects >> (js->depth - 1)) & 1) {
            rc = dg_json_member(js, &v);

        } else {
            rc = dg_json_element(js);
        }

        if (rc < 0) {
            return -1;
        }

        if (rc == 1 && dg_json_next(js, &v) != 0) {
            return -1;
        }
    }

    return 0;
}


static void
dg_json_value_init(dg_json_value_t *v)
{
    v->type = DG_JSON_ERROR;
    v->data = NULL;
    v->raw_len = 0;
    v->len = 0;
    v->integer = 0;
    v->escaped = 0;
    v->is_int = 0;
    v->delimited = 0;
}


static int
dg_json_fail(dg_json_t *js, dg_json_value_t *v)
{
    js->error = 1;

    if (v != NULL) {
        v->type = DG_JSON_ERROR;
    }

    return -1;
}


static int
dg_json_literal(dg_json_t *js, const unsigned char *p, const char *lit,
    size_t n, dg_json_type_t type, dg_json_value_t *v)
{
    if ((size_t) (js->end - p) < n || memcmp(p, lit, n) != 0) {
        return dg_json_fail(js, v);
    }

    v->type = type;
    v->raw_len = n;
    js->pos = p + n;

    return 0;
}


/*
 * p is at the opening quote.  Decoded bytes are never more than the
 * escaped ones: len is raw_len minus what each escape saves.
 */


/* a string value from its opening quote's end to its closing quote */

static int
dg_json_string_end(dg_json_t *js, dg_json_value_t *v,
    const unsigned char *start, const unsigned char *p, size_t saved,
    unsigned escaped)
{
    v->type = DG_JSON_STRING;
    v->data = (const char *) start;
    v->raw_len = p - start;
    v->len = v->raw_len - saved;
    v->escaped = escaped;

    js->pos = p + 1;

    return 0;
}


static int
dg_json_string(dg_json_t *js, const unsigned char *p, dg_json_value_t *v)
{
    size_t                k, n, saved;
    uint64_t              w, q, b, m;
    unsigned              escaped;
    unsigned char         c, tmp[4];
    const unsigned char  *start, *end;

    end = js->end;
    start = ++p;
    saved = 0;
    escaped = 0;

    for ( ;; ) {

        /*
         * The top bit of a byte of m is set where the byte is '"' or '\\'
         * (x - 1 sets the top bit of a zero x = w ^ c, whose own is
         * clear), or < 0x20, or >= 0x80.  A borrow may set it in a later
         * byte too, but never before the first byte rightly flagged: the
         * lowest bit set is a byte to look at.
         */

        while (end - p >= 8) {
            memcpy(&w, p, 8);

            q = w ^ (DG_JSON_ONES * '"');
            b = w ^ (DG_JSON_ONES * '\\');

            m = (((q - DG_JSON_ONES) & ~q) | ((b - DG_JSON_ONES) & ~b)
                 | w | ((w - DG_JSON_ONES * 0x20) & ~w)) & DG_JSON_HIGHS;

            if (m != 0) {
                p += dg_json_ctz64(m) >> 3;
                break;
            }

            p += 8;
        }

        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"'
               && *p != '\\')
        {
            p++;
        }

        if (p == end) {
            return dg_json_fail(js, v);
        }

        c = *p;

        if (c == '"') {
            break;
        }

        if (c == '\\') {
            k = dg_json_escape(p, end, tmp, &n);
            if (k == 0) {
                return dg_json_fail(js, v);
            }

            saved += k - n;
            escaped = 1;
            p += k;
            continue;
        }

        if (c < 0x20) {
            return dg_json_fail(js, v);
        }

        k = dg_json_utf8(p, end);
        if (k == 0) {
            return dg_json_fail(js, v);
        }

        p += k;
    }

    return dg_json_string_end(js, v, start, p, saved, escaped);
}


/*
 * The same in a document already checked: the end quote is the first one
 * not escaped.  Short strings (keys, roles) end in their first word;
 * longer ones are left to memchr(), much faster on long text.  The quote
 * found is kept while the escapes before it are stepped over, so a string
 * of many escapes is still one pass.
 */

static int
dg_json_string_trusted(dg_json_t *js, const unsigned char *p,
    dg_json_value_t *v)
{
    size_t                k, n, saved;
    uint64_t              w, q, b, m;
    unsigned              escaped;
    unsigned char         tmp[4];
    const unsigned char  *start, *end, *qp, *bp;

    end = js->end;
    start = ++p;
    saved = 0;
    escaped = 0;

    if (end - p >= 8) {
        memcpy(&w, p, 8);

        q = w ^ (DG_JSON_ONES * '"');
        b = w ^ (DG_JSON_ONES * '\\');

        m = (((q - DG_JSON_ONES) & ~q) | ((b - DG_JSON_ONES) & ~b))
            & DG_JSON_HIGHS;

        if (m != 0) {
            qp = p + (dg_json_ctz64(m) >> 3);

            if (*qp == '"') {
                p = qp;
                goto done;
            }
        }
    }

    qp = NULL;

    for ( ;; ) {
        if (qp == NULL || qp < p) {
            qp = memchr(p, '"', end - p);
            if (qp == NULL) {
                return dg_json_fail(js, v);
            }
        }

        bp = memchr(p, '\\', qp - p);
        if (bp == NULL) {
            p = qp;
            break;
        }

        k = dg_json_escape(bp, end, tmp, &n);
        if (k == 0) {
            return dg_json_fail(js, v);
        }

        saved += k - n;
        escaped = 1;
        p = bp + k;
    }

done:

    return dg_json_string_end(js, v, start, p, saved, escaped);
}


/*
 * Decodes the escape at p (*p is '\\') into out as UTF-8, n bytes; returns
 * the bytes it takes in the source (2, 6 or 12 for a surrogate pair), or
 * 0 if it is malformed, a lone surrogate or "\u0000": jansson refuses a
 * NUL without JSON_ALLOW_NUL, and the text goes on as C strings.
 */

static size_t
dg_json_escape(const unsigned char *p, const unsigned char *end,
    unsigned char *out, size_t *n)
{
    int32_t  cp, lo;

    if (end - p < 2) {
        return 0;
    }

    *n = 1;

    switch (p[1]) {

    case '"':
    case '\\':
    case '/':
        out[0] = p[1];
        return 2;

    case 'b':
        out[0] = '\b';
        return 2;

    case 'f':
        out[0] = '\f';
        return 2;

    case 'n':
        out[0] = '\n';
        return 2;

    case 'r':
        out[0] = '\r';
        return 2;

    case 't':
        out[0] = '\t';
        return 2;

    case 'u':
        break;

    default:
        return 0;
    }

    if (end - p < 6) {
        return 0;
    }

    cp = dg_json_hex4(p + 2);

    if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff)) {
        return 0;
    }

    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
            return 0;
        }

        lo = dg_json_hex4(p + 8);
        if (lo < 0xdc00 || lo > 0xdfff) {
            return 0;
        }

        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);

        out[0] = (unsigned char) (0xf0 | (cp >> 18));
        out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (unsigned char) (0x80 | (cp & 0x3f));
        *n = 4;

        return 12;
    }

    if (cp < 0x80) {
        out[0] = (unsigned char) cp;

    } else if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        *n = 2;

    } else {
        out[0] = (unsigned char) (0xe0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        *n = 3;
    }

    return 6;
}


/* 4 hex digits, or -1 */

static int32_t
dg_json_hex4(const unsigned char *p)
{
    int       i;
    int32_t   v;
    unsigned  c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (dg_json_digit(c)) {
            c -= '0';

        } else {
            c |= 0x20;

            if (c < 'a' || c > 'f') {
                return -1;
            }

            c -= 'a' - 10;
        }

        v = (v << 4) | (int32_t) c;
    }

    return v;
}


/*
 * The length of the well-formed UTF-8 sequence at p (*p >= 0x80), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF.  The second
 * byte's range depends on the first (Unicode table 3-7).
 */

static size_t
dg_json_utf8(const unsigned char *p, const unsigned char *end)
{
    size_t         i, n;
    unsigned char  c, lo, hi;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c < 0xc2) {
        return 0;

    } else if (c < 0xe0) {
        n = 2;

    } else if (c < 0xf0) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c < 0xf5) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}


/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and then jansson's
 * limits: an integer must fit an int64, a real must not overflow a
 * double.  "01" is refused here rather than as two values.
 */

static int
dg_json_number(dg_json_t *js, const unsigned char *p, dg_json_value_t *v)
{
    int                   neg, real, over;
    unsigned              d;
    uint64_t              u, max;
    const unsigned char  *start, *end;

    end = js->end;
    start = p;

    neg = (*p == '-');
    p += neg;

    if (p == end || !dg_json_digit(*p)) {
        return dg_json_fail(js, v);
    }

    u = 0;
    over = 0;

    if (*p == '0') {
        p++;

        if (p < end && dg_json_digit(*p)) {
            return dg_json_fail(js, v);
        }

    } else {
        do {
            d = *p++ - '0';

            if (u > (UINT64_MAX - d) / 10) {
                over = 1;

            } else {
                u = u * 10 + d;
            }

        } while (p < end && dg_json_digit(*p));
    }

    real = 0;

    if (p < end && *p == '.') {
        real = 1;
        p++;

        if (p == end || !dg_json_digit(*p)) {
            return dg_json_fail(js, v);
        }

        while (p < end && dg_json_digit(*p)) {
            p++;
        }
    }

    if (p < end && (*p | 0x20) == 'e') {
        real = 1;
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || !dg_json_digit(*p)) {
            return dg_json_fail(js, v);
        }

        while (p < end && dg_json_digit(*p)) {
            p++;
        }
    }

    if (!real) {
        max = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

        if (over || u > max) {
            return dg_json_fail(js, v);
        }

        if (!neg) {
            v->integer = (int64_t) u;

        } else if (u == (uint64_t) INT64_MAX + 1) {
            v->integer = INT64_MIN;

        } else {
            v->integer = -(int64_t) u;
        }

    } else if (dg_json_overflows(start + neg, p)) {
        return dg_json_fail(js, v);
    }

    v->type = DG_JSON_NUMBER;
    v->raw_len = p - start;
    v->is_int = !real;
    v->delimited = (p < end);

    js->pos = p;

    return 0;
}


/*
 * Whether the real number p..end (no sign) rounds to infinity.  It is
 * 0.S * 10^e with S its significant digits; the limit is 0.L * 10^309.
 */

static int
dg_json_overflows(const unsigned char *p, const unsigned char *end)
{
    size_t                i;
    int64_t               e;
    const unsigned char  *q, *sig;

    e = 0;

    if (*p != '0') {
        sig = p;

        for (q = p; q < end && dg_json_digit(*q); q++) {
            e++;
        }

    } else {
        sig = NULL;
        q = p + 1;

        if (q < end && *q == '.') {
            for (q++; q < end && *q == '0'; q++) {
                e--;
            }

            if (q < end && dg_json_digit(*q)) {
                sig = q;
            }
        }

        if (sig == NULL) {
            return 0;
        }
    }

    e += dg_json_exponent(q, end);

    if (e != 309) {
        return e > 309;
    }

    i = 0;

    for (q = sig; q < end && i < sizeof(dg_json_dbl_limit) - 1; q++) {
        if (*q == '.') {
            continue;
        }

        if (!dg_json_digit(*q)) {
            break;
        }

        if (*q != (unsigned char) dg_json_dbl_limit[i]) {
            return *q > (unsigned char) dg_json_dbl_limit[i];
        }

        i++;
    }

    /* equal so far: shorter is below the limit, whose last digit is 2 */

    return i == sizeof(dg_json_dbl_limit) - 1;
}


/* the exponent of the number token that p is inside of, clamped; or 0 */

static int64_t
dg_json_exponent(const unsigned char *p, const unsigned char *end)
{
    int      neg;
    int64_t  x;

    while (p < end && (*p | 0x20) != 'e') {
        p++;
    }

    if (p == end) {
        return 0;
    }

    if (++p == end) {
        return 0;
    }

    neg = (*p == '-');

    if (*p == '+' || *p == '-') {
        p++;
    }

    for (x = 0; p < end && dg_json_digit(*p); p++) {
        if (x < DG_JSON_EXP_MAX) {
            x = x * 10 + (*p - '0');
        }
    }

    return neg ? -x : x;
}


size_t
dg_json_string_copy(const dg_json_value_t *v, char *dst, size_t size)
{
    size_t                k, n, run;
    char                 *out, *last;
    unsigned char         tmp[4];
    const unsigned char  *p, *end, *b;

    if (v->type != DG_JSON_STRING) {
        return 0;
    }

    if (size > v->len) {
        size = v->len;
    }

    if (size == 0) {
        return 0;
    }

    if (!v->escaped) {
        memcpy(dst, v->data, size);
        return size;
    }

    p = (const unsigned char *) v->data;
    end = p + v->raw_len;
    out = dst;
    last = dst + size;

    while (out < last) {
        b = memchr(p, '\\', end - p);

        run = ((b != NULL) ? b : end) - p;
        if (run > (size_t) (last - out)) {
            run = last - out;
        }

        memcpy(out, p, run);
        out += run;
        p += run;

        if (b == NULL || out == last) {
            break;
        }

        k = dg_json_escape(p, end, tmp, &n);
        if (k == 0) {
            break;
        }

        if (n > (size_t) (last - out)) {
            n = last - out;
        }

        memcpy(out, tmp, n);
        out += n;
        p += k;
    }

    return out - dst;
}


int
dg_json_string_eq(const dg_json_value_t *v, const char *s, size_t n)
{
    size_t                i, k, m, run;
    unsigned char         tmp[4];
    const unsigned char  *p, *end, *b;

    if (v->type != DG_JSON_STRING || v->len != n) {
        return 0;
    }

    if (!v->escaped) {
        return memcmp(v->data, s, n) == 0;
    }

    p = (const unsigned char *) v->data;
    end = p + v->raw_len;
    i = 0;

    for ( ;; ) {
        b = memchr(p, '\\', end - p);

        run = ((b != NULL) ? b : end) - p;
        if (run > n - i || memcmp(p, s + i, run) != 0) {
            return 0;
        }

        i += run;
        p += run;

        if (b == NULL) {
            return i == n;
        }

        k = dg_json_escape(p, end, tmp, &m);
        if (k == 0 || m > n - i || memcmp(tmp, s + i, m) != 0) {
            return 0;
        }

        i += m;
        p += k;
    }
}


int
dg_json_number_int64(const dg_json_value_t *v, int64_t *n)
{
    if (v->type != DG_JSON_NUMBER || !v->is_int) {
        return -1;
    }

    *n = v->integer;

    return 0;
}


/*
 * Clinger's fast path first: up to 15 significant digits are an exact
 * double m, 10^k is exact up to 10^22, and one IEEE multiplication or
 * division rounds their exact product or quotient correctly, as strtod()
 * would.  Anything else (long or far from 1) is strtod()'s, in place when
 * a byte follows the token: no byte that can follow a JSON real can
 * continue it for strtod() in the "C" locale (nginx never calls
 * setlocale()).
 */

int
dg_json_number_double(const dg_json_value_t *v, double *d)
{
    int                   neg;
    char                  buf[64];
    int64_t               e;
    uint64_t              m;
    unsigned              nd;
    const unsigned char  *p, *end;

    if (v->type != DG_JSON_NUMBER) {
        return -1;
    }

    if (v->is_int) {
        *d = (double) v->integer;
        return 0;
    }

    p = (const unsigned char *) v->data;
    end = p + v->raw_len;

    neg = (*p == '-');
    p += neg;

    m = 0;
    nd = 0;
    e = 0;

    for ( /* void */ ; p < end && dg_json_digit(*p); p++) {
        if (nd < 19) {
            m = m * 10 + (*p - '0');
            nd += (m != 0);
        }
    }

    if (p < end && *p == '.') {
        for (p++; p < end && dg_json_digit(*p); p++) {
            if (nd < 19) {
                m = m * 10 + (*p - '0');
                nd += (m != 0);
                e--;
            }
        }
    }

    e += dg_json_exponent(p, end);

    if (nd <= 15 && e >= -22 && e <= 22) {
        *d = (e < 0) ? (double) m / dg_json_pow10[-e]
                     : (double) m * dg_json_pow10[e];

        if (neg) {
            *d = -*d;
        }

        return 0;
    }

    if (v->delimited) {
        *d = strtod(v->data, NULL);
        return 0;
    }

    if (v->raw_len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, v->data, v->raw_len);
    buf[v->raw_len] = '\0';

    *d = strtod(buf, NULL);

    return 0;
}


int
dg_json_number_milli(const dg_json_value_t *v, int32_t *milli)
{
    double  d;

    if (dg_json_number_double(v, &d) != 0) {
        return -1;
    }

    d *= 1000.0;

    if (d != d) {
        *milli = 0;

    } else if (d >= 2147483647.0) {
        *milli = INT32_MAX;

    } else if (d <= -2147483648.0) {
        *milli = INT32_MIN;

    } else {
        *milli = (int32_t) (d < 0 ? d - 0.5 : d + 0.5);
    }

    return 0;
}
