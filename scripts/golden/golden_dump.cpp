// golden_dump - golden outputs from bitnet.cpp (Microsoft's BitNet reference engine,
// llama.cpp fork) in the format of ../shared/fixtures/tiny-a/tiny-a.golden.json.
//
//   golden_dump [options] MODEL.gguf OUT.json PROMPT [PROMPT...]
//     --n-gen N            tokens to generate per prompt (default 16)
//     --n-ctx N            context size (default: prompt+n_gen rounded up to 256, >= 512)
//     --logits-prefix P    also write the full logit vectors (float32 LE) at
//                          positions[0] and positions[1] to P.case<i>.f32 and
//                          P.case<i>.gen1.f32 and name them in the JSON
//     --model-name NAME    "model" field (default: basename of MODEL.gguf)
//
// Semantics (as the fixture README describes): 1 thread; BOS added (prepended
// if the vocab would not add it); special tokens not parsed; the prompt is fed
// ONE TOKEN PER llama_decode (batch of 1, explicit positions 0,1,2,...), then
// each generated token; greedy argmax (ties -> lowest id); flash attention off;
// f16 KV cache (the fork's default); a fresh context per prompt.
// positions[0] = logits at the last prompt position; positions[i] = logits after
// feeding generated[i-1]; n_gen+1 positions in all. margin = top1 - top2 (float).
// Built and run by scripts/golden/make-golden.sh.
#include "llama.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static void die(const char *msg) { fprintf(stderr, "golden_dump: %s\n", msg); exit(1); }

static std::string json_str(const std::string &s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': o += "\\\""; break;
        case '\\': o += "\\\\"; break;
        case '\n': o += "\\n"; break;
        case '\r': o += "\\r"; break;
        case '\t': o += "\\t"; break;
        default:
            if (c < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", c); o += b; }
            else o += (char)c; // UTF-8 passes through unchanged
        }
    }
    return o + "\"";
}

static std::string fmt_g(double v) { char b[40]; snprintf(b, sizeof b, "%.9g", v); return b; }

static std::string ids_json(const std::vector<llama_token> &v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); i++) { if (i) o += ", "; o += std::to_string(v[i]); }
    return o + "]";
}

struct Pos { int pos; int argmax; float margin; std::vector<std::pair<int, float>> top; };

// top-k by logit, descending; ties -> lower id first (so top[0] is the argmax).
static Pos analyse(const float *lg, int n_vocab, int pos, int k) {
    std::vector<int> idx(n_vocab);
    for (int i = 0; i < n_vocab; i++) idx[i] = i;
    auto better = [lg](int a, int b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
    Pos p;
    p.pos = pos;
    p.argmax = idx[0];
    p.margin = lg[idx[0]] - lg[idx[1]];
    for (int i = 0; i < k; i++) p.top.push_back({idx[i], lg[idx[i]]});
    return p;
}

static void write_f32(const std::string &path, const float *v, int n) {
    FILE *f = fopen(path.c_str(), "wb");
    if (!f || fwrite(v, sizeof(float), n, f) != (size_t)n || fclose(f) != 0) die(("cannot write " + path).c_str());
}

// errors and warnings only, minus the per-token "control token ... is not marked as EOG" noise
static void quiet_log(enum ggml_log_level level, const char *text, void *) {
    if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN) return;
    if (strstr(text, "control token:") && strstr(text, "is not marked as EOG")) return;
    fputs(text, stderr);
}

int main(int argc, char **argv) {
    int n_gen = 16, n_ctx_opt = 0;
    std::string logits_prefix, model_name;
    std::vector<std::string> pos_args;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto need = [&]() { if (i + 1 >= argc) die(("missing value for " + a).c_str()); return std::string(argv[++i]); };
        if (a == "--n-gen") n_gen = atoi(need().c_str());
        else if (a == "--n-ctx") n_ctx_opt = atoi(need().c_str());
        else if (a == "--logits-prefix") logits_prefix = need();
        else if (a == "--model-name") model_name = need();
        else if (a == "-h" || a == "--help") { pos_args.clear(); break; }
        else if (a == "--") { for (i++; i < argc; i++) pos_args.push_back(argv[i]); }
        else pos_args.push_back(a);
    }
    if (pos_args.size() < 3 || n_gen < 1) {
        fprintf(stderr, "usage: golden_dump [--n-gen N] [--n-ctx N] [--logits-prefix P] [--model-name NAME] "
                        "MODEL.gguf OUT.json PROMPT [PROMPT...]\n");
        return 2;
    }
    const std::string model_path = pos_args[0], out_path = pos_args[1];
    std::vector<std::string> prompts(pos_args.begin() + 2, pos_args.end());
    if (model_name.empty()) {
        size_t s = model_path.find_last_of('/');
        model_name = s == std::string::npos ? model_path : model_path.substr(s + 1);
    }

    if (!getenv("GOLDEN_VERBOSE")) llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_load_model_from_file(model_path.c_str(), mp);
    if (!model) die("cannot load model");
    const int n_vocab = llama_n_vocab(model);
    const llama_token bos = llama_token_bos(model);

    // tokenize all prompts first (to size the context)
    std::vector<std::vector<llama_token>> toks;
    size_t max_len = 0;
    for (auto &p : prompts) {
        int n = -llama_tokenize(model, p.c_str(), (int32_t)p.size(), nullptr, 0, true, false);
        std::vector<llama_token> t(std::max(n, 0) + 1);
        n = llama_tokenize(model, p.c_str(), (int32_t)p.size(), t.data(), (int32_t)t.size(), true, false);
        if (n < 0) die("tokenize failed");
        t.resize(n);
        if (t.empty() || t[0] != bos) t.insert(t.begin(), bos);
        max_len = std::max(max_len, t.size());
        toks.push_back(t);
    }
    int n_ctx = n_ctx_opt;
    if (n_ctx <= 0) n_ctx = std::max(512, (int)((max_len + n_gen + 1 + 255) / 256 * 256));

    std::string js;
    js += "{\n";
    js += "  \"model\": " + json_str(model_name) + ",\n";
    js += "  \"n_vocab\": " + std::to_string(n_vocab) + ",\n";
    js += "  \"n_gen\": " + std::to_string(n_gen) + ",\n";
    js += "  \"threads\": 1,\n";
    js += "  \"prompt_eval\": \"one token per llama_decode\",\n";
    js += "  \"add_bos\": true,\n";
    js += "  \"parse_special\": false,\n";
    js += "  \"sampling\": \"greedy argmax (ties -> lowest id)\",\n";
    js += "  \"positions_note\": \"positions[0] = logits at the last prompt position (pick generated[0]); "
          "positions[i] = logits after feeding generated[i-1] at position n_prompt+i-1\",\n";
    js += "  \"cases\": [\n";

    for (size_t ci = 0; ci < prompts.size(); ci++) {
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = n_ctx;
        cp.n_batch = 512;
        cp.n_ubatch = 512;
        cp.n_seq_max = 1;
        cp.n_threads = 1;
        cp.n_threads_batch = 1;
        cp.flash_attn = false;
        cp.logits_all = false;
        cp.embeddings = false;
        cp.type_k = GGML_TYPE_F16;
        cp.type_v = GGML_TYPE_F16;
        llama_context *ctx = llama_new_context_with_model(model, cp);
        if (!ctx) die("cannot create context");

        llama_batch b = llama_batch_init(1, 0, 1);
        int pos = 0;
        auto feed = [&](llama_token t) {
            b.n_tokens = 1;
            b.token[0] = t;
            b.pos[0] = pos++;
            b.n_seq_id[0] = 1;
            b.seq_id[0][0] = 0;
            b.logits[0] = 1;
            if (llama_decode(ctx, b) != 0) die("llama_decode failed");
            return llama_get_logits_ith(ctx, 0);
        };

        const auto &pt = toks[ci];
        const float *lg = nullptr;
        for (llama_token t : pt) lg = feed(t);
        std::vector<Pos> ps;
        std::vector<llama_token> gen;
        std::string f0, f1;
        for (int i = 0; i <= n_gen; i++) {
            ps.push_back(analyse(lg, n_vocab, pos - 1, 10));
            if (!logits_prefix.empty() && i < 2) {
                std::string f = logits_prefix + ".case" + std::to_string(ci) + (i ? ".gen1" : "") + ".f32";
                write_f32(f, lg, n_vocab);
                size_t s = f.find_last_of('/');
                (i ? f1 : f0) = s == std::string::npos ? f : f.substr(s + 1);
            }
            if (i == n_gen) break;
            gen.push_back(ps.back().argmax);
            lg = feed(gen.back());
        }
        llama_batch_free(b);
        llama_free(ctx);

        float min_margin = ps[0].margin;
        for (auto &p : ps) min_margin = std::min(min_margin, p.margin);

        js += "    {\n";
        js += "      \"prompt\": " + json_str(prompts[ci]) + ",\n";
        js += "      \"prompt_ids\": " + ids_json(pt) + ",\n";
        js += "      \"generated_ids\": " + ids_json(gen) + ",\n";
        if (!f0.empty()) {
            js += "      \"logits_f32\": " + json_str(f0) + ",\n";
            js += "      \"logits_gen1_f32\": " + json_str(f1) + ",\n";
        }
        js += "      \"min_margin\": " + fmt_g(min_margin) + ",\n";
        js += "      \"positions\": [\n";
        for (size_t i = 0; i < ps.size(); i++) {
            const Pos &p = ps[i];
            js += "        {\"pos\": " + std::to_string(p.pos) + ", \"argmax\": " + std::to_string(p.argmax) +
                  ", \"margin\": " + fmt_g(p.margin) + ", \"top10\": [";
            for (size_t k = 0; k < p.top.size(); k++) {
                if (k) js += ", ";
                js += "[" + std::to_string(p.top[k].first) + ", " + fmt_g(p.top[k].second) + "]";
            }
            js += "]}";
            js += i + 1 < ps.size() ? ",\n" : "\n";
        }
        js += "      ]\n";
        js += ci + 1 < prompts.size() ? "    },\n" : "    }\n";
        fprintf(stderr, "golden_dump: case %zu: %zu prompt tokens, min_margin %.4f\n", ci, pt.size(), min_margin);
    }
    js += "  ]\n}\n";

    FILE *f = fopen(out_path.c_str(), "w");
    if (!f || fwrite(js.data(), 1, js.size(), f) != js.size() || fclose(f) != 0) die("cannot write output");
    llama_free_model(model);
    llama_backend_free();
    return 0;
}
