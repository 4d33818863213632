/*
 * distill-guard engine: a strict, zero-copy, non-allocating JSON scanner.
 * Plain C, no nginx.
 *
 * A dg_json_t is a cursor over one buffer.  Values are read in document
 * order: dg_json_next() reads the value at the cursor, a scalar whole or
 * only the bracket of an object or array, which the caller then walks
 * with dg_json_member() or dg_json_element() until they return 0 (the
 * closing bracket), or leaves with dg_json_leave().  dg_json_skip() steps
 * over a whole value.  The cursor is a plain struct: a copy of it is a
 * bookmark to read the same value again later.
 *
 * Everything read is checked against RFC 8259: grammar, escapes, UTF-8
 * and control characters in strings, the form of numbers; dg_json_end()
 * then checks that only blanks follow the top-level value.  On top of it
 * the scanner has the limits of jansson, whose place it takes: nesting
 * deeper than DG_JSON_MAX_DEPTH, "\u0000", lone surrogate escapes, an
 * integer (no fraction, no exponent) out of int64 range and a number
 * that overflows a double are errors.  The first error sticks: every
 * later call fails.
 *
 * Strings are not copied: a value points into the buffer, and a string
 * without escapes is its text there; dg_json_string_copy() unescapes.
 */

#ifndef DG_JSON_H
#define DG_JSON_H

#include <stddef.h>
#include <stdint.h>


#ifndef DG_JSON_MAX_DEPTH
#define DG_JSON_MAX_DEPTH   32
#endif

#if DG_JSON_MAX_DEPTH > 64
#error "DG_JSON_MAX_DEPTH: the container stack is a 64-bit mask"
#endif


typedef enum {
    DG_JSON_ERROR = 0,
    DG_JSON_OBJECT,
    DG_JSON_ARRAY,
    DG_JSON_STRING,
    DG_JSON_NUMBER,
    DG_JSON_TRUE,
    DG_JSON_FALSE,
    DG_JSON_NULL
} dg_json_type_t;


typedef struct {
    dg_json_type_t      type;
    const char         *data;       /* string: after its opening quote;
                                       number: the token; else the byte */
    size_t              raw_len;    /* string: bytes between the quotes;
                                       number: length of the token */
    size_t              len;        /* string: length once unescaped */
    int64_t             integer;    /* number: its value when is_int */
    unsigned            escaped:1;  /* string: has escapes, so data is
                                       not its text */
    unsigned            is_int:1;   /* number: no fraction, no exponent */
    unsigned            delimited:1;    /* number: a byte follows it */
} dg_json_value_t;


/* the fields are private: use the functions below */

typedef struct {
    const unsigned char  *pos;
    const unsigned char  *end;
    uint64_t              objects;      /* bit d: container d is object */
    unsigned              depth;        /* open containers */
    unsigned              first:1;      /* just after [ or { */
    unsigned              error:1;
    unsigned              trusted:1;    /* see dg_json_trust() */
} dg_json_t;


void dg_json_init(dg_json_t *js, const char *data, size_t len);

/*
 * Reads the value at the cursor into v and returns 0, or -1 on error
 * (v->type is then DG_JSON_ERROR).  An object or array is entered: the
 * cursor is inside it, before its first member or element.
 */
int dg_json_next(dg_json_t *js, dg_json_value_t *v);

/*
 * Inside an object: reads the next member's key into key and leaves the
 * cursor at its value, which must then be read or skipped; returns 1.
 * Returns 0 after consuming the closing "}", -1 on error.
 */
int dg_json_member(dg_json_t *js, dg_json_value_t *key);

/*
 * Inside an array: 1 if an element follows (the cursor is at it, it must
 * be read or skipped), 0 after consuming the closing "]", -1 on error.
 */
int dg_json_element(dg_json_t *js);

/* skips the whole value at the cursor: 0 or -1 */
int dg_json_skip(dg_json_t *js);

/*
 * Skips the rest of the current object or array, "}" or "]" included;
 * called between values, not with a value left to read.
 */
int dg_json_leave(dg_json_t *js);

/* dg_json_next(), but an object or array is skipped: only its type is set */
int dg_json_read(dg_json_t *js, dg_json_value_t *v);

/* after the top-level value: 0 if only blanks follow, else -1 */
int dg_json_end(dg_json_t *js);

/*
 * Marks a cursor as being inside a document this scanner has already
 * read whole without error: strings are then only searched for their end
 * quote, not checked again.  Memory safety never depends on it.
 */
void dg_json_trust(dg_json_t *js);


/*
 * Writes the unescaped text of a string, at most size bytes (a cut may
 * fall inside a UTF-8 sequence), and returns the number written.  The
 * whole text is v->len bytes, never more than v->raw_len.
 */
size_t dg_json_string_copy(const dg_json_value_t *v, char *dst, size_t size);

/* 1 if the string value's text is s[0..n), else 0 */
int dg_json_string_eq(const dg_json_value_t *v, const char *s, size_t n);

/* a number without fraction or exponent: 0 and *n, else -1 */
int dg_json_number_int64(const dg_json_value_t *v, int64_t *n);

/*
 * A number as the nearest double, as strtod() in the "C" locale gives
 * it: 0 or -1 (not a number; or a fraction or exponent of more than 63
 * bytes that ends the buffer).
 */
int dg_json_number_double(const dg_json_value_t *v, double *d);

/*
 * A number times 1000 as an int32 fixed point: the double nearest the
 * number, times 1000, rounded half away from zero, clamped.  0 or -1.
 */
int dg_json_number_milli(const dg_json_value_t *v, int32_t *milli);


#endif /* DG_JSON_H */
