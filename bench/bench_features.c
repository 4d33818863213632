/*
 * distill-guard: micro-benchmark of the per-request engine work,
 * dg_prompt_parse() + dg_features_compute(), on one core.  Not a test:
 * it prints numbers and asserts nothing.
 *
 *   make bench          (build/bench_features ../shared/data/prompts)
 *
 * Every prompt of the corpora is wrapped as an OpenAI chat request body
 * with a system message.  Prints the throughput over all bodies (MB/s of
 * body bytes, parse + features, and each part alone; best and median
 * round), then the median and 99th percentile time of one call (parse +
 * features) on bodies of about 1 KB.
 */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dg_features.h"


#define BN_SECONDS      2.0
#define BN_ROUNDS_MAX   100000
#define BN_KB_LOW       900
#define BN_KB_HIGH      1150
#define BN_KB_REPS      200


typedef struct {
    char               *data;
    size_t              len;
} bn_body_t;


static bn_body_t  *bn_bodies;
static size_t      bn_n, bn_cap, bn_bytes, bn_max;


static double
bn_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
bn_add(const char *prompt, size_t len)
{
    json_t  *req, *msgs, *m;
    char    *body;

    req = json_object();
    msgs = json_array();

    m = json_object();
    json_object_set_new(m, "role", json_string("system"));
    json_object_set_new(m, "content",
                        json_string("You are a helpful assistant."));
    json_array_append_new(msgs, m);

    m = json_object();
    json_object_set_new(m, "role", json_string("user"));
    json_object_set_new(m, "content", json_stringn(prompt, len));
    json_array_append_new(msgs, m);

    json_object_set_new(req, "model", json_string("gpt-4o-mini"));
    json_object_set_new(req, "messages", msgs);
    json_object_set_new(req, "max_tokens", json_integer(512));
    json_object_set_new(req, "temperature", json_real(0.7));

    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);

    if (body == NULL) {
        return;
    }

    if (bn_n == bn_cap) {
        bn_cap = bn_cap ? bn_cap * 2 : 4096;
        bn_bodies = realloc(bn_bodies, bn_cap * sizeof(bn_body_t));

        if (bn_bodies == NULL) {
            abort();
        }
    }

    bn_bodies[bn_n].data = body;
    bn_bodies[bn_n].len = strlen(body);
    bn_bytes += bn_bodies[bn_n].len;

    if (bn_bodies[bn_n].len > bn_max) {
        bn_max = bn_bodies[bn_n].len;
    }

    bn_n++;
}


static void
bn_load(const char *dir)
{
    DIR            *d;
    FILE           *fp;
    char           *line, path[4096];
    size_t          cap, nlen;
    ssize_t         len;
    json_t         *j, *s;
    struct dirent  *de;

    d = opendir(dir);

    if (d == NULL) {
        perror(dir);
        exit(1);
    }

    line = NULL;
    cap = 0;

    while ((de = readdir(d)) != NULL) {
        nlen = strlen(de->d_name);

        if (nlen < 6 || strcmp(de->d_name + nlen - 6, ".jsonl") != 0) {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        fp = fopen(path, "r");

        if (fp == NULL) {
            continue;
        }

        while ((len = getline(&line, &cap, fp)) > 0) {
            j = json_loadb(line, len, 0, NULL);
            s = j ? json_object_get(j, "prompt") : NULL;

            if (s != NULL && json_is_string(s)) {
                bn_add(json_string_value(s), json_string_length(s));
            }

            json_decref(j);
        }

        fclose(fp);
    }

    free(line);
    closedir(d);
}


static int
bn_cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/*
 * what = 0: parse + features, 1: parse only, 2: features only.  Rounds
 * over all bodies for BN_SECONDS; the best and the median round are
 * printed: on a shared machine the best one is the code's speed.
 */
static void
bn_throughput(int what, char *scratch, const char *label)
{
    char          **sc;
    size_t          i, rounds;
    double          t0, t, start, *mbs;
    uint64_t        sink;
    dg_prompt_t     p, *pre;
    dg_features_t   f;

    pre = NULL;
    sc = NULL;
    sink = 0;

    if (what == 2) {
        /* features alone: the prompts parsed once, into kept scratch */
        pre = malloc(bn_n * sizeof(dg_prompt_t));
        sc = malloc(bn_n * sizeof(char *));

        for (i = 0; i < bn_n; i++) {
            sc[i] = malloc(bn_bodies[i].len + 1);
            dg_prompt_parse(&pre[i], bn_bodies[i].data, bn_bodies[i].len,
                            sc[i], bn_bodies[i].len + 1);
        }
    }

    mbs = malloc(BN_ROUNDS_MAX * sizeof(double));
    rounds = 0;
    start = bn_now();

    do {
        t0 = bn_now();

        for (i = 0; i < bn_n; i++) {
            if (what != 2) {
                dg_prompt_parse(&p, bn_bodies[i].data, bn_bodies[i].len,
                                scratch, bn_max + 1);
            }

            if (what == 0) {
                dg_features_compute(&f, &p);
                sink += f.simhash;

            } else if (what == 1) {
                sink += p.user.len;

            } else {
                dg_features_compute(&f, &pre[i]);
                sink += f.simhash;
            }
        }

        t = bn_now();
        mbs[rounds++] = bn_bytes / (t - t0) / 1e6;
    } while (t - start < BN_SECONDS && rounds < BN_ROUNDS_MAX);

    qsort(mbs, rounds, sizeof(double), bn_cmp_double);

    printf("  %-18s best %7.1f MB/s, median %7.1f MB/s  (%zu rounds of "
           "%zu bodies)%s\n", label, mbs[rounds - 1], mbs[rounds / 2],
           rounds, bn_n, sink == 42 ? " " : "");

    if (sc != NULL) {
        for (i = 0; i < bn_n; i++) {
            free(sc[i]);
        }
    }

    free(sc);
    free(pre);
    free(mbs);
}


static void
bn_one_kb(char *scratch)
{
    size_t          i, r, n, m, nkb;
    double         *samples, t0, sum;
    uint64_t        sink;
    dg_prompt_t     p;
    dg_features_t   f;

    nkb = 0;

    for (i = 0; i < bn_n; i++) {
        nkb += bn_bodies[i].len >= BN_KB_LOW && bn_bodies[i].len <= BN_KB_HIGH;
    }

    if (nkb == 0) {
        printf("  no body of about 1 KB\n");
        return;
    }

    samples = malloc(nkb * BN_KB_REPS * sizeof(double));
    n = 0;
    sum = 0;
    sink = 0;

    for (i = 0; i < bn_n; i++) {
        if (bn_bodies[i].len < BN_KB_LOW || bn_bodies[i].len > BN_KB_HIGH) {
            continue;
        }

        sum += bn_bodies[i].len;

        for (r = 0; r < BN_KB_REPS; r++) {
            t0 = bn_now();
            dg_prompt_parse(&p, bn_bodies[i].data, bn_bodies[i].len,
                            scratch, bn_max + 1);
            dg_features_compute(&f, &p);
            samples[n++] = bn_now() - t0;
            sink += f.simhash;
        }
    }

    qsort(samples, n, sizeof(double), bn_cmp_double);
    m = n * 99 / 100;

    printf("  1 KB chat body: median %.2f us, p99 %.2f us  (%zu bodies of "
           "%d..%d bytes, mean %.0f, %d calls each)%s\n",
           samples[n / 2] * 1e6, samples[m] * 1e6, nkb, BN_KB_LOW,
           BN_KB_HIGH, sum / nkb, BN_KB_REPS, sink == 42 ? " " : "");

    free(samples);
}


int
main(int argc, char **argv)
{
    char        *scratch;
    const char  *dir;

    dir = argc > 1 ? argv[1] : "../shared/data/prompts";

    bn_load(dir);

    if (bn_n == 0) {
        fprintf(stderr, "no prompts in %s\n", dir);
        return 1;
    }

    scratch = malloc(bn_max + 1);

    if (scratch == NULL) {
        return 1;
    }

    printf("bench_features: %zu OpenAI chat bodies from %s, %.1f MB, "
           "largest %zu bytes\n", bn_n, dir, bn_bytes / 1e6, bn_max);

    bn_throughput(0, scratch, "parse + features");
    bn_throughput(1, scratch, "parse only");
    bn_throughput(2, scratch, "features only");
    bn_one_kb(scratch);

    free(scratch);

    return 0;
}
