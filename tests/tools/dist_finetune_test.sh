#!/usr/bin/env bash
# lm-finetune data-parallel under mpirun (docs/distributed.md): 2 ranks x batch B train like one
# process with --grad-accum 2 x batch B, within 1e-5 relative (losses, validation, the written
# weights), for full fine-tuning, LoRA on text and on prompt/completion pairs, and a classifier
# (its accuracy too); LoRA's sums overlapped with backward or after it (--overlap 0) give the same
# weights; a LoRA checkpoint of 2 ranks resumes on one process.
source "$(dirname "$0")/lib.sh"
# Under the sanitizers, no leak check in these runs: OpenMPI keeps what MPI_Init allocates past
# MPI_Finalize in components it loads and unloads itself (dlclose), so LeakSanitizer reports
# frames of no module that no suppression can name. The same code paths without mpirun are
# leak-checked by lm_train_test and lm_finetune_test.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

if [[ ${LM_MPI:-ON} == OFF ]]; then
  echo "SKIP: built without MPI (LM_MPI=OFF); tests/tools/dist_test.sh checks that the tools say so under mpirun"
  exit 0
fi
if ! command -v mpirun > /dev/null; then
  echo "SKIP: mpirun not found (apt-get install openmpi-bin); the data-parallel tests need it"
  exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi2=(mpirun -np 2)

make_corpus 3000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
lm-train -q --tokenizer tok.model --data corpus.txt --context 32 --layers 2 --embd 32 --heads 4 --kv-heads 2 \
  --ff 64 --batch 8 --warmup 5 --lr 3e-3 --steps 30 -t 1 -o base.gguf > /dev/null || fail "training the base model"
awk 'NR <= 600 { n = split($0, w, " "); p = w[1]; for (i = 2; i <= n / 2; i++) p = p " " w[i]; c = "";
  for (i = int(n / 2) + 1; i <= n; i++) c = c " " w[i]; printf "{\"prompt\": \"%s\", \"completion\": \"%s\"}\n", p, c }' \
  corpus.txt > pc.jsonl
awk '{ print (($0 ~ /(^| )(the|of|and)( |$)/) ? "common" : "rare") "\t" $0 }' corpus.txt > labeled.tsv
head -n 2500 labeled.tsv > train.tsv
tail -n 300 labeled.tsv > test.tsv

# values_close A B KEY WHAT: the KEY values of two metrics files agree within 1e-5 relative, line by line.
values_close() {
  grep -o "\"$3\":[0-9.e+-]*" "$1" | cut -d: -f2 > a.txt
  grep -o "\"$3\":[0-9.e+-]*" "$2" | cut -d: -f2 > b.txt
  if [[ -s a.txt ]] && paste a.txt b.txt | awk -v n="$(wc -l < a.txt)" -v m="$(wc -l < b.txt)" \
    'n != m { exit 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * ($1 < 0 ? -$1 : $1)) exit 1 }'; then pass
  else fail "$4: $3 differs: $(paste a.txt b.txt | head -3 | tr '\n' ' ') ($(wc -l < a.txt) and $(wc -l < b.txt) lines)"; fi
}

# equivalent NAME ARGS...: one process with --grad-accum 2 and 2 ranks, the same results.
equivalent() {
  local name=$1
  shift
  local ft=(lm-finetune -m base.gguf -t 1 --batch 4 --steps 10 --warmup 2 --eval-every 5 --eval-batches 3 "$@")
  expect_exit 0 "$name: one process, --grad-accum 2" -- "${ft[@]}" --grad-accum 2 --metrics "$name.1.jsonl" \
    --json -o "$name.1.gguf"
  sed 's/"memory_mib":[0-9]*,//' "$T/out" > "$name.1.out"
  expect_exit 0 "$name: 2 ranks" -- "${mpi2[@]}" "${ft[@]}" --metrics "$name.2.jsonl" --json -o "$name.2.gguf"
  sed 's/"memory_mib":[0-9]*,//' "$T/out" > "$name.2.out"
  values_close "$name.1.jsonl" "$name.2.jsonl" loss "$name"
  values_close "$name.1.jsonl" "$name.2.jsonl" valid_loss "$name"
  values_close "$name.1.out" "$name.2.out" valid_loss "$name (result)"
  if "$LM_TEST_BIN/lm_test_compare_gguf" "$name.1.gguf" "$name.2.gguf" 1e-5 > cmp.txt; then pass
  else fail "$name: weights differ: $(cat cmp.txt)"; fi
}

equivalent full --data corpus.txt --lr 1e-3 --dropout 0.1
equivalent lora --data corpus.txt --lora --lora-dropout 0.1 --lr 3e-3
equivalent pc --task prompt-completion --data pc.jsonl --lora --lr 3e-3
equivalent lorazero --data corpus.txt --lora --train-norms --merge --lr 3e-3 --zero 1
equivalent cls --task classify --data train.tsv --valid test.tsv --lr 1e-3
values_close cls.1.out cls.2.out valid_accuracy "classifier accuracy"
# The LoRA pairs summed as backward finishes each layer (the default) or after it: the same
# weights, to the bit.
expect_exit 0 "lora: 2 ranks, --overlap 0" -- "${mpi2[@]}" lm-finetune -m base.gguf -t 1 --batch 4 --steps 10 --warmup 2 \
  --eval-every 5 --eval-batches 3 --data corpus.txt --lora --lora-dropout 0.1 --lr 3e-3 --overlap 0 -q -o lora.after.gguf
"$LM_TEST_BIN/lm_test_compare_gguf" lora.2.gguf lora.after.gguf 0 > cmp.txt && pass ||
  fail "lora: --overlap 0 trained other weights than the overlapped sums: $(cat cmp.txt)"

# The checkpoint of a LoRA run on 2 ranks (at its last step) loads on one process with
# --grad-accum 2, the same global batch, without --force-resume, and gives the same adapter.
lora=(lm-finetune -m base.gguf -t 1 --batch 4 --warmup 2 --eval-every 0 --data corpus.txt --lora --lr 3e-3 -q)
expect_exit 0 "LoRA on 2 ranks with checkpoints" -- "${mpi2[@]}" "${lora[@]}" --steps 6 --checkpoint-every 3 -o r.gguf
expect_exit 0 "its checkpoint resumed on one process" -- "${lora[@]}" --grad-accum 2 --steps 6 --resume r.gguf.ckpt \
  -o r1.gguf
if "$LM_TEST_BIN/lm_test_compare_gguf" r.gguf r1.gguf 0 > cmp.txt; then pass
else fail "the 2-rank LoRA checkpoint resumed on one process: $(cat cmp.txt)"; fi

finish
