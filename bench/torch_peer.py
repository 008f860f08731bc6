#!/usr/bin/python3
"""PyTorch peer of lm's training step, for bench/train_vs_torch.sh: the same Llama-style model
(RMSNorm eps 1e-5, adjacent-pair RoPE base 10000, causal softmax attention, SwiGLU, tied
embeddings, N(0, 0.02) init) trained with AdamW on random tokens, fp32. The lstm-* presets are
lm's LSTM (docs/lstm.md): nn.Embedding, nn.LSTM with proj_size, a tied output layer with a
bias, B 32 streams x T windows with the state carried (detached) from one window to the next,
as lm's bench trains it. The bert-* presets are lm's encoder (docs/encoder.md) with the
masked-language-model objective: token, position and type embeddings and their LayerNorm,
nn.TransformerEncoderLayer blocks (post-LN, GELU, eps 1e-12, no dropout), 15% of the positions
predicted through the tied embedding (the head on those rows only, as lm computes it). The gpt2-*
presets are GPT-2 (lm-train --arch gpt2) at the preset's sizes: learned positions, pre-LN blocks
of nn.LayerNorm (eps 1e-5), one q/k/v nn.Linear with a bias, causal softmax attention, an output
projection and a GELU (tanh form) MLP with biases, a final LayerNorm, the head tied. Prints one line:
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


class Gpt2Block(torch.nn.Module):
    def __init__(self, d, h, ff):
        super().__init__()
        self.h = h
        self.n1, self.n2 = torch.nn.LayerNorm(d, eps=1e-5), torch.nn.LayerNorm(d, eps=1e-5)
        self.qkv, self.o = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.u, self.d = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)

    def forward(self, x, mask):
        b, t, c = x.shape
        hd = c // self.h
        q, k, v = (z.view(b, t, self.h, hd).transpose(1, 2) for z in self.qkv(self.n1(x)).split(c, -1))
        a = torch.softmax((q @ k.transpose(-1, -2)) / hd ** 0.5 + mask, -1)
        x = x + self.o((a @ v).transpose(1, 2).reshape(b, t, c))
        return x + self.d(torch.nn.functional.gelu(self.u(self.n2(x)), approximate="tanh"))


class Gpt2:
    """The gpt2 peer of a preset with vocabulary V: N(0, 0.02) matrices, zero biases, unit gains."""

    def __init__(self, preset, V):
        _, T, L, C, H, F, _ = PRESETS[preset]
        self.V = V
        self.emb, self.pos = torch.nn.Embedding(V, C), torch.nn.Embedding(T, C)
        self.blocks = torch.nn.ModuleList(Gpt2Block(C, H, F) for _ in range(L))
        self.norm = torch.nn.LayerNorm(C, eps=1e-5)
        self.params = [p for m in (self.emb, self.pos, self.blocks, self.norm) for p in m.parameters()]
        for w in (self.emb.weight, self.pos.weight):
            torch.nn.init.normal_(w, 0.0, 0.02)
        for m in self.blocks.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0.0, 0.02)
                torch.nn.init.zeros_(m.bias)
        self.mask = torch.full((T, T), float("-inf")).triu(1)

    def loss(self, x, y):
        t = x.shape[1]
        h = self.emb(x) + self.pos.weight[:t]
        for blk in self.blocks:
            h = blk(h, self.mask)
        logits = self.norm(h) @ self.emb.weight.T
        return torch.nn.functional.cross_entropy(logits.reshape(-1, self.V), y.reshape(-1))


class Model:
    """The peer model of a preset with vocabulary V: N(0, 0.02) matrices, unit norm gains."""

    def __init__(self, preset, V):
        _, T, L, C, H, F, _ = PRESETS[preset]
        self.V = V
        self.emb = torch.nn.Embedding(V, C)
        self.blocks = torch.nn.ModuleList(Block(C, H, F) for _ in range(L))
        self.norm = torch.nn.Parameter(torch.ones(C))
        self.params = list(self.emb.parameters()) + list(self.blocks.parameters()) + [self.norm]
        for p in self.params:
            if p.dim() == 2:
                torch.nn.init.normal_(p, 0.0, 0.02)
        inv = 1.0 / (10000.0 ** (torch.arange(0, C // H, 2).float() / (C // H)))
        ang = torch.outer(torch.arange(T).float(), inv)
        self.cos, self.sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
        self.mask = torch.full((T, T), float("-inf")).triu(1)

    def loss(self, x, y):
        """Mean cross-entropy of targets y (B, T) given inputs x (B, T)."""
        h = self.emb(x)
        for blk in self.blocks:
            h = blk(h, self.cos, self.sin, self.mask)
        logits = rmsnorm(h, self.norm) @ self.emb.weight.T
        return torch.nn.functional.cross_entropy(logits.reshape(-1, self.V), y.reshape(-1))


LSTM_PRESETS = {  # vocab, window, layers, embedding, hidden, projection (lm's make_lstm_config)
    "lstm-tiny": (4096, 64, 2, 256, 768, 256),
    "lstm-small": (8192, 128, 2, 384, 1536, 384),
    "lstm-medium": (32000, 256, 4, 768, 3072, 768),
}


def lstm_main(preset, steps, threads):
    V, T, L, E, H, P = LSTM_PRESETS[preset]
    B = 32
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    emb = torch.nn.Embedding(V, E)
    lstm = torch.nn.LSTM(E, H, L, batch_first=True, proj_size=P)
    bias = torch.nn.Parameter(torch.zeros(V))
    params = list(emb.parameters()) + list(lstm.parameters()) + [bias]
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1)
    state = (torch.zeros(L, B, P or H), torch.zeros(L, B, H))
    rates = []
    for s in range(steps + 3):
        x = torch.randint(0, V, (B, T + 1))
        t0 = time.perf_counter()
        out, state = lstm(emb(x[:, :-1]), state)
        state = (state[0].detach(), state[1].detach())
        logits = out @ emb.weight.T + bias
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s >= 3:
            rates.append(B * T / (time.perf_counter() - t0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {preset} {statistics.median(rates):.0f} {min(rates):.0f} {max(rates):.0f} {rss:.0f}")


BERT_PRESETS = {  # vocab, context, layers, width, heads, ff, batch (bench/train_step_bench's)
    "bert-tiny": (4096, 128, 4, 256, 4, 768, 32),
    "bert-small": (8192, 128, 6, 384, 6, 1024, 32),
}


def bert_main(preset, steps, threads):
    V, T, L, C, H, F, B = BERT_PRESETS[preset]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    emb, pos, typ = torch.nn.Embedding(V, C), torch.nn.Embedding(T, C), torch.nn.Embedding(2, C)
    norm = torch.nn.LayerNorm(C, eps=1e-12)
    layers = torch.nn.ModuleList(
        torch.nn.TransformerEncoderLayer(C, H, F, dropout=0.0, activation="gelu", layer_norm_eps=1e-12,
                                         batch_first=True, norm_first=False) for _ in range(L))
    mods = [emb, pos, typ, norm, layers]
    params = [p for m in mods for p in m.parameters()]
    for p in params:
        if p.dim() == 2:
            torch.nn.init.normal_(p, 0.0, 0.02)
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1)
    rates = []
    for s in range(steps + 3):
        x = torch.randint(0, V, (B, T))
        chosen = torch.rand(B, T) < 0.15
        t0 = time.perf_counter()
        h = norm(emb(x) + pos.weight[None, :T] + typ.weight[0])
        for layer in layers:
            h = layer(h)
        logits = h[chosen] @ emb.weight.T
        loss = torch.nn.functional.cross_entropy(logits, x[chosen])
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s >= 3:
            rates.append(B * T / (time.perf_counter() - t0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {preset} {statistics.median(rates):.0f} {min(rates):.0f} {max(rates):.0f} {rss:.0f}")


def main():
    preset, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if preset.startswith("lstm-"):
        lstm_main(preset, steps, threads)
        return
    if preset.startswith("bert-"):
        bert_main(preset, steps, threads)
        return
    gpt2 = preset.startswith("gpt2-")
    if gpt2:
        preset = preset[5:]
    V, T, _, _, _, _, tokens = PRESETS[preset]
    B = tokens // T
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Gpt2(preset, V) if gpt2 else Model(preset, V)
    params = model.params
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1)
    rates = []
    for s in range(steps + 3):
        x = torch.randint(0, V, (B, T + 1))
        t0 = time.perf_counter()
        loss = model.loss(x[:, :-1], x[:, 1:])
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s >= 3:
            rates.append(B * T / (time.perf_counter() - t0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {'gpt2-' if gpt2 else ''}{preset} {statistics.median(rates):.0f} {min(rates):.0f} {max(rates):.0f} "
          f"{rss:.0f}")


if __name__ == "__main__":
    main()
