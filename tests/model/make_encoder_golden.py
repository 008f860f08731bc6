#!/usr/bin/python3
"""Regenerates tests/data/encoder_golden.bin: the masked-language-model loss, the logits of the
scored positions, every gradient and the final hidden states of a small bert encoder computed
by PyTorch, for tests/model/encoder_test.cpp (docs/encoder.md).
Run: /usr/bin/python3 tests/model/make_encoder_golden.py (Debian's python3-torch).

The model is lm's encoder written with PyTorch's own layers: token + position + token-type-0
embeddings, nn.functional.layer_norm (eps 1e-12), and per layer q, k, v (nn.Linear), PyTorch's
scaled_dot_product_attention with a padding mask (each row sees its own tokens), the output
projection, x = LN(x + a), the GELU MLP (nn.functional.gelu, approximate="tanh"),
x = LN(x + m); the head is the token embedding (logits = h E^T) on the scored positions, the
loss their mean cross-entropy. Weights are N(0, 0.3), norm gains 1 + N(0, 0.2) (float32
values), computed in double.

File layout, little-endian: b"LMENC01\\0"; i32 V, T, L, C, H, F, B, t; i32 lengths[B];
i32 tokens[B*t]; i32 targets[B*t] (-1 = not scored); f32 weights in lm's layout order
(docs/encoder.md: token_embd, token_types, position_embd, token_embd_norm weight and bias; per
layer attn_q weight and bias, attn_k, attn_v, attn_output, attn_output_norm, ffn_up, ffn_down,
layer_output_norm); f32 loss; f32 logits[M*V] of the M scored positions in row order; f32
gradients in the weights' order; f32 hidden[B*t*C].
"""
import os
import struct

import torch
import torch.nn.functional as F

V, T, L, C, H, FF, B, t = 31, 8, 2, 16, 4, 24, 3, 7
EPS = 1e-12


def main():
    torch.manual_seed(2024)
    dt = torch.float64

    def w(*shape):
        return (0.3 * torch.randn(*shape, dtype=dt)).float().double().requires_grad_(True)

    def gain(n):
        return (1 + 0.2 * torch.randn(n, dtype=dt)).float().double().requires_grad_(True)

    params = [w(V, C), w(2, C), w(T, C), gain(C), w(C)]
    for _ in range(L):
        for rows, cols in ((C, C), (C, C), (C, C), (C, C)):  # q, k, v, output
            params += [w(rows, cols), w(rows)]
        params += [gain(C), w(C)]                              # attn_output_norm
        params += [w(FF, C), w(FF), w(C, FF), w(C)]            # ffn_up, ffn_down
        params += [gain(C), w(C)]                              # layer_output_norm
    lengths = torch.tensor([7, 4, 6])
    tokens = torch.randint(0, V, (B, t))
    targets = torch.full((B, t), -1)
    for i in range(B):
        for j in range(int(lengths[i])):
            if (i + j) % 3 == 0:
                targets[i, j] = int(torch.randint(0, V, (1,)))

    E, types, pos, n0w, n0b = params[:5]
    x = E[tokens] + pos[:t][None, :, :] + types[0][None, None, :]
    x = F.layer_norm(x, (C,), n0w, n0b, EPS)
    keep = torch.arange(t)[None, :] < lengths[:, None]  # (B, t): keys each row sees
    mask = keep[:, None, None, :].expand(B, H, t, t)
    D = C // H
    k0 = 5
    for _ in range(L):
        wq, bq, wk, bk, wv, bv, wo, bo, g1, b1, wu, bu, wd, bd, g2, b2 = params[k0:k0 + 16]
        k0 += 16
        heads = lambda y: y.view(B, t, H, D).transpose(1, 2)
        q, k, v = heads(F.linear(x, wq, bq)), heads(F.linear(x, wk, bk)), heads(F.linear(x, wv, bv))
        s = (q @ k.transpose(-1, -2) / D**0.5).masked_fill(~mask, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, t, C)
        x = F.layer_norm(x + F.linear(a, wo, bo), (C,), g1, b1, EPS)
        m = F.linear(F.gelu(F.linear(x, wu, bu), approximate="tanh"), wd, bd)
        x = F.layer_norm(x + m, (C,), g2, b2, EPS)
    hidden = x
    scored = targets.flatten() >= 0
    logits = hidden.reshape(-1, C)[scored] @ E.T
    loss = F.cross_entropy(logits, targets.flatten()[scored])
    loss.backward()

    out = bytearray(b"LMENC01\0")
    out += struct.pack("<8i", V, T, L, C, H, FF, B, t)
    f32 = lambda x: struct.pack(f"<{x.numel()}f", *x.detach().flatten().tolist())
    out += struct.pack(f"<{B}i", *lengths.tolist())
    out += struct.pack(f"<{B * t}i", *tokens.flatten().tolist())
    out += struct.pack(f"<{B * t}i", *targets.flatten().tolist())
    for p in params:
        out += f32(p)
    out += struct.pack("<f", float(loss))
    out += f32(logits)
    for p in params:
        out += f32(p.grad)
    out += f32(hidden)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "encoder_golden.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path}: {len(out)} bytes, loss {float(loss):.6f}, {int(scored.sum())} scored positions")


if __name__ == "__main__":
    main()
