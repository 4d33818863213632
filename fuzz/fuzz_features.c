/*
 * libFuzzer target: prompt extraction, features and their JSON on any
 * body; checks that the JSON is bounded, NUL-terminated and never cut
 * inside the buffer it was given.
 *
 *   make fuzz && build/fuzz/fuzz_features -max_total_time=60
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_prompt.h"
#include "dg_features.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *body, *scratch, json[DG_FEATURES_JSON_MAX + 64];
    size_t          n;
    dg_prompt_t     p;
    dg_features_t   f;

    body = malloc(size ? size : 1);
    scratch = malloc(size + 1);

    if (body == NULL || scratch == NULL) {
        free(body);
        free(scratch);
        return 0;
    }

    memcpy(body, data, size);

    dg_prompt_parse(&p, body, size, scratch, size + 1);
    dg_features_compute(&f, &p);

    if (f.topic >= DG_TOPIC_BUCKETS || f.bytes != p.user.len
        || f.entropy_milli > 8000)
    {
        abort();
    }

    n = dg_features_json(&f, NULL, json, sizeof(json));

    if (n >= sizeof(json) || json[n] != '\0' || strlen(json) != n
        || n >= DG_FEATURES_JSON_MAX)
    {
        abort();
    }

    /* a tiny buffer: cut, still terminated */
    n = dg_features_json(&f, "{\"requests\":1}", json, 7);

    if (n >= 7 || json[n] != '\0') {
        abort();
    }

    free(body);
    free(scratch);

    return 0;
}
