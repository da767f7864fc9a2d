"""model.py - the BitNet b1.58 graph this runtime runs, for quantization-aware training.

Same graph as cpu/forward.c: per layer
    x += W_o . quant(rmsnorm(attn(rope(W_q h), rope(W_k h), W_v h), attn_sub_norm)),
         h = quant(rmsnorm(x, attn_norm))
    x += W_down . quant(rmsnorm(relu(W_gate h)^2 * W_up h, ffn_sub_norm)),
         h = quant(rmsnorm(x, ffn_norm))
    logits = f16(rmsnorm(x, output_norm)) . f16(E)^T     (E tied with the input embedding)
GQA (query head i reads KV head i // (n_head / n_head_kv)), NEOX RoPE (pairs i, i + d/2).

Quantization as BitNet b1.58 trains it, with straight-through gradients:
  weights: t = clamp(round(W / g), -1, 1), g = mean|W| (one scale per tensor),
           and the matmul uses t * g: exactly the I2_S codes and scale exported;
  activations: int8 absmax per token, s = 127 / max|x|, q = clamp(round(x s), -128, 127).
Q, K and V pass through f16 (the runtime's KV cache), as do the embedding and the
LM head's input. The exact-rounding evaluation lives in reference.py.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

QUANT_MIN_ABSMAX = 1e-5  # cpu/kernels_scalar.c BN_QUANT_MIN_ABSMAX


class Config:
    def __init__(self, n_vocab=4096, n_embd=256, n_layer=6, n_head=4, n_head_kv=2, n_ff=768,
                 n_ctx=512, rope_base=500000.0, norm_eps=1e-5):
        self.n_vocab, self.n_embd, self.n_layer = n_vocab, n_embd, n_layer
        self.n_head, self.n_head_kv, self.n_ff = n_head, n_head_kv, n_ff
        self.n_ctx, self.rope_base, self.norm_eps = n_ctx, rope_base, norm_eps
        self.head_dim = n_embd // n_head

    def as_dict(self):
        return dict(vars(self))


def ste(x, y):
    """y in the forward pass, the identity's gradient in the backward pass."""
    return x + (y - x).detach()


def f16(x):
    return ste(x, x.half().float())


def ternarize(w):
    """(t, g): t in {-1, 0, 1} with w ~ t * g, g = mean|w| as float32."""
    g = w.abs().mean().clamp(min=1e-5)
    return (w / g).round().clamp(-1, 1), g


def quant_act(x):
    s = 127.0 / x.abs().amax(-1, keepdim=True).clamp(min=QUANT_MIN_ABSMAX)
    return ste(x, (x * s).round().clamp(-128, 127) / s)


class BitLinear(nn.Module):
    def __init__(self, k, n):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, k) * 0.02)

    def forward(self, x):
        t, g = ternarize(self.weight)
        return F.linear(quant_act(x), ste(self.weight, t * g))


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, n):
    """cos, sin [n, head_dim/2] for NEOX RoPE, theta_i = pos * base^(-2i/d)."""
    half = cfg.head_dim // 2
    inv = cfg.rope_base ** (-2.0 * torch.arange(half, dtype=torch.float64) / cfg.head_dim)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def rope(x, cos, sin):
    """x [B, H, T, D]: rotates (x_i, x_{i+D/2}) by the position's angle."""
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E, KV, Fd = cfg.n_embd, cfg.n_head_kv * cfg.head_dim, cfg.n_ff
        self.cfg = cfg
        self.attn_norm = RMSNorm(E, cfg.norm_eps)
        self.wq, self.wk, self.wv = BitLinear(E, E), BitLinear(E, KV), BitLinear(E, KV)
        self.attn_sub_norm = RMSNorm(E, cfg.norm_eps)
        self.wo = BitLinear(E, E)
        self.ffn_norm = RMSNorm(E, cfg.norm_eps)
        self.w_gate, self.w_up = BitLinear(E, Fd), BitLinear(E, Fd)
        self.ffn_sub_norm = RMSNorm(Fd, cfg.norm_eps)
        self.w_down = BitLinear(Fd, E)

    def forward(self, x, cos, sin):
        c = self.cfg
        B, T, E = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, c.n_head, c.head_dim).transpose(1, 2)
        k = self.wk(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        v = self.wv(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        q, k, v = f16(rope(q, cos, sin)), f16(rope(k, cos, sin)), f16(v)
        group = c.n_head // c.n_head_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        a = a.transpose(1, 2).reshape(B, T, E)
        x = x + self.wo(self.attn_sub_norm(a))
        h = self.ffn_norm(x)
        m = F.relu(self.w_gate(h)).square() * self.w_up(h)
        return x + self.w_down(self.ffn_sub_norm(m))


class BitNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embd = nn.Parameter(torch.randn(cfg.n_vocab, cfg.n_embd) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.output_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)

    def forward(self, tokens):
        T = tokens.shape[1]
        cos, sin = rope_tables(self.cfg, T)
        E = f16(self.embd)
        x = E[tokens]
        for b in self.blocks:
            x = b(x, cos, sin)
        return f16(self.output_norm(x)) @ E.t()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def lr_at(step, steps, peak, warmup, floor):
    """Linear warmup, then cosine decay from peak to floor."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * p))
