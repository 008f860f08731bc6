#!/usr/bin/python3
"""Regenerates tests/data/distill_golden.bin: the distillation loss and its gradient computed by
PyTorch, for tests/kernels/kernels_test.cpp (docs/distillation.md). Run:
/usr/bin/python3 tests/kernels/make_distill_golden.py (Debian's python3-torch).

loss = mean over scored rows of (1 - a) * cross_entropy(z, y) + a * T^2 * KL(p || softmax(z / T)),
with p = softmax(t / T) over the teacher's K ids; the KL is torch.nn.functional.kl_div with
log_target=True. The gradient is autograd's, of that mean.

File layout, little-endian: b"LMDIST1\\0"; i32 cases; per case: i32 N, V, K, has_ids;
f32 alpha, temp; i32 targets[N] (-1 = not scored); f32 logits[N*V]; f32 teacher[N*K];
i32 ids[N*K] when has_ids; f32 mean loss; f32 dlogits[N*V].
"""
import os
import struct

import torch
import torch.nn.functional as F


def case(out, N, V, K, alpha, temp, top_k):
    z = (3 * torch.randn(N, V)).float().double().requires_grad_(True)
    t_full = (3 * torch.randn(N, V)).float().double()
    targets = torch.randint(0, V, (N,))
    targets[1] = -1  # a row that is not scored (a prompt token, padding)
    if top_k:
        t, ids = torch.topk(t_full, K, dim=1)
    else:
        t, ids = t_full, None
    scored = targets >= 0
    ce = F.cross_entropy(z[scored], targets[scored], reduction="sum")
    log_qt = F.log_softmax(z / temp, dim=1)
    log_p = F.log_softmax(t / temp, dim=1)
    log_q_at = log_qt.gather(1, ids) if top_k else log_qt
    kl = F.kl_div(log_q_at[scored], log_p[scored], log_target=True, reduction="sum")
    loss = ((1 - alpha) * ce + alpha * temp * temp * kl) / scored.sum()
    loss.backward()
    out += struct.pack("<4i2f", N, V, K, int(top_k), alpha, temp)
    out += struct.pack(f"<{N}i", *targets.tolist())
    out += struct.pack(f"<{N * V}f", *z.detach().flatten().tolist())
    out += struct.pack(f"<{N * K}f", *t.flatten().tolist())
    if top_k:
        out += struct.pack(f"<{N * K}i", *ids.flatten().tolist())
    out += struct.pack("<f", loss.item())
    out += struct.pack(f"<{N * V}f", *z.grad.flatten().tolist())


def main():
    torch.manual_seed(1234)
    cases = [(5, 37, 37, 0.5, 2.0, False), (5, 37, 6, 0.7, 1.0, True), (4, 70, 70, 1.0, 4.0, False),
             (4, 70, 3, 0.3, 0.5, True)]
    out = bytearray(b"LMDIST1\0") + struct.pack("<i", len(cases))
    for c in cases:
        case(out, *c)
    path = os.path.join(os.path.dirname(__file__), "..", "data", "distill_golden.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path}: {len(out)} bytes")


if __name__ == "__main__":
    main()
