"""export.py - the trained checkpoint -> a weight file -> the GGUF model.

    python train/export.py [--out train/out] [--model models/bitnet-austen-6m.gguf]
                           [--cli build/bitnet-gpu]

Writes out/weights.bin (devtools/weights_file.h) with, for every tensor in the GGUF's
order, exactly what the QAT forward pass used: the f16 embedding, the float32
norms, and each projection's ternary codes t and float32 scale g (model.ternarize).
Then `bitnet-gpu make-model --weights` packs the codes to I2_S and writes the GGUF
through the project's writer, with the vocabulary from out/tokenizer.json.
"""
import argparse
import os
import struct
import subprocess

import numpy as np
import torch

import model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NAME = "bitnet-austen-6m"
KIND_F32, KIND_F16, KIND_TERNARY = 0, 1, 2  # devtools/weights_file.h


def tensors(m):
    """(gguf name, kind, ne, payload bytes) in the GGUF's tensor order."""
    cfg = m.cfg

    def norm(name, mod):
        w = mod.weight.detach().float().numpy()
        return name, KIND_F32, [w.shape[0]], w.astype("<f4").tobytes()

    def ternary(name, mod):
        t, g = model.ternarize(mod.weight.detach().float())
        t8 = t.numpy().astype(np.int8)  # [rows, K]: K contiguous, as ggml's ne[0]
        return (name, KIND_TERNARY, [t8.shape[1], t8.shape[0]],
                t8.tobytes() + struct.pack("<f", g.item()))

    e = m.embd.detach().float().numpy()
    yield "token_embd.weight", KIND_F16, [cfg.n_embd, cfg.n_vocab], e.astype("<f2").tobytes()
    for i, b in enumerate(m.blocks):
        p = "blk.%d." % i
        yield norm(p + "attn_norm.weight", b.attn_norm)
        yield ternary(p + "attn_q.weight", b.wq)
        yield ternary(p + "attn_k.weight", b.wk)
        yield ternary(p + "attn_v.weight", b.wv)
        yield ternary(p + "attn_output.weight", b.wo)
        yield norm(p + "attn_sub_norm.weight", b.attn_sub_norm)
        yield norm(p + "ffn_norm.weight", b.ffn_norm)
        yield ternary(p + "ffn_gate.weight", b.w_gate)
        yield ternary(p + "ffn_up.weight", b.w_up)
        yield ternary(p + "ffn_down.weight", b.w_down)
        yield norm(p + "ffn_sub_norm.weight", b.ffn_sub_norm)
    yield norm("output_norm.weight", m.output_norm)


def write_weights(m, path):
    items = list(tensors(m))
    with open(path, "wb") as f:
        f.write(b"BNWEIGHT" + struct.pack("<II", 1, len(items)))
        for name, kind, ne, data in items:
            f.write(struct.pack("<I", len(name)) + name.encode())
            f.write(struct.pack("<II", kind, len(ne)) + struct.pack("<%dQ" % len(ne), *ne))
            f.write(data)


def load(ckpt):
    state = torch.load(ckpt)
    cfg = model.Config(**{k: v for k, v in state["config"].items() if k != "head_dim"})
    m = model.BitNet(cfg)
    m.load_state_dict(state["model"])
    return m.eval(), state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", NAME + ".gguf"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "bitnet-gpu"))
    args = ap.parse_args()
    m, _ = load(os.path.join(args.out, "ckpt.pt"))
    c = m.cfg
    # make-model's preset fixes these two; the GGUF must hold what training used
    assert c.rope_base == 500000.0 and c.norm_eps == 1e-5, (c.rope_base, c.norm_eps)
    weights = os.path.join(args.out, "weights.bin")
    write_weights(m, weights)
    os.makedirs(os.path.dirname(os.path.abspath(args.model)), exist_ok=True)
    subprocess.run([args.cli, "make-model", "-o", args.model, "--hidden", str(c.n_embd),
                    "--ffn", str(c.n_ff), "--layers", str(c.n_layer), "--heads", str(c.n_head),
                    "--kv-heads", str(c.n_head_kv), "--ctx", str(c.n_ctx),
                    "--vocab", os.path.join(args.out, "tokenizer.json"),
                    "--weights", weights, "--name", NAME], check=True)
    subprocess.run([args.cli, "inspect", args.model], check=True, stdout=subprocess.DEVNULL)
    print("wrote", args.model)


if __name__ == "__main__":
    main()
