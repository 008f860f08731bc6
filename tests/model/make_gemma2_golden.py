#!/usr/bin/python3
"""Regenerates tests/data/gemma2_golden.bin: logits, loss and gradients of a tiny Gemma 2 computed
by PyTorch, for tests/model/model_test.cpp. Run: /usr/bin/python3 tests/model/make_gemma2_golden.py
(Debian's python3-torch). The model is Gemma 2's (Hugging Face's Gemma2Model, with the RMSNorm
gains stored as llama.cpp's converter stores them, 1 already added): token embeddings times
sqrt(C); per block x += post_attn_norm(attn(attn_norm(x))), x += post_ffw_norm(MLP(ffn_norm(x)))
with RMSNorm; q, k, v of a head size D other than C/H, grouped-query heads, RoPE in NEOX order
(rotate_half, base 10000), scores scaled by 1/sqrt(D) and soft-capped, cap * tanh(s / cap); an
MLP of GELU (tanh form) of the gate times the up projection; then a final RMSNorm, the head tied
to the embeddings, and the logits soft-capped. Every sequence is inside the sliding window.
Weights N(0, 0.3) from torch.manual_seed(2468), norm gains 1 + N(0, 0.1).

File layout, little-endian: b"LMGEMMA2"; i32 V, T, L, C, H, Hkv, D, F, B; f32 norm_eps,
attention soft-cap, final soft-cap; i32 tokens[B*T]; i32 targets[B*T] (-1 = not scored); f32
weights in lm's parameter order (token_embd; per layer attn_norm, attn_q [H*D][C], attn_k
[Hkv*D][C], attn_v, attn_output [C][H*D], ffn_norm, ffn_gate [F][C], ffn_up, ffn_down [C][F];
then per layer post_attention_norm, post_ffw_norm; then output_norm), each row-major
[out][in]; f32 logits[B*T*V]; f32 mean loss; f32 gradients in the same order as the weights.
"""
import struct

import torch

from make_golden import write_golden  # this directory's script: the file's common body

V, T, L, C, H, HKV, D, F, B = 41, 9, 2, 16, 4, 2, 6, 28, 2
EPS, ATTN_CAP, FINAL_CAP = 1e-5, 2.0, 3.0


def main():
    torch.manual_seed(2468)
    dt = torch.float64  # the reference is computed in double precision
    params = []

    def param(*shape, norm=False):
        t = 1 + 0.1 * torch.randn(*shape, dtype=dt) if norm else 0.3 * torch.randn(*shape, dtype=dt)
        t = t.float().double()  # the weights C++ reads are float32: compute with exactly those
        t.requires_grad_(True)
        params.append(t)
        return t

    wte = param(V, C)
    layers = [dict(n1=param(C, norm=True), wq=param(H * D, C), wk=param(HKV * D, C), wv=param(HKV * D, C),
                   wo=param(C, H * D), n2=param(C, norm=True), wg=param(F, C), wu=param(F, C), wd=param(C, F))
              for _ in range(L)]
    for p in layers:
        p["pa"], p["pf"] = param(C, norm=True), param(C, norm=True)
    nf = param(C, norm=True)

    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[1, 3] = -1

    def rms(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * w

    inv = 10000.0 ** (-torch.arange(0, D, 2, dtype=dt) / D)
    ang = torch.arange(T, dtype=dt)[:, None] * inv[None]  # (T, D/2)
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rope(x):  # x (B, T, heads, D), NEOX order: pairs (i, i + D/2)
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        rot = torch.cat([-x2, x1], -1)
        return x * cos[None, :, None] + rot * sin[None, :, None]

    x = wte[tokens] * C ** 0.5
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for p in layers:
        h = rms(x, p["n1"])
        q = rope((h @ p["wq"].T).reshape(B, T, H, D))
        k = rope((h @ p["wk"].T).reshape(B, T, HKV, D)).repeat_interleave(H // HKV, dim=2)
        v = (h @ p["wv"].T).reshape(B, T, HKV, D).repeat_interleave(H // HKV, dim=2)
        s = torch.einsum("bthd,bshd->bhts", q, k) / D ** 0.5
        s = ATTN_CAP * torch.tanh(s / ATTN_CAP)
        a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        o = torch.einsum("bhts,bshd->bthd", a, v).reshape(B, T, H * D)
        x = x + rms(o @ p["wo"].T, p["pa"])
        h2 = rms(x, p["n2"])
        m = torch.nn.functional.gelu(h2 @ p["wg"].T, approximate="tanh") * (h2 @ p["wu"].T)
        x = x + rms(m @ p["wd"].T, p["pf"])
    logits = rms(x, nf) @ wte.T
    logits = FINAL_CAP * torch.tanh(logits / FINAL_CAP)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    loss.backward()

    write_golden("gemma2_golden.bin", b"LMGEMMA2", struct.pack("<9i", V, T, L, C, H, HKV, D, F, B) +
                 struct.pack("<3f", EPS, ATTN_CAP, FINAL_CAP), tokens, targets, params, logits, loss)


if __name__ == "__main__":
    main()
