"""train.py - trains the small BitNet b1.58 model (QAT) on Jane Austen's novels.

    python train/train.py [--out train/out] [--steps 900]

Reproducible: seed 1, the fixed corpus split of corpus.py, batch b of step s drawn
from a generator seeded with (seed, s), one thread. Writes into --out:
tokenizer.json, ckpt.pt (every 100 steps and at the end; a rerun resumes from it),
log.txt. export.py turns ckpt.pt into the GGUF.
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import corpus
import model
import tokenizer

SEED = 1
HERE = os.path.dirname(os.path.abspath(__file__))


def data(out, vocab_size):
    """(tokenizer, train ids, valid ids, train paragraph starts), cached in out."""
    train_text, valid_text = corpus.load(out)
    tok_path = os.path.join(out, "tokenizer.json")
    if os.path.exists(tok_path):  # a resumed run keeps its vocabulary
        tok = tokenizer.Tokenizer.from_file(tok_path)
    else:
        tok = tokenizer.train(train_text, vocab_size, tok_path)
    cache = os.path.join(out, "tokens.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        return tok, z["train"], z["valid"], z["starts"]
    paras = train_text.split("\n\n")
    ids, starts = [], []
    for i, p in enumerate(paras):
        starts.append(len(ids))
        ids.extend(tokenizer.encode(tok, p + ("\n\n" if i + 1 < len(paras) else "")))
    tr = np.array(ids, dtype=np.int32)
    va = np.array(tokenizer.encode(tok, valid_text), dtype=np.int32)
    st = np.array(starts, dtype=np.int64)
    np.savez(cache, train=tr, valid=va, starts=st)
    return tok, tr, va, st


def batch(step, ids, starts, bos, B, T):
    """B windows of [BOS] + T tokens (inputs = first T, targets = last T). Half start
    at a paragraph, half anywhere, so the model sees both beginnings and middles."""
    g = torch.Generator().manual_seed(SEED * 1_000_003 + step)
    limit = len(ids) - T
    rows = []
    for b in range(B):
        if b % 2 == 0:
            s = int(starts[torch.randint(len(starts), (1,), generator=g)])
            s = min(s, limit)
        else:
            s = int(torch.randint(limit, (1,), generator=g))
        rows.append(np.concatenate([[bos], ids[s:s + T]]))
    x = torch.from_numpy(np.stack(rows).astype(np.int64))
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(m, ids, bos, T):
    """Mean loss (nats/token) over the split: windows of T tokens, each after BOS."""
    m.eval()
    total, n = 0.0, 0
    for s in range(0, len(ids), T):
        chunk = ids[s:s + T]
        x = torch.from_numpy(np.concatenate([[bos], chunk[:-1]]).astype(np.int64))[None]
        y = torch.from_numpy(chunk.astype(np.int64))[None]
        logits = m(x)
        total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
        n += y.shape[1]
    m.train()
    return total / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)
    tok, tr, va, starts = data(args.out, args.vocab)
    bos = tok.token_to_id(tokenizer.BOS)
    cfg = model.Config(n_vocab=tok.get_vocab_size())
    m = model.BitNet(cfg)
    decay = [p for n, p in m.named_parameters() if p.dim() == 2 and n != "embd"]
    other = [p for n, p in m.named_parameters() if not (p.dim() == 2 and n != "embd")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    ckpt = os.path.join(args.out, "ckpt.pt")
    step, elapsed = 0, 0.0
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        m.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
    log = open(os.path.join(args.out, "log.txt"), "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    if step == 0:
        say("params %d, train %d tokens, valid %d tokens, config %s" %
            (model.n_params(m), len(tr), len(va), cfg.as_dict()))

    def save():
        torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "config": cfg.as_dict()}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    while step < args.steps:
        t0 = time.time()
        lr = model.lr_at(step, args.steps, args.lr, 100, args.lr / 10)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = batch(step, tr, starts, bos, args.batch, args.seq)
        loss = F.cross_entropy(m(x).reshape(-1, cfg.n_vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        if step % 10 == 0:
            say("step %d loss %.4f lr %.2e %.0f s" % (step, loss.item(), lr, elapsed))
        if step % 100 == 0 or step == args.steps:
            save()
        if step % 300 == 0 or step == args.steps:
            say("step %d valid loss %.4f" % (step, evaluate(m, va, bos, args.seq)))
    say("done: %d steps, %d tokens, %.0f s" % (step, step * args.batch * args.seq, elapsed))


if __name__ == "__main__":
    main()
