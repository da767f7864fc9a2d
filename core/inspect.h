// inspect.h - a validated description of a model file (`bitnet-gpu inspect`).
#ifndef BN_INSPECT_H
#define BN_INSPECT_H

#include "error.h"

// Loads path as a BitNet model (every check of bn_model_load) and its embedded
// vocabulary (bn_tokenizer_from_gguf, when the file has one), then describes it:
// architecture, hyperparameters, tokenizer summary, tensor table and totals.
// json != 0: the JSON document of docs/inspect.md; else aligned text.
// Returns a malloc'd NUL-terminated report, or NULL with err set.
char *bn_inspect_report(const char *path, int json, bn_error *err);

#endif
