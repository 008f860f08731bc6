#!/usr/bin/python3
"""PyTorch side of bench/quality_vs_torch.sh: trains bench/torch_peer.py's model on a token file
with lm-train's recipe (random windows, AdamW betas 0.9/0.95, weight decay 0.1 on matrices only,
linear warmup then cosine to lr/10, global-norm clipping at 1) and prints the mean validation loss
over the same consecutive windows lm-train's --eval-batches 8 uses.
Usage: /usr/bin/python3 bench/torch_quality.py PRESET TRAIN.tok VALID.tok STEPS LR WARMUP SEED THREADS
"""
import math
import sys

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_peer import PRESETS, Model  # noqa: E402


def tokens(path):
    head = np.fromfile(path, dtype="<u4", count=4, offset=8)
    return torch.from_numpy(np.fromfile(path, dtype="<u2" if head[1] == 2 else "<u4", offset=64).astype(np.int64))


def main():
    preset, train_path, valid_path = sys.argv[1:4]
    steps, lr, warmup, seed, threads = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
    _, T, _, _, _, _, tok_per_step = PRESETS[preset]
    train, valid = tokens(train_path), tokens(valid_path)
    V = int(np.fromfile(train_path, dtype="<u4", count=1, offset=24)[0])
    B = tok_per_step // T
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = Model(preset, V)
    params = model.params
    groups = [{"params": [p for p in params if p.dim() == 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)
    loss_of = model.loss

    lr_min = lr / 10
    for s in range(steps):
        rate = lr * (s + 1) / warmup if s < warmup else lr_min + 0.5 * (lr - lr_min) * (
            1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = rate
        starts = torch.randint(0, len(train) - T, (B,))
        x = torch.stack([train[i:i + T] for i in starts])
        y = torch.stack([train[i + 1:i + T + 1] for i in starts])
        loss = loss_of(x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    windows = min(8 * B, (len(valid) - 1) // T)
    with torch.no_grad():
        total = 0.0
        for w0 in range(0, windows, B):
            idx = range(w0, min(windows, w0 + B))
            x = torch.stack([valid[i * T:i * T + T] for i in idx])
            y = torch.stack([valid[i * T + 1:i * T + T + 1] for i in idx])
            total += loss_of(x, y).item() * len(idx)
    print(f"torch_valid_loss {total / windows:.4f}")


if __name__ == "__main__":
    main()
