// default_model.h - the model a command runs when it is given no -m, as
// llama.cpp's tools fall back on a default path: the model `download` fetches,
// else the small model that ships with bitnet-gpu.
#ifndef BN_DEFAULT_MODEL_H
#define BN_DEFAULT_MODEL_H

// What `bitnet-gpu download` fetches by default, and where it puts it.
#define BN_HUB_DEFAULT_REPO "microsoft/bitnet-b1.58-2B-4T-gguf"
#define BN_HUB_DEFAULT_FILE "ggml-model-i2_s.gguf"
#define BN_DOWNLOAD_DIR "models" // relative to the working directory
// The model trained for this project (train/README.md): models/ in the source
// tree, share/bitnet-gpu/ under an install prefix.
#define BN_SHIPPED_MODEL "bitnet-austen-6m.gguf"

// The first of:
//   $BITNET_MODEL, when set (then it must be a file);
//   models/ggml-model-i2_s.gguf under the working directory (`download`'s file);
//   the shipped model, found from this executable's own path: PREFIX/bin's
//   ../share/bitnet-gpu/ when installed, a build directory's ../models/ in the
//   source tree.
// Says on stderr which one it took and why. When there is none: one error line
// for cmd ("generate", ...) and NULL. The path stays valid until the next call.
const char *bn_default_model(const char *cmd);

#endif
