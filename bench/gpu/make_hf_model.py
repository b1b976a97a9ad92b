#!/usr/bin/env python3
"""make_hf_model.py — a synthetic-weight Llama model as a Hugging Face directory, for benchmarks.

    make_hf_model.py --shape 1b|8b|tiny --out DIR [--seed N] [--max-pos N] [--vocab N] [--force]

Writes DIR/config.json (LlamaForCausalLM of the real shape), generation_config.json,
model.safetensors (or model-0000N-of-0000M.safetensors + model.safetensors.index.json past
5 GB), tokenizer.json and tokenizer_config.json. Loadable by libinfer (lib/load_hf.c,
lib/tok_hf.c) and by transformers.

Shapes:
  1b    Llama-3.2-1B: hidden 2048, 16 layers, 32 heads / 8 KV heads, FFN 8192, vocab 128256, tied
  8b    Llama-3-8B:   hidden 4096, 32 layers, 32 heads / 8 KV heads, FFN 14336, vocab 128256, untied
        (rope_scaling as Llama-3.1-8B; the speed does not depend on it)
  tiny  hidden 256, 2 layers, 8 heads / 2 KV heads, FFN 512, vocab 128256, untied: for tests on a CPU

Weights: bf16, normal(0, 0.02) from a fixed seed (generated on CUDA when torch sees a GPU, else
on the CPU with torch, else numpy); RMSNorm weights 1.0. The speed of a bf16 forward pass does not
depend on the values, but zeros could take fast paths (and make every logit equal), so they are
random. Tensors are streamed to disk one at a time (the safetensors format is written here: an
8-byte little-endian header length, a JSON header, then the raw tensors), so memory stays at one
tensor whatever the model size.

Tokenizer: byte-level BPE with the Llama 3 pre-tokenizer (Split with the Llama 3 regex +
ByteLevel), ids 0..255 the 256 byte symbols (GPT-2's bytes_to_unicode), then merges that build
"Ġx" and two-letter pieces and "Ġxy" so English text costs about two letters per token, then filler
pieces "<fN>" up to vocab - 256, then Llama 3's 256 special tokens (<|begin_of_text|> = 128000,
<|end_of_text|> = 128001, <|eot_id|> = 128009, ...). BOS is added by the post-processor, as in
Llama 3's own tokenizer.json.

A finished directory holds a ".complete" marker; it is reused unless --force.
"""
import argparse
import json
import os
import struct
import sys
import time

SHAPES = {
    "1b": dict(hidden=2048, layers=16, heads=32, kv=8, ffn=8192, vocab=128256, tied=True,
               rope_factor=32.0, name="synthetic-llama-3.2-1b"),
    "8b": dict(hidden=4096, layers=32, heads=32, kv=8, ffn=14336, vocab=128256, tied=False,
               rope_factor=8.0, name="synthetic-llama-3-8b"),
    "tiny": dict(hidden=256, layers=2, heads=8, kv=2, ffn=512, vocab=128256, tied=False,
                 rope_factor=32.0, name="synthetic-llama-tiny"),
}

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
N_SPECIAL = 256
SHARD_BYTES = 5 * 10**9


def log(msg):
    print(f"[make_hf_model {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- tokenizer

def bytes_to_unicode():
    """GPT-2's byte -> printable character map (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def special_tokens(n_base):
    """Llama 3's 256 special tokens, from id n_base (128000 with the real vocab)."""
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
             "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    names += ["<|reserved_special_token_%d|>" % i for i in range(3, 3 + N_SPECIAL - len(names))]
    assert len(names) == N_SPECIAL
    return [(n_base + i, s) for i, s in enumerate(names)]


def make_tokenizer(vocab_size):
    n_base = vocab_size - N_SPECIAL
    b2u = bytes_to_unicode()
    vocab = {}
    for b in range(256):
        vocab[b2u[b]] = b
    merges = []

    def add(a, b):
        t = a + b
        if t not in vocab and len(vocab) < n_base:
            vocab[t] = len(vocab)
            merges.append(a + " " + b)

    sp = b2u[ord(" ")]  # "Ġ"
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    for x in letters:
        add(sp, x)
    for x in letters:
        for y in letters:
            add(x, y)
    for x in letters:
        for y in letters:
            add(sp + x, y)
    k = 0
    while len(vocab) < n_base:
        vocab["<f%d>" % k] = len(vocab)
        k += 1
    specials = special_tokens(n_base)
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in specials]
    bos = specials[0][1]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [n_base], "tokens": [bos]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": merges},
    }
    tok_cfg = {
        "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for i, s in specials},
        "bos_token": bos,
        "eos_token": specials[1][1],
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok, tok_cfg, n_base


# ---------------------------------------------------------------------------- weights

class Gen:
    """normal(0, 0.02) bf16 tensors as C-contiguous 16-bit numpy arrays (their bytes are the bf16
    values, little-endian on every machine this runs on), from a fixed seed."""

    def __init__(self, seed, device):
        self.torch = None
        try:
            import torch
            self.torch = torch
        except ImportError:
            pass
        if self.torch is not None:
            t = self.torch
            if device == "auto":
                device = "cuda" if t.cuda.is_available() else "cpu"
            self.device = device
            self.g = t.Generator(device=device)
            self.g.manual_seed(seed)
            self.kind = "torch-" + device
        else:
            import numpy as np
            self.np = np
            self.rng = np.random.default_rng(seed)
            self.kind = "numpy"

    def bytes(self, shape, ones=False):
        if self.torch is not None:
            t = self.torch
            if ones:
                x = t.ones(shape, dtype=t.bfloat16)
            else:
                x = t.empty(shape, dtype=t.bfloat16, device=self.device)
                x.normal_(0.0, 0.02, generator=self.g)
                x = x.cpu()
            return x.contiguous().view(t.int16).numpy()
        np = self.np
        if ones:
            f = np.ones(shape, dtype=np.float32)
        else:
            f = self.rng.standard_normal(size=shape, dtype=np.float32) * np.float32(0.02)
        u = f.view(np.uint32)
        u = (u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16  # round to nearest even
        return u.astype("<u2")


def tensor_list(s):
    D, L, H, KV, F, V = s["hidden"], s["layers"], s["heads"], s["kv"], s["ffn"], s["vocab"]
    hd = D // H
    out = [("model.embed_tokens.weight", (V, D), False)]
    for i in range(L):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (D,), True),
            (p + "self_attn.q_proj.weight", (H * hd, D), False),
            (p + "self_attn.k_proj.weight", (KV * hd, D), False),
            (p + "self_attn.v_proj.weight", (KV * hd, D), False),
            (p + "self_attn.o_proj.weight", (D, H * hd), False),
            (p + "post_attention_layernorm.weight", (D,), True),
            (p + "mlp.gate_proj.weight", (F, D), False),
            (p + "mlp.up_proj.weight", (F, D), False),
            (p + "mlp.down_proj.weight", (D, F), False),
        ]
    out.append(("model.norm.weight", (D,), True))
    if not s["tied"]:
        out.append(("lm_head.weight", (V, D), False))
    return out


def nbytes(shape):
    n = 2
    for d in shape:
        n *= d
    return n


def write_safetensors(path, tensors, gen):
    """tensors: [(name, shape, ones)], written in this order; bf16."""
    header, off = {}, 0
    for name, shape, _ in tensors:
        n = nbytes(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # tensor data 8-byte aligned in the file
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, ones in tensors:
            a = gen.bytes(shape, ones)
            assert a.nbytes == nbytes(shape) and a.flags["C_CONTIGUOUS"]
            f.write(memoryview(a).cast("B"))
    os.replace(tmp, path)
    return off


def write_weights(out, s, gen, shard_bytes):
    ts = tensor_list(s)
    shards, cur, cur_bytes = [], [], 0
    for t in ts:
        n = nbytes(t[1])
        if cur and cur_bytes + n > shard_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(t)
        cur_bytes += n
    shards.append(cur)
    total = sum(nbytes(t[1]) for t in ts)
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = ["model-%05d-of-%05d.safetensors" % (i + 1, len(shards)) for i in range(len(shards))]
    wmap = {}
    for name, sh in zip(names, shards):
        t0 = time.time()
        n = write_safetensors(os.path.join(out, name), sh, gen)
        log(f"  {name}: {len(sh)} tensors, {n / 1e9:.2f} GB in {time.time() - t0:.1f} s")
        for t in sh:
            wmap[t[0]] = name
    if len(shards) > 1:
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    return total


# ---------------------------------------------------------------------------- config

def config(s, bos, eos, max_pos):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": s["hidden"] // s["heads"],
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": s["ffn"],
        "max_position_embeddings": max_pos,
        "mlp_bias": False,
        "num_attention_heads": s["heads"],
        "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"rope_type": "llama3", "factor": s["rope_factor"], "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "rope_theta": 500000.0,
        "tie_word_embeddings": s["tied"],
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": s["vocab"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-pos", type=int, default=8192, help="max_position_embeddings (default 8192)")
    ap.add_argument("--vocab", type=int, default=0, help="override the vocab size (>= 1500)")
    ap.add_argument("--device", default="auto", help="torch device for weight generation (default: cuda if any)")
    ap.add_argument("--force", action="store_true", help="rewrite even if DIR/.complete exists")
    ap.add_argument("--tied", type=int, choices=(0, 1), default=None, help="override tie_word_embeddings")
    ap.add_argument("--shard-gb", type=float, default=SHARD_BYTES / 1e9, help="shard size (default 5)")
    a = ap.parse_args()
    s = dict(SHAPES[a.shape])
    if a.vocab:
        if a.vocab < 1500:
            ap.error("--vocab must be >= 1500 (256 bytes + merges + 256 specials)")
        s["vocab"] = a.vocab
    if a.tied is not None:
        s["tied"] = bool(a.tied)
    marker = os.path.join(a.out, ".complete")
    if os.path.exists(marker) and not a.force:
        log(f"{a.out} is complete already (--force rewrites it)")
        return 0
    os.makedirs(a.out, exist_ok=True)
    if os.path.exists(marker):
        os.unlink(marker)
    t0 = time.time()
    tok, tok_cfg, n_base = make_tokenizer(s["vocab"])
    bos, eos = n_base, n_base + 1
    eot, eom = n_base + 9, n_base + 8
    with open(os.path.join(a.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(s, bos, eos, a.max_pos), f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": bos, "eos_token_id": [eos, eom, eot], "do_sample": False,
                   "transformers_version": "4.45.0"}, f, indent=2)
    gen = Gen(a.seed, a.device)
    log(f"{a.shape}: {s['name']}, writing bf16 weights to {a.out} ({gen.kind})")
    total = write_weights(a.out, s, gen, int(a.shard_gb * 1e9))
    with open(marker, "w") as f:
        f.write("ok\n")
    log(f"{a.shape}: done, {total / 1e9:.3f} GB of weights in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
