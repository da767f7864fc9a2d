"""reference.py - the trained model's forward pass with the runtime's rounding, and the
reference file the C test (tests/test_trained_model.c) checks the runtime against.

    python train/reference.py [--out train/out]

Reads the exported weights (out/weights.bin: the exact codes, scales, f16 embedding
and norms in the GGUF) and runs one token at a time, as cpu/forward.c does, with
its rounding: rmsnorm sums in double; int8 absmax quantization with
round-half-even; exact integer ternary sums scaled as acc / s * g; RoPE with a
float32 running theta; Q, K and V rounded to f16; scores and outputs summed
element by element in float32; softmax denominators in double over 8 interleaved
partial sums, probabilities rounded to f16; the LM head's input rounded to f16.
So this is an independent twin of the runtime's arithmetic, summing in plain
orders where the runtime follows ggml's (to match bitnet.cpp bit for bit): the
two agree to ~1e-5 until an int8 rounding lands on the other side of a .5, and
the C test allows for that (tests/test_trained_model.c).

Writes tests/data/bitnet-austen-6m.ref.json: for each prompt its ids (from HF
`tokenizers`), 64 greedy ids, and at every step the margin and the top-10
(id, logit). Also prints the largest logit difference between this path and the
QAT training forward (model.py) on the same tokens.
"""
import argparse
import json
import os
import struct

import numpy as np
import torch

import export
import tokenizer

F32, F64 = np.float32, np.float64
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N_GEN = 64
PROMPTS = [
    "Once upon a time",
    "It is a truth universally acknowledged",
    "Mr. Darcy",
    "She was",
    "\"My dear Emma,\" said",
    "The family of",
    "In the morning, Elizabeth",
    "I do not know",
]


def read_weights(path):
    """{name: array}: ternary tensors as (int8 [rows, K], float32 scale)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"BNWEIGHT"
    _, n = struct.unpack_from("<II", data, 8)
    p, out = 16, {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", data, p)
        name = data[p + 4:p + 4 + ln].decode()
        p += 4 + ln
        kind, nd = struct.unpack_from("<II", data, p)
        ne = struct.unpack_from("<%dQ" % nd, data, p + 8)
        p += 8 + 8 * nd
        count = int(np.prod(ne))
        shape = tuple(reversed(ne))
        if kind == export.KIND_TERNARY:
            t = np.frombuffer(data, np.int8, count, p).reshape(shape).astype(np.int64)
            (g,) = struct.unpack_from("<f", data, p + count)
            out[name] = (t, F32(g))
            p += count + 4
        else:
            dt, size = (np.dtype("<f4"), 4) if kind == export.KIND_F32 else (np.dtype("<f2"), 2)
            out[name] = np.frombuffer(data, dt, count, p).reshape(shape)
            p += count * size
    assert p == len(data)
    return out


def rmsnorm(x, w, eps):
    ss = np.sum(x.astype(F64) ** 2)
    scale = F32(1.0) / np.sqrt(F32(ss / x.shape[0]) + F32(eps))
    return (x * scale) * w


def bitlinear(x, tg):
    t, g = tg
    amax = max(F32(1e-5), np.max(np.abs(x)))
    s = F32(127.0) / amax
    q = np.clip(np.rint(x * s), -128, 127).astype(np.int64)
    acc = t @ q  # exact
    return acc.astype(F32) / s * g


def f16(x):
    return x.astype(np.float16).astype(F32)


def seq_sum(x, axis):
    """Sum in float32, one element after another (the scalar kernels' order)."""
    return np.add.accumulate(x, axis=axis, dtype=F32).take(-1, axis=axis)


class Runtime:
    """One sequence, one token per step, KV cache in f16 (cpu/forward.c)."""

    def __init__(self, w, cfg):
        self.w, self.c = w, cfg
        self.k = [[] for _ in range(cfg.n_layer)]
        self.v = [[] for _ in range(cfg.n_layer)]
        self.emb = w["token_embd.weight"].astype(F32)  # [vocab, embd]
        d = cfg.head_dim
        self.theta_scale = F32(np.power(F64(cfg.rope_base), F64(-2.0 / d)))

    def rope(self, x, n_head, pos):
        d = self.c.head_dim
        half = d // 2
        x = x.reshape(n_head, d).copy()
        theta = F32(pos)
        for i in range(half):
            c, s = F32(np.cos(F64(theta))), F32(np.sin(F64(theta)))
            x0, x1 = x[:, i].copy(), x[:, i + half].copy()
            x[:, i] = x0 * c - x1 * s
            x[:, i + half] = x0 * s + x1 * c
            theta = F32(theta * self.theta_scale)
        return x.reshape(-1)

    def attention(self, q, layer):
        c = self.c
        d, group = c.head_dim, c.n_head // c.n_head_kv
        K = np.stack(self.k[layer])  # [n_kv, n_head_kv * d], f16 values as f32
        V = np.stack(self.v[layer])
        scale = F32(1.0) / np.sqrt(F32(d))
        out = np.empty(c.n_embd, F32)
        for h in range(c.n_head):
            kv = h // group
            qh = q[h * d:(h + 1) * d]
            Kh, Vh = K[:, kv * d:(kv + 1) * d], V[:, kv * d:(kv + 1) * d]
            sc = seq_sum(qh[None, :] * Kh, axis=1) * scale
            e = F32(np.exp((sc - sc.max()).astype(F64)))
            part = [np.add.accumulate(e[k::8].astype(F64))[-1] if len(e[k::8]) else 0.0
                    for k in range(8)]
            total = ((part[0] + part[4]) + (part[2] + part[6])) + \
                    ((part[1] + part[5]) + (part[3] + part[7]))
            p = f16(e * F32(1.0 / total))
            out[h * d:(h + 1) * d] = seq_sum(p[:, None] * Vh, axis=0)
        return out

    def step(self, token, pos):
        c, w = self.c, self.w
        x = self.emb[token].copy()
        for i in range(c.n_layer):
            b = "blk.%d." % i
            h = rmsnorm(x, w[b + "attn_norm.weight"], c.norm_eps)
            q = bitlinear(h, w[b + "attn_q.weight"])
            k = bitlinear(h, w[b + "attn_k.weight"])
            v = bitlinear(h, w[b + "attn_v.weight"])
            q = f16(self.rope(q, c.n_head, pos))
            self.k[i].append(f16(self.rope(k, c.n_head_kv, pos)))
            self.v[i].append(f16(v))
            a = rmsnorm(self.attention(q, i), w[b + "attn_sub_norm.weight"], c.norm_eps)
            x = x + bitlinear(a, w[b + "attn_output.weight"])
            h = rmsnorm(x, w[b + "ffn_norm.weight"], c.norm_eps)
            g = bitlinear(h, w[b + "ffn_gate.weight"])
            u = bitlinear(h, w[b + "ffn_up.weight"])
            r = np.maximum(g, F32(0))
            m = rmsnorm((r * r) * u, w[b + "ffn_sub_norm.weight"], c.norm_eps)
            x = x + bitlinear(m, w[b + "ffn_down.weight"])
        h = f16(rmsnorm(x, w["output_norm.weight"], c.norm_eps))
        return seq_sum(self.emb * h[None, :], axis=1)


def greedy(w, cfg, ids, n_gen):
    """(n_gen greedy ids, logits [n_gen + 1, vocab]: after the prompt, then after
    each generated id)."""
    rt = Runtime(w, cfg)
    for pos, t in enumerate(ids):
        logits = rt.step(t, pos)
    rows, gen = [logits], []
    for s in range(n_gen):  # row s + 1: after generated token s
        gen.append(int(np.argmax(logits)))
        logits = rt.step(gen[-1], len(ids) + s)
        rows.append(logits)
    return gen, np.stack(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--ref", default=os.path.join(ROOT, "tests", "data",
                                                  export.NAME + ".ref.json"))
    args = ap.parse_args()
    m, _ = export.load(os.path.join(args.out, "ckpt.pt"))
    cfg = m.cfg
    w = read_weights(os.path.join(args.out, "weights.bin"))
    tok = tokenizer.Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
    bos = tok.token_to_id(tokenizer.BOS)
    cases, qat_max = [], 0.0
    for prompt in PROMPTS:
        ids = [bos] + tokenizer.encode(tok, prompt)
        gen, rows = greedy(w, cfg, ids, N_GEN)
        with torch.no_grad():  # the QAT forward on the same tokens
            qat = m(torch.tensor([ids + gen]))[0, len(ids) - 1:].numpy()
        qat_max = max(qat_max, float(np.max(np.abs(qat - rows))))
        steps = []
        for r in rows:
            top = np.argsort(-r, kind="stable")[:10]
            steps.append({"margin": float(r[top[0]] - r[top[1]]),
                          "top10": [[int(i), float(r[i])] for i in top]})
        cases.append({"prompt": prompt, "prompt_ids": ids, "generated_ids": gen,
                      "text": tok.decode(gen), "steps": steps})
        print(json.dumps(prompt), "->", json.dumps(tok.decode(gen)))
    os.makedirs(os.path.dirname(args.ref), exist_ok=True)
    with open(args.ref, "w") as f:
        json.dump({"model": export.NAME, "n_gen": N_GEN, "cases": cases}, f)
    print("QAT forward vs the runtime-rounding path: max |logit diff| %.4g" % qat_max)
    print("wrote", args.ref)


if __name__ == "__main__":
    main()
