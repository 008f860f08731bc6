#!/usr/bin/python3
"""Regenerates tests/data/golden_tiny.bin: logits, loss and gradients of a tiny Llama-style model
computed by PyTorch, for tests/model/model_test.cpp. Run: /usr/bin/python3 tests/model/make_golden.py
(Debian's python3-torch). The model is lm's (docs/architecture.md): RMSNorm, adjacent-pair RoPE
(llama.cpp rope type NORM), grouped-query attention (head h reads kv head h // (H/Hkv)),
SwiGLU, tied embeddings. Weights are N(0, 0.3) from torch.manual_seed(1234) (large enough that
every term matters), norm gains 1 + N(0, 0.1).

File layout, little-endian: b"LMGOLD1\\0"; i32 V, T, L, C, H, Hkv, F, tied, B;
f32 norm_eps, rope_base; i32 tokens[B*T]; i32 targets[B*T] (-1 = not scored);
f32 weights in lm's parameter order (token_embd, per layer attn_norm, attn_q, attn_k, attn_v,
attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, then output_norm), each row-major [out][in];
f32 logits[B*T*V]; f32 mean loss; f32 gradients in the same order as the weights.
"""
import os
import struct

import torch

V, T, L, C, H, HKV, F, B = 61, 7, 2, 32, 4, 2, 48, 2
EPS, BASE = 1e-5, 10000.0
D = C // H


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x):  # x: [B, T, heads, D], rotate adjacent pairs by t * BASE^(-2i/D)
    inv = 1.0 / (BASE ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def main():
    torch.manual_seed(1234)
    dt = torch.float64  # the reference is computed in double precision
    names, params = [], []

    def param(name, *shape, norm=False):
        t = (1 + 0.1 * torch.randn(*shape, dtype=dt)) if norm else 0.3 * torch.randn(*shape, dtype=dt)
        t = t.float().double()  # the weights C++ reads are float32: compute with exactly those
        t.requires_grad_(True)
        names.append(name)
        params.append(t)
        return t

    emb = param("token_embd", V, C)
    layers = []
    for l in range(L):
        layers.append(dict(an=param("attn_norm", C, norm=True), wq=param("attn_q", C, C), wk=param("attn_k", HKV * D, C),
                           wv=param("attn_v", HKV * D, C), wo=param("attn_output", C, C),
                           fn=param("ffn_norm", C, norm=True), wg=param("ffn_gate", F, C), wu=param("ffn_up", F, C),
                           wd=param("ffn_down", C, F)))
    on = param("output_norm", C, norm=True)

    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[1, 3] = -1

    x = emb[tokens]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for p in layers:
        n1 = rmsnorm(x, p["an"])
        q = rope((n1 @ p["wq"].T).view(B, T, H, D))
        k = rope((n1 @ p["wk"].T).view(B, T, HKV, D))
        v = (n1 @ p["wv"].T).view(B, T, HKV, D)
        k = k.repeat_interleave(H // HKV, dim=2)
        v = v.repeat_interleave(H // HKV, dim=2)
        s = torch.einsum("bthd,bshd->bhts", q, k) / D ** 0.5
        a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        o = torch.einsum("bhts,bshd->bthd", a, v).reshape(B, T, C)
        x = x + o @ p["wo"].T
        n2 = rmsnorm(x, p["fn"])
        x = x + (torch.nn.functional.silu(n2 @ p["wg"].T) * (n2 @ p["wu"].T)) @ p["wd"].T
    logits = rmsnorm(x, on) @ emb.T
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)
    loss.backward()

    write_golden("golden_tiny.bin", b"LMGOLD1\0", struct.pack("<9i", V, T, L, C, H, HKV, F, 1, B) +
                 struct.pack("<2f", EPS, BASE), tokens, targets, params, logits, loss)


def write_golden(name, magic, header, tokens, targets, params, logits, loss):
    """Writes tests/data/NAME: magic, header (packed bytes), tokens and targets as i32, each
    parameter as f32, the logits, the loss, then each parameter's gradient; prints the loss."""
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", name)
    with open(out, "wb") as f:
        f.write(magic)
        f.write(header)
        f.write(tokens.to(torch.int32).numpy().astype("<i4").tobytes())
        f.write(targets.to(torch.int32).numpy().astype("<i4").tobytes())
        for t in params:
            f.write(t.detach().to(torch.float32).numpy().astype("<f4").tobytes())
        f.write(logits.detach().to(torch.float32).numpy().astype("<f4").tobytes())
        f.write(struct.pack("<f", loss.item()))
        for t in params:
            f.write(t.grad.to(torch.float32).numpy().astype("<f4").tobytes())
    print(f"wrote {out}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
