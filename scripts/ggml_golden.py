#!/usr/bin/python3
"""Regenerates tests/data/quant/ggml_golden.bin: fixed float rows and the bytes ggml's own
reference converters make of them, so tests/quant/ggml_golden_test.cpp can prove that lm's
quantizers are bit-compatible with ggml.

Usage: scripts/ggml_golden.py LIBGGML_BASE [-o OUT] [--extra-rows N]
  LIBGGML_BASE  libggml-base.so of a built llama.cpp (or set LM_GGML_BASE); this script
                neither builds nor fetches it.
  -o OUT        default tests/data/quant/ggml_golden.bin beside this script's repository
  --extra-rows  N more random rows (for a one-off deep check; keep the committed file small).
                Point the test at such a file with LM_GGML_GOLDEN=/path/to/file.
Only the Python standard library is used. The rows come from random.Random(20240601), so the
same script gives the same file for the same ggml.

ggml functions called (ggml-quants.h, ggml.h): quantize_row_{q4_0,q4_1,q5_0,q5_1,q8_0,q2_K,
q3_K,q4_K,q5_K,q6_K,q8_K,iq4_xs}_ref, quantize_iq4_nl (nrow 1, no importance matrix: what
llama-quantize writes; quantize_row_iq4_nl_ref tries no scales and differs), ggml_fp32_to_fp16_row,
ggml_fp32_to_bf16_row_ref, dequantize_row_{q4_1,q5_0,q5_1,iq4_nl,q2_K,q3_K,q4_K,q5_K,q6_K,iq4_xs,q8_K},
and quantize_{q4_0,q4_1,q5_0,q5_1,iq4_nl,q2_K,q3_K,q4_K,q5_K,q6_K,iq4_xs} (nrow 1) with an
importance row (quant_weights): what llama-quantize --imatrix writes.

The committed file was made with
  scripts/ggml_golden.py /tmp/llama/build/bin/libggml-base.so
against a llama.cpp build (ggml 0.21.0, commit 3f545becc) made for the purpose.

File layout, little-endian:
  b"LMGGMLQ1"; u32 len, len bytes of text naming the ggml the bytes came from;
  u32 n_inputs; per input: u32 n (a multiple of 256), f32 x[n];
  u32 n_records; per record: u32 input, u32 ggml type, u32 op, u32 nbytes, nbytes bytes.
  op 0: the bytes ggml's converter writes for the input row;
  op 1: f32 values ggml's dequantizer gives for those bytes (the types in DEQUANTIZERS);
  op 2: the bytes ggml's importance-weighted quantizer writes for the input row with the
        importance row of the input's op 3 record (the types in WEIGHTED);
  op 3 (type 0): f32 importance values for the input (n of them), before its op 2 records.
"""
import argparse
import ctypes
import math
import os
import random
import struct
import sys

# ggml type ids (ggml.h) and bytes per block of 256 values
F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16 = 1, 2, 3, 6, 7, 8, 30
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS = 10, 11, 12, 13, 14, 15, 20, 23
ROW_BYTES_PER_256 = {F16: 512, BF16: 512, Q4_0: 8 * 18, Q8_0: 8 * 34, Q4_K: 144, Q6_K: 210, Q8_K: 292,
                     Q4_1: 8 * 20, Q5_0: 8 * 22, Q5_1: 8 * 24, IQ4_NL: 8 * 18,
                     Q2_K: 84, Q3_K: 110, Q5_K: 176, IQ4_XS: 136}
QUANTIZERS = {
    F16: "ggml_fp32_to_fp16_row",
    BF16: "ggml_fp32_to_bf16_row_ref",
    Q4_0: "quantize_row_q4_0_ref",
    Q8_0: "quantize_row_q8_0_ref",
    Q4_K: "quantize_row_q4_K_ref",
    Q6_K: "quantize_row_q6_K_ref",
    Q8_K: "quantize_row_q8_K_ref",
    Q4_1: "quantize_row_q4_1_ref",
    Q5_0: "quantize_row_q5_0_ref",
    Q5_1: "quantize_row_q5_1_ref",
    Q2_K: "quantize_row_q2_K_ref",
    Q3_K: "quantize_row_q3_K_ref",
    Q5_K: "quantize_row_q5_K_ref",
    IQ4_XS: "quantize_row_iq4_xs_ref",
    # What llama-quantize calls without an importance matrix; quantize_row_iq4_nl_ref is a
    # cruder rule (no trial scales) that gives other bytes.
    IQ4_NL: "quantize_iq4_nl",
}
# Quantizers with ggml_quantize_chunk's signature (src, dst, nrow, n_per_row, imatrix).
CHUNK_QUANTIZERS = {"quantize_iq4_nl"}
# ggml_quantize_chunk's quantizers with an importance matrix (quant_weights).
WEIGHTED = {t: "quantize_" + n for t, n in (
    (Q4_0, "q4_0"), (Q4_1, "q4_1"), (Q5_0, "q5_0"), (Q5_1, "q5_1"), (IQ4_NL, "iq4_nl"), (Q2_K, "q2_K"),
    (Q3_K, "q3_K"), (Q4_K, "q4_K"), (Q5_K, "q5_K"), (Q6_K, "q6_K"), (IQ4_XS, "iq4_xs"))}
DEQUANTIZERS = {t: "dequantize_row_" + n for t, n in (
    (Q4_K, "q4_K"), (Q6_K, "q6_K"), (Q8_K, "q8_K"), (Q4_1, "q4_1"), (Q5_0, "q5_0"), (Q5_1, "q5_1"),
    (Q2_K, "q2_K"), (Q3_K, "q3_K"), (Q5_K, "q5_K"), (IQ4_NL, "iq4_nl"), (IQ4_XS, "iq4_xs"))}


def f32(v):
    """v rounded to the nearest float32 (ties to even), as a Python float."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def make_inputs(rng, extra):
    """Rows of float32 values (as Python floats): edge cases first, then random ones."""
    n = 256
    normal = lambda s, k=n: [f32(rng.gauss(0.0, s)) for _ in range(k)]
    rows = [
        normal(1.0),                                                  # 0 normal
        normal(0.02),                                                 # 1 weight-like
        [f32(rng.uniform(-1, 1)) for _ in range(n)],                  # 2 uniform
        [f32(rng.uniform(0, 1)) for _ in range(n)],                   # 3 positive only
        [f32(-rng.uniform(0.001, 2)) for _ in range(n)],              # 4 negative only
        [0.0] * n,                                                    # 5 all zero
        [0.5] * n,                                                    # 6 all equal
        [-3.25] * n,                                                  # 7 all equal, negative
        [f32(v * 1e-30) for v in normal(1.0)],                        # 8 tiny: scales underflow
        [f32(v * 1e30) for v in normal(1.0)],                         # 9 huge: scales overflow
    ]
    outlier = normal(0.01)
    outlier[77] = 40.0
    rows.append(outlier)                                              # 10 one outlier
    lone = [0.0] * n
    lone[200] = -7.5
    rows.append(lone)                                                 # 11 one value in zeros
    rows.append([f32(rng.choice((-1, 1)) * 10 ** rng.uniform(-12, 12)) for _ in range(n)])  # 12
    rows.append([(i % 33 - 16) * 0.25 for i in range(n)])             # 13 grid: rounding ties
    rows.append([f32(rng.gauss(0, 1) * 10.0 ** (i // 32 - 4)) for i in range(n)])  # 14 1e-4..1e3
    rows.append([f32(v * 1e-41) for v in normal(1.0)])                # 15 subnormal inputs
    rows.append([f32(v * 3e4) for v in normal(1.0)])                  # 16 near f16's range
    ties = []
    for i in range(n):  # f16 ties, then bf16 ties, over many exponents
        frac_bits = 11 if i < n // 2 else 8
        m = 1.0 + (2 * rng.randrange(1 << (frac_bits - 1)) + 1) * 2.0 ** -frac_bits
        ties.append(rng.choice((-1, 1)) * math.ldexp(m, rng.randrange(-20, 15)))
    rows.append(ties)                                                 # 17 conversion ties
    rows.append([f32(v if rng.random() < 0.1 else 0.0) for v in normal(1.0)])  # 18 sparse
    rows.append([f32(1.0 + v) for v in normal(1e-6)])                 # 19 nearly equal
    rows.append(normal(0.05, 1024))                                   # 20 four blocks
    rows.append([f32(rng.gauss(0, 1) / math.sqrt(rng.uniform(0.01, 1))) for _ in range(512)])  # 21 heavy tails
    for _ in range(extra):
        scale = 10 ** rng.uniform(-6, 6)
        rows.append([f32(rng.gauss(rng.uniform(-0.5, 0.5), 1) * scale) for _ in range(256 * rng.randint(1, 4))])
    return rows


def make_importance(rng, r, n):
    """An importance row for input r: mean squared activations as an imatrix holds them (spread
    over decades), with zeros (columns no token drove) and, for some inputs, edge cases."""
    imp = [f32(10 ** rng.uniform(-4, 2)) for _ in range(n)]
    for i in rng.sample(range(n), n // 16):
        imp[i] = 0.0
    if r == 2:
        imp = [1.0] * n                                   # uniform: only sigma2 + x^2 weighs
    elif r == 3:
        imp = [0.0] * n                                   # all zero: every weight 0
    elif r == 4:
        imp = [f32(v * 1e20) for v in imp]                # huge
    return imp


def load_ggml(path):
    lib = ctypes.CDLL(path)
    for name in list(QUANTIZERS.values()) + list(DEQUANTIZERS.values()) + list(WEIGHTED.values()):
        fn = getattr(lib, name)  # AttributeError names the missing symbol
        if name in CHUNK_QUANTIZERS or name in WEIGHTED.values():
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            fn.restype = ctypes.c_size_t
        else:
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            fn.restype = None
    return lib


def ggml_name(lib):
    """'ggml <version> (commit <hash>)', from what the library exports."""
    def ask(sym):
        fn = getattr(lib, sym, None)
        if fn is None:
            return "unknown"
        fn.restype = ctypes.c_char_p
        return fn().decode()
    return "ggml %s (commit %s)" % (ask("ggml_version"), ask("ggml_commit"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", nargs="?", default=os.environ.get("LM_GGML_BASE"))
    ap.add_argument("-o", "--output", default=os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "quant", "ggml_golden.bin")))
    ap.add_argument("--extra-rows", type=int, default=0)
    args = ap.parse_args()
    if not args.lib:
        sys.exit("ggml_golden.py: give the path of libggml-base.so (argument or LM_GGML_BASE)")
    lib = load_ggml(args.lib)
    rows = make_inputs(random.Random(20240601), args.extra_rows)

    records = []
    wrng = random.Random(20261202)  # importance rows: their own stream, so the rows stay the same
    for r, x in enumerate(rows):
        n = len(x)
        src = (ctypes.c_float * n)(*x)
        for t, name in QUANTIZERS.items():
            out = ctypes.create_string_buffer(ROW_BYTES_PER_256[t] * n // 256)  # zeroed, as q8_K's
            if name in CHUNK_QUANTIZERS:                                        # unset bsums need
                getattr(lib, name)(src, out, 1, n, None)
            else:
                getattr(lib, name)(src, out, n)
            records.append((r, t, 0, out.raw))
            if t in DEQUANTIZERS and r in (0, 10, 14):
                back = (ctypes.c_float * n)()
                getattr(lib, DEQUANTIZERS[t])(out, back, n)
                records.append((r, t, 1, bytes(back)))
        imp = make_importance(wrng, r, n)
        records.append((r, 0, 3, struct.pack("<%df" % n, *imp)))
        qw = (ctypes.c_float * n)(*imp)
        for t, name in WEIGHTED.items():
            out = ctypes.create_string_buffer(ROW_BYTES_PER_256[t] * n // 256)
            getattr(lib, name)(src, out, 1, n, qw)
            records.append((r, t, 2, out.raw))

    name = ggml_name(lib).encode()
    blob = [b"LMGGMLQ1", struct.pack("<I", len(name)), name, struct.pack("<I", len(rows))]
    for x in rows:
        blob.append(struct.pack("<I%df" % len(x), len(x), *x))
    blob.append(struct.pack("<I", len(records)))
    for r, t, op, data in records:
        blob.append(struct.pack("<IIII", r, t, op, len(data)) + data)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "wb") as f:
        f.write(b"".join(blob))
    print("%s: %d rows, %d records, %d bytes, from %s" % (args.output, len(rows), len(records),
                                                           sum(map(len, blob)), name.decode()))


if __name__ == "__main__":
    main()
