#!/usr/bin/env bash
# What every tool's command line does alike (tools/common/cli.cpp): unknown options and commands
# named with a suggestion, before any other complaint; usage errors point at the --help of the
# command named; switches listed without CLI11's "{false}"; a repeatable option that takes one
# file per use; the generated docs' entry point.
source "$(dirname "$0")/lib.sh"

# Unknown options: named, with the closest known one, even when a required option is missing too.
expect_exit 2 "misspelled option" -- lm-generate --temperature 1
expect_err "^lm-generate: unknown option '--temperature'; did you mean '--temp'\?$" "misspelled option"
[[ $(tail -1 "$T/err") == "try 'lm-generate --help'" ]] && pass || fail "hint: $(cat "$T/err")"
expect_exit 2 "unknown option before a missing -m" -- lm-quantize --no-such-option
expect_err "^lm-quantize: unknown option '--no-such-option'$" "unknown option before a missing -m"
expect_exit 2 "unknown option with =" -- lm-eval perplexity --cxt-size=3 x.txt
expect_err "^lm-eval: unknown option '--cxt-size'; did you mean '--ctx-size'\?$" "unknown option with ="
# The hint names the command whose options were wrong.
[[ $(tail -1 "$T/err") == "try 'lm-eval perplexity --help'" ]] && pass || fail "command hint: $(cat "$T/err")"
expect_exit 2 "a command's own usage error" -- lm-tokenize encode -m
[[ $(tail -1 "$T/err") == "try 'lm-tokenize encode --help'" ]] && pass || fail "encode hint: $(cat "$T/err")"
expect_exit 2 "nothing close" -- lm-train --zzzzzz
expect_err "^lm-train: unknown option '--zzzzzz'$" "nothing close"

# Commands.
expect_exit 2 "unknown command" -- lm-eval ter
expect_err "^lm-eval: unknown command 'ter' \(commands: perplexity, imatrix, kld, bleu, chrf, classify, predict, embed, similar, mlm, plot\)$" "unknown command"
expect_exit 2 "misspelled command" -- lm-tokenize encod -m x
expect_err "^lm-tokenize: unknown command 'encod'; did you mean 'encode'\?" "misspelled command"
expect_exit 2 "no command" -- lm-eval
expect_err "^lm-eval: a command is required: perplexity, imatrix, kld, bleu, chrf, classify, predict, embed, similar, mlm, plot$" "no command"

# Switches that default to on read as a pair in --help.
lm-tokenize train --help > help.txt
grep -qE -- '--byte-fallback,--no-byte-fallback( |$)' help.txt && pass || fail "switch pair: $(grep fallback help.txt)"
grep -q '{false}' help.txt && fail "--help shows {false}" || pass
# Values are named plainly, not with their range check.
lm-generate --help > help.txt
grep -qE -- '-n,--max-tokens N=128 ' help.txt && pass || fail "value name: $(grep max-tokens help.txt)"
grep -qE -- '--overflow stop\|shift=stop ' help.txt && pass || fail "choices: $(grep overflow help.txt)"

# -r takes one file each time: the next word is the hypotheses, and stdin is not read.
printf 'the cat sat on the mat today\n' > ref.txt
printf 'the cat sat on the mat today\n' > hyp.txt
printf 'something else entirely here\n' > other.txt
expect_exit 0 "bleu -r REF HYP" -- sh -c 'lm-eval bleu -r ref.txt hyp.txt < other.txt'
grep -q 'nrefs:1|' "$T/out" && grep -q '= 100.00 ' "$T/out" && pass || fail "bleu -r REF HYP: $(cat "$T/out")"
expect_exit 0 "two references" -- lm-eval bleu -r ref.txt -r other.txt hyp.txt
grep -q 'nrefs:2|' "$T/out" && pass || fail "two references: $(cat "$T/out")"

# The build's entry point to the generated docs refuses what it does not know.
expect_exit 2 "--lm-emit-docs kind" -- lm-generate --lm-emit-docs pdf
expect_err "^lm-generate: --lm-emit-docs 'pdf': expected man, bash, zsh or fish$" "--lm-emit-docs kind"
finish
