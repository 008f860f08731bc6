# fish completion for lm-tokenize
set -l cmds train encode decode vocab stats
complete -c lm-tokenize -f
complete -c lm-tokenize -n "not __fish_seen_subcommand_from $cmds" -a train -d 'Train a tokenizer on text'
complete -c lm-tokenize -n "not __fish_seen_subcommand_from $cmds" -a encode -d 'Encode text to ids, pieces or a token file'
complete -c lm-tokenize -n "not __fish_seen_subcommand_from $cmds" -a decode -d 'Decode ids, pieces or a token file to text'
complete -c lm-tokenize -n "not __fish_seen_subcommand_from $cmds" -a vocab -d 'List the vocabulary'
complete -c lm-tokenize -n "not __fish_seen_subcommand_from $cmds" -a stats -d 'Count tokens and vocabulary use'
complete -c lm-tokenize -n "not __fish_seen_subcommand_from $cmds" -l version -d 'Print the version and exit'
complete -c lm-tokenize -s h -l help -d 'Print help and exit'
complete -c lm-tokenize -n "__fish_seen_subcommand_from $cmds" -s q -l quiet -d 'Print only errors on stderr'
complete -c lm-tokenize -n "__fish_seen_subcommand_from $cmds" -s v -l verbose -d 'Print more detail on stderr'
complete -c lm-tokenize -n "__fish_seen_subcommand_from $cmds" -F

# train
set -l tr "__fish_seen_subcommand_from train"
complete -c lm-tokenize -n $tr -s o -l output -r -F -d 'Output SentencePiece model file'
complete -c lm-tokenize -n $tr -l model-type -x -a 'bpe unigram' -d 'Algorithm'
complete -c lm-tokenize -n $tr -l vocab-size -x -d 'Number of pieces'
complete -c lm-tokenize -n $tr -l byte-fallback -d 'Encode unknown characters as bytes'
complete -c lm-tokenize -n $tr -l no-byte-fallback -d 'Use the unknown piece instead of bytes'
complete -c lm-tokenize -n $tr -l character-coverage -x -d 'Share of characters covered by pieces'
complete -c lm-tokenize -n $tr -l user-defined-symbols -x -d 'Pieces always kept whole (comma-separated)'
complete -c lm-tokenize -n $tr -l control-symbols -x -d 'Reserved pieces (comma-separated)'
complete -c lm-tokenize -n $tr -l normalization -x -a 'identity nfkc nmt_nfkc nfkc_cf nmt_nfkc_cf' -d 'Unicode normalization rule'
complete -c lm-tokenize -n $tr -l remove-extra-whitespaces -d 'Collapse whitespace runs'
complete -c lm-tokenize -n $tr -l no-remove-extra-whitespaces -d 'Keep whitespace as is'
complete -c lm-tokenize -n $tr -l add-dummy-prefix -d 'Add a space before each text'
complete -c lm-tokenize -n $tr -l no-add-dummy-prefix -d 'No space before each text'
complete -c lm-tokenize -n $tr -l split-digits -d 'Every digit its own piece'
complete -c lm-tokenize -n $tr -l no-split-digits -d 'Let digits merge'
complete -c lm-tokenize -n $tr -l max-sentences -x -d 'Train on a sample of this many lines'
complete -c lm-tokenize -n $tr -l max-sentence-length -x -d 'Skip longer lines (bytes)'
complete -c lm-tokenize -n $tr -s s -l seed -x -d 'Random seed'
complete -c lm-tokenize -n $tr -s t -l threads -x -d 'Threads (0 = all cores)'

# encode
set -l en "__fish_seen_subcommand_from encode"
complete -c lm-tokenize -n $en -s m -l model -r -F -d 'Tokenizer: SentencePiece .model or GGUF file'
complete -c lm-tokenize -n $en -s o -l output -r -F -d 'Output file (- = stdout)'
complete -c lm-tokenize -n $en -l format -x -a 'ids pieces bin' -d 'Output format'
complete -c lm-tokenize -n $en -l bos -d 'Add the BOS id before each line'
complete -c lm-tokenize -n $en -l eos -d 'Add the EOS id after each line'
complete -c lm-tokenize -n $en -s t -l threads -x -d 'Threads (0 = all cores)'

# decode
set -l de "__fish_seen_subcommand_from decode"
complete -c lm-tokenize -n $de -s m -l model -r -F -d 'Tokenizer: SentencePiece .model or GGUF file'
complete -c lm-tokenize -n $de -s o -l output -r -F -d 'Output file (- = stdout)'
complete -c lm-tokenize -n $de -l format -x -a 'auto ids pieces bin' -d 'Input format'

# vocab
set -l vo "__fish_seen_subcommand_from vocab"
complete -c lm-tokenize -n $vo -s m -l model -r -F -d 'Tokenizer: SentencePiece .model or GGUF file'
complete -c lm-tokenize -n $vo -s o -l output -r -F -d 'Output file (- = stdout)'
complete -c lm-tokenize -n $vo -l json -d 'Write JSON Lines'

# stats
set -l st "__fish_seen_subcommand_from stats"
complete -c lm-tokenize -n $st -s m -l model -r -F -d 'Tokenizer: SentencePiece .model or GGUF file'
complete -c lm-tokenize -n $st -l json -d 'Print one JSON object'
complete -c lm-tokenize -n $st -s t -l threads -x -d 'Threads (0 = all cores)'
