#!/usr/bin/python3
"""Regenerates tests/data/lstm_golden.bin: logits, loss, gradients and final state of a small LSTM
language model computed by PyTorch's torch.nn.LSTM, for tests/model/lstm_test.cpp (docs/lstm.md).
Run: /usr/bin/python3 tests/model/make_lstm_golden.py (Debian's python3-torch).

The model is lm's: embedding (V, E), nn.LSTM(E, H, L, proj_size=P, batch_first=True) started
from a given state (h0, c0), an untied output layer with a bias. lm keeps one bias per layer:
PyTorch's bias_ih + bias_hh. Weights are N(0, 0.3) (float32 values), computed in double.

File layout, little-endian: b"LMLSTM1\\0"; i32 V, E, H, L, P, tied, B, T; i32 tokens[B*T];
i32 targets[B*T] (-1 = not scored); f32 h0[L*B*O], c0[L*B*H] (O = P or H); f32 weights in lm's
layout order (token_embd; per layer lstm_ih, lstm_hh, lstm.bias, lstm_proj when P; output.weight;
output.bias); f32 logits[B*T*V]; f32 mean loss; f32 gradients in the same order; f32 final
h[L*B*O], c[L*B*H].
"""
import os
import struct

import torch

V, E, H, L, P, B, T = 23, 12, 16, 2, 10, 2, 5


def main():
    torch.manual_seed(4321)
    dt = torch.float64
    O = P if P else H

    def w(*shape):
        return (0.3 * torch.randn(*shape, dtype=dt)).float().double()

    emb = w(V, E).requires_grad_(True)
    lstm = torch.nn.LSTM(E, H, L, proj_size=P, batch_first=True).double()
    weights = [emb]
    with torch.no_grad():
        for l in range(L):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") + (("weight_hr",) if P else ()):
                getattr(lstm, f"{name}_l{l}").copy_(w(*getattr(lstm, f"{name}_l{l}").shape))
    out_w = w(V, O).requires_grad_(True)
    out_b = w(V).requires_grad_(True)
    h0 = w(L, B, O)
    c0 = w(L, B, H)
    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[0, 2] = -1
    y, (hT, cT) = lstm(emb[tokens], (h0, c0))
    logits = y @ out_w.T + out_b
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    loss.backward()

    out = bytearray(b"LMLSTM1\0")
    out += struct.pack("<8i", V, E, H, L, P, 0, B, T)
    f32 = lambda t: struct.pack(f"<{t.numel()}f", *t.detach().flatten().tolist())
    out += struct.pack(f"<{B * T}i", *tokens.flatten().tolist())
    out += struct.pack(f"<{B * T}i", *targets.flatten().tolist())
    out += f32(h0) + f32(c0)
    params = [emb]
    for l in range(L):
        g = lambda n: getattr(lstm, f"{n}_l{l}")
        params += [("ih", g("weight_ih")), ("hh", g("weight_hh")), ("bias", g("bias_ih"), g("bias_hh"))]
        if P:
            params.append(("hr", g("weight_hr")))
    params += [out_w, out_b]
    grads = bytearray()
    for p in params:
        if isinstance(p, tuple):
            if p[0] == "bias":
                out += f32(p[1] + p[2])
                grads += f32(p[1].grad)  # bias_ih and bias_hh have the same gradient: that of their sum
            else:
                out += f32(p[1])
                grads += f32(p[1].grad)
        else:
            out += f32(p)
            grads += f32(p.grad)
    out += f32(logits) + struct.pack("<f", loss.item()) + grads + f32(hT) + f32(cT)
    path = os.path.join(os.path.dirname(__file__), "..", "data", "lstm_golden.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path}: {len(out)} bytes; loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
