// golden_case.h - one case of a bitnet.cpp golden file (the tiny-a fixture, or
// tests/golden/*.json from scripts/golden/make-golden.sh): the prompt, its ids
// with BOS, 16 greedy ids and, at each of the 17 positions, the margin and the
// top-10 (fixtures README, tiny-a).
#ifndef BN_TEST_GOLDEN_CASE_H
#define BN_TEST_GOLDEN_CASE_H

#include <cjson/cJSON.h>

#include "test_util.h"

#define BN_GOLDEN_GEN 16       // greedy ids a case holds
#define BN_GOLDEN_MAX_PROMPT 64

typedef struct bn_golden_case {
    const char *prompt; // in the cJSON document
    int n_prompt;
    int32_t prompt_ids[BN_GOLDEN_MAX_PROMPT];
    int32_t gen_ids[BN_GOLDEN_GEN];
    bn_ref_step step[BN_GOLDEN_GEN + 1];
} bn_golden_case;

// Reads one element of "cases"; -1 when it is not what make-golden.sh writes.
static inline int bn_golden_read_case(const cJSON *c, bn_golden_case *g) {
    memset(g, 0, sizeof *g);
    g->prompt = cJSON_GetStringValue(cJSON_GetObjectItem(c, "prompt"));
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "prompt_ids")) {
        if (g->n_prompt == BN_GOLDEN_MAX_PROMPT) return -1;
        g->prompt_ids[g->n_prompt++] = (int32_t)v->valuedouble;
    }
    int i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "generated_ids")) {
        if (i == BN_GOLDEN_GEN) return -1;
        g->gen_ids[i++] = (int32_t)v->valuedouble;
    }
    if (i != BN_GOLDEN_GEN || !g->prompt || g->n_prompt == 0) return -1;
    i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "positions")) {
        if (i > BN_GOLDEN_GEN) return -1;
        g->step[i].margin = (float)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "margin"));
        int j = 0;
        const cJSON *pair;
        cJSON_ArrayForEach(pair, cJSON_GetObjectItem(p, "top10")) {
            if (j == 10) break;
            g->step[i].top_id[j] = (int32_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
            g->step[i].top_logit[j] = (float)cJSON_GetArrayItem(pair, 1)->valuedouble;
            j++;
        }
        if (j != 10) return -1;
        i++;
    }
    return i == BN_GOLDEN_GEN + 1 ? 0 : -1;
}

#endif
