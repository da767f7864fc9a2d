// golden_case.h - reference cases: a bitnet.cpp golden file's (the tiny-a
// fixture, or tests/golden/*.json from scripts/golden/make-golden.sh: the prompt,
// its ids with BOS, 16 greedy ids and, at each of the 17 positions, the margin
// and the top-10; fixtures README, tiny-a), and the reader it shares with the
// trained model's reference (tests/test_trained_model.c).
#ifndef BN_TEST_GOLDEN_CASE_H
#define BN_TEST_GOLDEN_CASE_H

#include <cjson/cJSON.h>
#include <math.h>

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

// The ids and per-step top-10s of one reference case (a golden file's or the
// trained model's: train/reference.py): prompt_ids (at most max_prompt),
// exactly n_gen generated_ids, and n_gen + 1 steps under steps_key, each with
// its margin and 10 [id, logit] pairs. -1 when the case is not so.
static inline int bn_ref_read_case(const cJSON *c, const char *steps_key, int max_prompt, int n_gen,
                                   int32_t *prompt_ids, int *n_prompt, int32_t *gen_ids,
                                   bn_ref_step *step) {
    const cJSON *v;
    *n_prompt = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "prompt_ids")) {
        if (*n_prompt == max_prompt) return -1;
        prompt_ids[(*n_prompt)++] = (int32_t)v->valuedouble;
    }
    int i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "generated_ids")) {
        if (i == n_gen) return -1;
        gen_ids[i++] = (int32_t)v->valuedouble;
    }
    if (i != n_gen || *n_prompt == 0) return -1;
    i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, steps_key)) {
        if (i > n_gen) return -1;
        step[i].margin = (float)cJSON_GetNumberValue(cJSON_GetObjectItem(v, "margin"));
        int j = 0;
        const cJSON *pair;
        cJSON_ArrayForEach(pair, cJSON_GetObjectItem(v, "top10")) {
            if (j == 10) return -1;
            step[i].top_id[j] = (int32_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
            step[i].top_logit[j] = (float)cJSON_GetArrayItem(pair, 1)->valuedouble;
            j++;
        }
        if (j != 10) return -1;
        i++;
    }
    return i == n_gen + 1 ? 0 : -1;
}

// The largest |difference| between logits and reference step s's top-10 logits.
// A NaN counts as infinitely far, so it fails every bound (fmaxf would drop it).
static inline float bn_ref_step_diff(const float *logits, const bn_ref_step *s) {
    float d = 0.0f;
    for (int j = 0; j < 10; j++) {
        float e = fabsf(logits[s->top_id[j]] - s->top_logit[j]);
        if (isnan(e)) e = INFINITY;
        if (e > d) d = e;
    }
    return d;
}

// Reads one element of "cases"; -1 when it is not what make-golden.sh writes.
static inline int bn_golden_read_case(const cJSON *c, bn_golden_case *g) {
    memset(g, 0, sizeof *g);
    g->prompt = cJSON_GetStringValue(cJSON_GetObjectItem(c, "prompt"));
    if (!g->prompt) return -1;
    return bn_ref_read_case(c, "positions", BN_GOLDEN_MAX_PROMPT, BN_GOLDEN_GEN, g->prompt_ids,
                            &g->n_prompt, g->gen_ids, g->step);
}

#endif
