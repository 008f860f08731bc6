#!/usr/bin/python3
"""Regenerates tests/data/gpt2_golden.bin: logits, loss and gradients of a tiny GPT-2 computed by
PyTorch, for tests/model/model_test.cpp. Run: /usr/bin/python3 tests/model/make_gpt2_golden.py
(Debian's python3-torch). The model is GPT-2's (Radford et al. 2019; Hugging Face's GPT2Model):
token plus learned position embeddings; per block x += attn(LN1(x)), x += MLP(LN2(x)) with
LayerNorm (eps 1e-5, weight and bias), q/k/v one linear layer with a bias, causal attention
scaled by 1/sqrt(head size), an output projection with a bias, an MLP of GELU in its tanh form
(GPT-2's gelu_new) with biases; then a final LayerNorm and the head tied to the token
embeddings. Weights N(0, 0.3) from torch.manual_seed(4321), biases N(0, 0.1), norm gains
1 + N(0, 0.1) (large enough that every term matters).

File layout, little-endian: b"LMGPT21\\0"; i32 V, T, L, C, H, F, B; f32 norm_eps;
i32 tokens[B*T]; i32 targets[B*T] (-1 = not scored); f32 weights in lm's gpt2 parameter order
(token_embd, position_embd, per layer attn_norm weight and bias, attn_qkv weight [3C][C] (q
rows, then k, then v) and bias, attn_output weight and bias, ffn_norm weight and bias, ffn_up
weight and bias, ffn_down weight and bias, then output_norm weight and bias), each row-major
[out][in]; f32 logits[B*T*V]; f32 mean loss; f32 gradients in the same order as the weights.
"""
import struct

import torch

from make_golden import write_golden  # this directory's script: the file's common body

V, T, L, C, H, F, B = 53, 9, 2, 24, 3, 40, 2
EPS = 1e-5
D = C // H


def main():
    torch.manual_seed(4321)
    dt = torch.float64  # the reference is computed in double precision
    params = []

    def param(*shape, kind="w"):
        if kind == "norm":
            t = 1 + 0.1 * torch.randn(*shape, dtype=dt)
        elif kind == "bias":
            t = 0.1 * torch.randn(*shape, dtype=dt)
        else:
            t = 0.3 * torch.randn(*shape, dtype=dt)
        t = t.float().double()  # the weights C++ reads are float32: compute with exactly those
        t.requires_grad_(True)
        params.append(t)
        return t

    wte = param(V, C)
    wpe = param(T, C)
    layers = []
    for _ in range(L):
        layers.append(dict(n1w=param(C, kind="norm"), n1b=param(C, kind="bias"),
                           wqkv=param(3 * C, C), bqkv=param(3 * C, kind="bias"),
                           wo=param(C, C), bo=param(C, kind="bias"),
                           n2w=param(C, kind="norm"), n2b=param(C, kind="bias"),
                           wu=param(F, C), bu=param(F, kind="bias"),
                           wd=param(C, F), bd=param(C, kind="bias")))
    nfw, nfb = param(C, kind="norm"), param(C, kind="bias")

    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[0, 4] = -1

    ln = torch.nn.functional.layer_norm
    x = wte[tokens] + wpe[torch.arange(T)][None]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for p in layers:
        h = ln(x, (C,), p["n1w"], p["n1b"], EPS)
        qkv = h @ p["wqkv"].T + p["bqkv"]
        q, k, v = (t.reshape(B, T, H, D) for t in qkv.split(C, dim=-1))
        s = torch.einsum("bthd,bshd->bhts", q, k) / D ** 0.5
        a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        o = torch.einsum("bhts,bshd->bthd", a, v).reshape(B, T, C)
        x = x + o @ p["wo"].T + p["bo"]
        h2 = ln(x, (C,), p["n2w"], p["n2b"], EPS)
        u = h2 @ p["wu"].T + p["bu"]
        x = x + torch.nn.functional.gelu(u, approximate="tanh") @ p["wd"].T + p["bd"]
    logits = ln(x, (C,), nfw, nfb, EPS) @ wte.T
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)
    loss.backward()

    write_golden("gpt2_golden.bin", b"LMGPT21\0", struct.pack("<7i", V, T, L, C, H, F, B) + struct.pack("<f", EPS),
                 tokens, targets, params, logits, loss)

if __name__ == "__main__":
    main()
