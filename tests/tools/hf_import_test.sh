#!/usr/bin/env bash
# lm-quantize -m DIR: Hugging Face model directories (tests/data/hf/, written by
# tests/model/make_hf_golden.py with random weights) become GGUF files whose logits equal
# PyTorch's within 1e-4 relative, for every architecture lm runs; the results run in lm-generate
# and lm-eval, in any type; bad directories are refused with one line, exit 1.
source "$(dirname "$0")/lib.sh"
: "${LM_TEST_BIN:?set LM_TEST_BIN to the directory holding lm_test_hf_logits}"
H=$LM_TEST_DATA/hf
text=$LM_TEST_DATA/arch/text.txt

for m in llama llama3 mistral qwen2 qwen2-yarn phi3 phi3-longrope gpt2 gemma2; do
  expect_exit 0 "$m: import" -- lm-quantize -q -m "$H/$m" -o $m.gguf --type f32
  expect_exit 0 "$m: logits equal PyTorch's within 1e-4" -- "$LM_TEST_BIN/lm_test_hf_logits" $m.gguf "$H/$m" 1e-4
  expect_exit 0 "$m: lm-generate" -- lm-generate -q -m $m.gguf --greedy -n 8 -t 2 -p "The jury said"
  expect_exit 0 "$m: lm-eval perplexity" -- lm-eval perplexity -q -m $m.gguf -c 32 -t 2 "$text"
done
no_leftovers . "the imports"

# The tensor names of llama.cpp's converter: q and k of llama, Phi-3's fused tensors, tied heads.
names() { lm-quantize -m "$1" -o /dev/null --type f32 --dry-run 2> /dev/null | awk -F'\t' 'NR > 1 && $1 !~ /^\(/ { print $1 }' | tr '\n' ' '; }
want="token_embd.weight blk.0.attn_norm.weight blk.0.attn_q.weight blk.0.attn_k.weight blk.0.attn_v.weight blk.0.attn_output.weight blk.0.ffn_norm.weight blk.0.ffn_gate.weight blk.0.ffn_up.weight blk.0.ffn_down.weight "
want+="blk.1.attn_norm.weight blk.1.attn_q.weight blk.1.attn_k.weight blk.1.attn_v.weight blk.1.attn_output.weight blk.1.ffn_norm.weight blk.1.ffn_gate.weight blk.1.ffn_up.weight blk.1.ffn_down.weight output_norm.weight "
[[ $(names llama.gguf) == "${want}output.weight " ]] && pass || fail "llama's tensor names: $(names llama.gguf)"
[[ $(names llama3.gguf) == "${want}rope_freqs.weight " ]] && pass || fail "llama3's tensor names: $(names llama3.gguf)"
[[ $(names phi3.gguf) == "token_embd.weight blk.0.attn_norm.weight blk.0.attn_qkv.weight blk.0.attn_output.weight blk.0.ffn_norm.weight blk.0.ffn_up.weight blk.0.ffn_down.weight "* ]] &&
  pass || fail "phi3's tensor names: $(names phi3.gguf)"
[[ $(names gpt2.gguf) == "token_embd.weight position_embd.weight "*" output_norm.weight output_norm.bias " ]] && pass ||
  fail "gpt2's tensor names: $(names gpt2.gguf)"
[[ $(names gemma2.gguf) == *" blk.1.post_ffw_norm.weight output_norm.weight " ]] && pass ||
  fail "gemma2's tensor names: $(names gemma2.gguf)"

# Any type, straight from the directory: the same file as quantizing the F32 import.
expect_exit 0 "import to q8_0" -- lm-quantize -q -m "$H/llama" -o llama-q8.gguf --type q8_0
expect_exit 0 "quantize the F32 import to q8_0" -- lm-quantize -q -m llama.gguf -o llama-q8-2.gguf --type q8_0
expect_exit 0 "the q8_0 import is close to PyTorch" -- "$LM_TEST_BIN/lm_test_hf_logits" llama-q8.gguf "$H/llama" 0.05
err1=$(cat "$T/out")
expect_exit 0 "the q8_0 copy is as close" -- "$LM_TEST_BIN/lm_test_hf_logits" llama-q8-2.gguf "$H/llama" 0.05
[[ $err1 == "$(cat "$T/out")" && $err1 == "max relative error "* ]] && pass ||
  fail "the q8_0 import ($err1) and the q8_0 copy of the F32 import ($(cat "$T/out")) differ"
expect_exit 0 "import to q4_k_m" -- lm-quantize -q -m "$H/qwen2" -o qwen2-q4k.gguf --type q4_k_m
expect_exit 0 "the q4_k_m import generates" -- lm-generate -q -m qwen2-q4k.gguf --greedy -n 8 -t 2 -p "The jury said"
expect_exit 0 "import with --eval" -- lm-quantize -q -m "$H/gemma2" -o gemma2-q8.gguf --type q8_0 --eval "$text" -c 32
grep -q '^kld' "$T/out" && pass || fail "import with --eval: no kld line: $(head -c 200 "$T/out")"
expect_exit 0 "import to stdout" -- lm-quantize -q -m "$H/gpt2" -o - --type f32
cp "$T/out" gpt2-stdout.gguf
same_files gpt2-stdout.gguf gpt2.gguf "the import written to stdout"

# Bad directories: one line naming the file and the value, exit 1, nothing written.
mkdir noconfig && cp "$H/llama/model.safetensors" "$H/llama/tokenizer.json" noconfig/
expect_exit 1 "no config.json" -- lm-quantize -m noconfig -o bad.gguf --type f32
expect_err "noconfig/config.json" "no config.json"
cp -r "$H/llama" bert && sed -i 's/"LlamaForCausalLM"/"BertForMaskedLM"/' bert/config.json
expect_exit 1 "an unknown architecture" -- lm-quantize -m bert -o bad.gguf --type f32
expect_err "^lm-quantize: bert/config.json: architecture 'BertForMaskedLM' is not supported, expected one of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM, GPT2LMHeadModel, Gemma2ForCausalLM$" "an unknown architecture"
cp -r "$H/llama" ff && sed -i 's/"intermediate_size": 64/"intermediate_size": 96/' ff/config.json
expect_exit 1 "shapes that do not match config.json" -- lm-quantize -m ff -o bad.gguf --type f32
expect_err "^lm-quantize: ff/model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape \[64, 32\], expected \[96, 32\] from config.json$" "shapes that do not match config.json"
cp -r "$H/llama" dyn && sed -i 's/"rope_scaling": null/"rope_scaling": {"rope_type": "dynamic", "factor": 4.0}/' dyn/config.json
expect_exit 1 "an unsupported rope scaling" -- lm-quantize -m dyn -o bad.gguf --type f32
expect_err "^lm-quantize: dyn/config.json: key 'rope_scaling' has type 'dynamic', expected none, linear, llama3 or yarn" "an unsupported rope scaling"
cp -r "$H/llama" yarn && sed -i 's/"rope_scaling": null/"rope_scaling": {"rope_type": "yarn", "factor": 4.0}/' yarn/config.json
expect_exit 1 "YaRN without its original context" -- lm-quantize -m yarn -o bad.gguf --type f32
expect_err "^lm-quantize: yarn/config.json: key 'rope_scaling.original_max_position_embeddings' is missing, expected an integer" "YaRN without its original context"
sed -i 's/"factor": 4.0}/"factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 16}/' yarn/config.json
expect_exit 1 "YaRN with other betas" -- lm-quantize -m yarn -o bad.gguf --type f32
expect_err "^lm-quantize: yarn/config.json: key 'rope_scaling.beta_fast' is 16: lm runs YaRN with beta_fast 32 only, as llama.cpp does$" "YaRN with other betas"
cp -r "$H/phi3-longrope" factors && sed -i 's/"short_factor": \[/"short_factor": [2.0, /' factors/config.json
expect_exit 1 "LongRoPE factors of the wrong count" -- lm-quantize -m factors -o bad.gguf --type f32
expect_err "^lm-quantize: factors/config.json: key 'rope_scaling.short_factor' has 5 values, expected 4 \\(one per rotated pair\\)$" "LongRoPE factors of the wrong count"
cp -r "$H/gpt2" gelu && sed -i 's/"gelu_new"/"relu"/' gelu/config.json
expect_exit 1 "an unsupported activation" -- lm-quantize -m gelu -o bad.gguf --type f32
expect_err "^lm-quantize: gelu/config.json: key 'activation_function' is \"relu\", expected gelu_new or gelu_pytorch_tanh$" "an unsupported activation"
cp -r "$H/qwen2" shard && rm shard/model-00002-of-00002.safetensors
expect_exit 1 "a missing shard" -- lm-quantize -m shard -o bad.gguf --type f32
expect_err "^lm-quantize: shard/model.safetensors.index.json: .*model-00002-of-00002.safetensors" "a missing shard"
cp -r "$H/llama" notok && rm notok/tokenizer.json notok/tokenizer_config.json
expect_exit 1 "no tokenizer" -- lm-quantize -m notok -o bad.gguf --type f32
expect_err "^lm-quantize: notok" "no tokenizer"
[[ ! -e bad.gguf ]] && pass || fail "a refused import wrote bad.gguf"
no_leftovers . "the refused imports"

finish
