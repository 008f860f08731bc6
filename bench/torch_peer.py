#!/usr/bin/python3
"""PyTorch peer of lm's training step, for bench/train_vs_torch.sh: the same Llama-style model
(RMSNorm eps 1e-5, adjacent-pair RoPE base 10000, causal softmax attention, SwiGLU, tied
embeddings, N(0, 0.02) init) trained with AdamW on random tokens, fp32. Prints one line:
"torch <preset> <tokens/s median> <min> <max> <peak RSS MiB>". Needs Debian's python3-torch.
Usage: /usr/bin/python3 bench/torch_peer.py PRESET STEPS THREADS
"""
import resource
import statistics
import sys
import time

import torch

PRESETS = {  # vocab, context, layers, width, heads, ff, tokens per step (as lm's bench)
    "tiny": (4096, 256, 4, 256, 4, 768, 4096),
    "small": (8192, 512, 6, 384, 6, 1024, 4096),
    "medium": (32000, 1024, 12, 768, 12, 2048, 2048),
}


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


class Block(torch.nn.Module):
    def __init__(self, d, h, ff):
        super().__init__()
        self.h = h
        self.n1, self.n2 = torch.nn.Parameter(torch.ones(d)), torch.nn.Parameter(torch.ones(d))
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d, bias=False) for _ in range(4))
        self.g, self.u = torch.nn.Linear(d, ff, bias=False), torch.nn.Linear(d, ff, bias=False)
        self.d = torch.nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, c = x.shape
        hd = c // self.h
        n = rmsnorm(x, self.n1)

        def rope(z):
            z = z.view(b, t, self.h, hd // 2, 2)
            z0, z1 = z[..., 0], z[..., 1]
            return torch.stack((z0 * cos - z1 * sin, z0 * sin + z1 * cos), -1).view(b, t, self.h, hd).transpose(1, 2)

        q, k = rope(self.q(n)), rope(self.k(n))
        v = self.v(n).view(b, t, self.h, hd).transpose(1, 2)
        a = torch.softmax((q @ k.transpose(-1, -2)) / hd ** 0.5 + mask, -1)
        x = x + self.o((a @ v).transpose(1, 2).reshape(b, t, c))
        n = rmsnorm(x, self.n2)
        return x + self.d(torch.nn.functional.silu(self.g(n)) * self.u(n))


def main():
    preset, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    V, T, L, C, H, F, tokens = PRESETS[preset]
    B = tokens // T
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    emb = torch.nn.Embedding(V, C)
    blocks = torch.nn.ModuleList(Block(C, H, F) for _ in range(L))
    norm = torch.nn.Parameter(torch.ones(C))
    params = list(emb.parameters()) + list(blocks.parameters()) + [norm]
    for p in params:
        if p.dim() == 2:
            torch.nn.init.normal_(p, 0.0, 0.02)
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1)
    inv = 1.0 / (10000.0 ** (torch.arange(0, C // H, 2).float() / (C // H)))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    mask = torch.full((T, T), float("-inf")).triu(1)
    rates = []
    for s in range(steps + 3):
        x = torch.randint(0, V, (B, T + 1))
        t0 = time.perf_counter()
        h = emb(x[:, :-1])
        for blk in blocks:
            h = blk(h, cos, sin, mask)
        logits = rmsnorm(h, norm) @ emb.weight.T
        loss = torch.nn.functional.cross_entropy(logits.view(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s >= 3:
            rates.append(B * T / (time.perf_counter() - t0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {preset} {statistics.median(rates):.0f} {min(rates):.0f} {max(rates):.0f} {rss:.0f}")


if __name__ == "__main__":
    main()
