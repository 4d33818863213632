/*
 * distill-guard: evaluates the prompt features on the prompt corpora.
 *
 *   cc -O2 -Wall -Wextra -Werror -Isrc tools/eval_features.c \
 *       build/libdg.a -ljansson -lcrypto -lm -o build/eval_features
 *   build/eval_features [../shared/data/prompts]
 *
 * Prints: template fingerprint collisions among human prompts and the
 * sharing of campaign templates wrapped around Alpaca prompts; distinct
 * topics per 100 prompts for a sweep (Alpaca) and for narrow areas;
 * bytes per estimated token; share of prompts with a reasoning phrase.
 */

#define _GNU_SOURCE                     /* strcasestr */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "dg_features.h"
#include "dg_topic.h"


#define EV_SAMPLE       100
#define EV_ROUNDS       1000
#define EV_WRAP_MAX     65536


typedef struct {
    char               *text;
    size_t              len;
    int                 corpus;
    dg_features_t       f;
} ev_prompt_t;


typedef struct {
    const char         *name;
    int                 human;
    size_t              first;          /* index range in the prompt set */
    size_t              n;
} ev_corpus_t;


static ev_corpus_t  ev_corpora[] = {
    { "arena_hard_prompts", 1, 0, 0 },
    { "oasst_prompts", 1, 0, 0 },
    { "dolly_subset", 1, 0, 0 },
    { "awesome_chatgpt_prompts", 1, 0, 0 },
    { "alpaca_5000", 0, 0, 0 },
    { "codealpaca_2k", 0, 0, 0 },
};

#define EV_NCORPORA  (sizeof(ev_corpora) / sizeof(ev_corpora[0]))


static const char  *ev_prefix_templates[] = {
    "Answer the following and explain your reasoning step by step:\n\n{x}",
    "Q: {x}\nA:",
    "### Instruction:\n{x}\n\n### Response:",
    "Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request.\n\n### Instruction:\n{x}\n\n"
        "### Response:",
    "You are a helpful assistant. {x}",
    "Task: {x}",
    NULL
};

static const char  *ev_suffix_templates[] = {
    "{x}\n\nExplain step by step.",
    "{x}\n\nLet's think step by step.",
    "{x}\nAnswer:",
    "{x}\n\nRespond in JSON with the keys answer and rationale.",
    "{x} Answer in one sentence.",
    NULL
};


static ev_prompt_t  *ev_prompts;
static size_t        ev_n, ev_cap;
static uint64_t      ev_rng = 0x853c49e6748fea9bULL;


static uint64_t
ev_rand(void)
{
    ev_rng ^= ev_rng << 13;
    ev_rng ^= ev_rng >> 7;
    ev_rng ^= ev_rng << 17;

    return ev_rng;
}


static void
ev_features(dg_features_t *f, const char *text, size_t len)
{
    dg_prompt_t  p;

    memset(&p, 0, sizeof(p));
    p.format = DG_FORMAT_RAW;
    p.user.data = text;
    p.user.len = len;
    p.first_user = p.user;
    p.turns = 1;

    dg_features_compute(f, &p);
}


static int
ev_load(const char *dir, int c)
{
    FILE          *fp;
    char          *line, path[4096];
    size_t         cap;
    ssize_t        len;
    json_t        *j, *s;
    ev_prompt_t   *e;

    snprintf(path, sizeof(path), "%s/%s.jsonl", dir, ev_corpora[c].name);

    fp = fopen(path, "r");

    if (fp == NULL) {
        perror(path);
        return -1;
    }

    ev_corpora[c].first = ev_n;
    line = NULL;
    cap = 0;

    while ((len = getline(&line, &cap, fp)) > 0) {
        j = json_loadb(line, len, 0, NULL);
        s = j ? json_object_get(j, "prompt") : NULL;

        if (s != NULL && json_is_string(s)) {
            if (ev_n == ev_cap) {
                ev_cap = ev_cap ? ev_cap * 2 : 1024;
                ev_prompts = realloc(ev_prompts, ev_cap * sizeof(ev_prompt_t));

                if (ev_prompts == NULL) {
                    abort();
                }
            }

            e = &ev_prompts[ev_n++];
            e->len = json_string_length(s);
            e->text = malloc(e->len + 1);

            if (e->text == NULL) {
                abort();
            }

            memcpy(e->text, json_string_value(s), e->len + 1);
            e->corpus = c;
            ev_features(&e->f, e->text, e->len);
        }

        json_decref(j);
    }

    free(line);
    fclose(fp);

    ev_corpora[c].n = ev_n - ev_corpora[c].first;

    return 0;
}


static int
ev_cmp_u32(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


/* the first line of a prompt, cut, for the group listings */
static void
ev_show(const char *text, size_t len, int from_end)
{
    size_t  i, n;

    n = len < 70 ? len : 70;

    if (from_end) {
        text += len - n;
    }

    putchar('"');

    for (i = 0; i < n; i++) {
        putchar(text[i] == '\n' ? '|' : text[i]);
    }

    puts("\"");
}


/* collisions of head (tail) fingerprints among the human prompts */
static void
ev_human_collisions(int tail)
{
    size_t     i, j, n, set, shared, groups, top[5], topn[5], k;
    uint32_t  *fp, v;

    fp = malloc(ev_n * sizeof(uint32_t));
    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (!ev_corpora[ev_prompts[i].corpus].human) {
            continue;
        }

        v = tail ? ev_prompts[i].f.template_tail
                 : ev_prompts[i].f.template_head;

        if (v != 0) {
            fp[n++] = v;
        }
    }

    set = n;
    qsort(fp, n, sizeof(uint32_t), ev_cmp_u32);

    shared = 0;
    groups = 0;
    memset(topn, 0, sizeof(topn));
    memset(top, 0, sizeof(top));

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && fp[j] == fp[i]; j++) { /* void */ }

        if (j - i < 2) {
            continue;
        }

        shared += j - i;
        groups++;

        for (k = 0; k < 5; k++) {
            if (j - i > topn[k]) {
                memmove(&topn[k + 1], &topn[k], (4 - k) * sizeof(size_t));
                memmove(&top[k + 1], &top[k], (4 - k) * sizeof(size_t));
                topn[k] = j - i;
                top[k] = fp[i];
                break;
            }
        }
    }

    n = 0;

    for (i = 0; i < EV_NCORPORA; i++) {
        n += ev_corpora[i].human ? ev_corpora[i].n : 0;
    }

    printf("  %s: set on %zu of %zu human prompts; shared by %zu = %.2f%% "
           "of all human prompts (%.2f%% of those set), %zu groups\n",
           tail ? "tail" : "head", set, n, shared, 100.0 * shared / n,
           set ? 100.0 * shared / set : 0.0, groups);

    for (k = 0; k < 5 && topn[k] > 0; k++) {
        printf("    group of %zu, e.g. ", topn[k]);

        for (i = 0; i < ev_n; i++) {
            v = tail ? ev_prompts[i].f.template_tail
                     : ev_prompts[i].f.template_head;

            if (v == top[k] && ev_corpora[ev_prompts[i].corpus].human) {
                ev_show(ev_prompts[i].text, ev_prompts[i].len, tail);
                break;
            }
        }
    }

    free(fp);
}


/* the template text with its line breaks shown as \n, cut */
static void
ev_show_template(const char *tmpl)
{
    int  n;

    for (n = 0; *tmpl != '\0' && n < 40; tmpl++) {
        n += printf(*tmpl == '\n' ? "\\n" : "%c", *tmpl);
    }

    printf("%*s", n < 42 ? 42 - n : 0, "");
}


/* human prompts whose head (tail) fingerprint is v */
static size_t
ev_human_with(uint32_t v, int tail)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (ev_corpora[ev_prompts[i].corpus].human
            && v == (tail ? ev_prompts[i].f.template_tail
                          : ev_prompts[i].f.template_head))
        {
            n++;
        }
    }

    return n;
}


/*
 * Every prompt of c wrapped in tmpl: the share of the most common head
 * and tail fingerprint, and how many human prompts have those too.
 */
static void
ev_wrap(const char *tmpl, const ev_corpus_t *c)
{
    char          *buf, *x;
    size_t         i, k, pre, post, len, n, best[2], run, nset;
    uint32_t      *fp[2], top[2];
    dg_features_t  f;

    buf = malloc(EV_WRAP_MAX);
    fp[0] = malloc(c->n * sizeof(uint32_t));
    fp[1] = malloc(c->n * sizeof(uint32_t));
    x = strstr(tmpl, "{x}");
    pre = x - tmpl;
    post = strlen(x + 3);
    nset = 0;

    for (i = 0; i < c->n; i++) {
        const ev_prompt_t  *e = &ev_prompts[c->first + i];

        len = pre + e->len + post;

        if (len > EV_WRAP_MAX) {
            len = 0;
        }

        if (len) {
            memcpy(buf, tmpl, pre);
            memcpy(buf + pre, e->text, e->len);
            memcpy(buf + pre + e->len, x + 3, post);
        }

        ev_features(&f, buf, len);
        fp[0][i] = f.template_head;
        fp[1][i] = f.template_tail;
        nset += f.template_head != 0;
    }

    for (k = 0; k < 2; k++) {
        qsort(fp[k], c->n, sizeof(uint32_t), ev_cmp_u32);
        best[k] = 0;
        top[k] = 0;

        for (i = 0; i < c->n; i += run) {
            for (run = 1; i + run < c->n && fp[k][i + run] == fp[k][i]; run++)
            {
                /* void */
            }

            if (fp[k][i] != 0 && run > best[k]) {
                best[k] = run;
                top[k] = fp[k][i];
            }
        }
    }

    n = c->n;

    printf("  ");
    ev_show_template(tmpl);
    printf("head %5.1f%% (%zu human)  tail %5.1f%% (%zu human)  set %5.1f%%\n",
           100.0 * best[0] / n, ev_human_with(top[0], 0),
           100.0 * best[1] / n, ev_human_with(top[1], 1),
           100.0 * nset / n);

    free(fp[0]);
    free(fp[1]);
    free(buf);
}


/* mean distinct topics among EV_SAMPLE prompts drawn from idx[0..n) */
static double
ev_topics_per_sample(const size_t *idx, size_t n, size_t *sample)
{
    size_t    r, i, j, k, m, distinct, total;
    uint16_t  seen[EV_SAMPLE];
    size_t    pick[EV_SAMPLE];

    m = n < EV_SAMPLE ? n : EV_SAMPLE;
    *sample = m;
    total = 0;

    for (r = 0; r < EV_ROUNDS; r++) {
        /* a partial Fisher-Yates draw without replacement */
        for (i = 0; i < m; i++) {
            do {
                pick[i] = ev_rand() % n;

                for (j = 0; j < i && pick[j] != pick[i]; j++) { /* void */ }
            } while (j < i);
        }

        distinct = 0;

        for (i = 0; i < m; i++) {
            uint16_t  t = ev_prompts[idx[pick[i]]].f.topic;

            for (k = 0; k < distinct && seen[k] != t; k++) { /* void */ }

            if (k == distinct) {
                seen[distinct++] = t;
            }
        }

        total += distinct;
    }

    return (double) total / EV_ROUNDS;
}


static void
ev_topic_line(const char *label, const size_t *idx, size_t n)
{
    size_t    i, fallback, sample, counts[DG_TOPIC_BUCKETS], best, bi;
    double    d;

    if (n == 0) {
        printf("  %-44s none\n", label);
        return;
    }

    memset(counts, 0, sizeof(counts));
    fallback = 0;

    for (i = 0; i < n; i++) {
        counts[ev_prompts[idx[i]].f.topic]++;
        fallback += ev_prompts[idx[i]].f.topic >= DG_TOPIC_FALLBACK;
    }

    best = 0;
    bi = 0;

    for (i = 0; i < DG_TOPIC_BUCKETS; i++) {
        if (counts[i] > best) {
            best = counts[i];
            bi = i;
        }
    }

    d = ev_topics_per_sample(idx, n, &sample);

    printf("  %-44s n=%5zu  distinct/%zu: %5.1f  fallback %4.1f%%  "
           "top: %s %.0f%%\n", label, n, sample, d, 100.0 * fallback / n,
           dg_topic_name((uint16_t) bi), 100.0 * best / n);
}


static int
ev_mentions(const ev_prompt_t *e, const char *const *words)
{
    /* case-insensitive substring: the prompts are NUL-terminated */
    for ( ; *words != NULL; words++) {
        if (strcasestr(e->text, *words) != NULL) {
            return 1;
        }
    }

    return 0;
}


static void
ev_topics(void)
{
    static const char *const  py[] = { "python", NULL };
    static const char *const  cook[] = { "recipe", "cooking", "bake ",
                                         "baking", "ingredient", NULL };
    static const char *const  js[] = { "javascript", NULL };

    size_t   i, c, n, *idx;

    idx = malloc(ev_n * sizeof(size_t));

    for (c = 0; c < EV_NCORPORA; c++) {
        for (i = 0; i < ev_corpora[c].n; i++) {
            idx[i] = ev_corpora[c].first + i;
        }

        ev_topic_line(ev_corpora[c].name, idx, ev_corpora[c].n);
    }

    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (ev_corpora[ev_prompts[i].corpus].human) {
            idx[n++] = i;
        }
    }

    ev_topic_line("all human", idx, n);

    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (ev_corpora[ev_prompts[i].corpus].human
            && ev_mentions(&ev_prompts[i], py))
        {
            idx[n++] = i;
        }
    }

    ev_topic_line("narrow: human, mention python", idx, n);

    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (ev_mentions(&ev_prompts[i], py)) {
            idx[n++] = i;
        }
    }

    ev_topic_line("narrow: any corpus, mention python", idx, n);

    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (ev_mentions(&ev_prompts[i], js)) {
            idx[n++] = i;
        }
    }

    ev_topic_line("narrow: any corpus, mention javascript", idx, n);

    n = 0;

    for (i = 0; i < ev_n; i++) {
        if (ev_mentions(&ev_prompts[i], cook)) {
            idx[n++] = i;
        }
    }

    ev_topic_line("narrow: any corpus, mention recipe/cooking", idx, n);

    free(idx);
}


static void
ev_misc(void)
{
    size_t    c, i, bytes, tokens, cot;

    for (c = 0; c < EV_NCORPORA; c++) {
        bytes = tokens = cot = 0;

        for (i = 0; i < ev_corpora[c].n; i++) {
            const dg_features_t  *f = &ev_prompts[ev_corpora[c].first + i].f;

            bytes += f->bytes;
            tokens += f->tokens;
            cot += f->cot > 0;
        }

        printf("  %-24s bytes/token %.2f  cot>0 %5.2f%%\n",
               ev_corpora[c].name, tokens ? (double) bytes / tokens : 0.0,
               100.0 * cot / ev_corpora[c].n);
    }
}


int
main(int argc, char **argv)
{
    size_t       c;
    const char  *dir, **t;

    dir = argc > 1 ? argv[1] : "../shared/data/prompts";

    for (c = 0; c < EV_NCORPORA; c++) {
        if (ev_load(dir, (int) c) != 0) {
            return 1;
        }
    }

    printf("lexicon duplicates: %u\n\n", dg_topic_check());

    printf("template fingerprints, human prompts:\n");
    ev_human_collisions(0);
    ev_human_collisions(1);

    for (c = 0; c < EV_NCORPORA; c++) {
        if (strcmp(ev_corpora[c].name, "alpaca_5000") != 0) {
            continue;
        }

        printf("\ntemplates around %zu %s prompts: share of the top "
               "fingerprint\n prefix templates:\n", ev_corpora[c].n,
               ev_corpora[c].name);

        for (t = ev_prefix_templates; *t != NULL; t++) {
            ev_wrap(*t, &ev_corpora[c]);
        }

        printf(" suffix templates:\n");

        for (t = ev_suffix_templates; *t != NULL; t++) {
            ev_wrap(*t, &ev_corpora[c]);
        }

        printf(" unwrapped:\n");
        ev_wrap("{x}", &ev_corpora[c]);
    }

    printf("\ntopics (mean over %d draws):\n", EV_ROUNDS);
    ev_topics();

    printf("\ntokens and reasoning phrases:\n");
    ev_misc();

    return 0;
}
