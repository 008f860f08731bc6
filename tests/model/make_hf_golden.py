#!/usr/bin/python3
"""Regenerates tests/data/hf/*: tiny Hugging Face model directories with random weights and the
logits PyTorch computes for them, for tests/tools/hf_import_test.sh (lm-quantize -m DIR must give
a GGUF whose logits equal these). Run: /usr/bin/python3 tests/model/make_hf_golden.py
(Debian's python3-torch; no transformers library: each forward pass below is written from the
Hugging Face modeling code's equations, with its parameter names).

Each directory holds:
  config.json            the model class and its hyper-parameters, as Hugging Face writes them
  model.safetensors      the weights (or model-0000N-of-00002.safetensors + model.safetensors.index.json)
  tokenizer.json         a byte-level BPE tokenizer (GPT-2's pre-tokenizer): the first 256 + 120
  tokenizer_config.json  merges of tests/data/vocab/bytebpe-gpt-2.gguf, and <|endoftext|>
  tokens.txt             the token ids the logits are for, on one line
  logits.f32             float32 little-endian logits[T][V] for those tokens, every position

Models: C=32, 2 layers, 4 heads, vocabulary 377, 12 tokens.
  llama   LlamaForCausalLM, grouped-query (2 kv heads), an lm_head, rotate_half RoPE (q and k
          rows are what the import permutes)
  llama3  LlamaForCausalLM with rope_scaling llama3 (factor 8, original context 256: one of the
          four frequencies in the smoothed band), rope_theta 500000, tied embeddings
  mistral MistralForCausalLM (llama's equations)
  qwen2   Qwen2ForCausalLM: q, k, v biases, tied embeddings, BF16 weights in two shards
  qwen2-yarn  qwen2 in F32 with rope_scaling yarn (factor 4, original context 256: of the four
          frequencies one extrapolated, one half-way on the ramp, two interpolated), rope_theta 10000
  phi3-longrope  phi3 with rope_scaling longrope (Phi-3.5's form: long and short factors, context
          256 from an original 64; 12 tokens use the short factors, and cos and sin carry
          sqrt(1 + ln 4 / ln 64))
  phi3    Phi3ForCausalLM: fused qkv_proj and gate_up_proj
  gpt2    GPT2LMHeadModel: Conv1D weights stored [in, out], learned positions, gelu_new, tied,
          names with "transformer."
  gemma2  Gemma2ForCausalLM: head_dim 16 (H*D != C), (1 + w) norms, post-norms, gelu_pytorch_tanh,
          query_pre_attn_scalar, attention and final soft-capping, a sliding window of 4 on
          even layers; F16 weights
The reference is computed in float64 from the exact values stored (float32, bf16 or f16).
"""
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(DATA, "hf")
N_MERGES = 120
C, L, H, T = 32, 2, 4, 12
F = 64


# ---- the tokenizer: pieces and merges of the lm-trained vocabulary in tests/data/vocab ----

def read_gguf_metadata(path):
    b = open(path, "rb").read()
    o = 0

    def u(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, b, o)[0]
        o += struct.calcsize("<" + fmt)
        return v

    def s():
        nonlocal o
        n = u("Q")
        v = b[o:o + n].decode("utf-8")
        o += n
        return v

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return s()
        if t == 9:
            et, n = u("I"), u("Q")
            return [value(et) for _ in range(n)]
        return u(scalar[t])

    assert b[:4] == b"GGUF"
    o = 8
    u("Q")
    kv = {}
    for _ in range(u("Q")):
        k = s()
        kv[k] = value(u("I"))
    return kv


def tokenizer_files():
    kv = read_gguf_metadata(os.path.join(DATA, "vocab", "bytebpe-gpt-2.gguf"))
    tokens, merges = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.merges"]
    pieces = tokens[:256 + N_MERGES]
    vocab = {p: i for i, p in enumerate(pieces)}
    kept = [m for m in merges[:N_MERGES] if all(x in vocab for x in m.split(" ")) and m.replace(" ", "") in vocab]
    assert len(kept) == N_MERGES, "the first merges make the first pieces"
    eot = len(pieces)
    vocab["<|endoftext|>"] = eot
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": kept},
    }
    config = {"add_bos_token": False, "add_prefix_space": False, "bos_token": "<|endoftext|>",
              "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 1024,
              "tokenizer_class": "GPT2Tokenizer",
              "added_tokens_decoder": {str(eot): {"content": "<|endoftext|>", "lstrip": False, "normalized": True,
                                                  "rstrip": False, "single_word": False, "special": True}}}
    return tok, config, len(vocab)


# ---- safetensors, written directly: u64 header length, JSON header, raw data ----

DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def safetensors_bytes(tensors):
    header, data, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.float32 else t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        data.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(data)


def write_weights(d, tensors, shards):
    if shards == 1:
        open(os.path.join(d, "model.safetensors"), "wb").write(safetensors_bytes(tensors))
        return
    names = sorted(tensors)
    weight_map, total = {}, 0
    for i in range(shards):
        part = {n: tensors[n] for n in names[i::shards]}
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        open(os.path.join(d, fname), "wb").write(safetensors_bytes(part))
        for n in part:
            weight_map[n] = fname
            total += part[n].numel() * part[n].element_size()
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    open(os.path.join(d, "model.safetensors.index.json"), "w").write(json.dumps(index, indent=2) + "\n")


# ---- the layers, in float64 ----

def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def layernorm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(x, inv_freq, scale=1.0):  # x [T, heads, D]: Hugging Face's apply_rotary_pos_emb
    ang = torch.outer(torch.arange(x.shape[0], dtype=torch.float64), inv_freq)
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos()[:, None, :] * scale, emb.sin()[:, None, :] * scale
    return x * cos + rotate_half(x) * sin


def attention(q, k, v, scale, softcap=None, window=None):  # q [T, H, D], k v [T, Hkv, D]
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    s = torch.einsum("thd,shd->hts", q, k) * scale
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    n = q.shape[0]
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (i - j < window)
    a = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
    return torch.einsum("hts,shd->thd", a, v).reshape(n, -1)


def gelu_tanh(x):  # gelu_new and gelu_pytorch_tanh
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def yarn_inv_freq(base, dim, r):  # transformers' _compute_yarn_parameters, beta_fast 32, beta_slow 1
    factor, orig = r["factor"], r["original_max_position_embeddings"]

    def corr_dim(rot):
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = max(math.floor(corr_dim(32)), 0), min(math.ceil(corr_dim(1)), dim - 1)
    if low == high:
        high += 0.001
    extrap = 1 - torch.clamp((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    f = 1.0 / (factor * pos_freqs) * (1 - extrap) + 1.0 / pos_freqs * extrap
    return f, 0.1 * math.log(factor) + 1.0  # the frequencies, and cos and sin's factor


def llama3_inv_freq(base, dim, r):  # transformers' _compute_llama3_parameters
    f = inv_freq(base, dim)
    lo_wl, hi_wl = r["original_max_position_embeddings"] / r["low_freq_factor"], \
        r["original_max_position_embeddings"] / r["high_freq_factor"]
    wl = 2 * math.pi / f
    out = torch.where(wl > lo_wl, f / r["factor"], f)
    smooth = (r["original_max_position_embeddings"] / wl - r["low_freq_factor"]) / \
        (r["high_freq_factor"] - r["low_freq_factor"])
    smoothed = (1 - smooth) * out / r["factor"] + smooth * out
    medium = ~(wl < hi_wl) & ~(wl > lo_wl)
    return torch.where(medium, smoothed, out)


# ---- the models ----

class Weights:
    """Random tensors with Hugging Face's names, stored in `dtype`; .f64(name) is the value used."""

    def __init__(self, dtype):
        self.dtype, self.t = dtype, {}

    def add(self, name, *shape, kind="matrix"):
        if kind == "norm1":  # a gain near 1
            x = 1 + 0.1 * torch.randn(*shape)
        elif kind == "norm0":  # Gemma's w of (1 + w)
            x = 0.1 * torch.randn(*shape)
        elif kind == "bias":
            x = 0.1 * torch.randn(*shape)
        elif kind == "embed":
            x = 0.5 * torch.randn(*shape)
        else:  # [out, in] or GPT-2's Conv1D [in, out]
            fan_in = shape[1] if kind == "matrix" else shape[0]
            x = torch.randn(*shape) / math.sqrt(fan_in)
        self.t[name] = x.to(self.dtype)
        return self.t[name].to(torch.float64)


def llama_like(w, cfg, V, tokens, kind):
    D = cfg.get("head_dim", C // H)
    HKV = cfg["num_key_value_heads"]
    eps = cfg["rms_norm_eps"]
    base = cfg.get("rope_theta", 10000.0)
    r = cfg.get("rope_scaling")
    freqs, scale = inv_freq(base, D), 1.0
    rope_type = r and r.get("rope_type", r.get("type"))  # Qwen2.5's configs say "type"
    if rope_type == "llama3":
        freqs = llama3_inv_freq(base, D, r)
    elif rope_type == "yarn":
        freqs, scale = yarn_inv_freq(base, D, r)
    elif rope_type == "longrope":  # transformers' _compute_longrope_parameters; T is within the
        orig = cfg["original_max_position_embeddings"]  # original context: the short factors
        ext = torch.tensor(r["short_factor"] if T <= orig else r["long_factor"], dtype=torch.float64)
        freqs = 1.0 / (ext * base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
        factor = cfg["max_position_embeddings"] / orig
        scale = math.sqrt(1 + math.log(factor) / math.log(orig)) if factor > 1 else 1.0
    emb = w.add("model.embed_tokens.weight", V, C, kind="embed")
    x = emb[tokens]
    for l in range(L):
        p = f"model.layers.{l}."
        n = rmsnorm(x, w.add(p + "input_layernorm.weight", C, kind="norm1"), eps)
        if kind == "phi3":
            qkv = n @ w.add(p + "self_attn.qkv_proj.weight", H * D + 2 * HKV * D, C).T
            q, k, v = qkv[:, :H * D], qkv[:, H * D:H * D + HKV * D], qkv[:, H * D + HKV * D:]
        else:
            q = n @ w.add(p + "self_attn.q_proj.weight", H * D, C).T
            k = n @ w.add(p + "self_attn.k_proj.weight", HKV * D, C).T
            v = n @ w.add(p + "self_attn.v_proj.weight", HKV * D, C).T
            if kind == "qwen2":
                q = q + w.add(p + "self_attn.q_proj.bias", H * D, kind="bias")
                k = k + w.add(p + "self_attn.k_proj.bias", HKV * D, kind="bias")
                v = v + w.add(p + "self_attn.v_proj.bias", HKV * D, kind="bias")
        q = rope(q.view(-1, H, D), freqs, scale)
        k = rope(k.view(-1, HKV, D), freqs, scale)
        a = attention(q, k, v.view(-1, HKV, D), D ** -0.5)
        x = x + a @ w.add(p + "self_attn.o_proj.weight", C, H * D).T
        n = rmsnorm(x, w.add(p + "post_attention_layernorm.weight", C, kind="norm1"), eps)
        if kind == "phi3":
            gate, up = (n @ w.add(p + "mlp.gate_up_proj.weight", 2 * F, C).T).chunk(2, dim=-1)
        else:
            gate = n @ w.add(p + "mlp.gate_proj.weight", F, C).T
            up = n @ w.add(p + "mlp.up_proj.weight", F, C).T
        x = x + (torch.nn.functional.silu(gate) * up) @ w.add(p + "mlp.down_proj.weight", C, F).T
    x = rmsnorm(x, w.add("model.norm.weight", C, kind="norm1"), eps)
    head = emb if cfg.get("tie_word_embeddings") else w.add("lm_head.weight", V, C)
    return x @ head.T


def gpt2(w, cfg, V, tokens):
    eps, D = cfg["layer_norm_epsilon"], C // H
    wte = w.add("transformer.wte.weight", V, C, kind="embed")
    x = wte[tokens] + w.add("transformer.wpe.weight", cfg["n_positions"], C, kind="embed")[: len(tokens)]
    for l in range(L):
        p = f"transformer.h.{l}."
        n = layernorm(x, w.add(p + "ln_1.weight", C, kind="norm1"), w.add(p + "ln_1.bias", C, kind="bias"), eps)
        qkv = n @ w.add(p + "attn.c_attn.weight", C, 3 * C, kind="conv1d") + w.add(p + "attn.c_attn.bias", 3 * C,
                                                                                   kind="bias")
        q, k, v = qkv.split(C, dim=-1)
        a = attention(q.view(-1, H, D), k.view(-1, H, D), v.view(-1, H, D), D ** -0.5)
        x = x + a @ w.add(p + "attn.c_proj.weight", C, C, kind="conv1d") + w.add(p + "attn.c_proj.bias", C,
                                                                                 kind="bias")
        n = layernorm(x, w.add(p + "ln_2.weight", C, kind="norm1"), w.add(p + "ln_2.bias", C, kind="bias"), eps)
        h = gelu_tanh(n @ w.add(p + "mlp.c_fc.weight", C, 4 * C, kind="conv1d") + w.add(p + "mlp.c_fc.bias", 4 * C,
                                                                                        kind="bias"))
        x = x + h @ w.add(p + "mlp.c_proj.weight", 4 * C, C, kind="conv1d") + w.add(p + "mlp.c_proj.bias", C,
                                                                                   kind="bias")
    x = layernorm(x, w.add("transformer.ln_f.weight", C, kind="norm1"), w.add("transformer.ln_f.bias", C, kind="bias"),
                  eps)
    return x @ wte.T


def gemma2(w, cfg, V, tokens):
    eps, D, HKV = cfg["rms_norm_eps"], cfg["head_dim"], cfg["num_key_value_heads"]
    freqs = inv_freq(cfg["rope_theta"], D)

    def norm(x, name):
        return rmsnorm(x, 1.0 + w.add(name, C, kind="norm0"), eps)

    emb = w.add("model.embed_tokens.weight", V, C, kind="embed")
    x = emb[tokens] * torch.tensor(C ** 0.5, dtype=torch.float32).double()  # the normalizer, in the model's dtype
    for l in range(L):
        p = f"model.layers.{l}."
        n = norm(x, p + "input_layernorm.weight")
        q = rope((n @ w.add(p + "self_attn.q_proj.weight", H * D, C).T).view(-1, H, D), freqs)
        k = rope((n @ w.add(p + "self_attn.k_proj.weight", HKV * D, C).T).view(-1, HKV, D), freqs)
        v = (n @ w.add(p + "self_attn.v_proj.weight", HKV * D, C).T).view(-1, HKV, D)
        a = attention(q, k, v, cfg["query_pre_attn_scalar"] ** -0.5, cfg["attn_logit_softcapping"],
                      cfg["sliding_window"] if l % 2 == 0 else None)
        a = a @ w.add(p + "self_attn.o_proj.weight", C, H * D).T
        x = x + norm(a, p + "post_attention_layernorm.weight")
        n = norm(x, p + "pre_feedforward_layernorm.weight")
        g = gelu_tanh(n @ w.add(p + "mlp.gate_proj.weight", F, C).T) * (n @ w.add(p + "mlp.up_proj.weight", F, C).T)
        x = x + norm(g @ w.add(p + "mlp.down_proj.weight", C, F).T, p + "post_feedforward_layernorm.weight")
    logits = norm(x, "model.norm.weight") @ emb.T
    cap = cfg["final_logit_softcapping"]
    return torch.tanh(logits / cap) * cap


def main():
    tok_json, tok_config, V = tokenizer_files()
    common = {"vocab_size": V, "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": H,
              "intermediate_size": F, "max_position_embeddings": 64, "torch_dtype": "float32"}
    llama = {**common, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_key_value_heads": 2,
             "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
             "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False}
    models = [
        ("llama", llama, "llama", torch.float32, 1),
        ("llama3", {**llama, "rope_theta": 500000.0, "tie_word_embeddings": True,
                    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 256}},
         "llama", torch.float32, 1),
        ("mistral", {**llama, "architectures": ["MistralForCausalLM"], "model_type": "mistral", "sliding_window": None},
         "llama", torch.bfloat16, 1),
        ("qwen2", {**common, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_key_value_heads": 2,
                   "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                   "use_sliding_window": False, "sliding_window": 64, "max_window_layers": 2,
                   "torch_dtype": "bfloat16"}, "qwen2", torch.bfloat16, 2),
        ("phi3", {**common, "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "num_key_value_heads": 2,
                  "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
                  "original_max_position_embeddings": 64, "sliding_window": 63, "tie_word_embeddings": False},
         "phi3", torch.float32, 1),
        ("gpt2", {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V, "n_embd": C,
                  "n_layer": L, "n_head": H, "n_positions": 64, "n_ctx": 64, "n_inner": None,
                  "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
                  "tie_word_embeddings": True}, "gpt2", torch.float32, 1),
        ("gemma2", {**common, "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "num_key_value_heads": 2,
                    "head_dim": 16, "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
                    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "query_pre_attn_scalar": 16,
                    "attn_logit_softcapping": 5.0, "final_logit_softcapping": 8.0, "sliding_window": 4,
                    "tie_word_embeddings": True, "torch_dtype": "float16"}, "gemma2", torch.float16, 1),
        # Last, so the models above keep their seeds (1000 + index).
        ("qwen2-yarn", {**common, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                        "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                        "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 64,
                        "max_window_layers": 2, "max_position_embeddings": 1024,
                        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}},
         "qwen2", torch.float32, 1),
        ("phi3-longrope", {**common, "architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
                           "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                           "max_position_embeddings": 256, "original_max_position_embeddings": 64,
                           "rope_scaling": {"type": "longrope", "long_factor": [1.0, 1.5, 4.0, 9.0],
                                            "short_factor": [1.0, 1.2, 2.5, 3.0]},
                           "sliding_window": 255, "tie_word_embeddings": False},
         "phi3", torch.float32, 1),
    ]
    for i, (name, cfg, kind, dtype, shards) in enumerate(models):
        torch.manual_seed(1000 + i)
        tokens = torch.randint(0, V - 1, (T,))
        w = Weights(dtype)
        if kind == "gpt2":
            logits = gpt2(w, cfg, V, tokens)
        elif kind == "gemma2":
            logits = gemma2(w, cfg, V, tokens)
        else:
            logits = llama_like(w, cfg, V, tokens, kind)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        open(os.path.join(d, "config.json"), "w").write(json.dumps(cfg, indent=2) + "\n")
        write_weights(d, w.t, shards)
        open(os.path.join(d, "tokenizer.json"), "w").write(json.dumps(tok_json, ensure_ascii=False) + "\n")
        open(os.path.join(d, "tokenizer_config.json"), "w").write(json.dumps(tok_config, indent=2) + "\n")
        open(os.path.join(d, "tokens.txt"), "w").write(" ".join(str(int(t)) for t in tokens) + "\n")
        open(os.path.join(d, "logits.f32"), "wb").write(logits.to(torch.float32).numpy().astype("<f4").tobytes())
        print(f"wrote {d}: {len(w.t)} tensors, logits in [{logits.min().item():.3f}, {logits.max().item():.3f}]")


if __name__ == "__main__":
    main()
